/**
 * Reading the source graph on an in-memory store (no registry): each manifest fetched and listed
 * once however often the graph names it, platforms and attestations mapped only where an entry
 * has them, platform subsets and their refusals, and source-side failures named as the source's.
 */
import { CopyError } from '../../src/copy/errors.js';
import { MemoryStore } from '../../src/copy/memory-store.js';
import { readSourceGraph } from '../../src/copy/source-graph.js';
import type { SourceStore } from '../../src/copy/store.js';
import { sha256 } from '../../src/registry/digest.js';
import { RegistryError } from '../../src/registry/errors.js';
import { parseReference, type Reference } from '../../src/registry/reference.js';

const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
const OCI_INDEX = 'application/vnd.oci.image.index.v1+json';

interface Pushed {
  digest: string;
  bytes: Buffer;
  mediaType: string;
}

const repo = parseReference('memory.test/app');
let store: MemoryStore;

async function put(ref: Reference, mediaType: string, json: object): Promise<Pushed> {
  const bytes = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType, ...json }));
  const digest = sha256(bytes);
  await store.putManifest(ref, { digest, mediaType, bytes });
  return { digest, bytes, mediaType };
}

async function image(seed: string, extra: object = {}, ref: Reference = repo): Promise<Pushed> {
  const config = Buffer.from(JSON.stringify({ os: 'linux', seed }));
  const digest = store.addBlob(repo, config);
  return put(ref, OCI_MANIFEST, { config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest, size: config.length }, layers: [], ...extra });
}

function entry(pushed: Pushed, extra: object = {}): object {
  return { mediaType: pushed.mediaType, digest: pushed.digest, size: pushed.bytes.length, ...extra };
}

const on = (architecture: string, variant?: string) => ({ platform: { os: 'linux', architecture, ...(variant ? { variant } : {}) } });
const attesting = (pushed: Pushed) => ({
  platform: { os: 'unknown', architecture: 'unknown' },
  annotations: { 'vnd.docker.reference.type': 'attestation-manifest', 'vnd.docker.reference.digest': pushed.digest },
});

/** The store, counting every manifest fetch by digest or tag. */
function counting(inner: SourceStore): { store: SourceStore; fetches: Map<string, number> } {
  const fetches = new Map<string, number>();
  const store: SourceStore = {
    getManifest: (ref, signal) => {
      const key = ref.digest ?? ref.tag ?? '';
      fetches.set(key, (fetches.get(key) ?? 0) + 1);
      return inner.getManifest(ref, signal);
    },
    headManifest: (ref, signal) => inner.headManifest(ref, signal),
    headBlob: (ref, digest, signal) => inner.headBlob(ref, digest, signal),
    openBlob: (ref, digest, size, offset, signal) => inner.openBlob(ref, digest, size, offset, signal),
    referrers: (ref, digest, signal) => inner.referrers(ref, digest, signal),
  };
  return { store, fetches };
}

beforeEach(() => {
  store = new MemoryStore();
});

