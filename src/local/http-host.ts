/**
 * The local host's HTTP front end: serves HTTP-triggered functions at `/<routePrefix>/<route>`
 * (default `/api`), the Event Grid webhook, and 404 for everything else. It listens on loopback
 * only (127.0.0.1 and, where available, ::1), so `http://localhost:PORT` works whichever address
 * `localhost` resolves to first, and nothing is exposed to the network.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { FunctionDefinition } from '../functions/definition.js';
import { EVENT_GRID_WEBHOOK_PATH, handleEventGridWebhook, MAX_DELIVERY_BYTES, readBoundedBody, type EventGridDefinition } from './event-grid-webhook.js';
import { isAuthorized, presentedKey } from './function-keys.js';
import { toHttpRequest, writeError, writeHttpResponse } from './http-conversion.js';
import type { InvocationRunner } from './invocation-runner.js';
import { describeError } from './invocation-runner.js';
import type { HostLogger } from './logger.js';
import { compareRoutePrecedence, parseRouteTemplate, type RouteTemplate } from './route-template.js';

/** A definition with an HTTP trigger. */
export type HttpDefinition = Extract<FunctionDefinition, { trigger: { type: 'http' } }>;

/** Options for {@link HttpHost.listen}. */
export interface HttpHostOptions {
  http: readonly HttpDefinition[];
  eventGrid: ReadonlyMap<string, EventGridDefinition>;
  /** HOIST_API_KEY, or undefined to enforce no keys. */
  apiKey: string | undefined;
  /** host.json `extensions.http.routePrefix`. */
  routePrefix: string;
  /** The port; 0 picks a free one (tests). */
  port: number;
  runner: InvocationRunner;
  logger: HostLogger;
  /**
   * Starts a non-HTTP function at once with the body's `input` (undefined when none), for
   * `POST /admin/functions/{name}`.
   */
  runFunction?: (name: string, input: string | undefined) => AdminRun;
}

/**
 * What became of `POST /admin/functions/{name}`: the run started, no function of that name can be
 * run this way, or the function cannot take the input (why, for the 400).
 */
export type AdminRun = 'started' | 'not-found' | { invalidInput: string };

/** Where the Functions host lets an administrator run a function on demand. */
export const ADMIN_FUNCTIONS_PATH = '/admin/functions/';

interface Route {
  template: RouteTemplate;
  definition: HttpDefinition;
}

/** A running HTTP front end. */
export class HttpHost {
  private constructor(
    private readonly servers: Server[],
    /** The port it listens on. */
    readonly port: number,
    /** One promise per request received and not yet answered (settled when its response closes). */
    private readonly inFlight: Set<Promise<void>>,
  ) {}

  /** The base URL, e.g. `http://localhost:7071`. */
  get url(): string {
    return `http://localhost:${this.port}`;
  }

  /**
   * Starts listening.
   *
   * @throws Error when the port is taken (EADDRINUSE on 127.0.0.1) or a route template is invalid.
   */
  static async listen(options: HttpHostOptions): Promise<HttpHost> {
    const routes: Route[] = options.http
      .map((definition) => ({ template: parseRouteTemplate(definition.trigger.route || definition.name), definition }))
      .sort((a, b) => compareRoutePrecedence(a.template, b.template));
    let port = options.port;
    const inFlight = new Set<Promise<void>>();
    const handle = (req: IncomingMessage, res: ServerResponse) => {
      const answered = new Promise<void>((resolve) => res.once('close', resolve));
      inFlight.add(answered);
      void answered.then(() => inFlight.delete(answered));
      void dispatch(req, res, port, routes, options).catch((error: unknown) => {
        options.logger.log('error', 'host', `HTTP ${req.method} ${pathOf(req)} failed:`, describeError(error));
        if (!res.headersSent) writeError(res, 500, 'INTERNAL_ERROR', 'the host failed to answer this request; the error is in its log');
        else res.destroy();
      });
    };
    const primary = createServer(handle);
    port = await listenOn(primary, '127.0.0.1', port);
    const servers = [primary];
    // Best effort: a machine without IPv6 loopback simply serves 127.0.0.1.
    const secondary = createServer(handle);
    try {
      await listenOn(secondary, '::1', port);
      servers.push(secondary);
    } catch {
      secondary.close();
    }
    return new HttpHost(servers, port, inFlight);
  }

