/**
 * Which proxy a URL goes through, read from the variables as curl reads them: the names, NO_PROXY's
 * hosts, domains, ports, addresses and ranges, and the proxy URL's form and credentials. Pure
 * parsing, no sockets: `proxy.test.ts` copies through a real forward proxy.
 */
import { readProxyEnvironment, ProxyConfigError, ProxyError, ProxySettings, type ProxyEnvironment } from '../../src/registry/proxy.js';

const env = (variables: Record<string, string>): ProxyEnvironment => readProxyEnvironment((name) => variables[name]);

describe('the proxy variables', () => {
  const url = (u: string) => new URL(u);

  it('take the lower-case name first, and an https URL never falls back to HTTP_PROXY', () => {
    const settings = new ProxySettings(env({ http_proxy: 'http://lower:1', HTTP_PROXY: 'http://upper:2' }));
    expect(settings.forUrl(url('http://registry.example/v2/'))?.origin).toBe('http://lower:1');
    expect(settings.forUrl(url('https://registry.example/v2/'))).toBeUndefined();
    expect(new ProxySettings(env({ HTTPS_PROXY: 'proxy.corp:3128' })).forUrl(url('https://registry.example/'))?.origin).toBe('http://proxy.corp:3128');
  });

  it('proxy loopback unless NO_PROXY lists it, and match NO_PROXY hosts, domains, ports, addresses and ranges', () => {
    const through = (noProxy: string, target: string) => new ProxySettings(env({ HTTPS_PROXY: 'http://p:1', HTTP_PROXY: 'http://p:1', NO_PROXY: noProxy })).forUrl(url(target)) !== undefined;
    expect(through('', 'http://127.0.0.1:5000/')).toBe(true);
    expect(through('', 'http://localhost:5000/')).toBe(true);
    expect(through('*', 'https://registry.example/')).toBe(false);
    expect(through('example.com', 'https://registry.example.com/')).toBe(false);
    expect(through('.example.com', 'https://example.com/')).toBe(false);
    expect(through('*.example.com', 'https://a.b.example.com/')).toBe(false);
    expect(through('example.com', 'https://notexample.com/')).toBe(true);
    expect(through('registry.example:5000', 'https://registry.example:5000/')).toBe(false);
    expect(through('registry.example:5000', 'https://registry.example/')).toBe(true);
    expect(through('registry.example:443', 'https://registry.example/')).toBe(false);
    expect(through('10.0.0.0/8', 'http://10.1.2.3/')).toBe(false);
    expect(through('10.0.0.0/8', 'http://11.1.2.3/')).toBe(true);
    expect(through('[::1]', 'http://[::1]:5000/')).toBe(false);
    expect(through('fd00::/8', 'http://[fd12::1]/')).toBe(false);
    expect(through('127.0.0.1, localhost', 'http://localhost:5000/')).toBe(false);
  });

  it('refuse a value they cannot use, naming the variable and never quoting a password', () => {
    const fail = (variables: Record<string, string>) => {
      try {
        new ProxySettings(env(variables));
      } catch (error) {
        return error as ProxyConfigError;
      }
      throw new Error('accepted');
    };
    const socks = fail({ HTTPS_PROXY: 'socks5://user:s3cret@proxy:1080' });
    expect(socks).toMatchObject({ code: 'PROXY_INVALID', variable: 'HTTPS_PROXY' });
    expect(socks.message).not.toContain('s3cret');
    expect(fail({ http_proxy: 'http://user:s3cret@proxy:3128/path' })).toMatchObject({ code: 'PROXY_INVALID', variable: 'http_proxy' });
    expect(fail({ NO_PROXY: '10.0.0.0/99' })).toMatchObject({ code: 'PROXY_INVALID', variable: 'NO_PROXY' });
  });
});

