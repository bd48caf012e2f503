/**
 * The one table of `hoist` commands and flags. The parser (node's parseArgs), the help text, the
 * suggestions for a mistyped flag and the shell completion scripts are all derived from it, so a
 * flag added here is parsed, documented and completed at once.
 */
import { parseArgs } from 'node:util';

/** A usage error: a bad command, flag or reference (exit code 2). */
export class UsageError extends Error {
  override readonly name = 'UsageError';
  readonly code = 'USAGE';
}

/** The commands of `hoist`, in the order the help lists them. */
export const COMMANDS = {
  copy: { args: 'SRC DST [DST...]', summary: 'copy an image, index or artifact to one or more targets' },
  inspect: { args: 'REF', summary: 'summarise a manifest or index: digest, platforms, sizes, referrers' },
  digest: { args: 'REF', summary: 'print the digest a reference resolves to' },
  tags: { args: 'REPO', summary: 'list every tag of a repository' },
  completion: { args: 'bash|zsh|fish', summary: 'print a shell completion script' },
} as const;

/** A command of `hoist`: a key of {@link COMMANDS}. */
export type CommandName = keyof typeof COMMANDS;

/** The commands that talk to registries, and so take the credential, TLS and retry flags. */
export const REGISTRY_COMMANDS: readonly CommandName[] = ['copy', 'inspect', 'digest', 'tags'];
const READ_COMMANDS: readonly CommandName[] = ['inspect', 'digest', 'tags'];

/** The shells `hoist completion` writes a script for. */
export const SHELLS = ['bash', 'zsh', 'fish'] as const;

/** One flag: how parseArgs reads it, which commands take it, and what the help and completions say. */
export interface FlagSpec {
  /** The long name, without `--`. */
  name: string;
  type: 'string' | 'boolean';
  multiple?: boolean;
  short?: string;
  /** The value's placeholder in the help, e.g. `N` or `FILE`. */
  value?: string;
  /** The values the flag takes, when they are few (offered by the completion scripts). */
  choices?: readonly string[];
  /** The value names a file or directory (the completion scripts offer paths). */
  path?: boolean;
  commands: readonly CommandName[];
  /** Help text; `\n` starts a continuation line. */
  help: string;
}

