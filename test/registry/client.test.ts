/**
 * The protocol client against a scripted registry on loopback, which answers what each test
 * says: the distribution answers distribution never gives (a manifest over the limit, bytes that
 * hash to another digest, a HEAD without a size, a Range that disagrees, a list that never ends)
 * and the shapes other registries give (ECR's 201 to a PATCH, Quay's `bytes=` ranges, generic
 * Content-Types). The copy tests use real registries; these pin down each check on its own.
 */
import { Readable } from 'node:stream';
import { MAX_MANIFEST_BYTES, RegistryClient, manifestMediaType, type UploadSession } from '../../src/registry/client.js';
import { sha256 } from '../../src/registry/digest.js';
import { RegistryHosts } from '../../src/registry/hosts.js';
import { MediaType } from '../../src/registry/media-types.js';
import { parseReference } from '../../src/registry/reference.js';
import { registryError } from '../helpers/registry-error.js';
import { ScriptedServer, type ScriptedAnswer } from '../helpers/scripted-server.js';

const MANIFEST = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MediaType.OciManifest, config: {}, layers: [] }));
const MANIFEST_DIGEST = sha256(MANIFEST);

let registry: ScriptedServer;
let client: RegistryClient;
beforeEach(async () => {
  registry = await new ScriptedServer().start();
  client = RegistryClient.for(parseReference(`${registry.host}/app`).registry, new RegistryHosts({ retry: { maxAttempts: 1, baseDelayInMs: 1, maxDelayInMs: 1 } }));
});
afterEach(() => registry.stop());

const ref = (suffix = ':v1') => parseReference(`${registry.host}/team/app${suffix}`);

describe('getManifest', () => {
  it('reads a manifest of exactly the limit, declared or streamed', async () => {
    const bytes = Buffer.alloc(MAX_MANIFEST_BYTES, 0x20);
    for (const chunked of [false, true]) {
      registry.answer = () => ({ status: 200, headers: { 'content-type': MediaType.OciManifest }, body: bytes, chunked });
      const manifest = await client.getManifest(ref());
      expect(manifest.bytes.length).toBe(MAX_MANIFEST_BYTES);
      expect(manifest.digest).toBe(sha256(bytes));
    }
  });

  it.each([false, true])('refuses one byte more (chunked: %s) as MANIFEST_INVALID', async (chunked) => {
    registry.answer = () => ({ status: 200, headers: { 'content-type': MediaType.OciManifest }, body: Buffer.alloc(MAX_MANIFEST_BYTES + 1, 0x20), chunked });
    const error = await registryError(client.getManifest(ref()));
    expect(error.code).toBe('MANIFEST_INVALID');
    expect(error.message).toContain(`exceeds the ${MAX_MANIFEST_BYTES}-byte limit`);
    if (!chunked) expect(error.message).toContain(`manifest of ${MAX_MANIFEST_BYTES + 1} bytes`);
  });

  it('checks the bytes against the digest asked for, and names what they hash to', async () => {
    const other = Buffer.from('{"schemaVersion":2}');
    registry.answer = () => ({ status: 200, headers: { 'content-type': MediaType.OciManifest }, body: other });
    const error = await registryError(client.getManifest(ref(`@${MANIFEST_DIGEST}`)));
    expect(error).toMatchObject({ code: 'DIGEST_INVALID', status: 200, method: 'GET' });
    expect(error.message).toContain(`manifest bytes hash to ${sha256(other)}`);
    expect(registry.requests[0].path).toBe(`/v2/team/app/manifests/${MANIFEST_DIGEST}`);

    registry.answer = () => ({ status: 200, headers: { 'content-type': MediaType.OciManifest }, body: MANIFEST });
    expect(await client.getManifest(ref(`@${MANIFEST_DIGEST}`))).toEqual({ digest: MANIFEST_DIGEST, mediaType: MediaType.OciManifest, bytes: MANIFEST });
  });
});

