/**
 * The engine on its store interfaces, without a registry: copies between in-memory repositories
 * (fast, exact) and through OCI image layouts on disk (atomic writes, one index.json writer at a
 * time, verified reads).
 */
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, rm, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { copy } from '../../src/copy/engine.js';
import { CopyError } from '../../src/copy/errors.js';
import { parseLayoutReference } from '../../src/copy/layout-reference.js';
import { MemoryStore } from '../../src/copy/memory-store.js';
import { defaultStores } from '../../src/copy/stores.js';
import type { Stores } from '../../src/copy/store.js';
import { sha256 } from '../../src/registry/digest.js';
import { RegistryHosts } from '../../src/registry/hosts.js';
import { parseReference, type Reference } from '../../src/registry/reference.js';

const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
const OCI_INDEX = 'application/vnd.oci.image.index.v1+json';
const REF_NAME = 'org.opencontainers.image.ref.name';

interface Pushed {
  digest: string;
  bytes: Buffer;
  blobs: string[];
}

/** An image of one layer, put into `store` under `ref` (by digest when `ref` has no tag). */
async function putImage(store: MemoryStore, ref: Reference, seed: string, extra: Record<string, unknown> = {}): Promise<Pushed> {
  const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', seed }));
  const layer = Buffer.from(`layer of ${seed}\n`.repeat(100));
  const [c, l] = [store.addBlob(ref, config), store.addBlob(ref, layer)];
  const bytes = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: OCI_MANIFEST, config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: c, size: config.length }, layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar', digest: l, size: layer.length }], ...extra }));
  const digest = sha256(bytes);
  await store.putManifest(ref, { digest, mediaType: OCI_MANIFEST, bytes });
  return { digest, bytes, blobs: [c, l] };
}

async function putIndex(store: MemoryStore, ref: Reference, children: Array<{ image: Pushed; arch: string }>): Promise<Pushed> {
  const bytes = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: OCI_INDEX, manifests: children.map(({ image, arch }) => ({ mediaType: OCI_MANIFEST, digest: image.digest, size: image.bytes.length, platform: { os: 'linux', architecture: arch } })) }));
  const digest = sha256(bytes);
  await store.putManifest(ref, { digest, mediaType: OCI_INDEX, bytes });
  return { digest, bytes, blobs: [] };
}

let source: MemoryStore;
let index: Pushed;
let amd64: Pushed;
let arm64: Pushed;
const src = parseReference('memory.test/app:v1');

beforeEach(async () => {
  source = new MemoryStore();
  amd64 = await putImage(source, src.withRepository('app'), 'amd64');
  arm64 = await putImage(source, src.withRepository('app'), 'arm64');
  index = await putIndex(source, src, [
    { image: amd64, arch: 'amd64' },
    { image: arm64, arch: 'arm64' },
  ]);
});

/** The source's store for the source, `target` for everything else. */
function between(target: MemoryStore | Stores): Stores {
  const to = target instanceof MemoryStore ? target.stores : target;
  return { source: () => source, target: (ref) => to.target(ref) };
}