describe('readProxyEnvironment', () => {
  it('reads each variable lower case first, trimmed, an empty or blank value counting as unset', () => {
    expect(env({ http_proxy: '  ', HTTP_PROXY: ' http://upper:2 ', https_proxy: 'http://lower:3', HTTPS_PROXY: 'http://upper:4', NO_PROXY: 'a.example' })).toStrictEqual({
      httpProxy: { name: 'HTTP_PROXY', value: 'http://upper:2' },
      httpsProxy: { name: 'https_proxy', value: 'http://lower:3' },
      noProxy: { name: 'NO_PROXY', value: 'a.example' },
    });
    expect(env({ no_proxy: 'b.example', NO_PROXY: 'a.example', HTTP_PROXY: '' })).toStrictEqual({ noProxy: { name: 'no_proxy', value: 'b.example' } });
    expect(env({})).toStrictEqual({});
  });

  it('refuses a value it cannot use when reading, naming the variable', () => {
    expect(() => env({ https_proxy: 'ftp://proxy:21' })).toThrow(ProxyConfigError);
    expect(() => env({ https_proxy: 'ftp://proxy:21' })).toThrow(/^https_proxy names a ftp proxy: only http:\/\/ and https:\/\/ proxies are supported/);
  });
});

describe('a proxy URL', () => {
  const proxyOf = (value: string) => new ProxySettings({ httpProxy: { name: 'HTTP_PROXY', value } }).forUrl(new URL('http://registry.example/v2/'))!;

  it.each([
    ['proxy.corp:3128', 'http://proxy.corp:3128', 'proxy.corp', 3128],
    ['HTTP://Proxy.Corp:3128/', 'http://proxy.corp:3128', 'proxy.corp', 3128],
    ['http://proxy.corp', 'http://proxy.corp', 'proxy.corp', 80],
    ['http://[fd00::3]:8080', 'http://[fd00::3]:8080', 'fd00::3', 8080],
  ])('%s is the proxy %s (host %s, port %i), without credentials', (value, origin, hostname, port) => {
    const proxy = proxyOf(value);
    expect(proxy).toMatchObject({ origin, hostname, port, hasCredentials: false });
    expect(String(proxy)).toBe(origin);
    expect(proxy.headers()).toStrictEqual({});
  });

  it('sends its credentials, decoded, as Basic Proxy-Authorization, and names itself without them', () => {
    const proxy = proxyOf('http://us%40er:p%3Ass@proxy.corp:3128');
    expect(proxy.headers()).toStrictEqual({ 'proxy-authorization': `Basic ${Buffer.from('us@er:p:ss').toString('base64')}` });
    expect(proxy.hasCredentials).toBe(true);
    expect(proxy.origin).toBe('http://proxy.corp:3128');
    expect(JSON.stringify(proxy)).not.toContain('us@er');
  });

  it.each([
    ['socks5://user:s3cret@proxy:1080', /^HTTP_PROXY names a socks5 proxy: only http:\/\/ and https:\/\/ proxies are supported/],
    ['http://user:s3cret@proxy:3128/path', /^HTTP_PROXY has a path or query: give http\[s\]:\/\/\[USER:PASSWORD@\]HOST\[:PORT\]$/],
    ['http://user:s3cret@proxy:3128?x=1', /^HTTP_PROXY has a path or query/],
    ['http://user:s3cret@proxy:3128#top', /^HTTP_PROXY has a path or query/],
    ['http://user:s3cret@pro xy:3128', /^HTTP_PROXY is not a proxy URL: give http\[s\]:\/\/\[USER:PASSWORD@\]HOST\[:PORT\]$/],
    // A scheme counts only at the start: this one is a host with a path.
    ['user:s3cret@proxy.corp:3128/http://x', /^HTTP_PROXY has a path or query/],
  ])('%s is refused, naming the variable and not the password', (value, message) => {
    const error = (() => {
      try {
        proxyOf(value);
      } catch (e) {
        return e as ProxyConfigError;
      }
      throw new Error('accepted');
    })();
    expect(error).toBeInstanceOf(ProxyConfigError);
    expect(error).toMatchObject({ name: 'ProxyConfigError', code: 'PROXY_INVALID', variable: 'HTTP_PROXY' });
    expect(error.message).toMatch(message);
    expect(error.message).not.toContain('s3cret');
  });
});

