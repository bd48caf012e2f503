/**
 * An OCI image layout as a store, on its own, in temporary directories: what it answers for tags
 * and digests, and how it refuses a layout that is not one, has been changed on disk, or would
 * cost too much to read. stores.test.ts copies through layouts end to end (locks, ingest/,
 * concurrent writers); these pin down each read and check.
 */
import { mkdir, mkdtemp, readdir, readFile, rm, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MAX_MANIFEST_BYTES } from '../../src/registry/client.js';
import { sha256 } from '../../src/registry/digest.js';
import { MediaType } from '../../src/registry/media-types.js';
import { parseReference, type Reference } from '../../src/registry/reference.js';
import { parseLayoutReference, type LayoutRegistry } from '../../src/copy/layout-reference.js';
import { OciLayout, REF_NAME } from '../../src/copy/layout-store.js';
import { MemoryStore } from '../../src/copy/memory-store.js';
import type { BlobPush } from '../../src/copy/store.js';
import type { ProgressEvent } from '../../src/copy/types.js';
import { registryError } from '../helpers/registry-error.js';

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'hoist-layout-'));
});
afterEach(() => rm(dir, { recursive: true, force: true }));

const ref = (suffix = '') => parseLayoutReference(`oci:${dir}${suffix}`);
const layout = (r: Reference = ref()) => new OciLayout(r.registry as LayoutRegistry);

const manifest = (seed: string) => {
  const bytes = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MediaType.OciManifest, config: { seed }, layers: [] }));
  return { digest: sha256(bytes), mediaType: MediaType.OciManifest, bytes };
};

/** Writes `bytes` where the layout keeps the blob `digest`. */
async function putBlob(digest: string, bytes: Buffer): Promise<void> {
  await mkdir(join(dir, 'blobs', 'sha256'), { recursive: true });
  await writeFile(join(dir, 'blobs', 'sha256', digest.slice('sha256:'.length)), bytes);
}

const writeIndex = (index: unknown) => writeFile(join(dir, 'index.json'), typeof index === 'string' ? index : JSON.stringify(index));