describe('manifestMediaType', () => {
  it('takes Content-Type without its parameters', () => {
    expect(manifestMediaType(`${MediaType.OciIndex} ; charset=utf-8`, MANIFEST)).toBe(MediaType.OciIndex);
  });

  it.each(['application/json', 'text/plain', 'application/octet-stream', '', undefined])('reads the body when Content-Type is %j', (contentType) => {
    expect(manifestMediaType(contentType, Buffer.from(JSON.stringify({ mediaType: 'application/vnd.example+json' })))).toBe('application/vnd.example+json');
    expect(manifestMediaType(contentType, Buffer.from(JSON.stringify({ manifests: [] })))).toBe(MediaType.OciIndex);
    expect(manifestMediaType(contentType, Buffer.from(JSON.stringify({ layers: [] })))).toBe(MediaType.OciManifest);
  });

  it('falls back to the generic type, or an OCI manifest without one, when the body is not JSON', () => {
    expect(manifestMediaType('text/plain', Buffer.from('not json'))).toBe('text/plain');
    expect(manifestMediaType(undefined, Buffer.from('not json'))).toBe(MediaType.OciManifest);
  });
});

describe('headManifest', () => {
  it('answers the digest, type and size the registry states, and undefined for a 404', async () => {
    registry.answer = () => ({ status: 200, headers: { 'docker-content-digest': MANIFEST_DIGEST, 'content-type': MediaType.OciIndex, 'content-length': '1234' } });
    expect(await client.headManifest(ref())).toEqual({ digest: MANIFEST_DIGEST, mediaType: MediaType.OciIndex, size: 1234 });
    expect(registry.requests[0].method).toBe('HEAD');
    registry.answer = () => ({ status: 404 });
    expect(await client.headManifest(ref())).toBeUndefined();
  });

  it('takes the digest asked for when the registry names none, and types nothing it was not told', async () => {
    registry.answer = () => ({ status: 200 });
    expect(await client.headManifest(ref(`@${MANIFEST_DIGEST}`))).toEqual({ digest: MANIFEST_DIGEST, mediaType: '', size: 0 });
    expect(registry.requests.map((r) => r.method)).toEqual(['HEAD']);
  });

  it('GETs a tag the registry gave no digest for, and hashes its bytes', async () => {
    registry.answer = (req) => (req.method === 'HEAD' ? { status: 200, headers: { 'content-type': MediaType.OciManifest } } : { status: 200, headers: { 'content-type': 'application/json' }, body: MANIFEST });
    expect(await client.headManifest(ref())).toEqual({ digest: MANIFEST_DIGEST, mediaType: MediaType.OciManifest, size: MANIFEST.length });
    expect(registry.requests.map((r) => r.method)).toEqual(['HEAD', 'GET']);
  });
});

describe('putManifest', () => {
  const manifest = { digest: MANIFEST_DIGEST, mediaType: MediaType.OciManifest, bytes: MANIFEST };

  it('PUTs the bytes unchanged under the tag, or the digest without one, and reports OCI-Subject', async () => {
    registry.answer = () => ({ status: 201, headers: { 'docker-content-digest': MANIFEST_DIGEST } });
    expect(await client.putManifest(ref(), manifest)).toEqual({ subjectProcessed: false });
    registry.answer = () => ({ status: 201, headers: { 'oci-subject': 'sha256:abc' } });
    expect(await client.putManifest(ref(`@${MANIFEST_DIGEST}`), manifest)).toEqual({ subjectProcessed: true });
    expect(registry.requests.map((r) => [r.method, r.path, r.headers['content-type']])).toEqual([
      ['PUT', '/v2/team/app/manifests/v1', MediaType.OciManifest],
      ['PUT', `/v2/team/app/manifests/${MANIFEST_DIGEST}`, MediaType.OciManifest],
    ]);
    expect(registry.requests[0].body.equals(MANIFEST)).toBe(true);
  });

  it('refuses a registry that says it stored other bytes', async () => {
    const other = `sha256:${'0'.repeat(64)}`;
    registry.answer = () => ({ status: 201, headers: { 'docker-content-digest': other } });
    const error = await registryError(client.putManifest(ref(), manifest));
    expect(error).toMatchObject({ code: 'DIGEST_INVALID', status: 201, method: 'PUT' });
    expect(error.message).toContain(`registry stored the manifest as ${other}, not ${MANIFEST_DIGEST}`);
  });
});

