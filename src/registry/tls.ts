/**
 * TLS settings of the registry hosts: an extra CA bundle trusted besides Node's roots, the hosts
 * whose certificates are not verified (self-signed labs) and the loopback hosts reached over
 * https. Read once, when the settings are made; http.ts keys its connection pools by the
 * connection options given here, so connections with different TLS settings are never shared.
 */
import { X509Certificate } from 'node:crypto';
import { rootCertificates } from 'node:tls';
import { closeSync, openSync, readSync } from 'node:fs';

/** A CA bundle larger than this is refused before it is read: Mozilla's whole bundle is ~220 KiB. */
export const MAX_CA_FILE_BYTES = 1024 * 1024;

/** A CA file could not be used; `source` names the flag or variable that gave it. */
export class CaFileError extends Error {
  override readonly name = 'CaFileError';
  readonly code = 'CA_FILE_INVALID';
  constructor(
    readonly source: string,
    message: string,
  ) {
    super(message);
  }
}

const PEM_CERTIFICATE = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g;

/**
 * Reads a PEM CA bundle named by `source` (`--ca-file`, `HOIST_CA_FILE`), at most
 * {@link MAX_CA_FILE_BYTES}, and checks that it holds at least one certificate and that each parses.
 * @returns the certificates, one PEM string each
 * @throws CaFileError naming `source`, the file and what was wrong
 */
