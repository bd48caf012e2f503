/**
 * FIXTURE: an Application Insights ingestion endpoint ("Breeze") on loopback, over HTTPS (the
 * exporter always sends to https, whatever the connection string says). The Azure Monitor
 * exporter POSTs a JSON array of envelopes to `{IngestionEndpoint}/v2.1/track` (gzip when it
 * says so in Content-Encoding); the service answers `{itemsReceived, itemsAccepted, errors}`.
 * Keeps every body as received, raw text included, so tests can look at customDimensions
 * (`data.baseData.properties`) and scan what left the process.
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { Agent, createServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { gunzipSync } from 'node:zlib';
import { makeCertificates } from './certificates.js';

/** One telemetry item as the ingestion service receives it. */
export interface Envelope {
  name: string;
  iKey: string;
  time: string;
  data: { baseType: string; baseData: { message?: string; severityLevel?: string; properties?: Record<string, string> } };
}

export interface IngestionFixture {
  /** A connection string pointing the exporter here. */
  connectionString: string;
  /** An HTTPS agent trusting the fixture's test CA, for the exporter. */
  agent: Agent;
  /** The test CA's PEM file, for a child process's NODE_EXTRA_CA_CERTS. */
  caPath: string;
  /** Every envelope received, in order. */
  envelopes: Envelope[];
  /** Every request body as text. */
  bodies: string[];
  stop(): Promise<void>;
}

/** Largest body kept: the exporter batches at most a few hundred small items. */
const MAX_BODY_BYTES = 16 * 1024 * 1024;

export async function startIngestionFixture(): Promise<IngestionFixture> {
  const envelopes: Envelope[] = [];
  const bodies: string[] = [];
  const directory = await mkdtemp(path.join(tmpdir(), 'hoist-ingestion-'));
  const certificates = await makeCertificates(directory, 'ingestion.test');
  const agent = new Agent({ ca: await readFile(certificates.caPath, 'utf8') });
  const server = createServer({ key: certificates.key, cert: certificates.cert }, (request, response) => {
    const chunks: Buffer[] = [];
    let size = 0;
    request.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > MAX_BODY_BYTES) request.destroy();
      else chunks.push(chunk);
    });
    request.on('end', () => {
      if (request.method !== 'POST' || !request.url?.startsWith('/v2.1/track')) {
        response.writeHead(404).end();
        return;
      }
      let raw = Buffer.concat(chunks);
      if (request.headers['content-encoding'] === 'gzip') raw = gunzipSync(raw);
      const text = raw.toString('utf8');
      bodies.push(text);
      const items = JSON.parse(text) as Envelope[];
      envelopes.push(...items);
      response.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ itemsReceived: items.length, itemsAccepted: items.length, errors: [] }));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    connectionString: `InstrumentationKey=00000000-0000-4000-8000-000000000001;IngestionEndpoint=https://127.0.0.1:${port}/`,
    agent,
    caPath: certificates.caPath,
    envelopes,
    bodies,
    stop: async () => {
      agent.destroy();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await rm(directory, { recursive: true, force: true });
    },
  };
}
