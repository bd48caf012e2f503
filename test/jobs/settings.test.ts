import { ConfigurationError } from '../../src/jobs/errors.js';
import { Settings } from '../../src/jobs/settings.js';

type Env = Record<string, string | undefined>;
type Getter = (s: Settings) => unknown;

const get: Record<string, Getter> = {
  storage: (s) => s.storage,
  target: (s) => s.targetRegistries,
  targetCredentials: (s) => s.targetCredentials,
  apiKey: (s) => s.apiKey,
  secretKey: (s) => s.secretKey,
  budget: (s) => s.timeBudgetInMs,
  lease: (s) => s.leaseDurationInMs,
  chunk: (s) => s.chunkSizeInBytes,
  concurrency: (s) => s.concurrency,
  jobsTable: (s) => s.jobsTable,
  checkpointsTable: (s) => s.checkpointsTable,
  allowedPrivate: (s) => s.allowedPrivateRegistries,
  allowedSources: (s) => s.allowedSources,
  retry: (s) => s.retryAttempts,
  maxManifests: (s) => s.maxManifests,
  hosts: (s) => s.registryHosts,
  acrAudience: (s) => s.acrAudience,
  armEndpoint: (s) => s.armEndpoint,
  armAudience: (s) => s.armAudience,
};

describe('Settings', () => {
  it.each<[string, Env, string, unknown]>([
    ['AzureWebJobsStorage', { AzureWebJobsStorage: ' UseDevelopmentStorage=true ' }, 'storage', { connectionString: 'UseDevelopmentStorage=true' }],
    ['HOIST_TARGET_REGISTRY host', { HOIST_TARGET_REGISTRY: 'myregistry.azurecr.io' }, 'target', ['myregistry.azurecr.io']],
    ['HOIST_TARGET_REGISTRY host:port', { HOIST_TARGET_REGISTRY: 'localhost:5000' }, 'target', ['localhost:5000']],
    ['HOIST_TARGET_REGISTRY index.docker.io', { HOIST_TARGET_REGISTRY: 'index.docker.io' }, 'target', ['docker.io']],
    ['HOIST_TARGET_REGISTRY list, the default first', { HOIST_TARGET_REGISTRY: ' b.azurecr.io, localhost:5000,b.azurecr.io ' }, 'target', ['b.azurecr.io', 'localhost:5000']],
    ['the default HOIST_MAX_MANIFESTS', {}, 'maxManifests', 50],
    ['HOIST_MAX_MANIFESTS', { HOIST_MAX_MANIFESTS: '5000' }, 'maxManifests', 5000],
    ['HOIST_TARGET_LAYOUTS without a registry (npm start)', { HOIST_TARGET_REGISTRY: '', HOIST_TARGET_LAYOUTS: '/p/.hoist/oci' }, 'target', ['oci:/p/.hoist/oci']],
    ['HOIST_TARGET_REGISTRY over HOIST_TARGET_LAYOUTS', { HOIST_TARGET_REGISTRY: 'r.example', HOIST_TARGET_LAYOUTS: '/p/.hoist/oci' }, 'target', ['r.example']],
    ['no target credentials', {}, 'targetCredentials', undefined],
    ['target credentials', { HOIST_TARGET_USERNAME: 'u', HOIST_TARGET_PASSWORD: 'p w' }, 'targetCredentials', { username: 'u', password: 'p w' }],
    ['no API key', { HOIST_API_KEY: '' }, 'apiKey', undefined],
    ['an API key', { HOIST_API_KEY: 'k' }, 'apiKey', 'k'],
    ['an empty secret key is unset', { HOIST_SECRET_KEY: '  ' }, 'secretKey', undefined],
    ['the default time budget', {}, 'budget', 480_000],
    ['a time budget', { HOIST_TIME_BUDGET_SECONDS: '90' }, 'budget', 90_000],
    ['a fractional time budget', { HOIST_TIME_BUDGET_SECONDS: '1.5' }, 'budget', 1500],
    ['the default lease', { HOIST_JOB_LEASE_SECONDS: '' }, 'lease', 60_000],
    ['the engine default chunk size', {}, 'chunk', undefined],
    ['a chunk size', { HOIST_CHUNK_SIZE_BYTES: '1048576' }, 'chunk', 1_048_576],
    ['a concurrency', { HOIST_CONCURRENCY: '8' }, 'concurrency', 8],
    ['the default jobs table', {}, 'jobsTable', 'hoistjobs'],
    ['the default retry attempts', {}, 'retry', 5],
    ['retry attempts', { HOIST_RETRY_ATTEMPTS: '9' }, 'retry', 9],
    [
      'the registry hosts settings',
      { HOIST_RETRY_ATTEMPTS: '2', HOIST_INSECURE_REGISTRIES: 'Reg.example:5000, other.example' },
      'hosts',
      { retry: { maxAttempts: 2, baseDelayInMs: 200, maxDelayInMs: 30_000 }, insecureRegistries: ['reg.example:5000', 'other.example'], httpsRegistries: [], tlsSkipVerify: [], proxy: {}, maxRequestsPerHost: 32 },
    ],
    [
      'the registry hosts TLS settings',
      { HOIST_HTTPS_REGISTRIES: '127.0.0.1:5443', HOIST_TLS_SKIP_VERIFY: 'Lab.example:5000, 127.0.0.1:5443' },
      'hosts',
      { retry: { maxAttempts: 5, baseDelayInMs: 200, maxDelayInMs: 30_000 }, insecureRegistries: [], httpsRegistries: ['127.0.0.1:5443'], tlsSkipVerify: ['lab.example:5000', '127.0.0.1:5443'], proxy: {}, maxRequestsPerHost: 32 },
    ],
    [
      'the registry hosts proxy settings, lower-case names first',
      { HTTPS_PROXY: 'http://proxy.corp:3128', https_proxy: 'http://lower.corp:3128', NO_PROXY: 'localhost,.internal', HOIST_MAX_REQUESTS_PER_HOST: '4' },
      'hosts',
      {
        retry: { maxAttempts: 5, baseDelayInMs: 200, maxDelayInMs: 30_000 },
        insecureRegistries: [],
        httpsRegistries: [],
        tlsSkipVerify: [],
        proxy: { httpsProxy: { name: 'https_proxy', value: 'http://lower.corp:3128' }, noProxy: { name: 'NO_PROXY', value: 'localhost,.internal' } },
        maxRequestsPerHost: 4,
      },
    ],
    ['a checkpoints table', { HOIST_CHECKPOINTS_TABLE: 'Checkpoints2' }, 'checkpointsTable', 'Checkpoints2'],
    ['no allowed private registries', {}, 'allowedPrivate', []],
    ['allowed private registries', { HOIST_ALLOWED_PRIVATE_REGISTRIES: ' Registry.Internal:5000, 10.0.0.5 ,localhost,[::1]:5000' }, 'allowedPrivate', ['registry.internal:5000', '10.0.0.5', 'localhost', '[::1]:5000']],
    ['the sample settings\' loopback list', { HOIST_ALLOWED_PRIVATE_REGISTRIES: 'localhost,127.0.0.1,[::1]' }, 'allowedPrivate', ['localhost', '127.0.0.1', '[::1]']],
    ['no allowed sources (any)', { HOIST_ALLOWED_SOURCES: ' ' }, 'allowedSources', undefined],
    ['allowed sources', { HOIST_ALLOWED_SOURCES: 'docker.io,*.azurecr.io,ghcr.io:443' }, 'allowedSources', ['docker.io', '*.azurecr.io', 'ghcr.io:443']],
    ['public Azure\'s ACR audience and ARM by default', {}, 'acrAudience', 'https://containerregistry.azure.net'],
    ['the default ARM endpoint', {}, 'armEndpoint', 'https://management.azure.com'],
    ['a sovereign cloud\'s ARM endpoint, its trailing / dropped', { HOIST_ARM_ENDPOINT: 'https://management.chinacloudapi.cn/' }, 'armEndpoint', 'https://management.chinacloudapi.cn'],
    ['the ARM audience from the endpoint', { HOIST_ARM_ENDPOINT: 'https://management.usgovcloudapi.net' }, 'armAudience', 'https://management.usgovcloudapi.net'],
    ['an ARM audience', { HOIST_ARM_AUDIENCE: 'https://management.core.windows.net/' }, 'armAudience', 'https://management.core.windows.net'],
  ])('reads %s', (_name, env, getter, expected) => {
    expect(get[getter]!(new Settings(env))).toEqual(expected);
  });

  it.each<[string, Env, string, string, RegExp]>([
    ['a missing storage connection', {}, 'storage', 'AzureWebJobsStorage', /AzureWebJobsStorage is not set: give a storage connection string/],
    ['a missing target registry', {}, 'target', 'HOIST_TARGET_REGISTRY', /HOIST_TARGET_REGISTRY is not set/],
    ['a target registry with a path', { HOIST_TARGET_REGISTRY: 'myregistry.azurecr.io/x' }, 'target', 'HOIST_TARGET_REGISTRY', /is not a registry host\[:port\]/],
    ['a target registry with a port out of range', { HOIST_TARGET_REGISTRY: 'localhost:99999' }, 'target', 'HOIST_TARGET_REGISTRY', /"localhost:99999" is not a registry host\[:port\]/],
    ['a target registry list with a bad entry', { HOIST_TARGET_REGISTRY: 'a.azurecr.io,,b.azurecr.io' }, 'target', 'HOIST_TARGET_REGISTRY', /entry "" is not a registry host\[:port\]/],
    ['a HOIST_MAX_MANIFESTS of 0', { HOIST_MAX_MANIFESTS: '0' }, 'maxManifests', 'HOIST_MAX_MANIFESTS', /must be a whole number of at least 1/],
    ['a target registry with a scheme', { HOIST_TARGET_REGISTRY: 'https://myregistry.azurecr.io' }, 'target', 'HOIST_TARGET_REGISTRY', /is not a registry host\[:port\]/],
    ['a target username alone', { HOIST_TARGET_USERNAME: 'u' }, 'targetCredentials', 'HOIST_TARGET_PASSWORD', /must be set together/],
    ['a target password alone', { HOIST_TARGET_PASSWORD: 'p' }, 'targetCredentials', 'HOIST_TARGET_USERNAME', /must be set together/],
    ['a zero time budget', { HOIST_TIME_BUDGET_SECONDS: '0' }, 'budget', 'HOIST_TIME_BUDGET_SECONDS', /"0" must be a positive number of seconds/],
    ['a negative lease', { HOIST_JOB_LEASE_SECONDS: '-5' }, 'lease', 'HOIST_JOB_LEASE_SECONDS', /must be a positive number of seconds/],
    ['a time budget in words', { HOIST_TIME_BUDGET_SECONDS: 'ten' }, 'budget', 'HOIST_TIME_BUDGET_SECONDS', /"ten" must be a positive number of seconds/],
    ['a time budget in exponent notation', { HOIST_TIME_BUDGET_SECONDS: '1e3' }, 'budget', 'HOIST_TIME_BUDGET_SECONDS', /"1e3" must be a positive number of seconds, in decimal digits/],
    ['a lease in hex', { HOIST_JOB_LEASE_SECONDS: '0x3c' }, 'lease', 'HOIST_JOB_LEASE_SECONDS', /in decimal digits/],
    ['a fractional chunk size', { HOIST_CHUNK_SIZE_BYTES: '1.5' }, 'chunk', 'HOIST_CHUNK_SIZE_BYTES', /"1.5" must be a whole number of at least 1/],
    ['a CA file that is not there', { HOIST_CA_FILE: '/nonexistent/hoist-ca.pem' }, 'hosts', 'HOIST_CA_FILE', /HOIST_CA_FILE "\/nonexistent\/hoist-ca.pem" cannot be read \(ENOENT\): give a file of PEM certificates/],
    ['a proxy that is not http', { HTTPS_PROXY: 'socks5://proxy.corp:1080' }, 'hosts', 'HTTPS_PROXY', /HTTPS_PROXY names a socks5 proxy: only http:\/\/ and https:\/\/ proxies are supported/],
    ['a NO_PROXY range that is not one', { no_proxy: '10.0.0.0/40' }, 'hosts', 'no_proxy', /no_proxy entry "10.0.0.0\/40" is not a CIDR range/],
    ['zero requests per host', { HOIST_MAX_REQUESTS_PER_HOST: '0' }, 'hosts', 'HOIST_MAX_REQUESTS_PER_HOST', /must be a whole number of at least 1/],
    ['zero retry attempts', { HOIST_RETRY_ATTEMPTS: '0' }, 'retry', 'HOIST_RETRY_ATTEMPTS', /must be a whole number of at least 1/],
    ['too many retry attempts', { HOIST_RETRY_ATTEMPTS: '21' }, 'retry', 'HOIST_RETRY_ATTEMPTS', /"21" must be a whole number from 1 to 20/],
    ['a zero concurrency', { HOIST_CONCURRENCY: '0' }, 'concurrency', 'HOIST_CONCURRENCY', /must be a whole number of at least 1/],
    ['a concurrency in exponent notation', { HOIST_CONCURRENCY: '1e1' }, 'concurrency', 'HOIST_CONCURRENCY', /"1e1" must be a whole number of at least 1, in decimal digits/],
    ['a chunk size in hex', { HOIST_CHUNK_SIZE_BYTES: '0x100000' }, 'chunk', 'HOIST_CHUNK_SIZE_BYTES', /in decimal digits/],
    ['a table name with a dash', { HOIST_JOBS_TABLE: 'hoist-jobs' }, 'jobsTable', 'HOIST_JOBS_TABLE', /is not a table name: 3 to 63 letters and digits, starting with a letter/],
    ['a table name too short', { HOIST_CHECKPOINTS_TABLE: 'ab' }, 'checkpointsTable', 'HOIST_CHECKPOINTS_TABLE', /is not a table name/],
    ['a table name starting with a digit', { HOIST_JOBS_TABLE: '1jobs' }, 'jobsTable', 'HOIST_JOBS_TABLE', /is not a table name/],
    ['an allowed private registry with a scheme', { HOIST_ALLOWED_PRIVATE_REGISTRIES: 'localhost,http://10.0.0.5' }, 'allowedPrivate', 'HOIST_ALLOWED_PRIVATE_REGISTRIES', /entry "http:\/\/10.0.0.5" is not a host\[:port\] \(for example/],
    ['an allowed private registry with a wildcard', { HOIST_ALLOWED_PRIVATE_REGISTRIES: '*.internal' }, 'allowedPrivate', 'HOIST_ALLOWED_PRIVATE_REGISTRIES', /entry "\*.internal" is not a host\[:port\]/],
    ['an allowed private registry with credentials in it', { HOIST_ALLOWED_PRIVATE_REGISTRIES: 'localhost,user:s3cret@10.0.0.5' }, 'allowedPrivate', 'HOIST_ALLOWED_PRIVATE_REGISTRIES', /entry "\*\*\*@10.0.0.5" is not a host\[:port\]/],
    ['a target registry with credentials in it', { HOIST_TARGET_REGISTRY: 'user:s3cret@myregistry.azurecr.io' }, 'target', 'HOIST_TARGET_REGISTRY', /entry "\*\*\*@myregistry.azurecr.io" is not a registry host\[:port\]/],
    ['an ARM endpoint with credentials in it', { HOIST_ARM_ENDPOINT: 'https://user:s3cret@management.azure.com/' }, 'armEndpoint', 'HOIST_ARM_ENDPOINT', /"https:\/\/\*\*\*@management.azure.com\/" is not an http\(s\) URL without query or credentials/],
    ['an allowed source with a path', { HOIST_ALLOWED_SOURCES: 'docker.io/library' }, 'allowedSources', 'HOIST_ALLOWED_SOURCES', /entry "docker.io\/library" is not a host\[:port\] or \*.domain/],
    ['an ARM endpoint without a scheme', { HOIST_ARM_ENDPOINT: 'management.azure.com' }, 'armEndpoint', 'HOIST_ARM_ENDPOINT', /"management.azure.com" is not an http\(s\) URL without query or credentials \(for example https:\/\/management.azure.com\)/],
    ['an ACR audience with a query', { HOIST_ACR_AUDIENCE: 'https://containerregistry.azure.net/?x=1' }, 'acrAudience', 'HOIST_ACR_AUDIENCE', /is not an http\(s\) URL/],
  ])('refuses %s, naming the setting and what it must hold', (_name, env, getter, setting, message) => {
    let error: unknown;
    try {
      get[getter]!(new Settings(env));
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(ConfigurationError);
    expect((error as ConfigurationError).setting).toBe(setting);
    expect((error as ConfigurationError).message).toMatch(message);
    expect((error as ConfigurationError).message).not.toContain('s3cret');
  });

  it('never puts the target password in a message', () => {
    const error = (() => {
      try {
        return new Settings({ HOIST_TARGET_PASSWORD: 'hunter2-secret' }).targetCredentials;
      } catch (e) {
        return e as Error;
      }
    })();
    expect(String((error as Error).message)).not.toContain('hunter2-secret');
  });
});
