/**
 * `hoist completion bash|zsh|fish`: the scripts the built CLI prints, run in the real shells. The
 * bash script is sourced and its completion function asked for words as bash would ask; the fish
 * script is loaded and asked with `complete -C`, as fish asks it; the zsh script is
 * syntax-checked (.ci/run installs both shells).
 */
import { spawnSync } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { FLAGS, flagsOf } from '../../src/cli/flags.js';
import { requireBuild, runHoist, shellQuote, tempHome, type TempHome } from './support.js';

let home: TempHome;
let bashScript: string;
beforeAll(async () => {
  requireBuild();
  home = await tempHome();
  const run = await runHoist(['completion', 'bash'], home);
  expect(run.code, run.all).toBe(0);
  bashScript = join(home.home, 'hoist.bash');
  await writeFile(bashScript, run.stdout);
});
afterAll(async () => {
  await home?.cleanup();
});

/** What the bash completion offers for the command line `words` (the last word is being completed). */
function bashComplete(words: string[]): string[] {
  const script = `source ${shellQuote(bashScript)}
COMP_WORDS=(${words.map(shellQuote).join(' ')})
COMP_CWORD=${words.length - 1}
COMP_LINE=${shellQuote(words.join(' '))}
COMP_POINT=\${#COMP_LINE}
_hoist
printf '%s\\n' "\${COMPREPLY[@]}"`;
  const run = spawnSync('bash', ['--norc', '--noprofile', '-c', script], { encoding: 'utf8', cwd: home.home });
  expect(run.status, run.stderr).toBe(0);
  expect(run.stderr).toBe('');
  return run.stdout.split('\n').filter(Boolean);
}

describe('bash', () => {
  it('registers a completion for hoist', () => {
    const run = spawnSync('bash', ['--norc', '--noprofile', '-c', `source ${shellQuote(bashScript)} && complete -p hoist`], { encoding: 'utf8' });
    expect(run.stdout.trim()).toBe('complete -o default -F _hoist hoist');
  });

  it.each([
    [['hoist', ''], ['copy', 'inspect', 'digest', 'tags', 'completion', 'help', '--help', '--version']],
    [['hoist', 'i'], ['inspect']],
    [['hoist', 'copy', '--retry'], ['--retry-times']],
    [['hoist', 'copy', 'a', 'b', '--dr'], ['--dry-run']],
    [['hoist', 'inspect', '--r'], ['--raw', '--retry-times']],
    [['hoist', 'tags', '--raw'], []],
    [['hoist', 'copy', '--format', ''], ['json', 'text']],
    [['hoist', 'digest', '--tls-verify', 'f'], ['false']],
    [['hoist', 'completion', ''], ['bash', 'zsh', 'fish']],
  ])('%j offers %j', (words, expected) => {
    expect(bashComplete(words)).toEqual(expected);
  });

  it.each(['copy', 'inspect', 'digest', 'tags', 'completion'] as const)('offers every flag of %s the parser knows, from the one flag table', (command) => {
    const offered = bashComplete(['hoist', command, '-']);
    expect(offered.sort()).toEqual(flagsOf(command).flatMap((f) => [`--${f.name}`, ...(f.short ? [`-${f.short}`] : [])]).sort());
  });

  it('offers paths after a flag that takes a file', () => {
    expect(bashComplete(['hoist', 'copy', '--ca-file', 'hoist.b'])).toEqual(['hoist.bash']);
  });
});

describe('zsh and fish', () => {
  it('zsh: the script parses', async () => {
    const run = await runHoist(['completion', 'zsh'], home);
    const file = join(home.home, 'hoist.zsh');
    await writeFile(file, run.stdout);
    const check = spawnSync('zsh', ['-n', file], { encoding: 'utf8' });
    expect(check.status, check.stderr).toBe(0);
  });

  it('fish: the script parses, and completes commands and flags as fish asks', async () => {
    const run = await runHoist(['completion', 'fish'], home);
    const file = join(home.home, 'hoist.fish');
    await writeFile(file, run.stdout);
    const check = spawnSync('fish', ['--no-execute', file], { encoding: 'utf8' });
    expect(check.status, check.stderr).toBe(0);
    const ask = (line: string): string[] => {
      const asked = spawnSync('fish', ['--no-config', '-c', `source ${file}; complete -C ${JSON.stringify(line)}`], { encoding: 'utf8' });
      expect(asked.status, asked.stderr).toBe(0);
      return asked.stdout.split('\n').filter(Boolean).map((l) => l.split('\t')[0]).sort();
    };
    expect(ask('hoist co')).toEqual(['completion', 'copy']);
    expect(ask('hoist copy --retry')).toEqual(['--retry-times']);
  });

  it('both name every command and every flag of the table', async () => {
    for (const shell of ['zsh', 'fish']) {
      const run = await runHoist(['completion', shell], home);
      expect(run.code, run.all).toBe(0);
      for (const command of ['copy', 'inspect', 'digest', 'tags', 'completion']) expect(run.stdout, `${shell} ${command}`).toContain(command);
      for (const flag of FLAGS) expect(run.stdout, `${shell} --${flag.name}`).toMatch(shell === 'fish' ? new RegExp(`-l ${flag.name}\\b`) : new RegExp(`--${flag.name}\\b`));
    }
  });
});
