/** Which of the deployment's target registries (HOIST_TARGET_REGISTRY) an import request writes to. */
import { RequestError } from '../../src/jobs/errors.js';
import { chooseTarget } from '../../src/jobs/submit-import.js';

const DEPLOYED = ['myacr.azurecr.io', 'Mirror.Example:5000'];

describe('chooseTarget', () => {
  it('takes the first listed when the request names none', () => {
    expect(chooseTarget({}, DEPLOYED)).toBe('myacr.azurecr.io');
  });

  it('takes the one named, whatever the case of either spelling, as the deployment spells it', () => {
    expect(chooseTarget({ targetRegistry: 'MyACR.azurecr.io' }, DEPLOYED)).toBe('myacr.azurecr.io');
    expect(chooseTarget({ targetRegistry: 'mirror.example:5000' }, DEPLOYED)).toBe('Mirror.Example:5000');
  });

  it('refuses any other, naming those it may write to', () => {
    const refused = (() => {
      try {
        return chooseTarget({ targetRegistry: 'mirror.example:5001' }, DEPLOYED);
      } catch (error) {
        return error;
      }
    })();
    expect(refused).toBeInstanceOf(RequestError);
    expect(refused).toMatchObject({ code: 'TARGET_NOT_ALLOWED', field: 'targetRegistry', message: expect.stringContaining('give one of myacr.azurecr.io, Mirror.Example:5000 (HOIST_TARGET_REGISTRY), or leave it out for myacr.azurecr.io') });
  });
});
