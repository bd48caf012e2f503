/**
 * Small helpers over @azure/data-tables shared by the job, idempotency and checkpoint stores:
 * opening a table (created once), reading a failed request's HTTP status, and storing JSON values
 * larger than one property allows.
 */
import type { TableClient, TableEntity } from '@azure/data-tables';
import { EntityTooLargeError } from './errors.js';
import { tableClient, type StorageClients } from './storage-connection.js';

/*
 * Azure Tables' limits, which Azurite does not enforce: what passes against the emulator must
 * pass in Azure, so stores check them before every write. From "Understanding the Table service
 * data model" (learn.microsoft.com/rest/api/storageservices).
 */
/** A string property holds at most 64 KiB of UTF-16: 32 Ki characters. */
export const MAX_STRING_CHARS = 32 * 1024;
/** An entity holds at most 1 MiB, counted as entitySize() does. */
export const MAX_ENTITY_BYTES = 1024 * 1024;
/** 255 properties, of which PartitionKey, RowKey and Timestamp are three. */
export const MAX_PROPERTIES = 252;

/** Characters per part of a long JSON value: inside MAX_STRING_CHARS, with room to spare. */
const PART_CHARS = 30_000;

/** Opens a table on a storage connection, creating it if missing (once per client). */
export async function openTable(clients: StorageClients, tableName: string): Promise<TableClient> {
  const client = tableClient(clients, tableName);
  await client.createTable();
  return client;
}

/*
 * A table try is cut after STORAGE_TRY_TIMEOUT_MS (storage-connection.ts), but the service may
 * still apply it: the request had arrived, only the answer was late. The SDK's retry of that
 * write then meets the write itself: an insert answers 409 EntityAlreadyExists, a replace on the
 * ETag read before it 412. insertEntity and replaceEntity read the entity back in that case: when
 * it holds exactly what this call wrote, the write is this call's own and succeeded. Every entity
 * the stores write carries a time or an owner of its own (updatedAt, createdAt, a job id), so a
 * rival's write does not hold the same values.
 */

/** Properties a read adds to the ones written. */
const READ_METADATA = new Set(['etag', 'timestamp', 'partitionKey', 'rowKey']);

/** Whether `stored` holds exactly the properties of `written`, and no others. */
function holdsWritten(stored: Record<string, unknown>, written: Record<string, unknown>): boolean {
  const names = Object.keys(written).filter((name) => !READ_METADATA.has(name) && written[name] !== undefined);
  const storedNames = Object.keys(stored).filter((name) => !READ_METADATA.has(name) && !name.startsWith('odata'));
  if (storedNames.length !== names.length) return false;
  return names.every((name) => {
    const value = written[name];
    // A typed value ({value, type: 'Double'}) reads back as its plain value.
    const plain = typeof value === 'object' && value !== null && 'value' in value ? (value as { value: unknown }).value : value;
    const read = stored[name];
    return read === plain || (typeof read === 'object' && read !== null && 'value' in read && String((read as { value: unknown }).value) === String(plain));
  });
}

/** The entity's ETag when it holds exactly what `written` wrote, else undefined (gone or another's). */
async function ownWrite(table: TableClient, written: TableEntity<object>): Promise<string | undefined> {
  try {
    const stored = await table.getEntity<Record<string, unknown>>(written.partitionKey, written.rowKey);
    return holdsWritten(stored, written as Record<string, unknown>) ? stored.etag : undefined;
  } catch (error) {
    if (restStatus(error) === 404) return undefined;
    throw error;
  }
}

/**
 * Inserts `entity` and returns its ETag. A 409 that meets this call's own earlier try (applied
 * after it was cut) is the insert's success; any other failure is thrown as the SDK gave it.
 */
export async function insertEntity<T extends object>(table: TableClient, entity: TableEntity<T>): Promise<string> {
  try {
    return (await table.createEntity(entity)).etag ?? '';
  } catch (error) {
    if (restStatus(error) !== 409) throw error;
    const etag = await ownWrite(table, entity);
    if (etag === undefined) throw error;
    return etag;
  }
}

/**
 * Replaces `entity` if it still has `etag` and returns the new ETag. A 412 that meets this call's
 * own earlier try (applied after it was cut) is the replace's success; any other failure is
 * thrown as the SDK gave it.
 */
export async function replaceEntity<T extends object>(table: TableClient, entity: TableEntity<T>, etag: string): Promise<string> {
  try {
    return (await table.updateEntity(entity, 'Replace', { etag })).etag ?? '';
  } catch (error) {
    if (restStatus(error) !== 412) throw error;
    const own = await ownWrite(table, entity);
    if (own === undefined) throw error;
    return own;
  }
}

/** The HTTP status of a failed storage request, if it was one. */
export function restStatus(error: unknown): number | undefined {
  if (error && typeof error === 'object' && 'statusCode' in error && typeof error.statusCode === 'number') return error.statusCode;
  return undefined;
}

/**
 * Writes `value` as JSON into `name` (and `name_1`, `name_2`… when it is long). The entity's
 * total is left to checkEntityLimits.
 */
export function writeJson(entity: Record<string, unknown>, name: string, value: unknown): void {
  const json = JSON.stringify(value);
  const parts = Math.max(1, Math.ceil(json.length / PART_CHARS));
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

/**
 * The size Azure Tables counts for an entity: 4 bytes, plus 2 per character of PartitionKey and
 * RowKey, plus per property 8 bytes, 2 per character of its name and its value's size (a string
 * 4 + 2 per character, a number 8, a boolean 1). Timestamp, which the service adds, is counted.
 */
export function entitySize(entity: Record<string, unknown> & { partitionKey: string; rowKey: string }): number {
  let size = 4 + (entity.partitionKey.length + entity.rowKey.length) * 2 + propertySize('Timestamp', new Date());
  for (const [name, value] of Object.entries(entity)) {
    if (name === 'partitionKey' || name === 'rowKey' || value === undefined) continue;
    size += propertySize(name, value);
  }
  return size;
}

function propertySize(name: string, value: unknown): number {
  const valueSize = typeof value === 'string' ? 4 + value.length * 2 : typeof value === 'boolean' ? 1 : 8;
  return 8 + name.length * 2 + valueSize;
}

/**
 * Refuses, with EntityTooLargeError, an entity Azure Tables would refuse: a string property over
 * MAX_STRING_CHARS, more than MAX_PROPERTIES properties, or more than MAX_ENTITY_BYTES in all.
 */
export function checkEntityLimits(entity: Record<string, unknown> & { partitionKey: string; rowKey: string }, what: string): void {
  const names = Object.keys(entity).filter((name) => name !== 'partitionKey' && name !== 'rowKey' && entity[name] !== undefined);
  if (names.length > MAX_PROPERTIES) throw new EntityTooLargeError(what, `${names.length} properties (Azure Tables allows ${MAX_PROPERTIES})`);
  for (const name of names) {
    const value = entity[name];
    if (typeof value === 'string' && value.length > MAX_STRING_CHARS) {
      throw new EntityTooLargeError(what, `property ${name} holds ${value.length} characters (Azure Tables allows ${MAX_STRING_CHARS})`);
    }
  }
  const size = entitySize(entity);
  if (size > MAX_ENTITY_BYTES) throw new EntityTooLargeError(what, `${size} bytes (Azure Tables allows ${MAX_ENTITY_BYTES})`);
}
