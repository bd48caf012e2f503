/** The `hoist` command line: maps flags to the copy engine and its result to output and exit codes. */
import { AzureError } from '../azure/errors.js';
import { copy, CopyError, DEFAULT_MAX_BLOB_BYTES, resolveDigest } from '../copy/index.js';
import { FileCheckpointStore } from '../copy/file-checkpoints.js';
import type { CopyResult } from '../copy/types.js';
import { cleanMessage, RegistryError } from '../registry/errors.js';
import { boundProcessMemory } from '../registry/process-memory.js';
import { completionScript } from './completion.js';
import { commandHelp, COMMANDS, flagSections, nearest, parseFlags, SHELLS, VERSION_FLAG, type CommandName } from './flags.js';
import { formatInspect, inspect, listTags, manifestDigest, rawManifest } from './inspect.js';
import { EXIT_INTERRUPTED, rerunCommand, watchInterrupts } from './interrupt.js';
import { parseCopyArgs, parseReadArgs, UsageError, wantsJson, type CopyCommand, type OutputFormat } from './options.js';
import { formatBytes, jsonReporter, lineReporter, ttyReporter } from './progress.js';

export const EXIT = { ok: 0, failure: 1, usage: 2, auth: 3, notFound: 4, tagExists: 5, integrity: 6, interrupted: EXIT_INTERRUPTED } as const;

const HELP = `hoist: import container images and OCI artifacts into a registry, without Docker.

Usage:
${(Object.keys(COMMANDS) as CommandName[]).map((c) => `  ${`hoist ${c} ${COMMANDS[c].args}${c === 'completion' ? '' : ' [flags]'}`.padEnd(38)}${COMMANDS[c].summary}`).join('\n')}

SRC, DST and REF are image references: [docker://][registry/]repository[:tag][@digest]. A missing
registry means Docker Hub (hello-world -> docker.io/library/hello-world:latest). copy writes every
DST after one transfer: each blob crosses once per target registry (one target repository there
receives it, the others mount it); tags are written last, once every target holds all they name.
Loopback registries and hosts in HOIST_INSECURE_REGISTRIES (comma-separated host[:port]) use plain
HTTP. A blob whose descriptor claims more than HOIST_MAX_BLOB_BYTES (default ${DEFAULT_MAX_BLOB_BYTES},
200 GiB) is refused; a source with more manifests (index, images, referrers) than
HOIST_MAX_MANIFESTS is refused before any byte moves (unset: no limit; the service's is 50).
Either side may be an OCI image layout directory, oci:DIR[:TAG] as skopeo writes it (DIR is
created when it is a target; without TAG a source names the layout's only image).

${flagSections()
  .map((s) => `${s.title}\n${s.lines.join('\n')}`)
  .join('\n\n')}
  ${VERSION_FLAG.padEnd(21)}print the version

TLS: HOIST_TLS_SKIP_VERIFY lists host[:port]s whose certificates (and their token services')
are not verified,
HOIST_HTTPS_REGISTRIES the loopback host[:port]s reached over https instead of plain HTTP.

Credentials, first match wins: the flags (:TOKEN, or a PASSWORD variable alone, for an Entra or
ACR token); HOIST_SRC_USERNAME/HOIST_SRC_PASSWORD (the source, or the registry read) and
HOIST_DEST_USERNAME/HOIST_DEST_PASSWORD (the targets); then the auths in ~/.docker/config.json
($DOCKER_CONFIG); then, for an Azure Container Registry (recognised by its challenge), your Azure
login: AZURE_TENANT_ID/AZURE_CLIENT_ID/AZURE_CLIENT_SECRET, else \`az login\`, else \`azd auth
login\` (HOIST_ACR_AUDIENCE for a sovereign cloud). The login needs AcrPull on a source and AcrPush
on a target. Its token goes only to *.azurecr.io, *.azurecr.cn, *.azurecr.us and the host[:port]
or *.domain patterns in HOIST_ACR_REGISTRIES (an ACR custom domain).

Shell completion: source <(hoist completion bash), likewise for zsh; hoist completion fish | source.

Exit codes:
  0  success (also when a target tag already pointed at the same digest)
  1  other failure (registry error, network)
  2  usage error (bad command, flag or reference)
  3  authentication or authorization failed
  4  source not found (or a requested platform is missing)
  5  target tag exists and --force was not given
  6  integrity failure (bytes did not match their digest)
  130  interrupted by Ctrl-C or SIGTERM (paused and resumable with --resume-dir)
`;

