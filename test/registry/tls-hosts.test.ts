/**
 * TLS settings per RegistryHosts, in one process, against a real docker-registry serving TLS on
 * 127.0.0.1 with an openssl-made certificate: a connection opened without verification is never
 * reused by hosts that verify, a CA bundle is trusted, and the skip-verify warning is given once.
 */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { copy, CopyError } from '../../src/copy/index.js';
import { describeFailure } from '../../src/jobs/run-import.js';
import { RegistryHosts } from '../../src/registry/hosts.js';
import { rootCertificates } from 'node:tls';
import { MAX_CA_FILE_BYTES, readCaFile, TlsSettings, tlsVerifyFailure, TlsVerifyError } from '../../src/registry/tls.js';
import { makeCertificates } from '../helpers/certificates.js';
import { pushImage } from '../helpers/fixtures.js';
import { startRegistry, type TestRegistry } from '../helpers/registry.js';
import { ref } from '../copy/support.js';

const ONE_ATTEMPT = { baseDelayInMs: 10, maxDelayInMs: 50, maxAttempts: 1 };

let source: TestRegistry;
let secure: TestRegistry;
let directory: string;
let caPath: string;
beforeAll(async () => {
  directory = await mkdtemp(path.join(tmpdir(), 'hoist-tls-hosts-'));
  const certificates = await makeCertificates(directory, 'registry.hoist.test');
  caPath = certificates.caPath;
  [source, secure] = await Promise.all([startRegistry(), startRegistry({ tls: { certificate: certificates.certPath, key: certificates.keyPath } })]);
});
afterAll(async () => {
  await Promise.all([source?.stop(), secure?.stop()]);
  await rm(directory, { recursive: true, force: true });
});

/** The digest `repository:tag` points at in the TLS registry's own storage, or undefined. */
async function storedTag(repository: string, tag: string): Promise<string | undefined> {
  const link = path.join(secure.rootDirectory, 'docker/registry/v2/repositories', repository, '_manifests/tags', tag, 'current/link');
  return readFile(link, 'utf8').catch(() => undefined);
}

describe('TLS settings of two RegistryHosts in one process', () => {
  it('never share a connection: the one that verifies is refused after the one that does not has copied', async () => {
    const [a, b] = await Promise.all([pushImage(source, 'tls/a', 'v1', { layers: [500] }), pushImage(source, 'tls/b', 'v1', { layers: [600] })]);
    const warnings: string[] = [];
    const lax = new RegistryHosts({ httpsRegistries: [secure.host], tlsSkipVerify: [secure.host], warn: (m) => warnings.push(m) });
    const strict = new RegistryHosts({ httpsRegistries: [secure.host], retry: { ...ONE_ATTEMPT } });
    const trusting = new RegistryHosts({ httpsRegistries: [secure.host], caCertificates: readCaFile(caPath, 'test CA') });

    // The lax copy leaves kept-alive connections to the registry behind it.
    await expect(copy({ source: ref(source, 'tls/a:v1'), targets: [ref(secure, 'tls/a:v1')] }, { hosts: lax })).resolves.toMatchObject({ status: 'completed', sourceDigest: a.digest });
    expect(await storedTag('tls/a', 'v1')).toBe(a.digest);

    const refused = await copy({ source: ref(source, 'tls/b:v1'), targets: [ref(secure, 'tls/b:v1')] }, { hosts: strict }).catch((error: unknown) => error);
    // The registry's certificate is signed by an unknown CA: named as such, on the target side,
    // and not worth a retry (the job fails at once).
    expect(refused).toBeInstanceOf(CopyError);
    expect(refused).toMatchObject({ code: 'TLS_VERIFY_FAILED', side: 'target', permanent: true, cause: { code: 'TLS_VERIFY_FAILED', status: 0, details: [{ code: 'UNABLE_TO_VERIFY_LEAF_SIGNATURE' }] } });
    expect((refused as Error).message).toContain(`the TLS certificate of ${secure.host} could not be verified: its certificate is signed by a CA that is not trusted (UNABLE_TO_VERIFY_LEAF_SIGNATURE)`);
    // The import service's job says what its settings can do about it.
    const failure = describeFailure(refused, []);
    expect(failure.code).toBe('TLS_VERIFY_FAILED');
    expect(failure.message).toContain('(the deployment trusts the CAs of HOIST_CA_FILE and NODE_EXTRA_CA_CERTS besides the public ones; HOIST_TLS_SKIP_VERIFY turns verification off');
    expect(await storedTag('tls/b', 'v1')).toBeUndefined();

    await expect(copy({ source: ref(source, 'tls/b:v1'), targets: [ref(secure, 'tls/b:v1')] }, { hosts: trusting })).resolves.toMatchObject({ status: 'completed', sourceDigest: b.digest });
    expect(await storedTag('tls/b', 'v1')).toBe(b.digest);

    // A second lax RegistryHosts in the same process is not warned about again.
    const laxAgain = new RegistryHosts({ httpsRegistries: [secure.host], tlsSkipVerify: [secure.host], warn: (m) => warnings.push(m) });
    await expect(copy({ source: ref(source, 'tls/a:v1'), targets: [ref(secure, 'tls/a:v2')] }, { hosts: laxAgain })).resolves.toMatchObject({ status: 'completed' });
    expect(warnings).toEqual([`TLS certificates of ${secure.host} are NOT verified (skip-verify): anyone on the network path can read and change what is copied`]);
  });
});

