import { ErrorCodes, MediaCacheError } from '../errors.js';
import { parseSize } from '../units.js';

/**
 * Bandwidth limits (`--limit-rate`, `--limit-rate-all`) as pure functions: parsing a rate or an
 * rclone-style timetable, and which limit applies at a given time. The clock is always a
 * parameter (local time, like rclone's `--bwlimit`), so tests switch at the boundaries without waiting.
 */

/** Bytes per second, or null: no limit. */
export type Rate = number | null;

export interface RateSlot {
  /** Where in the week (local time) the slot starts: minutes since Sunday 00:00. */
  minuteOfWeek: number;
  bytesPerSecond: Rate;
}

/** A parsed limit: its slots sorted by start (one slot at minute 0 for a constant rate). */
export interface RateSchedule {
  /** The text it was parsed from (shown by status and stats). */
  text: string;
  slots: readonly RateSlot[];
}

/** What a schedule says at one time: the rate now, and when it next changes to what. */
export interface RateAt {
  bytesPerSecond: Rate;
  next: { at: Date; bytesPerSecond: Rate } | null;
}

const DAYS = ['sun', 'mon', 'tue', 'wed', 'thu', 'fri', 'sat'];
const MINUTES_PER_DAY = 24 * 60;
const SLOT = /^(?:([a-z]{3})-)?(\d{1,2}):(\d{2}),(.+)$/i;

function invalid(message: string): MediaCacheError {
  return new MediaCacheError(ErrorCodes.INVALID_INPUT, message);
}

/** `2MB`, `2MB/s`, `512KiB`, `1500000` → bytes per second; `off` and `0` → null (no limit). */
export function parseRate(text: string): Rate {
  const t = text.trim().replace(/\/s$/i, '');
  if (/^off$/i.test(t)) return null;
  const bytes = parseSize(t);
  if (bytes === undefined) throw invalid(`"${text}" is not a rate: expected bytes per second such as 2MB, 512KiB/s, or off`);
  return bytes === 0 ? null : bytes;
}

/**
 * A rate (`2MB/s`, `off`) or a timetable of `[Day-]HH:MM,RATE` entries separated by spaces
 * (`"08:00,1M 23:00,off"`, `"Mon-08:00,2MB Sat-00:00,off"`). An entry without a day holds every
 * day; where one with a day falls on the same minute, the one with the day wins. Between entries
 * the earlier one holds, wrapping round midnight and the week (before the first entry, the last).
 */
export function parseRateSchedule(text: string): RateSchedule {
  const entries = text.trim().split(/\s+/).filter(Boolean);
  if (entries.length === 0) throw invalid('empty rate: expected bytes per second such as 2MB, or a timetable such as "08:00,1M 23:00,off"');
  if (entries.length === 1 && !entries[0]?.includes(','))
    return { text: text.trim(), slots: [{ minuteOfWeek: 0, bytesPerSecond: parseRate(text) }] };
  const daily = new Map<number, Rate>();
  const weekly = new Map<number, Rate>();
  for (const entry of entries) {
    const m = SLOT.exec(entry);
    if (!m) throw invalid(`timetable entry "${entry}" is not [Day-]HH:MM,RATE (e.g. 08:00,1M or Mon-23:00,off)`);
    const [, day, hh, mm, rate] = m;
    const hours = Number(hh);
    const minutes = Number(mm);
    if (hours > 23 || minutes > 59) throw invalid(`timetable entry "${entry}": ${hh}:${mm} is not a time of day (00:00-23:59)`);
    const dayIndex = day === undefined ? -1 : DAYS.indexOf(day.toLowerCase());
    if (day !== undefined && dayIndex < 0)
      throw invalid(`timetable entry "${entry}": "${day}" is not a day (Mon, Tue, Wed, Thu, Fri, Sat, Sun)`);
    const minute = hours * 60 + minutes + Math.max(0, dayIndex) * MINUTES_PER_DAY;
    const into = dayIndex < 0 ? daily : weekly;
    if (into.has(minute)) throw invalid(`timetable entry "${entry}": two entries for the same time`);
    into.set(minute, parseRate(rate ?? ''));
  }
  const slots = new Map<number, Rate>();
  for (const [minute, rate] of daily) for (let d = 0; d < 7; d++) slots.set(minute + d * MINUTES_PER_DAY, rate);
  for (const [minute, rate] of weekly) slots.set(minute, rate);
  const sorted = [...slots].sort(([a], [b]) => a - b).map(([minuteOfWeek, bytesPerSecond]) => ({ minuteOfWeek, bytesPerSecond }));
  return { text: entries.join(' '), slots: sorted };
}

/** The schedule's rate at `now` and its next change (null when it never changes). */
export function rateAt(schedule: RateSchedule, now: Date): RateAt {
  const { slots } = schedule;
  const minute = now.getDay() * MINUTES_PER_DAY + now.getHours() * 60 + now.getMinutes();
  // The slot in force: the last one starting at or before now, else (wrapping) the week's last.
  let current = slots.length - 1;
  for (let i = 0; i < slots.length; i++) if ((slots[i] as RateSlot).minuteOfWeek <= minute) current = i;
  const rate = (slots[current] as RateSlot).bytesPerSecond;
  for (let step = 1; step < slots.length; step++) {
    const slot = slots[(current + step) % slots.length] as RateSlot;
    if (slot.bytesPerSecond === rate) continue;
    return { bytesPerSecond: rate, next: { at: localTimeAfter(now, slot.minuteOfWeek), bytesPerSecond: slot.bytesPerSecond } };
  }
  return { bytesPerSecond: rate, next: null };
}

/** The first local time after `now` at `minuteOfWeek` (built from the calendar: right across DST changes). */
function localTimeAfter(now: Date, minuteOfWeek: number): Date {
  const day = Math.floor(minuteOfWeek / MINUTES_PER_DAY);
  const minuteOfDay = minuteOfWeek % MINUTES_PER_DAY;
  const nowMinute = now.getHours() * 60 + now.getMinutes();
  let days = (day - now.getDay() + 7) % 7;
  if (days === 0 && minuteOfDay <= nowMinute) days = 7;
  return new Date(now.getFullYear(), now.getMonth(), now.getDate() + days, Math.floor(minuteOfDay / 60), minuteOfDay % 60);
}

/** A limit as options give it: bytes per second, a rate or timetable string, or nothing. */
export function rateScheduleOf(limit: number | string | undefined): RateSchedule | undefined {
  if (limit === undefined) return undefined;
  if (typeof limit === 'string') return parseRateSchedule(limit);
  if (!Number.isSafeInteger(limit) || limit < 0) throw invalid(`rate limit must be a non-negative integer of bytes per second`);
  return { text: String(limit), slots: [{ minuteOfWeek: 0, bytesPerSecond: limit === 0 ? null : limit }] };
}

/**
 * How many background transfers may run under a limit: as many as reaching it takes at the
 * upstream's measured rate per transfer (one while unmeasured: a transfer held back by the limit
 * is never measured, and one that is not held back raises the count). More would only share the
 * same bucket, and each keeps a socket's buffers full that a pre-emption throws away.
 */
export function backgroundTransfers(limit: Rate, perTransferBytesPerMs: number | null, max: number): number {
  if (limit === null) return max;
  if (perTransferBytesPerMs === null || perTransferBytesPerMs <= 0) return 1;
  return Math.max(1, Math.min(max, Math.ceil(limit / (perTransferBytesPerMs * 1000))));
}
