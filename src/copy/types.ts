/**
 * The copy engine's contract with its callers (the CLI and the queue worker): what to copy, the
 * hooks for checkpoints, time budgets and progress, and what comes back.
 */
import type { Reference } from '../registry/reference.js';
import type { RegistryHosts } from '../registry/hosts.js';
import type { Stores } from './store.js';

/** `os/arch[/variant][:os.version]`, as in `linux/arm64/v8` or `windows/amd64:10.0.17763.5329`. */
export interface Platform {
  os: string;
  architecture: string;
  variant?: string;
  /** The index entry's `os.version`: what tells Windows images of one architecture apart. */
  osVersion?: string;
}

/** What to copy. */
export interface CopyRequest {
  /** Source by tag or digest; a tag is resolved to its digest once, at the start. */
  source: Reference;
  /**
   * Targets. A reference with a tag is a tagged copy; one with neither tag nor digest is a
   * digest-only (untagged) copy into that repository.
   */
  targets: Reference[];
  /** Overwrite target tags that already point elsewhere. */
  force?: boolean;
  /** Copy only these children of an index, and write a new index listing only them. */
  platforms?: Platform[];
  /** Also copy what refers to each copied manifest (signatures, SBOMs, attestations), recursively. */
  referrers?: boolean;
  /** Plan only: report what would move, change nothing. */
  dryRun?: boolean;
  /**
   * Copy non-distributable (foreign) layers too, from the source registry or else their `urls`.
   * By default they stay referenced by URL, as docker, containerd, crane and skopeo leave them.
   */
  allowNondistributableArtifacts?: boolean;
}

/** Where a partly uploaded blob stands, enough for another process to continue it. */
export interface BlobCheckpoint {
  /** Target repository name (`registry/repository`) the upload belongs to. */
  target: string;
  digest: string;
  size: number;
  /** Absolute URL of the upload session, as returned by the last accepted request. */
  location: string;
  /** Bytes the registry has confirmed (its `Range` end + 1). */
  offset: number;
  /** Chunk size in use, so a resumed upload keeps the same boundaries. */
  chunkSize: number;
  updatedAt: string;
}

/** Persists blob checkpoints between invocations; the queue worker backs it with Azure storage. */
export interface CheckpointStore {
  load(target: string, digest: string): Promise<BlobCheckpoint | undefined>;
  /** Called after every accepted chunk, before the next one is sent. */
  save(checkpoint: BlobCheckpoint): Promise<void>;
  /** Called once the blob is committed (or restarted from zero). */
  remove(target: string, digest: string): Promise<void>;
}

export type UploadMode = 'monolithic' | 'chunked';

/** Releases a lock taken through {@link CopyCoordination}; never throws. */
export type ReleaseLock = () => Promise<void>;

/**
 * How one copy keeps out of the way of other copies writing the same things at the same time
 * (the import service backs it with lease rows in Azure Tables; the CLI passes none). Each call
 * waits until the caller alone holds the lock, and resolves `undefined` instead when
 * `shouldStop` turns true while it waits; the copy then pauses.
 */
export interface CopyCoordination {
  /** One writer at a time for a target tag (registry, repository and tag), around check-and-put. */
  lockTag(tag: Reference, shouldStop: () => boolean): Promise<ReleaseLock | undefined>;
  /**
   * One uploader at a time for a blob in the registry of `target` (a repository); the others then
   * find it in place, or mount it from where the holder they waited for put it.
   */
  lockBlob(target: Reference, digest: string, shouldStop: () => boolean): Promise<BlobLock | undefined>;
}

/** A held blob lock. */
export interface BlobLock {
  release: ReleaseLock;
  /**
   * Stops holding without letting go, when the upload paused with its checkpoint saved: the
   * same writer's continuation takes the lock back, and others wait until it expires, instead
   * of starting a second upload in the gap. Never throws.
   */
  keepForResume: ReleaseLock;
  /** Repositories of the same registry whose writers held the lock while this one waited, in that order: mount sources. */
  mountFrom?: string[];
}

