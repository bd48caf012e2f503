/**
 * The stream every copied byte passes through: a blob's bytes from the source registry, resumed
 * with `Range` when the connection drops and, when read from the start, verified against the
 * blob's digest and size.
 *
 * It is a single Readable fed straight from the response body's `data` events. Layering it as an
 * async generator, `Readable.from` and a hashing Transform cost a promise and two stream hops per
 * socket read, which at 64 KiB per read was a fifth of the CPU of a large copy.
 */
import { createHash, type Hash } from 'node:crypto';
import { Readable } from 'node:stream';
import { DigestMismatchError, VERIFIABLE_ALGORITHMS } from './digest.js';
import { RegistryError } from './errors.js';
import { isRetryableNetworkError } from './retry.js';
import { discard } from './http.js';
import { noteStreamed } from './process-memory.js';
import { redact, type TransportResponse } from './transport.js';

interface BlobStreamOptions {
  /** Sends the GET, with a `range` header when resuming. */
  get: (headers: Record<string, string>) => Promise<TransportResponse>;
  digest: string;
  size: number;
  /** Where to start; bytes before it are not read, so they cannot be verified. */
  offset: number;
  /** `host/repo@digest`, for errors. */
  reference: string;
  signal?: AbortSignal;
  /** Requests in all for the body, the first included: the host's retry policy's maxAttempts. */
  maxResumes: number;
}

export class BlobStream extends Readable {
  private readonly options: BlobStreamOptions;
  private position: number;
  private resumes = 0;
  private body?: TransportResponse['body'];
  private requesting = false;
  /** Hashes what passes when the whole blob does; a blob read from an offset is checked by the registry at PUT instead. */
  private readonly hash?: Hash;
  private readonly algorithm: string;
  /** The latest piece, held back until the next one (or the verified end) proves it may go. */
  private held?: Buffer;

  constructor(options: BlobStreamOptions) {
    super();
    this.options = options;
    this.position = options.offset;
    this.algorithm = options.digest.slice(0, options.digest.indexOf(':'));
    if (options.offset === 0) {
      // The manifest reader refuses other algorithms before any copy starts.
      if (!VERIFIABLE_ALGORITHMS.includes(this.algorithm)) throw new Error(`blob ${options.reference}: cannot verify a ${this.algorithm || 'malformed'} digest`);
      this.hash = createHash(this.algorithm);
    }
  }

  override _read(): void {
    if (this.body) this.body.resume();
    // Nothing left to read (a resumed upload that had every byte already): no request at all.
    else if (this.position >= this.options.size && this.options.offset > 0) this.finish();
    else if (!this.requesting) void this.request();
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    this.body?.destroy();
    this.body = undefined;
    callback(error);
  }

  private async request(): Promise<void> {
    this.requesting = true;
    try {
      const { get, reference } = this.options;
      const resuming = this.position > 0;
      const res = await get(resuming ? { range: `bytes=${this.position}-` } : {});
      if (resuming) checkContentRange(res, this.position, reference);
      if (this.destroyed) {
        discard(res.body);
        return;
      }
      this.body = res.body;
      res.body.on('data', (chunk: Buffer) => this.accept(chunk));
      res.body.on('end', () => this.finish());
      res.body.on('error', (error) => this.interrupted(res.body, error));
    } catch (error) {
      this.destroy(error as Error);
    } finally {
      this.requesting = false;
    }
  }

  private accept(chunk: Buffer): void {
    this.position += chunk.length;
    noteStreamed(chunk.length);
    if (this.position > this.options.size) {
      this.destroy(this.mismatch());
      return;
    }
    let more = true;
    if (this.hash) {
      this.hash.update(chunk);
      if (this.held) more = this.push(this.held);
      this.held = chunk;
    } else {
      more = this.push(chunk);
    }
    if (!more) this.body?.pause();
  }

  private finish(): void {
    this.body = undefined;
    if (this.hash) {
      const digest = `${this.algorithm}:${this.hash.digest('hex')}`;
      if (this.position !== this.options.size || digest !== this.options.digest) {
        this.destroy(this.mismatch(digest));
        return;
      }
      if (this.held) this.push(this.held);
    }
    this.push(null);
  }

  /** A body that fails mid-way is asked for again from where it stopped, a few times. */
  private interrupted(body: TransportResponse['body'], error: Error): void {
    if (body !== this.body) return;
    this.body = undefined;
    if (this.options.signal?.aborted || !isRetryableNetworkError(error) || ++this.resumes >= this.options.maxResumes) {
      this.destroy(error);
      return;
    }
    void this.request();
  }

  private mismatch(digest?: string): DigestMismatchError {
    const { digest: expected, size, reference } = this.options;
    return new DigestMismatchError({ digest: expected, size }, { digest, size: this.position }, `blob ${reference}`);
  }
}

function checkContentRange(res: TransportResponse, position: number, reference: string): void {
  const contentRange = res.headers['content-range'];
  const start = contentRange ? /^bytes (\d+)-/.exec(contentRange)?.[1] : undefined;
  if (res.status !== 206 || Number(start) !== position) {
    discard(res.body);
    throw new RegistryError({ code: 'UNEXPECTED_RESPONSE', status: res.status, method: 'GET', url: redact(res.url), reference, details: [{ code: 'RANGE', message: `asked for bytes from ${position}, got ${contentRange ?? `status ${res.status} without Content-Range`}` }] });
  }
}
