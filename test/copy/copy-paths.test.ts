/**
 * The copy engine's paths, each against real distribution registries (behind a fault-injecting
 * proxy where a real registry cannot fail on cue).
 */
import { createServer, type IncomingHttpHeaders } from 'node:http';
import type { AddressInfo } from 'node:net';
import { copy, CopyError } from '../../src/copy/index.js';
import { deferred } from '../../src/copy/deferred.js';
import { parsePlatform } from '../../src/copy/platform.js';
import type { ProgressEvent } from '../../src/copy/types.js';
import {
  pushImageWithReferrers,
  pushOciIndexThreePlatforms,
  pushTwoImagesSharingLayers,
  pushImage,
  pushIndex,
  referrersTag,
  rawRequest,
} from '../helpers/fixtures.js';
import { corruptResponses, cutRequestBody, cutResponseBody, expireToken, failAfterForwarding, startProxy, tooManyRequests, type TestProxy } from '../helpers/proxy.js';
import { settledAccessLog, startRegistry, type TestRegistry } from '../helpers/registry.js';
import { skopeoInspectRaw } from '../helpers/skopeo.js';
import { RegistryHosts } from '../../src/registry/hosts.js';
import { forRegistry } from '../../src/registry/credentials.js';
import { aliased, credentialsFor, expectIdenticalInTarget, ref } from './support.js';

async function manifestStatus(registry: { url: string }, repository: string, reference: string): Promise<number> {
  const res = await rawRequest(`${registry.url}/v2/${repository}/manifests/${reference}`, {
    method: 'HEAD',
    headers: { accept: 'application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json, application/vnd.docker.distribution.manifest.list.v2+json' },
  });
  return res.status;
}

async function blobStatus(registry: { url: string }, repository: string, digest: string): Promise<number> {
  return (await rawRequest(`${registry.url}/v2/${repository}/blobs/${digest}`, { method: 'HEAD' })).status;
}

/** Settles after `ms` with 'guard': only so that a wrong order fails the test instead of hanging it. */
function guard(ms: number): Promise<'guard'> {
  return new Promise((resolve) => setTimeout(() => resolve('guard'), ms).unref());
}

function requestsSince(registry: TestRegistry, mark: number) {
  return registry.accessLog().slice(mark);
}

