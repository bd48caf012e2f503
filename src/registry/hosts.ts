/**
 * How Hoist reaches registries: one explicit configuration per registry host, passed in (through
 * CopyOptions and the worker's dependencies), never held in module state, so two copies in one
 * process with different settings never affect each other. Modelled on regclient's config.Host.
 *
 * A RegistryHosts holds the settings (scheme, TLS, proxy, retry policy, per-host request cap,
 * credential provider), its connection pools, and, per host, what is learned while copying: its
 * transports with their token caches, its quirks, its mount hints and its rate-limit pause. `withCredentials` gives a view with another provider that shares the learned state (the
 * worker's per-job credentials on the deployment's hosts).
 */
import type { AddressPolicy } from './address-policy.js';
import { anonymous, type CredentialProvider } from './credentials.js';
import { DEFAULT_MAX_REQUESTS_PER_HOST, LimitsByHost, type HostLimits, type LimitsClock } from './host-limits.js';
import { Connections } from './http.js';
import { MountHints } from './mount-hints.js';
import { ProxySettings, type ForwardProxy, type ProxyEnvironment } from './proxy.js';
import { isLoopback, type Registry } from './reference.js';
import { DEFAULT_RETRY, type RetryPolicy } from './retry.js';
import { TlsSettings } from './tls.js';
import { Transport } from './transport.js';

/**
 * Transports (host × credential provider) kept at once. Each holds only a token cache, so
 * dropping the least recently used costs a token request; the bound keeps a worker that sees
 * many jobs' providers flat.
 */
export const DEFAULT_MAX_TRANSPORTS = 256;

/** Settings of a {@link RegistryHosts}; each default is stated. */
export interface RegistryHostsOptions {
  /** Where credentials come from. Default: none (anonymous). */
  credentials?: CredentialProvider;
  /**
   * Attempts and back-off for every request (transport.ts), token request (auth.ts) and
   * blob-level restart (the copy engine). Default {@link DEFAULT_RETRY}: 5 attempts, 200 ms
   * doubling to 30 s.
   */
  retry?: RetryPolicy;
  /**
   * `host[:port]` reached over plain HTTP besides loopback (which always is), as docker's
   * insecure-registries. Default none. The CLI and the service read HOIST_INSECURE_REGISTRIES.
   */
  insecureRegistries?: Iterable<string>;
  /**
   * Loopback `host[:port]` reached over HTTPS instead of plain HTTP (a TLS registry tested on
   * this machine). Default none. The CLI and the service read HOIST_HTTPS_REGISTRIES.
   */
  httpsRegistries?: Iterable<string>;
  /**
   * CA certificates (PEM, as tls.ts readCaFile returns them) trusted besides Node's roots and
   * NODE_EXTRA_CA_CERTS. Default none. The CLI reads `--ca-file` or HOIST_CA_FILE, the service
   * HOIST_CA_FILE.
   */
  caCertificates?: string[];
  /**
   * `host[:port]` whose TLS certificates are not verified (self-signed labs); a warning is given
   * once per process per host. Default none. The CLI reads `--src-tls-verify=false`,
   * `--dest-tls-verify=false` and HOIST_TLS_SKIP_VERIFY, the service HOIST_TLS_SKIP_VERIFY.
   */
  tlsSkipVerify?: Iterable<string>;
  /** Where the skip-verify warning goes. Default console.warn (the service's log). */
  warn?: (message: string) => void;
  /** Default {@link DEFAULT_MAX_TRANSPORTS}. */
  maxTransports?: number;
  /**
   * The forward proxies (proxy.ts): HTTPS_PROXY, HTTP_PROXY, NO_PROXY, as readProxyEnvironment
   * reads them. Default none: every host directly. The CLI reads the environment, the service its
   * app settings (the same names). A value that cannot be used throws ProxyConfigError naming it.
   */
  proxy?: ProxyEnvironment;
  /** How long a proxy may take to answer a CONNECT. Default PROXY_CONNECT_TIMEOUT_MS (http.ts). */
  proxyConnectTimeoutInMs?: number;
  /**
   * Requests in flight to one host at most. Default {@link DEFAULT_MAX_REQUESTS_PER_HOST}. The
   * CLI and the service read HOIST_MAX_REQUESTS_PER_HOST.
   */
  maxRequestsPerHost?: number;
  /** The clock of the hosts' 429 pauses. Default the system's; tests give their own. */
  clock?: LimitsClock;
  /**
   * Checks every address a transport connects to (registries, token realms, each redirect hop),
   * after DNS resolution: the service's outbound address policy (address-policy.ts). Default
   * none: the CLI serves the user on their own machine.
   */
  addressPolicy?: AddressPolicy;
}

/**
 * What a copy learns about a host and keeps for the next request to it. Each quirk names the
 * registry behaviour that taught it.
 */
export interface HostQuirks {
  /**
   * The registry refused bytes on the closing PUT of a chunked upload (400 BLOB_UPLOAD_INVALID or
   * 416; the spec allows them), so last chunks go by PATCH and the PUT is sent empty.
   */
  noChunkOnClose: boolean;
}

/** State shared by a RegistryHosts and its `withCredentials` views. */
interface SharedState {
  readonly options: Pick<Required<RegistryHostsOptions>, 'retry' | 'maxTransports'> & { insecure: ReadonlySet<string>; https: ReadonlySet<string> };
  /** Every connection of these hosts, token realms and redirect hops included. */
  readonly connections: Connections;
  /** The request caps and 429 pauses of these hosts and their token services. */
  readonly limits: LimitsByHost;
  readonly hosts: Map<string, RegistryHost>;
  /** `apiHost\nprovider id` → transport, least recently used first. */
  readonly transports: Map<string, Transport>;
}

