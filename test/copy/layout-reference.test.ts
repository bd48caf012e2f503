/** `oci:DIR[:TAG]` as skopeo spells it, and how such a reference names and prints itself. */
import { resolve } from 'node:path';
import { InvalidReferenceError } from '../../src/registry/reference.js';
import { isLayoutReference, parseLayoutReference, parseStoreReference } from '../../src/copy/layout-reference.js';

describe('parseLayoutReference', () => {
  it.each([
    ['oci:/srv/images:v1', '/srv/images', 'v1', 'oci:/srv/images:v1'],
    ['oci:./export', './export', undefined, 'oci:./export'],
    ['oci:relative/dir:1.0_rc-2', 'relative/dir', '1.0_rc-2', 'oci:relative/dir:1.0_rc-2'],
    // A Windows drive's ':' belongs to the path, as containers/image reads it on Windows.
    ['oci:C:\\hoist\\oci\\app:v1', 'C:\\hoist\\oci\\app', 'v1', 'oci:C:\\hoist\\oci\\app:v1'],
    ['oci:D:/layouts', 'D:/layouts', undefined, 'oci:D:/layouts'],
  ])('%s → directory %s, tag %s', (input, dir, tag, printed) => {
    const ref = parseLayoutReference(input);
    expect(isLayoutReference(ref) && ref.registry.dir).toBe(dir);
    expect(ref.tag).toBe(tag);
    expect(ref.repository).toBe('');
    expect(ref.toString()).toBe(printed);
    expect(ref.name).toBe(`oci:${dir}`);
  });

  it.each([
    ['oci:', /the layout directory is empty/],
    ['oci::v1', /the layout directory is empty/],
    ['oci:/x:-v1', /tag "-v1" is not valid/],
    ['oci:/x:a:b', /tag "a:b" is not valid.*the directory cannot contain ':'/],
    // A drive letter counts only at the start: here the directory is empty, whatever follows.
    ['oci::C:/x', /the layout directory is empty/],
    ['oci:a:C:\\x', /tag "C:\\x" is not valid/],
    ['registry.example/app:v1', /an OCI layout reference starts with "oci:"/],
    ['docker://oci:/x', /an OCI layout reference starts with "oci:"/],
  ])('refuses %s, saying what is accepted', (input, message) => {
    expect(() => parseLayoutReference(input)).toThrow(InvalidReferenceError);
    expect(() => parseLayoutReference(input)).toThrow(message);
  });

  it('resolves the directory against the working directory when used, and shows it as written', () => {
    const ref = parseStoreReference('oci:./export:v1');
    expect(isLayoutReference(ref) && ref.registry.path).toBe(resolve('./export'));
    expect(isLayoutReference(ref) && ref.registry.dir).toBe('./export');
  });

  it('keeps registry references as they are', () => {
    const ref = parseStoreReference('localhost:5000/app:v1');
    expect(isLayoutReference(ref)).toBe(false);
    expect(ref.name).toBe('localhost:5000/app');
  });
});
