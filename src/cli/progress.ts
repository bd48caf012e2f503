/**
 * Progress on stderr, for people and for logs: a live table of blobs with bytes, rate and ETA on
 * a TTY; one JSON event per line with --json; plain lines otherwise (CI logs).
 */
import type { ProgressEvent } from '../copy/types.js';

export type ProgressReporter = (event: ProgressEvent) => void;

export function formatBytes(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${unit === 0 ? value : value.toFixed(1)} ${units[unit]}`;
}

function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds)) return '--:--';
  const s = Math.round(seconds);
  return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, '0')}`;
}

/** One JSON object per line, each with a timestamp. */
export function jsonReporter(out: NodeJS.WritableStream): ProgressReporter {
  return (event) => out.write(`${JSON.stringify({ time: new Date().toISOString(), ...event })}\n`);
}

/** Plain lines, one per milestone: readable in a CI log. */
export function lineReporter(out: NodeJS.WritableStream): ProgressReporter {
  return (event) => {
    switch (event.type) {
      case 'resolved':
        out.write(`resolved ${event.source} to ${event.digest}\n`);
        break;
      case 'plan':
        out.write(`plan: ${event.manifests} manifests, ${event.blobs} blobs (${event.blobsPresent} already there${event.blobsExternal ? `, ${event.blobsExternal} external` : ''}), ${formatBytes(event.bytesToMove)} to move of ${formatBytes(event.bytesTotal)}\n`);
        break;
      case 'blob-external':
        out.write(`blob ${event.digest.slice(7, 19)} ${formatBytes(event.size)} external: non-distributable, left referenced by URL\n`);
        break;
      case 'blob-start':
        if (event.offset > 0) out.write(`blob ${event.digest.slice(7, 19)} resuming at ${formatBytes(event.offset)} of ${formatBytes(event.size)}\n`);
        break;
      case 'blob-done':
        out.write(`blob ${event.digest.slice(7, 19)} ${formatBytes(event.size)} ${event.outcome}\n`);
        break;
      case 'tag':
        out.write(`tag ${event.reference} ${event.written ? 'written' : 'already at this digest'}\n`);
        break;
      default:
        break;
    }
  };
}

interface ActiveBlob {
  size: number;
  done: number;
  startedAt: number;
  startOffset: number;
}

/** A live view redrawn in place: a line per blob in flight and a total with rate and ETA. */
export function ttyReporter(out: NodeJS.WriteStream): ProgressReporter {
  const active = new Map<string, ActiveBlob>();
  let bytesToMove = 0;
  let moved = 0;
  let drawn = 0;
  const startedAt = Date.now();
  let lastDraw = 0;
  const lines = lineReporter(out);

  function clear(): void {
    if (drawn > 0) out.write(`\x1b[${drawn}A\x1b[J`);
    drawn = 0;
  }
  function draw(force = false): void {
    const now = Date.now();
    if (!force && now - lastDraw < 100) return;
    lastDraw = now;
    clear();
    const rows: string[] = [];
    for (const [digest, blob] of active) {
      const rate = (blob.done - blob.startOffset) / Math.max(0.001, (now - blob.startedAt) / 1000);
      const pct = blob.size ? Math.floor((blob.done / blob.size) * 100) : 100;
      rows.push(`  ${digest.slice(7, 19)} ${String(pct).padStart(3)}% ${formatBytes(blob.done)}/${formatBytes(blob.size)} ${formatBytes(rate)}/s ETA ${formatDuration((blob.size - blob.done) / rate)}`);
    }
    const current = moved + [...active.values()].reduce((sum, b) => sum + b.done - b.startOffset, 0);
    const rate = current / Math.max(0.001, (now - startedAt) / 1000);
    rows.push(`total ${formatBytes(current)}/${formatBytes(bytesToMove)} ${formatBytes(rate)}/s ETA ${formatDuration((bytesToMove - current) / rate)}`);
    out.write(`${rows.join('\n')}\n`);
    drawn = rows.length;
  }
  return (event) => {
    switch (event.type) {
      case 'plan':
        bytesToMove = event.bytesToMove;
        clear();
        lines(event);
        break;
      case 'blob-start':
        active.set(event.digest + event.target, { size: event.size, done: event.offset, startedAt: Date.now(), startOffset: event.offset });
        if (event.offset > 0) {
          clear();
          lines(event);
        }
        break;
      case 'blob-progress': {
        const blob = active.get(event.digest + event.target);
        if (blob) blob.done = event.bytesDone;
        break;
      }
      case 'blob-done': {
        const blob = active.get(event.digest + event.target);
        active.delete(event.digest + event.target);
        if (event.outcome === 'copied') moved += event.size - (blob?.startOffset ?? 0);
        break;
      }
      default:
        clear();
        lines(event);
        break;
    }
    draw(event.type !== 'blob-progress');
  };
}