/** Every flag of every command. */
export const FLAGS: readonly FlagSpec[] = [
  { name: 'force', type: 'boolean', commands: ['copy'], help: 'overwrite a target tag that points at another digest' },
  {
    name: 'platform',
    type: 'string',
    multiple: true,
    value: 'OS/ARCH[/VARIANT][:OS.VERSION]',
    commands: ['copy'],
    help: 'copy only this platform of an index (repeatable); writes a new index\nthat keeps the attestations of the chosen images. Windows images are\ntold apart by os.version, e.g. windows/amd64:10.0.17763.5329',
  },
  { name: 'all', type: 'boolean', commands: ['copy'], help: "accepted for skopeo's sake: every platform of an index is copied by default" },
  { name: 'referrers', type: 'boolean', commands: ['copy'], help: 'also copy signatures, SBOMs and attestations, recursively' },
  {
    name: 'allow-nondistributable-artifacts',
    type: 'boolean',
    commands: ['copy'],
    help: 'also copy non-distributable (foreign) layers, such as Windows base\nlayers, from the source registry or else their URLs (http/https only,\nverified like any blob); by default they stay referenced by URL',
  },
  { name: 'dry-run', type: 'boolean', commands: ['copy'], help: 'print the plan (tags to write, manifests and which are referrers, blobs,\nbytes to move) and change nothing' },
  { name: 'src-creds', type: 'string', value: 'U:P', commands: ['copy'], help: 'source registry credentials (else HOIST_SRC_USERNAME/PASSWORD)' },
  {
    name: 'dest-creds',
    type: 'string',
    value: 'U:P',
    commands: ['copy'],
    help: "target registries' credentials (else HOIST_DEST_USERNAME/PASSWORD, else the\nDocker config's credHelpers, credsStore and auths, identitytoken included)",
  },
  {
    name: 'src-tls-verify',
    type: 'string',
    value: 'false',
    choices: ['true', 'false'],
    commands: ['copy'],
    help: "do not verify the source's TLS certificate, nor its token service's\n(self-signed labs; warns once)",
  },
  { name: 'dest-tls-verify', type: 'string', value: 'false', choices: ['true', 'false'], commands: ['copy'], help: "the same for the targets' certificates" },
  { name: 'concurrency', type: 'string', value: 'N', commands: ['copy'], help: 'parallel blob transfers (default 4, and 8 more for blobs up to 1 MiB)' },
  { name: 'chunk-size', type: 'string', value: 'BYTES', commands: ['copy'], help: 'upload in chunks of this size (e.g. 4MiB) instead of one stream per blob' },
  {
    name: 'resume-dir',
    type: 'string',
    value: 'DIR',
    path: true,
    commands: ['copy'],
    help: 'save upload checkpoints in DIR; running the same copy again resumes\ninterrupted blobs from where they stopped (implies chunked uploads).\nCtrl-C (or SIGTERM) then pauses at the next chunk boundary and prints the\ncommand that resumes; a second Ctrl-C exits at once. Without it, Ctrl-C\nexits at once: nothing can be resumed (copied blobs are skipped on a rerun)',
  },
  { name: 'raw', type: 'boolean', commands: ['inspect'], help: 'print the manifest or index exactly as the registry serves it' },
  { name: 'creds', type: 'string', value: 'U:P', commands: READ_COMMANDS, help: 'registry credentials (else HOIST_SRC_USERNAME/PASSWORD, else the Docker config)' },
  { name: 'tls-verify', type: 'string', value: 'false', choices: ['true', 'false'], commands: READ_COMMANDS, help: "do not verify the registry's TLS certificate (warns once)" },
  {
    name: 'ca-file',
    type: 'string',
    value: 'FILE',
    path: true,
    commands: REGISTRY_COMMANDS,
    help: "also trust the PEM CA certificates in FILE (else HOIST_CA_FILE), besides\nNode's roots and NODE_EXTRA_CA_CERTS",
  },
  {
    name: 'retry-times',
    type: 'string',
    value: 'N',
    commands: REGISTRY_COMMANDS,
    help: 'attempts per request, token request and blob restart, 1 to 20 (default 5;\nelse HOIST_RETRY_ATTEMPTS)',
  },
  {
    name: 'format',
    type: 'string',
    value: 'json|text',
    choices: ['json', 'text'],
    commands: REGISTRY_COMMANDS,
    help: 'text (default) or json: the result as one JSON object on stdout, errors\ntoo; copy also writes its progress as one JSON event per line on stderr',
  },
  { name: 'json', type: 'boolean', commands: REGISTRY_COMMANDS, help: 'the same as --format json' },
  { name: 'help', short: 'h', type: 'boolean', commands: Object.keys(COMMANDS) as CommandName[], help: 'show this help' },
];

/** `--version`, the one flag outside every command. */
export const VERSION_FLAG = '--version';

/** The flags a command takes. */
export function flagsOf(command: CommandName): FlagSpec[] {
  return FLAGS.filter((f) => f.commands.includes(command));
}

/** What parseArgs read: each flag's value by its long name, and the positionals. */
export interface ParsedFlags {
  values: Record<string, string | boolean | string[] | undefined>;
  positionals: string[];
}

/** Reads `args` (after the command word) with the command's flags; a usage error names the flag. */
export function parseFlags(command: CommandName, args: string[]): ParsedFlags {
  const specs = flagsOf(command);
  const options = Object.fromEntries(specs.map((f) => [f.name, { type: f.type, ...(f.multiple && { multiple: true }), ...(f.short && { short: f.short }) }]));
  refuseUnknownFlags(command, args, specs);
  try {
    const { values, positionals } = parseArgs({ args, allowPositionals: true, strict: true, options });
    return { values: values as ParsedFlags['values'], positionals };
  } catch (error) {
    throw new UsageError((error as Error).message.replace(/\. To specify a positional argument.*$/s, ''));
  }
}

/**
 * Refuses the first flag the command does not take, naming the nearest one it does
 * (`unknown flag --retry-time; did you mean --retry-times?`), or the command that takes it.
 */
