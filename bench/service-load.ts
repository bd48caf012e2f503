/**
 * The load generator of the submission benchmark (bench/service.ts), run as a child process so
 * its CPU work does not share the host's event loop: sends `count` POST /api/imports with
 * `concurrency` requests in flight over keep-alive connections to 127.0.0.1, and reports each
 * request's latency (first byte written to last byte of the response read) and the statuses.
 *
 * Protocol: the parent sends one {@link LoadRequest} over IPC; the child answers with one
 * {@link LoadResult} and exits.
 */
import { Agent, request } from 'node:http';

export interface LoadRequest {
  /** `http://127.0.0.1:PORT/api/imports` */
  url: string;
  count: number;
  concurrency: number;
  /** The import source, e.g. `127.0.0.1:5000/bench/huge-layer:v1`. */
  source: string;
  /** Target tags are `${repository}:${tagPrefix}${i}`, distinct per request. */
  repository: string;
  tagPrefix: string;
}

export interface LoadResult {
  /** Milliseconds, in completion order. */
  latenciesMs: number[];
  statuses: Record<string, number>;
  /** First request sent to last response read. */
  wallMs: number;
  /** A few non-202 response bodies, to explain failures. */
  errors: string[];
  /** This process's CPU time over the run (user + system), ms. */
  cpuMs: number;
}

function post(agent: Agent, url: URL, body: string): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const req = request(
      url,
      { method: 'POST', agent, headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') }));
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

export async function runLoad(spec: LoadRequest): Promise<LoadResult> {
  const agent = new Agent({ keepAlive: true, maxSockets: spec.concurrency });
  const url = new URL(spec.url);
  const latenciesMs: number[] = [];
  const statuses: Record<string, number> = {};
  const errors: string[] = [];
  let next = 0;
  const cpuBefore = process.cpuUsage();
  const started = performance.now();
  const worker = async () => {
    for (;;) {
      const i = next++;
      if (i >= spec.count) return;
      const body = JSON.stringify({ source: spec.source, images: [`${spec.repository}:${spec.tagPrefix}${i}`] });
      const t = performance.now();
      let status: string;
      try {
        const response = await post(agent, url, body);
        status = String(response.status);
        if (response.status !== 202 && errors.length < 5) errors.push(`${response.status} ${response.text.slice(0, 300)}`);
      } catch (error) {
        status = 'network-error';
        if (errors.length < 5) errors.push((error as Error).message);
      }
      latenciesMs.push(performance.now() - t);
      statuses[status] = (statuses[status] ?? 0) + 1;
    }
  };
  await Promise.all(Array.from({ length: spec.concurrency }, worker));
  const wallMs = performance.now() - started;
  const cpu = process.cpuUsage(cpuBefore);
  agent.destroy();
  return { latenciesMs, statuses, wallMs, errors, cpuMs: (cpu.user + cpu.system) / 1000 };
}

if (require.main === module && process.send) {
  process.once('message', (spec: LoadRequest) => {
    runLoad(spec).then(
      (result) => process.send!(result, () => process.exit(0)),
      (error: unknown) => {
        process.stderr.write(`load generator failed: ${String(error)}\n`);
        process.exit(1);
      },
    );
  });
}