function exitCodeFor(error: unknown): number {
  if (error instanceof UsageError) return EXIT.usage;
  // Every Azure identity failure of a copy is about authentication or authorization.
  if (error instanceof AzureError) return EXIT.auth;
  if (!(error instanceof CopyError)) return EXIT.failure;
  switch (error.code) {
    case 'INVALID_TARGET':
      return EXIT.usage;
    case 'AUTH_FAILED':
      return EXIT.auth;
    case 'SOURCE_NOT_FOUND':
    case 'PLATFORM_NOT_FOUND':
      return EXIT.notFound;
    case 'TAG_EXISTS':
      return EXIT.tagExists;
    case 'INTEGRITY':
      return EXIT.integrity;
    default:
      return EXIT.failure;
  }
}

function externalLines(result: CopyResult): string[] {
  // The URLs come from the source manifest: cleaned, so no escape sequence reaches the terminal.
  return result.plan.externalBlobs.map((b) => `  external ${b.digest} ${formatBytes(b.size)} non-distributable, referenced by URL, not copied (${b.urls.map(cleanMessage).join(', ') || 'no URLs'})`);
}

function subsetLine(subset: NonNullable<CopyResult['plan']['platformSubset']>): string {
  return `platforms ${subset.platforms.join(', ')}: kept ${subset.attestationsKept.length} attestation(s) of the chosen images, dropped ${subset.attestationsDropped.length}`;
}

/** What each target tag would become, for a dry run: new, unchanged, or moved from another digest. */
type TagPlan = Array<{ reference: string; now?: string }>;

function summary(result: CopyResult, dryRun: boolean, tags: TagPlan): string {
  const lines: string[] = [];
  if (dryRun) {
    lines.push(`plan for ${result.source} (${result.sourceDigest}):`);
    for (const t of tags) {
      const state = t.now === undefined ? 'new' : t.now === result.targetDigest ? 'unchanged, already at this digest' : `overwrites ${t.now}`;
      lines.push(`  tag ${t.reference} -> ${result.targetDigest} (${state})`);
    }
    for (const m of result.plan.manifests) {
      const role = m.attestationFor ? ` (attestation of ${m.attestationFor})` : m.referrerOf ? ` (referrer of ${m.referrerOf})` : '';
      lines.push(`  manifest ${m.digest} ${m.mediaType}${m.platform ? ` ${cleanMessage(m.platform)}` : ''}${role}`);
    }
    for (const b of result.plan.blobs) lines.push(`  blob ${b.digest} ${formatBytes(b.size)}${b.present ? ' (target has it)' : ''}${b.urls ? ' (non-distributable, copied)' : ''}`);
    lines.push(...externalLines(result));
    if (result.plan.platformSubset) lines.push(subsetLine(result.plan.platformSubset));
    lines.push(`${formatBytes(result.plan.bytesToMove)} to move of ${formatBytes(result.plan.bytesTotal)}; nothing changed (dry run)`);
    return lines.join('\n');
  }
  lines.push(`copied ${result.source} (${result.sourceDigest})`);
  if (result.indexDigestChanged) lines.push(`platform subset: new index digest ${result.targetDigest}`);
  if (result.plan.platformSubset) lines.push(subsetLine(result.plan.platformSubset));
  lines.push(...externalLines(result));
  for (const t of result.targets) lines.push(`  ${t.reference} -> ${t.digest}${t.written ? '' : ' (unchanged)'}`);
  lines.push(`${result.manifests.length} manifests written; blobs: ${result.blobs.copied} copied, ${result.blobs.skipped} skipped, ${result.blobs.mounted} mounted; ${formatBytes(result.bytes.moved)} moved`);
  if (result.status === 'paused') lines.push('paused: run the same command again to resume');
  return lines.join('\n');
}