describe('NO_PROXY', () => {
  const through = (noProxy: string, target: string) => new ProxySettings(env({ HTTPS_PROXY: 'http://p:1', HTTP_PROXY: 'http://p:1', NO_PROXY: noProxy })).forUrl(new URL(target)) !== undefined;

  it.each([
    // Entries are separated by commas, spaces or both.
    ['a.example b.example,c.example , d.example', ['https://b.example/', 'https://c.example/', 'https://x.d.example/'], ['https://e.example/']],
    ['a.example, *', ['https://anything.example/'], []],
    // Host names match case-insensitively; IPv6 in any spelling.
    ['Registry.EXAMPLE', ['https://registry.example/'], []],
    ['0:0:0:0:0:0:0:1', ['http://[::1]:5000/'], ['http://127.0.0.1:5000/']],
    ['::1', ['http://[::1]/'], []],
    ['[::1]:5000', ['http://[::1]:5000/'], ['http://[::1]:5001/']],
    // A port given applies to that port only, the scheme's default included.
    ['registry.example:80', ['http://registry.example/'], ['https://registry.example/', 'http://registry.example:8080/']],
    ['registry.example:443', ['https://registry.example/'], ['http://registry.example/']],
    // Subdomains match names, never addresses.
    ['0.0.1', [], ['http://10.0.0.1/']],
    ['example.com', ['https://a.example.com/'], ['https://example.com.evil/', 'https://badexample.com/']],
    // Ranges at their edges.
    ['10.0.0.0/8', ['http://10.255.255.255/'], ['http://11.0.0.0/', 'http://9.255.255.255/']],
    ['10.1.2.3/32', ['http://10.1.2.3/'], ['http://10.1.2.4/']],
    ['192.168.0.0/16, fd00::/8', ['http://192.168.7.7/', 'http://[fdff::1]/'], ['http://[fc00::1]/']],
    ['[fd00::]/8', ['http://[fd12::1]/'], []],
    ['2001:db8::1/128', ['http://[2001:db8::1]/'], ['http://[2001:db8::2]/']],
    // An empty entry (a stray comma) matches nothing, not every name that ends in '.'.
    [',a.example,,b.example,', ['https://b.example/'], ['https://registry.example./']],
    // Not a range: ADDRESS/PREFIX must end the entry.
    ['10.0.0.0/8x', [], ['http://10.1.2.3/']],
  ])('%j reaches %j directly and proxies %j', (noProxy, direct, proxied) => {
    for (const url of direct) expect(through(noProxy, url), url).toBe(false);
    for (const url of proxied) expect(through(noProxy, url), url).toBe(true);
  });

  it.each(['10.0.0.0/33', 'fd00::/129', '10.0.0/8', 'registry.example/8'])('refuses %j as a range, naming the variable and the entry', (entry) => {
    for (const name of ['NO_PROXY', 'no_proxy']) {
      expect(() => env({ [name]: `a.example,${entry}` })).toThrow(ProxyConfigError);
      expect(() => env({ [name]: `a.example,${entry}` })).toThrow(`${name} entry "${entry}" is not a CIDR range: give ADDRESS/PREFIX, e.g. 10.0.0.0/8`);
    }
  });

  it('leaves a URL of another scheme alone', () => {
    expect(new ProxySettings(env({ HTTPS_PROXY: 'http://p:1', HTTP_PROXY: 'http://p:1' })).forUrl(new URL('ftp://registry.example/'))).toBeUndefined();
  });
});

describe('ProxyError', () => {
  it.each([
    [407, true, 'the proxy http://p:1 refused to connect to registry.example:443 (it answered 407): it refused the credentials in the proxy URL', false],
    [407, false, 'the proxy http://p:1 refused to connect to registry.example:443 (it answered 407): it wants credentials; give them in the proxy URL (http://USER:PASSWORD@HOST:PORT)', false],
    [403, false, 'the proxy http://p:1 refused to connect to registry.example:443 (it answered 403): its rules forbid that destination; if the host is reached without the proxy, list it in NO_PROXY', false],
    [502, false, 'the proxy http://p:1 refused to connect to registry.example:443 (it answered 502)', true],
    [503, true, 'the proxy http://p:1 refused to connect to registry.example:443 (it answered 503)', true],
    [504, false, 'the proxy http://p:1 refused to connect to registry.example:443 (it answered 504)', true],
    [500, false, 'the proxy http://p:1 refused to connect to registry.example:443 (it answered 500)', false],
  ])('answering %i (credentials given: %s) says %j; transient: %s', (status, credentials, message, transient) => {
    const error = new ProxyError('http://p:1', 'registry.example:443', status, credentials);
    expect(error).toMatchObject({ name: 'ProxyError', code: 'PROXY_REFUSED', proxy: 'http://p:1', target: 'registry.example:443', status, message, transient });
  });
});