describe('copy paths (anonymous registries)', () => {
  let source: TestRegistry;
  let target: TestRegistry;
  beforeAll(async () => {
    [source, target] = await Promise.all([startRegistry(), startRegistry()]);
  });
  afterAll(async () => {
    await Promise.all([source?.stop(), target?.stop()]);
  });

  describe('platform subset', () => {
    it('copies only the chosen platform and writes a new index listing only it', async () => {
      const index = await pushOciIndexThreePlatforms(source, 'plat/app');
      const result = await copy({ source: ref(source, 'plat/app:multi'), targets: [ref(target, 'plat/app:arm64')], platforms: [parsePlatform('linux/arm64')] });
      expect(result.indexDigestChanged).toBe(true);
      expect(result.sourceDigest).toBe(index.digest);
      expect(result.targetDigest).not.toBe(index.digest);
      const written = JSON.parse((await skopeoInspectRaw(`${target.host}/plat/app:arm64`)).toString()) as { manifests: Array<{ digest: string; platform: { architecture: string } }> };
      expect(written.manifests.map((m) => m.platform.architecture)).toEqual(['arm64']);
      const arm64 = index.children.find((c) => c.descriptor.platform?.architecture === 'arm64')!;
      expect(written.manifests[0].digest).toBe(arm64.digest);
      expect((await skopeoInspectRaw(`${target.host}/plat/app@${arm64.digest}`)).equals(arm64.manifestBytes)).toBe(true);
      for (const other of index.children.filter((c) => c !== arm64)) {
        expect(await manifestStatus(target, 'plat/app', other.digest)).toBe(404);
      }
    });

    it('matches the variant when one is given', async () => {
      const index = await pushOciIndexThreePlatforms(source, 'plat/variant');
      const result = await copy({ source: ref(source, 'plat/variant:multi'), targets: [ref(target, 'plat/variant:v7')], platforms: [parsePlatform('linux/arm/v7')] });
      const arm = index.children.find((c) => c.descriptor.platform?.variant === 'v7')!;
      expect(result.manifests.map((m) => m.digest)).toContain(arm.digest);
      expect(result.manifests.find((m) => m.digest === arm.digest)?.platform).toBe('linux/arm/v7');
    });

    it('refuses a missing platform, listing those available, before writing anything', async () => {
      await pushOciIndexThreePlatforms(source, 'plat/missing');
      const mark = target.accessLog().length;
      const error = await copy({ source: ref(source, 'plat/missing:multi'), targets: [ref(target, 'plat/missing:x')], platforms: [parsePlatform('windows/amd64')] }).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(CopyError);
      expect((error as CopyError).code).toBe('PLATFORM_NOT_FOUND');
      expect((error as CopyError).message).toMatch(/no windows\/amd64; available platforms: linux\/amd64, linux\/arm64\/v8, linux\/arm\/v7/);
      expect(requestsSince(target, mark)).toEqual([]);
    });
  });

  describe('force, no-force and the same-digest no-op', () => {
    it('refuses to overwrite a tag before moving any bytes, and overwrites with force', async () => {
      await pushImage(source, 'force/a', 'v1', { layers: [1000] });
      await pushImage(source, 'force/b', 'v1', { layers: [2000] });
      await copy({ source: ref(source, 'force/a:v1'), targets: [ref(target, 'force/app:v1')] });

      const mark = target.accessLog().length;
      const error = await copy({ source: ref(source, 'force/b:v1'), targets: [ref(target, 'force/app:v1')] }).catch((e: unknown) => e);
      expect((error as CopyError).code).toBe('TAG_EXISTS');
      // The engine names no surface: the CLI and the API each add how to ask for force.
      expect((error as CopyError).message).toMatch(/^target tag already exists: .*force\/app:v1 \(now sha256:[0-9a-f]{64}\)$/);
      // Only the tag check reached the target: no upload started, no manifest written.
      expect(requestsSince(target, mark).filter((r) => r.method !== 'HEAD')).toEqual([]);

      const forced = await copy({ source: ref(source, 'force/b:v1'), targets: [ref(target, 'force/app:v1')], force: true });
      expect(forced.targets[0].written).toBe(true);
      const b = await skopeoInspectRaw(`${source.host}/force/b:v1`);
      expect((await skopeoInspectRaw(`${target.host}/force/app:v1`)).equals(b)).toBe(true);
    });

    it('re-checks the tag just before writing it: another writer that tagged meanwhile wins, and the copy fails TAG_EXISTS', async () => {
      await pushImage(source, 'race/src', 'v1', { layers: [3000] });
      let otherWriter: ReturnType<typeof pushImage> | undefined;
      // The first check has passed once blobs start moving: the other writer tags the target
      // before the registry sees the copy's first upload, so only the second check can see it.
      const proxy = await startProxy(target.url, [
        (request) => {
          if (request.method !== 'POST' || !request.pathname.startsWith('/v2/race/app/blobs/uploads/')) return undefined;
          otherWriter ??= pushImage(target, 'race/app', 'v1', { layers: [4000], seed: 'the other writer' });
          return { type: 'forward', waitFor: otherWriter };
        },
      ]);
      try {
        const error = await copy({ source: ref(source, 'race/src:v1'), targets: [ref(proxy, 'race/app:v1')] }).catch((e: unknown) => e);
        expect(otherWriter).toBeDefined();
        const theirs = await otherWriter!;
        expect(error).toBeInstanceOf(CopyError);
        expect((error as CopyError).code).toBe('TAG_EXISTS');
        expect((error as CopyError).side).toBe('target');
        expect((error as CopyError).message).toContain(theirs.digest);
        // The copy never wrote the tag: it still names the other writer's manifest.
        expect(proxy.requests.filter((r) => r.method === 'PUT' && r.path.includes('/manifests/'))).toEqual([]);
        expect((await skopeoInspectRaw(`${target.host}/race/app:v1`)).equals(theirs.manifestBytes)).toBe(true);
      } finally {
        await proxy.stop();
      }
    });

    it('reports success with nothing written when the tag already points at the digest', async () => {
      await pushImage(source, 'noop/a', 'v1', { layers: [1000] });
      await copy({ source: ref(source, 'noop/a:v1'), targets: [ref(target, 'noop/a:v1')] });
      const mark = target.accessLog().length;
      const again = await copy({ source: ref(source, 'noop/a:v1'), targets: [ref(target, 'noop/a:v1')] });
      expect(again.targets).toEqual([expect.objectContaining({ written: false })]);
      expect(again.manifests).toEqual([]);
      expect(again.blobs).toMatchObject({ copied: 0, skipped: 2, mounted: 0 });
      expect(requestsSince(target, mark).filter((r) => !['HEAD', 'GET'].includes(r.method))).toEqual([]);
    });
  });

  describe('skip and mount', () => {
    it('skips blobs the target has and mounts those another target repository holds', async () => {
      const images = await pushTwoImagesSharingLayers(source, 'share/src');
      // Copies sharing a RegistryHosts share its mount hints (the worker's do, across jobs).
      const hosts = new RegistryHosts();
      await copy({ source: ref(source, `share/src:${images.first.tag}`), targets: [ref(target, 'share/one:x')] }, { hosts });
      const shared = images.second.blobs.filter((b) => images.first.blobs.some((f) => f.digest === b.digest));
      expect(shared.length).toBeGreaterThan(0);

      let mark = target.accessLog().length;
      const mounted = await copy({ source: ref(source, `share/src:${images.second.tag}`), targets: [ref(target, 'share/two:x')] }, { hosts });
      expect(mounted.blobs.mounted).toBe(shared.length);
      const mounts = requestsSince(target, mark).filter((r) => r.method === 'POST' && r.uri.includes('mount='));
      expect(mounts.filter((r) => r.status === 201).map((r) => new URLSearchParams(r.uri.split('?')[1]).get('mount')).sort()).toEqual(shared.map((b) => b.digest).sort());

      mark = target.accessLog().length;
      const skipped = await copy({ source: ref(source, `share/src:${images.second.tag}`), targets: [ref(target, 'share/one:y')] }, { hosts });
      expect(skipped.blobs.skipped).toBe(shared.length);
      const uploads = requestsSince(target, mark).filter((r) => r.method === 'POST');
      expect(uploads).toHaveLength(images.second.blobs.length - shared.length);
    });

    it('checks blobs over kept-alive connections, not a new one per HEAD', async () => {
      const image = await pushImage(source, 'keepalive/src', 'v1', { layers: Array.from({ length: 30 }, (_, i) => 1000 + i) });
      const proxy = await startProxy(target.url);
      try {
        const result = await copy({ source: ref(source, 'keepalive/src:v1'), targets: [ref(proxy, 'keepalive/dst:v1')] }, { concurrency: 2 });
        expect(result.blobs.copied).toBe(image.blobs.length);
        const heads = proxy.requests.filter((r) => r.method === 'HEAD');
        expect(heads.length).toBeGreaterThanOrEqual(image.blobs.length);
        // A connection per HEAD (undici closes one after every HEAD) would make more connections
        // than there are HEADs; kept alive, the checks share at most 16 (the HEAD concurrency).
        expect(proxy.connections).toBeLessThan(heads.length);
      } finally {
        await proxy.stop();
      }
    });

    it('moves a blob as soon as its own check answers, and still reports the plan first', async () => {
      const image = await pushImage(source, 'early/src', 'v1', { layers: [2000, 3000, 4000] });
      const slow = image.blobs[image.blobs.length - 1]!;
      // The last blob's HEAD is held until another blob's upload reaches the target: a copy that
      // waited for every check before moving anything would never get there (the guard then
      // releases it, and the test fails on which came first).
      const firstUpload = deferred<'upload'>();
      const proxy = await startProxy(target.url, [
        (request) => (request.method === 'PUT' && request.pathname.includes('/blobs/uploads/') ? (firstUpload.resolve('upload'), undefined) : undefined),
        (request) => (request.method === 'HEAD' && request.pathname.endsWith(slow.digest) ? { type: 'forward', waitFor: released } : undefined),
      ]);
      const released = Promise.race([firstUpload.promise, guard(10_000)]);
      const events: ProgressEvent[] = [];
      try {
        const result = await copy({ source: ref(source, 'early/src:v1'), targets: [ref(proxy, 'early/dst:v1')] }, { concurrency: 1, onProgress: (e) => events.push(e) });
        expect(result.blobs.copied).toBe(image.blobs.length);
        expect(await released).toBe('upload');
        const types = events.map((e) => e.type);
        expect(types.indexOf('plan')).toBeLessThan(types.indexOf('blob-start'));
        expect(types.filter((t) => t === 'blob-done')).toHaveLength(image.blobs.length);
      } finally {
        await proxy.stop();
      }
    });

    it('asks the source for a blob while the target is still opening its upload session', async () => {
      const image = await pushImage(source, 'earlyget/src', 'v1', { layers: [5000] });
      // Each upload POST is held until the source has been asked for that blob: a copy that
      // waited for the session before asking would never get there (the guard then releases it).
      const gets: Array<ReturnType<typeof deferred<'get'>>> = image.blobs.map(() => deferred<'get'>());
      let getCount = 0;
      let postCount = 0;
      const released: Array<Promise<'get' | 'guard'>> = [];
      const slowTarget = await startProxy(target.url, [
        (request) => {
          if (request.method !== 'POST') return undefined;
          const waiting = Promise.race([gets[postCount++]!.promise, guard(10_000)]);
          released.push(waiting);
          return { type: 'forward', waitFor: waiting };
        },
      ]);
      const watchedSource = await startProxy(source.url, [(request) => (request.method === 'GET' && request.pathname.includes('/blobs/') ? (gets[getCount++]?.resolve('get'), undefined) : undefined)]);
      try {
        await copy({ source: ref(watchedSource, 'earlyget/src:v1'), targets: [ref(slowTarget, 'earlyget/dst:v1')] }, { concurrency: 1 });
        // One blob at a time: each blob's GET went out while its POST was still unanswered.
        expect(getCount).toBe(image.blobs.length);
        expect(await Promise.all(released)).toEqual(image.blobs.map(() => 'get'));
        await expectIdenticalInTarget(target, 'earlyget/dst', 'v1', [image]);
      } finally {
        await Promise.all([slowTarget.stop(), watchedSource.stop()]);
      }
    });

    it('mounts into one target repository what another target of the same copy holds', async () => {
      const spec = { seed: 'multi-target', layers: [{ size: 3000, seed: 'multi-0' }, { size: 4000, seed: 'multi-1' }] };
      const image = await pushImage(source, 'multi/src', 'v1', spec);
      const held = await pushImage(target, 'multi/held', 'x', spec);
      const shared = image.blobs.filter((b) => held.blobs.some((h) => h.digest === b.digest));
      expect(shared.length).toBeGreaterThanOrEqual(2);
      const mark = target.accessLog().length;
      const result = await copy({ source: ref(source, 'multi/src:v1'), targets: [ref(target, 'multi/new:v1'), ref(target, 'multi/held:v1')] });
      // multi/held skips what it has; multi/new mounts those from it. The rest crosses once:
      // copied into one repository, then mounted into the other.
      const rest = image.blobs.length - shared.length;
      expect(result.blobs).toMatchObject({ mounted: shared.length + rest, skipped: shared.length, copied: rest });
      const log = (await settledAccessLog(target)).slice(mark);
      const mounts = log.filter((r) => r.method === 'POST' && r.status === 201);
      const from = mounts.map((r) => new URLSearchParams(r.uri.split('?')[1]).get('from'));
      expect(from.filter((f) => f === 'multi/held').length).toBeGreaterThanOrEqual(shared.length);
      expect(from.filter((f) => f === 'multi/new' || f === 'multi/held')).toHaveLength(shared.length + rest);
      // Each blob's bytes were sent once: one closing PUT per copied blob.
      expect(log.filter((r) => r.method === 'PUT' && r.uri.includes('/blobs/uploads/'))).toHaveLength(rest);
    });

    it('mounts from the source repository when source and target are one registry', async () => {
      const image = await pushImage(source, 'same/src', 'v1', { layers: [3000, 4000] });
      const mark = source.accessLog().length;
      const result = await copy({ source: ref(source, 'same/src:v1'), targets: [ref(source, 'same/dst:v1')] });
      expect(result.blobs.mounted).toBe(image.blobs.length);
      expect(requestsSince(source, mark).filter((r) => r.method === 'POST' && r.uri.includes('from=same%2Fsrc') && r.status === 201)).toHaveLength(image.blobs.length);
      expect(requestsSince(source, mark).filter((r) => r.method === 'PATCH' || (r.method === 'PUT' && r.uri.includes('/blobs/')))).toEqual([]);
    });
  });

  describe('several targets and digest-only copies', () => {
    it('writes several tags, and copies untagged by digest', async () => {
      const image = await pushImage(source, 'multi/src', 'v1', { layers: [1500] });
      const result = await copy({
        source: ref(source, 'multi/src:v1'),
        targets: [ref(target, 'multi/a:one'), ref(target, 'multi/a:two'), ref(target, 'multi/b').withRepository('multi/b')],
      });
      expect(result.targets.map((t) => [t.reference.replace(target.host, ''), t.written])).toEqual([
        ['/multi/a:one', true],
        ['/multi/a:two', true],
        [`/multi/b@${image.digest}`, true],
      ]);
      expect((await skopeoInspectRaw(`${target.host}/multi/b@${image.digest}`)).equals(image.manifestBytes)).toBe(true);
      const tags = await rawRequest(`${target.url}/v2/multi/b/tags/list`, { method: 'GET' });
      expect(JSON.parse(tags.body.toString()).tags ?? []).toEqual([]);
    });
  });

  describe('a source tag that moves during the copy', () => {
    it('changes nothing: the copy finishes with the digest it resolved first', async () => {
      // A layer uploaded in many small chunks keeps the copy busy while the tag moves.
      const first = await pushImage(source, 'moving/src', 'v1', { layers: [4_000_000] });
      let moved: Awaited<ReturnType<typeof pushImage>> | undefined;
      const result = await copy(
        { source: ref(source, 'moving/src:v1'), targets: [ref(target, 'moving/dst:v1')] },
        {
          uploadMode: 'chunked',
          chunkSizeInBytes: 16_384,
          onProgress: (event) => {
            if (event.type === 'plan' && !moved) void pushImage(source, 'moving/src', 'v1', { layers: [2000] }).then((m) => (moved = m));
          },
        },
      );
      // The tag had moved before the copy wrote its own.
      expect(moved).toBeDefined();
      expect(moved!.digest).not.toBe(first.digest);
      expect(result.targetDigest).toBe(first.digest);
      expect((await skopeoInspectRaw(`${target.host}/moving/dst:v1`)).equals(first.manifestBytes)).toBe(true);
    });
  });

  describe('referrers', () => {
    it('merges into an existing fallback index on the target without dropping entries', async () => {
      const signed = await pushImageWithReferrers(source, 'refs/app');
      // Someone else already attached a referrer to the same subject on the target.
      const other = await pushImage(target, 'refs/app', undefined, { artifactType: 'application/vnd.other', layers: [10], subject: { mediaType: signed.image.mediaType, digest: signed.image.digest, size: signed.image.manifestBytes.length } });
      await pushIndex(target, 'refs/app', referrersTag(signed.image.digest), [other]);

      const mark = target.accessLog().length;
      await copy({ source: ref(source, 'refs/app:signed'), targets: [ref(target, 'refs/app:signed')], referrers: true });
      // The subject is in place before its referrer, for registries that check.
      const puts = requestsSince(target, mark).filter((r) => r.method === 'PUT').map((r) => r.uri);
      expect(puts.indexOf(`/v2/refs/app/manifests/${signed.image.digest}`)).toBeGreaterThanOrEqual(0);
      expect(puts.indexOf(`/v2/refs/app/manifests/${signed.image.digest}`)).toBeLessThan(puts.indexOf(`/v2/refs/app/manifests/${signed.referrer.digest}`));
      const merged = JSON.parse((await skopeoInspectRaw(`${target.host}/refs/app:${referrersTag(signed.image.digest)}`)).toString()) as { manifests: Array<{ digest: string }> };
      expect(merged.manifests.map((m) => m.digest).sort()).toEqual([other.digest, signed.referrer.digest].sort());
      expect((await skopeoInspectRaw(`${target.host}/refs/app:${referrersTag(signed.image.digest)}.sig`)).equals(signed.signature.manifestBytes)).toBe(true);
      expect((await skopeoInspectRaw(`${target.host}/refs/app@${signed.referrer.digest}`)).equals(signed.referrer.manifestBytes)).toBe(true);
    });

    it('copies no referrers unless asked', async () => {
      const signed = await pushImageWithReferrers(source, 'refs/plain');
      await copy({ source: ref(source, 'refs/plain:signed'), targets: [ref(target, 'refs/plain:signed')] });
      expect(await manifestStatus(target, 'refs/plain', signed.referrer.digest)).toBe(404);
    });
  });

  describe('faults', () => {
    let proxy: TestProxy | undefined;
    afterEach(async () => {
      await proxy?.stop();
      proxy = undefined;
    });

    it('rejects a source serving corrupted bytes, with nothing tagged (monolithic and chunked)', async () => {
      const image = await pushImage(source, 'corrupt/src', 'v1', { layers: [200_000] });
      proxy = await startProxy(source.url, [corruptResponses({ offset: 100 })]);
      for (const uploadMode of ['monolithic', 'chunked'] as const) {
        const error = await copy({ source: ref(proxy, 'corrupt/src:v1'), targets: [ref(target, `corrupt/${uploadMode}:v1`)] }, { uploadMode, chunkSizeInBytes: 65536 }).catch((e: unknown) => e);
        expect(error).toBeInstanceOf(CopyError);
        expect((error as CopyError).code).toBe('INTEGRITY');
        // Hoist's own check blamed the source: the registry's check of the upload (side
        // 'target') would also fail the copy, but only after the corrupt bytes had been sent.
        expect((error as CopyError).side).toBe('source');
        expect((error as CopyError).message).toMatch(/nothing was tagged/);
        expect(await manifestStatus(target, `corrupt/${uploadMode}`, 'v1')).toBe(404);
        // Every blob the proxy corrupted (those longer than the offset) is absent from the target.
        for (const blob of image.blobs.filter((b) => b.size > 100)) expect(await blobStatus(target, `corrupt/${uploadMode}`, blob.digest), blob.digest).toBe(404);
      }
    });

    it('honours Retry-After on 429', async () => {
      const image = await pushImage(source, 'throttle/src', 'v1', { layers: [500] });
      proxy = await startProxy(source.url, [tooManyRequests({ path: /\/manifests\//, times: 2, retryAfterSeconds: 1 })]);
      // The hosts' pause clock, faked: it records each wait and moves on at once, so the test
      // checks the waits asked for, not how long the machine took (a wall-clock lower bound).
      let now = Date.now();
      const waits: number[] = [];
      const clock = {
        now: () => now,
        sleep: async (ms: number) => {
          waits.push(ms);
          now += ms;
        },
      };
      const result = await copy({ source: ref(proxy, 'throttle/src:v1'), targets: [ref(target, 'throttle/dst:v1')] }, { hosts: new RegistryHosts({ clock }) });
      expect(result.targetDigest).toBe(image.digest);
      expect(proxy.requests.slice(0, 3).map((r) => r.status)).toEqual([429, 429, 200]);
      // Two waits of Retry-After: 1 s each.
      expect(waits).toEqual([1000, 1000]);
    });

    it('resumes a blob download cut mid-way with a Range request', async () => {
      const image = await pushImage(source, 'cut/src', 'v1', { layers: [300_000] });
      const layer = image.blobs[1];
      proxy = await startProxy(source.url, [cutResponseBody({ path: new RegExp(`/blobs/${layer.digest}$`), afterBytes: 100_000 })]);
      const result = await copy({ source: ref(proxy, 'cut/src:v1'), targets: [ref(target, 'cut/dst:v1')] });
      expect(result.bytes.moved).toBe(image.blobs.reduce((s, b) => s + b.size, 0));
      const gets = proxy.requests.filter((r) => r.method === 'GET' && r.path.endsWith(layer.digest));
      expect(gets.map((r) => [r.cut, r.status])).toEqual([
        [true, 200],
        [false, 206],
      ]);
      await expectIdenticalInTarget(target, 'cut/dst', 'v1', [image]);
    });

    it("raises the chunk size to the registry's OCI-Chunk-Min-Length", async () => {
      const image = await pushImage(source, 'minchunk/src', 'v1', { layers: [300_000] });
      // distribution 2.8 sends no OCI-Chunk-Min-Length; the proxy adds it to upload POSTs.
      proxy = await startProxy(target.url, [(request) => (request.method === 'POST' && request.pathname.endsWith('/blobs/uploads/') ? { type: 'forward', addResponseHeaders: { 'OCI-Chunk-Min-Length': '131072' } } : undefined)]);
      await copy({ source: ref(source, 'minchunk/src:v1'), targets: [ref(proxy, 'minchunk/dst:v1')] }, { uploadMode: 'chunked', chunkSizeInBytes: 16_384 });
      const patches = target.accessLog().filter((r) => r.method === 'PATCH' && r.uri.startsWith('/v2/minchunk/dst/'));
      // 300 000 bytes in 128 KiB chunks is 3 chunks (16 KiB chunks would be 19): two PATCHes, the
      // last chunk going with the closing PUT; the config fits in its PUT alone.
      expect(patches).toHaveLength(2);
      await expectIdenticalInTarget(target, 'minchunk/dst', 'v1', [image]);
    });

    it('refuses a schema1 source with a clear message', async () => {
      proxy = await startProxy(source.url, [
        (request) =>
          request.method === 'GET' && request.pathname.endsWith('/manifests/legacy')
            ? { type: 'respond', status: 200, headers: { 'Content-Type': 'application/vnd.docker.distribution.manifest.v1+prettyjws' }, body: JSON.stringify({ schemaVersion: 1, name: 'old/app', tag: 'legacy', fsLayers: [], history: [] }) }
            : undefined,
      ]);
      const error = await copy({ source: ref(proxy, 'old/app:legacy'), targets: [ref(target, 'old/app:legacy')] }).catch((e: unknown) => e);
      expect((error as CopyError).code).toBe('UNSUPPORTED_MANIFEST');
      expect((error as CopyError).message).toMatch(/schema1 .*re-push the image/);
    });

    it('never resends a chunk the registry may have appended: asks it what it holds instead', async () => {
      const image = await pushImage(source, 'patch503/src', 'v1', { layers: [300_000] });
      // The layer's second PATCH reaches the registry, which appends it; the client gets a 503.
      let layerPatches = 0;
      const fail = failAfterForwarding({ path: /\/blobs\/uploads\//, method: 'PATCH', status: 503 });
      proxy = await startProxy(target.url, [(request) => (request.method === 'PATCH' && request.headers['content-length'] === '65536' && ++layerPatches === 2 ? fail(request) : undefined)]);
      const result = await copy({ source: ref(source, 'patch503/src:v1'), targets: [ref(proxy, 'patch503/dst:v1')] }, { uploadMode: 'chunked', chunkSizeInBytes: 65536, concurrency: 1 });
      expect(result.status).toBe('completed');
      const failed = proxy.requests.filter((r) => r.status === 503);
      expect(failed).toHaveLength(1);
      // Next on that session: a status GET, and never the same PATCH again. (distribution then
      // reports the session lost, its state token being one chunk old, so the blob starts over.)
      const sent = proxy.requests.map((r) => `${r.method} ${r.path}`);
      expect(sent[failed[0]!.index + 1]).toBe(`GET ${failed[0]!.path}`);
      expect(sent.filter((line) => line === `PATCH ${failed[0]!.path}`)).toHaveLength(1);
      await expectIdenticalInTarget(target, 'patch503/dst', 'v1', [image]);
    });

    it('sends a chunk none of which landed again, reading its bytes again from the source at its offset', async () => {
      const image = await pushImage(source, 'patchagain/src', 'v1', { layers: [300_000] });
      const layer = image.blobs.find((b) => b.size === 300_000)!;
      // The layer's second PATCH is refused before the registry sees it: the status GET then finds
      // the session where it was, and the chunk goes again. Chunks are not kept in memory, so its
      // bytes come again from the source, by a ranged GET from the chunk's first byte.
      let layerPatches = 0;
      proxy = await startProxy(target.url, [
        (request) => (request.method === 'PATCH' && request.headers['content-length'] === '65536' && ++layerPatches === 2 ? { type: 'respond', status: 503, body: '{"errors":[{"code":"UNAVAILABLE","message":"busy"}]}', headers: { 'content-type': 'application/json' } } : undefined),
      ]);
      const ranges: Array<string | undefined> = [];
      const sourceProxy = await startProxy(source.url, [
        (request) => {
          if (request.method === 'GET' && request.pathname.endsWith(`/blobs/${layer.digest}`)) ranges.push(request.headers.range);
          return undefined;
        },
      ]);
      try {
        const result = await copy({ source: ref(sourceProxy, 'patchagain/src:v1'), targets: [ref(proxy, 'patchagain/dst:v1')] }, { uploadMode: 'chunked', chunkSizeInBytes: 65536, concurrency: 1 });
        expect(result.status).toBe('completed');
      } finally {
        await sourceProxy.stop();
      }
      const refused = proxy.requests.filter((r) => r.status === 503);
      expect(refused).toHaveLength(1);
      // The same chunk again on the same session (its status GET between), then the rest.
      const sent = proxy.requests.slice(refused[0]!.index + 1).map((r) => `${r.method} ${r.status}`);
      expect(sent.slice(0, 2)).toEqual(['GET 204', 'PATCH 202']);
      expect(ranges).toEqual([undefined, 'bytes=65536-']);
      await expectIdenticalInTarget(target, 'patchagain/dst', 'v1', [image]);
    });

    it('never commits wrong bytes re-read for a chunk sent again: the registry refuses them, and the blob starts over from a verified read', async () => {
      const image = await pushImage(source, 'patchlie/src', 'v1', { layers: [300_000] });
      const layer = image.blobs.find((b) => b.size === 300_000)!;
      let layerPatches = 0;
      proxy = await startProxy(target.url, [
        (request) => (request.method === 'PATCH' && request.headers['content-length'] === '65536' && ++layerPatches === 2 ? { type: 'respond', status: 503, body: '{"errors":[{"code":"UNAVAILABLE","message":"busy"}]}', headers: { 'content-type': 'application/json' } } : undefined),
      ]);
      // Every ranged read of the layer is corrupt: bytes Hoist cannot hash, since it did not read
      // those before them in the same pass.
      const sourceProxy = await startProxy(source.url, [(request) => (request.method === 'GET' && request.pathname.endsWith(`/blobs/${layer.digest}`) && request.headers.range ? { type: 'forward', corruptResponseByteAt: 0 } : undefined)]);
      try {
        const result = await copy({ source: ref(sourceProxy, 'patchlie/src:v1'), targets: [ref(proxy, 'patchlie/dst:v1')] }, { uploadMode: 'chunked', chunkSizeInBytes: 65536, concurrency: 1 });
        expect(result.status).toBe('completed');
        // Read whole, read again from the refused chunk (corrupt), read whole again after the refusal.
        expect(sourceProxy.requests.filter((r) => r.path.endsWith(layer.digest)).map((r) => r.status)).toEqual([200, 206, 200]);
      } finally {
        await sourceProxy.stop();
      }
      // The commit carrying the corrupt chunk was refused by the registry's digest check.
      const commits = proxy.requests.filter((r) => r.method === 'PUT' && r.path.includes(`digest=${encodeURIComponent(layer.digest)}`));
      expect(commits.map((r) => r.status)).toEqual([400, 201]);
      await expectIdenticalInTarget(target, 'patchlie/dst', 'v1', [image]);
    });

    it('finds the blob committed when the answer to its closing PUT (with the last chunk) is lost', async () => {
      const image = await pushImage(source, 'put503/src', 'v1', { layers: [150_000] });
      const layer = image.blobs.find((b) => b.size === 150_000)!;
      const fail = failAfterForwarding({ path: new RegExp(`/blobs/uploads/.*digest=${encodeURIComponent(layer.digest)}`), method: 'PUT', status: 503 });
      proxy = await startProxy(target.url, [fail]);
      const result = await copy({ source: ref(source, 'put503/src:v1'), targets: [ref(proxy, 'put503/dst:v1')] }, { uploadMode: 'chunked', chunkSizeInBytes: 65536, concurrency: 1 });
      expect(result.status).toBe('completed');
      expect(result.blobs.copied).toBe(image.blobs.length);
      // The PUT was not resent: a status GET found no session, a HEAD found the blob.
      const failed = proxy.requests.find((r) => r.status === 503)!;
      expect(proxy.requests.filter((r) => r.method === 'PUT' && r.path === failed.path)).toHaveLength(1);
      expect(proxy.requests.slice(failed.index + 1, failed.index + 3).map((r) => `${r.method} ${r.status}`)).toEqual(['GET 404', 'HEAD 200']);
      await expectIdenticalInTarget(target, 'put503/dst', 'v1', [image]);
    });

    it('says where a last chunk sent with the closing PUT goes, unless it is the whole blob', async () => {
      const image = await pushImage(source, 'putrange/src', 'v1', { layers: [150_000] });
      const layer = image.blobs.find((b) => b.size === 150_000)!;
      const config = image.blobs.find((b) => b !== layer)!;
      const ranges = new Map<string, string | undefined>();
      proxy = await startProxy(target.url, [
        (request) => {
          const digest = /[?&]digest=([^&]+)/.exec(request.path)?.[1];
          if (request.method === 'PUT' && digest) ranges.set(decodeURIComponent(digest), request.headers['content-range'] as string | undefined);
          return undefined;
        },
      ]);
      await copy({ source: ref(source, 'putrange/src:v1'), targets: [ref(proxy, 'putrange/dst:v1')] }, { uploadMode: 'chunked', chunkSizeInBytes: 65536, concurrency: 1 });
      expect(ranges.get(layer.digest)).toBe('131072-149999');
      expect(ranges.get(config.digest)).toBeUndefined();
      await expectIdenticalInTarget(target, 'putrange/dst', 'v1', [image]);
    });

    it('sends the last chunk by PATCH to a registry that refuses bytes on the closing PUT', async () => {
      const image = await pushImage(source, 'putbody/src', 'v1', { layers: [150_000, 100_000] });
      proxy = await startProxy(target.url, [
        (request) =>
          request.method === 'PUT' && request.pathname.includes('/blobs/uploads/') && Number(request.headers['content-length'] ?? 0) > 0
            ? { type: 'respond', status: 400, headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ errors: [{ code: 'BLOB_UPLOAD_INVALID', message: 'no bytes on PUT here' }] }) }
            : undefined,
      ]);
      const result = await copy({ source: ref(source, 'putbody/src:v1'), targets: [ref(proxy, 'putbody/dst:v1')] }, { uploadMode: 'chunked', chunkSizeInBytes: 65536, concurrency: 1 });
      expect(result.blobs.copied).toBe(image.blobs.length);
      // Refused once; every later blob closed with an empty PUT after its PATCHes.
      expect(proxy.requests.filter((r) => r.status === 400)).toHaveLength(1);
      await expectIdenticalInTarget(target, 'putbody/dst', 'v1', [image]);
    });

    it('leaves no transfer running once a copy has failed', async () => {
      await pushImage(source, 'stopall/src', 'v1', { layers: [300_000] });
      // Target one takes 300 ms per PATCH; target two refuses every blob HEAD.
      const slow = await startProxy(target.url, [(request) => (request.method === 'PATCH' ? { type: 'forward', delayMs: 300 } : undefined)]);
      const denying = await startProxy(target.url, [
        (request) =>
          request.method === 'HEAD' && request.pathname.includes('/blobs/')
            ? { type: 'respond', status: 403, headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ errors: [{ code: 'DENIED', message: 'no' }] }) }
            : undefined,
      ]);
      try {
        const error = await copy({ source: ref(source, 'stopall/src:v1'), targets: [ref(slow, 'stopall/one:v1'), ref(denying, 'stopall/two:v1')] }, { uploadMode: 'chunked', chunkSizeInBytes: 65536 }).catch((e: unknown) => e);
        expect((error as CopyError).code).toBe('AUTH_FAILED');
        const patchesAtFailure = slow.requests.filter((r) => r.method === 'PATCH').length;
        await new Promise((resolve) => setTimeout(resolve, 1000));
        expect(slow.requests.filter((r) => r.method === 'PATCH')).toHaveLength(patchesAtFailure);
      } finally {
        await Promise.all([slow.stop(), denying.stop()]);
      }
    });

    it('restarts a blob whose chunk upload was cut (distribution 2.8 invalidates the session)', async () => {
      const image = await pushImage(source, 'patchcut/src', 'v1', { layers: [300_000] });
      // The layer's first PATCH is cut (the config, smaller than a chunk, goes in its PUT alone).
      proxy = await startProxy(target.url, [cutRequestBody({ path: /\/blobs\/uploads\//, method: 'PATCH', afterBytes: 30_000 })]);
      const result = await copy({ source: ref(source, 'patchcut/src:v1'), targets: [ref(proxy, 'patchcut/dst:v1')] }, { uploadMode: 'chunked', chunkSizeInBytes: 65536, concurrency: 1 });
      expect(result.status).toBe('completed');
      expect(proxy.requests.filter((r) => r.cut)).toHaveLength(1);
      await expectIdenticalInTarget(target, 'patchcut/dst', 'v1', [image]);
    });
  });
});

describe('copy with token auth', () => {
  let source: TestRegistry;
  let target: TestRegistry;
  beforeAll(async () => {
    [source, target] = await Promise.all([startRegistry({ auth: 'token' }), startRegistry({ auth: 'token' })]);
  });
  afterAll(async () => {
    await Promise.all([source?.stop(), target?.stop()]);
  });

  it('refreshes a token that expires mid-copy', async () => {
    const image = await pushImage(source, 'tok/src', 'v1', { layers: [1000, 2000, 3000, 4000] });
    const proxy = await startProxy(target.url, [expireToken({ afterRequests: 4 })]);
    try {
      const credentials = credentialsFor(source, target);
      const before = target.tokenIssuer!.requests.length;
      const result = await copy({ source: ref(source, 'tok/src:v1'), targets: [ref(proxy, 'tok/dst:v1')] }, { hosts: new RegistryHosts({ credentials: aliased(credentials, proxy, target) }), concurrency: 1 });
      expect(result.status).toBe('completed');
      expect(proxy.requests.filter((r) => r.action === 'expiredToken').length).toBeGreaterThan(0);
      expect(target.tokenIssuer!.requests.length - before).toBeGreaterThanOrEqual(2);
      await expectIdenticalInTarget(target, 'tok/dst', 'v1', [image]);
    } finally {
      await proxy.stop();
    }
  });

  it('renews tokens before they expire: a copy spanning several token lifetimes meets no 401 after the first challenge', async () => {
    // Hoist and the token issuer (in this process) share a faked Date that the test moves 3 s
    // on after every blob; the proxy refuses, as the registry would, any token past its `exp`
    // by a registry clock 5 s ahead of that one (the skew and transit time Hoist's renewal
    // margin is there for). The registry itself checks with the real clock and 60 s of
    // leeway, which the 36 s moved here stay within.
    const TTL_SECONDS = 12;
    const REGISTRY_CLOCK_AHEAD_MS = 5_000;
    const short = await startRegistry({ auth: 'token', tokenTtlSeconds: TTL_SECONDS });
    const expiredByTestClock = (request: { bearerToken?: string }) => {
      if (!request.bearerToken) return undefined;
      const claims = JSON.parse(Buffer.from(request.bearerToken.split('.')[1], 'base64url').toString('utf8')) as { exp: number };
      return claims.exp * 1000 <= Date.now() + REGISTRY_CLOCK_AHEAD_MS ? ({ type: 'invalidToken', label: 'pastExp' } as const) : undefined;
    };
    const proxy = await startProxy(short.url, [expiredByTestClock]);
    const image = await pushImage(source, 'renew/src', 'v1', { layers: Array.from({ length: 11 }, (_, i) => 500 + i) });
    vi.useFakeTimers({ toFake: ['Date'] });
    try {
      const credentials = credentialsFor(source, short);
      const start = Date.now();
      const result = await copy(
        { source: ref(source, 'renew/src:v1'), targets: [ref(proxy, 'renew/dst:v1')] },
        {
          hosts: new RegistryHosts({ credentials: aliased(credentials, proxy, short) }),
          concurrency: 1,
          onProgress: (event) => {
            if (event.type === 'blob-done') vi.setSystemTime(Date.now() + 3_000);
          },
        },
      );
      expect(result.blobs.copied).toBe(12);
      expect(Date.now() - start).toBeGreaterThanOrEqual(3 * TTL_SECONDS * 1000);
      // Several lifetimes, so several tokens; and none was ever used past its expiry.
      expect(short.tokenIssuer!.requests.length).toBeGreaterThanOrEqual(3);
      expect(proxy.requests.filter((r) => r.action === 'pastExp')).toEqual([]);
      // The only 401s are the challenges of requests sent before Hoist had a token for their scope.
      expect(proxy.requests.filter((r) => r.status === 401).length).toBeLessThanOrEqual(2);
      vi.useRealTimers();
      await expectIdenticalInTarget(short, 'renew/dst', 'v1', [image]);
    } finally {
      vi.useRealTimers();
      await proxy.stop();
      await short.stop();
    }
  });

  it('follows a blob redirect to another host without sending the registry credentials', async () => {
    const layer = Buffer.from('layer bytes served from object storage');
    const image = await pushImage(source, 'redirect/src', 'v1', { layers: [{ data: layer }] });
    const storageHeaders: IncomingHttpHeaders[] = [];
    const storage = createServer((req, res) => {
      storageHeaders.push(req.headers);
      res.end(layer);
    });
    await new Promise<void>((resolve) => storage.listen(0, '127.0.0.1', resolve));
    const storageUrl = `http://127.0.0.1:${(storage.address() as AddressInfo).port}/blob?sig=x`;
    const layerPath = `/blobs/${image.blobs[1].digest}`;
    const proxy = await startProxy(source.url, [(request) => (request.method === 'GET' && request.pathname.endsWith(layerPath) ? { type: 'respond', status: 307, headers: { Location: storageUrl } } : undefined)]);
    try {
      const credentials = credentialsFor(source, target);
      const result = await copy({ source: ref(proxy, 'redirect/src:v1'), targets: [ref(target, 'redirect/dst:v1')] }, { hosts: new RegistryHosts({ credentials: aliased(credentials, proxy, source) }) });
      // The registry's own requests did carry the token.
      expect(proxy.requests.filter((r) => r.status === 401).length).toBeGreaterThan(0);
      expect(result.status).toBe('completed');
      expect(storageHeaders).toHaveLength(1);
      expect(storageHeaders[0].authorization).toBeUndefined();
      await expectIdenticalInTarget(target, 'redirect/dst', 'v1', [image]);
    } finally {
      storage.close();
      await proxy.stop();
    }
  });

  it('restarts a streaming blob upload whose token expired under it', async () => {
    const image = await pushImage(source, 'tokput/src', 'v1', { layers: [50_000] });
    const proxy = await startProxy(target.url, [expireToken({ afterRequests: 0, path: /\/blobs\/uploads\/.*digest=/ })]);
    try {
      const credentials = credentialsFor(source, target);
      const result = await copy({ source: ref(source, 'tokput/src:v1'), targets: [ref(proxy, 'tokput/dst:v1')] }, { hosts: new RegistryHosts({ credentials: aliased(credentials, proxy, target) }), concurrency: 1 });
      expect(result.blobs.copied).toBe(2);
      expect(proxy.requests.filter((r) => r.method === 'PUT' && r.status === 401)).toHaveLength(1);
      await expectIdenticalInTarget(target, 'tokput/dst', 'v1', [image]);
    } finally {
      await proxy.stop();
    }
  });

  it('asks for pull on `from` and push on the target in one token to mount', async () => {
    await pushImage(source, 'mount/src', 'v1', { layers: [1000] });
    const credentials = credentialsFor(source);
    const before = source.tokenIssuer!.requests.length;
    const result = await copy({ source: ref(source, 'mount/src:v1'), targets: [ref(source, 'mount/dst:v1')] }, { hosts: new RegistryHosts({ credentials }) });
    expect(result.blobs.mounted).toBe(2);
    const scopes = source.tokenIssuer!.requests.slice(before).map((r) => [...r.scope].sort());
    expect(scopes).toContainEqual(['repository:mount/dst:pull,push', 'repository:mount/src:pull']);
  });

  it('fails with AUTH_FAILED and a clear message for wrong credentials', async () => {
    await pushImage(source, 'auth/src', 'v1', { layers: [100] });
    const error = await copy({ source: ref(source, 'auth/src:v1'), targets: [ref(target, 'auth/dst:v1')] }, { hosts: new RegistryHosts({ credentials: forRegistry(source.host, { username: 'alice', password: 'wrong' }) }) }).catch((e: unknown) => e);
    expect((error as CopyError).code).toBe('AUTH_FAILED');
    expect((error as CopyError).side).toBe('source');
    expect((error as CopyError).message).toMatch(/UNAUTHORIZED.*check the credentials/);
    expect((error as CopyError).message).not.toContain('wrong');
  });
});
