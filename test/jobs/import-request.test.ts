import { RequestError } from '../../src/jobs/errors.js';
import { MAX_PLATFORMS, MAX_TARGETS, parseImportRequest } from '../../src/jobs/import-request.js';
import { loadTarget, resolveImport, storeTarget } from '../../src/jobs/import-references.js';

function rejection(body: unknown): RequestError {
  try {
    parseImportRequest(body);
  } catch (error) {
    if (error instanceof RequestError) return error;
    throw error;
  }
  throw new Error('expected a RequestError');
}

const SOURCE = 'docker.io/library/hello-world:latest';
const RESOURCE_ID = '/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/rg-1/providers/Microsoft.ContainerRegistry/registries/srcacr';

/** An unsigned JWT with these claims (the request only reads them; the registry verifies). */
function jwt(claims: Record<string, unknown>): string {
  return `${Buffer.from('{"alg":"RS256"}').toString('base64url')}.${Buffer.from(JSON.stringify(claims)).toString('base64url')}.c2ln`;
}
const DIGEST = `sha256:${'a'.repeat(64)}`;

describe('parseImportRequest', () => {
  it('accepts the issue example and applies defaults', () => {
    const request = parseImportRequest({
      source: 'hello-world:latest',
      registry: 'src.azurecr.io',
      images: ['hello-world:latest', 'hello-world:v1', 'hello-world:v1'],
      untaggedRepositories: ['hello-world'],
      username: 'user',
      password: 'pass',
      force: false,
      platforms: ['linux/amd64', 'linux/amd64'],
      referrers: false,
    });
    expect(request).toEqual({
      source: 'hello-world:latest',
      registry: 'src.azurecr.io',
      images: ['hello-world:latest', 'hello-world:v1'],
      untaggedRepositories: ['hello-world'],
      username: 'user',
      password: 'pass',
      force: false,
      platforms: ['linux/amd64'],
      referrers: false,
    });
    expect(parseImportRequest({ source: SOURCE })).toEqual({ source: SOURCE, images: [], untaggedRepositories: [], force: false, platforms: [], referrers: false });
  });

  it.each<[string, unknown, string, string | undefined, RegExp]>([
    ['not an object', [1, 2], 'INVALID_JSON', undefined, /must be a JSON object, not an array/],
    ['null body', null, 'INVALID_JSON', undefined, /must be a JSON object, not null/],
    ['missing source', { images: ['a:b'] }, 'MISSING_FIELD', 'source', /"source" is required: give a fully qualified image reference/],
    ['unknown field', { source: SOURCE, tags: ['x'] }, 'UNKNOWN_FIELD', 'tags', /unknown field "tags": the accepted fields are source, registry, targetRegistry, images/],
    ['source of the wrong type', { source: 42 }, 'INVALID_FIELD', 'source', /"source" is a number; expected a fully qualified image reference/],
    ['force of the wrong type', { source: SOURCE, force: 'yes' }, 'INVALID_FIELD', 'force', /"force" is a string; expected true or false/],
    ['images not an array', { source: SOURCE, images: 'a:b' }, 'INVALID_FIELD', 'images', /"images" is a string; expected a list of up to 50/],
    ['an images entry of the wrong type', { source: SOURCE, images: ['a:b', 7] }, 'INVALID_FIELD', 'images[1]', /"images\[1\]" is a number; expected a string/],
    ['an empty images entry', { source: SOURCE, images: ['a:b', ''] }, 'INVALID_FIELD', 'images[1]', /"images\[1\]" is empty; expected a list of up to 50 target "repo:tag"/],
    ['an invalid source reference', { source: 'docker.io/Library/Hello:latest' }, 'INVALID_REFERENCE', 'source', /"source": invalid reference .*repository component "Library" is not valid/],
    ['a source not fully qualified', { source: 'hello-world:latest' }, 'INVALID_REFERENCE', 'source', /not fully qualified: start it with the registry host/],
    ['a source with a host when registry is given', { source: 'src.azurecr.io/hello:1', registry: 'src.azurecr.io' }, 'INVALID_REFERENCE', 'source', /with "registry", "source" is repo\[:tag\|@digest\]/],
    ['a registry that is not a host', { source: 'hello:1', registry: 'not a host' }, 'INVALID_REFERENCE', 'registry', /"registry" "not a host" is not a registry host\[:port\]/],
    ['a registry with a path', { source: 'hello:1', registry: 'src.azurecr.io/x' }, 'INVALID_REFERENCE', 'registry', /contains '\/'/],
    ['a malformed registry resource ID', { source: 'hello:1', registry: '/subscriptions/x/resourceGroups/y/providers/Microsoft.Storage/storageAccounts/z' }, 'INVALID_FIELD', 'registry', /is not a container registry resource ID: give .*\/subscriptions\/<id>\/resourceGroups/],
    ['a resource ID with a source host', { source: 'src.azurecr.io/hello:1', registry: RESOURCE_ID }, 'INVALID_REFERENCE', 'source', /with "registry", "source" is repo\[:tag\|@digest\]/],
    ['an invalid image', { source: SOURCE, images: ['UPPER:tag'] }, 'INVALID_REFERENCE', 'images[0]', /"images\[0\]": invalid reference/],
    ['an image with a digest', { source: SOURCE, images: [`hello@${DIGEST}`] }, 'INVALID_REFERENCE', 'images[0]', /images are repo:tag; to copy without a tag, list the repository in "untaggedRepositories"/],
    ['an image with a registry host', { source: SOURCE, images: ['other.io/hello:1'] }, 'INVALID_REFERENCE', 'images[0]', /starts with a registry host "other.io"/],
    ['an untagged repository with a tag', { source: SOURCE, untaggedRepositories: ['hello:1'] }, 'INVALID_REFERENCE', 'untaggedRepositories[0]', /repository names only/],
    ['an invalid untagged repository', { source: SOURCE, untaggedRepositories: ['-bad'] }, 'INVALID_REFERENCE', 'untaggedRepositories[0]', /invalid reference/],
    ['a password without a username', { source: SOURCE, password: 'secret' }, 'INCOMPLETE_CREDENTIALS', 'password', /"password" is given without "username", and is neither an Entra access token nor an ACR token/],
    ['a JWT without a username that is no Entra or ACR token', { source: SOURCE, password: jwt({ iss: 'https://example.com/', aud: 'x' }) }, 'INCOMPLETE_CREDENTIALS', 'password', /neither an Entra access token nor an ACR token/],
    ['a username without a password', { source: SOURCE, username: 'me' }, 'INCOMPLETE_CREDENTIALS', 'username', /"username" is given without "password"/],
    ['a malformed platform', { source: SOURCE, platforms: ['linux'] }, 'INVALID_PLATFORM', 'platforms[0]', /platform "linux" is not valid: use os\/arch or os\/arch\/variant/],
    ['a platform with a dot-dot part', { source: SOURCE, platforms: ['linux/../x'] }, 'INVALID_PLATFORM', 'platforms[0]', /platform "linux\/..\/x" is not valid: use os\/arch or os\/arch\/variant, lowercase/],
    ['a platform with a dot part', { source: SOURCE, platforms: ['linux/./amd64'] }, 'INVALID_PLATFORM', 'platforms[0]', /platform "linux\/.\/amd64" is not valid/],
    ['a platform with an empty part', { source: SOURCE, platforms: ['linux//amd64'] }, 'INVALID_PLATFORM', 'platforms[0]', /is not valid/],
    ['a platform with a leading dot', { source: SOURCE, platforms: ['linux/.arm64'] }, 'INVALID_PLATFORM', 'platforms[0]', /is not valid/],
    ['too many images', { source: SOURCE, images: Array.from({ length: MAX_TARGETS + 1 }, (_, i) => `r:t${i}`) }, 'TOO_MANY_TARGETS', 'images', /"images" has 51 entries, more than the 50 accepted per import/],
    [
      'too many targets in all',
      { source: SOURCE, images: Array.from({ length: 30 }, (_, i) => `r:t${i}`), untaggedRepositories: Array.from({ length: 21 }, (_, i) => `u${i}`) },
      'TOO_MANY_TARGETS',
      'images',
      /51 targets requested in "images" and "untaggedRepositories"; at most 50/,
    ],
    ['a platform with an empty os.version', { source: SOURCE, platforms: ['windows/amd64:'] }, 'INVALID_PLATFORM', 'platforms[0]', /:os.version after it to pick a Windows version/],
    ['allowNondistributableArtifacts not a boolean', { source: SOURCE, allowNondistributableArtifacts: 'yes' }, 'INVALID_FIELD', 'allowNondistributableArtifacts', /"allowNondistributableArtifacts".*true.*false/],
    ['an overlong source', { source: `docker.io/${'a'.repeat(600)}:1` }, 'INVALID_FIELD', 'source', /"source" is longer than 512 characters/],
  ])('rejects %s', (_name, body, code, field, message) => {
    const error = rejection(body);
    expect(error.code).toBe(code);
    expect(error.field).toBe(field);
    expect(error.message).toMatch(message);
  });

  it('takes a registry resource ID, kept as given for submit to resolve', () => {
    expect(parseImportRequest({ source: 'hello:1', registry: RESOURCE_ID })).toMatchObject({ source: 'hello:1', registry: RESOURCE_ID });
  });

  it.each([
    ['an Entra access token', { iss: 'https://sts.windows.net/t/', tid: 't', aud: 'https://containerregistry.azure.net', exp: 2e9 }],
    ['an ACR refresh token', { iss: 'Azure Container Registry', grant_type: 'refresh_token', aud: 'src.azurecr.io', exp: 2e9 }],
    ['an ACR access token', { iss: 'Azure Container Registry', access: [], aud: 'src.azurecr.io', exp: 2e9 }],
  ])('takes %s as a password without a username, as az acr import does', (_, claims) => {
    const password = jwt(claims);
    const request = parseImportRequest({ source: SOURCE, password });
    expect(request.password).toBe(password);
    expect(request).not.toHaveProperty('username');
  });

  it('takes Windows platforms by os.version, and allowNondistributableArtifacts false', () => {
    const request = parseImportRequest({ source: SOURCE, platforms: ['windows/amd64:10.0.17763.5329', 'linux/amd64'], allowNondistributableArtifacts: false });
    expect(request.platforms).toEqual(['windows/amd64:10.0.17763.5329', 'linux/amd64']);
    expect(request).not.toHaveProperty('allowNondistributableArtifacts');
  });

  it('takes allowNondistributableArtifacts true, now that the outbound address policy guards the URLs', () => {
    expect(parseImportRequest({ source: SOURCE, allowNondistributableArtifacts: true }).allowNondistributableArtifacts).toBe(true);
  });

  it('lists every problem in details, unknown fields first', () => {
    const error = rejection({ sorce: SOURCE, force: 1 });
    expect(error.code).toBe('UNKNOWN_FIELD');
    expect(error.details.map((d) => [d.code, d.field])).toEqual([
      ['UNKNOWN_FIELD', 'sorce'],
      ['MISSING_FIELD', 'source'],
      ['INVALID_FIELD', 'force'],
    ]);
  });

  it.each<[unknown, string]>([
    [true, 'a boolean'],
    ['text', 'a string'],
    [5, 'a number'],
  ])('names a body of %j as %s, and the fields it should have', (body, described) => {
    expect(rejection(body).message).toBe(`the body must be a JSON object, not ${described}; see source, registry, targetRegistry, images, untaggedRepositories, username, password, force, platforms, referrers, allowNondistributableArtifacts`);
  });

  it.each<[string, unknown, string]>([
    ['source', true, '"source" is a boolean; expected a fully qualified image reference'],
    ['images', {}, '"images" is an object; expected a list of up to 50 target "repo:tag"'],
    ['targetRegistry', 5, '"targetRegistry" is a number; expected one of the target registries this service writes to (HOIST_TARGET_REGISTRY)'],
    ['untaggedRepositories', 'hello', '"untaggedRepositories" is a string; expected a list of up to 50 target repository names, such as ["hello-world"]'],
    ['username', 5, '"username" is a number; expected the source registry user name, a string'],
    ['password', 5, '"password" is a number; expected the source registry password or token, a string'],
    ['platforms', 'linux/amd64', '"platforms" is a string; expected a list of up to 50 "os/arch[/variant]" strings'],
  ])('says what "%s" takes when given the wrong type', (field, value, message) => {
    const error = rejection({ source: SOURCE, ...(field === 'source' ? {} : { password: 'p', username: 'u' }), [field]: value });
    expect(error).toMatchObject({ code: 'INVALID_FIELD', field });
    expect(error.message.startsWith(message)).toBe(true);
  });

  it('lists details only when there is more than one problem', () => {
    expect(rejection({ source: SOURCE, force: 1 }).details).toEqual([]);
  });

  it('leaves out of the request what the body left out, and keeps the target registry it names', () => {
    expect(parseImportRequest({ source: SOURCE })).toStrictEqual({ source: SOURCE, images: [], untaggedRepositories: [], force: false, platforms: [], referrers: false });
    expect(parseImportRequest({ source: SOURCE, targetRegistry: 'MyACR.azurecr.io' }).targetRegistry).toBe('MyACR.azurecr.io');
  });

  it.each(['localhost/hello:1', 'myhost:5000/hello:1', 'Registry/hello:1'])('refuses a target image that starts with a registry host: %s', (image) => {
    expect(rejection({ source: SOURCE, images: [image] })).toMatchObject({ code: 'INVALID_REFERENCE', field: 'images[0]', message: expect.stringContaining(`starts with a registry host "${image.split('/')[0]}"`) });
  });

  it('refuses an untagged repository that starts with a registry host', () => {
    const error = rejection({ source: SOURCE, untaggedRepositories: ['hello', 'other.io/hello'] });
    expect(error).toMatchObject({ code: 'INVALID_REFERENCE', field: 'untaggedRepositories[1]' });
    expect(error.message).toBe('"untaggedRepositories[1]" starts with a registry host "other.io": give the repository inside the target registry, without its host');
  });

  it('takes exactly MAX_TARGETS targets in all', () => {
    const request = parseImportRequest({ source: SOURCE, images: Array.from({ length: 30 }, (_, i) => `r:t${i}`), untaggedRepositories: Array.from({ length: MAX_TARGETS - 30 }, (_, i) => `u${i}`) });
    expect(request.images.length + request.untaggedRepositories.length).toBe(MAX_TARGETS);
  });

  it('counts too many untagged repositories as too many targets, and too many platforms as an invalid field', () => {
    const untagged = rejection({ source: SOURCE, untaggedRepositories: Array.from({ length: MAX_TARGETS + 1 }, (_, i) => `u${i}`) });
    expect(untagged).toMatchObject({ code: 'TOO_MANY_TARGETS', field: 'untaggedRepositories' });
    const platforms = rejection({ source: SOURCE, platforms: Array.from({ length: MAX_PLATFORMS + 1 }, () => 'linux/amd64') });
    expect(platforms).toMatchObject({ code: 'INVALID_FIELD', field: 'platforms', message: `"platforms" has ${MAX_PLATFORMS + 1} entries, more than the ${MAX_PLATFORMS} accepted` });
  });

  it('checks the source repository of a registry given by resource ID', () => {
    expect(rejection({ source: 'UPPER:1', registry: RESOURCE_ID })).toMatchObject({ code: 'INVALID_REFERENCE', field: 'source', message: expect.stringMatching(/^"source": invalid reference/) });
  });

  it('never echoes a password in an error', () => {
    const error = rejection({ source: SOURCE, password: 'hunter2-very-secret', unknown: true });
    expect(JSON.stringify({ message: error.message, details: error.details })).not.toContain('hunter2');
  });
});

