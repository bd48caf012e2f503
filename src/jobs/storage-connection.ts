/**
 * How Hoist reaches its storage account, by the Functions convention for the `AzureWebJobsStorage`
 * connection: a connection string (Azurite, or an account key), or an identity-based connection
 * (`AzureWebJobsStorage__accountName`, or `__queueServiceUri` and `__tableServiceUri`, with
 * `__credential: managedidentity` and `__clientId` for a user-assigned identity). The host's
 * queue trigger reads the same settings, so Hoist's own table and queue clients use the same
 * account with the same identity.
 */
import { RestError, TableClient, type TableServiceClientOptions } from '@azure/data-tables';
import { DefaultAzureCredential, ManagedIdentityCredential, type TokenCredential } from '@azure/identity';
import { QueueServiceClient, type QueueClient } from '@azure/storage-queue';
import { ConfigurationError } from './errors.js';
import { SharedTokenCredential } from './shared-token.js';

/** An identity-based connection, as settings give it: data only, so it can key a cache. */
export interface IdentityConnection {
  queueServiceUri: string;
  tableServiceUri: string;
  /** `managedidentity` (`__credential`); otherwise DefaultAzureCredential, as the host does. */
  credential: 'managedidentity' | 'default';
  /** `__clientId`: the user-assigned identity's client id. */
  clientId?: string;
}

/** The storage connection a setting names. */
export type StorageConnection = { connectionString: string } | { identity: IdentityConnection };

type Env = Record<string, string | undefined>;

const ACCOUNT_NAME = /^[a-z0-9]{3,24}$/;

/**
 * Reads the connection named `name` (`AzureWebJobsStorage`): its connection string when set,
 * else its identity-based settings. Throws ConfigurationError naming the setting that is
 * missing or wrong.
 */
export function readStorageConnection(env: Env, name: string): StorageConnection {
  const value = (key: string) => {
    const v = env[key]?.trim();
    return v ? v : undefined;
  };
  const connectionString = value(name);
  if (connectionString) return { connectionString };
  const accountName = value(`${name}__accountName`);
  const queueUri = value(`${name}__queueServiceUri`);
  const tableUri = value(`${name}__tableServiceUri`);
  if (!accountName && !queueUri && !tableUri) {
    throw new ConfigurationError(
      name,
      `${name} is not set: give a storage connection string (UseDevelopmentStorage=true for Azurite), or connect with an identity through ${name}__accountName (or ${name}__queueServiceUri and ${name}__tableServiceUri)`,
    );
  }
  if (accountName && !ACCOUNT_NAME.test(accountName)) {
    throw new ConfigurationError(`${name}__accountName`, `${name}__accountName "${accountName}" is not a storage account name: 3 to 24 lowercase letters and digits`);
  }
  const serviceUri = (service: 'queue' | 'table', given: string | undefined): string => {
    const setting = `${name}__${service}ServiceUri`;
    if (given === undefined) {
      if (!accountName) throw new ConfigurationError(setting, `${setting} is not set: Hoist needs both the queue and the table service (or give ${name}__accountName)`);
      return `https://${accountName}.${service}.core.windows.net`;
    }
    let url: URL | undefined;
    try {
      url = new URL(given);
    } catch {
      url = undefined;
    }
    // Bearer tokens go over HTTPS only (the storage SDKs refuse anything else).
    if (url?.protocol !== 'https:' || url.search !== '' || url.hash !== '') {
      throw new ConfigurationError(setting, `${setting} "${given}" is not an https service URL such as https://myaccount.${service}.core.windows.net`);
    }
    return given.replace(/\/+$/, '');
  };
  const credential = value(`${name}__credential`);
  if (credential !== undefined && credential.toLowerCase() !== 'managedidentity') {
    throw new ConfigurationError(`${name}__credential`, `${name}__credential "${credential}" is not supported: give managedidentity, or leave it unset for DefaultAzureCredential`);
  }
  const clientId = value(`${name}__clientId`);
  return {
    identity: {
      queueServiceUri: serviceUri('queue', queueUri),
      tableServiceUri: serviceUri('table', tableUri),
      credential: credential === undefined ? 'default' : 'managedidentity',
      ...(clientId !== undefined && { clientId }),
    },
  };
}

/** The credential of an identity-based connection. */
export function connectionCredential(identity: IdentityConnection): TokenCredential {
  if (identity.credential === 'managedidentity') {
    return identity.clientId === undefined ? new ManagedIdentityCredential() : new ManagedIdentityCredential({ clientId: identity.clientId });
  }
  return new DefaultAzureCredential(identity.clientId === undefined ? {} : { managedIdentityClientId: identity.clientId });
}

/** A connection ready to make clients: a connection string, or service URLs and one credential. */
export type StorageClients = { connectionString: string } | { queueServiceUri: string; tableServiceUri: string; credential: TokenCredential };

/**
 * Turns a connection into one whose credential is made, wrapped so that every client made from
 * the result shares its tokens (shared-token.ts). Clients made from another call's result have a
 * credential of their own: make this once per connection and give it to every store.
 * Clients already made are returned as they are.
 */
