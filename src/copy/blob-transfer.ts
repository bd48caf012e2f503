/**
 * Moving one blob from the source to a target repository: mount when possible, otherwise
 * stream it in one request, or upload it in checkpointed chunks that another process can resume.
 * The chunked path is an explicit state machine: POST, then PATCH after PATCH with a checkpoint
 * saved after each, a status GET whenever the registry's view is in doubt, and PUT ?digest=
 * carrying the last chunk.
 */
import type { Readable } from 'node:stream';
import type { ChunkBytes, Descriptor, RegistryClient, UploadSession } from '../registry/client.js';
import { DigestMismatchError } from '../registry/digest.js';
import { RegistryError } from '../registry/errors.js';
import { openUrlBlob, UrlBlobError } from '../registry/url-blob.js';
import { backoffDelay, sleep } from '../registry/retry.js';
import { ChunkPipe } from './chunk-pipe.js';
import { CopyError, copyErrorFrom, type Side } from './errors.js';
import type { BlobPush } from './store.js';
import type { BlobOutcome } from './types.js';

/**
 * One blob's push to a registry. `shouldPause` turning true stops it at the next chunk boundary:
 * requests in flight are let finish, since a PATCH cut mid-body loses the whole upload session on
 * distribution 2.8. `foreign` is read from the source when that holds the blob, else from the
 * first of its `urls` that serves it, each URL put to the address policy.
 */
export interface BlobTransfer extends BlobPush {
  target: RegistryClient;
  /** Repositories on the target registry that may already hold the blob, to mount from. */
  mountFrom: string[];
}

/** Whole-blob restarts allowed after a lost session or a dropped streaming upload. */
const MAX_BLOB_RESTARTS = 3;
/** Monolithic progress is reported at most this often. */
const PROGRESS_INTERVAL_MS = 250;

/** Copies one blob the target lacks. Returns `paused` when stopped between chunks. */
export async function transferBlob(t: BlobTransfer, blob: Descriptor): Promise<BlobOutcome | 'paused'> {
  if (t.foreign) t = await foreignOrigin(t, blob);
  const target = t.targetRef.name;
  let raced = 0;
  for (let restart = 0; ; restart++) {
    try {
      const checkpoint = restart === 0 ? await t.checkpoints?.load(target, blob.digest) : undefined;
      let session: UploadSession | undefined;
      if (checkpoint) {
        session = await resumeSession(t, blob, checkpoint.location, checkpoint.offset);
        if (!session) await t.checkpoints?.remove(target, blob.digest);
      }
      let early: Readable | undefined;
      if (!session) {
        // With nothing to mount from, the upload will read the source from its first byte: ask
        // for it while the registry opens the session, so bytes flow a round trip sooner.
        if (t.mountFrom.length === 0) early = openSourceEarly(t, blob);
        try {
          const started = await startSession(t, blob);
          if (started === 'mounted') {
            early?.destroy();
            t.onProgress({ type: 'blob-done', digest: blob.digest, size: blob.size, target, outcome: 'mounted' });
            return 'mounted';
          }
          session = started;
        } catch (error) {
          early?.destroy();
          throw error;
        }
      }
      t.onProgress({ type: 'blob-start', digest: blob.digest, size: blob.size, target, offset: session.offset });
      const outcome = t.mode === 'chunked' ? await uploadChunked(t, blob, session, early) : await uploadMonolithic(t, blob, session, early);
      if (outcome === 'copied') t.onProgress({ type: 'blob-done', digest: blob.digest, size: blob.size, target, outcome });
      return outcome;
    } catch (error) {
      if (error instanceof LostCommitRaceError) {
        if (++raced < t.target.host.retry.maxAttempts) {
          // Give the racing upload time to finish; the new attempt's commit, or its HEAD after
          // another lost race, then finds the blob.
          await t.checkpoints?.remove(target, blob.digest);
          await sleep(backoffDelay(t.target.host.retry, raced));
          continue;
        }
        throw asCopyError(error.cause, blob);
      }
      if (error instanceof LostUploadError) {
        if (restart < MAX_BLOB_RESTARTS) {
          await t.checkpoints?.remove(target, blob.digest);
          continue;
        }
        throw asCopyError(error.cause ?? error, blob);
      }
      throw asCopyError(error, blob);
    }
  }
}

/**
 * The source stream of a whole blob, its GET already sent. A failure before the upload reads it
 * only marks it destroyed (the upload then opens its own and meets the error there: a source
 * serving wrong bytes is read twice before the copy fails).
 */
function openSourceEarly(t: BlobTransfer, blob: Descriptor): Readable {
  const stream = sourceFrom(t, blob, 0, undefined);
  stream.read(0);
  return stream;
}

