/**
 * One blob's transfer against a scripted registry: its upload API kept in memory (sessions that
 * append what PATCH and PUT carry, a commit only when the bytes hash to the digest), with a fault
 * answered in place of any request. The copy tests drive the same state machine through real
 * registries and a fault proxy; these pin down each decision on its own: what a failed chunk
 * leads to once the registry says what it holds, when a blob starts over and how often, a
 * commit race, a registry refusing bytes on the closing PUT, a saved session picked up or
 * dropped, and mounts.
 */
import { randomBytes } from 'node:crypto';
import { transferBlob, type BlobTransfer } from '../../src/copy/blob-transfer.js';
import { CopyError } from '../../src/copy/errors.js';
import { MemoryStore } from '../../src/copy/memory-store.js';
import type { BlobCheckpoint, CheckpointStore, ProgressEvent } from '../../src/copy/types.js';
import { RegistryClient, type Descriptor } from '../../src/registry/client.js';
import { sha256 } from '../../src/registry/digest.js';
import { RegistryHosts } from '../../src/registry/hosts.js';
import { parseReference } from '../../src/registry/reference.js';
import { ScriptedServer, type ScriptedAnswer, type SeenRequest } from '../helpers/scripted-server.js';

const UPLOADS = '/v2/team/app/blobs/uploads/';
const BLOBS = '/v2/team/app/blobs/';
const RETRY = { maxAttempts: 3, baseDelayInMs: 1, maxDelayInMs: 2 };

const errorBody = (code: string) => ({ headers: { 'content-type': 'application/json' }, body: JSON.stringify({ errors: [{ code, message: code.toLowerCase() }] }) });

/** A registry's blob upload API for one repository, in memory. `fault` may answer a request first. */
class UploadRegistry {
  readonly server = new ScriptedServer();
  readonly sessions = new Map<string, Buffer>();
  /** What the repository holds, by digest. */
  readonly blobs = new Map<string, Buffer>();
  /** What another repository holds, for mounts. */
  readonly mountable = new Map<string, Buffer>();
  fault: (req: SeenRequest, n: number) => ScriptedAnswer | undefined = () => undefined;
  private next = 0;

  async start(): Promise<this> {
    await this.server.start();
    this.server.answer = (req, n) => this.fault(req, n) ?? this.answer(req);
    return this;
  }

  count(method: string, path = UPLOADS): number {
    return this.server.requests.filter((r) => r.method === method && r.path.startsWith(path)).length;
  }

  /** Appends `bytes` to session `id`, as distribution does whatever Content-Range says. */
  append(id: string, bytes: Buffer): void {
    this.sessions.set(id, Buffer.concat([this.sessions.get(id) ?? Buffer.alloc(0), bytes]));
  }

  /** The session a request is for. */
  static id(req: SeenRequest): string {
    return req.path.slice(UPLOADS.length);
  }

  answer(req: SeenRequest): ScriptedAnswer {
    if (req.method === 'POST' && req.path === UPLOADS) {
      const mount = req.query.get('mount');
      const held = mount ? this.mountable.get(mount) : undefined;
      if (mount && held) {
        this.blobs.set(mount, held);
        return { status: 201 };
      }
      const id = `s${++this.next}`;
      this.sessions.set(id, Buffer.alloc(0));
      return { status: 202, headers: { location: `${UPLOADS}${id}`, range: '0-0' } };
    }
    if (req.path.startsWith(UPLOADS)) {
      const id = UploadRegistry.id(req);
      const held = this.sessions.get(id);
      if (!held) return { status: 404, ...errorBody('BLOB_UPLOAD_UNKNOWN') };
      if (req.method === 'GET') return { status: 204, headers: { location: `${UPLOADS}${id}`, range: held.length > 0 ? `0-${held.length - 1}` : '0-0' } };
      if (req.method === 'DELETE') {
        this.sessions.delete(id);
        return { status: 204 };
      }
      this.append(id, req.body);
      const bytes = this.sessions.get(id)!;
      if (req.method === 'PATCH') return { status: 202, headers: { location: `${UPLOADS}${id}`, range: `0-${bytes.length - 1}` } };
      const digest = req.query.get('digest')!;
      if (sha256(bytes) !== digest) return { status: 400, ...errorBody('DIGEST_INVALID') };
      this.sessions.delete(id);
      this.blobs.set(digest, bytes);
      return { status: 201, headers: { 'docker-content-digest': digest } };
    }
    if (req.method === 'HEAD' && req.path.startsWith(BLOBS)) {
      const held = this.blobs.get(req.path.slice(BLOBS.length));
      return held ? { status: 200, headers: { 'content-length': String(held.length) } } : { status: 404 };
    }
    return { status: 404 };
  }
}

