/**
 * An OCI image layout directory (image-spec image-layout.md) as a copy's source and target:
 * `oci-layout` ({"imageLayoutVersion": "1.0.0"}), `index.json` naming manifests by their
 * `org.opencontainers.image.ref.name` annotation, and content in `blobs/<alg>/<hex>`, which
 * skopeo, umoci, oras and podman read.
 *
 * Nothing is ever half-written where a reader looks: a blob streams into `ingest/` (oras-go's
 * name for it), is checked against its descriptor, synced and renamed into `blobs/`; index.json is
 * replaced the same way, by one writer at a time (in this process, and across processes by an
 * `index.json.lock` file). A killed copy leaves at most a file in `ingest/`, never a half blob
 * or an index entry naming missing content. Every read is bounded and verified.
 */
import { once } from 'node:events';
import { randomUUID } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, readdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { Transform, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import * as v from 'valibot';
import { manifestMediaType, MAX_MANIFEST_BYTES, type Descriptor, type Manifest, type ManifestHead } from '../registry/client.js';
import { sha256 } from '../registry/digest.js';
import { RegistryError } from '../registry/errors.js';
import { MediaType } from '../registry/media-types.js';
import { parseDigest, type Reference } from '../registry/reference.js';
import { sleep } from '../registry/retry.js';
import { asCopyError, openPushSource } from './blob-transfer.js';
import { safeJson } from './json-object.js';
import type { LayoutRegistry } from './layout-reference.js';
import type { BlobPush, SourceStore, TargetStore } from './store.js';
import type { BlobOutcome } from './types.js';
import { verifiedStream } from './verified-stream.js';

/** The annotation that names an index.json entry (image-spec annotations.md). */
export const REF_NAME = 'org.opencontainers.image.ref.name';
/** The only layout version the image spec defines. */
const LAYOUT_VERSION = '1.0.0';
/**
 * index.json grows by one small descriptor (~300 bytes) per tag: 64 MiB is some 200,000 tags,
 * and bounds what a hostile or broken file costs to read.
 */
const MAX_INDEX_BYTES = 64 * 1024 * 1024;
/** Resumes of a non-distributable layer's URL read (a layout has no host retry policy of its own). */
const URL_RESUMES = 3;
/** A lock file older than this was left by a killed writer: index updates take milliseconds. */
const STALE_LOCK_MS = 30_000;
/** An ingest/ file unwritten for this long was left by a killed copy: live writers touch theirs with every chunk. */
const STALE_INGEST_MS = 60 * 60 * 1000;
/** How often a writer waiting for another process's index.json lock looks again. */
const LOCK_POLL_MS = 20;
/** Monolithic progress is reported at most this often, as for registries. */
const PROGRESS_INTERVAL_MS = 250;

const LayoutFileSchema = v.object({ imageLayoutVersion: v.string() });
const IndexSchema = v.looseObject({
  schemaVersion: v.number(),
  manifests: v.array(
    v.looseObject({
      mediaType: v.string(),
      digest: v.string(),
      size: v.pipe(v.number(), v.safeInteger(), v.minValue(0)),
      annotations: v.optional(v.record(v.string(), v.string())),
    }),
  ),
});
type LayoutIndex = v.InferOutput<typeof IndexSchema>;
type IndexEntry = LayoutIndex['manifests'][number];

/** Index writers of this process, per layout path: each waits for the one before. */
const indexWriters = new Map<string, Promise<unknown>>();

/** An OCI image layout directory. Its Reference is `oci:DIR[:TAG]` (layout-reference.ts). */
export class OciLayout implements SourceStore, TargetStore {
  private ready?: Promise<void>;

  constructor(private readonly registry: LayoutRegistry) {}

  private get dir(): string {
    return this.registry.path;
  }

  async headManifest(ref: Reference): Promise<ManifestHead | undefined> {
    if (ref.digest) {
      const size = await this.heldSize(ref.digest);
      const entry = (await this.readIndex(ref))?.manifests.find((m) => m.digest === ref.digest);
      return size === undefined ? undefined : { digest: ref.digest, mediaType: entry?.mediaType ?? '', size };
    }
    const index = await this.readIndex(ref);
    const entry = index && this.findEntry(ref, index);
    return entry && { digest: entry.digest, mediaType: entry.mediaType, size: entry.size };
  }

  async getManifest(ref: Reference): Promise<Manifest> {
    let entry: IndexEntry | undefined;
    if (!ref.digest) {
      const index = await this.readIndex(ref);
      if (!index) throw this.error('NAME_UNKNOWN', 'READ', ref, `${this.registry.dir} is no OCI image layout: it has no index.json`);
      entry = this.findEntry(ref, index);
    }
    const digest = ref.digest ?? entry?.digest;
    if (!digest) throw this.error('MANIFEST_UNKNOWN', 'READ', ref, `no manifest in ${this.registry.dir}/index.json is named "${ref.tag ?? ''}"`);
    const path = this.blobPath(digest, ref);
    const size = await this.heldSize(digest);
    if (size === undefined) throw this.error('MANIFEST_UNKNOWN', 'READ', ref, `manifest ${digest} is not in blobs/`);
    if (size > MAX_MANIFEST_BYTES) throw this.error('MANIFEST_INVALID', 'READ', ref, `manifest of ${size} bytes exceeds the ${MAX_MANIFEST_BYTES}-byte limit`);
    const bytes = await readFile(path);
    if (sha256(bytes) !== digest || (entry && entry.size !== bytes.length)) {
      throw this.error('DIGEST_INVALID', 'READ', ref, `blobs/ holds other bytes than manifest ${digest}: they hash to ${sha256(bytes)}`);
    }
    return { digest, mediaType: entry?.mediaType ?? manifestMediaType(undefined, bytes), bytes };
  }

  headBlob(ref: Reference, digest: string): Promise<number | undefined> {
    this.blobPath(digest, ref);
    return this.heldSize(digest);
  }

  openBlob(ref: Reference, digest: string, size: number, offset = 0): Readable {
    const what = `blob ${ref.withDigest(digest)}`;
    const missing = (error: Error) => ((error as NodeJS.ErrnoException).code === 'ENOENT' ? this.error('BLOB_UNKNOWN', 'READ', ref.withDigest(digest), `blob ${digest} is not in blobs/`) : error);
    return verifiedStream(createReadStream(this.blobPath(digest, ref), { start: offset }), { digest, size, offset }, what, missing);
  }

  /** A layout has no referrers API: referrers live under the tag schema's `sha256-<hex>` names, as in a registry without one. */
  referrers(): Promise<Descriptor[] | undefined> {
    return Promise.resolve(undefined);
  }

  /** Writes the manifest's bytes into blobs/, and when `ref` has a tag, names it in index.json (replacing what the name held). */
  async putManifest(ref: Reference, manifest: Manifest): Promise<{ subjectProcessed: boolean }> {
    await this.ensureLayout(ref);
    if (sha256(manifest.bytes) !== manifest.digest) throw this.error('DIGEST_INVALID', 'WRITE', ref, `manifest bytes hash to ${sha256(manifest.bytes)}, not ${manifest.digest}`);
    if ((await this.heldSize(manifest.digest)) !== manifest.bytes.length) {
      await this.commitFile(this.blobPath(manifest.digest, ref), (temp) => writeSynced(temp, manifest.bytes));
    }
    const tag = ref.tag;
    if (tag) {
      await this.updateIndex(ref, (index) => {
        const entry: IndexEntry = { mediaType: manifest.mediaType, digest: manifest.digest, size: manifest.bytes.length, annotations: { [REF_NAME]: tag } };
        index.manifests = [...index.manifests.filter((m) => m.annotations?.[REF_NAME] !== tag), entry];
      });
    }
    return { subjectProcessed: false };
  }

  /** Streams the blob into ingest/, checks its size (the source stream checks its digest), syncs it and renames it into blobs/. */
  async pushBlob(push: BlobPush, blob: Descriptor): Promise<BlobOutcome | 'paused'> {
    if (push.shouldPause()) return 'paused';
    const target = push.targetRef.name;
    try {
      await this.ensureLayout(push.targetRef);
      const path = this.blobPath(blob.digest, push.targetRef);
      push.onProgress({ type: 'blob-start', digest: blob.digest, size: blob.size, target, offset: 0 });
      const source = await openPushSource(push, blob, URL_RESUMES);
      let done = 0;
      let last = 0;
      const counter = new Transform({
        transform(chunk: Buffer, _encoding, callback) {
          done += chunk.length;
          const now = Date.now();
          if (now - last >= PROGRESS_INTERVAL_MS) {
            last = now;
            push.onProgress({ type: 'blob-progress', digest: blob.digest, size: blob.size, target, bytesDone: done });
          }
          callback(null, chunk);
        },
      });
      await this.commitFile(path, async (temp) => {
        // `flush` syncs the file before it closes.
        const file = createWriteStream(temp, { flags: 'wx', flush: true });
        try {
          await pipeline(source, counter, file);
        } finally {
          // A failed pipeline destroys the file stream while its open may still be pending: wait
          // until it is closed, so that commitFile's cleanup deletes the file instead of racing
          // its creation (which left it in ingest/).
          if (!file.closed) await once(file, 'close');
        }
        if (done !== blob.size) throw this.error('SIZE_INVALID', 'WRITE', push.targetRef.withDigest(blob.digest), `got ${done} bytes, the descriptor says ${blob.size}`);
      });
    } catch (error) {
      throw asCopyError(error, blob);
    }
    push.onProgress({ type: 'blob-done', digest: blob.digest, size: blob.size, target, outcome: 'copied' });
    return 'copied';
  }

  noteHeld(): void {
    // Nothing to remember: a layout has no mounts.
  }

  /** blobs/<alg>/<hex>, for a digest checked first: a digest names a file, so it must not name a path. */
  private blobPath(digest: string, ref: Reference): string {
    try {
      parseDigest(digest);
    } catch {
      throw this.error('DIGEST_INVALID', 'READ', ref, `"${digest}" is not a digest`);
    }
    const [algorithm, hex] = digest.split(':');
    return join(this.dir, 'blobs', algorithm, hex);
  }

  private async heldSize(digest: string): Promise<number | undefined> {
    const [algorithm, hex] = digest.split(':');
    try {
      const info = await stat(join(this.dir, 'blobs', algorithm, hex));
      return info.isFile() ? info.size : undefined;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT' || (error as NodeJS.ErrnoException).code === 'ENOTDIR') return undefined;
      throw error;
    }
  }

  /** The index.json entry `ref` names: by tag, or, with neither tag nor digest, the layout's only manifest (as skopeo reads `oci:DIR`). */
  private findEntry(ref: Reference, index: LayoutIndex): IndexEntry | undefined {
    if (ref.tag) return index.manifests.find((m) => m.annotations?.[REF_NAME] === ref.tag);
    if (index.manifests.length > 1) {
      const names = index.manifests.map((m) => m.annotations?.[REF_NAME]).filter((n) => n !== undefined);
      throw this.error('MANIFEST_UNKNOWN', 'READ', ref, `the layout holds ${index.manifests.length} manifests: name one as oci:DIR:TAG (${names.join(', ') || 'none is named'})`);
    }
    return index.manifests[0];
  }

  /** index.json, read bounded and checked; undefined when the directory holds no layout yet. */
  private async readIndex(ref: Reference): Promise<LayoutIndex | undefined> {
    const path = join(this.dir, 'index.json');
    let size: number;
    try {
      size = (await stat(path)).size;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT' || (error as NodeJS.ErrnoException).code === 'ENOTDIR') return undefined;
      throw error;
    }
    if (size > MAX_INDEX_BYTES) throw this.error('MANIFEST_INVALID', 'READ', ref, `index.json has ${size} bytes, over the ${MAX_INDEX_BYTES}-byte limit`);
    let json: unknown;
    try {
      json = JSON.parse(await readFile(path, 'utf8'));
    } catch {
      throw this.error('MANIFEST_INVALID', 'READ', ref, 'index.json is not JSON');
    }
    const parsed = v.safeParse(IndexSchema, json);
    if (!parsed.success) throw this.error('MANIFEST_INVALID', 'READ', ref, `index.json is not an image index: ${v.getDotPath(parsed.issues[0]) ?? 'the document'}: ${parsed.issues[0].message}`);
    return parsed.output;
  }

  /**
   * Changes index.json as `change` says: one writer at a time in this process (a queue per
   * layout) and across processes (index.json.lock), the new file synced and renamed over the old.
   */
  private updateIndex(ref: Reference, change: (index: LayoutIndex) => void): Promise<void> {
    const previous = indexWriters.get(this.dir) ?? Promise.resolve();
    const next = previous.catch(() => undefined).then(async () => {
      const unlock = await this.lockIndex();
      try {
        const index = (await this.readIndex(ref)) ?? { schemaVersion: 2, mediaType: MediaType.OciIndex, manifests: [] };
        change(index);
        await this.commitFile(join(this.dir, 'index.json'), (temp) => writeSynced(temp, JSON.stringify(index)));
      } finally {
        await unlock();
      }
    });
    indexWriters.set(this.dir, next);
    // The queue forgets a layout once its last writer is done, so it does not grow with layouts.
    void next.finally(() => indexWriters.get(this.dir) === next && indexWriters.delete(this.dir)).catch(() => undefined);
    return next;
  }

  /** Takes index.json.lock (create-exclusive); takes it over when a killed writer left it stale. */
  private async lockIndex(): Promise<() => Promise<void>> {
    const path = join(this.dir, 'index.json.lock');
    for (;;) {
      try {
        await writeFile(path, String(process.pid), { flag: 'wx' });
        return () => rm(path, { force: true });
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
      }
      const age = await stat(path).then((s) => Date.now() - s.mtimeMs, () => 0);
      if (age > STALE_LOCK_MS) await rm(path, { force: true });
      else await sleep(LOCK_POLL_MS);
    }
  }

  /**
   * Has `write` create and sync a file in ingest/ (given its path), then renames it to `path`:
   * synced first, so a crash never publishes a name for bytes still in the page cache. Nothing is
   * left behind on failure.
   */
  private async commitFile(path: string, write: (temp: string) => Promise<void>): Promise<void> {
    const temp = join(this.dir, 'ingest', randomUUID());
    try {
      await write(temp);
      await mkdir(dirname(path), { recursive: true });
      await rename(temp, path);
    } catch (error) {
      await rm(temp, { force: true });
      throw error;
    }
  }

  /**
   * Deletes what killed writers left in ingest/: a file nobody has written to for
   * STALE_INGEST_MS. A live writer touches its file with every chunk, so it is never taken.
   */
  private async sweepIngest(): Promise<void> {
    const ingest = join(this.dir, 'ingest');
    for (const name of await readdir(ingest)) {
      const path = join(ingest, name);
      const modified = await stat(path).then((s) => s.mtimeMs, () => Date.now());
      if (Date.now() - modified > STALE_INGEST_MS) await rm(path, { force: true });
    }
  }

  /** Creates the layout's directories and `oci-layout` on first write, and refuses a layout of another version. */
  private ensureLayout(ref: Reference): Promise<void> {
    this.ready ??= (async () => {
      await mkdir(join(this.dir, 'ingest'), { recursive: true });
      await mkdir(join(this.dir, 'blobs', 'sha256'), { recursive: true });
      await this.sweepIngest();
      const path = join(this.dir, 'oci-layout');
      const existing = await readFile(path, 'utf8').catch((error: NodeJS.ErrnoException) => (error.code === 'ENOENT' ? undefined : Promise.reject(error)));
      if (existing === undefined) {
        await this.commitFile(path, (temp) => writeSynced(temp, JSON.stringify({ imageLayoutVersion: LAYOUT_VERSION })));
        return;
      }
      const parsed = v.safeParse(LayoutFileSchema, safeJson(existing));
      if (!parsed.success || parsed.output.imageLayoutVersion !== LAYOUT_VERSION) {
        throw this.error('UNSUPPORTED', 'WRITE', ref, `oci-layout does not say imageLayoutVersion "${LAYOUT_VERSION}", the only version Hoist writes`);
      }
    })();
    this.ready.catch(() => (this.ready = undefined));
    return this.ready;
  }

  private error(code: string, method: 'READ' | 'WRITE', ref: Reference, message: string): RegistryError {
    return new RegistryError({ code, status: 0, method, url: this.registry.name, reference: ref.toString(), details: [{ code, message }] });
  }
}

/** Writes a new file and syncs it before it closes. */
function writeSynced(path: string, data: string | Buffer): Promise<void> {
  return writeFile(path, data, { flag: 'wx', flush: true });
}