/** What a CLI user can do about an error, in the CLI's words; the engine's messages name no surface. */
function cliAdvice(error: unknown, command: string): string {
  if (error instanceof RegistryError && error.code === 'TLS_VERIFY_FAILED') return tlsAdvice('--tls-verify=false');
  if (!(error instanceof CopyError)) return '';
  if (error.code === 'TLS_VERIFY_FAILED') return tlsAdvice(command !== 'copy' ? '--tls-verify=false' : error.side === 'source' ? '--src-tls-verify=false' : '--dest-tls-verify=false');
  if (error.code === 'TAG_EXISTS') return '; pass --force to overwrite it';
  if (error.code === 'AUTH_FAILED' && error.side) {
    const flags = command !== 'copy' ? '--creds or HOIST_SRC_USERNAME/HOIST_SRC_PASSWORD' : error.side === 'source' ? '--src-creds or HOIST_SRC_USERNAME/HOIST_SRC_PASSWORD' : '--dest-creds or HOIST_DEST_USERNAME/HOIST_DEST_PASSWORD';
    return ` (the ${command === 'copy' ? `${error.side}'s` : "registry's"} credentials come from ${flags}, else ~/.docker/config.json)`;
  }
  return '';
}

/** Where the CLI takes its trust from, and the flag that turns verification off for the side that failed. */
function tlsAdvice(skipFlag: string): string {
  return ` (trust the CA with --ca-file FILE or HOIST_CA_FILE, or NODE_EXTRA_CA_CERTS; for a test registry only, ${skipFlag} skips verification for it and its token service)`;
}

/** Prints a result: as one JSON object, or as text. */
function print(format: OutputFormat, value: unknown, text: string): void {
  process.stdout.write(format === 'json' ? `${JSON.stringify(value)}\n` : `${text}\n`);
}

/** skopeo users write --all; said once, so nobody wonders what it does here. */
const ALL_IS_DEFAULT = '--all is the default: every platform of an index is copied';

async function runCopy(argv: string[], parsed: CopyCommand): Promise<number> {
  const json = parsed.format === 'json';
  if (parsed.all) process.stderr.write(json ? `${JSON.stringify({ time: new Date().toISOString(), type: 'note', message: ALL_IS_DEFAULT })}\n` : `hoist: note: ${ALL_IS_DEFAULT}\n`);
  const onProgress = json ? jsonReporter(process.stderr) : process.stderr.isTTY ? ttyReporter(process.stderr) : lineReporter(process.stderr);
  const checkpoints = parsed.resumeDir ? new FileCheckpointStore(parsed.resumeDir) : undefined;
  const rerun = rerunCommand(argv);
  const interrupts = watchInterrupts({ resumable: checkpoints !== undefined, out: process.stderr, command: rerun });
  let result: CopyResult;
  try {
    result = await copy(parsed.request, { ...parsed.options, checkpoints, onProgress, abortSignal: interrupts.signal });
  } catch (error) {
    throw parsed.explain(error);
  } finally {
    interrupts.dispose();
  }
  const dryRun = parsed.request.dryRun ?? false;
  // A dry run also says what each target tag holds now (one HEAD each; the copy already checked them).
  const tags: TagPlan = dryRun
    ? await Promise.all(parsed.request.targets.filter((t) => t.tag).map(async (t) => ({ reference: t.toString(), now: await resolveDigest(t.withTag(t.tag!), parsed.options.hosts!) })))
    : [];
  print(parsed.format, dryRun ? { ...result, plan: { ...result.plan, tags } } : result, summary(result, dryRun, tags));
  if (result.status === 'paused' && interrupts.interrupted) {
    process.stderr.write(`hoist: paused; checkpoints are saved in ${parsed.resumeDir}. To resume, run:\n  ${rerun}\n`);
    return EXIT.interrupted;
  }
  return EXIT.ok;
}

