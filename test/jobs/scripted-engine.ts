/**
 * A scripted stand-in for the copy engine, for worker tests that run before real registries are
 * wired in: it "uploads" one blob in chunks through the real CheckpointStore, honours the time
 * budget and abort signal at chunk boundaries, emits the engine's progress events, and records
 * what it was asked and which offsets it sent.
 */
import type { copy as Copy } from '../../src/copy/index.js';
import type { CopyOptions, CopyRequest, CopyResult } from '../../src/copy/types.js';

export const SOURCE_DIGEST = `sha256:${'5'.repeat(64)}`;
export const BLOB_DIGEST = `sha256:${'b'.repeat(64)}`;
export const MANIFEST_TYPE = 'application/vnd.oci.image.manifest.v1+json';

export interface ScriptedEngine {
  copy: typeof Copy;
  /** Chunk offsets sent, across every call. */
  sent: number[];
  calls: Array<{ request: CopyRequest; options: CopyOptions }>;
}

export interface ScriptOptions {
  size?: number;
  chunk?: number;
  chunkDelayInMs?: number;
  /** Time spent "resolving and planning" before the first chunk. */
  planDelayInMs?: number;
  /** Thrown at the start of the call with this index (0-based), or of every call when a function. */
  fail?: (call: number) => Error | undefined;
  /**
   * Awaited before the chunk at `offset` is sent (before the abort and budget checks): holds the
   * copy at a chosen point until something has happened, where a chunk delay would only race it.
   */
  beforeChunk?: (offset: number, options: CopyOptions) => Promise<void> | void;
}

export function scriptedEngine(script: ScriptOptions = {}): ScriptedEngine {
  const size = script.size ?? 10;
  const chunk = script.chunk ?? 1;
  const delay = script.chunkDelayInMs ?? 0;
  const engine: ScriptedEngine = { sent: [], calls: [], copy: undefined as unknown as typeof Copy };
  engine.copy = async (request, options = {}) => {
    const call = engine.calls.push({ request, options }) - 1;
    const failure = script.fail?.(call);
    if (failure) throw failure;
    const startedAt = Date.now();
    const emit = options.onProgress ?? (() => {});
    const target = request.targets[0].name;
    emit({ type: 'resolved', source: request.source.toString(), digest: SOURCE_DIGEST, mediaType: MANIFEST_TYPE });
    if (script.planDelayInMs) await new Promise((r) => setTimeout(r, script.planDelayInMs));
    emit({ type: 'plan', manifests: 1, blobs: 1, bytesTotal: size, bytesToMove: size, blobsPresent: 0, blobsExternal: 0 });
    const checkpoint = await options.checkpoints?.load(target, BLOB_DIGEST);
    let offset = checkpoint?.offset ?? 0;
    emit({ type: 'blob-start', digest: BLOB_DIGEST, size, target, offset });
    const result = (status: CopyResult['status']): CopyResult => ({
      status,
      source: request.source.toString(),
      sourceDigest: SOURCE_DIGEST,
      targetDigest: SOURCE_DIGEST,
      indexDigestChanged: false,
      targets: request.targets.map((t) => (t.tag ? { reference: t.toString(), digest: SOURCE_DIGEST, written: true } : { reference: `${t.toString()}@${SOURCE_DIGEST}`, digest: SOURCE_DIGEST, written: true })),
      manifests: status === 'completed' ? request.targets.map((t) => ({ digest: SOURCE_DIGEST, mediaType: MANIFEST_TYPE, target: t.name })) : [],
      blobs: { total: 1, copied: status === 'completed' ? 1 : 0, skipped: 0, mounted: 0 },
      bytes: { total: size, moved: size - (checkpoint?.offset ?? 0) },
      plan: { source: request.source.toString(), sourceDigest: SOURCE_DIGEST, mediaType: MANIFEST_TYPE, targetDigest: SOURCE_DIGEST, manifests: [], blobs: [], externalBlobs: [], bytesTotal: size, bytesToMove: size },
    });
    while (offset < size) {
      await script.beforeChunk?.(offset, options);
      const budgetSpent = options.timeBudgetInMs !== undefined && Date.now() - startedAt >= options.timeBudgetInMs;
      if (options.abortSignal?.aborted || budgetSpent) return result('paused');
      if (delay) await new Promise((r) => setTimeout(r, delay));
      engine.sent.push(offset);
      offset = Math.min(offset + chunk, size);
      await options.checkpoints?.save({ target, digest: BLOB_DIGEST, size, location: `http://127.0.0.1:1/v2/upload/${call}`, offset, chunkSize: chunk, updatedAt: new Date().toISOString() });
      emit({ type: 'blob-progress', digest: BLOB_DIGEST, size, target, bytesDone: offset });
    }
    await options.checkpoints?.remove(target, BLOB_DIGEST);
    emit({ type: 'blob-done', digest: BLOB_DIGEST, size, target, outcome: 'copied' });
    return result('completed');
  };
  return engine;
}
