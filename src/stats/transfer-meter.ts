const WINDOW_MS = 5_000;
const BUCKET_MS = 100;

/**
 * Per-entry download rate, fed by transfers as bytes arrive, for progress bars and ETAs.
 * Ephemeral telemetry: it lives in memory only and starts from zero after a restart.
 */
export class TransferMeter {
  /** entryId → [time, bytes] samples within the window. */
  private readonly samples = new Map<string, Array<[number, number]>>();

  constructor(
    private readonly onBytes: (bytes: number) => void,
    private readonly now: () => number = Date.now,
  ) {}

  /** Bytes received from the upstream for an entry. */
  record(entryId: string, bytes: number): void {
    this.onBytes(bytes);
    let list = this.samples.get(entryId);
    if (!list) this.samples.set(entryId, (list = []));
    // Samples are merged into 100 ms buckets: at hundreds of MB/s a sample per piece would keep
    // tens of thousands of tiny arrays alive for the window.
    const now = this.now();
    const last = list[list.length - 1];
    if (last && now - last[0] < BUCKET_MS) last[1] += bytes;
    else list.push([now, bytes]);
    this.prune(entryId, list);
  }

  private prune(entryId: string, list: Array<[number, number]>): void {
    const cutoff = this.now() - WINDOW_MS;
    let drop = 0;
    while (drop < list.length && (list[drop] as [number, number])[0] < cutoff) drop++;
    if (drop > 0) list.splice(0, drop);
    if (list.length === 0) this.samples.delete(entryId);
  }

  /** Entries with bytes in the window (a superset of those whose rate() is above 0). */
  meteredIds(): IterableIterator<string> {
    return this.samples.keys();
  }

  /** Bytes per second over the last few seconds; 0 when nothing arrived. */
  rate(entryId: string): number {
    const list = this.samples.get(entryId);
    if (!list) return 0;
    this.prune(entryId, list);
    const first = list[0];
    if (!first) return 0;
    const bytes = list.reduce((sum, [, b]) => sum + b, 0);
    // Over the window, or since the first sample when the transfer is younger than that.
    const span = Math.max(500, Math.min(WINDOW_MS, this.now() - first[0]));
    return Math.round((bytes * 1000) / span);
  }
}
