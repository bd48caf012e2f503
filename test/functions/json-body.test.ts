import { HttpRequest, type HttpRequestInit } from '@azure/functions';
import { HttpError } from '../../src/functions/http-errors.js';
import { MAX_BODY_BYTES, readJsonBody } from '../../src/functions/json-body.js';

const CHUNK = 16 * 1024;

/**
 * A POST whose body is produced on demand, chunk by chunk, like a chunked upload with no
 * Content-Length; `pulled()` says how many bytes the reader asked for.
 */
function streamedRequest(totalBytes: number): { request: HttpRequest; pulled: () => number } {
  let produced = 0;
  const body = new ReadableStream<Uint8Array>({
    pull(controller) {
      if (produced >= totalBytes) return controller.close();
      const size = Math.min(CHUNK, totalBytes - produced);
      produced += size;
      controller.enqueue(new Uint8Array(size).fill(0x20));
    },
  });
  const nativeRequest = new Request('http://localhost:7071/api/imports', {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'transfer-encoding': 'chunked' },
    body,
    duplex: 'half',
  } as RequestInit);
  // The same construction the local host and the Functions worker use for a streamed body.
  const request = new HttpRequest({ nativeRequest } as HttpRequestInit & { nativeRequest: Request });
  return { request, pulled: () => produced };
}

describe('readJsonBody', () => {
  it('stops reading a chunked body just past 64 KiB and answers 413', async () => {
    const { request, pulled } = streamedRequest(32 * 1024 * 1024);
    const error = await readJsonBody(request).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(HttpError);
    expect((error as HttpError).status).toBe(413);
    expect((error as HttpError).code).toBe('PAYLOAD_TOO_LARGE');
    expect((error as HttpError).message).toMatch(/at most 65536 bytes/);
    // The limit, the chunk that crossed it, and at most one chunk read ahead.
    expect(pulled()).toBeLessThanOrEqual(MAX_BODY_BYTES + 2 * CHUNK);
  });

  it('reads a body of exactly 64 KiB in full', async () => {
    const { request } = streamedRequest(MAX_BODY_BYTES);
    // 64 KiB of spaces is read whole, then refused as empty JSON, not as too large.
    await expect(readJsonBody(request)).rejects.toMatchObject({ code: 'INVALID_JSON' });
  });
});
