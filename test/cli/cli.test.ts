/**
 * The `hoist` command line without a registry: help, commands, and every kind of bad reference
 * or flag, each refused with exit code 2 and a message naming what was wrong and what is accepted.
 * (Copies through the CLI against real registries are in cli-copy.test.ts.)
 */
import { FLAGS, flagsOf } from '../../src/cli/flags.js';
import { requireBuild, runHoist, tempHome, type TempHome } from './support.js';

// Never contacted: usage errors are found before any request (loopback anyway).
const SRC = '127.0.0.1:1/team/app:v1';
const DST = '127.0.0.1:1/team/copy:v1';
const SHA = `sha256:${'a'.repeat(64)}`;

let home: TempHome;
beforeAll(async () => {
  requireBuild();
  home = await tempHome();
});
afterAll(async () => {
  await home?.cleanup();
});

describe('help and commands', () => {
  it.each([['--help'], ['-h'], ['help']])('hoist %s prints the full help and exits 0', async (...args) => {
    const run = await runHoist(args, home);
    expect(run.code).toBe(0);
    expect(run.stderr).toBe('');
    const help = run.stdout;
    expect(help).toContain('hoist copy SRC DST [DST...] [flags]');
    for (const command of ['inspect REF', 'digest REF', 'tags REPO', 'completion bash|zsh|fish']) expect(help).toContain(`hoist ${command}`);
    for (const flag of FLAGS.map((f) => `--${f.name}`).concat('--version')) {
      expect(help, flag).toMatch(new RegExp(`^\\s+(-h, )?${flag}\\b`, 'm'));
    }
    for (const name of ['HOIST_SRC_USERNAME', 'HOIST_SRC_PASSWORD', 'HOIST_DEST_USERNAME', 'HOIST_DEST_PASSWORD', '~/.docker/config.json', 'DOCKER_CONFIG', 'HOIST_INSECURE_REGISTRIES', 'HOIST_MAX_BLOB_BYTES', 'HOIST_MAX_MANIFESTS']) {
      expect(help, name).toContain(name);
    }
    const exitCodes = [...help.slice(help.indexOf('Exit codes:')).matchAll(/^\s+(\d)\s+\S/gm)].map((m) => Number(m[1]));
    expect(exitCodes).toEqual([0, 1, 2, 3, 4, 5, 6]);
  });

  it.each(['copy', 'inspect', 'digest', 'tags', 'completion'] as const)('hoist %s --help prints its usage and exactly its flags', async (command) => {
    for (const flag of ['--help', '-h']) {
      const run = await runHoist([command, flag], home);
      expect(run.code).toBe(0);
      expect(run.stderr).toBe('');
      expect(run.stdout).toMatch(new RegExp(`^Usage: hoist ${command} `));
      const listed = [...run.stdout.matchAll(/^ {2}(?:-h, )?(--[a-z-]+)/gm)].map((m) => m[1]);
      expect(listed).toEqual(flagsOf(command).map((f) => `--${f.name}`));
    }
  });

  it('with no arguments prints the help and exits 2', async () => {
    const run = await runHoist([], home);
    expect(run.code).toBe(2);
    expect(run.stdout).toContain('Usage:');
    expect(run.stdout).toContain('Exit codes:');
  });

  it('refuses an unknown command with exit 2, naming it, the commands there are and the nearest', async () => {
    const run = await runHoist(['cp', SRC, DST], home);
    expect(run.code).toBe(2);
    expect(run.stdout).toBe('');
    expect(run.stderr).toMatch(/^hoist: unknown command "cp": the commands are copy, inspect, digest, tags, completion; did you mean copy\?/);
    expect(run.stderr).toContain('hoist --help');
  });

  it('prints the version', async () => {
    const run = await runHoist(['--version'], home);
    expect(run.code).toBe(0);
    expect(run.stdout).toMatch(/^hoist \d+\.\d+\.\d+\n$/);
  });
});