/** A source stream opened early if it is still good, else a new one from `offset`. */
function sourceFrom(t: BlobTransfer, blob: Descriptor, offset: number, early: Readable | undefined): Readable {
  if (early && !early.destroyed && offset === 0) return early;
  early?.destroy();
  const stream = openFrom(t, blob, offset, t.target.host.retry.maxAttempts);
  // The GET may fail before the upload's request has hooked the stream; the upload then gets the
  // stored error (undici and async iteration both report it), instead of the process crashing.
  stream.on('error', () => undefined);
  return stream;
}

/** The blob from `offset`, from the source store or, for `foreign`, from its URLs. */
function openFrom(push: BlobPush, blob: Descriptor, offset: number, maxResumes: number): Readable {
  return push.foreign ? openUrlBlob({ ...push.foreign, digest: blob.digest, size: blob.size, offset, maxResumes }) : push.source.openBlob(push.sourceRef, blob.digest, blob.size, offset);
}

/**
 * The whole blob, verified as it streams, for a store that takes a blob in one piece: from the
 * source store, or for a non-distributable layer the source lacks, from its URLs.
 */
export async function openPushSource(push: BlobPush, blob: Descriptor, maxResumes: number): Promise<Readable> {
  return openFrom(push.foreign ? await foreignOrigin(push, blob) : push, blob, 0, maxResumes);
}

/**
 * Where a non-distributable layer is read from: the source registry when it holds the blob at its
 * size (no outside host is asked then), else its URLs (`foreign` stays set).
 */
async function foreignOrigin<T extends BlobPush>(t: T, blob: Descriptor): Promise<T> {
  let held: number | undefined;
  try {
    held = await t.source.headBlob(t.sourceRef, blob.digest);
  } catch (error) {
    throw copyErrorFrom(error, 'source');
  }
  return held === blob.size ? { ...t, foreign: undefined } : t;
}

/** The registry lost or refused the upload session mid-way: start the blob again. */
class LostUploadError extends Error {}

/**
 * A commit failed and the registry does not hold the blob: most likely another upload of the
 * same digest was committing at the same moment. Start the blob again after a back-off.
 */
class LostCommitRaceError extends Error {}

/**
 * How distribution 2.8 may answer the losers of concurrent commits of one digest: DIGEST_INVALID,
 * BLOB_UNKNOWN or a 500; and a closing PUT the transport resent after a 500 finds its session
 * gone (BLOB_UPLOAD_UNKNOWN).
 */
function mayHaveLostCommitRace(error: RegistryError): boolean {
  return error.code === 'DIGEST_INVALID' || error.code === 'BLOB_UNKNOWN' || error.code === 'BLOB_UPLOAD_UNKNOWN' || error.status >= 500;
}

/** Completes an upload; a commit that lost a race counts as done if the blob is there at its size. */
async function commit(t: BlobTransfer, session: UploadSession, blob: Descriptor, body?: ChunkBytes | { stream: Readable; length: number }): Promise<void> {
  try {
    await t.target.completeUpload(t.targetRef, session, blob.digest, body);
  } catch (error) {
    if (!(error instanceof RegistryError) || !mayHaveLostCommitRace(error)) throw error;
    await settleCommitRace(t, blob, error);
  }
}

/** After a failed commit: done if the registry holds the blob at its size, else a lost race. */
async function settleCommitRace(t: BlobTransfer, blob: Descriptor, error: RegistryError): Promise<void> {
  if ((await t.target.headBlob(t.targetRef, blob.digest)) === blob.size) return;
  throw new LostCommitRaceError(`commit of ${blob.digest} to ${t.targetRef.name} failed: ${error.message}`, { cause: error });
}

async function startSession(t: BlobTransfer, blob: Descriptor): Promise<UploadSession | 'mounted'> {
  const { digest } = blob;
  for (const from of t.mountFrom) {
    const started = await t.target.startUpload(t.targetRef, { digest, from });
    if (started === 'mounted') {
      // A mount links whatever the other repository holds under the digest; a descriptor that
      // lies about the size would otherwise be tagged over a blob no client can pull by it.
      const held = await t.target.headBlob(t.targetRef, digest);
      if (held !== blob.size) throw heldSizeMismatch(t.targetRef.name, blob, held);
      return started;
    }
    // Declined: the registry opened an ordinary session instead. Use the last one.
    if (from === t.mountFrom[t.mountFrom.length - 1]) return started;
    await t.target.cancelUpload(t.targetRef, started.location);
  }
  return t.target.startUpload(t.targetRef, undefined);
}

