/**
 * A protocol fixture: the OCI 1.1 referrers API (distribution-spec v1.1, "Listing Referrers" and
 * "Pushing Manifests with Subject") in front of a real distribution 2.8 registry, which has
 * neither. ACR, GHCR, Docker Hub, Harbor and zot serve this API; no registry binary on these
 * machines does, so the tests put this in front of docker-registry to copy to and from one.
 *
 * What it adds to the registry, and nothing else (every other request is relayed unchanged):
 * - a manifest PUT whose body has a `subject` is indexed once the registry stored it (201), and
 *   the answer carries `OCI-Subject: <subject digest>`;
 * - `GET /v2/<name>/referrers/<digest>` answers an OCI image index of the repository's manifests
 *   whose subject is `<digest>`: each descriptor's artifactType is the manifest's `artifactType`,
 *   else its config's mediaType (omitted for an index without one), and carries the manifest's
 *   annotations; `?artifactType=` filters, with `OCI-Filters-Applied: artifactType`; pages hold
 *   `pageSize` entries and link the next with `Link: <…>; rel="next"`; a digest nothing refers
 *   to gets an empty index (200), never a 404; a repository the registry does not know gets the
 *   registry's own answer (404 NAME_UNKNOWN, or 401 when the request lacks access);
 * - a manifest DELETE by digest drops the manifest from the index.
 *
 * The index lives in memory and sees only what is pushed through the fixture: start it before
 * pushing. Only loopback addresses.
 */
import { createHash } from 'node:crypto';
import { Agent, createServer, request as httpRequest, type IncomingHttpHeaders, type IncomingMessage, type ServerResponse } from 'node:http';
import { listenOnLoopback } from './ports.js';
import { forwardedHeaders, relayedHeaders } from './proxy.js';

const OCI_INDEX = 'application/vnd.oci.image.index.v1+json';
/** distribution's manifest size limit: a larger PUT body is refused before it is buffered. */
const MAX_MANIFEST_BYTES = 4 * 1024 * 1024;
const MANIFEST_PATH = /^\/v2\/(.+)\/manifests\/([^/]+)$/;
const REFERRERS_PATH = /^\/v2\/(.+)\/referrers\/([^/]+)$/;
const DIGEST = /^sha256:[0-9a-f]{64}$/;

/** A descriptor as the referrers API lists it. */
export interface ReferrerDescriptor {
  mediaType: string;
  digest: string;
  size: number;
  artifactType?: string;
  annotations?: Record<string, string>;
}

/** Options of {@link startReferrersFixture}. */
export interface ReferrersFixtureOptions {
  /** Descriptors per referrers page; small, so clients must follow `Link`. Default 2. */
  pageSize?: number;
}

/** A running fixture. */
export interface ReferrersFixture {
  /** `http://127.0.0.1:PORT` */
  url: string;
  /** `127.0.0.1:PORT`, for image references. */
  host: string;
  /** Every referrers request (path and query), in arrival order. */
  referrersRequests: string[];
  /** Manifest PUTs the fixture answered with `OCI-Subject`, as `<name>@<digest>`. */
  subjectPuts: string[];
  stop(): Promise<void>;
}

