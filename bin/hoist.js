#!/usr/bin/env node
// The CLI runs from one bundled file, dist/hoist-cli.js (made by `npm run build`, which `npm ci`
// runs through `prepare`): one file to read and compile instead of a hundred-odd modules.
//
// It also runs with a V8 code cache in dist/, so a copy does not spend its first tens of
// milliseconds compiling the functions it calls. Node 22 has this built in
// (module.enableCompileCache). On Node 20 this file does the same for the one bundle: it compiles
// it with the cache dist/hoist-cli.<hash of the bundle>.v8cache and, when that was missing or
// stale, writes a new one as a successful copy exits, by then holding every function a copy
// compiles (a `--help` run, or a copy that failed early, would cache little), and drops the
// caches of earlier builds. A directory that is not writable only means no cache.
'use strict';
const { createHash } = require('node:crypto');
const fs = require('node:fs');
const Module = require('node:module');
const path = require('node:path');
const vm = require('node:vm');

const dist = path.join(__dirname, '..', 'dist');
const bundle = path.join(dist, 'hoist-cli.js');

// The bundle's boundProcessMemory (src/registry/process-memory.ts) sets V8's --liftoff-only, and
// V8 rejects a code cache made under other flags: set it here, before the bundle is compiled, so
// the cache written at exit is the one read at start. (Setting it again there changes nothing.)
require('node:v8').setFlagsFromString('--liftoff-only');

function loadWithCodeCache() {
  const source = fs.readFileSync(bundle, 'utf8');
  // Named by content: V8 checks a cache against the source's length only, not its bytes.
  const hash = createHash('sha256').update(source).update(process.version).digest('hex').slice(0, 16);
  const cacheFile = path.join(dist, `hoist-cli.${hash}.v8cache`);
  let cachedData;
  try {
    cachedData = fs.readFileSync(cacheFile);
  } catch {
    // First run of this build: compile from source.
  }
  const script = new vm.Script(`(function (exports, require, module, __filename, __dirname) {${source}\n})`, {
    filename: bundle,
    cachedData,
    // import() inside the bundle resolves as it would in a module Node loaded itself.
    importModuleDynamically: vm.constants.USE_MAIN_CONTEXT_DEFAULT_LOADER,
  });
  const module = { exports: {} };
  script.runInThisContext()(module.exports, Module.createRequire(bundle), module, bundle, dist);
  if ((cachedData === undefined || script.cachedDataRejected) && process.argv[2] === 'copy') {
    process.once('exit', (code) => {
      if (code !== 0) return;
      try {
        const temporary = `${cacheFile}.${process.pid}`;
        fs.writeFileSync(temporary, script.createCachedData());
        fs.renameSync(temporary, cacheFile);
        for (const name of fs.readdirSync(dist)) {
          if (/^hoist-cli\.[0-9a-f]{16}\.v8cache$/.test(name) && name !== path.basename(cacheFile)) fs.rmSync(path.join(dist, name), { force: true });
        }
      } catch {
        // Read-only install: run without a cache.
      }
    });
  }
  return module.exports;
}

if (typeof Module.enableCompileCache === 'function') {
  Module.enableCompileCache(path.join(dist, 'compile-cache'));
  require(bundle).run();
} else {
  loadWithCodeCache().run();
}
