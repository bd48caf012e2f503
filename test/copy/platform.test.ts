import { parsePlatform } from '../../src/copy/platform.js';

describe('parsePlatform', () => {
  it.each([
    ['linux/amd64', { os: 'linux', architecture: 'amd64' }],
    ['linux/arm/v7', { os: 'linux', architecture: 'arm', variant: 'v7' }],
    ['linux/arm64/v8.2', { os: 'linux', architecture: 'arm64', variant: 'v8.2' }],
    ['windows/amd64', { os: 'windows', architecture: 'amd64' }],
    ['linux/x86_64', { os: 'linux', architecture: 'x86_64' }],
  ])('accepts %s', (input, platform) => {
    expect(parsePlatform(input)).toEqual(platform);
  });

  it.each(['linux', 'linux/../x', 'linux/./amd64', '../linux/amd64', 'linux/amd64/..', 'linux//amd64', 'linux/amd64.', 'Linux/AMD64', 'linux/arm/v7/x', 'linux/amd 64', 'windows/amd64:10..0', 'windows/amd64:', 'windows/amd64:.10'])('refuses %j, naming the accepted form', (input) => {
    expect(() => parsePlatform(input)).toThrow(
      /is not valid: use os\/arch or os\/arch\/variant, lowercase, and :os\.version after it .*e\.g\. linux\/arm64, linux\/arm\/v7 or windows\/amd64:10\.0\.17763\.5329 \(each part letters, digits, '_' or '-', with dots only between them\)/,
    );
  });
});
