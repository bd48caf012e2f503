/** The copy engine's public surface, used by the CLI and the queue worker. */
export { copy, DEFAULT_MAX_BLOB_BYTES, findExistingTags, resolveDigest } from './engine.js';
export { CopyError, type CopyErrorCode } from './errors.js';
export { parsePlatform, formatPlatform } from './platform.js';
export type * from './types.js';
export { readSourceGraph } from './source-graph.js';
