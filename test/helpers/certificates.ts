/**
 * Test certificates made by openssl: a CA, and a server certificate it signed for a test name and
 * 127.0.0.1, so a TLS server on loopback can be verified by name or by address.
 */
import { execFile } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** The files (and PEM text of the server's key and certificate) of {@link makeCertificates}. */
export interface TestCertificates {
  caPath: string;
  caKeyPath: string;
  keyPath: string;
  certPath: string;
  key: string;
  cert: string;
}

/** Makes a CA and a server certificate for `name` and IP 127.0.0.1 in `directory` (valid one day). */
export async function makeCertificates(directory: string, name: string): Promise<TestCertificates> {
  const file = (base: string) => path.join(directory, base);
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  await run('openssl', ['req', '-x509', ...ec, '-keyout', file('ca.key'), '-out', file('ca.pem'), '-days', '1', '-subj', '/CN=Hoist test CA', '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign']);
  await run('openssl', ['req', ...ec, '-keyout', file('server.key'), '-out', file('server.csr'), '-subj', `/CN=${name}`]);
  await writeFile(file('server.ext'), `subjectAltName=DNS:${name},IP:127.0.0.1\nextendedKeyUsage=serverAuth\n`);
  await run('openssl', ['x509', '-req', '-in', file('server.csr'), '-CA', file('ca.pem'), '-CAkey', file('ca.key'), '-CAcreateserial', '-days', '1', '-out', file('server.pem'), '-extfile', file('server.ext')]);
  return { caPath: file('ca.pem'), caKeyPath: file('ca.key'), keyPath: file('server.key'), certPath: file('server.pem'), key: await readFile(file('server.key'), 'utf8'), cert: await readFile(file('server.pem'), 'utf8') };
}

/** A server key and certificate of {@link makeServerCertificate}. */
export interface ServerCertificate {
  keyPath: string;
  certPath: string;
  key: string;
  cert: string;
}

/**
 * A server certificate made in `directory` under `name`: signed by `ca`'s CA, or self-signed when
 * `ca` is undefined; for `subjectAltName` (openssl's syntax, `DNS:x,IP:127.0.0.1`); valid for
 * `days` from now, or expired a day ago with -1.
 */
export async function makeServerCertificate(directory: string, name: string, options: { ca?: TestCertificates; subjectAltName: string; days?: number }): Promise<ServerCertificate> {
  const file = (suffix: string) => path.join(directory, `${name}${suffix}`);
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  const days = String(options.days ?? 1);
  await writeFile(file('.ext'), `subjectAltName=${options.subjectAltName}\nextendedKeyUsage=serverAuth\n`);
  if (options.ca) {
    await run('openssl', ['req', ...ec, '-keyout', file('.key'), '-out', file('.csr'), '-subj', `/CN=${name}`]);
    await run('openssl', ['x509', '-req', '-in', file('.csr'), '-CA', options.ca.caPath, '-CAkey', options.ca.caKeyPath, '-CAcreateserial', '-days', days, '-out', file('.pem'), '-extfile', file('.ext')]);
  } else {
    await run('openssl', ['req', '-x509', ...ec, '-keyout', file('.key'), '-out', file('.pem'), '-days', days, '-subj', `/CN=${name}`, '-addext', `subjectAltName=${options.subjectAltName}`]);
  }
  return { keyPath: file('.key'), certPath: file('.pem'), key: await readFile(file('.key'), 'utf8'), cert: await readFile(file('.pem'), 'utf8') };
}
