/**
 * Docker credential helpers for tests: real `docker-credential-NAME` shell scripts, found on PATH
 * as docker and Hoist look for them.
 */
import { chmod, mkdtemp, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

/** Writes `docker-credential-NAME` running `script` into a new directory under `dir`; returns an env whose PATH has it first. */
export async function writeCredentialHelper(dir: string, name: string, script: string): Promise<NodeJS.ProcessEnv> {
  const bin = await mkdtemp(join(dir, 'bin-'));
  const file = join(bin, `docker-credential-${name}`);
  await writeFile(file, `#!/bin/sh\n${script}\n`);
  await chmod(file, 0o755);
  return { PATH: `${bin}:${process.env.PATH ?? '/usr/bin:/bin'}` };
}
