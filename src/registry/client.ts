/**
 * The registry protocol client (OCI distribution spec): manifests, blobs, uploads, tags and
 * referrers for one registry. Bytes stay as the registry served them; nothing is re-serialised.
 */
import type { Readable } from 'node:stream';
import { BlobStream } from './blob-stream.js';
import { readLimited } from './auth.js';
import { sha256 } from './digest.js';
import { describeBody, parseRegistryJson, RegistryError } from './errors.js';
import { MANIFEST_ACCEPT, MediaType } from './media-types.js';
import type { RegistryHost, RegistryHosts } from './hosts.js';
import type { Reference, Registry } from './reference.js';
import { discard } from './http.js';
import { Transport, redact, type TransportRequest } from './transport.js';

/** distribution's manifest size limit; a larger "manifest" is not one. */
export const MAX_MANIFEST_BYTES = 4 * 1024 * 1024;
/** Bound on tag-list and referrers pages followed, against a registry that never ends its list. */
const MAX_PAGES = 1000;

export interface Manifest {
  digest: string;
  /** From Content-Type, falling back to the body's own mediaType. */
  mediaType: string;
  bytes: Buffer;
}

export interface ManifestHead {
  digest: string;
  mediaType: string;
  size: number;
}

/** An upload session: where to send the next request, and what the registry has so far. */
export interface UploadSession {
  location: URL;
  /** Bytes the registry holds. */
  offset: number;
  /** The registry's OCI-Chunk-Min-Length, when it gave one. */
  minChunkLength?: number;
}

/**
 * An upload chunk: a Buffer, or bytes that `open()` streams from the chunk's first byte each
 * time it is called (so a resend sends the same bytes, even of a chunk still arriving).
 */
export type ChunkBytes = Buffer | { length: number; open(): Readable };

function bodyOf(chunk: ChunkBytes): Buffer | Readable {
  return Buffer.isBuffer(chunk) ? chunk : chunk.open();
}

/**
 * What distribution 2.8 answers a manifest PUT that raced another push of the same bytes: it
 * stores the manifest as a blob, and concurrent commits of one digest fail with DIGEST_INVALID.
 */
const MANIFEST_PUT_RACE_CODES = ['DIGEST_INVALID'] as const;

/** Hoist's view of one registry, reached as its RegistryHost says, with the hosts' credential provider. */
export class RegistryClient {
  private constructor(
    readonly registry: Registry,
    /** The host's settings and what has been learned about it (quirks, mount hints, retry policy). */
    readonly host: RegistryHost,
    private readonly transport: Transport,
  ) {}

  /**
   * A client for `registry` as `hosts` configures it. Clients of the same hosts, host and
   * credential provider share one transport, and so one token cache.
   */
  static for(registry: Registry, hosts: RegistryHosts): RegistryClient {
    return new RegistryClient(registry, hosts.host(registry), hosts.transport(registry));
  }

  private url(path: string): URL {
    return new URL(path, this.host.baseUrl);
  }

  private send(req: Omit<TransportRequest, 'scopes'> & { scopes?: string[] }, ref: Reference, push = false): ReturnType<Transport['send']> {
    return this.transport.send({ ...req, scopes: req.scopes ?? [push ? ref.scope('pull', 'push') : ref.scope('pull')] });
  }

  /** Fetches a manifest by tag or digest; verifies the bytes when asked by digest. */
  async getManifest(ref: Reference, signal?: AbortSignal): Promise<Manifest> {
    const res = await this.send(
      { method: 'GET', url: this.url(`${ref.repository}/manifests/${ref.identifier}`), headers: { accept: MANIFEST_ACCEPT }, reference: ref.toString(), expect: [200], signal },
      ref,
    );
    const declared = Number(res.headers['content-length'] ?? 0);
    if (declared > MAX_MANIFEST_BYTES) {
      discard(res.body);
      throw manifestTooLarge(ref, declared);
    }
    const chunks: Buffer[] = [];
    let total = 0;
    for await (const chunk of res.body) {
      total += chunk.length;
      if (total > MAX_MANIFEST_BYTES) {
        discard(res.body);
        throw manifestTooLarge(ref, total);
      }
      chunks.push(chunk);
    }
    const bytes = Buffer.concat(chunks);
    const digest = sha256(bytes);
    if (ref.digest && ref.digest !== digest) {
      throw new RegistryError({ code: 'DIGEST_INVALID', status: 200, method: 'GET', url: redact(res.url), reference: ref.toString(), details: [{ code: 'DIGEST_INVALID', message: `manifest bytes hash to ${digest}` }] });
    }
    return { digest, mediaType: manifestMediaType(res.headers['content-type'], bytes), bytes };
  }