/** Checkpoints in a Map, as the queue worker keeps them in Tables. */
function memoryCheckpoints(): CheckpointStore & { saved: Map<string, BlobCheckpoint>; saves: number[] } {
  const saved = new Map<string, BlobCheckpoint>();
  const saves: number[] = [];
  return {
    saved,
    saves,
    load: (_target, digest) => Promise.resolve(saved.get(digest)),
    save: (checkpoint) => {
      saves.push(checkpoint.offset);
      saved.set(checkpoint.digest, checkpoint);
      return Promise.resolve();
    },
    remove: (_target, digest) => Promise.resolve(void saved.delete(digest)),
  };
}

const BYTES = randomBytes(10 * 1024);
const BLOB: Descriptor = { mediaType: 'application/vnd.oci.image.layer.v1.tar', digest: sha256(BYTES), size: BYTES.length };
const from = parseReference('memory.test/app').withRepository('app');

let registry: UploadRegistry;
let source: MemoryStore;
let events: ProgressEvent[];
beforeEach(async () => {
  registry = await new UploadRegistry().start();
  source = new MemoryStore();
  source.addBlob(from, BYTES);
  events = [];
});
afterEach(() => registry.server.stop());

function transfer(overrides: Partial<BlobTransfer> = {}): BlobTransfer {
  const targetRef = parseReference(`${registry.server.host}/team/app`).withRepository('team/app');
  return {
    source,
    sourceRef: from,
    targetRef,
    target: RegistryClient.for(targetRef.registry, new RegistryHosts({ retry: RETRY })),
    mode: 'chunked',
    chunkSize: 4096,
    mountFrom: [],
    shouldPause: () => false,
    onProgress: (event) => events.push(event),
    ...overrides,
  };
}

const failure = (promise: Promise<unknown>) => promise.then(() => undefined, (e: unknown) => e);