describe('readSourceGraph', () => {
  it('fetches and lists each manifest once, children before parents, however often the graph names it', async () => {
    const shared = await image('shared');
    const inner = await put(repo, OCI_INDEX, { manifests: [entry(shared, on('amd64'))] });
    // The shared image first, then an index that names it again; and the same entry twice.
    const root = await put(repo.withTag('v1'), OCI_INDEX, { manifests: [entry(shared, on('amd64')), entry(inner), entry(shared, on('amd64'))] });
    const { store: source, fetches } = counting(store);

    const graph = await readSourceGraph(source, repo.withTag('v1'));

    expect(graph.manifests.map((m) => m.manifest.digest)).toEqual([shared.digest, inner.digest, root.digest]);
    expect(Object.fromEntries(fetches)).toEqual({ v1: 1, [shared.digest]: 1, [inner.digest]: 1 });
  });

  it('names a missing source as the source side', async () => {
    const error = await readSourceGraph(store, repo.withTag('absent')).catch((e: unknown) => e);

    expect(error).toBeInstanceOf(CopyError);
    expect(error).toMatchObject({ code: 'SOURCE_NOT_FOUND', side: 'source' });
  });

  it('maps platforms and attestations only for the entries that carry them', async () => {
    const amd64 = await image('amd64');
    const provenance = await image('provenance');
    const inner = await put(repo, OCI_INDEX, { manifests: [entry(amd64, on('amd64'))] });
    await put(repo.withTag('v1'), OCI_INDEX, { manifests: [entry(amd64, on('amd64')), entry(provenance, attesting(amd64)), entry(inner)] });

    const graph = await readSourceGraph(store, repo.withTag('v1'));

    expect([...graph.platforms]).toEqual([
      [amd64.digest, 'linux/amd64'],
      [provenance.digest, 'unknown/unknown'],
    ]);
    expect([...graph.attestations]).toEqual([[provenance.digest, amd64.digest]]);
  });

  describe('a platform subset', () => {
    let amd64: Pushed;
    let arm64: Pushed;
    let armv7: Pushed;
    let provenance: Pushed;
    beforeEach(async () => {
      [amd64, arm64, armv7] = [await image('amd64'), await image('arm64'), await image('armv7')];
      provenance = await image('provenance');
      await put(repo.withTag('v1'), OCI_INDEX, {
        manifests: [entry(amd64, on('amd64')), entry(provenance, attesting(amd64)), entry(arm64, on('arm64')), entry(armv7, on('arm', 'v7'))],
        annotations: { 'org.example.kept': 'yes' },
      });
    });

    const listed = (top: { manifest: { bytes: Buffer } }) => (JSON.parse(top.manifest.bytes.toString('utf8')) as { manifests: Array<{ digest: string }> }).manifests.map((m) => m.digest);

    it('keeps every platform asked for, and the attestations of the images it keeps', async () => {
      const graph = await readSourceGraph(store, repo.withTag('v1'), { platforms: [{ os: 'linux', architecture: 'amd64' }, { os: 'linux', architecture: 'arm', variant: 'v7' }] });

      expect(listed(graph.top)).toEqual([amd64.digest, provenance.digest, armv7.digest]);
      expect(JSON.parse(graph.top.manifest.bytes.toString('utf8'))).toMatchObject({ annotations: { 'org.example.kept': 'yes' } });
      expect(graph.top.manifest.digest).toBe(sha256(graph.top.manifest.bytes));
      expect(graph.subset).toEqual({ platforms: ['linux/amd64', 'linux/arm/v7'], attestationsKept: [provenance.digest], attestationsDropped: [] });
      expect(graph.manifests.map((m) => m.manifest.digest)).toEqual([amd64.digest, provenance.digest, armv7.digest, graph.top.manifest.digest]);
    });

    it('drops the attestations of the images it drops', async () => {
      const graph = await readSourceGraph(store, repo.withTag('v1'), { platforms: [{ os: 'linux', architecture: 'arm64' }] });

      expect(listed(graph.top)).toEqual([arm64.digest]);
      expect(graph.subset).toEqual({ platforms: ['linux/arm64'], attestationsKept: [], attestationsDropped: [provenance.digest] });
    });

    it('names what is missing and the platforms there are, never an attestation', async () => {
      const error = await readSourceGraph(store, repo.withTag('v1'), { platforms: [{ os: 'linux', architecture: 's390x' }, { os: 'linux', architecture: 'amd64' }, { os: 'windows', architecture: 'amd64' }] }).catch((e: unknown) => e);

      expect(error).toBeInstanceOf(CopyError);
      expect(error).toMatchObject({ code: 'PLATFORM_NOT_FOUND', side: 'source', message: 'memory.test/app:v1 has no linux/s390x, windows/amd64; available platforms: linux/amd64, linux/arm64, linux/arm/v7' });
    });

    it('says "none" when no entry has a platform', async () => {
      await put(repo.withTag('bare'), OCI_INDEX, { manifests: [entry(amd64), entry(arm64)] });

      const error = await readSourceGraph(store, repo.withTag('bare'), { platforms: [{ os: 'linux', architecture: 'amd64' }] }).catch((e: unknown) => e);

      expect(error).toMatchObject({ code: 'PLATFORM_NOT_FOUND', message: 'memory.test/app:bare has no linux/amd64; available platforms: none' });
    });

    it('is refused for a single-platform manifest, naming its media type', async () => {
      await image('single', {}, repo.withTag('single'));

      const error = await readSourceGraph(store, repo.withTag('single'), { platforms: [{ os: 'linux', architecture: 'amd64' }] }).catch((e: unknown) => e);

      expect(error).toBeInstanceOf(CopyError);
      expect(error).toMatchObject({ code: 'PLATFORM_NOT_FOUND', side: 'source' });
      expect((error as Error).message).toBe(`memory.test/app:single is a single-platform manifest (${OCI_MANIFEST}), so --platform cannot select from it; copy it without --platform`);
    });
  });

  describe('referrers', () => {
    let subject: Pushed;
    let signature: Pushed;
    beforeEach(async () => {
      subject = await image('subject', {}, repo.withTag('v1'));
      signature = await image('signature', { subject: entry(subject) });
    });

    it('are not looked up unless asked for', async () => {
      await put(repo.withTag(subject.digest.replace(':', '-')), OCI_INDEX, { manifests: [entry(signature)] });

      const graph = await readSourceGraph(store, repo.withTag('v1'));

      expect(graph.manifests.map((m) => m.manifest.digest)).toEqual([subject.digest]);
      expect(graph.referrers.size).toBe(0);
    });

    it('are none when the source has neither a referrers API answer nor a fallback tag', async () => {
      const graph = await readSourceGraph(store, repo.withTag('v1'), { referrers: true });

      expect(graph.manifests.map((m) => m.manifest.digest)).toEqual([subject.digest]);
      expect(graph.referrers.size).toBe(0);
      expect(graph.fallbackIndexes.size).toBe(0);
    });

    it('come from the referrers API when the source has one, and the fallback tag is not read then', async () => {
      const other = await image('other signature', { subject: entry(subject) });
      await put(repo.withTag(subject.digest.replace(':', '-')), OCI_INDEX, { manifests: [entry(other)] });
      const source: SourceStore = Object.assign(Object.create(store) as MemoryStore, {
        referrers: (_ref: Reference, digest: string) => Promise.resolve(digest === subject.digest ? [entry(signature)] : []),
      });

      const graph = await readSourceGraph(source, repo.withTag('v1'), { referrers: true });

      expect(graph.referrers.get(subject.digest)?.map((m) => m.manifest.digest)).toEqual([signature.digest]);
      expect(graph.fallbackIndexes.size).toBe(0);
    });

    it('lists a referrer found both in the fallback index and under a cosign tag once', async () => {
      const fallbackTag = subject.digest.replace(':', '-');
      await put(repo.withTag(fallbackTag), OCI_INDEX, { manifests: [entry(signature)] });
      await store.putManifest(repo.withTag(`${fallbackTag}.sig`), { digest: signature.digest, mediaType: OCI_MANIFEST, bytes: signature.bytes });

      const graph = await readSourceGraph(store, repo.withTag('v1'), { referrers: true });

      expect(graph.manifests.map((m) => m.manifest.digest)).toEqual([subject.digest, signature.digest]);
      expect(graph.referrers.get(subject.digest)?.map((m) => m.manifest.digest)).toEqual([signature.digest]);
      expect(graph.cosignTags.map((c) => [c.tag, c.node.manifest.digest])).toEqual([[`${fallbackTag}.sig`, signature.digest]]);
    });

    const failing = new RegistryError({ code: 'UNKNOWN', status: 500, method: 'GET', url: 'memory.test/app', reference: 'memory.test/app' });

    it('names a failing referrers lookup as the source side', async () => {
      const source: SourceStore = Object.assign(Object.create(store) as MemoryStore, { referrers: () => Promise.reject(failing) });

      const error = await readSourceGraph(source, repo.withTag('v1'), { referrers: true }).catch((e: unknown) => e);

      expect(error).toBeInstanceOf(CopyError);
      expect(error).toMatchObject({ code: 'REGISTRY_ERROR', side: 'source', cause: failing });
    });

    it('fails, as the source side, when a cosign tag cannot be looked up', async () => {
      const source: SourceStore = Object.assign(Object.create(store) as MemoryStore, {
        headManifest: (ref: Reference) => (ref.tag?.endsWith('.sig') ? Promise.reject(failing) : store.headManifest(ref)),
      });

      const error = await readSourceGraph(source, repo.withTag('v1'), { referrers: true }).catch((e: unknown) => e);

      expect(error).toBeInstanceOf(CopyError);
      expect(error).toMatchObject({ code: 'REGISTRY_ERROR', side: 'source', cause: failing });
    });
  });
});