function refuseUnknownFlags(command: CommandName, args: string[], specs: FlagSpec[]): void {
  // Lenient, only to find the flags written: values stay with their flags, `--` ends flags.
  const { tokens } = parseArgs({ args, allowPositionals: true, strict: false, tokens: true, options: Object.fromEntries(specs.map((f) => [f.name, { type: f.type, ...(f.short && { short: f.short }) }])) });
  const known = new Set(specs.flatMap((f) => [f.name, ...(f.short ? [f.short] : [])]));
  const unknown = tokens.find((t) => t.kind === 'option' && !known.has(t.name));
  if (!unknown || unknown.kind !== 'option') return;
  const written = unknown.rawName;
  const near = nearest(unknown.name, specs.map((f) => f.name));
  const suggestion = near ? `; did you mean --${near}?` : '';
  const elsewhere = FLAGS.find((f) => f.name === unknown.name);
  if (elsewhere) throw new UsageError(`${written} is not a flag of ${command} (it belongs to ${elsewhere.commands.join(', ')})${suggestion}`);
  throw new UsageError(`unknown flag ${written}${suggestion}`);
}

/**
 * The candidate nearest to `word`: within a small edit distance (a typo, a letter missing), the
 * only one it begins (`--chunk` for `--chunk-size`), or the only one it ends with after a
 * prefix (copy's `--src-creds` for the read commands' `--creds`).
 */
export function nearest(word: string, candidates: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const candidate of candidates) {
    const distance = editDistance(word, candidate);
    if (distance < bestDistance) [best, bestDistance] = [candidate, distance];
  }
  if (best !== undefined && bestDistance <= Math.max(2, Math.floor(word.length / 4))) return best;
  const prefixed = candidates.filter((c) => word.length >= 3 && c.startsWith(word));
  if (prefixed.length === 1) return prefixed[0];
  const suffixed = candidates.filter((c) => word.endsWith(`-${c}`));
  return suffixed.length === 1 ? suffixed[0] : undefined;
}

/** Levenshtein distance: insertions, deletions and substitutions. */
function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    for (let j = 1; j <= b.length; j++) current[j] = Math.min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
    previous = current;
  }
  return previous[b.length];
}

/** Where the help text of a flag starts. */
const HELP_COLUMN = 23;

/** The help's flag sections: flags grouped by the commands that take them, in table order. */
export function flagSections(): Array<{ title: string; lines: string[] }> {
  const sections = new Map<string, { title: string; lines: string[] }>();
  for (const flag of FLAGS) {
    const key = flag.commands.join(',');
    const title = key === Object.keys(COMMANDS).join(',') ? 'every command' : key === REGISTRY_COMMANDS.join(',') ? 'every command but completion' : flag.commands.join(', ');
    const section = sections.get(key) ?? { title: `Flags of ${title}:`, lines: [] };
    sections.set(key, section);
    section.lines.push(...helpLines(flag));
  }
  return [...sections.values()];
}

/** A flag's lines in the help: its name (and value) and its text, aligned at HELP_COLUMN. */
function helpLines(flag: FlagSpec): string[] {
  const head = `${flag.short ? `-${flag.short}, ` : ''}--${flag.name}${flag.value && !flag.choices?.includes(flag.value) ? ` ${flag.value}` : flag.value ? `=${flag.value}` : ''}`;
  const [first, ...more] = flag.help.split('\n');
  // One line when the name fits the column, else the text starts on the next line.
  const lines = head.length < HELP_COLUMN - 3 ? [`  ${head.padEnd(HELP_COLUMN - 2)}${first}`] : [`  ${head}`, `${' '.repeat(HELP_COLUMN)}${first}`];
  return [...lines, ...more.map((line) => `${' '.repeat(HELP_COLUMN)}${line}`)];
}

/** `hoist COMMAND --help`: the command's usage and its flags alone. */
export function commandHelp(command: CommandName): string {
  const { args, summary } = COMMANDS[command];
  return `Usage: hoist ${command} ${args}${flagsOf(command).length > 1 ? ' [flags]' : ''}

${summary[0].toUpperCase()}${summary.slice(1)}.

Flags:
${flagsOf(command).flatMap(helpLines).join('\n')}

hoist --help tells about references, credentials, environment variables and exit codes.
`;
}
