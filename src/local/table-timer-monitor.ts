/**
 * A {@link TimerMonitor} kept in Azure Table storage (Azurite locally): one entity per timer
 * function holding the last occurrence run and the next one due. Claims are optimistic-concurrency
 * updates carrying the ETag that was read, so when several local hosts reach the same occurrence,
 * exactly one update succeeds and only that host runs it. (On Azure the host does the same with a
 * blob lease and a status blob under `azure-webjobs-hosts/timers`.)
 */
import type { TableClient, TableEntityResult } from '@azure/data-tables';
import { tableClient, type StorageClients } from '../jobs/storage-connection.js';
import type { TimerMonitor } from './timer-scheduler.js';

/** The table holding timer status; local-host only, so it cannot clash with the app's tables. */
export const TIMER_STATUS_TABLE = 'LocalHostTimerStatus';

const PARTITION = 'timers';

interface TimerStatusEntity {
  last: string;
  next?: string;
}

/** Timer status in a storage table. */
export class TableTimerMonitor implements TimerMonitor {
  #ready: Promise<void> | undefined;

  private constructor(private readonly table: TableClient) {}

  /** A monitor on {@link TIMER_STATUS_TABLE} in the account of a connection string or an identity-based connection. */
  static on(clients: StorageClients): TableTimerMonitor {
    return new TableTimerMonitor(tableClient(clients, TIMER_STATUS_TABLE));
  }

  async read(functionName: string): Promise<{ last: Date; next?: Date } | undefined> {
    const entity = await this.#get(functionName);
    if (!entity) return undefined;
    return { last: new Date(entity.last), next: entity.next ? new Date(entity.next) : undefined };
  }

  async claim(functionName: string, occurrence: Date, next: Date | undefined): Promise<boolean> {
    const entity = await this.#get(functionName);
    if (entity && new Date(entity.last).getTime() >= occurrence.getTime()) return false;
    const update = {
      partitionKey: PARTITION,
      rowKey: rowKeyFor(functionName),
      last: occurrence.toISOString(),
      next: next?.toISOString() ?? '',
    };
    try {
      if (entity) {
        await this.table.updateEntity(update, 'Replace', { etag: entity.etag });
      } else {
        await this.table.createEntity(update);
      }
      return true;
    } catch (error) {
      // 412: another host updated it since we read; 409: another host created it first.
      const status = (error as { statusCode?: number }).statusCode;
      if (status === 412 || status === 409) return false;
      throw error;
    }
  }

  async #get(functionName: string): Promise<TableEntityResult<TimerStatusEntity> | undefined> {
    this.#ready ??= this.table.createTable().then(() => undefined);
    await this.#ready;
    try {
      return await this.table.getEntity<TimerStatusEntity>(PARTITION, rowKeyFor(functionName));
    } catch (error) {
      if ((error as { statusCode?: number }).statusCode === 404) return undefined;
      throw error;
    }
  }
}

// Row keys may not contain / \ # ?; function names never should, but be safe.
function rowKeyFor(functionName: string): string {
  return functionName.toLowerCase().replace(/[/\\#?]/g, '_');
}