  /** HEADs a manifest; undefined when the registry does not have it. HEADs don't count against Docker Hub's pull limit. */
  async headManifest(ref: Reference, signal?: AbortSignal): Promise<ManifestHead | undefined> {
    const res = await this.send(
      { method: 'HEAD', url: this.url(`${ref.repository}/manifests/${ref.identifier}`), headers: { accept: MANIFEST_ACCEPT }, reference: ref.toString(), expect: [200, 404], signal },
      ref,
    );
    await res.body.dump();
    if (res.status === 404) return undefined;
    const digest = res.headers['docker-content-digest'] ?? ref.digest;
    if (!digest) {
      // Without Docker-Content-Digest a HEAD cannot tell which manifest a tag names: ask for the bytes.
      const manifest = await this.getManifest(ref, signal);
      return { digest: manifest.digest, mediaType: manifest.mediaType, size: manifest.bytes.length };
    }
    return { digest, mediaType: res.headers['content-type'] ?? '', size: Number(res.headers['content-length'] ?? 0) };
  }

  /** Pushes manifest bytes unchanged under a tag or their digest. Returns the OCI-Subject header, if any. */
  async putManifest(ref: Reference, manifest: Manifest, signal?: AbortSignal): Promise<{ subjectProcessed: boolean }> {
    const res = await this.send(
      {
        method: 'PUT',
        url: this.url(`${ref.repository}/manifests/${ref.tag ?? manifest.digest}`),
        headers: { 'content-type': manifest.mediaType },
        body: () => manifest.bytes,
        // Same bytes, same result: resending after a lost race with another push of them is harmless.
        retryOnCodes: MANIFEST_PUT_RACE_CODES,
        reference: ref.withDigest(manifest.digest).toString(),
        expect: [201],
        signal,
      },
      ref,
      true,
    );
    await res.body.dump();
    const returned = res.headers['docker-content-digest'];
    if (returned && returned !== manifest.digest) {
      throw new RegistryError({ code: 'DIGEST_INVALID', status: 201, method: 'PUT', url: redact(res.url), reference: ref.toString(), details: [{ code: 'DIGEST_INVALID', message: `registry stored the manifest as ${returned}, not ${manifest.digest}` }] });
    }
    return { subjectProcessed: res.headers['oci-subject'] !== undefined };
  }

  /**
   * The size the repository holds the blob at (its HEAD's Content-Length), or undefined when it
   * does not hold it. A blob counts as there only at its descriptor's size, so a 200 that does
   * not say the size is an error rather than a guess.
   */
  async headBlob(ref: Reference, digest: string, signal?: AbortSignal): Promise<number | undefined> {
    const reference = ref.withDigest(digest).toString();
    const res = await this.send({ method: 'HEAD', url: this.url(`${ref.repository}/blobs/${digest}`), reference, expect: [200, 404], signal }, ref);
    await res.body.dump();
    if (res.status !== 200) return undefined;
    const length = res.headers['content-length'];
    const size = length !== undefined && /^\d+$/.test(length) ? Number(length) : NaN;
    if (!Number.isSafeInteger(size)) {
      throw new RegistryError({ code: 'UNEXPECTED_RESPONSE', status: 200, method: 'HEAD', url: redact(res.url), reference, details: [{ code: 'CONTENT_LENGTH', message: `the blob HEAD answered 200 with Content-Length ${length ?? '(none)'}, not a size in bytes` }] });
    }
    return size;
  }

