/**
 * Reading JSON documents from outside: text that may not be JSON at all, and documents that must
 * hold an object. valibot's object and record schemas take an array as an object keyed by index,
 * so without `jsonObject` `[]` passes where every field is optional and `["a"]` reads as
 * `{ "0": "a" }`.
 */
import * as v from 'valibot';

/** `schema`, refusing anything but a non-array object before `schema` reads it. */
export function jsonObject<TSchema extends v.GenericSchema<object>>(schema: TSchema) {
  return v.pipe(
    v.custom<object>(
      (input) => typeof input === 'object' && input !== null && !Array.isArray(input),
      (issue) => `Invalid type: Expected Object but received ${issue.received}`,
    ),
    schema,
  );
}

/**
 * `text` parsed, or undefined when it is not JSON: for files whose schema check comes next and
 * refuses undefined like any other bad content (JSON.parse's own message would quote the file).
 */
export function safeJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}
