import { test, mock } from 'node:test';
import assert from 'node:assert/strict';
import { setImmediate as turn } from 'node:timers/promises';
import { DemandRegistry } from '../../src/download/demand.js';
import { PlayerEvents } from '../../src/download/player-events.js';
import { CoreEvents } from '../../src/events.js';

test('a player is announced when it first reads, then at most every 250 ms with its latest position, and once when it leaves', async () => {
  mock.timers.enable({ apis: ['setTimeout'] });
  try {
    let now = 1_000;
    const events = new CoreEvents();
    const seen: string[] = [];
    events.on('player-moved', (e) => seen.push(`moved ${e.playerId} ${e.position}`));
    events.on('player-left', (e) => seen.push(`left ${e.playerId}`));
    const registry = new DemandRegistry();
    registry.observer = new PlayerEvents(events, () => now);

    const silent = registry.open('e1');
    const player = registry.open('e1');
    player.set([2], 2_000_000);
    player.moveTo(2_100_000);
    now += 100;
    player.moveTo(2_200_000);
    await turn();
    assert.deepEqual(seen, [`moved ${player.playerId} 2000000`], 'moves within 250 ms are held back');
    now += 150;
    mock.timers.tick(150);
    await turn();
    assert.equal(seen.length, 1, 'still within 250 ms of the announcement');
    now += 100;
    mock.timers.tick(100);
    await turn();
    assert.deepEqual(seen.slice(1), [`moved ${player.playerId} 2200000`], 'then one announcement with the latest position');
    now += 1_000;
    player.moveTo(2_300_000);
    await turn();
    assert.equal(seen.at(-1), `moved ${player.playerId} 2300000`, 'a move after a quiet spell goes out at once');

    player.moveTo(2_400_000);
    player.release();
    mock.timers.tick(1_000);
    await turn();
    assert.equal(seen.at(-1), `left ${player.playerId}`);
    assert.equal(seen.filter((s) => s.includes('2400000')).length, 0, 'nothing after it left');
    silent.release();
    await turn();
    assert.equal(seen.filter((s) => s.startsWith('left')).length, 1, 'a handle that never read was never announced, nor its leaving');
    assert.notEqual(silent.playerId, player.playerId);
  } finally {
    mock.timers.reset();
  }
});
