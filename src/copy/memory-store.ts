/**
 * Repositories held in memory, as a copy's source and target: what the engine's own tests copy
 * between when the registry protocol is not what they test (oras-go's content/memory). Blobs and
 * manifests are kept per repository, as a registry keeps them, and read back verified.
 */
import { Readable } from 'node:stream';
import type { Descriptor, Manifest, ManifestHead } from '../registry/client.js';
import { sha256 } from '../registry/digest.js';
import { RegistryError } from '../registry/errors.js';
import type { Reference } from '../registry/reference.js';
import { asCopyError, openPushSource } from './blob-transfer.js';
import type { BlobPush, SourceStore, Stores, TargetStore } from './store.js';
import type { BlobOutcome } from './types.js';
import { verifiedStream } from './verified-stream.js';

/** Resumes of a non-distributable layer's URL read. */
const URL_RESUMES = 3;

interface Repository {
  blobs: Map<string, Buffer>;
  manifests: Map<string, Manifest>;
  tags: Map<string, string>;
}

/** Any number of repositories (by Reference.name) in memory. */
export class MemoryStore implements SourceStore, TargetStore {
  private readonly repositories = new Map<string, Repository>();

  /** Both sides of a copy in this store. */
  get stores(): Stores {
    return { source: () => this, target: () => this };
  }

  private repo(ref: Reference): Repository {
    let repo = this.repositories.get(ref.name);
    if (!repo) {
      repo = { blobs: new Map(), manifests: new Map(), tags: new Map() };
      this.repositories.set(ref.name, repo);
    }
    return repo;
  }

  /** Stores blob bytes in `ref`'s repository under their digest, as a test fixture does; returns the digest. */
  addBlob(ref: Reference, bytes: Buffer): string {
    const digest = sha256(bytes);
    this.repo(ref).blobs.set(digest, bytes);
    return digest;
  }

  /** The bytes of a blob held in `ref`'s repository. */
  blob(ref: Reference, digest: string): Buffer | undefined {
    return this.repo(ref).blobs.get(digest);
  }

  /** Every tag of `ref`'s repository and the digest it names. */
  tags(ref: Reference): Map<string, string> {
    return new Map(this.repo(ref).tags);
  }

  headManifest(ref: Reference): Promise<ManifestHead | undefined> {
    const manifest = this.find(ref);
    return Promise.resolve(manifest && { digest: manifest.digest, mediaType: manifest.mediaType, size: manifest.bytes.length });
  }

  getManifest(ref: Reference): Promise<Manifest> {
    const manifest = this.find(ref);
    if (!manifest) return Promise.reject(new RegistryError({ code: 'MANIFEST_UNKNOWN', status: 404, method: 'GET', url: ref.name, reference: ref.toString() }));
    return Promise.resolve(manifest);
  }

  headBlob(ref: Reference, digest: string): Promise<number | undefined> {
    return Promise.resolve(this.repo(ref).blobs.get(digest)?.length);
  }

  openBlob(ref: Reference, digest: string, size: number, offset = 0): Readable {
    const bytes = this.repo(ref).blobs.get(digest);
    const input = bytes ? Readable.from([bytes.subarray(offset)]) : failing(new RegistryError({ code: 'BLOB_UNKNOWN', status: 404, method: 'GET', url: ref.name, reference: ref.withDigest(digest).toString() }));
    return verifiedStream(input, { digest, size, offset }, `blob ${ref.withDigest(digest)}`);
  }

  /** No referrers API: referrers live under the tag schema, as in a registry without one. */
  referrers(): Promise<Descriptor[] | undefined> {
    return Promise.resolve(undefined);
  }

  putManifest(ref: Reference, manifest: Manifest): Promise<{ subjectProcessed: boolean }> {
    const repo = this.repo(ref);
    const bytes = Buffer.from(manifest.bytes);
    repo.manifests.set(manifest.digest, { ...manifest, bytes });
    if (ref.tag) repo.tags.set(ref.tag, manifest.digest);
    return Promise.resolve({ subjectProcessed: false });
  }

  async pushBlob(push: BlobPush, blob: Descriptor): Promise<BlobOutcome | 'paused'> {
    if (push.shouldPause()) return 'paused';
    const chunks: Buffer[] = [];
    try {
      for await (const chunk of await openPushSource(push, blob, URL_RESUMES)) chunks.push(chunk as Buffer);
    } catch (error) {
      throw asCopyError(error, blob);
    }
    this.repo(push.targetRef).blobs.set(blob.digest, Buffer.concat(chunks));
    push.onProgress({ type: 'blob-done', digest: blob.digest, size: blob.size, target: push.targetRef.name, outcome: 'copied' });
    return 'copied';
  }

  noteHeld(): void {
    // Nothing to remember: memory has no mounts.
  }

  private find(ref: Reference): Manifest | undefined {
    const repo = this.repo(ref);
    const digest = ref.digest ?? repo.tags.get(ref.tag ?? 'latest');
    return digest === undefined ? undefined : repo.manifests.get(digest);
  }
}

function failing(error: Error): Readable {
  return new Readable({
    read() {
      this.destroy(error);
    },
  });
}