describe('a chunked upload', () => {
  it('sends PATCH after PATCH with a checkpoint after each, and the last chunk with the closing PUT', async () => {
    const checkpoints = memoryCheckpoints();
    expect(await transferBlob(transfer({ checkpoints }), BLOB)).toBe('copied');
    expect(registry.blobs.get(BLOB.digest)).toEqual(BYTES);
    expect(registry.server.requests.map((r) => r.method)).toEqual(['POST', 'PATCH', 'PATCH', 'PUT']);
    expect(checkpoints.saves).toEqual([4096, 8192]);
    expect(checkpoints.saved.size).toBe(0);
    const target = `${registry.server.host}/team/app`;
    expect(events).toEqual([
      { type: 'blob-start', digest: BLOB.digest, size: BLOB.size, target, offset: 0 },
      { type: 'blob-progress', digest: BLOB.digest, size: BLOB.size, target, bytesDone: 4096 },
      { type: 'blob-progress', digest: BLOB.digest, size: BLOB.size, target, bytesDone: 8192 },
      { type: 'blob-done', digest: BLOB.digest, size: BLOB.size, target, outcome: 'copied' },
    ]);
  });

  it('goes on without resending a chunk that landed though its answer was a failure', async () => {
    registry.fault = (req, n) => {
      if (req.method !== 'PATCH' || n !== 2) return undefined;
      registry.append(UploadRegistry.id(req), req.body);
      return { status: 500 };
    };
    expect(await transferBlob(transfer(), BLOB)).toBe('copied');
    expect(registry.count('PATCH')).toBe(2);
    expect(registry.count('GET')).toBe(1);
  });

  it('resends a chunk none of which landed, after a back-off, and gives up after the policy’s attempts', async () => {
    registry.fault = (req, n) => (req.method === 'PATCH' && n === 2 ? { status: 503 } : undefined);
    expect(await transferBlob(transfer(), BLOB)).toBe('copied');
    expect(registry.count('PATCH')).toBe(3);

    registry.fault = (req) => (req.method === 'PATCH' ? { status: 503 } : undefined);
    const error = await failure(transferBlob(transfer(), BLOB));
    expect(error).toBeInstanceOf(CopyError);
    expect(error).toMatchObject({ side: 'target' });
    expect(registry.count('PATCH')).toBe(3 + RETRY.maxAttempts);
  });

  it('starts the blob over when the session holds part of a chunk, or has lost it, three times at most', async () => {
    registry.fault = (req, n) => {
      if (req.method !== 'PATCH' || n !== 3) return undefined;
      registry.append(UploadRegistry.id(req), req.body.subarray(0, 100));
      return { status: 500 };
    };
    expect(await transferBlob(transfer(), BLOB)).toBe('copied');
    expect(registry.count('POST')).toBe(2);

    registry.server.requests.length = 0;
    registry.fault = (req) => {
      if (req.method !== 'PATCH') return undefined;
      registry.sessions.delete(UploadRegistry.id(req));
      return { status: 404, ...errorBody('BLOB_UPLOAD_UNKNOWN') };
    };
    const error = await failure(transferBlob(transfer(), BLOB));
    expect(error).toBeInstanceOf(CopyError);
    expect(registry.count('POST')).toBe(4);
  });

  it('finds the blob committed when the closing PUT’s answer was lost', async () => {
    registry.fault = (req) => {
      if (req.method !== 'PUT') return undefined;
      registry.answer(req);
      return { status: 500 };
    };
    expect(await transferBlob(transfer(), BLOB)).toBe('copied');
    expect(registry.count('HEAD', BLOBS)).toBe(1);
    expect(registry.count('PUT')).toBe(1);
  });

  it('takes a commit that lost a race as done when the blob is there at its size, and tries the blob again when not', async () => {
    registry.fault = (req) => {
      if (req.method !== 'PUT') return undefined;
      registry.blobs.set(BLOB.digest, BYTES);
      return { status: 400, ...errorBody('DIGEST_INVALID') };
    };
    expect(await transferBlob(transfer(), BLOB)).toBe('copied');

    registry.blobs.clear();
    registry.server.requests.length = 0;
    registry.fault = (req) => (req.method === 'PUT' ? { status: 400, ...errorBody('BLOB_UNKNOWN') } : undefined);
    const error = await failure(transferBlob(transfer(), BLOB));
    expect(error).toMatchObject({ code: 'REGISTRY_ERROR', side: 'target' });
    expect(registry.count('POST')).toBe(RETRY.maxAttempts);
  });

  it.each<[string, ScriptedAnswer]>([
    ['416', { status: 416 }],
    ['400 BLOB_UPLOAD_INVALID', { status: 400, ...errorBody('BLOB_UPLOAD_INVALID') }],
  ])('sends the last chunk by PATCH to a registry that refuses bytes on the closing PUT (%s), and remembers it', async (_, refusal) => {
    registry.fault = (req) => (req.method === 'PUT' && req.body.length > 0 ? refusal : undefined);
    const client = transfer().target;
    expect(await transferBlob(transfer({ target: client }), BLOB)).toBe('copied');
    expect(registry.server.requests.map((r) => r.method)).toEqual(['POST', 'PATCH', 'PATCH', 'PUT', 'PATCH', 'PUT']);

    registry.blobs.clear();
    registry.server.requests.length = 0;
    expect(await transferBlob(transfer({ target: client }), BLOB)).toBe('copied');
    expect(registry.server.requests.map((r) => r.method)).toEqual(['POST', 'PATCH', 'PATCH', 'PATCH', 'PUT']);
  });

  it('fails a blob whose bytes the registry refuses at every commit as INTEGRITY, on the target', async () => {
    registry.fault = (req) => (req.method === 'PUT' ? { status: 400, ...errorBody('DIGEST_INVALID') } : undefined);
    const error = await failure(transferBlob(transfer(), BLOB));
    expect(error).toMatchObject({ code: 'INTEGRITY', side: 'target', message: `the target registry rejected blob ${BLOB.digest}: its bytes do not match the digest; nothing was tagged` });
  });

  it('asks the registry what it holds after a Range that disagrees, and fails at once on a refusal no resend helps', async () => {
    registry.fault = (req, n) => {
      if (req.method !== 'PATCH' || n !== 2) return undefined;
      registry.append(UploadRegistry.id(req), req.body);
      return { status: 202, headers: { location: `${UPLOADS}${UploadRegistry.id(req)}`, range: '0-99' } };
    };
    expect(await transferBlob(transfer(), BLOB)).toBe('copied');
    expect([registry.count('PATCH'), registry.count('GET')]).toEqual([2, 1]);

    registry.server.requests.length = 0;
    registry.fault = (req) => (req.method === 'PATCH' ? { status: 400, ...errorBody('SIZE_INVALID') } : undefined);
    expect(await failure(transferBlob(transfer(), BLOB))).toBeInstanceOf(CopyError);
    expect([registry.count('PATCH'), registry.count('GET')]).toEqual([1, 0]);
  });

  it('names the target as the side of a failed status request', async () => {
    registry.fault = (req) => (req.method === 'PATCH' ? { status: 503 } : req.method === 'GET' ? { status: 403, ...errorBody('DENIED') } : undefined);
    expect(await failure(transferBlob(transfer(), BLOB))).toMatchObject({ code: 'AUTH_FAILED', side: 'target' });
  });

  it('cancels the session and drops its checkpoint when the source serves other bytes', async () => {
    // A descriptor one byte longer than the blob: the source stream ends short of it.
    const longer = { ...BLOB, size: BLOB.size + 1 };
    const checkpoints = memoryCheckpoints();
    const error = await failure(transferBlob(transfer({ checkpoints }), longer));
    expect(error).toMatchObject({ code: 'INTEGRITY', side: 'source' });
    expect(registry.count('DELETE')).toBe(1);
    expect(registry.sessions.size).toBe(0);
    expect(registry.blobs.size).toBe(0);
    expect(checkpoints.saved.size).toBe(0);
  });
});

