/**
 * Job ids that sort newest first: 11 base-36 digits of (latest JavaScript time − creation time),
 * then 8 random base-36 digits. Used as the table RowKey, so a plain partition scan lists recent
 * jobs first and a GET is a point read.
 */
import { randomBytes } from 'node:crypto';

/** The largest JavaScript timestamp (ms), so `MAX_TIME - now` stays positive until year 275760. */
const MAX_TIME = 8_640_000_000_000_000;
const TIME_DIGITS = 11;
const RANDOM_DIGITS = 8;
const JOB_ID = /^[0-9a-z]{19}$/;

/** A new job id for a job created at `now`. */
export function newJobId(now: Date = new Date()): string {
  const inverted = (MAX_TIME - now.getTime()).toString(36).padStart(TIME_DIGITS, '0');
  // 5 random bytes (2^40) fit in 8 base-36 digits (36^8 ≈ 2.8e12).
  const random = Number(BigInt(`0x${randomBytes(5).toString('hex')}`)).toString(36).padStart(RANDOM_DIGITS, '0');
  return `${inverted}${random}`;
}

/** Whether a string has the shape of a job id (checked before it reaches storage). */
export function isJobId(value: string): boolean {
  return JOB_ID.test(value);
}

/** When the job with this id was created. */
export function jobIdTime(id: string): Date {
  return new Date(MAX_TIME - parseInt(id.slice(0, TIME_DIGITS), 36));
}