describe('headBlob', () => {
  const digest = `sha256:${'a'.repeat(64)}`;

  it('answers the size the repository holds the blob at, or undefined', async () => {
    registry.answer = () => ({ status: 200, headers: { 'content-length': '42' } });
    expect(await client.headBlob(ref(''), digest)).toBe(42);
    expect(registry.requests[0]).toMatchObject({ method: 'HEAD', path: `/v2/team/app/blobs/${digest}` });
    registry.answer = () => ({ status: 404 });
    expect(await client.headBlob(ref(''), digest)).toBeUndefined();
  });

  it('refuses a 200 that does not say the size, rather than guessing it', async () => {
    registry.answer = () => ({ status: 200 });
    const error = await registryError(client.headBlob(ref(''), digest));
    expect(error).toMatchObject({ code: 'UNEXPECTED_RESPONSE', status: 200, method: 'HEAD' });
    expect(error.details[0]).toEqual({ code: 'CONTENT_LENGTH', message: 'the blob HEAD answered 200 with Content-Length (none), not a size in bytes' });
  });
});

describe('uploads', () => {
  const digest = `sha256:${'b'.repeat(64)}`;

  it('asks to mount with `mount` and `from`; a 201 is a mount', async () => {
    registry.answer = () => ({ status: 201 });
    expect(await client.startUpload(ref(''), { digest, from: 'other/app' })).toBe('mounted');
    const [req] = registry.requests;
    expect(req).toMatchObject({ method: 'POST', path: '/v2/team/app/blobs/uploads/' });
    expect(Object.fromEntries(req.query)).toEqual({ mount: digest, from: 'other/app' });
  });

  it('opens a session at the Location, resolved against the request and with its query kept', async () => {
    registry.answer = () => ({ status: 202, headers: { location: 'session-1?_state=abc', 'oci-chunk-min-length': '1024' } });
    const session = await client.startUpload(ref(''));
    expect(session).toEqual({ location: new URL(`http://${registry.host}/v2/team/app/blobs/uploads/session-1?_state=abc`), offset: 0, minChunkLength: 1024 });
    expect([...registry.requests[0].query.keys()]).toEqual([]);
  });

  it.each(['0', '-5', 'soon'])('ignores an OCI-Chunk-Min-Length of %j', async (value) => {
    registry.answer = () => ({ status: 202, headers: { location: '/v2/team/app/blobs/uploads/s', 'oci-chunk-min-length': value } });
    expect(await client.startUpload(ref(''))).toMatchObject({ minChunkLength: undefined });
  });

  it('refuses a session without a Location', async () => {
    registry.answer = () => ({ status: 202 });
    const error = await registryError(client.startUpload(ref('')));
    expect(error).toMatchObject({ code: 'UNEXPECTED_RESPONSE', status: 202 });
    expect(error.details[0]).toEqual({ code: 'LOCATION', message: 'upload response without a Location header' });
  });

  it('asks a session where it stands; a lost session is undefined', async () => {
    const location = new URL(`http://${registry.host}/v2/team/app/blobs/uploads/s1?_state=x`);
    registry.answer = () => ({ status: 204, headers: { range: 'bytes=0-99', location: '/v2/team/app/blobs/uploads/s1?_state=y' } });
    expect(await client.uploadStatus(ref(''), location, 50)).toEqual({ location: new URL(`http://${registry.host}/v2/team/app/blobs/uploads/s1?_state=y`), offset: 100 });
    expect(registry.requests[0]).toMatchObject({ method: 'GET', path: '/v2/team/app/blobs/uploads/s1' });
    registry.answer = () => ({ status: 204, headers: { range: '0-9' } });
    expect(await client.uploadStatus(ref(''), location, 5)).toEqual({ location, offset: 10 });
    registry.answer = () => ({ status: 404 });
    expect(await client.uploadStatus(ref(''), location, 50)).toBeUndefined();
  });

  describe('patchChunk', () => {
    const session = (): UploadSession => ({ location: new URL(`http://${registry.host}/v2/team/app/blobs/uploads/s1`), offset: 100, minChunkLength: 10 });

    it('sends the chunk with its Content-Range, and takes the registry’s Range and Location', async () => {
      registry.answer = () => ({ status: 202, headers: { range: '0-109', location: '/v2/team/app/blobs/uploads/s2' } });
      const next = await client.patchChunk(ref(''), session(), Buffer.from('0123456789'));
      expect(next).toEqual({ location: new URL(`http://${registry.host}/v2/team/app/blobs/uploads/s2`), offset: 110, minChunkLength: 10 });
      const [req] = registry.requests;
      expect(req.method).toBe('PATCH');
      expect(req.headers).toMatchObject({ 'content-type': 'application/octet-stream', 'content-range': '100-109', 'content-length': '10' });
      expect(req.body.toString()).toBe('0123456789');
    });

    it('streams a chunk given as a source, and takes ECR’s 201 without a Range as all of it', async () => {
      registry.answer = () => ({ status: 201 });
      const chunk = { length: 4, open: () => Readable.from([Buffer.from('ab'), Buffer.from('cd')]) };
      expect(await client.patchChunk(ref(''), session(), chunk)).toMatchObject({ location: session().location, offset: 104 });
      expect(registry.requests[0].body.toString()).toBe('abcd');
    });

    it('refuses a Range that says the registry holds anything else than up to the chunk’s end', async () => {
      registry.answer = () => ({ status: 202, headers: { range: '0-104', location: '/v2/team/app/blobs/uploads/s1' } });
      const error = await registryError(client.patchChunk(ref(''), session(), Buffer.from('0123456789')));
      expect(error).toMatchObject({ code: 'RANGE_INVALID', status: 202, method: 'PATCH' });
      expect(error.message).toContain('registry holds 105 bytes after a chunk ending at 110');
    });
  });

  it('never resends a chunk after a failure (the registry may hold part of it), but resends an empty close', async () => {
    const retrying = RegistryClient.for(parseReference(`${registry.host}/app`).registry, new RegistryHosts({ retry: { maxAttempts: 3, baseDelayInMs: 1, maxDelayInMs: 1 } }));
    const session = { location: new URL(`http://${registry.host}/v2/team/app/blobs/uploads/s1`), offset: 0 };
    registry.answer = () => ({ status: 503 });
    await registryError(retrying.patchChunk(ref(''), session, Buffer.from('chunk')));
    await registryError(retrying.completeUpload(ref(''), session, digest, Buffer.from('last')));
    expect(registry.requests.map((r) => r.method)).toEqual(['PATCH', 'PUT']);
    await registryError(retrying.completeUpload(ref(''), session, digest));
    expect(registry.requests).toHaveLength(2 + 3);
  });

  it('closes an upload with `digest`: a last chunk says where it goes, a whole blob does not', async () => {
    registry.answer = () => ({ status: 201 });
    const location = new URL(`http://${registry.host}/v2/team/app/blobs/uploads/s1?_state=x`);
    await client.completeUpload(ref(''), { location, offset: 100 }, digest, Buffer.from('last'));
    await client.completeUpload(ref(''), { location, offset: 0 }, digest, Buffer.from('only'));
    await client.completeUpload(ref(''), { location, offset: 0 }, digest, { stream: Readable.from([Buffer.from('whole')]), length: 5 });
    await client.completeUpload(ref(''), { location, offset: 104 }, digest);
    expect(registry.requests.map((r) => [r.method, Object.fromEntries(r.query), r.headers['content-range'], r.headers['content-length'], r.body.toString()])).toEqual([
      ['PUT', { _state: 'x', digest }, '100-103', '4', 'last'],
      ['PUT', { _state: 'x', digest }, undefined, '4', 'only'],
      ['PUT', { _state: 'x', digest }, undefined, '5', 'whole'],
      ['PUT', { _state: 'x', digest }, undefined, '0', ''],
    ]);
  });
});

