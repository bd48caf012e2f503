import { formatPlatform, parsePlatform, platformMatches } from '../../src/copy/platform.js';

describe('parsePlatform', () => {
  it.each([
    ['linux/amd64', { os: 'linux', architecture: 'amd64' }],
    ['linux/arm/v7', { os: 'linux', architecture: 'arm', variant: 'v7' }],
    ['linux/arm64/v8.2', { os: 'linux', architecture: 'arm64', variant: 'v8.2' }],
    ['linux/arm64/v8.10', { os: 'linux', architecture: 'arm64', variant: 'v8.10' }],
    ['windows/amd64', { os: 'windows', architecture: 'amd64' }],
    ['linux/x86_64', { os: 'linux', architecture: 'x86_64' }],
    ['windows/amd64:10.0.17763.5329', { os: 'windows', architecture: 'amd64', osVersion: '10.0.17763.5329' }],
    ['windows/amd64:10.0.20348.2227', { os: 'windows', architecture: 'amd64', osVersion: '10.0.20348.2227' }],
    ['windows/arm64/v8:10.0.26100.1_Build-A', { os: 'windows', architecture: 'arm64', variant: 'v8', osVersion: '10.0.26100.1_Build-A' }],
  ])('accepts %s', (input, platform) => {
    expect(parsePlatform(input)).toStrictEqual(platform);
  });

  it.each([
    'linux',
    'linux/../x',
    'linux/./amd64',
    '../linux/amd64',
    'linux/amd64/..',
    'linux//amd64',
    'linux/amd64.',
    'Linux/AMD64',
    'linux/arm/v7/x',
    'linux/amd 64',
    'windows/amd64:10..0',
    'windows/amd64:',
    'windows/amd64:.10',
    'windows/amd64:10.0.',
    'windows/amd64:10.0 1',
    'windows/amd64:10.0/1',
    'windows:10.0.17763/amd64',
  ])('refuses %j, naming the accepted form', (input) => {
    expect(() => parsePlatform(input)).toThrow(
      /is not valid: use os\/arch or os\/arch\/variant, lowercase, and :os\.version after it .*e\.g\. linux\/arm64, linux\/arm\/v7 or windows\/amd64:10\.0\.17763\.5329 \(each part letters, digits, '_' or '-', with dots only between them\)/,
    );
  });
});

describe('formatPlatform', () => {
  it.each([
    [{ os: 'linux', architecture: 'amd64' }, 'linux/amd64'],
    [{ os: 'linux', architecture: 'arm', variant: 'v7' }, 'linux/arm/v7'],
    [{ os: 'windows', architecture: 'amd64', osVersion: '10.0.17763.5329' }, 'windows/amd64:10.0.17763.5329'],
    // An index entry spells it `os.version`.
    [{ os: 'windows', architecture: 'amd64', 'os.version': '10.0.20348.2227' }, 'windows/amd64:10.0.20348.2227'],
    [{ os: 'windows', architecture: 'arm64', variant: 'v8', 'os.version': '10.0.26100.1' }, 'windows/arm64/v8:10.0.26100.1'],
  ])('prints %j as %s, and parses back to the same platform', (platform, printed) => {
    expect(formatPlatform(platform)).toBe(printed);
    expect(formatPlatform(parsePlatform(printed))).toBe(printed);
  });
});

describe('platformMatches', () => {
  const ltsc2019 = { os: 'windows', architecture: 'amd64', 'os.version': '10.0.17763.5329' };
  const armV7 = { os: 'linux', architecture: 'arm', variant: 'v7' };

  it.each([
    ['linux/arm', armV7, true],
    ['linux/arm/v7', armV7, true],
    ['linux/arm/v6', armV7, false],
    ['linux/arm64', armV7, false],
    ['windows/arm', armV7, false],
    ['linux/arm/v7', { os: 'linux', architecture: 'arm' }, false],
    ['windows/amd64', ltsc2019, true],
    ['windows/amd64:10.0.17763.5329', ltsc2019, true],
    ['windows/amd64:10.0.20348.2227', ltsc2019, false],
    ['windows/amd64:10.0.17763.5329', { os: 'windows', architecture: 'amd64' }, false],
    ['linux/amd64', undefined, false],
  ])('%s against %j: %s', (wanted, entry, matches) => {
    expect(platformMatches(parsePlatform(wanted), entry)).toBe(matches);
  });
});
