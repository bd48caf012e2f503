/**
 * A scripted stand-in for the Azure CLI, for tests of the developer's credential: the real CLI
 * cannot be installed here, and a real login cannot be had. @azure/identity's AzureCliCredential
 * runs `az account get-access-token --output json --resource <resource> [--tenant …]` (with
 * child_process.exec, so `az` is found on PATH) and reads `accessToken` and `expires_on` (epoch
 * seconds; `expiresOn` as a local date string before CLI 2.54) from its JSON, or, on failure,
 * looks for "az login" in its stderr. This script answers the same way: a token minted by the
 * test's {@link EntraTenant} for whatever resource is asked, or "Please run 'az login'" when
 * logged out. Every invocation's arguments are logged.
 */
import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { EntraTenant } from './entra-tenant.js';

/** A fake `az` in a directory of its own, to put first on a child's PATH. */
export interface FakeAz {
  /** The directory holding `az`. */
  directory: string;
  /** Logs in as `principal`: the next `get-access-token` answers a token for it. */
  login(principal: string): Promise<void>;
  /** Logs out: `get-access-token` fails as the real CLI does. */
  logout(): Promise<void>;
  /** The arguments of every invocation, in order. */
  calls(): Promise<string[]>;
  /** Every token handed out so far. */
  tokens: string[];
  cleanup(): Promise<void>;
}

/**
 * Makes the script. It reads the answer prepared by {@link FakeAz.login} for the resource it is
 * asked for (`answer-<resource, URL-encoded>.json`), so the token's audience is the resource,
 * as Entra's is.
 */
export async function fakeAz(tenant: EntraTenant, resources: readonly string[]): Promise<FakeAz> {
  const directory = await mkdtemp(join(tmpdir(), 'hoist-fake-az-'));
  const log = join(directory, 'calls.log');
  const tokens: string[] = [];
  await writeFile(log, '');
  const script = `#!/bin/sh
printf '%s\\n' "$*" >> '${log}'
resource=""
while [ $# -gt 0 ]; do
  if [ "$1" = "--resource" ]; then resource="$2"; fi
  shift
done
answer="${directory}/answer-$(printf '%s' "$resource" | od -An -tx1 | tr -d ' \\n').json"
if [ ! -f "${directory}/logged-in" ] || [ ! -f "$answer" ]; then
  echo "ERROR: Please run 'az login' to setup account." >&2
  exit 1
fi
cat "$answer"
`;
  await writeFile(join(directory, 'az'), script);
  await chmod(join(directory, 'az'), 0o755);
  const hex = (text: string) => Buffer.from(text).toString('hex');

  return {
    directory,
    tokens,
    async login(principal) {
      for (const resource of resources) {
        const { token, claims } = tenant.issue({ principal, audience: resource });
        tokens.push(token);
        const answer = { accessToken: token, expiresOn: new Date(claims.exp * 1000).toISOString().replace('T', ' ').slice(0, 26), expires_on: claims.exp, subscription: '00000000-0000-0000-0000-000000000001', tenant: tenant.tenantId, tokenType: 'Bearer' };
        await writeFile(join(directory, `answer-${hex(resource)}.json`), JSON.stringify(answer));
      }
      await writeFile(join(directory, 'logged-in'), principal);
    },
    async logout() {
      await rm(join(directory, 'logged-in'), { force: true });
    },
    async calls() {
      return (await readFile(log, 'utf8')).split('\n').filter(Boolean);
    },
    cleanup: () => rm(directory, { recursive: true, force: true }),
  };
}