describe('copy between in-memory stores', () => {
  it('copies an index with every child and blob, children first, and tags it last', async () => {
    const target = new MemoryStore();
    const dst = parseReference('memory.test/copy:v1');
    const result = await copy({ source: src, targets: [dst] }, { stores: between(target) });
    expect(result.status).toBe('completed');
    expect(result.targets).toEqual([{ reference: dst.toString(), digest: index.digest, written: true }]);
    expect(result.manifests.map((m) => m.digest)).toEqual([amd64.digest, arm64.digest, index.digest]);
    expect((await target.getManifest(dst)).bytes.equals(index.bytes)).toBe(true);
    for (const digest of [...amd64.blobs, ...arm64.blobs]) expect(target.blob(dst, digest)?.equals(source.blob(src, digest)!)).toBe(true);
    expect(result.blobs).toEqual({ total: 4, copied: 4, skipped: 0, mounted: 0 });
  });

  it('leaves a tag at the same digest alone, refuses one elsewhere without force, and moves it with force', async () => {
    const target = new MemoryStore();
    const dst = parseReference('memory.test/copy:v1');
    await copy({ source: src, targets: [dst] }, { stores: between(target) });
    const again = await copy({ source: src, targets: [dst] }, { stores: between(target) });
    expect(again.targets[0].written).toBe(false);
    expect(again.blobs.skipped).toBe(4);

    const other = src.withDigest(amd64.digest);
    const refused = await copy({ source: other, targets: [dst] }, { stores: between(target) }).catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(CopyError);
    expect((refused as CopyError).code).toBe('TAG_EXISTS');
    expect(target.tags(dst).get('v1')).toBe(index.digest);

    const forced = await copy({ source: other, targets: [dst], force: true }, { stores: between(target) });
    expect(forced.targets[0]).toMatchObject({ digest: amd64.digest, written: true });
    expect(target.tags(dst).get('v1')).toBe(amd64.digest);
  });

  it('copies a platform subset as a new index of the chosen child', async () => {
    const target = new MemoryStore();
    const dst = parseReference('memory.test/arm:v1');
    const result = await copy({ source: src, targets: [dst], platforms: [{ os: 'linux', architecture: 'arm64' }] }, { stores: between(target) });
    const written = await target.getManifest(dst);
    expect(written.digest).toBe(result.targetDigest);
    expect((JSON.parse(written.bytes.toString('utf8')) as { manifests: Array<{ digest: string }> }).manifests.map((m) => m.digest)).toEqual([arm64.digest]);
    expect(target.blob(dst, amd64.blobs[1])).toBeUndefined();
  });

  it('copies referrers and keeps the target fallback tag index', async () => {
    const repo = src.withRepository('app');
    const sbom = await putImage(source, repo, 'sbom', { artifactType: 'application/vnd.example.sbom', subject: { mediaType: OCI_INDEX, digest: index.digest, size: index.bytes.length } });
    const fallback = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: OCI_INDEX, manifests: [{ mediaType: OCI_MANIFEST, digest: sbom.digest, size: sbom.bytes.length, artifactType: 'application/vnd.example.sbom' }] }));
    await source.putManifest(repo.withTag(index.digest.replace(':', '-')), { digest: sha256(fallback), mediaType: OCI_INDEX, bytes: fallback });

    const target = new MemoryStore();
    const dst = parseReference('memory.test/signed:v1');
    await copy({ source: src, targets: [dst], referrers: true }, { stores: between(target) });
    expect((await target.getManifest(dst.withDigest(sbom.digest))).bytes.equals(sbom.bytes)).toBe(true);
    expect((await target.getManifest(dst.withTag(index.digest.replace(':', '-')))).bytes.equals(fallback)).toBe(true);
  });

  it('fails with INTEGRITY and tags nothing when a source blob is not what its digest says', async () => {
    const repo = src.withRepository('app');
    // Same digest key, other bytes: the store hands out what it holds, the copy must notice.
    source.blob(repo, amd64.blobs[1])!.write('X', 0);
    const target = new MemoryStore();
    const dst = parseReference('memory.test/bad:v1');
    const error = await copy({ source: src, targets: [dst] }, { stores: between(target) }).catch((e: unknown) => e);
    expect((error as CopyError).code).toBe('INTEGRITY');
    expect(target.tags(dst).size).toBe(0);
    expect(target.blob(dst, amd64.blobs[1])).toBeUndefined();
  });
});