  /**
   * Streams a blob from `offset`, following redirects to storage and resuming with `Range` if the
   * connection drops. Read from the start, the stream verifies the bytes: wrong ones make it fail
   * before its last piece is handed on.
   */
  openBlob(ref: Reference, digest: string, size: number, offset = 0, signal?: AbortSignal): Readable {
    const reference = ref.withDigest(digest).toString();
    const url = this.url(`${ref.repository}/blobs/${digest}`);
    const get = (headers: Record<string, string>) => this.send({ method: 'GET', url, headers, reference, expect: [200, 206], signal }, ref);
    return new BlobStream({ get, digest, size, offset, reference, signal, maxResumes: this.host.retry.maxAttempts });
  }

  /**
   * Starts an upload, or mounts `mount.digest` from another repository of this registry. A 201
   * means mounted; a 202 means the registry declined the mount and opened a session instead.
   */
  async startUpload(ref: Reference, mount?: { digest: string; from: string }, signal?: AbortSignal): Promise<UploadSession | 'mounted'> {
    const url = this.url(`${ref.repository}/blobs/uploads/`);
    const scopes = [ref.scope('pull', 'push')];
    if (mount) {
      url.searchParams.set('mount', mount.digest);
      url.searchParams.set('from', mount.from);
      // Quay fails a mount without `from`; every registry needs pull on it, in the same token.
      if (mount.from !== ref.repository) scopes.push(ref.withRepository(mount.from).scope('pull'));
    }
    const res = await this.send({ method: 'POST', url, headers: { 'content-length': '0' }, reference: ref.toString(), expect: [201, 202], scopes, signal }, ref);
    await res.body.dump();
    if (res.status === 201) return 'mounted';
    const minChunk = Number(res.headers['oci-chunk-min-length']);
    return { location: this.location(res.headers.location, url, ref), offset: 0, minChunkLength: Number.isFinite(minChunk) && minChunk > 0 ? minChunk : undefined };
  }

  /**
   * Asks where an upload stands. Undefined when the registry has lost or invalidated the
   * session (404 BLOB_UPLOAD_UNKNOWN or BLOB_UPLOAD_INVALID): the caller starts again.
   */
  async uploadStatus(ref: Reference, location: URL, knownOffset: number, signal?: AbortSignal): Promise<UploadSession | undefined> {
    const res = await this.send({ method: 'GET', url: location, reference: ref.toString(), expect: [204, 404], signal }, ref, true);
    await res.body.dump();
    if (res.status === 404) return undefined;
    return { location: this.location(res.headers.location ?? location.href, location, ref), offset: parseRangeEnd(res.headers.range, knownOffset) };
  }

  /**
   * Sends one chunk. An authentication retry resends it; on any other failure it is not resent,
   * and the caller must ask `uploadStatus` before sending more (distribution 2.8 appends whatever
   * arrives, whatever Content-Range says).
   */
  async patchChunk(ref: Reference, session: UploadSession, chunk: ChunkBytes, signal?: AbortSignal): Promise<UploadSession> {
    const end = session.offset + chunk.length - 1;
    const res = await this.send(
      {
        method: 'PATCH',
        url: session.location,
        headers: { 'content-type': 'application/octet-stream', 'content-range': `${session.offset}-${end}`, 'content-length': String(chunk.length) },
        body: () => bodyOf(chunk),
        resendOnFailure: false,
        reference: ref.toString(),
        // ECR answers 201 to a PATCH.
        expect: [202, 201],
        signal,
      },
      ref,
      true,
    );
    await res.body.dump();
    const offset = res.headers.range ? parseRangeEnd(res.headers.range, session.offset + chunk.length) : session.offset + chunk.length;
    if (offset !== session.offset + chunk.length) {
      throw new RegistryError({ code: 'RANGE_INVALID', status: res.status, method: 'PATCH', url: redact(session.location), reference: ref.toString(), details: [{ code: 'RANGE_INVALID', message: `registry holds ${offset} bytes after a chunk ending at ${end + 1}` }] });
    }
    return { ...session, location: this.location(res.headers.location ?? session.location.href, session.location, ref), offset };
  }