describe('bad references exit 2 and say what is allowed', () => {
  it.each([
    ['uppercase repository', '127.0.0.1:1/Team/App:v1', /invalid reference "127\.0\.0\.1:1\/Team\/App:v1": repository component "Team" is not valid: use lowercase letters, digits and single separators/],
    ['uppercase repository on Docker Hub', 'library/Alpine:3', /repository component "Alpine" is not valid: use lowercase letters/],
    ['tag starting with a dash', '127.0.0.1:1/team/app:-v1', /tag "-v1" is not valid: up to 128 letters, digits, '_', '\.' or '-', not starting with '\.' or '-'/],
    ['tag with a bad character', '127.0.0.1:1/team/app:v1+x', /tag "v1\+x" is not valid: up to 128 letters/],
    ['tag longer than 128', `127.0.0.1:1/team/app:${'t'.repeat(129)}`, /is not valid: up to 128 letters/],
    ['short sha256 digest', '127.0.0.1:1/team/app@sha256:abc', /a sha256 digest needs exactly 64 lowercase hex digits/],
    ['uppercase hex digest', `127.0.0.1:1/team/app@sha256:${'A'.repeat(64)}`, /a sha256 digest needs exactly 64 lowercase hex digits/],
    ['digest without an algorithm', '127.0.0.1:1/team/app@abc', /a digest is ALGORITHM:HEX, for example sha256:<64 lowercase hex digits>/],
    ['unsupported digest algorithm', `127.0.0.1:1/team/app@md5:${'a'.repeat(32)}`, /unsupported digest algorithm "md5" \(sha256 and sha512 are accepted\)/],
    ['empty reference', '', /invalid reference "": it is empty/],
    ['whitespace', '127.0.0.1:1/team/app :v1', /it contains whitespace/],
  ])('%s', async (_name, reference, message) => {
    const run = await runHoist(['copy', reference, DST], home);
    expect(run.code).toBe(2);
    expect(run.stdout).toBe('');
    expect(run.stderr).toMatch(/^hoist: invalid reference /);
    expect(run.stderr).toMatch(message);
    expect(run.stderr).toContain('(see hoist --help)');
  });

  it('checks DST the same way', async () => {
    const run = await runHoist(['copy', SRC, '127.0.0.1:1/Team/copy:v1'], home);
    expect(run.code).toBe(2);
    expect(run.stderr).toMatch(/^hoist: invalid reference "127\.0\.0\.1:1\/Team\/copy:v1": repository component "Team" is not valid/);
  });

  it('accepts a well-formed digest reference (and then fails only on the network)', async () => {
    // Port 1 on loopback refuses connections: not a usage error, so exit 1, not 2.
    const run = await runHoist(['copy', `127.0.0.1:1/team/app@${SHA}`, DST], home);
    expect(run.code).toBe(1);
  });
});

