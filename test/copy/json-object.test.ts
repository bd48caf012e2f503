/**
 * jsonObject: valibot's object schemas take an array for an object keyed by index, so a manifest
 * or request body of `[]` or `["a"]` would pass where every field is optional. Only a plain,
 * non-array object may reach the schema.
 */
import * as v from 'valibot';
import { jsonObject } from '../../src/copy/json-object.js';

const schema = jsonObject(v.object({ name: v.optional(v.string()) }));

describe('jsonObject', () => {
  it('passes a plain object on to its schema', () => {
    expect(v.parse(schema, { name: 'a' })).toEqual({ name: 'a' });
    expect(v.parse(schema, {})).toEqual({});
    expect(v.safeParse(schema, { name: 1 }).success).toBe(false);
  });

  it.each([
    [[], 'Array'],
    [['a'], 'Array'],
    [null, 'null'],
    ['{}', '"{}"'],
    [1, '1'],
    [true, 'true'],
    [undefined, 'undefined'],
  ])('refuses %j, saying what it received', (input, received) => {
    const result = v.safeParse(schema, input);

    expect(result.success).toBe(false);
    expect(result.issues?.[0].message).toBe(`Invalid type: Expected Object but received ${received}`);
  });
});