/** The registry hosts a copy talks to, with their settings and what has been learned about them. */
export class RegistryHosts {
  private readonly state: SharedState;
  /** The credential provider of this view. */
  readonly credentials: CredentialProvider;

  constructor(options: RegistryHostsOptions = {}, shared?: SharedState) {
    this.credentials = options.credentials ?? anonymous;
    this.state = shared ?? {
      options: {
        retry: options.retry ?? DEFAULT_RETRY,
        maxTransports: options.maxTransports ?? DEFAULT_MAX_TRANSPORTS,
        insecure: hostSet(options.insecureRegistries),
        https: hostSet(options.httpsRegistries),
      },
      connections: new Connections({
        tls: new TlsSettings({ caCertificates: options.caCertificates, skipVerify: options.tlsSkipVerify, warn: options.warn }),
        proxy: new ProxySettings(options.proxy),
        ...(options.proxyConnectTimeoutInMs !== undefined && { proxyConnectTimeoutInMs: options.proxyConnectTimeoutInMs }),
        ...(options.addressPolicy && { policy: options.addressPolicy }),
      }),
      limits: new LimitsByHost(options.maxRequestsPerHost ?? DEFAULT_MAX_REQUESTS_PER_HOST, options.clock),
      hosts: new Map(),
      transports: new Map(),
    };
  }

  /** A view of the same hosts (quirks, mount hints, settings) that authenticates with `credentials`. */
  withCredentials(credentials: CredentialProvider): RegistryHosts {
    return new RegistryHosts({ credentials }, this.state);
  }

  /** The connection pools of these hosts, with the address policy, TLS and proxy settings they apply. */
  get connections(): Connections {
    return this.state.connections;
  }

  /** The TLS settings (CA bundle, hosts not verified) every https connection uses. */
  get tls(): TlsSettings {
    return this.state.connections.tls;
  }

  /** The outbound address policy every connection is checked by; undefined for the CLI. */
  get addressPolicy(): AddressPolicy | undefined {
    return this.state.connections.policy;
  }

  /** The request caps and 429 pauses of every host, for requests outside a transport (ARM, ACR's exchange). */
  get limits(): LimitsByHost {
    return this.state.limits;
  }

  /** The retry policy of every host. */
  get retry(): RetryPolicy {
    return this.state.options.retry;
  }

  /** The configuration of `registry`'s host. */
  host(registry: Registry): RegistryHost {
    let host = this.state.hosts.get(registry.apiHost);
    if (!host) {
      const name = registry.apiHost.toLowerCase();
      const insecure = (isLoopback(registry.apiHost) && !this.state.options.https.has(name)) || this.state.options.insecure.has(name);
      host = new RegistryHost(registry, insecure ? 'http' : 'https', this.state.options.retry, this.state.connections, this.state.limits.for(registry.apiHost));
      this.state.hosts.set(registry.apiHost, host);
    }
    return host;
  }

  /**
   * The transport for `registry` with this view's credentials. Keyed by host and the provider's
   * id, never by a secret; one transport, and so one token cache, per pair.
   */
  transport(registry: Registry): Transport {
    const host = this.host(registry);
    const key = `${registry.apiHost}\n${this.credentials.id}`;
    const { transports } = this.state;
    let transport = transports.get(key);
    if (transport) {
      transports.delete(key);
    } else {
      transport = new Transport(host.apiHost, registry.name, this.credentials, host.retry, host.connections, this.state.limits);
      if (transports.size >= this.state.options.maxTransports) transports.delete(transports.keys().next().value as string);
    }
    transports.set(key, transport);
    return transport;
  }
}

/**
 * One registry host: how it is reached and what has been learned about it. Its connections are
 * its RegistryHosts' pools (http.ts: per origin, 32 connections, idle ones closed after 10 s,
 * one set per TLS option set and route), which also say which proxy, if any, it goes through.
 */
export class RegistryHost {
  readonly apiHost: string;
  readonly quirks: HostQuirks = { noChunkOnClose: false };
  readonly mountHints = new MountHints();

  constructor(
    registry: Registry,
    /** `http` for loopback (unless listed in httpsRegistries) and insecure registries, else `https`. */
    readonly scheme: 'http' | 'https',
    readonly retry: RetryPolicy,
    /** The RegistryHosts' connection pools, with their address policy, TLS and proxy settings. */
    readonly connections: Connections,
    /** Its cap on requests in flight, and the pause its last 429 asked for. */
    readonly limits: HostLimits,
  ) {
    this.apiHost = registry.apiHost;
  }

  /** The base URL of the v2 API, e.g. `https://registry-1.docker.io/v2/`. */
  get baseUrl(): string {
    return `${this.scheme}://${this.apiHost}/v2/`;
  }

  /** The proxy its API requests go through (HTTPS_PROXY or HTTP_PROXY, unless NO_PROXY lists it); undefined: directly. */
  get proxy(): ForwardProxy | undefined {
    return this.connections.proxy.forUrl(new URL(this.baseUrl));
  }
}

function hostSet(hosts: Iterable<string> | undefined): ReadonlySet<string> {
  return new Set([...(hosts ?? [])].map((h) => h.trim().toLowerCase()).filter(Boolean));
}

/** Parses a comma-separated `host[:port]` list (HOIST_INSECURE_REGISTRIES and the TLS lists). */
export function parseHostList(value: string | undefined): string[] {
  return (value ?? '')
    .split(',')
    .map((h) => h.trim().toLowerCase())
    .filter(Boolean);
}
