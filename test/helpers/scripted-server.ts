/**
 * An HTTP server on loopback that answers each request as the test says, and records them all:
 * for the answers real registries and token services never give on demand (a lying size, a list
 * that never ends, a connection dropped before or during an answer, a page that links back to
 * itself). Plain HTTP, or HTTPS with a certificate the test made.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { listenOnLoopback } from './ports.js';

export interface SeenRequest {
  method: string;
  path: string;
  query: URLSearchParams;
  headers: IncomingMessage['headers'];
  body: Buffer;
}

/**
 * What to answer: a response; `drop` to close the connection without one; `hold` to leave the
 * request open until the client goes away (see `held`).
 */
export type ScriptedAnswer =
  | {
      status?: number;
      headers?: Record<string, string>;
      body?: string | Buffer;
      /** Send the body in two writes without Content-Length (chunked). */
      chunked?: boolean;
      /** Declare the whole body's length, send only this many bytes of it, then drop the connection. */
      cutAfter?: number;
    }
  | 'drop'
  | 'hold';

export class ScriptedServer {
  readonly requests: SeenRequest[] = [];
  /** One promise per held request, settled when its client has gone away. */
  readonly held: Promise<void>[] = [];
  /** Answers request number `n` (from 1). Default: 404. */
  answer: (req: SeenRequest, n: number) => ScriptedAnswer = () => ({ status: 404 });
  /** `http://127.0.0.1:PORT` (or https). */
  url = '';
  /** `127.0.0.1:PORT`. */
  host = '';
  private server!: Server;

  /** Starts listening on a free loopback port; over TLS with `tls`. */
  async start(tls?: { key: string; cert: string }): Promise<this> {
    const handler = (req: IncomingMessage, res: ServerResponse) => void this.handle(req, res);
    this.server = tls ? createHttpsServer(tls, handler) : createServer(handler);
    const { host } = await listenOnLoopback(this.server);
    this.host = host;
    this.url = `${tls ? 'https' : 'http'}://${host}`;
    return this;
  }

  stop(): Promise<void> {
    this.server.closeAllConnections();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const url = new URL(req.url!, 'http://scripted');
    const seen = { method: req.method!, path: url.pathname, query: url.searchParams, headers: req.headers, body: Buffer.concat(chunks) };
    this.requests.push(seen);
    const answer = this.answer(seen, this.requests.length);
    if (answer === 'drop') return void req.socket.destroy();
    if (answer === 'hold') return void this.held.push(new Promise((resolve) => res.on('close', () => resolve())));
    const body = answer.body === undefined ? undefined : Buffer.from(answer.body);
    res.writeHead(answer.status ?? 200, { ...answer.headers, ...(body && !answer.chunked && { 'content-length': String(body.length) }) });
    if (body && answer.cutAfter !== undefined) {
      res.write(body.subarray(0, answer.cutAfter), () => req.socket.destroy());
    } else if (body && answer.chunked) {
      // Two writes, so the client sees pieces of a body whose length was not declared.
      res.write(body.subarray(0, body.length >> 1));
      res.end(body.subarray(body.length >> 1));
    } else res.end(req.method === 'HEAD' ? undefined : body);
  }
}
