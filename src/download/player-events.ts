import type { CoreEvents } from '../events.js';
import type { DemandHandle, PlayerObserver } from './demand.js';

/** How often (ms) one player's position may be announced (as progress events are). */
const PLAYER_EVENT_MS = 250;

/**
 * `player-moved` and `player-left` events from readers' demand handles. A reader moves with every
 * piece it sends (hundreds a second at full speed): a move is announced at once when the last one
 * is older than 250 ms, else once when that time is up, with the position of then. Nothing is
 * emitted for a player nobody listens to beyond a clock read (CoreEvents drops unheard events).
 */
export class PlayerEvents implements PlayerObserver {
  /** playerId → when its position was last announced, and a timer for a move held back. */
  private readonly players = new Map<number, { at: number; timer: NodeJS.Timeout | undefined }>();

  constructor(
    private readonly events: CoreEvents,
    private readonly now: () => number = Date.now,
  ) {}

  moved(handle: DemandHandle): void {
    const player = this.players.get(handle.playerId);
    if (!player) {
      this.players.set(handle.playerId, { at: this.now(), timer: undefined });
      this.announce(handle);
      return;
    }
    if (player.timer) return; // the held-back announcement will carry this position
    const wait = player.at + PLAYER_EVENT_MS - this.now();
    if (wait <= 0) {
      player.at = this.now();
      this.announce(handle);
      return;
    }
    player.timer = setTimeout(() => {
      player.timer = undefined;
      if (handle.released) return;
      player.at = this.now();
      this.announce(handle);
    }, wait).unref();
  }

  left(handle: DemandHandle): void {
    const player = this.players.get(handle.playerId);
    if (!player) return;
    clearTimeout(player.timer);
    this.players.delete(handle.playerId);
    this.events.emit('player-left', { entryId: handle.entryId, playerId: handle.playerId });
  }

  private announce(handle: DemandHandle): void {
    this.events.emit('player-moved', { entryId: handle.entryId, playerId: handle.playerId, position: handle.readAt });
  }
}