describe('copy into and out of an OCI image layout', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'hoist-layout-store-'));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });
  const layoutStores = () => defaultStores(new RegistryHosts());

  it('round-trips memory → layout → memory byte for byte', async () => {
    const layout = parseLayoutReference(`oci:${dir}:v1`);
    await copy({ source: src, targets: [layout] }, { stores: between(layoutStores()) });
    const target = new MemoryStore();
    const back = parseReference('memory.test/back:v1');
    const stores = layoutStores();
    await copy({ source: layout, targets: [back] }, { stores: { source: (ref) => stores.source(ref), target: () => target } });
    expect((await target.getManifest(back)).bytes.equals(index.bytes)).toBe(true);
    for (const digest of [...amd64.blobs, ...arm64.blobs]) expect(target.blob(back, digest)?.equals(source.blob(src, digest)!)).toBe(true);
  });

  it('keeps every tag when copies write one layout at the same time', async () => {
    const tags = ['a', 'b', 'c', 'd', 'e', 'f'];
    // Separate stores, as separate copies have: only the layout's own serialisation keeps index.json whole.
    await Promise.all(tags.map((tag) => copy({ source: src, targets: [parseLayoutReference(`oci:${dir}:${tag}`)] }, { stores: between(layoutStores()) })));
    const written = JSON.parse(await readFile(join(dir, 'index.json'), 'utf8')) as { manifests: Array<{ digest: string; annotations: Record<string, string> }> };
    expect(written.manifests.map((m) => m.annotations[REF_NAME]).sort()).toEqual(tags);
    expect(new Set(written.manifests.map((m) => m.digest))).toEqual(new Set([index.digest]));
    expect(existsSync(join(dir, 'index.json.lock'))).toBe(false);
  });

  it('waits for another process holding index.json.lock, then writes its tag', async () => {
    await mkdir(dir, { recursive: true });
    const lock = join(dir, 'index.json.lock');
    await writeFile(lock, '99999');
    const copying = copy({ source: src, targets: [parseLayoutReference(`oci:${dir}:v1`)] }, { stores: between(layoutStores()) });
    // Everything but the index is written while the lock is held: the tag's manifest lands in blobs/.
    await vi.waitFor(() => expect(existsSync(join(dir, 'blobs/sha256', index.digest.slice(7)))).toBe(true), { timeout: 10_000 });
    expect(existsSync(join(dir, 'index.json'))).toBe(false);
    await rm(lock);
    expect((await copying).targets[0].written).toBe(true);
    expect(existsSync(lock)).toBe(false);
  });

  it('takes over an index.json.lock a killed writer left behind', async () => {
    await mkdir(dir, { recursive: true });
    const lock = join(dir, 'index.json.lock');
    await writeFile(lock, '99999');
    const longAgo = new Date(Date.now() - 10 * 60_000);
    await utimes(lock, longAgo, longAgo);
    const result = await copy({ source: src, targets: [parseLayoutReference(`oci:${dir}:v1`)] }, { stores: between(layoutStores()) });
    expect(result.targets[0].written).toBe(true);
    expect(existsSync(lock)).toBe(false);
  });

  it('leaves no blob, no index entry and nothing in ingest/ when a blob fails verification', async () => {
    source.blob(src.withRepository('app'), amd64.blobs[1])!.write('X', 0);
    const error = await copy({ source: src, targets: [parseLayoutReference(`oci:${dir}:v1`)] }, { stores: between(layoutStores()), concurrency: 1 }).catch((e: unknown) => e);
    expect((error as CopyError).code).toBe('INTEGRITY');
    expect(existsSync(join(dir, 'blobs/sha256', amd64.blobs[1].slice(7)))).toBe(false);
    expect(existsSync(join(dir, 'index.json'))).toBe(false);
    expect(await readdir(join(dir, 'ingest'))).toEqual([]);
  });

  it('clears what a killed copy left in ingest/ an hour ago, and leaves a live writer\'s file alone', async () => {
    await mkdir(join(dir, 'ingest'), { recursive: true });
    const [stale, live] = [join(dir, 'ingest', 'left-by-a-killed-copy'), join(dir, 'ingest', 'being-written')];
    await writeFile(stale, 'half a blob');
    await writeFile(live, 'a blob on its way');
    const longAgo = new Date(Date.now() - 2 * 60 * 60_000);
    await utimes(stale, longAgo, longAgo);
    await copy({ source: src, targets: [parseLayoutReference(`oci:${dir}:v1`)] }, { stores: between(layoutStores()) });
    expect(await readdir(join(dir, 'ingest'))).toEqual(['being-written']);
  });

  it('refuses a layout blob whose bytes were changed on disk', async () => {
    const layout = parseLayoutReference(`oci:${dir}:v1`);
    await copy({ source: src, targets: [layout] }, { stores: between(layoutStores()) });
    const path = join(dir, 'blobs/sha256', arm64.blobs[1].slice(7));
    const bytes = await readFile(path);
    bytes.write('Y', 0);
    await writeFile(path, bytes);
    const stores = layoutStores();
    const target = new MemoryStore();
    const error = await copy({ source: layout, targets: [parseReference('memory.test/back:v1')] }, { stores: { source: (ref) => stores.source(ref), target: () => target } }).catch((e: unknown) => e);
    expect((error as CopyError).code).toBe('INTEGRITY');
    expect(target.tags(parseReference('memory.test/back:v1')).size).toBe(0);
  });
});