describe('reading manifests', () => {
  it('answers a tag and a digest from index.json and blobs/', async () => {
    const a = manifest('a');
    await layout().putManifest(ref(':v1'), a);
    expect(await layout().headManifest(ref(':v1'))).toEqual({ digest: a.digest, mediaType: MediaType.OciManifest, size: a.bytes.length });
    expect(await layout().headManifest(ref().withDigest(a.digest))).toEqual({ digest: a.digest, mediaType: MediaType.OciManifest, size: a.bytes.length });
    expect(await layout().getManifest(ref(':v1'))).toEqual(a);
    expect(await layout().headManifest(ref(':v2'))).toBeUndefined();
  });

  it('answers a manifest held only by digest, typed by its own bytes', async () => {
    const a = manifest('a');
    await layout().putManifest(ref(), a);
    await expect(readFile(join(dir, 'index.json'))).rejects.toMatchObject({ code: 'ENOENT' });
    expect(await layout().headManifest(ref().withDigest(a.digest))).toEqual({ digest: a.digest, mediaType: '', size: a.bytes.length });
    expect(await layout().getManifest(ref().withDigest(a.digest))).toEqual(a);
    expect(await layout().headManifest(ref().withDigest(manifest('b').digest))).toBeUndefined();
  });

  it('replaces what a tag named, and keeps the other tags', async () => {
    const [a, b] = [manifest('a'), manifest('b')];
    await layout().putManifest(ref(':v1'), a);
    await layout().putManifest(ref(':v2'), a);
    await layout().putManifest(ref(':v1'), b);
    const index = JSON.parse(await readFile(join(dir, 'index.json'), 'utf8')) as { manifests: Array<{ digest: string; annotations: Record<string, string> }> };
    expect(index.manifests.map((m) => [m.annotations[REF_NAME], m.digest])).toEqual([
      ['v2', a.digest],
      ['v1', b.digest],
    ]);
    expect(JSON.parse(await readFile(join(dir, 'oci-layout'), 'utf8'))).toEqual({ imageLayoutVersion: '1.0.0' });
  });

  it('reads `oci:DIR` as the only manifest, and refuses to guess among several', async () => {
    const [a, b] = [manifest('a'), manifest('b')];
    await layout().putManifest(ref(':v1'), a);
    expect((await layout().getManifest(ref())).digest).toBe(a.digest);
    await layout().putManifest(ref(':v2'), b);
    const error = await registryError(layout().getManifest(ref()));
    expect(error).toMatchObject({ code: 'MANIFEST_UNKNOWN', status: 0, method: 'READ' });
    expect(error.details[0].message).toBe('the layout holds 2 manifests: name one as oci:DIR:TAG (v1, v2)');
    await writeIndex({ schemaVersion: 2, manifests: [a, b].map((m) => ({ mediaType: m.mediaType, digest: m.digest, size: m.bytes.length })) });
    expect((await registryError(layout().getManifest(ref()))).details[0].message).toBe('the layout holds 2 manifests: name one as oci:DIR:TAG (none is named)');
  });

  it.each<[string, () => Promise<unknown>, string, string]>([
    ['no index.json', async () => undefined, 'NAME_UNKNOWN', 'DIR is no OCI image layout: it has no index.json'],
    ['a tag it does not name', () => layout().putManifest(ref(':v1'), manifest('a')), 'MANIFEST_UNKNOWN', 'no manifest in DIR/index.json is named "v2"'],
  ])('refuses a read with %s', async (_, setup, code, message) => {
    await setup();
    const error = await registryError(layout().getManifest(ref(':v2')));
    expect(error).toMatchObject({ code, method: 'READ', reference: ref(':v2').toString() });
    expect(error.details[0].message).toBe(message.replace('DIR', (ref().registry as LayoutRegistry).dir));
  });

  it('refuses a manifest missing from blobs/, changed on disk, or of another size than its entry says', async () => {
    const a = manifest('a');
    await layout().putManifest(ref(':v1'), a);
    await rm(join(dir, 'blobs', 'sha256', a.digest.slice(7)));
    expect((await registryError(layout().getManifest(ref(':v1')))).details[0].message).toBe(`manifest ${a.digest} is not in blobs/`);

    const changed = Buffer.from(a.bytes.toString().replace('"a"', '"z"'));
    await putBlob(a.digest, changed);
    const error = await registryError(layout().getManifest(ref(':v1')));
    expect(error.code).toBe('DIGEST_INVALID');
    expect(error.details[0].message).toBe(`blobs/ holds other bytes than manifest ${a.digest}: they hash to ${sha256(changed)}`);

    await putBlob(a.digest, a.bytes);
    await writeIndex({ schemaVersion: 2, manifests: [{ mediaType: a.mediaType, digest: a.digest, size: a.bytes.length + 1, annotations: { [REF_NAME]: 'v1' } }] });
    expect((await registryError(layout().getManifest(ref(':v1')))).code).toBe('DIGEST_INVALID');
  });

  it('types a manifest held by digest by its own index entry only', async () => {
    const [a, b] = [manifest('a'), manifest('b')];
    await layout().putManifest(ref(':v1'), a);
    await layout().putManifest(ref(), b);
    expect(await layout().headManifest(ref().withDigest(b.digest))).toEqual({ digest: b.digest, mediaType: '', size: b.bytes.length });
  });

  it('reads past index entries that have no name', async () => {
    const [a, b] = [manifest('a'), manifest('b')];
    await layout().putManifest(ref(), a);
    await writeIndex({ schemaVersion: 2, manifests: [{ mediaType: a.mediaType, digest: a.digest, size: a.bytes.length }] });
    expect(await layout().headManifest(ref(':v1'))).toBeUndefined();
    await layout().putManifest(ref(':v1'), b);
    expect(await layout().headManifest(ref(':v1'))).toMatchObject({ digest: b.digest });
    const index = JSON.parse(await readFile(join(dir, 'index.json'), 'utf8')) as { manifests: unknown[] };
    expect(index.manifests).toHaveLength(2);
  });

  it('reads a manifest of exactly 4 MiB (and finds it is not what its name says)', async () => {
    const digest = `sha256:${'e'.repeat(64)}`;
    await putBlob(digest, Buffer.alloc(MAX_MANIFEST_BYTES, 0x20));
    expect((await registryError(layout().getManifest(ref().withDigest(digest)))).code).toBe('DIGEST_INVALID');
  });

  it('refuses a manifest over 4 MiB before reading it', async () => {
    const digest = `sha256:${'e'.repeat(64)}`;
    await putBlob(digest, Buffer.alloc(0));
    await truncate(join(dir, 'blobs', 'sha256', 'e'.repeat(64)), MAX_MANIFEST_BYTES + 1);
    const error = await registryError(layout().getManifest(ref().withDigest(digest)));
    expect(error).toMatchObject({ code: 'MANIFEST_INVALID' });
    expect(error.details[0].message).toBe(`manifest of ${MAX_MANIFEST_BYTES + 1} bytes exceeds the ${MAX_MANIFEST_BYTES}-byte limit`);
  });

  it('refuses a digest that would name a path', async () => {
    const error = await registryError((async () => layout().headBlob(ref(), 'sha256:../../../etc/passwd'))());
    expect(error).toMatchObject({ code: 'DIGEST_INVALID' });
    expect(error.details[0].message).toBe('"sha256:../../../etc/passwd" is not a digest');
  });
});

