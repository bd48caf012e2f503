/** The natural tag order that cuts a `latest` N's creation-time candidates (pure, no registry). */
import { compareTagsNaturally } from '../../src/mirror/tag-filter.js';

describe('compareTagsNaturally', () => {
  it('compares digit runs as numbers and the rest by code point', () => {
    const tags = ['build-100', 'build-9', 'nightly-20261130', 'build-10', 'nightly-20261129', 'build-010', 'v2-rc', 'v2', 'build-99999999999999999999', 'Build-1'];
    expect([...tags].sort(compareTagsNaturally)).toEqual(['Build-1', 'build-9', 'build-010', 'build-10', 'build-100', 'build-99999999999999999999', 'nightly-20261129', 'nightly-20261130', 'v2', 'v2-rc']);
  });

  it('is a total order: equal only for equal tags', () => {
    expect(compareTagsNaturally('a1', 'a01')).not.toBe(0);
    expect(Math.sign(compareTagsNaturally('a1', 'a01'))).toBe(-Math.sign(compareTagsNaturally('a01', 'a1')));
    expect(compareTagsNaturally('same-1', 'same-1')).toBe(0);
  });
});
