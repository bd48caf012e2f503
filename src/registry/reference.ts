/**
 * Image references, parsed once at the boundary into immutable values, the way docker, skopeo and
 * crane read them (distribution's reference grammar). Lower layers never take raw strings.
 */

/** A path component: lowercase alphanumerics joined by `.`, `_`, `__` or runs of `-`. */
const COMPONENT = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;
/** A DNS host (letters may be uppercase), an IPv4 address or a bracketed IPv6 address, with an optional port. */
const DOMAIN = /^(?:(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])(?:\.(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9]))*|\[[0-9a-fA-F:.]+\])(?::[0-9]+)?$/;
/** A tag: up to 128 letters, digits, '_', '.' or '-', not starting with '.' or '-'. */
export const TAG = /^[\w][\w.-]{0,127}$/;
const DIGEST = /^([a-z0-9]+(?:[.+_-][a-z0-9]+)*):([a-zA-Z0-9=_-]+)$/;
const SHA256_HEX = /^[a-f0-9]{64}$/;
const SHA512_HEX = /^[a-f0-9]{128}$/;
const MAX_REPOSITORY_LENGTH = 255;

export const DOCKER_HUB = 'docker.io';
/** Docker Hub's API lives on its own host; `docker.io` and `index.docker.io` are only names for it. */
const DOCKER_HUB_API_HOST = 'registry-1.docker.io';

/** Thrown for a reference that breaks the grammar; `message` says what is allowed. */
export class InvalidReferenceError extends Error {
  override readonly name = 'InvalidReferenceError';
  readonly code = 'INVALID_REFERENCE';
  constructor(readonly input: string, reason: string) {
    super(`invalid reference "${input}": ${reason}`);
  }
}

/** Checks a digest string (`sha256:<64 hex>` or `sha512:<128 hex>`), returning it unchanged. */
export function parseDigest(input: string): string {
  const m = DIGEST.exec(input);
  if (!m) throw new InvalidReferenceError(input, 'a digest is ALGORITHM:HEX, for example sha256:<64 lowercase hex digits>');
  const [, algorithm, hex] = m;
  if (algorithm === 'sha256' && !SHA256_HEX.test(hex)) {
    throw new InvalidReferenceError(input, 'a sha256 digest needs exactly 64 lowercase hex digits');
  }
  if (algorithm === 'sha512' && !SHA512_HEX.test(hex)) {
    throw new InvalidReferenceError(input, 'a sha512 digest needs exactly 128 lowercase hex digits');
  }
  if (algorithm !== 'sha256' && algorithm !== 'sha512') {
    throw new InvalidReferenceError(input, `unsupported digest algorithm "${algorithm}" (sha256 and sha512 are accepted)`);
  }
  return input;
}

/** A registry as references name it. How to reach it (scheme, credentials, retries) is its RegistryHost's (hosts.ts). */
export class Registry {
  /** @param name the registry as written in references, normalised (`docker.io` for Docker Hub). */
  constructor(readonly name: string) {}

  /** The host:port that serves the API (Docker Hub's differs from its name). */
  get apiHost(): string {
    return this.name === DOCKER_HUB ? DOCKER_HUB_API_HOST : this.name;
  }

  toString(): string {
    return this.name;
  }
}

function hostOnly(hostPort: string): string {
  if (hostPort.startsWith('[')) return hostPort.slice(1, hostPort.indexOf(']'));
  const colon = hostPort.lastIndexOf(':');
  return colon === -1 ? hostPort : hostPort.slice(0, colon);
}

/** localhost, 127.0.0.0/8 and ::1. */
export function isLoopback(hostPort: string): boolean {
  const host = hostOnly(hostPort).toLowerCase();
  return host === 'localhost' || host === '::1' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host);
}

/**
 * Whether `registry` (a registry name, `host[:port]`) matches a pattern: `host`, `host:port` or
 * `*.domain` (lower case, as settings are read). A pattern without a port matches the host on any port.
 */
export function matchesRegistryPattern(registry: string, pattern: string): boolean {
  const name = registry.toLowerCase();
  const host = name.replace(/:\d+$/, '');
  if (pattern.startsWith('*.')) return host.endsWith(pattern.slice(1));
  return pattern === name || pattern === host;
}

/** The highest TCP port. */
const MAX_PORT = 65535;

/**
 * Refuses a registry port outside 1-65535: the grammar takes any digits, and a port like 99999
 * would only fail later, on every request, as "Invalid URL".
 */
function checkPort(input: string, hostPort: string): void {
  const port = /:([0-9]+)$/.exec(hostPort)?.[1];
  if (port === undefined) return;
  const n = Number(port);
  if (n < 1 || n > MAX_PORT) {
    throw new InvalidReferenceError(input, `registry "${hostPort}" has port ${port}: give a port from 1 to ${MAX_PORT}`);
  }
}

