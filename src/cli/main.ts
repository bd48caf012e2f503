/** The `hoist` command line: maps flags to the copy engine and its result to output and exit codes. */
import { copy, CopyError, DEFAULT_MAX_BLOB_BYTES } from '../copy/index.js';
import { FileCheckpointStore } from '../copy/file-checkpoints.js';
import type { CopyResult } from '../copy/types.js';
import { cleanMessage } from '../registry/errors.js';
import { EXIT_INTERRUPTED, rerunCommand, watchInterrupts } from './interrupt.js';
import { parseCopyArgs, UsageError } from './options.js';
import { formatBytes, jsonReporter, lineReporter, ttyReporter } from './progress.js';

export const EXIT = { ok: 0, failure: 1, usage: 2, auth: 3, notFound: 4, tagExists: 5, integrity: 6, interrupted: EXIT_INTERRUPTED } as const;

const HELP = `hoist: import container images and OCI artifacts into a registry, without Docker.

Usage:
  hoist copy SRC DST [flags]

SRC and DST are image references: [registry/]repository[:tag][@digest]. A missing registry
means Docker Hub (hello-world -> docker.io/library/hello-world:latest). Loopback registries and
hosts in HOIST_INSECURE_REGISTRIES (comma-separated host[:port]) use plain HTTP. A blob whose
descriptor claims more than HOIST_MAX_BLOB_BYTES (default ${DEFAULT_MAX_BLOB_BYTES}, 200 GiB) is refused.
Either side may be an OCI image layout directory, oci:DIR[:TAG] as skopeo writes it (DIR is
created when it is a target; without TAG a source names the layout's only image).

Flags:
  --force              overwrite a target tag that points at another digest
  --platform OS/ARCH[/VARIANT][:OS.VERSION]
                       copy only this platform of an index (repeatable); writes a new index
                       that keeps the attestations of the chosen images. Windows images are
                       told apart by os.version, e.g. windows/amd64:10.0.17763.5329
  --referrers          also copy signatures, SBOMs and attestations, recursively
  --allow-nondistributable-artifacts
                       also copy non-distributable (foreign) layers, such as Windows base
                       layers, from the source registry or else their URLs (http/https only,
                       verified like any blob); by default they stay referenced by URL
  --dry-run            print the plan (manifests, blobs, bytes to move) and change nothing
  --src-creds U:P      source registry credentials (else HOIST_SRC_USERNAME/PASSWORD)
  --dest-creds U:P     target registry credentials (else HOIST_DEST_USERNAME/PASSWORD, else the
                       Docker config's credHelpers, credsStore and auths, identitytoken included)
  --ca-file FILE       also trust the PEM CA certificates in FILE (else HOIST_CA_FILE), besides
                       Node's roots and NODE_EXTRA_CA_CERTS
  --src-tls-verify=false, --dest-tls-verify=false
                       do not verify that side's TLS certificate (self-signed labs; warns once).
                       HOIST_TLS_SKIP_VERIFY lists such host[:port]s, HOIST_HTTPS_REGISTRIES the
                       loopback host[:port]s reached over https instead of plain HTTP
  --retry-times N      attempts per request, token request and blob restart, 1 to 20 (default 5;
                       else HOIST_RETRY_ATTEMPTS)
  --concurrency N      parallel blob transfers (default 4, and 8 more for blobs up to 1 MiB)
  --chunk-size BYTES   upload in chunks of this size (e.g. 4MiB) instead of one stream per blob
  --resume-dir DIR     save upload checkpoints in DIR; running the same copy again resumes
                       interrupted blobs from where they stopped (implies chunked uploads).
                       Ctrl-C (or SIGTERM) then pauses at the next chunk boundary and prints the
                       command that resumes; a second Ctrl-C exits at once. Without it, Ctrl-C
                       exits at once: nothing can be resumed (copied blobs are skipped on a rerun)
  --json               progress as one JSON event per line on stderr, result as JSON on stdout
  -h, --help           show this help
  --version            print the version

Credentials, first match wins: the flags; HOIST_SRC_USERNAME/HOIST_SRC_PASSWORD and
HOIST_DEST_USERNAME/HOIST_DEST_PASSWORD; then the auths in ~/.docker/config.json ($DOCKER_CONFIG).

Exit codes:
  0  success (also when the target tag already pointed at the same digest)
  1  other failure (registry error, network)
  2  usage error (bad flag or reference)
  3  authentication or authorization failed
  4  source not found (or a requested platform is missing)
  5  target tag exists and --force was not given
  6  integrity failure (bytes did not match their digest)
  130  interrupted by Ctrl-C or SIGTERM (paused and resumable with --resume-dir)
`;

