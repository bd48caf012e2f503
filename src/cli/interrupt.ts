/**
 * Ctrl-C and SIGTERM for `hoist copy`. With checkpoints (--resume-dir) the first signal pauses
 * the copy at the next chunk boundary (a PATCH cut mid-body loses the whole upload session on
 * distribution 2.8), so that the same command resumes it; a second signal exits at once. Without
 * checkpoints nothing could be resumed, so waiting would only delay the exit: it exits at once.
 */

/** The exit code of a copy stopped by a signal, as shells report SIGINT (128 + 2). */
export const EXIT_INTERRUPTED = 130;

const SIGNALS = ['SIGINT', 'SIGTERM'] as const;

export interface Interrupts {
  /** Aborted by the first signal when the copy can be resumed. */
  signal: AbortSignal;
  /** Whether a signal arrived. */
  readonly interrupted: boolean;
  /** Removes the handlers. */
  dispose(): void;
}

export interface InterruptOptions {
  /** Whether checkpoints are saved, so a pause can be resumed. */
  resumable: boolean;
  /** Where the notices go (stderr). */
  out: NodeJS.WritableStream;
  /** The command that starts the copy again, shown when nothing can be resumed. */
  command: string;
  /** Exits the process; `process.exit` but in tests. */
  exit?: (code: number) => never;
}

/** Installs the SIGINT and SIGTERM handlers for one copy. */
export function watchInterrupts(options: InterruptOptions): Interrupts {
  const controller = new AbortController();
  const exit = options.exit ?? ((code: number) => process.exit(code));
  let interrupted = false;
  const onSignal = (name: NodeJS.Signals): void => {
    if (interrupted || !options.resumable) {
      if (!options.resumable) {
        options.out.write(
          `hoist: ${name}: stopped; nothing can be resumed without --resume-dir. To start again (blobs already copied are skipped), run:\n  ${options.command}\n`,
        );
      } else {
        options.out.write(`hoist: ${name} again: exiting now; the copy resumes from its last saved checkpoint\n`);
      }
      exit(EXIT_INTERRUPTED);
      return;
    }
    interrupted = true;
    options.out.write(`hoist: ${name}: pausing at the next chunk boundary (press Ctrl-C again to exit at once)\n`);
    controller.abort();
  };
  for (const name of SIGNALS) process.on(name, onSignal);
  return {
    signal: controller.signal,
    get interrupted() {
      return interrupted;
    },
    dispose() {
      for (const name of SIGNALS) process.off(name, onSignal);
    },
  };
}

/** Flags whose values are secrets: shown as placeholders in a printed command. */
const SECRET_FLAGS = new Set(['--src-creds', '--dest-creds']);

/**
 * The command line that runs this copy again, quoted for a POSIX shell, with credentials replaced
 * by a placeholder (secrets never reach the terminal's scrollback or a CI log).
 */
export function rerunCommand(argv: readonly string[]): string {
  const words: string[] = ['hoist'];
  for (let i = 0; i < argv.length; i++) {
    const word = argv[i];
    const eq = word.indexOf('=');
    if (SECRET_FLAGS.has(word) && i + 1 < argv.length) {
      words.push(word, 'USER:PASSWORD');
      i++;
    } else if (eq > 0 && SECRET_FLAGS.has(word.slice(0, eq))) {
      words.push(`${word.slice(0, eq)}=USER:PASSWORD`);
    } else {
      words.push(shellWord(word));
    }
  }
  return words.join(' ');
}

function shellWord(word: string): string {
  return /^[\w@%+=:,./-]+$/.test(word) ? word : `'${word.replace(/'/g, `'\\''`)}'`;
}