/** A parsed image reference: registry, repository and a tag, a digest, or both. */
export class Reference {
  constructor(
    readonly registry: Registry,
    readonly repository: string,
    readonly tag?: string,
    readonly digest?: string,
  ) {}

  /** What to ask the registry for: the digest when there is one (it wins over the tag), else the tag. */
  get identifier(): string {
    return this.digest ?? this.tag ?? 'latest';
  }

  /** The same repository at another tag or digest. */
  withTag(tag: string): Reference {
    return new Reference(this.registry, this.repository, tag, undefined);
  }

  withDigest(digest: string): Reference {
    return new Reference(this.registry, this.repository, undefined, digest);
  }

  /** The same registry, another repository, no tag or digest. */
  withRepository(repository: string): Reference {
    return new Reference(this.registry, repository);
  }

  /** Token scope for this repository, as in `repository:library/alpine:pull,push`. */
  scope(...actions: Array<'pull' | 'push'>): string {
    return `repository:${this.repository}:${actions.join(',')}`;
  }

  /** The repository without a tag or digest: `registry/repository` (an OCI layout's has no repository: `oci:DIR`). */
  get name(): string {
    return this.repository ? `${this.registry.name}/${this.repository}` : this.registry.name;
  }

  toString(): string {
    return `${this.name}${this.tag ? `:${this.tag}` : ''}${this.digest ? `@${this.digest}` : ''}`;
  }
}

export interface ParseOptions {
  /**
   * Refuse references whose first component is not a registry host (az acr import's
   * "fully qualified" rule) instead of defaulting to Docker Hub.
   */
  requireRegistry?: boolean;
}

/**
 * Parses `[registry/]repository[:tag][@digest]`. A missing registry means Docker Hub, a
 * single-component Docker Hub repository gets `library/`, and a reference with neither tag nor
 * digest means `:latest`.
 */
export function parseReference(input: string, options: ParseOptions = {}): Reference {
  if (input.length === 0) throw new InvalidReferenceError(input, 'it is empty');
  if (/\s/.test(input)) throw new InvalidReferenceError(input, 'it contains whitespace');

  let rest = input;
  let digest: string | undefined;
  const at = rest.indexOf('@');
  if (at !== -1) {
    try {
      digest = parseDigest(rest.slice(at + 1));
    } catch (error) {
      // Name the whole reference, so the message says which argument is wrong.
      throw error instanceof InvalidReferenceError ? new InvalidReferenceError(input, error.message.replace(/^invalid reference "[^"]*": /, '')) : error;
    }
    rest = rest.slice(0, at);
  }

  // A tag is whatever follows the last ':' that comes after the last '/' (a ':' before it is a port).
  let tag: string | undefined;
  const lastColon = rest.lastIndexOf(':');
  if (lastColon > rest.lastIndexOf('/')) {
    tag = rest.slice(lastColon + 1);
    rest = rest.slice(0, lastColon);
    if (!TAG.test(tag)) {
      throw new InvalidReferenceError(input, `tag "${tag}" is not valid: up to 128 letters, digits, '_', '.' or '-', not starting with '.' or '-'`);
    }
  }

  const slash = rest.indexOf('/');
  const first = slash === -1 ? '' : rest.slice(0, slash);
  // As in docker: the first component names a registry if it has a '.' or ':', is localhost, or
  // has an uppercase letter (which a repository never may).
  const hasRegistry = first !== '' && (first.includes('.') || first.includes(':') || first === 'localhost' || first !== first.toLowerCase());
  let registryName: string;
  let repository: string;
  if (hasRegistry) {
    if (!DOMAIN.test(first)) throw new InvalidReferenceError(input, `registry "${first}" is not a valid host[:port]`);
    checkPort(input, first);
    registryName = first === 'index.docker.io' ? DOCKER_HUB : first;
    repository = rest.slice(slash + 1);
  } else {
    if (options.requireRegistry) {
      throw new InvalidReferenceError(input, 'it is not fully qualified: start it with the registry host, for example docker.io/library/hello-world:latest');
    }
    registryName = DOCKER_HUB;
    repository = rest;
  }
  if (registryName === DOCKER_HUB && !repository.includes('/')) repository = `library/${repository}`;

  if (repository.length === 0) throw new InvalidReferenceError(input, 'the repository name is empty');
  for (const component of repository.split('/')) {
    if (!COMPONENT.test(component)) {
      throw new InvalidReferenceError(
        input,
        `repository component "${component}" is not valid: use lowercase letters, digits and single separators ('.', '_', '__' or '-') between them`,
      );
    }
  }
  if (registryName.length + 1 + repository.length > MAX_REPOSITORY_LENGTH) {
    throw new InvalidReferenceError(input, `the name is longer than ${MAX_REPOSITORY_LENGTH} characters`);
  }
  if (digest === undefined && tag === undefined) tag = 'latest';
  return new Reference(new Registry(registryName), repository, tag, digest);
}
