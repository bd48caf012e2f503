/**
 * Forward proxies, read as curl reads them: HTTPS_PROXY for https URLs, HTTP_PROXY for http URLs,
 * NO_PROXY for the hosts reached directly, each lower-case name winning over its upper-case one.
 * An https URL never falls back to HTTP_PROXY (curl does not either), and loopback hosts are
 * proxied like any other unless NO_PROXY lists them. A proxy URL may be http:// or https:// (TLS
 * to the proxy itself, verified with the same CA file and skip-verify list as registries). What is read here is only which proxy a URL
 * goes through; http.ts opens the connections (a CONNECT tunnel for https, absolute-form requests
 * for http).
 *
 * The proxy URL may carry credentials (`http://user:password@proxy:3128`). They are sent as
 * Proxy-Authorization and nowhere else: a {@link ForwardProxy} names itself by its origin only,
 * and keeps the header in a private field that neither errors nor util.inspect show.
 */
import { BlockList, isIP } from 'node:net';

/** The proxy variables as given (unset or empty: none), with the name each was read from. */
export interface ProxyEnvironment {
  httpProxy?: ProxyVariable;
  httpsProxy?: ProxyVariable;
  noProxy?: ProxyVariable;
}

/** One variable's value and its name (`https_proxy` or `HTTPS_PROXY`), which errors quote. */
export interface ProxyVariable {
  name: string;
  value: string;
}

/**
 * Reads the proxy variables through `get` (process.env for the CLI, the app settings for the
 * service): lower-case first, as curl does, an empty value counting as unset.
 * @throws ProxyConfigError naming the variable that cannot be used, so a bad value is reported
 * where the settings are read rather than at the first request
 */
export function readProxyEnvironment(get: (name: string) => string | undefined): ProxyEnvironment {
  const pick = (lower: string, upper: string): ProxyVariable | undefined => {
    for (const name of [lower, upper]) {
      const value = get(name)?.trim();
      if (value) return { name, value };
    }
    return undefined;
  };
  const httpProxy = pick('http_proxy', 'HTTP_PROXY');
  const httpsProxy = pick('https_proxy', 'HTTPS_PROXY');
  const noProxy = pick('no_proxy', 'NO_PROXY');
  const environment = { ...(httpProxy && { httpProxy }), ...(httpsProxy && { httpsProxy }), ...(noProxy && { noProxy }) };
  new ProxySettings(environment);
  return environment;
}

/** A proxy variable that cannot be used; `variable` names it. The value is never quoted: it may hold a password. */
export class ProxyConfigError extends Error {
  override readonly name = 'ProxyConfigError';
  readonly code = 'PROXY_INVALID';
  constructor(
    readonly variable: string,
    message: string,
  ) {
    super(message);
  }
}

/** A proxy refused to carry a request (CONNECT or absolute-form answered 407, 403, 502, …). */
export class ProxyError extends Error {
  override readonly name = 'ProxyError';
  readonly code = 'PROXY_REFUSED';
  constructor(
    /** The proxy's origin, without credentials. */
    readonly proxy: string,
    /** `host:port` the proxy was asked to reach. */
    readonly target: string,
    readonly status: number,
    hadCredentials: boolean,
  ) {
    const advice =
      status === 407
        ? hadCredentials
          ? ': it refused the credentials in the proxy URL'
          : ': it wants credentials; give them in the proxy URL (http://USER:PASSWORD@HOST:PORT)'
        : status === 403
          ? ': its rules forbid that destination; if the host is reached without the proxy, list it in NO_PROXY'
          : '';
    super(`the proxy ${proxy} refused to connect to ${target} (it answered ${status})${advice}`);
  }

  /** A gateway error (502, 503, 504): the proxy could not reach the host now, which may pass. */
  get transient(): boolean {
    return this.status === 502 || this.status === 503 || this.status === 504;
  }
}

/**
 * A proxy took the connection but did not answer the CONNECT for a tunnel in time: most often not
 * an HTTP proxy at all (a TLS port, another service), or one that hangs. Not retried: a second
 * try would wait as long again.
 */
export class ProxyTimeoutError extends Error {
  override readonly name = 'ProxyTimeoutError';
  readonly code = 'PROXY_TIMEOUT';
  constructor(
    /** The proxy's origin, without credentials. */
    readonly proxy: string,
    /** `host:port` the proxy was asked to reach. */
    readonly target: string,
    readonly timeoutInMs: number,
  ) {
    super(`the proxy ${proxy} did not answer the request for a tunnel to ${target} within ${timeoutInMs / 1000} s: check that it is an HTTP proxy and that the proxy URL names its http:// port`);
  }
}

/**
 * One forward proxy: where it is, whether it is reached over TLS (an `https://` proxy URL), and the
 * Proxy-Authorization its URL's credentials make.
 */
export class ForwardProxy {
  /** `http://host:port` or `https://host:port`, never with credentials: what logs and errors may name. */
  readonly origin: string;
  /** An `https://` proxy: the connection to the proxy itself is TLS, verified as a registry's would be. */
  readonly secure: boolean;
  /** Its host (an IPv6 address without brackets) and port, for Node's client. */
  readonly hostname: string;
  readonly port: number;
  readonly #authorization: string | undefined;

