/**
 * What the host makes of a storage queue message before the handler sees it: the text decoded per
 * host.json `messageEncoding` (base64 by default; text that is not base64 cannot be decoded and
 * goes to the poison queue), JSON parsed when it parses, and the trigger metadata the Node worker
 * receives, with camelCase keys.
 */
import type { TriggerMetadata } from '@azure/functions';
import type { DequeuedMessageItem } from '@azure/storage-queue';

/** The decoded message, or why it could not be decoded. */
export type DecodedQueueMessage = { ok: true; text: string; payload: unknown } | { ok: false; reason: string };

// .NET's Convert.FromBase64String: the standard alphabet, padding only at the end, length a
// multiple of 4 once whitespace is ignored. Node's decoder would accept far more, silently.
const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;

/** Decodes a message's text as the host would. */
export function decodeQueueMessage(messageText: string, encoding: 'base64' | 'none'): DecodedQueueMessage {
  let text = messageText;
  if (encoding === 'base64') {
    const compact = messageText.replace(/\s+/g, '');
    if (compact.length % 4 !== 0 || !BASE64.test(compact)) {
      return { ok: false, reason: 'the message is not valid base64 (host.json messageEncoding is base64)' };
    }
    text = Buffer.from(compact, 'base64').toString('utf8');
  }
  return { ok: true, text, payload: parseIfJson(text) };
}

/**
 * What the handler receives for a message text: the Node worker turns string trigger data into
 * JSON when it parses (fromRpcTypedData's tryJsonParse), so `{"jobId":"x"}` arrives as an object
 * and plain text as a string.
 */
export function parseIfJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

/**
 * The queue trigger's metadata with the keys and value types the Node worker delivers: numbers
 * for the dequeue count, ISO strings for times.
 */
export function queueTriggerMetadata(message: DequeuedMessageItem, text: string): TriggerMetadata {
  return {
    queueTrigger: text,
    dequeueCount: message.dequeueCount,
    id: message.messageId,
    popReceipt: message.popReceipt,
    insertionTime: message.insertedOn.toISOString(),
    expirationTime: message.expiresOn.toISOString(),
    nextVisibleTime: message.nextVisibleOn.toISOString(),
  };
}
