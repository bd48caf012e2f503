import { DefaultAzureCredential, ManagedIdentityCredential } from '@azure/identity';
import { ConfigurationError } from '../../src/jobs/errors.js';
import { Settings } from '../../src/jobs/settings.js';
import { connectionCredential, queueClient, storageClients, tableClient } from '../../src/jobs/storage-connection.js';

const CLIENT_ID = '6f1b2c3d-0000-4000-8000-00000000abcd';

describe('AzureWebJobsStorage, by the Functions convention', () => {
  it.each<[string, Record<string, string>, unknown]>([
    ['a connection string wins over identity settings', { AzureWebJobsStorage: 'UseDevelopmentStorage=true', AzureWebJobsStorage__accountName: 'hoiststore' }, { connectionString: 'UseDevelopmentStorage=true' }],
    [
      'an account name: the public cloud endpoints, DefaultAzureCredential',
      { AzureWebJobsStorage__accountName: 'hoiststore' },
      { identity: { queueServiceUri: 'https://hoiststore.queue.core.windows.net', tableServiceUri: 'https://hoiststore.table.core.windows.net', credential: 'default' } },
    ],
    [
      'service URIs (a sovereign cloud, a private endpoint) and a user-assigned identity',
      {
        AzureWebJobsStorage__queueServiceUri: 'https://hoiststore.queue.core.chinacloudapi.cn/',
        AzureWebJobsStorage__tableServiceUri: 'https://hoiststore.table.core.chinacloudapi.cn',
        AzureWebJobsStorage__blobServiceUri: 'https://hoiststore.blob.core.chinacloudapi.cn',
        AzureWebJobsStorage__credential: 'managedidentity',
        AzureWebJobsStorage__clientId: CLIENT_ID,
      },
      { identity: { queueServiceUri: 'https://hoiststore.queue.core.chinacloudapi.cn', tableServiceUri: 'https://hoiststore.table.core.chinacloudapi.cn', credential: 'managedidentity', clientId: CLIENT_ID } },
    ],
    [
      'one service URI beside the account name',
      { AzureWebJobsStorage__accountName: 'hoiststore', AzureWebJobsStorage__tableServiceUri: 'https://tables.example.net', AzureWebJobsStorage__credential: 'ManagedIdentity' },
      { identity: { queueServiceUri: 'https://hoiststore.queue.core.windows.net', tableServiceUri: 'https://tables.example.net', credential: 'managedidentity' } },
    ],
  ])('%s', (_case, env, expected) => {
    expect(new Settings(env).storage).toEqual(expected);
  });

  it.each<[string, Record<string, string>, string, RegExp]>([
    ['nothing set', {}, 'AzureWebJobsStorage', /AzureWebJobsStorage is not set: .*AzureWebJobsStorage__accountName/],
    ['a malformed account name', { AzureWebJobsStorage__accountName: 'Hoist_Store' }, 'AzureWebJobsStorage__accountName', /"Hoist_Store" is not a storage account name/],
    ['a queue URI alone', { AzureWebJobsStorage__queueServiceUri: 'https://a.queue.core.windows.net' }, 'AzureWebJobsStorage__tableServiceUri', /AzureWebJobsStorage__tableServiceUri is not set/],
    [
      'a plain-http service URI',
      { AzureWebJobsStorage__queueServiceUri: 'http://127.0.0.1:10001/devstoreaccount1', AzureWebJobsStorage__tableServiceUri: 'https://a.table.core.windows.net' },
      'AzureWebJobsStorage__queueServiceUri',
      /is not an https service URL/,
    ],
    ['another credential kind', { AzureWebJobsStorage__accountName: 'hoiststore', AzureWebJobsStorage__credential: 'clientsecret' }, 'AzureWebJobsStorage__credential', /"clientsecret" is not supported: give managedidentity/],
  ])('refuses %s, naming the setting', (_case, env, setting, message) => {
    let error: unknown;
    try {
      void new Settings(env).storage;
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(ConfigurationError);
    expect((error as ConfigurationError).setting).toBe(setting);
    expect((error as Error).message).toMatch(message);
  });

  it('makes the credential the settings name, and clients on the service URIs with it', () => {
    expect(connectionCredential({ queueServiceUri: 'https://q', tableServiceUri: 'https://t', credential: 'managedidentity', clientId: CLIENT_ID })).toBeInstanceOf(ManagedIdentityCredential);
    expect(connectionCredential({ queueServiceUri: 'https://q', tableServiceUri: 'https://t', credential: 'default' })).toBeInstanceOf(DefaultAzureCredential);
    const clients = storageClients(new Settings({ AzureWebJobsStorage__accountName: 'hoiststore', AzureWebJobsStorage__credential: 'managedidentity' }).storage);
    expect(tableClient(clients, 'hoistjobs').url).toBe('https://hoiststore.table.core.windows.net');
    expect(queueClient(clients, 'imports').url).toBe('https://hoiststore.queue.core.windows.net/imports');
  });
});