export function readCaFile(file: string, source: string): string[] {
  const fail = (what: string) => new CaFileError(source, `${source} "${file}" ${what}: give a file of PEM certificates ("-----BEGIN CERTIFICATE-----"), at most ${MAX_CA_FILE_BYTES} bytes`);
  let text: string;
  let fd: number | undefined;
  try {
    fd = openSync(file, 'r');
    // One byte over the bound tells a file that is too large without reading all of it.
    const buffer = Buffer.alloc(MAX_CA_FILE_BYTES + 1);
    let length = 0;
    let read: number;
    do {
      read = readSync(fd, buffer, length, buffer.length - length, null);
      length += read;
    } while (read > 0 && length < buffer.length);
    if (length > MAX_CA_FILE_BYTES) throw fail('is too large');
    text = buffer.subarray(0, length).toString('utf8');
  } catch (error) {
    if (error instanceof CaFileError) throw error;
    throw fail(`cannot be read (${(error as NodeJS.ErrnoException).code ?? 'error'})`);
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
  const certificates = text.match(PEM_CERTIFICATE) ?? [];
  if (certificates.length === 0) throw fail('holds no certificate');
  certificates.forEach((pem, i) => {
    try {
      new X509Certificate(pem);
    } catch {
      throw fail(`has a certificate that does not parse (number ${i + 1})`);
    }
  });
  return certificates;
}

/** Options for one TLS connection, as tls.connect takes them; pools are keyed by this object. */
export interface TlsConnectionOptions {
  readonly ca?: string[];
  readonly rejectUnauthorized: boolean;
}

/** What a host other than the registry is to it: its token service, or where it redirects (or points uploads). */
export type ReachedAs = 'token service' | 'redirect';

/** How a host other than `registry` is named in messages: by what it is to that registry. */
function roleOf(registry: string | undefined, reachedAs: ReachedAs): string {
  return reachedAs === 'redirect' ? `where ${registry} sends requests` : `the token service of ${registry}`;
}

/** What {@link TlsSettings} is made of; each default is stated. */
export interface TlsSettingsInit {
  /** Extra CA certificates (PEM), trusted besides Node's roots and NODE_EXTRA_CA_CERTS. Default none. */
  caCertificates?: string[];
  /** `host[:port]` whose certificates are not verified. Default none. */
  skipVerify?: Iterable<string>;
  /** Told once per process per skip-verify host, when it is first connected to. Default console.warn. */
  warn?: (message: string) => void;
}

/** Hosts already warned about in this process: the warning is about the process's exposure. */
const warned = new Set<string>();

/** The TLS options each https host is connected with. */
export class TlsSettings {
  private readonly verified: TlsConnectionOptions;
  private readonly unverified: TlsConnectionOptions;
  private readonly skipVerify: ReadonlySet<string>;
  private readonly warn: (message: string) => void;

  constructor(init: TlsSettingsInit = {}) {
    const extra = init.caCertificates ?? [];
    // Giving `ca` replaces Node's roots and NODE_EXTRA_CA_CERTS, so both are given back with it.
    const nodeExtra = extra.length > 0 && process.env.NODE_EXTRA_CA_CERTS ? readCaFile(process.env.NODE_EXTRA_CA_CERTS, 'NODE_EXTRA_CA_CERTS') : [];
    const ca = extra.length > 0 ? [...rootCertificates, ...nodeExtra, ...extra] : undefined;
    this.verified = { ...(ca && { ca }), rejectUnauthorized: true };
    this.unverified = { rejectUnauthorized: false };
    this.skipVerify = new Set([...(init.skipVerify ?? [])].map((h) => h.trim().toLowerCase()).filter(Boolean));
    this.warn = init.warn ?? ((message) => console.warn(message));
  }

  /**
   * The options for a connection to `url`'s host (`host[:port]`, as URL.host writes it).
   * @param registryHost the registry the request is for, when it may go to another host (its
   *   token service, or blob storage it redirects to): a skip-verify registry's other hosts are
   *   not verified either, as skopeo's `--tls-verify=false` covers the whole of one side (its
   *   client, authentication and redirects included). The registry names those hosts itself (in
   *   its challenge, in its Location headers), so verifying them could not make the registry's
   *   answers more trustworthy.
   * @param reachedAs what the host is to the registry, for the warning
   */
  forUrl(url: URL, registryHost?: string, reachedAs: ReachedAs = 'token service'): TlsConnectionOptions {
    const host = url.host.toLowerCase();
    const registry = registryHost?.toLowerCase();
    const inherited = !this.skipVerify.has(host) && registry !== undefined && this.skipVerify.has(registry);
    if (!this.skipVerify.has(host) && !inherited) return this.verified;
    if (!warned.has(host)) {
      warned.add(host);
      this.warn(`TLS certificates of ${host}${inherited ? ` (${roleOf(registry, reachedAs)})` : ''} are NOT verified (skip-verify): anyone on the network path can read and change what is copied`);
    }
    return this.unverified;
  }
}

/**
 * What each certificate verification failure means, by the code Node gives it (OpenSSL's
 * X509_V_ERR names, and Node's own for a name the certificate does not cover). undici passes the
 * TLS socket's error up as it is.
 */
const VERIFY_REASONS: Readonly<Record<string, string>> = {
  DEPTH_ZERO_SELF_SIGNED_CERT: 'its certificate is self-signed',
  SELF_SIGNED_CERT_IN_CHAIN: 'its certificate chain ends in a self-signed CA that is not trusted',
  UNABLE_TO_VERIFY_LEAF_SIGNATURE: 'its certificate is signed by a CA that is not trusted',
  UNABLE_TO_GET_ISSUER_CERT: 'its certificate is signed by a CA that is not trusted',
  UNABLE_TO_GET_ISSUER_CERT_LOCALLY: 'its certificate is signed by a CA that is not trusted',
  CERT_UNTRUSTED: 'its certificate is not trusted',
  CERT_REJECTED: 'its certificate is rejected',
  INVALID_CA: 'its certificate chain holds a certificate that may not sign others',
  CERT_CHAIN_TOO_LONG: 'its certificate chain is too long',
  CERT_SIGNATURE_FAILURE: 'its certificate has a signature that does not verify',
  UNABLE_TO_DECRYPT_CERT_SIGNATURE: 'its certificate has a signature that does not verify',
  CERT_HAS_EXPIRED: 'its certificate has expired',
  CERT_NOT_YET_VALID: 'its certificate is not valid yet',
  CERT_REVOKED: 'its certificate is revoked',
  HOSTNAME_MISMATCH: 'its certificate is for another name',
  ERR_TLS_CERT_ALTNAME_INVALID: 'its certificate is for another name',
};

/**
 * A TLS connection refused because the server's certificate did not verify: never retried (the
 * same certificate comes back), and named by host and reason, so the reader knows what to trust
 * or fix. What to do is said by the surface that shows it (a CLI flag, a deployment setting).
 */
export class TlsVerifyError extends Error {
  override readonly name = 'TlsVerifyError';
  readonly code = 'TLS_VERIFY_FAILED';
  constructor(
    /** `host[:port]` whose certificate failed. */
    readonly host: string,
    /** Node's code for the failure (CERT_HAS_EXPIRED, ...). */
    readonly verifyCode: string,
    /** The registry the request was for, when `host` is another one (its token service, a redirect). */
    readonly registryHost: string | undefined,
    options: { cause: unknown; reachedAs?: ReachedAs },
  ) {
    super(`the TLS certificate of ${host}${registryHost !== undefined && registryHost !== host ? ` (${roleOf(registryHost, options.reachedAs ?? 'token service')})` : ''} could not be verified: ${VERIFY_REASONS[verifyCode]} (${verifyCode})`, { cause: options.cause });
  }
}

/**
 * The TlsVerifyError for a connection to `url` that failed certificate verification, or undefined
 * for any other failure. The error Node gives carries the certificate (and its own message);
 * neither is kept but as the cause.
 */
export function tlsVerifyFailure(error: unknown, url: URL, registryHost?: string, reachedAs?: ReachedAs): TlsVerifyError | undefined {
  const code = (error as { code?: unknown } | undefined)?.code;
  if (typeof code !== 'string' || !Object.hasOwn(VERIFY_REASONS, code)) return undefined;
  return new TlsVerifyError(url.host.toLowerCase(), code, registryHost?.toLowerCase(), { cause: error, reachedAs });
}
