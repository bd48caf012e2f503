import { compareRoutePrecedence, parseRouteTemplate } from '../../src/local/route-template.js';

describe('parseRouteTemplate', () => {
  it.each([
    ['imports', 'imports', {}],
    ['imports', 'IMPORTS', {}],
    ['imports', 'imports/', {}],
    ['imports', 'imports/x', undefined],
    ['imports/{id}', 'imports/abc', { id: 'abc' }],
    ['imports/{id}', 'imports', undefined],
    ['imports/{id}', 'imports/a%20b', { id: 'a b' }],
    ['imports/{id}', 'imports/%E0%A4%A', undefined],
    ['imports/{id?}', 'imports', {}],
    ['imports/{id?}', 'imports/7', { id: '7' }],
    ['items/{id:int}', 'items/42', { id: '42' }],
    ['items/{id:int}', 'items/x', undefined],
    ['items/{id:int?}', 'items', {}],
    ['items/{id:guid}', 'items/3f2504e0-4f89-11d3-9a0c-0305e82c3301', { id: '3f2504e0-4f89-11d3-9a0c-0305e82c3301' }],
    ['items/{id:alpha}', 'items/abc1', undefined],
    ['items/{id:minlength(3)}', 'items/ab', undefined],
    ['items/{id:range(1,5)}', 'items/5', { id: '5' }],
    ['files/{*path}', 'files/a/b/c.txt', { path: 'a/b/c.txt' }],
    ['files/{*path}', 'files', {}],
    ['a/{x}/b/{y}', 'a/1/b/2', { x: '1', y: '2' }],
  ])('%s on %s gives %j', (template, path, expected) => {
    expect(parseRouteTemplate(template).match(path)).toEqual(expected);
  });

  it.each([
    ['items/{id:regex(^a$)}', /not supported/],
    ['files/{*path}/more', /must be the last/],
    ['items/{id?}/details', /required segment follows an optional one/],
    ['items/x{id}', /mixes text/],
  ])('refuses %s', (template, message) => {
    expect(() => parseRouteTemplate(template)).toThrow(message);
  });

  it('orders literals before constrained parameters before parameters before catch-alls', () => {
    const templates = ['items/{*rest}', 'items/{id}', 'items/latest', 'items/{id:int}'].map(parseRouteTemplate);
    expect(templates.sort(compareRoutePrecedence).map((t) => t.template)).toEqual(['items/latest', 'items/{id:int}', 'items/{id}', 'items/{*rest}']);
  });
});
