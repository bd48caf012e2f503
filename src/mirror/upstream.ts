/**
 * The two upstream requests a resync makes, sent through the registry transport (auth,
 * redirects, address policy) but with 429 handed back instead of retried, and every answer's
 * headers shown to the host's budget: a manifest HEAD per wanted tag, and the tag list's pages
 * (following `Link`) only when the watch's filters need the list.
 */
import { readLimited } from '../registry/auth.js';
import { MAX_MANIFEST_BYTES, nextLink } from '../registry/client.js';
import { parseRegistryJson, RegistryError } from '../registry/errors.js';
import type { RegistryHosts } from '../registry/hosts.js';
import { MANIFEST_ACCEPT } from '../registry/media-types.js';
import { parseDigest, type Reference } from '../registry/reference.js';
import { redact } from '../registry/transport.js';
import type { HostBudget } from './rate-limit.js';

/** Pages of a tag list followed at most. */
const MAX_TAG_PAGES = 100;
/** Tags asked for per page (`?n=`); registries that page by default (Docker Hub) send `Link` anyway. */
export const DEFAULT_TAG_PAGE_SIZE = 1000;
/** Tags kept from a list at most: more is a registry gone wrong, or a repository no watch should follow whole. */
export const MAX_LISTED_TAGS = 10_000;

/** Counts of what was asked upstream, for the run's record. */
export interface UpstreamCounts {
  heads: number;
  tagListRequests: number;
  /** Manifest and config GETs, for the creation times `latest` orders by (count against pull limits). */
  gets: number;
}

/** The most an image config is read to find its creation time. */
const MAX_CONFIG_BYTES = 1024 * 1024;

/**
 * The digest a tag names upstream; undefined when the tag does not exist, `'stopped'` when the
 * host's budget stopped (a 429, or the limit ran low before this request).
 */
export async function headTag(ref: Reference, hosts: RegistryHosts, budget: HostBudget, counts: UpstreamCounts): Promise<string | undefined | 'stopped'> {
  const transport = hosts.transport(ref.registry);
  const url = new URL(`${ref.repository}/manifests/${ref.tag!}`, hosts.host(ref.registry).baseUrl);
  const answer = await budget.run(async () => {
    counts.heads++;
    const res = await transport.send({ method: 'HEAD', url, headers: { accept: MANIFEST_ACCEPT }, scopes: [ref.scope('pull')], reference: ref.toString(), expect: [200, 404, 429] });
    await res.body.dump();
    return { status: res.status, headers: res.headers, value: res.headers['docker-content-digest'] };
  });
  if (!answer || answer.status === 429) return 'stopped';
  if (answer.status === 404) return undefined;
  if (!answer.value) {
    // Without Docker-Content-Digest a HEAD cannot tell which manifest a tag names; a GET would
    // count against pull limits, so such a registry is reported rather than quietly pulled from.
    throw new RegistryError({ code: 'UNEXPECTED_RESPONSE', status: 200, method: 'HEAD', url: redact(url), reference: ref.toString(), details: [{ code: 'NO_DIGEST', message: 'the manifest HEAD carried no Docker-Content-Digest header' }] });
  }
  return answer.value;
}

