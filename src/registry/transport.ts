/**
 * The request layer under the registry client: it owns authentication, redirects, retries and
 * error decoding, so no layer above retries a request again (retries would multiply). Two things
 * it leaves to the layers that know more: a blob GET cut mid-body resumes with Range (blob-stream.ts),
 * and a failed upload chunk is resent only once the registry says none of it landed (the copy
 * engine's sendChunk). http.ts is the wire below it.
 */
import { Readable } from 'node:stream';
import { Authenticator, readLimited, USER_AGENT } from './auth.js';
import type { CredentialProvider } from './credentials.js';
import { codeForStatus, errorDetailsFromBody, RegistryError, tlsVerifyRegistryError, type RegistryErrorDetail } from './errors.js';
import { TlsVerifyError } from './tls.js';
import { Connections, type ResponseBody } from './http.js';
import { LimitsByHost, type HostLimits } from './host-limits.js';
import { ProxyError } from './proxy.js';
import { backoffDelay, isRetryableNetworkError, isRetryableStatus, parseRetryAfter, sleep, type RetryPolicy } from './retry.js';

/** Error bodies are read up to this much; anything beyond is noise. */
const MAX_ERROR_BODY_BYTES = 64 * 1024;
const MAX_REDIRECTS = 5;
/**
 * 401s answered by authenticating again: the first teaches the challenge, the others follow a
 * provider that rotated its credentials; bounded against a provider that changes on every call.
 */
const MAX_REAUTHENTICATIONS = 3;

export interface TransportRequest {
  method: 'GET' | 'HEAD' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';
  url: URL;
  headers?: Record<string, string>;
  /**
   * Makes the body. Called again for each retry, so a Buffer, or a stream opened afresh from its
   * first byte, can be resent; a one-shot stream must set `replayable: false` and is never
   * retried once sent.
   */
  body?: () => Buffer | Readable;
  replayable?: boolean;
  /**
   * False for a request the registry may have half applied when it fails: an upload chunk it
   * may have partly appended (distribution 2.8 appends whatever arrives, whatever Content-Range
   * says). It is never resent after a dropped connection or a 5xx; the caller asks the registry
   * what it holds instead. A 401 or 429 is still answered, since the registry refused the request
   * before reading it.
   */
  resendOnFailure?: boolean;
  /**
   * Spec error codes that, on this request, mean it lost a race with a concurrent one and may
   * succeed when resent: distribution 2.8 stores a manifest as a blob of its repository, and
   * answers a manifest PUT racing another commit of the same bytes with DIGEST_INVALID. Resent
   * with the same back-off as a 5xx; only for requests whose resending is harmless.
   */
  retryOnCodes?: readonly string[];
  /** Token scopes the request needs, e.g. `repository:a/b:pull`. */
  scopes: string[];
  /** What the request is about, for errors: `host/repo@digest`. */
  reference: string;
  /** Statuses returned to the caller; any other status becomes a RegistryError. */
  expect: number[];
  signal?: AbortSignal;
}

export interface TransportResponse {
  status: number;
  headers: Record<string, string | undefined>;
  body: ResponseBody;
  /** The URL that answered (after redirects). */
  url: URL;
}

/** HTTP to one registry host, with one credential provider. Built by RegistryHosts (hosts.ts). */
export class Transport {
  readonly auth: Authenticator;
  /** This host's cap on requests in flight and its 429 pause. */
  private readonly limits: HostLimits;

  /**
   * @param host the API host (`registry-1.docker.io`)
   * @param registry the registry's name in references (`docker.io`), which providers are asked by
   * @param retry the host's retry policy, for every request and token request
   * @param connections the pools (with their address policy, TLS and proxy settings) of the
   * RegistryHosts; new ones, direct and unchecked, when not given
   * @param limitsByHost the RegistryHosts' caps on requests in flight and 429 pauses, per host:
   * this host's are shared by every transport to it, and its token service's by every token
   * request there
   */
  constructor(
    readonly host: string,
    registry: string,
    credentials: CredentialProvider,
    readonly retry: RetryPolicy,
    private readonly connections: Connections = new Connections(),
    limitsByHost: LimitsByHost = new LimitsByHost(),
  ) {
    this.limits = limitsByHost.for(host);
    this.auth = new Authenticator(host, registry, credentials, retry, connections, limitsByHost);
  }