  /** Stops accepting connections and closes idle keep-alive ones; in-flight requests go on. */
  stopAccepting(): Promise<void> {
    const closed = Promise.all(this.servers.map((s) => new Promise<void>((resolve) => s.close(() => resolve()))));
    for (const server of this.servers) server.closeIdleConnections();
    return closed.then(() => undefined);
  }

  /**
   * Waits until every request received so far has its response written, or until `deadline`
   * (epoch ms). A handler's invocation ends before its response is written, so waiting for the
   * invocations alone would cut responses on their way out.
   */
  async drain(deadline: number): Promise<void> {
    while (this.inFlight.size > 0) {
      const left = deadline - Date.now();
      if (left <= 0) return;
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([Promise.all(this.inFlight), new Promise((resolve) => (timer = setTimeout(resolve, left)))]);
      clearTimeout(timer);
    }
  }

  /** Cuts every remaining connection, for when the shutdown grace period is over. */
  closeAllConnections(): void {
    for (const server of this.servers) server.closeAllConnections();
  }
}

function listenOn(server: Server, host: string, port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve((server.address() as AddressInfo).port);
    });
  });
}

async function dispatch(req: IncomingMessage, res: ServerResponse, port: number, routes: readonly Route[], options: HttpHostOptions): Promise<void> {
  const url = requestUrl(req, port);
  if (url.pathname.toLowerCase() === EVENT_GRID_WEBHOOK_PATH) {
    await handleEventGridWebhook(req, res, url, { functions: options.eventGrid, apiKey: options.apiKey, runner: options.runner });
    return;
  }
  if (url.pathname.toLowerCase().startsWith(ADMIN_FUNCTIONS_PATH)) {
    await runAdminFunction(req, res, url, options);
    return;
  }
  const routePath = stripPrefix(url.pathname, options.routePrefix);
  const method = req.method ?? 'GET';
  let found: { route: Route; params: Record<string, string> } | undefined;
  for (const route of routePath === undefined ? [] : routes) {
    // Azure answers 404, not 405, when a route exists but not for this method.
    if (!route.definition.trigger.methods.some((m) => m === method)) continue;
    const params = route.template.match(routePath!);
    if (params) {
      found = { route, params };
      break;
    }
  }
  if (!found) {
    writeError(res, 404, 'NOT_FOUND', `nothing is served at ${method} ${url.pathname}${allowedMethods(routes, routePath)}`);
    return;
  }
  const { definition } = found.route;
  if (definition.trigger.authLevel !== 'anonymous' && !isAuthorized(options.apiKey, req.headers, url)) {
    const presented = presentedKey(req.headers, url) !== undefined;
    writeError(res, 401, 'UNAUTHORIZED', presented ? 'the key presented is not valid for this API' : 'this API requires a key: send it in the x-functions-key header or the code query parameter');
    return;
  }
  const request = toHttpRequest(req, url, found.params);
  let result: unknown;
  try {
    result = await options.runner.invoke({
      functionName: definition.name,
      triggerType: 'httpTrigger',
      // The path only: the query may carry the key (?code=).
      reason: `HTTP ${method} ${url.pathname}`,
      run: async (context) => definition.handler(request, context),
    });
  } catch {
    // The runner logged it. (Azure answers an unhandled handler error with a bare 500; here the
    // caller gets the API's error shape, without the error, which may name internals.)
    writeError(res, 500, 'INTERNAL_ERROR', `the function ${definition.name} failed; the error is in the host's log`);
    return;
  }
  await writeHttpResponse(res, result);
}

/**
 * `POST /admin/functions/{name}`, as on the Functions host: runs a timer, queue or Event Grid
 * function with the body's `{"input": "…"}` (a queue message's text; one event as JSON; nothing,
 * for a timer) and answers 202 once the run has started (it goes on in the background, drained at
 * shutdown like any invocation); 404 for a function that is not there or cannot be run this way,
 * 400 for a body or input it cannot take, every refusal in the one error shape. Azure asks for the
 * master key; here HOIST_API_KEY, when set.
 */
