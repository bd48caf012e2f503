/**
 * A blob read from its descriptor's `urls` (non-distributable layers): which URL is taken, what is
 * followed and what refused, and what the URLs can put into an error (a descriptor may list any
 * number of them, of any length, and the error ends up in a job record and a terminal).
 */
import { createHash } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Connections } from '../../src/registry/http.js';
import { readCaFile, TlsSettings } from '../../src/registry/tls.js';
import { MAX_URL_FAILURES_QUOTED, openUrlBlob, UrlBlobError } from '../../src/registry/url-blob.js';
import { USER_AGENT } from '../../src/registry/auth.js';
import { makeCertificates } from '../helpers/certificates.js';
import { ScriptedServer } from '../helpers/scripted-server.js';

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

it('says when the descriptor lists no URLs, and counts none beyond those quoted', async () => {
  expect((await failureOf([])).message).toBe(`no URL of blob sha256:${'0'.repeat(64)} served it: the descriptor lists no URLs`);
  const five = await failureOf(Array.from({ length: MAX_URL_FAILURES_QUOTED }, (_, i) => `bad ${i}`));
  expect(five.message).toMatch(/"bad 4" is not a URL$/);
});

describe('layer URLs', () => {
  let first: ScriptedServer;
  let second: ScriptedServer;
  const bytes = Buffer.from('a foreign layer, read from its URLs');
  const digest = `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
  beforeEach(async () => {
    [first, second] = await Promise.all([new ScriptedServer().start(), new ScriptedServer().start()]);
  });
  afterEach(() => Promise.all([first.stop(), second.stop()]));

  const read = (urls: string[], offset = 0) =>
    openUrlBlob({ urls, digest, size: bytes.length, offset, connections: new Connections(), maxResumes: 3 })
      .toArray()
      .then(
        (pieces) => Buffer.concat(pieces),
        (e: unknown) => e as UrlBlobError,
      );

  it('are tried in order, the first that answers is read, and no credentials go to any', async () => {
    first.answer = () => ({ status: 404 });
    second.answer = () => ({ status: 200, body: bytes });
    expect(await read([`${first.url}/a`, `${second.url}/b`])).toEqual(bytes);
    expect(second.requests[0]).toMatchObject({ method: 'GET', path: '/b' });
    expect(second.requests[0].headers.authorization).toBeUndefined();
    expect(second.requests[0].headers['user-agent']).toBe(USER_AGENT);
  });

  it('resume a cut body from the URL that answered', async () => {
    first.answer = () => ({ status: 404 });
    second.answer = (_, n) => (n === 1 ? { status: 200, body: bytes, cutAfter: 10 } : { status: 206, headers: { 'content-range': `bytes 10-${bytes.length - 1}/${bytes.length}` }, body: bytes.subarray(10) });
    expect(await read([`${first.url}/a`, `${second.url}/b`])).toEqual(bytes);
    expect(second.requests.map((r) => r.headers.range)).toEqual([undefined, 'bytes=10-']);
    expect(first.requests).toHaveLength(1);
  });

  it('are read from an offset with Range', async () => {
    first.answer = () => ({ status: 206, headers: { 'content-range': `bytes 5-${bytes.length - 1}/${bytes.length}` }, body: bytes.subarray(5) });
    expect(await read([`${first.url}/a`], 5)).toEqual(bytes.subarray(5));
    expect(first.requests[0].headers.range).toBe('bytes=5-');
  });

  it('answer a 200 as it is, whatever Location it names', async () => {
    first.answer = () => ({ status: 200, headers: { location: '/elsewhere' }, body: bytes });
    expect(await read([`${first.url}/a`])).toEqual(bytes);
    expect(first.requests).toHaveLength(1);
  });

  it('follow five redirects, and no more', async () => {
    first.answer = (_, n) => (n <= 5 ? { status: 302, headers: { location: `/hop-${n}` } } : { status: 200, body: bytes });
    expect(await read([`${first.url}/a`])).toEqual(bytes);
    expect(first.requests).toHaveLength(6);

    first.requests.length = 0;
    first.answer = (_, n) => ({ status: 307, headers: { location: `/hop-${n}` } });
    const error = await read([`${first.url}/a`]);
    expect(error).toBeInstanceOf(UrlBlobError);
    expect((error as UrlBlobError).failures).toEqual([`${first.url}/a: more than 5 redirects`]);
    expect(first.requests).toHaveLength(6);
  });

  it('that all fail say why each did, and whether a later try may help', async () => {
    first.answer = () => ({ status: 404 });
    second.answer = () => ({ status: 503 });
    const error = (await read(['ftp://layers.test/x', `${first.url}/a?sig=secret`, `${second.url}/b`])) as UrlBlobError;
    expect(error).toBeInstanceOf(UrlBlobError);
    expect(error.failures).toEqual(['ftp://layers.test/x: only http and https URLs are followed, not ftp:', `${first.url}/a: answered 404`, `${second.url}/b: answered 503`]);
    expect(error).toMatchObject({ name: 'UrlBlobError', code: 'URL_BLOB_UNAVAILABLE' });
    expect(error.message).toBe(`no URL of blob ${digest} served it: ${error.failures.join('; ')}`);
    expect(error.transient).toBe(true);
    expect(((await read([`${first.url}/a`])) as UrlBlobError).transient).toBe(false);
    expect(((await read(['http://127.0.0.1:1/refused'])) as UrlBlobError).transient).toBe(true);
  });
});

describe('a layer URL over https', () => {
  let directory: string;
  let server: ScriptedServer;
  let ca: string[];
  let url: string;
  const bytes = Buffer.from('a foreign layer served over https');
  const digest = `sha256:${createHash('sha256').update(bytes).digest('hex')}`;

  beforeAll(async () => {
    directory = await mkdtemp(path.join(tmpdir(), 'hoist-url-tls-'));
    const certificates = await makeCertificates(directory, 'layers.hoist.test');
    ca = readCaFile(certificates.caPath, '--ca-file');
    server = await new ScriptedServer().start(certificates);
    server.answer = (req) => (req.path === '/down' ? { status: 302, headers: { location: 'http://127.0.0.1:1/layer' } } : req.path === '/moved' ? { status: 301, headers: { location: '/layer' } } : { status: 200, body: bytes });
    url = `${server.url}/layer`;
  });
  afterAll(async () => {
    await server?.stop();
    await rm(directory, { recursive: true, force: true });
  });

  it('follows a redirect that stays on https', async () => {
    const read = await openUrlBlob({ urls: [`${server.url}/moved`], digest, size: bytes.length, connections: new Connections({ tls: new TlsSettings({ caCertificates: ca }) }) }).toArray();
    expect(Buffer.concat(read)).toEqual(bytes);
  });

  it('never redirects down to http', async () => {
    const error = await openUrlBlob({ urls: [`${server.url}/down`], digest, size: bytes.length, connections: new Connections({ tls: new TlsSettings({ caCertificates: ca }) }) })
      .toArray()
      .then(() => undefined, (e: unknown) => e);
    expect((error as UrlBlobError).failures).toEqual([`${server.url}/down: refused a redirect from https down to http`]);
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