/**
 * Picks a saved session up again where the registry is, which may be past the checkpoint: a
 * process killed mid-PATCH, or between a 202 and its checkpoint, leaves more bytes in the session
 * than it saved. The registry's status is the truth; the rest is read from the source with a
 * ranged GET, and the registry's digest check at PUT guards the whole.
 *
 * Undefined, for a restart from zero, when the session cannot be resumed:
 * - it is gone (404), or it no longer accepts the saved Location. distribution 2.8 answers only
 *   a request carrying the `_state` of its newest byte count: once it holds more bytes than the
 *   checkpoint, every request with the saved Location (and one without `_state`) is refused with
 *   404 BLOB_UPLOAD_INVALID, and it cannot tell its offset. distribution 3.x answers the status
 *   GET by its UUID with the true offset and a fresh `_state`.
 * - it holds fewer bytes than the checkpoint (bytes the registry once acknowledged went missing,
 *   and `Range: 0-0` cannot tell 0 bytes from 1), or more than the blob has.
 */
async function resumeSession(t: BlobTransfer, blob: Descriptor, location: string, offset: number): Promise<UploadSession | undefined> {
  const status = await t.target.uploadStatus(t.targetRef, new URL(location), offset);
  if (!status) return undefined;
  if (status.offset < offset || status.offset > blob.size) {
    await t.target.cancelUpload(t.targetRef, status.location);
    return undefined;
  }
  return status;
}

async function uploadMonolithic(t: BlobTransfer, blob: Descriptor, session: UploadSession, early?: Readable): Promise<BlobOutcome> {
  const target = t.targetRef.name;
  const verified = sourceFrom(t, blob, 0, early);
  let done = 0;
  let last = 0;
  verified.on('data', (chunk: Buffer) => {
    done += chunk.length;
    const now = Date.now();
    if (now - last >= PROGRESS_INTERVAL_MS) {
      last = now;
      t.onProgress({ type: 'blob-progress', digest: blob.digest, size: blob.size, target, bytesDone: done });
    }
  });
  verified.pause();
  try {
    await commit(t, session, blob, { stream: verified, length: blob.size });
  } catch (error) {
    verified.destroy();
    if (error instanceof RegistryError && (error.code === 'NETWORK_ERROR' || error.status === 401)) {
      // A streaming body can't be replayed: a dropped connection, or a token that expired under
      // it, restarts the blob (whose new POST fetches a fresh token).
      throw new LostUploadError(error.message, { cause: error });
    }
    throw error;
  }
  return 'copied';
}

async function uploadChunked(t: BlobTransfer, blob: Descriptor, initial: UploadSession, early?: Readable): Promise<BlobOutcome | 'paused'> {
  const target = t.targetRef.name;
  const chunkSize = Math.max(t.chunkSize, initial.minChunkLength ?? 0);
  let session = initial;
  if (session.offset === blob.size) {
    // Nothing left to send (a session resumed with every byte in it, or an empty blob): close it.
    early?.destroy();
    await closeEmpty(t, session, blob);
    await t.checkpoints?.remove(target, blob.digest);
    return 'copied';
  }
  // Each chunk streams from the source into its request (chunk-pipe.ts): read from the start, the
  // source verifies the blob and holds its last piece back until it does, so a wrong blob never
  // gets its last chunk sent. Bytes read from an offset (an upload resumed from another process,
  // or a chunk sent again) cannot be hashed here: the registry's digest check at PUT guards them.
  const pipe = new ChunkPipe((offset) => sourceFrom(t, blob, offset, undefined), session.offset, sourceFrom(t, blob, session.offset, early), blob.size);
  try {
    for (;;) {
      if (t.shouldPause()) return 'paused';
      const length = Math.min(chunkSize, blob.size - session.offset);
      // The last chunk rides on the closing PUT, as the spec allows: one request fewer per blob,
      // and a blob no bigger than a chunk needs no PATCH at all.
      const last = session.offset + length === blob.size;
      session = await sendChunk(t, session, pipe.chunk(session.offset, length), last ? blob : undefined);
      if (last) break;
      await t.checkpoints?.save({ target, digest: blob.digest, size: blob.size, location: session.location.href, offset: session.offset, chunkSize, updatedAt: new Date().toISOString() });
      t.onProgress({ type: 'blob-progress', digest: blob.digest, size: blob.size, target, bytesDone: session.offset });
    }
  } catch (error) {
    if (error instanceof DigestMismatchError) {
      await t.target.cancelUpload(t.targetRef, session.location);
      await t.checkpoints?.remove(target, blob.digest);
    }
    throw error;
  } finally {
    pipe.stop(new Error(`upload of ${blob.digest} stopped`));
  }
  await t.checkpoints?.remove(target, blob.digest);
  return 'copied';
}

