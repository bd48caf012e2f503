/**
 * Preloaded into a child process (NODE_OPTIONS=--require) to resolve test host names the way an
 * /etc/hosts line would, without touching the machine: TEST_HOSTS_MAP="name=127.0.0.1,…". A
 * registry reached by such a name is not "loopback" to Hoist, so it speaks HTTPS to it, while the
 * connection stays on 127.0.0.1. Only loopback addresses are accepted.
 */
'use strict';
const dns = require('node:dns');

const mapped = new Map();
for (const entry of (process.env.TEST_HOSTS_MAP || '').split(',').filter(Boolean)) {
  const [name, address] = entry.split('=');
  if (!/^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(address || '')) throw new Error(`TEST_HOSTS_MAP: ${entry} is not name=127.x.y.z`);
  mapped.set(name.toLowerCase(), address);
}

const lookup = dns.lookup;
dns.lookup = function mappedLookup(hostname, options, callback) {
  const address = typeof hostname === 'string' ? mapped.get(hostname.toLowerCase()) : undefined;
  if (address === undefined) return lookup.apply(this, arguments);
  const done = typeof options === 'function' ? options : callback;
  const all = typeof options === 'object' && options !== null && options.all;
  if (all) process.nextTick(done, null, [{ address, family: 4 }]);
  else process.nextTick(done, null, address, 4);
  return {};
};
