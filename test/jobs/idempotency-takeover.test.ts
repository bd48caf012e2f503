/**
 * An Idempotency-Key claim whose job never appeared (the claimant died between its two table
 * writes) blocks its key for ABANDONED_CLAIM_MS, then the next request with the key takes it
 * over. Real tables and queue in Azurite; the clock is injected, so no test waits a minute.
 */
import { RegistryHosts } from '../../src/registry/hosts.js';
import { findExistingTags, resolveDigest } from '../../src/copy/engine.js';
import { IdempotencyError } from '../../src/jobs/errors.js';
import { newJobId } from '../../src/jobs/job-id.js';
import { parseImportRequest } from '../../src/jobs/import-request.js';
import { requestFingerprint, submitImport, type SubmitImportDeps } from '../../src/jobs/submit-import.js';
import { useJobStorage } from './azurite.js';

const env = useJobStorage();
const BODY = { source: 'docker.io/library/alpine:3', untaggedRepositories: ['mirror/alpine'] };
const T0 = Date.parse('2026-01-01T00:00:00Z');

function deps(nowMs: number): SubmitImportDeps {
  const { jobs, idempotency, queue } = env.storage;
  return { jobs, idempotency, queue, targetRegistries: ['localhost:5000'], hosts: new RegistryHosts(), findExistingTags, resolveDigest, now: () => new Date(nowMs) };
}

/** Leaves the claim a request makes before it inserts its job, and no job: as if it died there. */
async function abandonClaim(key: string): Promise<string> {
  const jobId = newJobId(new Date(T0));
  expect(await env.storage.idempotency.claim(key, { jobId, fingerprint: requestFingerprint(parseImportRequest(BODY), undefined), createdAt: new Date(T0).toISOString() })).toBe(true);
  return jobId;
}

describe('an abandoned Idempotency-Key claim', () => {
  it('answers "in progress" until a minute has passed, then is taken over by the next request', async () => {
    const key = 'abandoned-claim-1';
    const deadJob = await abandonClaim(key);

    // Within the minute the claimant may still be inserting its job: retry later.
    for (const at of [T0 + 1_000, T0 + 60_000]) {
      const error = await submitImport(BODY, { idempotencyKey: key }, deps(at)).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(IdempotencyError);
      expect((error as IdempotencyError).code).toBe('IDEMPOTENCY_KEY_IN_PROGRESS');
      expect((error as IdempotencyError).message).toContain(deadJob);
    }

    const taken = await submitImport(BODY, { idempotencyKey: key }, deps(T0 + 60_001));
    expect(taken.replayed).toBe(false);
    expect(taken.job.id).not.toBe(deadJob);
    expect((await env.storage.jobs.get(taken.job.id))?.value.status).toBe('queued');
    expect((await env.storage.idempotency.get(key))?.value.jobId).toBe(taken.job.id);

    // The key now names the new job: the same body replays it, at any time.
    const again = await submitImport(BODY, { idempotencyKey: key }, deps(T0 + 3_600_000));
    expect(again).toMatchObject({ replayed: true, job: { id: taken.job.id } });
  });

  it('is never taken over by a request with a different body', async () => {
    const key = 'abandoned-claim-2';
    const deadJob = await abandonClaim(key);
    const error = await submitImport({ ...BODY, untaggedRepositories: ['mirror/other'] }, { idempotencyKey: key }, deps(T0 + 3_600_000)).catch((e: unknown) => e);
    expect((error as IdempotencyError).code).toBe('IDEMPOTENCY_KEY_REUSED');
    expect((await env.storage.idempotency.get(key))?.value.jobId).toBe(deadJob);
  });
});
