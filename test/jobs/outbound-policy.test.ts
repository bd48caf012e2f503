import { AddressRefusedError } from '../../src/registry/address-policy.js';
import { serviceAddressPolicy } from '../../src/jobs/outbound-policy.js';

/** Every name resolves to a private address: only trusted hosts get through. */
const privateResolver = () => Promise.resolve([{ address: '10.0.0.5', family: 4 }]);

describe('serviceAddressPolicy', () => {
  it('trusts every HOIST_TARGET_REGISTRY entry, and Docker Hub\'s API host for docker.io', async () => {
    const policy = serviceAddressPolicy(['first.example:5000', 'second.example', 'docker.io'], [], privateResolver);
    await expect(policy.check('first.example', 5000)).resolves.toBeUndefined();
    await expect(policy.check('second.example', 443)).resolves.toBeUndefined();
    await expect(policy.check('registry-1.docker.io', 443)).resolves.toBeUndefined();
    // A port of its own: only the listed one is trusted.
    await expect(policy.check('first.example', 5001)).rejects.toBeInstanceOf(AddressRefusedError);
    await expect(policy.check('third.example', 443)).rejects.toBeInstanceOf(AddressRefusedError);
  });

  it('trusts no target when none is configured', async () => {
    const policy = serviceAddressPolicy([], ['allowed.example'], privateResolver);
    await expect(policy.check('allowed.example', 443)).resolves.toBeUndefined();
    await expect(policy.check('first.example', 443)).rejects.toBeInstanceOf(AddressRefusedError);
  });
});
