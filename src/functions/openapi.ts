/**
 * The `openapi` HTTP function: `GET /api/openapi.json` serves the API's OpenAPI 3.1 description,
 * kept beside the functions in openapi.json (every route, body, response and error; the e2e tests
 * check every answer they get against it). Anonymous: it describes the API and holds no data, as
 * the Functions OpenAPI extension serves its document. Adding a route means adding its path item
 * there; test/functions/openapi.test.ts fails for an HTTP function whose route it lacks.
 */
import type { HttpRequest, HttpResponseInit } from '@azure/functions';
import type { FunctionDefinition } from './definition.js';
import { JSON_CONTENT_TYPE } from './http-errors.js';
import openApiDocument from './openapi.json';

/** The document, as the repository keeps it. */
export const OPENAPI_DOCUMENT: Readonly<Record<string, unknown>> = openApiDocument;

/** Serialised once: the document never changes while the app runs. */
const body = JSON.stringify(OPENAPI_DOCUMENT);

/** Answers `GET /api/openapi.json`. */
export async function openApiHandler(_request: HttpRequest): Promise<HttpResponseInit> {
  return { status: 200, body, headers: { 'content-type': JSON_CONTENT_TYPE, 'cache-control': 'public, max-age=300' } };
}

/** The definition both hosts register. */
export const openApiFunction: FunctionDefinition = {
  name: 'openapi',
  trigger: { type: 'http', methods: ['GET'], route: 'openapi.json', authLevel: 'anonymous' },
  handler: openApiHandler,
};
