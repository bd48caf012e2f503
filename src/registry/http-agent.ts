/**
 * The one connection pool every registry, token service and storage request goes through.
 *
 * It loads undici's Agent and its request API without the package's index, which also loads
 * fetch, WebSocket, the cache stores and the mock agents: code Hoist never calls, and a fifth of a
 * CLI start-up (22 ms of 91 for `hoist --version`, bundled, on the benchmark machine). These
 * paths are internal to undici, which is why its version is pinned exactly; if an upgrade moves
 * them, every test fails at load.
 */
import type { Agent as UndiciAgent, Dispatcher as UndiciDispatcher } from 'undici';

/* eslint-disable @typescript-eslint/no-require-imports -- internal paths, typed by the public ones */
const Agent = require('undici/lib/dispatcher/agent') as typeof UndiciAgent;
const Dispatcher = require('undici/lib/dispatcher/dispatcher') as typeof UndiciDispatcher;
// What undici's index does for every dispatcher, limited to the one API used here.
Dispatcher.prototype.request ??= require('undici/lib/api/api-request') as UndiciDispatcher['request'];
/* eslint-enable @typescript-eslint/no-require-imports */

export type { UndiciDispatcher as Dispatcher };

export const agent = new Agent({ keepAliveTimeout: 10_000, connections: 32 });