describe('resolveImport', () => {
  it('defaults the target to the source repo:tag in the target registry', () => {
    const { source, targets } = resolveImport(parseImportRequest({ source: SOURCE }), 'target.example:5000');
    expect(source.toString()).toBe(SOURCE);
    expect(targets.map(String)).toEqual(['target.example:5000/library/hello-world:latest']);
  });

  it('makes a digest-only source with no images an untagged import', () => {
    const { targets } = resolveImport(parseImportRequest({ source: `ghcr.io/org/app@${DIGEST}` }), 'target.example');
    expect(targets).toHaveLength(1);
    expect(targets[0].tag).toBeUndefined();
    expect(targets[0].digest).toBeUndefined();
    expect(targets[0].toString()).toBe('target.example/org/app');
  });

  it('qualifies the source with registry and lists tagged and untagged targets, deduplicated', () => {
    const { source, targets } = resolveImport(
      parseImportRequest({ source: 'hello-world:v1', registry: 'src.azurecr.io', images: ['hello:v1', 'hello:v1', 'hello'], untaggedRepositories: ['mirror/hello'] }),
      'dst.azurecr.io',
    );
    expect(source.toString()).toBe('src.azurecr.io/hello-world:v1');
    expect(targets.map(String)).toEqual(['dst.azurecr.io/hello:v1', 'dst.azurecr.io/hello:latest', 'dst.azurecr.io/mirror/hello']);
    const round = targets.map(storeTarget).map(loadTarget);
    expect(round.map(String)).toEqual(targets.map(String));
    expect(round[2].tag).toBeUndefined();
  });

  it('names the field when a target is too long for the target registry', () => {
    const long = `${'a'.repeat(250)}:v1`;
    expect(() => resolveImport(parseImportRequest({ source: SOURCE, images: [long] }), 'a-long-registry-name.example.com')).toThrow(
      expect.objectContaining({ code: 'INVALID_REFERENCE', field: 'images[0]' }),
    );
  });
});
