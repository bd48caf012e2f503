/**
 * What Hoist shows of another host's error body: an OCI error JSON's code and a cut, cleaned
 * message; nothing of any other body (plain text, XML), whether it comes from the registry or
 * its token realm. The peers are scripted loopback servers: no real registry answers 403 in
 * plain text or XML on cue.
 */
import { RegistryHosts } from '../../src/registry/hosts.js';
import { anonymous } from '../../src/registry/credentials.js';
import { randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { copy, CopyError } from '../../src/copy/index.js';
import { newJobId } from '../../src/jobs/job-id.js';
import { newJobRecord } from '../../src/jobs/job-record.js';
import { describeFailure } from '../../src/jobs/run-import.js';
import { toStatusDocument } from '../../src/jobs/status-document.js';
import { RegistryError } from '../../src/registry/errors.js';
import { RegistryClient } from '../../src/registry/client.js';
import { parseReference, type Reference } from '../../src/registry/reference.js';
import { DEFAULT_RETRY } from '../../src/registry/retry.js';
import { Transport } from '../../src/registry/transport.js';
import { requireBuild, runHoist, tempHome } from '../cli/support.js';

type Handler = (req: IncomingMessage, res: ServerResponse, origin: string) => void;

const servers: Server[] = [];
afterAll(async () => {
  await Promise.all(servers.map((s) => new Promise((resolve) => s.close(resolve))));
});

/** A loopback HTTP server answering every request with `handler`; resolves with its host:port. */
async function scripted(handler: Handler): Promise<string> {
  const server = createServer((req, res) => {
    req.resume();
    handler(req, res, `http://127.0.0.1:${(server.address() as AddressInfo).port}`);
  });
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return `127.0.0.1:${(server.address() as AddressInfo).port}`;
}

const marker = (label: string) => `${label}-${randomBytes(6).toString('hex')}`;
const TEXT_BODY = marker('plain-text-body');
const XML_BODY = marker('xml-body');
const xml = (text: string) => `<?xml version="1.0" encoding="utf-8"?><Error><Code>AuthorizationFailure</Code><Message>${text}</Message></Error>`;

const answer = (status: number, type: string, body: string): Handler => (_req, res) => {
  res.writeHead(status, { 'content-type': type }).end(body);
};

/** A registry that sends every request to its token realm, which answers with `realm`. */
const tokenRealm = (realm: Handler): Handler => (req, res, origin) => {
  if (req.url?.startsWith('/token')) return realm(req, res, origin);
  res.writeHead(401, { 'www-authenticate': `Bearer realm="${origin}/token",service="scripted"`, 'content-type': 'application/json' }).end('{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}');
};

/** Copies from the scripted source and returns the failure as the worker records it, and as the status document shows it. */
async function failedCopy(sourceHost: string): Promise<{ error: CopyError; recorded: string }> {
  const error = await copy({ source: parseReference(`${sourceHost}/team/app:v1`), targets: [parseReference('127.0.0.1:9/team/app:v1')] }).then(
    () => {
      throw new Error('the copy succeeded');
    },
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(CopyError);
  const failure = describeFailure(error, []);
  const job = newJobRecord({ id: newJobId(), source: `${sourceHost}/team/app:v1`, targets: [], force: false, platforms: [], referrers: false });
  const document = toStatusDocument({ ...job, status: 'failed', error: failure });
  return { error: error as CopyError, recorded: JSON.stringify(document) };
}

describe('error bodies from other hosts', () => {
  it.each([
    ['a registry answering 403 in plain text', () => answer(403, 'text/plain; charset=utf-8', `${TEXT_BODY}\nsecond line`), TEXT_BODY, /HTTP 403 with a text\/plain body \(not shown\)/],
    ['a registry answering 403 in XML (Azurite)', () => answer(403, 'application/xml', xml(XML_BODY)), XML_BODY, /HTTP 403 with an application\/xml body \(not shown\)/],
    ['a token realm answering 403 in plain text', () => tokenRealm(answer(403, 'text/plain', TEXT_BODY)), TEXT_BODY, /token service refused/],
    ['a token realm answering 403 in XML', () => tokenRealm(answer(403, 'application/xml', xml(XML_BODY))), XML_BODY, /token service refused/],
  ])('%s: the error names the status, not the body', async (_name, handler, body, summary) => {
    const host = await scripted(handler());
    const { error, recorded } = await failedCopy(host);
    expect(error.code).toBe('AUTH_FAILED');
    expect(error.message).toMatch(summary);
    expect(error.message).not.toContain(body);
    expect(recorded).not.toContain(body);
    expect(recorded).not.toContain('AuthorizationFailure');
  });

  it.each([
    ['plain text', 'text/plain', TEXT_BODY, /the token realm http:\/\/127\.0\.0\.1:\d+\/token answered a text\/plain body, not a JSON token response/],
    ['HTML', 'text/html; charset=utf-8', `<html><body>${TEXT_BODY}</body></html>`, /answered a text\/html body, not a JSON token response/],
    ['XML', 'application/xml', xml(XML_BODY), /answered an application\/xml body, not a JSON token response/],
  ])('a token realm answering 200 with %s is an UNAUTHORIZED registry error naming the realm', async (_name, type, body, message) => {
    const host = await scripted(tokenRealm(answer(200, type, body)));
    const { error, recorded } = await failedCopy(host);
    expect(error.code).toBe('AUTH_FAILED');
    expect((error.cause as { code?: string }).code).toBe('UNAUTHORIZED');
    expect(error.message).toMatch(message);
    expect(error.message).not.toMatch(/JSON at position|Unexpected token|is not valid JSON/);
    expect(recorded).not.toContain(TEXT_BODY);
    expect(recorded).not.toContain(XML_BODY);
  });

  it("keeps an OCI error JSON's code and a cut message without control characters, never its detail", async () => {
    const detail = marker('detail');
    const long = 'y'.repeat(1000);
    const host = await scripted(
      answer(404, 'application/json', JSON.stringify({ errors: [{ code: 'MANIFEST_UNKNOWN', message: `first line\nsecond\u001b[31m red\u0007 ${long}`, detail: { secret: detail } }] })),
    );
    const { error, recorded } = await failedCopy(host);
    expect(error.code).toBe('SOURCE_NOT_FOUND');
    expect(error.message).toMatch(/MANIFEST_UNKNOWN \(HTTP 404\) on GET .*: first line second \[31m red y+…/);
    // eslint-disable-next-line no-control-regex -- the point of the check
    expect(error.message).not.toMatch(/[\u0000-\u001f\u007f]/);
    expect(error.message).not.toContain('y'.repeat(201));
    expect(recorded).not.toContain(detail);
    expect(recorded).not.toContain('y'.repeat(201));
  });

  it.each([403, 404, 500])('keeps the query (upload _state, storage signatures) out of the URL of a %i error', async (status) => {
    const state = marker('state-secret');
    const host = await scripted(answer(status, 'application/json', '{"errors":[{"code":"DENIED","message":"no"}]}'));
    const transport = new Transport(host, host, anonymous, { ...DEFAULT_RETRY, maxAttempts: 1 });
    const error = await transport
      .send({ method: 'PATCH', url: new URL(`http://${host}/v2/team/app/blobs/uploads/u1?_state=${state}&sig=${state}`), scopes: [], reference: `${host}/team/app`, expect: [202] })
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(RegistryError);
    expect((error as RegistryError).url).toBe(`http://${host}/v2/team/app/blobs/uploads/u1`);
    expect(JSON.stringify({ ...(error as RegistryError), message: (error as RegistryError).message })).not.toContain(state);
  });

  it.each([
    ['a tag list', (client: RegistryClient, ref: Reference) => client.listTags(ref)],
    ['a referrers index', (client: RegistryClient, ref: Reference) => client.referrers(ref, `sha256:${'a'.repeat(64)}`)],
  ])('%s that is not JSON is an UNEXPECTED_RESPONSE naming the content type, not quoting the body', async (_name, ask) => {
    const host = await scripted(answer(200, 'application/vnd.oci.image.index.v1+json', `<html>${TEXT_BODY}</html>`));
    const ref = parseReference(`${host}/team/app:v1`);
    const error = await ask(RegistryClient.for(ref.registry, new RegistryHosts()), ref).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(RegistryError);
    expect((error as RegistryError).code).toBe('UNEXPECTED_RESPONSE');
    expect((error as RegistryError).message).toMatch(/expected JSON, got an application\/vnd\.oci\.image\.index\.v1\+json body that does not parse/);
    expect((error as RegistryError).message).not.toContain(TEXT_BODY);
  });

  it('the CLI prints neither body', async () => {
    requireBuild();
    const home = await tempHome();
    try {
      for (const handler of [answer(403, 'text/plain', TEXT_BODY), tokenRealm(answer(403, 'application/xml', xml(XML_BODY)))]) {
        const host = await scripted(handler);
        const run = await runHoist(['copy', `${host}/team/app:v1`, '127.0.0.1:9/team/app:v1'], home);
        expect(run.code).toBe(3);
        expect(run.all).toMatch(/hoist: (access denied|authentication failed) on the source/);
        expect(run.all).not.toContain(TEXT_BODY);
        expect(run.all).not.toContain(XML_BODY);
      }
    } finally {
      await home.cleanup();
    }
  });
});