export function storageClients(connection: StorageConnection | StorageClients | string): StorageClients {
  if (typeof connection === 'string') return { connectionString: connection };
  if (!('identity' in connection)) return connection;
  const { identity } = connection;
  return { queueServiceUri: identity.queueServiceUri, tableServiceUri: identity.tableServiceUri, credential: new SharedTokenCredential(connectionCredential(identity)) };
}

/*
 * How long one storage call may take. The SDKs' defaults retry an unreachable account for about
 * 5 s (tables: 3 retries from 1 s; queues: 4 tries from 4 s), and wait without limit on one that
 * accepts connections but does not answer, so an HTTP request waited that long before its 503.
 * Each of Hoist's calls is small (an entity, a message), so a try that takes a second is already
 * an outage: two tries of at most STORAGE_TRY_TIMEOUT_MS each, STORAGE_RETRY_DELAY_MS apart,
 * answer a caller within about 2 s (a queue call has the same bound as a whole, boundedQueueCall). The worker's calls share the bound; its queue message brings
 * it back after a failed attempt.
 */
/** The tries of one storage call: the first and one retry. */
export const STORAGE_MAX_TRIES = 2;
/** The longest one try of a table call waits for an answer. */
export const STORAGE_TRY_TIMEOUT_MS = 1000;
/** The pause before the retry. */
export const STORAGE_RETRY_DELAY_MS = 200;

type TablePolicy = NonNullable<TableServiceClientOptions['additionalPolicies']>[number]['policy'];

/**
 * Gives each try of a table call STORAGE_TRY_TIMEOUT_MS. The HTTP client's own timeout aborts the
 * request with an AbortError, which the SDK's retry policy neither retries nor reports as a
 * storage failure; this turns it into the RestError (ETIMEDOUT) that a socket timeout gives, which
 * the retry policy retries and the API answers with 503 (http-errors.ts).
 */
const tableTryTimeout: TablePolicy = {
  name: 'hoistTableTryTimeout',
  async sendRequest(request, next) {
    request.timeout = STORAGE_TRY_TIMEOUT_MS;
    try {
      return await next(request);
    } catch (error) {
      // A caller's own abort stays an abort.
      if (error instanceof Error && error.name === 'AbortError' && !request.abortSignal?.aborted) {
        throw new RestError(`no answer from the table service within ${STORAGE_TRY_TIMEOUT_MS} ms`, { code: 'ETIMEDOUT', request });
      }
      throw error;
    }
  },
};

const TABLE_OPTIONS: TableServiceClientOptions = {
  retryOptions: { maxRetries: STORAGE_MAX_TRIES - 1, retryDelayInMs: STORAGE_RETRY_DELAY_MS, maxRetryDelayInMs: STORAGE_RETRY_DELAY_MS },
  additionalPolicies: [{ policy: tableTryTimeout, position: 'perRetry' }],
};

const QUEUE_OPTIONS = { retryOptions: { maxTries: STORAGE_MAX_TRIES, retryDelayInMs: STORAGE_RETRY_DELAY_MS, maxRetryDelayInMs: STORAGE_RETRY_DELAY_MS } };

/** The longest one queue call waits, its retry included: the table calls' bound. */
export const QUEUE_CALL_TIMEOUT_MS = STORAGE_MAX_TRIES * STORAGE_TRY_TIMEOUT_MS + STORAGE_RETRY_DELAY_MS;

/**
 * Runs one queue call under QUEUE_CALL_TIMEOUT_MS. The queue SDK's retry policy has no
 * client-side try timeout (its tryTimeoutInMs only asks the service to give up), so the call
 * takes an abort signal instead; an abort by this deadline becomes the RestError (ETIMEDOUT) a
 * socket timeout gives, which the API answers with 503 (http-errors.ts).
 */
export async function boundedQueueCall<T>(call: (abortSignal: AbortSignal) => Promise<T>): Promise<T> {
  const deadline = AbortSignal.timeout(QUEUE_CALL_TIMEOUT_MS);
  try {
    return await call(deadline);
  } catch (error) {
    if (deadline.aborted && error instanceof Error && error.name === 'AbortError') {
      throw new RestError(`no answer from the queue service within ${QUEUE_CALL_TIMEOUT_MS} ms`, { code: 'ETIMEDOUT' });
    }
    throw error;
  }
}

/** A table client on the connection. */
export function tableClient(clients: StorageClients, tableName: string): TableClient {
  // Azurite and other loopback emulators speak plain HTTP; the SDK refuses that unless told.
  if ('connectionString' in clients) return TableClient.fromConnectionString(clients.connectionString, tableName, { ...TABLE_OPTIONS, allowInsecureConnection: true });
  return new TableClient(clients.tableServiceUri, tableName, clients.credential, TABLE_OPTIONS);
}

/** A queue client on the connection. */
export function queueClient(clients: StorageClients, queueName: string): QueueClient {
  const service =
    'connectionString' in clients ? QueueServiceClient.fromConnectionString(clients.connectionString, QUEUE_OPTIONS) : new QueueServiceClient(clients.queueServiceUri, clients.credential, QUEUE_OPTIONS);
  return service.getQueueClient(queueName);
}
