/**
 * The small storage interfaces the copy engine works on, in the manner of oras-go's Fetcher,
 * Pusher and Resolver: a source it reads manifests, blobs and referrers from, and a target it
 * checks and writes. A registry (registry-store.ts), an OCI image layout (layout-store.ts) and
 * memory (memory-store.ts) implement them; the engine never knows which it has.
 *
 * References keep their shape across stores: a layout is a Reference whose registry is
 * `oci:DIR` and whose repository is empty (layout-reference.ts).
 */
import type { Readable } from 'node:stream';
import type { Descriptor, Manifest, ManifestHead } from '../registry/client.js';
import type { Reference } from '../registry/reference.js';
import type { Connections } from '../registry/http.js';
import type { BlobOutcome, CheckpointStore, ProgressEvent, UploadMode } from './types.js';

/** Where a copy reads from. Every method maps a missing thing to undefined or a 404-coded error, as a registry does. */
export interface SourceStore {
  /** The manifest a tag or digest names, its bytes exactly as stored; verified when asked by digest. */
  getManifest(ref: Reference, signal?: AbortSignal): Promise<Manifest>;
  /** The digest a tag or digest names, or undefined when there is no such manifest. */
  headManifest(ref: Reference, signal?: AbortSignal): Promise<ManifestHead | undefined>;
  /** The size a blob is held at, or undefined when it is not held. */
  headBlob(ref: Reference, digest: string, signal?: AbortSignal): Promise<number | undefined>;
  /**
   * A blob's bytes from `offset`. Read from the start, the stream verifies digest and size and
   * fails before its last piece is handed on when they do not match.
   */
  openBlob(ref: Reference, digest: string, size: number, offset?: number, signal?: AbortSignal): Readable;
  /** Referrers of `digest` through a referrers API; undefined when the store has none (use the tag schema). */
  referrers(ref: Reference, digest: string, signal?: AbortSignal): Promise<Descriptor[] | undefined>;
}

/** One blob to push, and everything a push may need to read it or to stop. */
export interface BlobPush {
  /** Where the blob's bytes come from. */
  source: SourceStore;
  /** The source repository (no tag). */
  sourceRef: Reference;
  /** The target repository (no tag). */
  targetRef: Reference;
  /** `monolithic` or `chunked` (checkpointed); a store without uploads ignores it. */
  mode: UploadMode;
  chunkSize: number;
  checkpoints?: CheckpointStore;
  /** True once the copy should pause at the next chunk boundary. */
  shouldPause: () => boolean;
  onProgress: (event: ProgressEvent) => void;
  /** A non-distributable layer copied on request: read from the source when it holds it, else from these URLs. */
  foreign?: { urls: readonly string[]; connections: Connections };
  /** Repositories of the target that held the blob for other writers (registry mounts); others ignore it. */
  mountFrom?: string[];
}

/** Where a copy writes to. Manifests go by digest; a reference with a tag also (re)points the tag. */
export interface TargetStore extends Omit<SourceStore, 'openBlob'> {
  /** Pushes manifest bytes unchanged under `ref`'s tag, or only by digest when `ref` has none. */
  putManifest(ref: Reference, manifest: Manifest, signal?: AbortSignal): Promise<{ subjectProcessed: boolean }>;
  /** Pushes one blob the target lacks; `paused` when stopped between chunks. */
  pushBlob(push: BlobPush, blob: Descriptor): Promise<BlobOutcome | 'paused'>;
  /** Notes that repository `ref` holds `digest` (a registry remembers it as a mount source). */
  noteHeld(ref: Reference, digest: string): void;
}

/** Which store serves a reference: how the engine is told where its source and targets live. */
export interface Stores {
  source(ref: Reference): SourceStore;
  target(ref: Reference): TargetStore;
}
