/**
 * Mount hints: where a blob may already live on a target registry. Bounded, so a long-running
 * worker's memory stays flat, with the hints least recently confirmed dropped first.
 */
import { MAX_MOUNT_HINTS, MountHints } from '../../src/registry/mount-hints.js';
import { parseReference } from '../../src/registry/reference.js';

const digest = (n: number) => `sha256:${n.toString(16).padStart(64, '0')}`;
const target = parseReference('target.test/app');
const elsewhere = parseReference('source.test/lib');

describe('MountHints', () => {
  it('offers the source repository on the same registry first, then the repository last seen holding the blob', () => {
    const hints = new MountHints();
    hints.remember(parseReference('target.test/seen'), digest(1));

    expect(hints.candidates(parseReference('target.test/lib'), target, digest(1))).toEqual(['lib', 'seen']);
    expect(hints.candidates(elsewhere, target, digest(1))).toEqual(['seen']);
    expect(hints.candidates(elsewhere, target, digest(2))).toEqual([]);
  });

  it('never offers the target repository itself, nor one repository twice', () => {
    const hints = new MountHints();
    hints.remember(target, digest(1));
    hints.remember(parseReference('target.test/lib'), digest(2));

    expect(hints.candidates(parseReference('target.test/app'), target, digest(1))).toEqual([]);
    expect(hints.candidates(parseReference('target.test/lib'), target, digest(2))).toEqual(['lib']);
  });

  it('keeps at most its bound, dropping the hint least recently remembered', () => {
    const hints = new MountHints(3);
    for (const n of [1, 2, 3]) hints.remember(parseReference(`target.test/r${n}`), digest(n));
    // Remembered again: now the newest, so 2 is the oldest.
    hints.remember(parseReference('target.test/r1'), digest(1));
    hints.remember(parseReference('target.test/r4'), digest(4));

    expect([1, 2, 3, 4].map((n) => hints.candidates(elsewhere, target, digest(n)))).toEqual([['r1'], [], ['r3'], ['r4']]);
    expect(MAX_MOUNT_HINTS).toBe(50_000);
  });
});
