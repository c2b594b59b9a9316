import type { IncomingMessage, ServerResponse } from 'node:http';
import { ENTRY_ID } from '../cluster/ids.js';
import { ErrorCodes, MediaCacheError } from '../errors.js';
import type { LiveHub } from '../live/hub.js';
import { sendJson } from './respond.js';

/**
 * `GET /api/events` (the live event stream) and `GET /api/entries/<id>/map` (docs/events.md).
 * Called after the host and token checks of /api; returns false for any other path.
 */
export async function handleLive(hub: LiveHub, parts: readonly string[], req: IncomingMessage, res: ServerResponse): Promise<boolean> {
  const isEvents = parts.length === 2 && parts[1] === 'events';
  const isMap = parts.length === 4 && parts[1] === 'entries' && parts[3] === 'map';
  if (!isEvents && !isMap) return false;
  if (req.method !== 'GET') throw new MediaCacheError(ErrorCodes.METHOD_NOT_ALLOWED, `method ${req.method ?? ''} not allowed here`);
  if (isEvents) {
    const lastEventId = req.headers['last-event-id'];
    await hub.connect(res, Array.isArray(lastEventId) ? lastEventId[0] : lastEventId);
    return true;
  }
  const id = parts[2] ?? '';
  const map = ENTRY_ID.test(id) ? hub.map(id) : undefined;
  if (!map) throw new MediaCacheError(ErrorCodes.NOT_FOUND, `no entry with id ${id}`);
  sendJson(res, 200, map);
  return true;
}