/** Every tag of the repository, or `'stopped'` when the host's budget stopped part way. */
export async function listTags(repository: Reference, hosts: RegistryHosts, budget: HostBudget, counts: UpstreamCounts, pageSize = DEFAULT_TAG_PAGE_SIZE): Promise<string[] | 'stopped'> {
  const transport = hosts.transport(repository.registry);
  const tags: string[] = [];
  let url: URL | undefined = new URL(`${repository.repository}/tags/list?n=${pageSize}`, hosts.host(repository.registry).baseUrl);
  for (let page = 0; url && page < MAX_TAG_PAGES; page++) {
    const pageUrl: URL = url;
    const answer = await budget.run(async () => {
      counts.tagListRequests++;
      const res = await transport.send({ method: 'GET', url: pageUrl, scopes: [repository.scope('pull')], reference: repository.name, expect: [200, 429] });
      if (res.status === 429) {
        await res.body.dump();
        return { status: res.status, headers: res.headers, value: { tags: [] as string[], next: undefined } };
      }
      const body = parseRegistryJson(await readLimited(res.body, MAX_MANIFEST_BYTES), { status: res.status, method: 'GET', url: redact(pageUrl), reference: repository.name, contentType: res.headers['content-type'] }) as { tags?: unknown } | undefined;
      const pageTags = Array.isArray(body?.tags) ? body.tags.filter((t): t is string => typeof t === 'string') : [];
      return { status: res.status, headers: res.headers, value: { tags: pageTags, next: nextLink(res.headers.link, pageUrl) } };
    });
    if (!answer || answer.status === 429) return 'stopped';
    tags.push(...answer.value.tags);
    if (tags.length > MAX_LISTED_TAGS) {
      throw new RegistryError({ code: 'UNEXPECTED_RESPONSE', status: 200, method: 'GET', url: redact(pageUrl), reference: repository.name, details: [{ code: 'TOO_MANY_TAGS', message: `the repository lists more than ${MAX_LISTED_TAGS} tags` }] });
    }
    url = answer.value.next;
  }
  return tags;
}

/**
 * When the image a manifest digest names was created, by its config's `created` (for an index,
 * its first platform's): undefined when it says none, `'stopped'` when the host's budget stopped.
 * Two or three GETs, each counted against the host's budget and, on Docker Hub, its pull limit.
 */
export async function imageCreated(ref: Reference, hosts: RegistryHosts, budget: HostBudget, counts: UpstreamCounts): Promise<string | undefined | 'stopped'> {
  let manifest = await getJson(ref, `${ref.repository}/manifests/${ref.digest!}`, MAX_MANIFEST_BYTES, hosts, budget, counts);
  if (manifest === 'stopped') return manifest;
  const first = Array.isArray(manifest?.manifests) ? (manifest.manifests[0] as { digest?: unknown } | undefined)?.digest : undefined;
  if (typeof first === 'string') {
    manifest = await getJson(ref, `${ref.repository}/manifests/${parseDigest(first)}`, MAX_MANIFEST_BYTES, hosts, budget, counts);
    if (manifest === 'stopped') return manifest;
  }
  const configDigest = (manifest?.config as { digest?: unknown } | undefined)?.digest;
  if (typeof configDigest !== 'string') return undefined;
  const config = await getJson(ref, `${ref.repository}/blobs/${parseDigest(configDigest)}`, MAX_CONFIG_BYTES, hosts, budget, counts);
  if (config === 'stopped') return config;
  const created = config?.created;
  return typeof created === 'string' && !Number.isNaN(Date.parse(created)) ? new Date(created).toISOString() : undefined;
}

/** One GET of a JSON document, read up to `limit` bytes; `'stopped'` as for the others. */
async function getJson(ref: Reference, path: string, limit: number, hosts: RegistryHosts, budget: HostBudget, counts: UpstreamCounts): Promise<Record<string, unknown> | undefined | 'stopped'> {
  const transport = hosts.transport(ref.registry);
  const url = new URL(path, hosts.host(ref.registry).baseUrl);
  const answer = await budget.run(async () => {
    counts.gets++;
    const res = await transport.send({ method: 'GET', url, headers: { accept: MANIFEST_ACCEPT }, scopes: [ref.scope('pull')], reference: ref.toString(), expect: [200, 429] });
    if (res.status === 429) {
      await res.body.dump();
      return { status: res.status, headers: res.headers, value: undefined };
    }
    const body = parseRegistryJson(await readLimited(res.body, limit), { status: res.status, method: 'GET', url: redact(url), reference: ref.toString(), contentType: res.headers['content-type'] });
    return { status: res.status, headers: res.headers, value: typeof body === 'object' && body !== null ? (body as Record<string, unknown>) : undefined };
  });
  if (!answer || answer.status === 429) return 'stopped';
  return answer.value;
}
