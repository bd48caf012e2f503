/**
 * What a blob's `urls` can put into an error: a descriptor may list any number of them, of any
 * length, and the error ends up in a job record and a terminal.
 */
import { createHash } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Connections } from '../../src/registry/http.js';
import { readCaFile, TlsSettings } from '../../src/registry/tls.js';
import { MAX_URL_FAILURES_QUOTED, openUrlBlob, UrlBlobError } from '../../src/registry/url-blob.js';
import { makeCertificates } from '../helpers/certificates.js';

const failureOf = async (urls: string[]) => {
  const stream = openUrlBlob({ urls, digest: `sha256:${'0'.repeat(64)}`, size: 2, connections: new Connections() });
  return (await stream.toArray().then(() => undefined, (e: unknown) => e)) as UrlBlobError;
};

it('quotes the first failures of 1,000 URLs and counts the rest', async () => {
  const error = await failureOf(Array.from({ length: 1000 }, (_, i) => `not a url ${i} ${'x'.repeat(1000)}`));
  expect(error).toBeInstanceOf(UrlBlobError);
  expect(error.failures).toHaveLength(MAX_URL_FAILURES_QUOTED);
  expect(error.message).toMatch(/"not a url 4 x+…" is not a URL; and 995 more$/);
  expect(error.message).not.toContain('not a url 5 ');
  expect(error.message.length).toBeLessThan(2000);
});

it('quotes no escape sequence a manifest put in its URLs', async () => {
  // The second is a URL whose host refuses the connection (nothing listens on port 1).
  const error = await failureOf(['\u001b[31mnot a url', 'http://127.0.0.1:1/\u001b[31mred']);
  expect(error).toBeInstanceOf(UrlBlobError);
  expect(error.message).toContain('"[31mnot a url" is not a URL');
  expect(error.message).not.toContain('\u001b');
});

describe('a layer URL over https', () => {
  let directory: string;
  let server: Server;
  let ca: string[];
  let url: string;
  const bytes = Buffer.from('a foreign layer served over https');
  const digest = `sha256:${createHash('sha256').update(bytes).digest('hex')}`;

  beforeAll(async () => {
    directory = await mkdtemp(path.join(tmpdir(), 'hoist-url-tls-'));
    const certificates = await makeCertificates(directory, 'layers.hoist.test');
    ca = readCaFile(certificates.caPath, '--ca-file');
    server = createServer({ key: certificates.key, cert: certificates.cert }, (_req, res) => res.writeHead(200, { 'content-length': bytes.length }).end(bytes));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    url = `https://127.0.0.1:${(server.address() as AddressInfo).port}/layer`;
  });
  afterAll(async () => {
    await new Promise((resolve) => server?.close(resolve));
    await rm(directory, { recursive: true, force: true });
  });

  it('is read with the copy’s CA bundle, as its registries are', async () => {
    const read = await openUrlBlob({ urls: [url], digest, size: bytes.length, connections: new Connections({ tls: new TlsSettings({ caCertificates: ca }) }) }).toArray();
    expect(Buffer.concat(read)).toEqual(bytes);
  });

  it('is refused when its certificate cannot be verified', async () => {
    const error = await openUrlBlob({ urls: [url], digest, size: bytes.length, connections: new Connections() })
      .toArray()
      .then(() => undefined, (e: unknown) => e);
    expect(error).toBeInstanceOf(UrlBlobError);
    expect((error as UrlBlobError).message).toContain(`the TLS certificate of ${new URL(url).host} could not be verified: its certificate is signed by a CA that is not trusted (UNABLE_TO_VERIFY_LEAF_SIGNATURE)`);
    expect((error as UrlBlobError).transient).toBe(false);
  });
});
