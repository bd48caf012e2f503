/**
 * The `hoist` command line without a registry: help, commands, and every kind of bad reference
 * or flag, each refused with exit code 2 and a message naming what was wrong and what is accepted.
 * (Copies through the CLI against real registries are in cli-copy.test.ts.)
 */
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
  it.each([['--help'], ['-h'], ['help'], ['copy', '--help']])('hoist %s prints the full help and exits 0', async (...args) => {
    const run = await runHoist(args, home);
    expect(run.code).toBe(0);
    expect(run.stderr).toBe('');
    const help = run.stdout;
    expect(help).toContain('hoist copy SRC DST [flags]');
    for (const flag of ['--force', '--platform', '--referrers', '--allow-nondistributable-artifacts', '--dry-run', '--src-creds', '--dest-creds', '--concurrency', '--chunk-size', '--resume-dir', '--json', '--help', '--version']) {
      expect(help, flag).toMatch(new RegExp(`^\\s+(-h, )?${flag}\\b`, 'm'));
    }
    for (const name of ['HOIST_SRC_USERNAME', 'HOIST_SRC_PASSWORD', 'HOIST_DEST_USERNAME', 'HOIST_DEST_PASSWORD', '~/.docker/config.json', 'DOCKER_CONFIG', 'HOIST_INSECURE_REGISTRIES']) {
      expect(help, name).toContain(name);
    }
    const exitCodes = [...help.slice(help.indexOf('Exit codes:')).matchAll(/^\s+(\d)\s+\S/gm)].map((m) => Number(m[1]));
    expect(exitCodes).toEqual([0, 1, 2, 3, 4, 5, 6]);
  });

  it('with no arguments prints the help and exits 2', async () => {
    const run = await runHoist([], home);
    expect(run.code).toBe(2);
    expect(run.stdout).toContain('Usage:');
    expect(run.stdout).toContain('Exit codes:');
  });

  it('refuses an unknown command with exit 2, naming it and the command there is', async () => {
    const run = await runHoist(['cp', SRC, DST], home);
    expect(run.code).toBe(2);
    expect(run.stdout).toBe('');
    expect(run.stderr).toMatch(/^hoist: unknown command "cp": the command is copy/);
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
    ['unknown flag', ['--frobnicate'], {}, /Unknown option '--frobnicate'/],
    ['unknown short flag', ['-f'], {}, /Unknown option '-f'/],
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
    [['copy', SRC, DST, '127.0.0.1:1/team/third:v1'], 3],
  ])('%j: needs exactly two references', async (args, count) => {
    const run = await runHoist(args, home);
    expect(run.code).toBe(2);
    expect(run.stderr).toContain(`copy needs exactly two references, SRC and DST; got ${count}`);
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