describe('listTags', () => {
  it('follows Link pages, relative or absolute, and reads a null list as empty', async () => {
    registry.answer = (req): ScriptedAnswer => {
      const page = req.query.get('page');
      if (!page) return { status: 200, headers: { 'content-type': 'application/json', link: '</v2/team/app/tags/list?page=2>; rel="next"' }, body: JSON.stringify({ tags: ['a', 'b'] }) };
      if (page === '2') return { status: 200, headers: { 'content-type': 'application/json', link: `<http://${registry.host}/v2/team/app/tags/list?page=3>;rel=next` }, body: JSON.stringify({ tags: null }) };
      return { status: 200, headers: { 'content-type': 'application/json' }, body: JSON.stringify({ tags: ['c'] }) };
    };
    expect(await client.listTags(ref(''))).toEqual(['a', 'b', 'c']);
    expect(registry.requests).toHaveLength(3);
  });

  it('refuses a list that links back to a page already read', async () => {
    registry.answer = (req) => ({ status: 200, headers: { 'content-type': 'application/json', link: req.query.get('page') === '2' ? '</v2/team/app/tags/list>; rel="next"' : '</v2/team/app/tags/list?page=2>; rel="next"' }, body: '{"tags":["a"]}' });
    const error = await registryError(client.listTags(ref('')));
    expect(error.details[0]).toEqual({ code: 'TAGS_INCOMPLETE', message: 'the tag list broke off: page 3 links back to a page already read' });
    expect(registry.requests).toHaveLength(2);
  });

  it('refuses a list that goes on past 1000 pages', async () => {
    registry.answer = (req) => ({ status: 200, headers: { 'content-type': 'application/json', link: `</v2/team/app/tags/list?page=${Number(req.query.get('page') ?? 0) + 1}>; rel="next"` }, body: '{"tags":[]}' });
    const error = await registryError(client.listTags(ref('')));
    expect(error).toMatchObject({ code: 'UNEXPECTED_RESPONSE', status: 200, method: 'GET' });
    expect(error.details[0]).toEqual({ code: 'TAGS_INCOMPLETE', message: 'the tag list broke off: the list goes on past 1000 pages' });
    expect(registry.requests).toHaveLength(1000);
  });
});

