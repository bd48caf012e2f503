/**
 * How Hoist reaches its storage account, by the Functions convention for the `AzureWebJobsStorage`
 * connection: a connection string (Azurite, or an account key), or an identity-based connection
 * (`AzureWebJobsStorage__accountName`, or `__queueServiceUri` and `__tableServiceUri`, with
 * `__credential: managedidentity` and `__clientId` for a user-assigned identity). The host's
 * queue trigger reads the same settings, so Hoist's own table and queue clients use the same
 * account with the same identity.
 */
import { TableClient } from '@azure/data-tables';
import { DefaultAzureCredential, ManagedIdentityCredential, type TokenCredential } from '@azure/identity';
import { QueueServiceClient, type QueueClient } from '@azure/storage-queue';
import { ConfigurationError } from './errors.js';

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

/** Turns a connection into one whose credential is made (once: its token cache serves every client). */
export function storageClients(connection: StorageConnection | string): StorageClients {
  if (typeof connection === 'string') return { connectionString: connection };
  if ('connectionString' in connection) return connection;
  const { identity } = connection;
  return { queueServiceUri: identity.queueServiceUri, tableServiceUri: identity.tableServiceUri, credential: connectionCredential(identity) };
}

/** A table client on the connection. */
export function tableClient(clients: StorageClients, tableName: string): TableClient {
  // Azurite and other loopback emulators speak plain HTTP; the SDK refuses that unless told.
  if ('connectionString' in clients) return TableClient.fromConnectionString(clients.connectionString, tableName, { allowInsecureConnection: true });
  return new TableClient(clients.tableServiceUri, tableName, clients.credential);
}

/** A queue client on the connection. */
export function queueClient(clients: StorageClients, queueName: string): QueueClient {
  const service = 'connectionString' in clients ? QueueServiceClient.fromConnectionString(clients.connectionString) : new QueueServiceClient(clients.queueServiceUri, clients.credential);
  return service.getQueueClient(queueName);
}