describe('a saved upload', () => {
  /** A session holding the first `held` bytes, and a checkpoint saying `offset`. */
  function saved(held: number, offset: number) {
    registry.sessions.set('saved', BYTES.subarray(0, held));
    const checkpoints = memoryCheckpoints();
    checkpoints.saved.set(BLOB.digest, { target: `${registry.server.host}/team/app`, digest: BLOB.digest, size: BLOB.size, location: `${registry.server.url}${UPLOADS}saved`, offset, chunkSize: 4096, updatedAt: '2026-12-01T00:00:00.000Z' });
    return checkpoints;
  }

  it('resumes where the registry is, even past the checkpoint', async () => {
    const checkpoints = saved(8192, 4096);
    expect(await transferBlob(transfer({ checkpoints }), BLOB)).toBe('copied');
    expect(registry.server.requests.map((r) => r.method)).toEqual(['GET', 'PUT']);
    expect(events[0]).toMatchObject({ type: 'blob-start', offset: 8192 });
  });

  it('closes a session that already holds every byte, sending none', async () => {
    const checkpoints = saved(BYTES.length, 8192);
    expect(await transferBlob(transfer({ checkpoints }), BLOB)).toBe('copied');
    expect(registry.server.requests.map((r) => [r.method, r.body.length])).toEqual([
      ['GET', 0],
      ['PUT', 0],
    ]);
    expect(checkpoints.saved.size).toBe(0);
  });

  it('starts over when the registry holds less than the checkpoint, cancelling the session', async () => {
    const checkpoints = saved(2048, 4096);
    expect(await transferBlob(transfer({ checkpoints }), BLOB)).toBe('copied');
    expect(registry.server.requests.map((r) => r.method)).toEqual(['GET', 'DELETE', 'POST', 'PATCH', 'PATCH', 'PUT']);
  });

  it('starts over, the checkpoint dropped, when the registry lost the session', async () => {
    const checkpoints = saved(4096, 4096);
    registry.sessions.clear();
    expect(await transferBlob(transfer({ checkpoints }), BLOB)).toBe('copied');
    expect(registry.server.requests.map((r) => r.method)).toEqual(['GET', 'POST', 'PATCH', 'PATCH', 'PUT']);
  });
});