/**
 * Sends one chunk: by PATCH, or, given the blob it ends (`closes`), with the PUT that completes
 * the upload. If the request fails, only the registry knows whether the bytes landed (the
 * transport never resends a chunk on its own; it has already waited out any 429), so ask it: go
 * on if they did, resend after a back-off if none did, and start over if the session holds part
 * of the chunk or is gone. A closing PUT whose answer was lost leaves no session but the blob.
 */
async function sendChunk(t: BlobTransfer, initial: UploadSession, chunk: ChunkBytes, closes?: Descriptor): Promise<UploadSession> {
  // A target seen refusing bytes on the closing PUT gets its last chunks by PATCH (HostQuirks).
  const { quirks, retry } = t.target.host;
  if (closes && quirks.noChunkOnClose) return closeEmpty(t, await sendChunk(t, initial, chunk), closes);
  let session = initial;
  const sent = (s: UploadSession): UploadSession => ({ ...s, offset: s.offset + chunk.length });
  for (let attempt = 1; ; attempt++) {
    try {
      if (!closes) return await t.target.patchChunk(t.targetRef, session, chunk);
      await t.target.completeUpload(t.targetRef, session, closes.digest, chunk);
      return sent(session);
    } catch (error) {
      if (!(error instanceof RegistryError)) throw error;
      if (closes && refusesChunkOnClose(error)) {
        // The spec allows bytes on the closing PUT, but not every registry takes them.
        quirks.noChunkOnClose = true;
        return closeEmpty(t, await sendChunk(t, session, chunk), closes);
      }
      if (closes && (error.code === 'DIGEST_INVALID' || error.code === 'BLOB_UNKNOWN')) {
        await settleCommitRace(t, closes, error);
        return sent(session);
      }
      if (error.status === 429 || (!error.transient && error.code !== 'RANGE_INVALID' && error.status !== 404)) throw error;
      const status = await t.target.uploadStatus(t.targetRef, session.location, session.offset);
      if (!status) {
        // A closing PUT whose session is gone: committed (by this upload or a racing one) or lost.
        if (closes) {
          await settleCommitRace(t, closes, error);
          return sent(session);
        }
        throw new LostUploadError(`upload of ${t.targetRef.name} lost: ${error.message}`, { cause: error });
      }
      if (status.offset === session.offset + chunk.length) return closes ? closeEmpty(t, status, closes) : status;
      if (status.offset !== session.offset) throw new LostUploadError(`upload of ${t.targetRef.name} holds ${status.offset} bytes, expected ${session.offset}`, { cause: error });
      if (attempt >= retry.maxAttempts) throw error;
      session = status;
      await sleep(backoffDelay(retry, attempt));
    }
  }
}

async function closeEmpty(t: BlobTransfer, session: UploadSession, blob: Descriptor): Promise<UploadSession> {
  await commit(t, session, blob);
  return session;
}

/** A closing PUT refused for carrying bytes (not for what they are: that is DIGEST_INVALID). */
function refusesChunkOnClose(error: RegistryError): boolean {
  return (error.status === 400 && error.code === 'BLOB_UPLOAD_INVALID') || error.status === 416;
}

/**
 * The target holds a blob at another size than its descriptor claims (or, `held` undefined, not at
 * all): the manifest would name bytes that do not exist, so the copy must not tag it.
 */
export function heldSizeMismatch(target: string, blob: { digest: string; size: number }, held: number | undefined): CopyError {
  const holds = held === undefined ? 'does not hold it' : `holds ${held} bytes of it`;
  return new CopyError('INTEGRITY', `blob ${blob.digest}: the target ${target} ${holds}, but its descriptor claims ${blob.size} bytes; nothing was tagged`, 'source');
}

/** A blob push's failure as the copy reports it: bad bytes are INTEGRITY, an unreachable foreign layer NONDISTRIBUTABLE. */
export function asCopyError(error: unknown, blob: Descriptor): unknown {
  if (error instanceof UrlBlobError) {
    return new CopyError('NONDISTRIBUTABLE', `non-distributable layer ${blob.digest} is not in the source registry, and ${error.message}; nothing was tagged`, 'source', { cause: error });
  }
  if (error instanceof DigestMismatchError) {
    return new CopyError('INTEGRITY', `integrity check failed: ${error.message}; nothing was tagged`, 'source', { cause: error });
  }
  if (error instanceof RegistryError && error.code === 'DIGEST_INVALID') {
    return new CopyError('INTEGRITY', `the target registry rejected blob ${blob.digest}: its bytes do not match the digest; nothing was tagged`, 'target', { cause: error });
  }
  return copyErrorFrom(error, error instanceof RegistryError ? sideOf(error) : 'target');
}

/** A blob transfer reads the source only with GETs of the blob; every other request is the target's. */
function sideOf(error: RegistryError): Side {
  return error.method === 'GET' && !error.url.includes('/blobs/uploads/') ? 'source' : 'target';
}