describe('referrers', () => {
  const subject = `sha256:${'c'.repeat(64)}`;
  const entry = (n: number) => ({ mediaType: MediaType.OciManifest, digest: `sha256:${String(n).repeat(64)}`, size: n });
  const indexPage = (manifests: unknown[], link?: string): ScriptedAnswer => ({ status: 200, headers: { 'content-type': MediaType.OciIndex, ...(link && { link }) }, body: JSON.stringify({ schemaVersion: 2, mediaType: MediaType.OciIndex, manifests }) });

  it('asks for an OCI index and follows every page', async () => {
    registry.answer = (req) => (req.query.get('page') ? indexPage([entry(2)]) : indexPage([entry(1)], `</v2/team/app/referrers/${subject}?page=2>; rel="next"`));
    expect(await client.referrers(ref(''), subject)).toEqual([entry(1), entry(2)]);
    expect(registry.requests[0]).toMatchObject({ method: 'GET', path: `/v2/team/app/referrers/${subject}` });
    expect(registry.requests[0].headers.accept).toBe(MediaType.OciIndex);
  });

  it('takes a first page that is a 404 or not an index as no referrers API', async () => {
    registry.answer = () => ({ status: 404, headers: { 'content-type': 'text/plain' }, body: '404 page not found' });
    expect(await client.referrers(ref(''), subject)).toBeUndefined();
    registry.answer = () => ({ status: 200, headers: { 'content-type': 'application/json' }, body: '{}' });
    expect(await client.referrers(ref(''), subject)).toBeUndefined();
  });

  it('refuses a later page that is not an index, rather than answer part of the list', async () => {
    registry.answer = (req) => (req.query.get('page') ? { status: 404, headers: { 'content-type': 'text/plain' }, body: 'gone' } : indexPage([entry(1)], `</v2/team/app/referrers/${subject}?page=2>; rel="next"`));
    const error = await registryError(client.referrers(ref(''), subject));
    expect(error).toMatchObject({ code: 'UNEXPECTED_RESPONSE', status: 404 });
    expect(error.details[0]).toEqual({ code: 'REFERRERS_INCOMPLETE', message: 'the referrers list broke off: page 2 answered 404 with a text/plain body, not an OCI image index' });
  });

  it('refuses a list that links back to a page already read, or goes on past 1000 pages', async () => {
    registry.answer = () => indexPage([entry(1)], `</v2/team/app/referrers/${subject}>; rel="next"`);
    expect((await registryError(client.referrers(ref(''), subject))).details[0].message).toBe('the referrers list broke off: page 2 links back to a page already read');
    registry.answer = (req) => indexPage([], `</v2/team/app/referrers/${subject}?page=${Number(req.query.get('page') ?? 0) + 1}>; rel="next"`);
    expect((await registryError(client.referrers(ref(''), subject))).details[0].message).toBe('the referrers list broke off: the list goes on past 1000 pages');
  });
});
