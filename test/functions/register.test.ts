import { execFile, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { definitions } from '../../src/functions/definitions.js';

/**
 * Loads the app's entry point (package.json `main`, built into dist/) in a fresh Node process
 * the way the Functions worker does: the worker answers `require('@azure/functions-core')` with
 * its core API, and the `@azure/functions` package registers each `app.*` call through it. A
 * recording core API stands in for the worker (the one peer a test cannot run), so this sees
 * exactly what the runtime would be told.
 */
const LOAD_LIKE_THE_WORKER = `
const Module = require('node:module');
const registered = [];
const hooks = [];
const systemLogs = [];
const setups = [];
const core = {
  // A host of 4.28 or later: the package takes \`log\` as the sign that HTTP streams are available.
  log(level, category, message) { if (category === 'system') systemLogs.push(level + ': ' + message); },
  setProgrammingModel() {},
  registerFunction(metadata, handler) { registered.push({ metadata, handler }); return { dispose() {} }; },
  registerHook(name) { hooks.push(name); return { dispose() {} }; },
};
const load = Module._load;
let functions;
Module._load = function (request, ...rest) {
  if (request === '@azure/functions-core') return core;
  if (request !== '@azure/functions') return load.call(this, request, ...rest);
  // The real package, with \`app.setup\` recorded on its way through.
  const real = load.call(this, request, ...rest);
  functions ??= { ...real, app: { ...real.app, setup(options) { setups.push(options); return real.app.setup(options); } } };
  return functions;
};
require(process.argv[1]);
const { definitions } = require(process.argv[2]);
process.stdout.write(JSON.stringify({ setups, systemLogs, hooks, functions: registered.map(({ metadata, handler }) => ({
  name: metadata.name,
  triggers: Object.values(metadata.bindings).filter((b) => b.direction === 'in'),
  handlerIsDefinitions: definitions.find((d) => d.name === metadata.name)?.handler === handler,
})) }));
`;

interface Registered {
  name: string;
  triggers: Array<Record<string, unknown>>;
  handlerIsDefinitions: boolean;
}

describe('definitions', () => {
  it('list the imports HTTP function, the imports queue worker, the sweep, the OpenAPI document and the mirroring functions', () => {
    expect(definitions.map((d) => [d.name, d.trigger])).toEqual([
      ['imports', { type: 'http', methods: ['GET', 'POST', 'DELETE', 'PUT', 'PATCH'], route: 'imports/{id?}', authLevel: 'function' }],
      ['importWorker', { type: 'storageQueue', queueName: 'imports', connection: 'AzureWebJobsStorage' }],
      ['sweepImports', { type: 'timer', schedule: '0 */5 * * * *' }],
      ['openapi', { type: 'http', methods: ['GET'], route: 'openapi.json', authLevel: 'anonymous' }],
      ['watches', { type: 'http', methods: ['GET', 'PUT', 'DELETE'], route: 'watches/{name?}', authLevel: 'function' }],
      // HOIST_RESYNC_SCHEDULE is not set here: the default applies.
      ['resync', { type: 'timer', schedule: '0 */15 * * * *' }],
      ['upstreamPush', { type: 'eventGrid' }],
      ['distributionHook', { type: 'http', methods: ['POST'], route: 'hooks/distribution', authLevel: 'function' }],
    ]);
    for (const d of definitions) expect(typeof d.handler).toBe('function');
  });
});

describe('register (the entry point the Functions runtime loads)', () => {
  it('registers every definition with its trigger and its own handler', async () => {
    const root = path.resolve(__dirname, '../..');
    const main = path.join(root, (JSON.parse(readFileSync(path.join(root, 'package.json'), 'utf8')) as { main: string }).main);
    const { stdout } = await promisify(execFile)(process.execPath, ['-e', LOAD_LIKE_THE_WORKER, main, path.join(root, 'dist/src/functions/definitions.js')], { cwd: root, env: { ...process.env, HOIST_TARGET_REGISTRY: 'registry.example' } });
    const { setups, systemLogs, hooks, functions: registered } = JSON.parse(stdout) as { setups: unknown[]; systemLogs: string[]; hooks: string[]; functions: Registered[] };
    // HTTP streams are on (json-body.ts's 64 KiB cap then bounds the host, which otherwise buffers
    // the whole body first): asked for once, and accepted by the package itself. The capabilities
    // that carry the proxy's HttpUri are not asked for: that would open the package's proxy server
    // on every interface.
    expect(setups).toEqual([{ enableHttpStream: true }]);
    expect(systemLogs).toContain('debug: HTTP streaming enabled.');
    // The host's shutdown reaches the worker (shutdown.ts), so running imports pause and continue.
    expect(hooks).toEqual(['appTerminate']);
    expect(registered.map((r) => r.name)).toEqual(['imports', 'importWorker', 'sweepImports', 'openapi', 'watches', 'resync', 'upstreamPush', 'distributionHook']);
    const [imports, worker, sweep, openapi, watches, resync, upstreamPush, hook] = registered;
    expect(imports.triggers).toEqual([expect.objectContaining({ type: 'httpTrigger', methods: ['GET', 'POST', 'DELETE', 'PUT', 'PATCH'], authLevel: 'function', route: 'imports/{id?}' })]);
    expect(openapi.triggers).toEqual([expect.objectContaining({ type: 'httpTrigger', methods: ['GET'], authLevel: 'anonymous', route: 'openapi.json' })]);
    expect(worker.triggers).toEqual([expect.objectContaining({ type: 'queueTrigger', queueName: 'imports', connection: 'AzureWebJobsStorage' })]);
    expect(sweep.triggers).toEqual([expect.objectContaining({ type: 'timerTrigger', schedule: '0 */5 * * * *' })]);
    expect(sweep.triggers[0]).not.toHaveProperty('runOnStartup');
    expect(watches.triggers).toEqual([expect.objectContaining({ type: 'httpTrigger', methods: ['GET', 'PUT', 'DELETE'], authLevel: 'function', route: 'watches/{name?}' })]);
    expect(resync.triggers).toEqual([expect.objectContaining({ type: 'timerTrigger', schedule: '0 */15 * * * *' })]);
    expect(upstreamPush.triggers).toEqual([expect.objectContaining({ type: 'eventGridTrigger' })]);
    expect(hook.triggers).toEqual([expect.objectContaining({ type: 'httpTrigger', methods: ['POST'], authLevel: 'function', route: 'hooks/distribution' })]);
    for (const r of registered) expect(r.handlerIsDefinitions, r.name).toBe(true);
  });

  it('takes the resync schedule from HOIST_RESYNC_SCHEDULE when it is set, as a %SETTING% the host resolves', async () => {
    const root = path.resolve(__dirname, '../..');
    const { stdout } = await promisify(execFile)(process.execPath, ['-e', LOAD_LIKE_THE_WORKER, path.join(root, 'dist/src/functions/register.js'), path.join(root, 'dist/src/functions/definitions.js')], {
      cwd: root,
      env: { PATH: process.env.PATH, HOIST_TARGET_REGISTRY: 'registry.example', HOIST_RESYNC_SCHEDULE: '0 0 * * * *' },
    });
    const resync = (JSON.parse(stdout) as { functions: Registered[] }).functions.find((f) => f.name === 'resync')!;
    expect(resync.triggers).toEqual([expect.objectContaining({ type: 'timerTrigger', schedule: '%HOIST_RESYNC_SCHEDULE%' })]);
  });

  it('report a malformed HOIST_SECRET_KEY once as the app loads (from the build, as Azure loads it)', () => {
    const entry = path.resolve(__dirname, '../../dist/src/functions/register.js');
    const malformed = 'not-a-key-3f9c2a';
    const loaded = spawnSync(process.execPath, ['-e', `require(${JSON.stringify(entry)})`], { env: { PATH: process.env.PATH, HOIST_SECRET_KEY: malformed, HOIST_TARGET_REGISTRY: 'registry.example' }, encoding: 'utf8' });
    expect(loaded.status).toBe(0);
    expect(loaded.stderr.split('HOIST_SECRET_KEY must be base64 of exactly 32 random bytes').length - 1).toBe(1);
    expect(loaded.stderr).toContain('until it is fixed, imports with credentials are refused');
    expect(loaded.stderr).not.toContain(malformed);
  });

  // Local OCI layouts are npm start's (issue 12): a deployment without a target must not start.
  it.each([
    ['unset', {}],
    ['empty, with the local layouts setting', { HOIST_TARGET_REGISTRY: '', HOIST_TARGET_LAYOUTS: '/tmp/layouts' }],
  ])('refuse to load when HOIST_TARGET_REGISTRY is %s, naming the setting', (_, settings: Record<string, string>) => {
    const entry = path.resolve(__dirname, '../../dist/src/functions/register.js');
    const loaded = spawnSync(process.execPath, ['-e', `require(${JSON.stringify(entry)})`], { env: { PATH: process.env.PATH, ...settings }, encoding: 'utf8' });
    expect(loaded.status).not.toBe(0);
    expect(loaded.stderr).toContain('hoist cannot start: HOIST_TARGET_REGISTRY is not set or not a registry host[:port]. Set it to the registry imports write to, e.g. myregistry.azurecr.io');
  });
});
