/** Weight of a new sample in the moving averages. */
const ALPHA = 0.2;

/**
 * What the upstream has shown lately: the time from sending a Range request to its first body
 * byte, and the body rate of a transfer. Exponential moving averages over every transfer; the
 * scheduler decides a split at a seek on them (policy/scheduling.ts shouldSplit).
 */
export class UpstreamTiming {
  firstByteMs: number | null = null;
  bytesPerMs: number | null = null;

  noteFirstByte(ms: number): void {
    this.firstByteMs = this.firstByteMs === null ? ms : this.firstByteMs + ALPHA * (ms - this.firstByteMs);
  }

  noteRate(bytesPerMs: number): void {
    if (!Number.isFinite(bytesPerMs) || bytesPerMs <= 0) return;
    this.bytesPerMs = this.bytesPerMs === null ? bytesPerMs : this.bytesPerMs + ALPHA * (bytesPerMs - this.bytesPerMs);
  }
}
