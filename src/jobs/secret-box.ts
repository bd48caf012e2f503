/**
 * AES-256-GCM sealing of secrets at rest under HOIST_SECRET_KEY.
 *
 * Key format: base64 (standard or URL-safe) of exactly 32 random bytes, e.g. the output of
 * `openssl rand -base64 32` or `node -e "console.log(crypto.randomBytes(32).toString('base64'))"`.
 * When the setting is missing, nothing can be sealed: the import API refuses requests that carry
 * credentials (500 CONFIGURATION_ERROR) and accepts the rest.
 *
 * Sealed format: `v1.<key id>.<iv>.<ciphertext>.<tag>`, base64url parts, a 12-byte random IV and a
 * 16-byte tag. The key id (8 hex digits derived from the key) tells a wrong or rotated key apart
 * from tampering. The caller's context string (the job id) is bound as additional authenticated
 * data, so a sealed value copied onto another job does not open.
 */
import { createCipheriv, createDecipheriv, createHash, createHmac, hkdfSync, randomBytes } from 'node:crypto';
import { ConfigurationError, SecretError } from './errors.js';

const VERSION = 'v1';
const KEY_BYTES = 32;
const IV_BYTES = 12;
const TAG_BYTES = 16;
const BASE64_32_BYTES = /^[A-Za-z0-9+/_-]{43}=?$/;

/** Seals and opens secrets with one AES-256-GCM key. */
export class SecretBox {
  /** Short public identifier of the key, stored with each sealed value. */
  readonly keyId: string;
  private readonly macKey: Buffer;

  private constructor(private readonly key: Buffer) {
    this.keyId = createHash('sha256').update('hoist key id\0').update(key).digest('hex').slice(0, 8);
    this.macKey = Buffer.from(hkdfSync('sha256', key, Buffer.alloc(0), 'hoist request fingerprint', 32));
  }

  /**
   * The box for a HOIST_SECRET_KEY value; undefined when it is unset. Throws ConfigurationError
   * when it is not base64 of 32 bytes.
   */
  static fromSetting(value: string | undefined, setting = 'HOIST_SECRET_KEY'): SecretBox | undefined {
    if (value === undefined || value.trim() === '') return undefined;
    const text = value.trim();
    if (!BASE64_32_BYTES.test(text)) {
      throw new ConfigurationError(setting, `${setting} must be base64 of exactly ${KEY_BYTES} random bytes (generate one with: openssl rand -base64 32)`);
    }
    return new SecretBox(Buffer.from(text.replace(/-/g, '+').replace(/_/g, '/'), 'base64'));
  }

  /** Encrypts `plaintext`, binding it to `context` (e.g. the job id). */
  seal(plaintext: string, context: string): string {
    const iv = randomBytes(IV_BYTES);
    const cipher = createCipheriv('aes-256-gcm', this.key, iv, { authTagLength: TAG_BYTES });
    cipher.setAAD(aad(context));
    const ciphertext = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final()]);
    return [VERSION, this.keyId, iv, ciphertext, cipher.getAuthTag()].map((p) => (typeof p === 'string' ? p : p.toString('base64url'))).join('.');
  }

  /** Decrypts a value sealed for `context`. Throws SecretError when the key or context is wrong or the value was altered. */
  open(sealed: string, context: string): string {
    const parts = sealed.split('.');
    if (parts.length !== 5 || parts[0] !== VERSION) throw new SecretError('the sealed value is not in the v1 format');
    const [, keyId, iv, ciphertext, tag] = parts;
    if (keyId !== this.keyId) {
      throw new SecretError(`the value was sealed with another HOIST_SECRET_KEY (key id ${keyId}, current ${this.keyId}); restore that key or resubmit the import`);
    }
    try {
      const decipher = createDecipheriv('aes-256-gcm', this.key, Buffer.from(iv, 'base64url'), { authTagLength: TAG_BYTES });
      decipher.setAAD(aad(context));
      decipher.setAuthTag(Buffer.from(tag, 'base64url'));
      return Buffer.concat([decipher.update(Buffer.from(ciphertext, 'base64url')), decipher.final()]).toString('utf8');
    } catch {
      throw new SecretError('the sealed value failed authentication: it was altered or belongs to another job');
    }
  }

  /** A keyed fingerprint (HMAC-SHA256, hex) of data that may contain secrets. */
  fingerprint(data: string): string {
    return createHmac('sha256', this.macKey).update(data).digest('hex');
  }
}

function aad(context: string): Buffer {
  return Buffer.from(`hoist:${VERSION}:${context}`, 'utf8');
}
