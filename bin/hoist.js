#!/usr/bin/env node
// The CLI runs from one bundled file (dist/hoist-cli.js, made by `npm run build`, which `npm ci`
// runs through `prepare`): loading it is one file read and one compile instead of resolving and
// compiling a hundred-odd modules, which was a third of a short copy's start-up.
require('../dist/hoist-cli.js').run();
