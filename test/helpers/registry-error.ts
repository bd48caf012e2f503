/** The RegistryError a request fails with; the test fails if it succeeds or fails with anything else. */
import { expect } from 'vitest';
import { RegistryError } from '../../src/registry/errors.js';

export async function registryError(promise: Promise<unknown>): Promise<RegistryError> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(RegistryError);
  return error as RegistryError;
}
