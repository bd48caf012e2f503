/**
 * Small helpers over @azure/data-tables shared by the job, idempotency and checkpoint stores:
 * opening a table (created once), reading a failed request's HTTP status, and storing JSON values
 * larger than one property allows.
 */
import { TableClient } from '@azure/data-tables';

/** A string property holds at most 64 KiB of UTF-16: 32 Ki characters. Leave room. */
const PART_CHARS = 30_000;
/** An entity holds at most 1 MiB; 20 parts of 60 KB keep well inside it with the other columns. */
const MAX_PARTS = 20;

/** Opens a table on a connection string, creating it if missing (once per client). */
export async function openTable(connectionString: string, tableName: string): Promise<TableClient> {
  // Azurite and other loopback emulators speak plain HTTP; the SDK refuses that unless told.
  const client = TableClient.fromConnectionString(connectionString, tableName, { allowInsecureConnection: true });
  await client.createTable();
  return client;
}

/** The HTTP status of a failed storage request, if it was one. */
export function restStatus(error: unknown): number | undefined {
  if (error && typeof error === 'object' && 'statusCode' in error && typeof error.statusCode === 'number') return error.statusCode;
  return undefined;
}

/** Writes `value` as JSON into `name` (and `name_1`, `name_2`… when it is long). */
export function writeJson(entity: Record<string, unknown>, name: string, value: unknown): void {
  const json = JSON.stringify(value);
  const parts = Math.max(1, Math.ceil(json.length / PART_CHARS));
  if (parts > MAX_PARTS) throw new Error(`${name} is too large to store (${json.length} characters)`);
  entity[name] = json.slice(0, PART_CHARS);
  for (let i = 1; i < parts; i++) entity[`${name}_${i}`] = json.slice(i * PART_CHARS, (i + 1) * PART_CHARS);
}

/** Reads a value written by writeJson; `fallback` when the column is absent. */
export function readJson<T>(entity: Record<string, unknown>, name: string, fallback: T): T {
  const head = entity[name];
  if (typeof head !== 'string') return fallback;
  let json = head;
  for (let i = 1; typeof entity[`${name}_${i}`] === 'string'; i++) json += entity[`${name}_${i}`] as string;
  return JSON.parse(json) as T;
}