export interface CopyOptions {
  /**
   * How the source and target registries are reached: credentials, scheme, retry policy, the outbound address policy (the service's; none for the CLI), and
   * what is learned about each host (quirks, mount hints). Default: a new RegistryHosts for this
   * copy alone, anonymous, with the default retry policy.
   */
  hosts?: RegistryHosts;
  /**
   * Where the source and targets live: registries, OCI image layouts (`oci:DIR`), or memory.
   * Default: `defaultStores(hosts)`, registries reached through `hosts` and layouts on disk.
   */
  stores?: Stores;
  /** Parallel blob transfers, largest first. Default 4, and 8 more for blobs of at most 1 MiB. */
  concurrency?: number;
  /** `monolithic` streams each blob in one request; `chunked` PATCHes it in `chunkSizeInBytes` pieces. */
  uploadMode?: UploadMode;
  /** Chunk size for chunked uploads (raised to the registry's OCI-Chunk-Min-Length). Default 4 MiB. */
  chunkSizeInBytes?: number;
  /**
   * The largest blob the copy accepts, in bytes; a descriptor claiming more is refused at
   * planning, before any byte moves. Default 200 GiB (`DEFAULT_MAX_BLOB_BYTES`).
   */
  maxBlobBytes?: number;
  /**
   * The most manifests (index, images, referrers) the copy accepts; more are refused at planning,
   * before any byte moves. Default: no limit (the service sets one, HOIST_MAX_MANIFESTS).
   */
  maxManifests?: number;
  /** Required for resumable copies; chunked mode saves progress here after every chunk. */
  checkpoints?: CheckpointStore;
  /** Stops the copy at the next chunk boundary; the result is `paused`. */
  abortSignal?: AbortSignal;
  /** Stops the copy at the first chunk boundary after this many milliseconds. */
  timeBudgetInMs?: number;
  onProgress?: (event: ProgressEvent) => void;
  /** Serialises racing writers of one tag or one blob across processes; none by default. */
  coordination?: CopyCoordination;
}

export type BlobOutcome = 'copied' | 'skipped' | 'mounted';

export type ProgressEvent =
  | { type: 'resolved'; source: string; digest: string; mediaType: string }
  | { type: 'plan'; manifests: number; blobs: number; bytesTotal: number; bytesToMove: number; blobsPresent: number; blobsExternal: number }
  /** A non-distributable layer left referenced by URL (reported after the plan, before any blob moves). */
  | { type: 'blob-external'; digest: string; size: number; mediaType: string; urls: string[] }
  | { type: 'blob-start'; digest: string; size: number; target: string; offset: number }
  | { type: 'blob-progress'; digest: string; size: number; target: string; bytesDone: number }
  | { type: 'blob-done'; digest: string; size: number; target: string; outcome: BlobOutcome }
  | { type: 'manifest'; digest: string; mediaType: string; target: string }
  | { type: 'tag'; reference: string; digest: string; written: boolean };

export interface WrittenManifest {
  digest: string;
  mediaType: string;
  /** `os/arch[/variant][:os.version]` for a platform child of an index. */
  platform?: string;
  target: string;
}

export interface PlannedBlob {
  digest: string;
  size: number;
  mediaType: string;
  /** The target repository already has it. */
  present: boolean;
  /** A non-distributable layer copied on request: read from the source registry, or else these URLs. */
  urls?: string[];
}

/** A non-distributable layer the copy leaves where its `urls` say, uncopied. */
export interface ExternalBlob {
  digest: string;
  size: number;
  mediaType: string;
  urls: string[];
}

export interface CopyPlan {
  source: string;
  sourceDigest: string;
  mediaType: string;
  /** The digest the targets will point at: the source digest, or a new index for a platform subset. */
  targetDigest: string;
  /** `referrerOf`: the digest of the manifest a referrer (signature, SBOM, attestation) refers to. */
  manifests: Array<{ digest: string; mediaType: string; platform?: string; size: number; attestationFor?: string; referrerOf?: string }>;
  blobs: PlannedBlob[];
  /** Non-distributable layers referenced, not copied (none with `allowNondistributableArtifacts`). */
  externalBlobs: ExternalBlob[];
  bytesTotal: number;
  bytesToMove: number;
  /** For a platform subset: the platforms asked for, and the attestation manifests kept and dropped with their images. */
  platformSubset?: { platforms: string[]; attestationsKept: string[]; attestationsDropped: string[] };
}

export interface CopyResult {
  /** `paused` when a time budget or abort stopped it; the checkpoints hold what is in flight. */
  status: 'completed' | 'paused';
  source: string;
  sourceDigest: string;
  targetDigest: string;
  /** True when a platform subset produced a new index with a new digest. */
  indexDigestChanged: boolean;
  targets: Array<{ reference: string; digest: string; written: boolean }>;
  manifests: WrittenManifest[];
  blobs: { total: number; copied: number; skipped: number; mounted: number };
  bytes: { total: number; moved: number };
  plan: CopyPlan;
}