  /** Sends a request, authenticating, following redirects and retrying as needed. */
  async send(req: TransportRequest): Promise<TransportResponse> {
    let reauthentications = 0;
    let authorization: string | undefined;
    for (let attempt = 1; ; attempt++) {
      let response: TransportResponse;
      try {
        authorization = await this.auth.authorization(req.scopes, req.signal);
        const release = await this.limits.acquire(req.signal);
        try {
          const body = req.body?.();
          // A streamed body may be read from another request to this same host (a blob copied
          // within one registry): holding a slot while it waits for one could leave every slot
          // waiting. Uploads are bounded by the engine's transfer lanes instead.
          if (body instanceof Readable) release();
          response = await this.sendOnce(req, authorization, body);
        } finally {
          release();
        }
      } catch (error) {
        // Errors raised by a request body (a source stream failing its digest check, say) pass
        // through unchanged: only socket-level failures (and a proxy's refusal) are this layer's business.
        if (error instanceof TlsVerifyError) throw tlsVerifyRegistryError(error, { method: req.method, url: redact(req.url), reference: req.reference });
        if (req.signal?.aborted || !(isNetworkFailure(error) || error instanceof ProxyError)) throw error;
        const canRetry = isRetryableNetworkError(error) && attempt < this.retry.maxAttempts && req.replayable !== false && req.resendOnFailure !== false;
        // A proxy's refusal names the proxy: it goes up as it is.
        if (!canRetry && error instanceof ProxyError) throw error;
        if (!canRetry) {
          throw new RegistryError({ code: 'NETWORK_ERROR', status: 0, method: req.method, url: redact(req.url), reference: req.reference, cause: error, details: [{ code: 'NETWORK_ERROR', message: (error as Error).message }] });
        }
        await sleep(backoffDelay(this.retry, attempt), req.signal);
        continue;
      }
      const { status } = response;
      if (status === 401 && reauthentications < MAX_REAUTHENTICATIONS && req.replayable !== false) {
        const verdict = await this.auth.rejected(response.headers['www-authenticate'], req.scopes, authorization, req.signal);
        // First 401: learn the challenge (or that the token expired) and try once more; later
        // ones only when the provider has rotated what it gives. Neither counts as a retry.
        if (verdict === 'renewed' || (verdict === 'retry' && reauthentications === 0)) {
          await response.body.dump();
          reauthentications++;
          attempt--;
          continue;
        }
      }
      if (req.expect.includes(status)) return response;
      const refusedUnread = status === 429;
      if (isRetryableStatus(status) && attempt < this.retry.maxAttempts && req.replayable !== false && (req.resendOnFailure !== false || refusedUnread)) {
        const delay = backoffDelay(this.retry, attempt, parseRetryAfter(response.headers['retry-after']));
        await response.body.dump();
        // Throttling is the host's state: every request to it waits, this one in limits.acquire.
        if (status === 429) this.limits.pause(delay);
        else await sleep(delay, req.signal);
        continue;
      }
      const error = await errorFrom(req, response);
      if (req.retryOnCodes?.includes(error.code) && attempt < this.retry.maxAttempts && req.replayable !== false) {
        await sleep(backoffDelay(this.retry, attempt), req.signal);
        continue;
      }
      throw error;
    }
  }

  /** One exchange: `authorization` goes to the registry's own origin only, never across a redirect. */
  private async sendOnce(req: TransportRequest, authorization: string | undefined, body: Buffer | Readable | undefined): Promise<TransportResponse> {
    let url = req.url;
    let sameOrigin = true;
    for (let hop = 0; ; hop++) {
      const headers: Record<string, string> = { 'user-agent': USER_AGENT, ...req.headers };
      // Credentials go to the registry only, never to a storage host it redirects to.
      if (sameOrigin && authorization) headers.authorization = authorization;
      // The registry's skip-verify covers the hosts it sends requests to (tls.ts).
      const response = await this.connections.exchange({ url, method: req.method, headers, body: hop === 0 ? body : undefined, signal: req.signal, registryHost: this.host, reachedAs: 'redirect' });
      const location = header(response.headers, 'location');
      const isRedirect = [301, 302, 303, 307, 308].includes(response.statusCode) && location && (req.method === 'GET' || req.method === 'HEAD');
      if (!isRedirect || hop >= MAX_REDIRECTS) {
        return { status: response.statusCode, headers: flatten(response.headers), body: response.body, url };
      }
      await response.body.dump();
      const next = new URL(location, url);
      if (url.protocol === 'https:' && next.protocol !== 'https:') {
        throw new RegistryError({ code: 'UNEXPECTED_RESPONSE', status: response.statusCode, method: req.method, url: redact(url), reference: req.reference, details: [{ code: 'REDIRECT', message: 'refused a redirect from https down to http' }] });
      }
      sameOrigin = sameOrigin && next.origin === req.url.origin;
      url = next;
    }
  }
}

function isNetworkFailure(error: unknown): boolean {
  const code = (error as { code?: unknown } | undefined)?.code;
  return !(error instanceof RegistryError) && typeof code === 'string' && /^(E[A-Z]+|UND_ERR)/.test(code);
}

function header(headers: Record<string, string | string[] | undefined>, name: string): string | undefined {
  const value = headers[name];
  return Array.isArray(value) ? value[0] : value;
}

/** Response headers with lower-case names, a repeated header joined into one value. */
export function flatten(headers: Record<string, string | string[] | undefined>): Record<string, string | undefined> {
  const out: Record<string, string | undefined> = {};
  for (const [name, value] of Object.entries(headers)) out[name.toLowerCase()] = Array.isArray(value) ? value.join(', ') : value;
  return out;
}

/** The URL without its query: upload `_state` and storage signatures are secrets of a kind. */
export function redact(url: URL): string {
  return url.origin + url.pathname;
}

async function errorFrom(req: TransportRequest, response: TransportResponse): Promise<RegistryError> {
  let details: RegistryErrorDetail[] | undefined;
  if (req.method !== 'HEAD') {
    const text = await readLimited(response.body, MAX_ERROR_BODY_BYTES).catch(() => '');
    details = errorDetailsFromBody(response.status, response.headers['content-type'], text);
  } else {
    await response.body.dump();
  }
  const code = details?.[0]?.code ?? codeForStatus(response.status);
  return new RegistryError({ code, status: response.status, method: req.method, url: redact(req.url), reference: req.reference, details });
}