describe('index.json', () => {
  it.each<[string, string, string]>([
    ['not JSON', '{"schemaVersion": 2,', 'index.json is not JSON'],
    ['an entry with a negative size', JSON.stringify({ schemaVersion: 2, manifests: [{ mediaType: MediaType.OciManifest, digest: `sha256:${'a'.repeat(64)}`, size: -1 }] }), 'index.json is not an image index: manifests.0.size: '],
    ['no manifests', JSON.stringify({ schemaVersion: 2 }), 'index.json is not an image index: manifests: '],
  ])('refuses one that is %s', async (_, text, message) => {
    await writeIndex(text);
    const error = await registryError(layout().headManifest(ref(':v1')));
    expect(error).toMatchObject({ code: 'MANIFEST_INVALID', method: 'READ' });
    expect(error.details[0]?.message).toContain(message);
  });

  it('reads one of exactly 64 MiB', async () => {
    await writeIndex('');
    await truncate(join(dir, 'index.json'), 64 * 1024 * 1024);
    expect((await registryError(layout().headManifest(ref(':v1')))).details[0]?.message).toBe('index.json is not JSON');
  });

  it('refuses one over 64 MiB without reading it', async () => {
    await writeIndex('');
    await truncate(join(dir, 'index.json'), 64 * 1024 * 1024 + 1);
    const error = await registryError(layout().headManifest(ref(':v1')));
    expect(error.details[0].message).toBe(`index.json has ${64 * 1024 * 1024 + 1} bytes, over the ${64 * 1024 * 1024}-byte limit`);
  });
});

describe('writing', () => {
  it('pushes a blob through ingest/ into blobs/, saying when it starts and ends, or pauses before it starts', async () => {
    const source = new MemoryStore();
    const from = parseReference('memory.test/app');
    const bytes = Buffer.from('a layer for the layout');
    const digest = source.addBlob(from, bytes);
    const events: ProgressEvent[] = [];
    const push = (pause: boolean): BlobPush => ({ source, sourceRef: from, targetRef: ref(), mode: 'monolithic', chunkSize: 1024, shouldPause: () => pause, onProgress: (e) => events.push(e) });

    expect(await layout().pushBlob(push(true), { mediaType: 'application/octet-stream', digest, size: bytes.length })).toBe('paused');
    expect(await layout().headBlob(ref(), digest)).toBeUndefined();
    expect(await layout().pushBlob(push(false), { mediaType: 'application/octet-stream', digest, size: bytes.length })).toBe('copied');
    expect(await readFile(join(dir, 'blobs', 'sha256', digest.slice(7)))).toEqual(bytes);
    expect(await readdir(join(dir, 'ingest'))).toEqual([]);
    const target = ref().name;
    expect(events[0]).toEqual({ type: 'blob-start', digest, size: bytes.length, target, offset: 0 });
    expect(events.at(-1)).toEqual({ type: 'blob-done', digest, size: bytes.length, target, outcome: 'copied' });
  });

  it('refuses manifest bytes that are not what their digest says, and writes nothing', async () => {
    const a = manifest('a');
    const error = await registryError(layout().putManifest(ref(':v1'), { ...a, digest: manifest('b').digest }));
    expect(error).toMatchObject({ code: 'DIGEST_INVALID', method: 'WRITE' });
    expect(error.details[0].message).toBe(`manifest bytes hash to ${a.digest}, not ${manifest('b').digest}`);
    await expect(readFile(join(dir, 'index.json'))).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it.each(['{"imageLayoutVersion":"2.0.0"}', 'not json', '{}'])('refuses a layout whose oci-layout is %s', async (text) => {
    await writeFile(join(dir, 'oci-layout'), text);
    const error = await registryError(layout().putManifest(ref(':v1'), manifest('a')));
    expect(error).toMatchObject({ code: 'UNSUPPORTED', method: 'WRITE' });
    expect(error.details[0].message).toBe('oci-layout does not say imageLayoutVersion "1.0.0", the only version Hoist writes');
  });

  it('checks the layout again after a refusal, once it is fixed', async () => {
    const store = layout();
    await writeFile(join(dir, 'oci-layout'), '{"imageLayoutVersion":"2.0.0"}');
    await registryError(store.putManifest(ref(':v1'), manifest('a')));
    await writeFile(join(dir, 'oci-layout'), '{"imageLayoutVersion":"1.0.0"}');
    await expect(store.putManifest(ref(':v1'), manifest('a'))).resolves.toEqual({ subjectProcessed: false });
  });
});