describe('readCaFile', () => {
  it('reads the certificates of a PEM bundle', () => {
    expect(readCaFile(caPath, '--ca-file')).toHaveLength(1);
  });

  it('reads a bundle of exactly the bound', async () => {
    const pem = await readFile(caPath, 'utf8');
    const file = path.join(directory, 'at-the-bound.pem');
    await writeFile(file, pem + '\n'.repeat(MAX_CA_FILE_BYTES - Buffer.byteLength(pem)));
    expect(readCaFile(file, '--ca-file')).toHaveLength(1);
  });

  it.each([
    ['a file that is not there', 'missing.pem', 'ENOENT'],
    ['a directory', '.', 'EISDIR'],
  ])('refuses %s, naming what the system said', (_, name, code) => {
    const file = path.join(directory, name);
    expect(() => readCaFile(file, '--ca-file')).toThrow(`--ca-file "${file}" cannot be read (${code})`);
  });

  it.each<[string, string, RegExp]>([
    ['a file over the bound', 'x'.repeat(MAX_CA_FILE_BYTES + 1), /is too large: give a file of PEM certificates/],
    ['a file without a certificate', 'hello\n', /holds no certificate/],
    ['a certificate that does not parse', '-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydA==\n-----END CERTIFICATE-----\n', /has a certificate that does not parse \(number 1\)/],
  ])('refuses %s, naming the source and the file', async (name, content, message) => {
    const file = path.join(directory, `${name.replaceAll(' ', '-')}.pem`);
    await writeFile(file, content);
    expect(() => readCaFile(file, 'HOIST_CA_FILE')).toThrow(expect.objectContaining({ name: 'CaFileError', code: 'CA_FILE_INVALID', source: 'HOIST_CA_FILE' }));
    expect(() => readCaFile(file, 'HOIST_CA_FILE')).toThrow(new RegExp(`HOIST_CA_FILE "${file}" ${message.source}`));
  });
});

