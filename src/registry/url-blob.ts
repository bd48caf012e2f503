/**
 * Reading a blob from the `urls` of its descriptor: the way to a non-distributable ("foreign")
 * layer that its registry does not hold, such as a Windows base layer on Microsoft's servers.
 *
 * The URL host is not a registry, so this is not the registry transport: no credentials are
 * ever sent (the request carries none, whoever the host), only http(s) is followed, redirects are
 * bounded and never go from https down to http. Every request (redirects included) goes over
 * the copy's connections: checked by its address policy, when it has one, through its proxy, when
 * one applies, with its TLS settings. The bytes pass through the same BlobStream as a registry's,
 * so digest and size are checked while they stream.
 */
import type { Readable } from 'node:stream';
import { USER_AGENT } from './auth.js';
import { BlobStream } from './blob-stream.js';
import { cleanMessage } from './errors.js';
import type { Connections } from './http.js';
import { DEFAULT_RETRY, isRetryableNetworkError, isRetryableStatus } from './retry.js';
import { flatten, redact, type TransportResponse } from './transport.js';

/** Redirects followed per URL: enough for a CDN hop or two, never a loop. */
export const MAX_URL_REDIRECTS = 5;

/**
 * URL failures an error quotes: a descriptor may list any number of URLs, and the message ends
 * up in a job record that must stay small.
 */
export const MAX_URL_FAILURES_QUOTED = 5;

/** No URL of a blob gave its bytes: the first failures' reasons are in `failures`. */
export class UrlBlobError extends Error {
  override readonly name = 'UrlBlobError';
  readonly code = 'URL_BLOB_UNAVAILABLE';
  /** The reasons of the first MAX_URL_FAILURES_QUOTED URLs that failed. */
  readonly failures: string[];
  constructor(
    readonly digest: string,
    failures: string[],
    /** Some URL failed as a host in trouble does (network error, 5xx, 429): a later try may work. */
    readonly transient = false,
  ) {
    const quoted = failures.slice(0, MAX_URL_FAILURES_QUOTED);
    const more = failures.length > quoted.length ? `; and ${failures.length - quoted.length} more` : '';
    super(`no URL of blob ${digest} served it: ${quoted.join('; ') || 'the descriptor lists no URLs'}${more}`);
    this.failures = quoted;
  }
}

export interface UrlBlobOptions {
  /** The descriptor's `urls`, tried in order. */
  urls: readonly string[];
  digest: string;
  size: number;
  /** Where to start; only a stream read from 0 is verified here (see BlobStream). */
  offset?: number;
  /** The copy's connections (RegistryHosts.connections): its address policy, TLS and proxy settings. */
  connections: Connections;
  signal?: AbortSignal;
  /** Requests in all for the body when it is cut (the copy's retry policy's maxAttempts). Default 5. */
  maxResumes?: number;
}

/**
 * Streams a blob from the first of its URLs that answers with it, verified against its digest and
 * size. A URL that answers but serves other bytes fails the stream (DigestMismatchError); one
 * that cannot be reached, is refused by the policy or answers an error is passed over for the next.
 */
export function openUrlBlob(options: UrlBlobOptions): Readable {
  const { urls, digest, size, connections, signal } = options;
  // The URL that answered first: a body cut mid-way resumes with Range from the same host.
  let chosen: URL | undefined;
  const get = async (headers: Record<string, string>): Promise<TransportResponse> => {
    if (chosen) return fetchFollowing(chosen, headers, connections, signal);
    const failures: string[] = [];
    let transient = false;
    for (const raw of urls) {
      let url: URL;
      try {
        url = new URL(raw);
      } catch {
        failures.push(`"${cleanMessage(raw)}" is not a URL`);
        continue;
      }
      try {
        const response = await fetchFollowing(url, headers, connections, signal);
        chosen = url;
        return response;
      } catch (error) {
        if (signal?.aborted) throw error;
        transient ||= isRetryableNetworkError(error) || (error instanceof UrlStatusError && isRetryableStatus(error.status));
        failures.push(`${cleanMessage(redact(url))}: ${(error as Error).message}`);
      }
    }
    throw new UrlBlobError(digest, failures, transient);
  };
  return new BlobStream({ get, digest, size, offset: options.offset ?? 0, reference: `${digest} (from its URLs)`, signal, maxResumes: options.maxResumes ?? DEFAULT_RETRY.maxAttempts });
}

/** A URL host answered with an error status. */
class UrlStatusError extends Error {
  constructor(readonly status: number) {
    super(`answered ${status}`);
  }
}

/** GETs `start` over `connections`, following at most MAX_URL_REDIRECTS redirects. */
async function fetchFollowing(start: URL, headers: Record<string, string>, connections: Connections, signal?: AbortSignal): Promise<TransportResponse> {
  let url = start;
  for (let hop = 0; ; hop++) {
    if (url.protocol !== 'https:' && url.protocol !== 'http:') throw new Error(`only http and https URLs are followed, not ${url.protocol}`);
    // No authorization header, ever: the URL host is not the registry the credentials are for.
    const response = await connections.exchange({ url, method: 'GET', headers: { 'user-agent': USER_AGENT, ...headers }, signal });
    const location = flatten(response.headers).location;
    if ([301, 302, 303, 307, 308].includes(response.statusCode) && location) {
      await response.body.dump();
      if (hop >= MAX_URL_REDIRECTS) throw new Error(`more than ${MAX_URL_REDIRECTS} redirects`);
      const next = new URL(location, url);
      if (url.protocol === 'https:' && next.protocol !== 'https:') throw new Error('refused a redirect from https down to http');
      url = next;
      continue;
    }
    if (response.statusCode !== 200 && response.statusCode !== 206) {
      await response.body.dump();
      throw new UrlStatusError(response.statusCode);
    }
    return { status: response.statusCode, headers: flatten(response.headers), body: response.body, url };
  }
}