describe('bad flags exit 2 with a message naming the flag', () => {
  it.each([
    ['unknown flag', ['--frobnicate'], {}, /^hoist: unknown flag --frobnicate\n/],
    ['unknown short flag', ['-f'], {}, /^hoist: unknown flag -f\n/],
    ['a mistyped flag', ['--retry-time', '3'], {}, /^hoist: unknown flag --retry-time; did you mean --retry-times\?\n/],
    ['a flag missing a letter', ['--foce'], {}, /unknown flag --foce; did you mean --force\?/],
    ['the start of a flag', ['--allow-nondist'], {}, /unknown flag --allow-nondist; did you mean --allow-nondistributable-artifacts\?/],
    ['a mistyped flag given with =', ['--concurency=2'], {}, /unknown flag --concurency; did you mean --concurrency\?/],
    ['a flag of another command', ['--raw'], {}, /--raw is not a flag of copy \(it belongs to inspect\)\n/],
    ['--all with --platform', ['--all', '--platform', 'linux/amd64'], {}, /--all and --platform contradict each other/],
    ['--format yaml', ['--format', 'yaml'], {}, /--format "yaml" is not valid: give --format json or --format text/],
    ['--json with --format text', ['--json', '--format', 'text'], {}, /--json and --format text contradict each other/],
    ['missing value at the end', ['--concurrency'], {}, /Option '--concurrency <value>' argument missing/],
    ['missing value before another flag', ['--chunk-size', '--json'], {}, /'--chunk-size'.*ambiguous|Did you forget to specify the option argument for '--chunk-size'/s],
    ['a value for a boolean flag', ['--force=yes'], {}, /--force/],
    ['--concurrency 0', ['--concurrency', '0'], {}, /--concurrency "0" is not valid: give a whole number from 1 to 64/],
    ['--concurrency abc', ['--concurrency', 'abc'], {}, /--concurrency "abc" is not valid: give a whole number from 1 to 64/],
    ['--concurrency 65', ['--concurrency', '65'], {}, /--concurrency "65" is not valid: give a whole number from 1 to 64/],
    ['--concurrency 1.5', ['--concurrency=1.5'], {}, /--concurrency "1\.5" is not valid: give a whole number/],
    ['--chunk-size 12', ['--chunk-size', '12'], {}, /--chunk-size "12" is not valid: give a size of at least 1024 bytes, e.g. 4194304 or 4MiB/],
    ['--chunk-size abc', ['--chunk-size', 'abc'], {}, /--chunk-size "abc" is not valid: give a size of at least 1024 bytes/],
    ['--chunk-size 4XB', ['--chunk-size', '4XB'], {}, /--chunk-size "4XB" is not valid/],
    ['--platform linux', ['--platform', 'linux'], {}, /--platform: platform "linux" is not valid: use os\/arch or os\/arch\/variant, lowercase, and :os\.version after it to pick a Windows version, e\.g\. linux\/arm64, linux\/arm\/v7 or windows\/amd64:10\.0\.17763\.5329/],
    ['--platform Linux/AMD64', ['--platform', 'Linux/AMD64'], {}, /--platform: platform "Linux\/AMD64" is not valid: use os\/arch or os\/arch\/variant, lowercase/],
    ['--platform with four parts', ['--platform', 'linux/arm/v7/x'], {}, /--platform: platform "linux\/arm\/v7\/x" is not valid/],
    ['--src-creds without a colon', ['--src-creds', 'alice'], {}, /--src-creds is not valid: give USER:PASSWORD/],
    ['--src-creds with an empty user', ['--src-creds', ':secret'], {}, /--src-creds is not valid: give USER:PASSWORD/],
    ['--dest-creds without a colon', ['--dest-creds', 'alice'], {}, /--dest-creds is not valid: give USER:PASSWORD/],
    ['only HOIST_SRC_USERNAME', [], { HOIST_SRC_USERNAME: 'alice' }, /set both HOIST_SRC_USERNAME and HOIST_SRC_PASSWORD, or neither/],
    ['only HOIST_SRC_PASSWORD', [], { HOIST_SRC_PASSWORD: 'secret' }, /set both HOIST_SRC_USERNAME and HOIST_SRC_PASSWORD, or neither/],
    ['only HOIST_DEST_USERNAME', [], { HOIST_DEST_USERNAME: 'alice' }, /set both HOIST_DEST_USERNAME and HOIST_DEST_PASSWORD, or neither/],
    ['only HOIST_DEST_PASSWORD', [], { HOIST_DEST_PASSWORD: 'secret' }, /set both HOIST_DEST_USERNAME and HOIST_DEST_PASSWORD, or neither/],
  ] as Array<[string, string[], Record<string, string>, RegExp]>)('%s', async (_name, flags, env, message) => {
    const run = await runHoist(['copy', SRC, DST, ...flags], home, env);
    expect(run.code).toBe(2);
    // With --json anywhere in the arguments, even a usage error is also reported as JSON.
    if (flags.includes('--json')) expect(JSON.parse(run.stdout)).toMatchObject({ error: { exitCode: 2 } });
    else expect(run.stdout).toBe('');
    expect(run.stderr).toMatch(/^hoist: /);
    expect(run.stderr).toMatch(message);
    expect(run.stderr).toContain('(see hoist --help)');
    // The secret given in the environment is never echoed.
    expect(run.all).not.toContain('secret');
  });

  it.each([
    [['copy'], 0],
    [['copy', SRC], 1],
  ])('%j: needs a source and at least one target', async (args, count) => {
    const run = await runHoist(args, home);
    expect(run.code).toBe(2);
    expect(run.stderr).toContain(`copy needs a source and at least one target, SRC DST [DST...]; got ${count} reference(s)`);
  });

  it('refuses a target given twice', async () => {
    const run = await runHoist(['copy', SRC, DST, `docker://${DST}`], home);
    expect(run.code).toBe(2);
    expect(run.stderr).toContain(`target ${DST} is given twice: give each target once`);
  });

  it.each([
    [['inspect'], 'inspect needs exactly one reference, REF; got 0'],
    [['digest', SRC, DST], 'digest needs exactly one reference, REF; got 2'],
    [['tags'], 'tags needs exactly one reference, REPO; got 0'],
    [['tags', SRC], 'tags takes a repository, not "127.0.0.1:1/team/app:v1": drop the tag or digest, e.g. 127.0.0.1:1/team/app'],
    [['tags', `127.0.0.1:1/team/app@${SHA}`], 'tags takes a repository, not'],
    [['inspect', SRC, '--raw', '--format', 'json'], '--raw and --format json contradict each other'],
    [['inspect', SRC, '--tls-verify=maybe'], '--tls-verify "maybe" is not valid: give --tls-verify=true or --tls-verify=false'],
    [['digest', SRC, '--creds', 'alice'], '--creds is not valid: give USER:PASSWORD'],
    [['tags', '127.0.0.1:1/team/app', '--dry-run'], '--dry-run is not a flag of tags (it belongs to copy)\n'],
    [['digest', SRC, '--src-creds', 'a:b'], '--src-creds is not a flag of digest (it belongs to copy); did you mean --creds?'],
    [['inspect', SRC, '--dest-tls-verify=false'], '--dest-tls-verify is not a flag of inspect (it belongs to copy); did you mean --tls-verify?'],
    [['tags', '127.0.0.1:1/team/app', '--tls-verfy=false'], 'unknown flag --tls-verfy; did you mean --tls-verify?'],
    [['inspect', SRC, '--rw'], 'unknown flag --rw; did you mean --raw?'],
    [['completion'], 'completion needs one shell, bash, zsh, fish; got none'],
    [['completion', 'tcsh'], 'completion needs one shell, bash, zsh, fish; got "tcsh"'],
  ])('%j is a usage error', async (args, message) => {
    const run = await runHoist(args, home);
    expect(run.code).toBe(2);
    if (args.includes('json')) expect(JSON.parse(run.stdout)).toMatchObject({ error: { code: 'USAGE', exitCode: 2 } });
    else expect(run.stdout).toBe('');
    expect(run.stderr).toContain(message);
  });

  it.each([['dir:/tmp/image', 'dir'], ['docker-archive:/tmp/a.tar', 'docker-archive'], ['containers-storage:app', 'containers-storage']])('refuses skopeo transport %s by name', async (reference, transport) => {
    const run = await runHoist(['copy', reference, DST], home);
    expect(run.code).toBe(2);
    expect(run.stderr).toContain(`invalid reference "${reference}": the ${transport}: transport is not supported; give a registry reference, REF or docker://REF`);
  });

  it('a bad reference after docker:// is named as written', async () => {
    const run = await runHoist(['copy', 'docker://127.0.0.1:1/Team/app:v1', DST], home);
    expect(run.code).toBe(2);
    expect(run.stderr).toMatch(/^hoist: invalid reference "docker:\/\/127\.0\.0\.1:1\/Team\/app:v1": repository component "Team" is not valid/);
  });

  it('--json reports a usage error as JSON, and so does --format json', async () => {
    for (const flags of [['--json'], ['--format', 'json'], ['--format=json']]) {
      const run = await runHoist(['copy', SRC, DST, '--retry-time', '2', ...flags], home);
      expect(run.code).toBe(2);
      expect(JSON.parse(run.stdout)).toEqual({ error: { code: 'USAGE', message: 'unknown flag --retry-time; did you mean --retry-times?', exitCode: 2 } });
    }
  });

  it('accepts sizes with units and counts at the limits (then fails only on the network)', async () => {
    const run = await runHoist(['copy', SRC, DST, '--chunk-size', '4MiB', '--concurrency', '64', '--platform', 'linux/arm/v7', '--src-creds', 'a:b:c'], home);
    expect(run.code).toBe(1);
    expect(run.stderr).not.toContain('see hoist --help');
  });
});

describe('message details', () => {
  it('an unknown command prints the help hint once', async () => {
    const run = await runHoist(['cp', SRC, DST], home);
    expect(run.stderr.split('see hoist --help')).toHaveLength(2);
  });

  it('a bad digest is reported with the whole reference it is in', async () => {
    const run = await runHoist(['copy', SRC, '127.0.0.1:1/team/copy@sha256:abc'], home);
    expect(run.stderr).toContain('invalid reference "127.0.0.1:1/team/copy@sha256:abc"');
  });
});