describe('TlsSettings', () => {
  // Each test names hosts of its own: the skip-verify warning is given once per host per process.
  it('verifies with Node’s roots, or those and the given CAs (and NODE_EXTRA_CA_CERTS) when CAs are given', () => {
    expect(new TlsSettings().forUrl(new URL('https://plain.test/v2/'))).toStrictEqual({ rejectUnauthorized: true });
    const ca = readCaFile(caPath, 'test CA');
    try {
      vi.stubEnv('NODE_EXTRA_CA_CERTS', undefined);
      expect(new TlsSettings({ caCertificates: ca }).forUrl(new URL('https://plain.test/v2/')).ca).toEqual([...rootCertificates, ...ca]);
      vi.stubEnv('NODE_EXTRA_CA_CERTS', caPath);
      expect(new TlsSettings({ caCertificates: ca }).forUrl(new URL('https://plain.test/v2/')).ca).toEqual([...rootCertificates, ...ca, ...ca]);
    } finally {
      vi.unstubAllEnvs();
    }
  });

  it('skips verification for the hosts named, whatever their case and spaces, and warns once', () => {
    const warnings: string[] = [];
    const tls = new TlsSettings({ skipVerify: [' Lab.Test:5000 ', ''], warn: (m) => warnings.push(m) });
    expect(tls.forUrl(new URL('https://lab.test:5000/v2/'))).toStrictEqual({ rejectUnauthorized: false });
    expect(tls.forUrl(new URL('https://LAB.test:5000/v2/x'))).toStrictEqual({ rejectUnauthorized: false });
    expect(tls.forUrl(new URL('https://lab.test:5001/v2/')).rejectUnauthorized).toBe(true);
    expect(warnings).toEqual(['TLS certificates of lab.test:5000 are NOT verified (skip-verify): anyone on the network path can read and change what is copied']);
  });

  it('skips it for the hosts a skip-verify registry sends requests to, naming what they are to it', () => {
    const warnings: string[] = [];
    const tls = new TlsSettings({ skipVerify: ['lab2.test'], warn: (m) => warnings.push(m) });
    expect(tls.forUrl(new URL('https://auth.lab2.test/token'), 'LAB2.test').rejectUnauthorized).toBe(false);
    expect(tls.forUrl(new URL('https://storage.lab2.test/blob'), 'lab2.test', 'redirect').rejectUnauthorized).toBe(false);
    expect(tls.forUrl(new URL('https://auth.other.test/token'), 'other.test').rejectUnauthorized).toBe(true);
    expect(warnings).toEqual([
      'TLS certificates of auth.lab2.test (the token service of lab2.test) are NOT verified (skip-verify): anyone on the network path can read and change what is copied',
      'TLS certificates of storage.lab2.test (where lab2.test sends requests) are NOT verified (skip-verify): anyone on the network path can read and change what is copied',
    ]);
  });
});

describe('tlsVerifyFailure', () => {
  const expired = Object.assign(new Error('certificate has expired'), { code: 'CERT_HAS_EXPIRED' });

  it('names the host, what it is to the registry, and why its certificate failed', () => {
    const failure = tlsVerifyFailure(expired, new URL('https://Storage.Test/blob'), 'Registry.Test', 'redirect');
    expect(failure).toBeInstanceOf(TlsVerifyError);
    expect(failure).toMatchObject({ name: 'TlsVerifyError', code: 'TLS_VERIFY_FAILED', host: 'storage.test', registryHost: 'registry.test', verifyCode: 'CERT_HAS_EXPIRED', cause: expired });
    expect(failure!.message).toBe('the TLS certificate of storage.test (where registry.test sends requests) could not be verified: its certificate has expired (CERT_HAS_EXPIRED)');
    expect(tlsVerifyFailure(expired, new URL('https://auth.test/token'), 'registry.test')!.message).toContain('auth.test (the token service of registry.test) could not');
    expect(tlsVerifyFailure(expired, new URL('https://registry.test/v2/'), 'registry.test')!.message).toBe('the TLS certificate of registry.test could not be verified: its certificate has expired (CERT_HAS_EXPIRED)');
  });

  it.each([Object.assign(new Error('reset'), { code: 'ECONNRESET' }), new Error('no code'), undefined, Object.assign(new Error('x'), { code: 'toString' })])('is undefined for any other failure (%s)', (error) => {
    expect(tlsVerifyFailure(error, new URL('https://registry.test/v2/'))).toBeUndefined();
  });
});