function exitCodeFor(error: unknown): number {
  if (error instanceof UsageError) return EXIT.usage;
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

function summary(result: CopyResult, dryRun: boolean): string {
  const lines: string[] = [];
  if (dryRun) {
    lines.push(`plan for ${result.source} (${result.sourceDigest}):`);
    for (const m of result.plan.manifests) lines.push(`  manifest ${m.digest} ${m.mediaType}${m.platform ? ` ${cleanMessage(m.platform)}` : ''}${m.attestationFor ? ` (attestation of ${m.attestationFor})` : ''}`);
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

/** What a CLI user can do about a copy error, in the CLI's words; the engine's messages name no surface. */
function cliAdvice(error: unknown): string {
  if (!(error instanceof CopyError)) return '';
  if (error.code === 'TAG_EXISTS') return '; pass --force to overwrite it';
  if (error.code === 'AUTH_FAILED' && error.side) {
    const flags = error.side === 'source' ? '--src-creds or HOIST_SRC_USERNAME/HOIST_SRC_PASSWORD' : '--dest-creds or HOIST_DEST_USERNAME/HOIST_DEST_PASSWORD';
    return ` (the ${error.side}'s credentials come from ${flags}, else ~/.docker/config.json)`;
  }
  return '';
}

export async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  if (command === undefined || command === '-h' || command === '--help' || command === 'help') {
    process.stdout.write(HELP);
    return command === undefined ? EXIT.usage : EXIT.ok;
  }
  if (command === '--version') {
    process.stdout.write('hoist 0.1.0\n');
    return EXIT.ok;
  }
  // Known before parsing, so even a usage error is reported as JSON.
  const json = rest.includes('--json');
  try {
    if (command !== 'copy') throw new UsageError(`unknown command "${command}": the command is copy`);
    if (rest.includes('-h') || rest.includes('--help')) {
      process.stdout.write(HELP);
      return EXIT.ok;
    }
    const parsed = parseCopyArgs(rest);
    const onProgress = json ? jsonReporter(process.stderr) : process.stderr.isTTY ? ttyReporter(process.stderr) : lineReporter(process.stderr);
    const checkpoints = parsed.resumeDir ? new FileCheckpointStore(parsed.resumeDir) : undefined;
    const rerun = rerunCommand(argv);
    const interrupts = watchInterrupts({ resumable: checkpoints !== undefined, out: process.stderr, command: rerun });
    let result: CopyResult;
    try {
      result = await copy(parsed.request, { ...parsed.options, checkpoints, onProgress, abortSignal: interrupts.signal });
    } finally {
      interrupts.dispose();
    }
    process.stdout.write(json ? `${JSON.stringify(result)}\n` : `${summary(result, parsed.request.dryRun ?? false)}\n`);
    if (result.status === 'paused' && interrupts.interrupted) {
      process.stderr.write(`hoist: paused; checkpoints are saved in ${parsed.resumeDir}. To resume, run:\n  ${rerun}\n`);
      return EXIT.interrupted;
    }
    return EXIT.ok;
  } catch (error) {
    const code = exitCodeFor(error);
    const message = (error instanceof Error ? error.message : String(error)) + cliAdvice(error);
    if (json) {
      process.stdout.write(`${JSON.stringify({ error: { code: (error as { code?: string }).code ?? 'ERROR', message, exitCode: code } })}\n`);
    }
    process.stderr.write(`hoist: ${message}${code === EXIT.usage ? '\n(see hoist --help)' : ''}\n`);
    return code;
  }
}

/** Entry point for bin/hoist.js: runs `main` and sets the exit code. */
export function run(argv: string[] = process.argv.slice(2)): void {
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
