/**
 * explainAcrRefusal names a missing Azure role only for the registry that refused: with several
 * targets (the CLI's), a refusal by another target than the ACR the identity answered for stays
 * the registry's own AUTH_FAILED.
 */
import { explainAcrRefusal } from '../../src/azure/errors.js';
import { CopyError, type Side } from '../../src/copy/errors.js';
import { RegistryError } from '../../src/registry/errors.js';

const ACR = 'team.azurecr.io';
const OTHER = 'registry.example:5000';
const answered = (registry: string) => (registry === ACR ? 'your Azure login' : undefined);

function refusal(side: Side, url: string): CopyError {
  const cause = new RegistryError({ code: 'UNAUTHORIZED', status: 401, method: 'PUT', url, reference: 'x', details: [] });
  return new CopyError('AUTH_FAILED', `authentication failed on the ${side}`, side, { cause });
}

describe('explainAcrRefusal', () => {
  it.each([
    ['another target refused (the ACR was only the first named)', refusal('target', `https://${OTHER}/v2/app/manifests/1`), undefined],
    ['the ACR refused its token', refusal('target', `https://${ACR}/oauth2/token`), ACR],
    ['the ACR registry refused', refusal('target', `https://${ACR}/v2/app/blobs/uploads/`), ACR],
    ['the error names no URL (the registry given is taken)', new CopyError('AUTH_FAILED', 'denied', 'target'), ACR],
  ])('%s', (_, error, named) => {
    const explained = explainAcrRefusal(error, { source: OTHER, target: ACR }, answered);
    if (named === undefined) {
      expect(explained).toBe(error);
    } else {
      expect(explained).toMatchObject({ code: 'ACR_ROLE_MISSING', side: 'target', cause: error });
      expect((explained as Error).message).toContain(`the target registry ${named}`);
    }
  });
});
