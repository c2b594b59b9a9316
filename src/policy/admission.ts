import { Priority } from '../db/repository.js';

/** What admission answers for a transfer about to start. */
export type Admission = 'admit' | 'wait' | 'drop';

/** What the scheduler asks of the size limits (the evictor): a narrow view. */
export interface AdmissionControl {
  admit(entryId: string, chunkIndex: number, bytes: number, priority: Priority): Admission;
  /** A transfer ended: its file is measured again in place of its reservation. */
  transferEnded(entryId: string, chunkIndex: number): void;
}

/**
 * Admission against the size limits. Work that fits starts. Playback work (CRITICAL, HIGH)
 * waits while room is made (bytes behind players and other entries are evicted). Background
 * work (MEDIUM pre-cache, LOW fill) never evicts its own entry: once a pass could not make room
 * for it from elsewhere, its queued background work is dropped (the entry stays as far as it got)
 * so it never holds up other entries.
 */
export function decideAdmission(input: {
  fits: boolean;
  priority: Priority;
  entryBeingEvicted: boolean;
  noRoomForBackground: boolean;
}): Admission {
  if (input.entryBeingEvicted) return 'wait';
  if (input.fits) return 'admit';
  if (input.priority >= Priority.MEDIUM && input.noRoomForBackground) return 'drop';
  return 'wait';
}
