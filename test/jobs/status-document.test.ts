/**
 * The status document tells what a caller needs and nothing secret: a running job whose worker
 * died says so, with when its lease expired, instead of a plain `running`.
 */
import { newJobRecord, type JobRecord } from '../../src/jobs/job-record.js';
import { toStatusDocument } from '../../src/jobs/status-document.js';

function running(overrides: Partial<JobRecord>): JobRecord {
  const job = newJobRecord({ id: 'job-1', source: 'docker.io/library/alpine:3', targets: [{ reference: 'localhost:5000/alpine:3', tagged: true }], force: false, platforms: [], referrers: false, sealedCredentials: 'sealed-secret' });
  return { ...job, status: 'running', attempts: 1, ...overrides };
}

describe('status document', () => {
  it('shows a worker lost, and when, once a running job\'s lease has expired unreleased', () => {
    const expired = new Date(Date.now() - 60_000).toISOString();
    const doc = toStatusDocument(running({ leaseOwner: 'invocation-1/abc', leaseExpiresAt: expired }));
    expect(doc.status).toBe('running');
    expect(doc.workerLost).toEqual({ leaseExpiredAt: expired, message: expect.stringContaining(`lease expired at ${expired}`) });
    // Never the lease owner or the sealed credentials.
    expect(JSON.stringify(doc)).not.toContain('invocation-1');
    expect(JSON.stringify(doc)).not.toContain('sealed-secret');
  });

  it.each([
    ['a live lease', { leaseOwner: 'w', leaseExpiresAt: new Date(Date.now() + 60_000).toISOString() }],
    ['a released lease (paused between continuations)', {}],
    ['a finished job', { status: 'succeeded' as const, leaseOwner: 'w', leaseExpiresAt: new Date(0).toISOString() }],
  ])('says nothing of the worker with %s', (_, overrides) => {
    expect(toStatusDocument(running(overrides)).workerLost).toBeUndefined();
  });
});