/** Starts the fixture on a free loopback port in front of `upstream` (`http://127.0.0.1:PORT`). */
export async function startReferrersFixture(upstream: string, options: ReferrersFixtureOptions = {}): Promise<ReferrersFixture> {
  const pageSize = options.pageSize ?? 2;
  const upstreamUrl = new URL(upstream);
  const agent = new Agent({ keepAlive: true });
  /** `<name>\n<subject digest>` → referrer digest → descriptor, in push order. */
  const index = new Map<string, Map<string, ReferrerDescriptor>>();
  const referrersRequests: string[] = [];
  const subjectPuts: string[] = [];
  let origin = '';

  function forwardHeaders(headers: IncomingHttpHeaders): Record<string, string | string[]> {
    return forwardedHeaders(headers, upstreamUrl.host);
  }

  /** Sends a request upstream; the body is a buffer, the client's stream, or none. */
  function upstreamRequest(method: string, path: string, headers: Record<string, string | string[]>, body?: Buffer | IncomingMessage): Promise<IncomingMessage> {
    return new Promise((resolve, reject) => {
      const req = httpRequest(new URL(path, upstreamUrl), { method, headers, agent }, resolve);
      req.on('error', reject);
      if (body === undefined || Buffer.isBuffer(body)) req.end(body);
      else body.pipe(req);
    });
  }

  function readBody(message: IncomingMessage, limit: number): Promise<Buffer | undefined> {
    return new Promise((resolve, reject) => {
      const chunks: Buffer[] = [];
      let length = 0;
      message.on('data', (chunk: Buffer) => {
        length += chunk.length;
        if (length <= limit) chunks.push(chunk);
      });
      message.on('end', () => resolve(length <= limit ? Buffer.concat(chunks) : undefined));
      message.on('error', reject);
    });
  }

  function answerJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
    const bytes = Buffer.from(JSON.stringify(body));
    res.writeHead(status, { 'content-type': 'application/json', 'content-length': String(bytes.length), ...headers });
    res.end(bytes);
  }

  async function relay(res: ServerResponse, upstreamRes: IncomingMessage, extra: Record<string, string> = {}, body?: Buffer): Promise<void> {
    res.writeHead(upstreamRes.statusCode ?? 502, [...relayedHeaders(upstreamRes.rawHeaders, upstreamUrl.origin, origin), ...Object.entries(extra).flat()]);
    if (body !== undefined) res.end(body);
    else upstreamRes.pipe(res);
  }

  /** Manifest PUT: stored by the registry first, then indexed by its subject. */
  async function putManifest(req: IncomingMessage, res: ServerResponse, name: string): Promise<void> {
    const bytes = await readBody(req, MAX_MANIFEST_BYTES);
    if (!bytes) return answerJson(res, 413, { errors: [{ code: 'SIZE_INVALID', message: `manifest over ${MAX_MANIFEST_BYTES} bytes` }] });
    const upstreamRes = await upstreamRequest('PUT', req.url ?? '', { ...forwardHeaders(req.headers), 'content-length': String(bytes.length) }, bytes);
    const answer = (await readBody(upstreamRes, MAX_MANIFEST_BYTES)) ?? Buffer.alloc(0);
    const subject = upstreamRes.statusCode === 201 ? subjectOf(bytes) : undefined;
    if (!subject) return relay(res, upstreamRes, {}, answer);
    const digest = `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
    const key = `${name}\n${subject}`;
    const entries = index.get(key) ?? new Map<string, ReferrerDescriptor>();
    entries.set(digest, referrerDescriptor(bytes, digest, req.headers['content-type']));
    index.set(key, entries);
    subjectPuts.push(`${name}@${digest}`);
    return relay(res, upstreamRes, { 'OCI-Subject': subject }, answer);
  }

  async function deleteManifest(req: IncomingMessage, res: ServerResponse, name: string, reference: string): Promise<void> {
    const upstreamRes = await upstreamRequest('DELETE', req.url ?? '', forwardHeaders(req.headers));
    if (upstreamRes.statusCode === 202 && DIGEST.test(reference)) {
      for (const [key, entries] of index) if (key.startsWith(`${name}\n`)) entries.delete(reference);
    }
    return relay(res, upstreamRes);
  }

  async function listReferrers(req: IncomingMessage, res: ServerResponse, name: string, subject: string, url: URL): Promise<void> {
    referrersRequests.push(`${url.pathname}${url.search}`);
    await readBody(req, 0);
    if (!DIGEST.test(subject)) return answerJson(res, 400, { errors: [{ code: 'DIGEST_INVALID', message: 'invalid digest' }] });
    // The registry decides whether the repository exists and the caller may read it.
    const probe = await upstreamRequest('GET', `/v2/${name}/tags/list?n=1`, forwardHeaders(req.headers));
    if (probe.statusCode !== 200) return relay(res, probe);
    probe.resume();
    const artifactType = url.searchParams.get('artifactType');
    const all = [...(index.get(`${name}\n${subject}`)?.values() ?? [])];
    const listed = artifactType === null ? all : all.filter((d) => d.artifactType === artifactType);
    const last = url.searchParams.get('last');
    const start = last === null ? 0 : listed.findIndex((d) => d.digest === last) + 1;
    const page = listed.slice(start, start + pageSize);
    const headers: Record<string, string> = { 'content-type': OCI_INDEX };
    if (artifactType !== null) headers['OCI-Filters-Applied'] = 'artifactType';
    if (start + pageSize < listed.length) {
      const next = new URLSearchParams();
      if (artifactType !== null) next.set('artifactType', artifactType);
      next.set('last', page[page.length - 1]!.digest);
      headers.link = `</v2/${name}/referrers/${subject}?${next.toString()}>; rel="next"`;
    }
    const bytes = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: OCI_INDEX, manifests: page }));
    res.writeHead(200, { ...headers, 'content-length': String(bytes.length) });
    res.end(bytes);
  }

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://fixture');
    const referrers = REFERRERS_PATH.exec(url.pathname);
    if (referrers && req.method === 'GET') return listReferrers(req, res, referrers[1]!, decodeURIComponent(referrers[2]!), url);
    const manifest = MANIFEST_PATH.exec(url.pathname);
    if (manifest && req.method === 'PUT') return putManifest(req, res, manifest[1]!);
    if (manifest && req.method === 'DELETE') return deleteManifest(req, res, manifest[1]!, decodeURIComponent(manifest[2]!));
    return relay(res, await upstreamRequest(req.method ?? 'GET', req.url ?? '/', forwardHeaders(req.headers), req));
  }

  const server = createServer((req, res) => {
    handle(req, res).catch(() => {
      if (!res.headersSent) answerJson(res, 502, { errors: [{ code: 'UNAVAILABLE', message: 'fixture could not reach the registry' }] });
      else res.destroy();
    });
  });
  const address = await listenOnLoopback(server);
  origin = address.url;
  return {
    url: address.url,
    host: address.host,
    referrersRequests,
    subjectPuts,
    async stop() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      agent.destroy();
    },
  };
}

/** The digest of a manifest's `subject`, if it has a well-formed one. */
function subjectOf(bytes: Buffer): string | undefined {
  try {
    const digest = (JSON.parse(bytes.toString('utf8')) as { subject?: { digest?: unknown } }).subject?.digest;
    return typeof digest === 'string' && DIGEST.test(digest) ? digest : undefined;
  } catch {
    return undefined;
  }
}

/** The descriptor the referrers API lists for a manifest (distribution-spec v1.1). */
function referrerDescriptor(bytes: Buffer, digest: string, contentType: string | undefined): ReferrerDescriptor {
  const json = JSON.parse(bytes.toString('utf8')) as { mediaType?: string; artifactType?: string; config?: { mediaType?: string }; manifests?: unknown; annotations?: Record<string, string> };
  const mediaType = json.mediaType ?? contentType ?? 'application/vnd.oci.image.manifest.v1+json';
  const isIndex = json.manifests !== undefined;
  const artifactType = json.artifactType || (isIndex ? undefined : json.config?.mediaType);
  return { mediaType, digest, size: bytes.length, ...(artifactType ? { artifactType } : {}), ...(json.annotations ? { annotations: json.annotations } : {}) };
}