  /**
   * Closes an upload with `?digest=`. The request may carry the blob's last bytes: the whole blob
   * as a stream of exactly `length` bytes (never resent), or the last chunk (resent only after a
   * 401 or 429, like a PATCH: the caller asks `uploadStatus` after any other failure). The
   * registry checks the digest itself (distribution: 400 DIGEST_INVALID).
   */
  async completeUpload(ref: Reference, session: UploadSession, digest: string, body?: { stream: Readable; length: number } | ChunkBytes, signal?: AbortSignal): Promise<void> {
    const url = new URL(session.location);
    url.searchParams.set('digest', digest);
    const headers: Record<string, string> = { 'content-type': 'application/octet-stream', 'content-length': String(body?.length ?? 0) };
    // A last chunk after earlier ones says where it goes, as a PATCH would: zot, for one, takes a
    // body without Content-Range as the whole blob. Not on a one-request upload, which some
    // registries refuse with it.
    const whole = body !== undefined && 'stream' in body ? body : undefined;
    const chunk = body !== undefined && !('stream' in body) ? body : undefined;
    if (chunk && session.offset > 0) headers['content-range'] = `${session.offset}-${session.offset + chunk.length - 1}`;
    const res = await this.send(
      {
        method: 'PUT',
        url,
        headers,
        body: whole ? () => whole.stream : chunk ? () => bodyOf(chunk) : undefined,
        replayable: whole === undefined,
        resendOnFailure: body === undefined,
        reference: ref.withDigest(digest).toString(),
        expect: [201, 204],
        signal,
      },
      ref,
      true,
    );
    await res.body.dump();
  }

  /** Abandons an upload session; failures are ignored, the registry purges stale uploads anyway. */
  async cancelUpload(ref: Reference, location: URL): Promise<void> {
    try {
      const res = await this.send({ method: 'DELETE', url: location, reference: ref.toString(), expect: [204, 404, 405], replayable: false }, ref, true);
      await res.body.dump();
    } catch {
      // Best effort.
    }
  }

  /**
   * Every tag of a repository, following `Link` pages. A list that breaks off (a Link back to a
   * page already read, more than MAX_PAGES pages) is an error, never a shorter list.
   */
  async listTags(ref: Reference, signal?: AbortSignal): Promise<string[]> {
    const tags: string[] = [];
    const read = new Set<string>();
    let url: URL | undefined = this.url(`${ref.repository}/tags/list`);
    while (url) {
      if (read.size === MAX_PAGES || read.has(url.href)) {
        throw listBrokeOff('TAGS_INCOMPLETE', 'tag list', url, ref.name, read.size === MAX_PAGES ? `the list goes on past ${MAX_PAGES} pages` : `page ${read.size + 1} links back to a page already read`);
      }
      read.add(url.href);
      const res = await this.send({ method: 'GET', url, reference: ref.name, expect: [200], signal }, ref);
      const answer = { status: res.status, method: 'GET', url: redact(url), reference: ref.name, contentType: res.headers['content-type'] };
      const body = (parseRegistryJson(await readLimited(res.body, MAX_MANIFEST_BYTES), answer) ?? {}) as { tags?: string[] | null };
      tags.push(...(body.tags ?? []));
      url = nextLink(res.headers.link, url);
    }
    return tags;
  }

  /**
   * Referrers of `digest` through the OCI referrers API, as descriptors, every page followed
   * (`Link: <…>; rel="next"`). Undefined when the registry has no such API (404), so the caller
   * uses the tag-schema fallback. A list that breaks off (a later page that is not an index, a
   * Link back to a page already read, more than MAX_PAGES pages) is an error, never a shorter
   * list: a copy would silently leave referrers behind. Hoist asks unfiltered, since a copy
   * takes every referrer, so `OCI-Filters-Applied` never has to be honoured here.
   */
  async referrers(ref: Reference, digest: string, signal?: AbortSignal): Promise<Descriptor[] | undefined> {
    const found: Descriptor[] = [];
    const reference = ref.withDigest(digest).toString();
    const read = new Set<string>();
    let url: URL | undefined = this.url(`${ref.repository}/referrers/${digest}`);
    while (url) {
      if (read.size === MAX_PAGES || read.has(url.href)) {
        throw referrersBrokeOff(url, reference, 200, read.size === MAX_PAGES ? `the list goes on past ${MAX_PAGES} pages` : `page ${read.size + 1} links back to a page already read`);
      }
      read.add(url.href);
      const res = await this.send({ method: 'GET', url, headers: { accept: MediaType.OciIndex }, reference, expect: [200, 404], signal }, ref);
      const contentType = res.headers['content-type'] ?? '';
      const text = await readLimited(res.body, MAX_MANIFEST_BYTES);
      if (res.status === 404 || !contentType.includes(MediaType.OciIndex)) {
        // distribution 2.8 answers a plain-text 404: that means "no API", not "no referrers".
        if (read.size === 1) return undefined;
        throw referrersBrokeOff(url, reference, res.status, `page ${read.size} answered ${res.status} with ${describeBody(contentType)}, not an OCI image index`);
      }
      const index = (parseRegistryJson(text, { status: res.status, method: 'GET', url: redact(url), reference, contentType }) ?? {}) as { manifests?: Descriptor[] };
      found.push(...(index.manifests ?? []));
      url = nextLink(res.headers.link, url);
    }
    return found;
  }