  constructor(variable: ProxyVariable) {
    // curl takes a proxy without a scheme as http://.
    const text = /^[a-z][a-z0-9+.-]*:\/\//i.test(variable.value) ? variable.value : `http://${variable.value}`;
    let url: URL;
    try {
      url = new URL(text);
    } catch {
      throw new ProxyConfigError(variable.name, `${variable.name} is not a proxy URL: give http[s]://[USER:PASSWORD@]HOST[:PORT]`);
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:') {
      throw new ProxyConfigError(variable.name, `${variable.name} names a ${url.protocol.slice(0, -1)} proxy: only http:// and https:// proxies are supported (an https target goes through either encrypted, by CONNECT)`);
    }
    if ((url.pathname !== '/' && url.pathname !== '') || url.search || url.hash) {
      throw new ProxyConfigError(variable.name, `${variable.name} has a path or query: give http[s]://[USER:PASSWORD@]HOST[:PORT]`);
    }
    this.origin = url.origin;
    this.secure = url.protocol === 'https:';
    this.hostname = unbracket(url.hostname);
    this.port = url.port ? Number(url.port) : this.secure ? 443 : 80;
    this.#authorization = url.username ? `Basic ${Buffer.from(`${decodeURIComponent(url.username)}:${decodeURIComponent(url.password)}`).toString('base64')}` : undefined;
  }

  /** The Proxy-Authorization header for every request to this proxy; empty without credentials. */
  headers(): Record<string, string> {
    return this.#authorization ? { 'proxy-authorization': this.#authorization } : {};
  }

  /** Whether the proxy URL gave credentials (for the advice of a 407). */
  get hasCredentials(): boolean {
    return this.#authorization !== undefined;
  }

  toString(): string {
    return this.origin;
  }
}

/** NO_PROXY: `*`, host names (with their subdomains; a leading `.` or `*.` is ignored), `host:port`, IP addresses and CIDR ranges. */
class NoProxy {
  private readonly everything: boolean;
  private readonly names: Array<{ name: string; port?: number }> = [];
  private readonly ranges = new BlockList();

  constructor(variable: ProxyVariable | undefined) {
    const entries = (variable?.value ?? '').split(/[\s,]+/).filter(Boolean);
    this.everything = entries.includes('*');
    for (const entry of entries) {
      if (entry === '*') continue;
      const cidr = /^(.+)\/(\d{1,3})$/.exec(entry);
      if (cidr) {
        const address = unbracket(cidr[1]);
        const family = isIP(address);
        const prefix = Number(cidr[2]);
        if (family === 0 || prefix > (family === 4 ? 32 : 128)) {
          throw new ProxyConfigError(variable!.name, `${variable!.name} entry "${entry}" is not a CIDR range: give ADDRESS/PREFIX, e.g. 10.0.0.0/8`);
        }
        this.ranges.addSubnet(address, prefix, family === 4 ? 'ipv4' : 'ipv6');
        continue;
      }
      // host:port, [v6]:port; a bare IPv6 address has colons but no port.
      const withPort = /^(\[[^\]]+\]|[^:]+):(\d+)$/.exec(entry);
      const host = withPort ? withPort[1] : entry;
      this.names.push({ name: normaliseHost(host.replace(/^\*?\./, '')), ...(withPort && { port: Number(withPort[2]) }) });
    }
  }

  /** Whether `hostname` (as URL.hostname writes it) on `port` is reached without the proxy. */
  matches(hostname: string, port: number): boolean {
    if (this.everything) return true;
    const host = normaliseHost(hostname);
    const family = isIP(host);
    if (family !== 0 && this.ranges.check(host, family === 4 ? 'ipv4' : 'ipv6')) return true;
    return this.names.some(({ name, port: only }) => (only === undefined || only === port) && (host === name || (family === 0 && host.endsWith(`.${name}`))));
  }
}

/** Which proxy, if any, each URL goes through. Built once per RegistryHosts from a {@link ProxyEnvironment}. */
export class ProxySettings {
  private readonly http: ForwardProxy | undefined;
  private readonly https: ForwardProxy | undefined;
  private readonly noProxy: NoProxy;

  /** @throws ProxyConfigError naming the variable that cannot be used */
  constructor(environment: ProxyEnvironment = {}) {
    this.http = environment.httpProxy && new ForwardProxy(environment.httpProxy);
    this.https = environment.httpsProxy && new ForwardProxy(environment.httpsProxy);
    this.noProxy = new NoProxy(environment.noProxy);
  }

  /** The proxy `url` goes through, or undefined when it is reached directly. */
  forUrl(url: URL): ForwardProxy | undefined {
    const proxy = url.protocol === 'https:' ? this.https : url.protocol === 'http:' ? this.http : undefined;
    if (!proxy) return undefined;
    const port = url.port ? Number(url.port) : url.protocol === 'https:' ? 443 : 80;
    return this.noProxy.matches(url.hostname, port) ? undefined : proxy;
  }
}

function unbracket(host: string): string {
  return host.replace(/^\[|\]$/g, '');
}

/** Lower case, IPv6 without brackets and in the URL parser's canonical form. */
function normaliseHost(host: string): string {
  const bare = unbracket(host).toLowerCase();
  if (isIP(bare) !== 6) return bare;
  try {
    return unbracket(new URL(`http://[${bare}]/`).hostname);
  } catch {
    return bare;
  }
}
