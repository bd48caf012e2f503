/**
 * What a blob's `urls` can put into an error: a descriptor may list any number of them, of any
 * length, and the error ends up in a job record and a terminal.
 */
import { MAX_URL_FAILURES_QUOTED, openUrlBlob, UrlBlobError } from '../../src/registry/url-blob.js';

const failureOf = async (urls: string[]) => {
  const stream = openUrlBlob({ urls, digest: `sha256:${'0'.repeat(64)}`, size: 2 });
  return (await stream.toArray().then(() => undefined, (e: unknown) => e)) as UrlBlobError;
};

it('quotes the first failures of 1,000 URLs and counts the rest', async () => {
  const error = await failureOf(Array.from({ length: 1000 }, (_, i) => `not a url ${i} ${'x'.repeat(1000)}`));
  expect(error).toBeInstanceOf(UrlBlobError);
  expect(error.failures).toHaveLength(MAX_URL_FAILURES_QUOTED);
  expect(error.message).toMatch(/"not a url 4 x+…" is not a URL; and 995 more$/);
  expect(error.message).not.toContain('not a url 5 ');
  expect(error.message.length).toBeLessThan(2000);
});

it('quotes no escape sequence a manifest put in its URLs', async () => {
  // The second is a URL whose host refuses the connection (nothing listens on port 1).
  const error = await failureOf(['\u001b[31mnot a url', 'http://127.0.0.1:1/\u001b[31mred']);
  expect(error).toBeInstanceOf(UrlBlobError);
  expect(error.message).toContain('"[31mnot a url" is not a URL');
  expect(error.message).not.toContain('\u001b');
});
