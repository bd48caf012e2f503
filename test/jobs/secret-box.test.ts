import { randomBytes } from 'node:crypto';
import { ConfigurationError, SecretError } from '../../src/jobs/errors.js';
import { SecretBox } from '../../src/jobs/secret-box.js';
import { jobCredentials, openCredentials, redact, sealCredentials } from '../../src/jobs/source-credentials.js';

const key = () => randomBytes(32).toString('base64');

describe('SecretBox', () => {
  const box = SecretBox.fromSetting(key())!;
  const password = 'correct horse battery staple ✓';

  it('round-trips, with a fresh IV every time', () => {
    const a = box.seal(password, 'job-1');
    const b = box.seal(password, 'job-1');
    expect(a).not.toBe(b);
    expect(box.open(a, 'job-1')).toBe(password);
    expect(a).toMatch(new RegExp(`^v1\\.${box.keyId}\\.[\\w-]{16}\\.[\\w-]+\\.[\\w-]{22}$`));
  });

  it('leaves no trace of the plaintext in the sealed value', () => {
    const sealed = box.seal(password, 'job-1');
    for (const form of [password, Buffer.from(password).toString('base64'), Buffer.from(password).toString('base64url'), Buffer.from(password).toString('hex')]) {
      expect(sealed).not.toContain(form);
      expect(sealed).not.toContain(form.slice(0, 12));
    }
  });

  it('refuses another context, a tampered value and another key', () => {
    const sealed = box.seal(password, 'job-1');
    expect(() => box.open(sealed, 'job-2')).toThrow(SecretError);
    const parts = sealed.split('.');
    const ct = Buffer.from(parts[3], 'base64url');
    ct[0] ^= 1;
    parts[3] = ct.toString('base64url');
    expect(() => box.open(parts.join('.'), 'job-1')).toThrow(/altered/);
    expect(() => SecretBox.fromSetting(key())!.open(sealed, 'job-1')).toThrow(/sealed with another HOIST_SECRET_KEY/);
    expect(() => box.open('garbage', 'job-1')).toThrow(SecretError);
  });

  it('accepts base64 and base64url keys of 32 bytes only', () => {
    expect(SecretBox.fromSetting(undefined)).toBeUndefined();
    expect(SecretBox.fromSetting('  ')).toBeUndefined();
    const raw = randomBytes(32);
    expect(SecretBox.fromSetting(raw.toString('base64'))!.keyId).toBe(SecretBox.fromSetting(raw.toString('base64url'))!.keyId);
    for (const bad of [randomBytes(16).toString('base64'), randomBytes(33).toString('base64'), 'not base64 at all, clearly not a key!!!!!', raw.toString('hex')]) {
      expect(() => SecretBox.fromSetting(bad)).toThrow(ConfigurationError);
    }
    expect(() => SecretBox.fromSetting('x')).toThrow(/base64 of exactly 32 random bytes/);
  });

  it('fingerprints with a key, so equal data under different keys differs', () => {
    const other = SecretBox.fromSetting(key())!;
    expect(box.fingerprint('a')).toBe(box.fingerprint('a'));
    expect(box.fingerprint('a')).not.toBe(other.fingerprint('a'));
  });
});

describe('source credentials', () => {
  it('seal and open for one job; refuse without a key', () => {
    const box = SecretBox.fromSetting(key());
    const sealed = sealCredentials(box, 'job-9', { username: 'robot', password: 's3cr3t-value' });
    expect(sealed).not.toContain('s3cr3t');
    expect(sealed).not.toContain('robot');
    expect(openCredentials(box, 'job-9', sealed)).toEqual({ username: 'robot', password: 's3cr3t-value' });
    expect(() => sealCredentials(undefined, 'job-9', { username: 'a', password: 'b' })).toThrow(/HOIST_SECRET_KEY is not set/);
    expect(() => openCredentials(undefined, 'job-9', sealed)).toThrow(ConfigurationError);
  });

  it('pick the target credentials for the target registry, the source ones for the source', async () => {
    const source = { username: 's', password: 'sp' };
    const target = { username: 't', password: 'tp' };
    const creds = jobCredentials({ id: 'job:1', sourceRegistry: 'src.io', source, targetRegistry: 'dst.io', target });
    expect(await creds.getCredentials('src.io', [])).toEqual({ kind: 'basic', ...source });
    expect(await creds.getCredentials('dst.io', [])).toEqual({ kind: 'basic', ...target });
    expect(await creds.getCredentials('other.io', [])).toBeUndefined();
    expect(await jobCredentials({ id: 'job:2', sourceRegistry: 'same.io', source, targetRegistry: 'same.io', target }).getCredentials('same.io', [])).toEqual({ kind: 'basic', ...target });
  });

  it('redact every occurrence of a secret', () => {
    expect(redact('a hunter22 b hunter22', ['hunter22', undefined])).toBe('a [REDACTED] b [REDACTED]');
  });
});