describe('a monolithic upload', () => {
  it('starts the blob over when its one streaming PUT is cut', async () => {
    registry.fault = (req, n) => (req.method === 'PUT' && n === 2 ? 'drop' : undefined);
    expect(await transferBlob(transfer({ mode: 'monolithic' }), BLOB)).toBe('copied');
    expect(registry.server.requests.map((r) => r.method)).toEqual(['POST', 'PUT', 'POST', 'PUT']);
    expect(registry.blobs.get(BLOB.digest)).toEqual(BYTES);
  });
});

describe('a monolithic commit', () => {
  it('counts as done when its answer was lost but the blob is there at its size', async () => {
    registry.fault = (req) => {
      if (req.method !== 'PUT') return undefined;
      registry.answer(req);
      return { status: 500 };
    };
    expect(await transferBlob(transfer({ mode: 'monolithic' }), BLOB)).toBe('copied');
    expect([registry.count('POST'), registry.count('HEAD', BLOBS)]).toEqual([1, 1]);
  });

  it('that lost a race is tried again, up to the policy’s attempts; any other refusal fails at once', async () => {
    registry.fault = (req) => (req.method === 'PUT' ? { status: 404, ...errorBody('BLOB_UPLOAD_UNKNOWN') } : undefined);
    expect(await failure(transferBlob(transfer({ mode: 'monolithic' }), BLOB))).toBeInstanceOf(CopyError);
    expect(registry.count('POST')).toBe(RETRY.maxAttempts);

    registry.server.requests.length = 0;
    registry.fault = (req) => (req.method === 'PUT' ? { status: 400, ...errorBody('BLOB_UPLOAD_INVALID') } : undefined);
    expect(await failure(transferBlob(transfer({ mode: 'monolithic' }), BLOB))).toMatchObject({ code: 'REGISTRY_ERROR', side: 'target' });
    expect([registry.count('POST'), registry.count('HEAD', BLOBS)]).toEqual([1, 0]);
  });

  it('starts over when refused for its token (the new POST fetches a fresh one)', async () => {
    registry.fault = (req, n) => (req.method === 'PUT' && n === 2 ? { status: 401 } : undefined);
    expect(await transferBlob(transfer({ mode: 'monolithic' }), BLOB)).toBe('copied');
    expect(registry.server.requests.map((r) => r.method)).toEqual(['POST', 'PUT', 'POST', 'PUT']);
  });
});

describe('mounts', () => {
  it('count a blob another repository holds as mounted', async () => {
    registry.mountable.set(BLOB.digest, BYTES);
    expect(await transferBlob(transfer({ mountFrom: ['other/app'] }), BLOB)).toBe('mounted');
    expect(events).toEqual([{ type: 'blob-done', digest: BLOB.digest, size: BLOB.size, target: `${registry.server.host}/team/app`, outcome: 'mounted' }]);
  });

  it('refuse a mounted blob held at another size than the descriptor claims', async () => {
    registry.mountable.set(BLOB.digest, BYTES.subarray(0, 100));
    const error = await failure(transferBlob(transfer({ mountFrom: ['other/app'] }), BLOB));
    expect(error).toMatchObject({ code: 'INTEGRITY', side: 'source' });
    expect((error as Error).message).toBe(`blob ${BLOB.digest}: the target ${registry.server.host}/team/app holds 100 bytes of it, but its descriptor claims ${BLOB.size} bytes; nothing was tagged`);
  });

  it('declined, leave only the last session open, and upload through it', async () => {
    expect(await transferBlob(transfer({ mountFrom: ['one/app', 'two/app'] }), BLOB)).toBe('copied');
    const posts = registry.server.requests.filter((r) => r.method === 'POST').map((r) => r.query.get('from'));
    expect(posts).toEqual(['one/app', 'two/app']);
    expect(registry.count('DELETE')).toBe(1);
    expect(registry.server.requests.find((r) => r.method === 'DELETE')?.path).toBe(`${UPLOADS}s1`);
  });
});