/** Runs one command (the words after `hoist`); resolves with its exit code. */
async function runCommand(command: string, argv: string[], rest: string[]): Promise<number> {
  switch (command) {
    case 'copy':
      return runCopy(argv, parseCopyArgs(rest));
    case 'inspect': {
      const parsed = parseReadArgs(command, rest);
      if (parsed.raw) {
        if (parsed.format === 'json') throw new UsageError('--raw and --format json contradict each other: --raw prints the bytes the registry serves, which for a manifest are JSON already');
        process.stdout.write(await rawManifest(parsed));
        return EXIT.ok;
      }
      const summary = await inspect(parsed);
      print(parsed.format, summary, formatInspect(summary));
      return EXIT.ok;
    }
    case 'digest': {
      const parsed = parseReadArgs(command, rest);
      const found = await manifestDigest(parsed);
      print(parsed.format, found, found.digest);
      return EXIT.ok;
    }
    case 'tags': {
      const parsed = parseReadArgs(command, rest);
      const found = await listTags(parsed);
      print(parsed.format, found, found.tags.map(cleanMessage).join('\n'));
      return EXIT.ok;
    }
    case 'completion': {
      const { positionals } = parseFlags(command, rest);
      const shell = SHELLS.find((s) => s === positionals[0]);
      if (positionals.length !== 1 || !shell) throw new UsageError(`completion needs one shell, ${SHELLS.join(', ')}; got ${positionals.length ? `"${positionals.join(' ')}"` : 'none'}`);
      process.stdout.write(completionScript(shell));
      return EXIT.ok;
    }
    default: {
      const near = nearest(command, Object.keys(COMMANDS));
      throw new UsageError(`unknown command "${command}": the commands are ${Object.keys(COMMANDS).join(', ')}${near ? `; did you mean ${near}?` : ''}`);
    }
  }
}

export async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  if (command === undefined || command === '-h' || command === '--help' || command === 'help') {
    process.stdout.write(HELP);
    return command === undefined ? EXIT.usage : EXIT.ok;
  }
  if (command === VERSION_FLAG) {
    process.stdout.write('hoist 0.1.0\n');
    return EXIT.ok;
  }
  // Known before parsing, so even a usage error is reported as JSON.
  const json = wantsJson(rest);
  try {
    if (Object.hasOwn(COMMANDS, command) && (rest.includes('-h') || rest.includes('--help'))) {
      process.stdout.write(commandHelp(command as CommandName));
      return EXIT.ok;
    }
    return await runCommand(command, argv, rest);
  } catch (error) {
    const code = exitCodeFor(error);
    const message = (error instanceof Error ? error.message : String(error)) + cliAdvice(error, command);
    if (json) {
      process.stdout.write(`${JSON.stringify({ error: { code: (error as { code?: string }).code ?? 'ERROR', message, exitCode: code } })}\n`);
    }
    process.stderr.write(`hoist: ${message}${code === EXIT.usage ? '\n(see hoist --help)' : ''}\n`);
    return code;
  }
}

/** Entry point for bin/hoist.js: runs `main` and sets the exit code. */
export function run(argv: string[] = process.argv.slice(2)): void {
  boundProcessMemory();
  main(argv).then(
    (code) => {
      process.exitCode = code;
    },
    (error: unknown) => {
      process.stderr.write(`hoist: ${String(error)}\n`);
      process.exitCode = EXIT.failure;
    },
  );
}
