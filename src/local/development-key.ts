/**
 * `npm start`'s development HOIST_SECRET_KEY. When the setting is unset, a key is generated once
 * into a git-ignored file under the project root and used from then on, so imports with
 * credentials work locally out of the box and jobs sealed under it still open after a restart.
 * Only the local host does this: on Azure the key stays a setting the operator must give.
 */
import { randomBytes } from 'node:crypto';
import { linkSync, mkdirSync, readFileSync, unlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { AppSettings } from './settings.js';

/** Where the key is kept, relative to the project root (.gitignore lists `.hoist-dev/`). */
export const DEVELOPMENT_KEY_FILE = path.join('.hoist-dev', 'secret-key');
const SETTING = 'HOIST_SECRET_KEY';
/** 32 bytes, as secret-box.ts requires. */
const KEY_BYTES = 32;

/** The settings with a development HOIST_SECRET_KEY when none is set, and a line saying so. */
export interface DevelopmentKeyResult {
  settings: AppSettings;
  /** Set when the development key is used: what to tell the user. */
  notice?: string;
}

/**
 * Fills in HOIST_SECRET_KEY from the development key file (creating it when absent) when the
 * setting is unset or empty; otherwise returns the settings unchanged.
 */
export function withDevelopmentSecretKey(settings: AppSettings, projectRoot: string): DevelopmentKeyResult {
  if ((settings[SETTING] ?? '').trim() !== '') return { settings };
  const file = path.join(projectRoot, DEVELOPMENT_KEY_FILE);
  const key = readOrCreateKey(file);
  return {
    settings: Object.freeze({ ...settings, [SETTING]: key }),
    notice: `${SETTING} is not set: using the development key in ${DEVELOPMENT_KEY_FILE} (set ${SETTING} to use your own; on Azure it is required)`,
  };
}

function readOrCreateKey(file: string): string {
  mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
  // The key is written whole to a file of this process's own, then linked into place: a link
  // never replaces a key another `npm start` put there first (jobs sealed under it must open),
  // and the key file never exists empty or half-written for that other one to read.
  const temporary = `${file}.${process.pid}.${randomBytes(6).toString('hex')}`;
  writeFileSync(temporary, `${randomBytes(KEY_BYTES).toString('base64')}\n`, { flag: 'wx', mode: 0o600 });
  try {
    linkSync(temporary, file);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
  } finally {
    unlinkSync(temporary);
  }
  return readFileSync(file, 'utf8').trim();
}
