/**
 * toStatusDocument field by field, for a finished job of each kind: every optional field shown
 * when set and absent when not, and nothing stored (lease, credentials, delivery count) leaked.
 * (Surviving mutants showed the optional fields of finished jobs unchecked.) A running job whose
 * worker died says so, with when its lease expired, instead of a plain `running`.
 */
import { newJobRecord, type JobRecord } from '../../src/jobs/job-record.js';
import { toStatusDocument } from '../../src/jobs/status-document.js';

const DIGEST = `sha256:${'a'.repeat(64)}`;
const CHILD = `sha256:${'b'.repeat(64)}`;

function queued(): JobRecord {
  return newJobRecord({ id: 'job1', source: 'docker.io/library/alpine:3', targets: [{ reference: 'reg.example/alpine:3', tagged: true }, { reference: 'reg.example/mirror', tagged: false }], force: true, platforms: ['linux/amd64'], referrers: true, sealedCredentials: 'v1.sealed', now: new Date('2026-01-01T00:00:00Z') });
}

describe('toStatusDocument', () => {
  it('shows a queued job with no optional field', () => {
    expect(toStatusDocument(queued())).toStrictEqual({
      id: 'job1',
      status: 'queued',
      source: { reference: 'docker.io/library/alpine:3' },
      targets: [
        { reference: 'reg.example/alpine:3', tagged: true },
        { reference: 'reg.example/mirror', tagged: false },
      ],
      options: { force: true, platforms: ['linux/amd64'], referrers: true, allowNondistributableArtifacts: false },
      manifests: [],
      manifestCounts: { total: 0, written: 0 },
      percentComplete: 0,
      progress: { blobs: { total: 0, done: 0, skipped: 0, mounted: 0 }, bytes: { total: 0, done: 0 } },
      attempts: 0,
      continuations: 0,
      createdAt: '2026-01-01T00:00:00.000Z',
      updatedAt: '2026-01-01T00:00:00.000Z',
    });
  });

  it('shows every field a succeeded job has, and nothing of its lease or delivery', () => {
    const record: JobRecord = {
      ...queued(),
      status: 'succeeded',
      sourceDigest: DIGEST,
      sourceMediaType: 'application/vnd.oci.image.index.v1+json',
      targetDigest: DIGEST,
      targets: [
        { reference: 'reg.example/alpine:3', tagged: true, digest: DIGEST, written: false },
        { reference: 'reg.example/mirror', tagged: false, digest: DIGEST },
      ],
      manifests: [
        { digest: DIGEST, mediaType: 'application/vnd.oci.image.index.v1+json', written: true },
        { digest: CHILD, mediaType: 'application/vnd.oci.image.manifest.v1+json', platform: 'linux/amd64', written: false },
      ],
      progress: { blobs: { total: 3, done: 3, skipped: 1, mounted: 1 }, bytes: { total: 30, done: 30 } },
      attempts: 2,
      continuations: 1,
      startedAt: '2026-01-01T00:00:01.000Z',
      completedAt: '2026-01-01T00:00:09.000Z',
      updatedAt: '2026-01-01T00:00:09.000Z',
      lastError: { code: 'REGISTRY_ERROR', message: 'source registry error: 503', at: '2026-01-01T00:00:05.000Z' },
      deliveryDequeueCount: 2,
      leaseOwner: 'worker',
      leaseExpiresAt: '2026-01-01T00:01:00.000Z',
    };
    expect(toStatusDocument(record)).toStrictEqual({
      id: 'job1',
      status: 'succeeded',
      source: { reference: 'docker.io/library/alpine:3', digest: DIGEST, mediaType: 'application/vnd.oci.image.index.v1+json' },
      targets: [
        { reference: 'reg.example/alpine:3', tagged: true, digest: DIGEST, written: false },
        { reference: 'reg.example/mirror', tagged: false, digest: DIGEST },
      ],
      options: { force: true, platforms: ['linux/amd64'], referrers: true, allowNondistributableArtifacts: false },
      manifests: [
        { digest: DIGEST, mediaType: 'application/vnd.oci.image.index.v1+json', written: true },
        { digest: CHILD, mediaType: 'application/vnd.oci.image.manifest.v1+json', platform: 'linux/amd64', written: false },
      ],
      manifestCounts: { total: 2, written: 1 },
      percentComplete: 100,
      progress: { blobs: { total: 3, done: 3, skipped: 1, mounted: 1 }, bytes: { total: 30, done: 30 } },
      attempts: 2,
      continuations: 1,
      createdAt: '2026-01-01T00:00:00.000Z',
      updatedAt: '2026-01-01T00:00:09.000Z',
      startedAt: '2026-01-01T00:00:01.000Z',
      completedAt: '2026-01-01T00:00:09.000Z',
      lastError: { code: 'REGISTRY_ERROR', message: 'source registry error: 503', at: '2026-01-01T00:00:05.000Z' },
    });
  });

  it('shows the error of a failed job, with its code and message only', () => {
    const failed: JobRecord = { ...queued(), status: 'failed', completedAt: '2026-01-01T00:00:09.000Z', error: Object.assign({ code: 'AUTH_FAILED', message: 'authentication failed on the source' }, { stack: 'internal' }) };
    const document = toStatusDocument(failed);
    expect(document.error).toEqual({ code: 'AUTH_FAILED', message: 'authentication failed on the source' });
    expect(document.completedAt).toBe('2026-01-01T00:00:09.000Z');
    expect(document).not.toHaveProperty('startedAt');
    expect(document).not.toHaveProperty('lastError');
  });

  it('copies what it shows: changing the document leaves the record alone', () => {
    const record = queued();
    const document = toStatusDocument(record);
    document.options.platforms.push('linux/arm64');
    document.progress.blobs.done = 9;
    expect(record.platforms).toEqual(['linux/amd64']);
    expect(record.progress.blobs.done).toBe(0);
  });
});

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

  describe('while it runs: percentComplete, the rate and an ETA', () => {
    const NOW = Date.parse('2026-01-01T00:10:00.000Z');
    function running(rate?: { bytesPerSecond: number; measuredAt: string }): JobRecord {
      return {
        ...queued(),
        status: 'running',
        startedAt: '2026-01-01T00:01:00.000Z',
        progress: { blobs: { total: 2, done: 1, skipped: 0, mounted: 0 }, bytes: { total: 1000, done: 400 }, ...(rate && { rate }) },
      };
    }

    it('shows the measured rate and when the bytes left would be done at it', () => {
      const doc = toStatusDocument(running({ bytesPerSecond: 100, measuredAt: '2026-01-01T00:09:55.000Z' }), NOW);
      expect(doc.percentComplete).toBe(40);
      // 600 bytes left at 100 B/s: 6 s after the measurement.
      expect(doc.progress).toStrictEqual({ blobs: { total: 2, done: 1, skipped: 0, mounted: 0 }, bytes: { total: 1000, done: 400 }, bytesPerSecond: 100, estimatedCompletionAt: '2026-01-01T00:10:01.000Z' });
    });

    it.each([
      ['no rate measured yet', running(), undefined],
      ['a rate measured over 30 s ago (nothing moves now)', running({ bytesPerSecond: 100, measuredAt: '2026-01-01T00:09:29.000Z' }), undefined],
    ])('shows neither rate nor ETA with %s', (_, record) => {
      const doc = toStatusDocument(record, NOW);
      expect(doc.progress).not.toHaveProperty('bytesPerSecond');
      expect(doc.progress).not.toHaveProperty('estimatedCompletionAt');
      expect(doc.progress).not.toHaveProperty('rate');
    });

    it('shows a zero rate with no ETA, rather than an infinite one', () => {
      const doc = toStatusDocument(running({ bytesPerSecond: 0, measuredAt: '2026-01-01T00:09:59.000Z' }), NOW);
      expect(doc.progress.bytesPerSecond).toBe(0);
      expect(doc.progress).not.toHaveProperty('estimatedCompletionAt');
    });

    it('shows no rate once the job ended, nor for a worker that died', () => {
      const rate = { bytesPerSecond: 100, measuredAt: '2026-01-01T00:09:59.000Z' };
      const failed = toStatusDocument({ ...running(rate), status: 'failed', completedAt: '2026-01-01T00:10:00.000Z', error: { code: 'X', message: 'x' } }, NOW);
      expect(failed.progress).not.toHaveProperty('bytesPerSecond');
      const lost = toStatusDocument({ ...running(rate), leaseOwner: 'w', leaseExpiresAt: '2026-01-01T00:09:59.500Z' }, NOW);
      expect(lost.workerLost).toBeDefined();
      expect(lost.progress).not.toHaveProperty('bytesPerSecond');
    });

    it('never says 100 before the job succeeded', () => {
      const record = running();
      record.progress.bytes.done = 1000;
      expect(toStatusDocument(record, NOW).percentComplete).toBe(99);
      expect(toStatusDocument({ ...record, status: 'succeeded' }, NOW).percentComplete).toBe(100);
    });
  });
});