  /** Resolves an upload Location against the request URL, keeping its query (`_state` and all). */
  private location(value: string | undefined, base: URL, ref: Reference): URL {
    if (!value) {
      throw new RegistryError({ code: 'UNEXPECTED_RESPONSE', status: 202, method: 'POST', url: redact(base), reference: ref.toString(), details: [{ code: 'LOCATION', message: 'upload response without a Location header' }] });
    }
    return new URL(value, base);
  }
}

/** A content descriptor (OCI image spec). */
export interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  artifactType?: string;
  annotations?: Record<string, string>;
  platform?: { os: string; architecture: string; variant?: string; 'os.version'?: string };
  urls?: string[];
}

function manifestTooLarge(ref: Reference, size: number): RegistryError {
  return new RegistryError({ code: 'MANIFEST_INVALID', status: 200, method: 'GET', url: ref.name, reference: ref.toString(), details: [{ code: 'MANIFEST_INVALID', message: `manifest of ${size} bytes exceeds the ${MAX_MANIFEST_BYTES}-byte limit` }] });
}

/** The manifest's media type: Content-Type unless it is generic, else the body's `mediaType`. */
export function manifestMediaType(contentType: string | undefined, bytes: Buffer): string {
  const type = contentType?.split(';')[0].trim();
  if (type && type !== 'application/json' && type !== 'text/plain' && type !== 'application/octet-stream') return type;
  try {
    const body = JSON.parse(bytes.toString('utf8')) as { mediaType?: string; manifests?: unknown };
    return body.mediaType ?? (body.manifests ? MediaType.OciIndex : MediaType.OciManifest);
  } catch {
    return type ?? MediaType.OciManifest;
  }
}

/**
 * Reads an upload's `Range: 0-<end>` as the count of bytes held. Quay writes `bytes=0-<n>`.
 * `0-0` means either nothing or one byte; `known` (what the caller believes) decides.
 */
export function parseRangeEnd(range: string | undefined, known: number): number {
  const m = range ? /^(?:bytes=)?(\d+)-(\d+)$/.exec(range.trim()) : null;
  if (!m) return 0;
  const end = Number(m[2]);
  if (end === 0) return known >= 1 ? 1 : 0;
  return end + 1;
}

/** A referrers list that ended before its last page: the referrers read so far are not all. */
function referrersBrokeOff(url: URL, reference: string, status: number, why: string): RegistryError {
  return listBrokeOff('REFERRERS_INCOMPLETE', 'referrers list', url, reference, why, status);
}

/** A paged list (tags, referrers) that ended before its last page: what was read so far is not all. */
function listBrokeOff(code: string, what: string, url: URL, reference: string, why: string, status = 200): RegistryError {
  return new RegistryError({ code: 'UNEXPECTED_RESPONSE', status, method: 'GET', url: redact(url), reference, details: [{ code, message: `the ${what} broke off: ${why}` }] });
}

/** The `rel="next"` page of a `Link` header, resolved against the page that carried it. */
export function nextLink(link: string | undefined, base: URL): URL | undefined {
  const m = link ? /<([^>]+)>\s*;\s*rel="?next"?/.exec(link) : null;
  return m ? new URL(m[1], base) : undefined;
}
