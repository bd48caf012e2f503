/**
 * Log lines for the local host and the functions it runs: one line per entry on stdout, with the
 * time, level and source (the host, or a function's name and invocation id). Every line passes
 * through a redactor first, so a secret app setting that a handler happens to log never reaches
 * the terminal or a CI log.
 */
import { format } from 'node:util';
import type { AppSettings } from './settings.js';

/** Severity, in the host's words. */
export type LogLevel = 'trace' | 'debug' | 'information' | 'warning' | 'error' | 'critical';

/** Where the local host writes its logs. */
export interface HostLogger {
  /** Writes one entry; `source` is `host` or `Functions.<name>[<invocation>]`. */
  log(level: LogLevel, source: string, ...args: unknown[]): void;
}

/** Options for {@link createConsoleLogger}. */
export interface ConsoleLoggerOptions {
  /** Strings replaced by `***` wherever they appear. See {@link secretSettingValues}. */
  secrets?: readonly string[];
  /** Entries below this level are dropped. Default `information`. */
  minimumLevel?: LogLevel;
  /** Where lines go; default stdout. Tests pass a collector. */
  write?: (line: string) => void;
}

const LEVEL_ORDER: readonly LogLevel[] = ['trace', 'debug', 'information', 'warning', 'error', 'critical'];
const LEVEL_LABEL: Record<LogLevel, string> = {
  trace: 'trace',
  debug: 'debug',
  information: 'info ',
  warning: 'warn ',
  error: 'error',
  critical: 'crit ',
};

// Storage connection strings carry their key inline; a handler logging an error from the SDK can
// include one, so the key and any SAS signature are masked by shape as well as by value.
const INLINE_SECRETS = /(AccountKey=|SharedAccessSignature=|sig=)[^;&\s"']+/gi;

/** A logger writing redacted lines such as `2025-01-01T00:00:00.000Z info  [host] listening`. */
export function createConsoleLogger(options: ConsoleLoggerOptions = {}): HostLogger {
  const write = options.write ?? ((line: string) => process.stdout.write(`${line}\n`));
  const minimum = LEVEL_ORDER.indexOf(options.minimumLevel ?? 'information');
  // Longest first, so a secret containing another is masked whole.
  const secrets = [...new Set(options.secrets ?? [])].filter((s) => s.length >= 4).sort((a, b) => b.length - a.length);
  return {
    log(level, source, ...args) {
      if (LEVEL_ORDER.indexOf(level) < minimum) return;
      let text = format(...args);
      for (const secret of secrets) text = text.split(secret).join('***');
      text = text.replace(INLINE_SECRETS, '$1***');
      write(`${new Date().toISOString()} ${LEVEL_LABEL[level]} [${source}] ${text}`);
    },
  };
}

/**
 * The values of settings whose names mark them as secret (password, secret, key, token), for
 * {@link ConsoleLoggerOptions.secrets}. Values shorter than 8 characters are left out: masking
 * every "true" or "1" in the logs would hide more than it protects. Connection strings need no
 * entry: their keys and signatures are masked by shape.
 */
export function secretSettingValues(settings: AppSettings): string[] {
  return Object.entries(settings)
    .filter(([name, value]) => /password|secret|key|token/i.test(name) && !name.startsWith('npm_') && value.length >= 8)
    .map(([, value]) => value);
}