async function runAdminFunction(req: IncomingMessage, res: ServerResponse, url: URL, options: HttpHostOptions): Promise<void> {
  // Refusals in the API's one error shape, like every other answer of this host.
  if (!isAuthorized(options.apiKey, req.headers, url)) {
    req.resume();
    const presented = presentedKey(req.headers, url) !== undefined;
    writeError(res, 401, 'UNAUTHORIZED', presented ? 'the key presented is not valid for the admin API' : 'the admin API requires a key: send it in the x-functions-key header or the code query parameter');
    return;
  }
  if (req.method !== 'POST') {
    req.resume();
    writeError(res, 405, 'METHOD_NOT_ALLOWED', `${req.method ?? 'GET'} is not supported on ${ADMIN_FUNCTIONS_PATH}{name}: POST runs the function`, { headers: { allow: 'POST' } });
    return;
  }
  // An input is at most one event, which Event Grid bounds as it bounds its deliveries.
  const body = await readBoundedBody(req, MAX_DELIVERY_BYTES);
  if (body === undefined) {
    writeError(res, 413, 'PAYLOAD_TOO_LARGE', `the body is more than ${MAX_DELIVERY_BYTES} bytes; at most ${MAX_DELIVERY_BYTES} bytes (${MAX_DELIVERY_BYTES / 1024 / 1024} MiB) are accepted`, { headers: { connection: 'close' } });
    return;
  }
  const input = adminInput(body);
  if (typeof input === 'object') {
    writeError(res, 400, input.code, input.message, input.code === 'INVALID_FIELD' ? { field: 'input' } : {});
    return;
  }
  const name = functionName(url.pathname.slice(ADMIN_FUNCTIONS_PATH.length));
  const run = (name !== undefined && options.runFunction?.(name, input)) || 'not-found';
  if (run === 'not-found') {
    writeError(res, 404, 'FUNCTION_NOT_FOUND', `no function named "${(name ?? url.pathname.slice(ADMIN_FUNCTIONS_PATH.length)).slice(0, 80)}" can be run here: name a timer, queue or Event Grid function of this app`, { field: 'name' });
    return;
  }
  if (run !== 'started') {
    writeError(res, 400, 'INVALID_FIELD', run.invalidInput, { field: 'input' });
    return;
  }
  res.writeHead(202).end();
}

/** The function an admin path names, or undefined when its percent-encoding is malformed (it names none). */
function functionName(encoded: string): string | undefined {
  try {
    return decodeURIComponent(encoded);
  } catch {
    return undefined;
  }
}

/** The `input` of an admin call's body (undefined for an empty body or none given), or why the body is refused. */
function adminInput(body: Buffer): string | undefined | { code: 'INVALID_JSON' | 'INVALID_FIELD'; message: string } {
  const text = body.toString('utf8');
  if (text.trim() === '') return undefined;
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    return { code: 'INVALID_JSON', message: 'the body is not valid JSON: send {"input": "…"}, the input as a string' };
  }
  const input = typeof parsed === 'object' && parsed !== null && !Array.isArray(parsed) ? (parsed as { input?: unknown }).input : null;
  if (input === undefined || typeof input === 'string') return input;
  return { code: 'INVALID_FIELD', message: '"input" must be a string, as the Functions host takes it: a queue message\'s text, or one Event Grid event as JSON (the body is {"input": "…"})' };
}

/** The absolute URL handlers see; the Host header is used when it parses, so Location headers are right. */
function requestUrl(req: IncomingMessage, port: number): URL {
  const fallback = `http://localhost:${port}`;
  let base = fallback;
  if (req.headers.host) {
    try {
      base = new URL(`http://${req.headers.host}`).origin;
    } catch {
      base = fallback;
    }
  }
  // Concatenated, not resolved: a request line like `//other.host/x` must stay a path on this host.
  const target = req.url?.startsWith('/') ? req.url : '/';
  return new URL(`${base}${target}`);
}

/**
 * For a path some route serves with other methods: which ones. Azure answers such a request 404,
 * as for no route at all; the message at least says what would work.
 */
function allowedMethods(routes: readonly Route[], routePath: string | undefined): string {
  if (routePath === undefined) return '';
  const methods = new Set(routes.filter((r) => r.template.match(routePath) !== undefined).flatMap((r) => r.definition.trigger.methods));
  return methods.size === 0 ? '' : ` (this path takes ${[...methods].join(', ')})`;
}

function stripPrefix(pathname: string, routePrefix: string): string | undefined {
  if (routePrefix === '') return pathname;
  const prefix = `/${routePrefix.toLowerCase()}`;
  const lower = pathname.toLowerCase();
  if (lower === prefix) return '';
  return lower.startsWith(`${prefix}/`) ? pathname.slice(prefix.length + 1) : undefined;
}

function pathOf(req: IncomingMessage): string {
  return (req.url ?? '/').split('?')[0]!;
}
