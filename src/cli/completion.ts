/**
 * `hoist completion bash|zsh|fish`: shell completion scripts, written from the flag table in
 * flags.ts, so every command and flag the parser knows is completed and nothing else.
 */
import { COMMANDS, FLAGS, flagsOf, REGISTRY_COMMANDS, SHELLS, VERSION_FLAG, type CommandName, type FlagSpec } from './flags.js';

/** A shell `hoist completion` writes a script for. */
export type Shell = (typeof SHELLS)[number];

const commandNames = Object.keys(COMMANDS) as CommandName[];

/** The words completing a command's flags: `--name`, and `-h` for a short flag. */
function flagWords(command: CommandName): string[] {
  return flagsOf(command).flatMap((f) => [`--${f.name}`, ...(f.short ? [`-${f.short}`] : [])]);
}

/** Flags whose value is given separately (`--format json`), so the word after them is a value. */
const valueFlags = FLAGS.filter((f) => f.type === 'string');
/** What a flag's value completes to: its choices, paths, or nothing to offer. */
function valueCompletion(flag: FlagSpec): { choices?: readonly string[]; path?: boolean } {
  return { ...(flag.choices && { choices: flag.choices }), ...(flag.path && { path: true }) };
}

/** The first line of a flag's help, for the shells that show descriptions. */
function summary(flag: FlagSpec): string {
  return flag.help.split('\n')[0];
}

function bash(): string {
  const perCommand = commandNames.map((c) => `    ${c}) flags="${flagWords(c).join(' ')}" ;;`).join('\n');
  const values = valueFlags
    .map((f) => {
      const { choices, path } = valueCompletion(f);
      const reply = choices ? `$(compgen -W "${choices.join(' ')}" -- "$cur")` : path ? '$(compgen -f -- "$cur")' : '';
      return `    --${f.name}) COMPREPLY=(${reply}); return ;;`;
    })
    .join('\n');
  return `# hoist completion for bash: source <(hoist completion bash)
_hoist() {
  local cur="\${COMP_WORDS[COMP_CWORD]}" prev="\${COMP_WORDS[COMP_CWORD-1]}" flags=""
  if [ "$COMP_CWORD" -eq 1 ]; then
    COMPREPLY=($(compgen -W "${commandNames.join(' ')} help --help ${VERSION_FLAG}" -- "$cur"))
    return
  fi
  case "$prev" in
${values}
  esac
  case "\${COMP_WORDS[1]}" in
${perCommand}
    *) return ;;
  esac
  if [[ "$cur" == -* ]]; then
    COMPREPLY=($(compgen -W "$flags" -- "$cur"))
  elif [ "\${COMP_WORDS[1]}" = completion ]; then
    COMPREPLY=($(compgen -W "${SHELLS.join(' ')}" -- "$cur"))
  fi
}
complete -o default -F _hoist hoist
`;
}

/** Single-quotes a word for zsh and fish (a quote inside is closed, escaped and reopened). */
function quote(word: string): string {
  return `'${word.replace(/'/g, `'\\''`)}'`;
}

function zsh(): string {
  const perCommand = commandNames.map((c) => `    ${c}) flags=(${flagWords(c).join(' ')}) ;;`).join('\n');
  const values = valueFlags
    .map((f) => {
      const { choices, path } = valueCompletion(f);
      return `    --${f.name}) ${choices ? `compadd -- ${choices.join(' ')}` : path ? '_files' : ':'}; return ;;`;
    })
    .join('\n');
  return `#compdef hoist
# hoist completion for zsh: source <(hoist completion zsh), after compinit
_hoist() {
  local -a flags
  if (( CURRENT == 2 )); then
    compadd -- ${commandNames.join(' ')} help --help ${VERSION_FLAG}
    return
  fi
  case \${words[CURRENT-1]} in
${values}
  esac
  case \${words[2]} in
${perCommand}
    *) return ;;
  esac
  if [[ \${words[CURRENT]} == -* ]]; then
    compadd -- \${flags[@]}
  elif [[ \${words[2]} == completion ]]; then
    compadd -- ${SHELLS.join(' ')}
  else
    _files
  fi
}
compdef _hoist hoist
`;
}

function fish(): string {
  const lines = ['# hoist completion for fish: hoist completion fish | source', 'complete -c hoist -f'];
  for (const c of commandNames) lines.push(`complete -c hoist -n __fish_use_subcommand -a ${c} -d ${quote(COMMANDS[c].summary)}`);
  lines.push(`complete -c hoist -n __fish_use_subcommand -l version -d ${quote('print the version')}`);
  for (const flag of FLAGS) {
    const { choices, path } = valueCompletion(flag);
    const value = flag.type === 'string' ? (choices ? ` -x -a ${quote(choices.join(' '))}` : path ? ' -r -F' : ' -x') : '';
    lines.push(`complete -c hoist -n ${quote(`__fish_seen_subcommand_from ${flag.commands.join(' ')}`)} -l ${flag.name}${flag.short ? ` -s ${flag.short}` : ''}${value} -d ${quote(summary(flag))}`);
  }
  lines.push(`complete -c hoist -n ${quote('__fish_seen_subcommand_from completion')} -a ${quote(SHELLS.join(' '))}`);
  lines.push(`complete -c hoist -n ${quote(`__fish_seen_subcommand_from ${REGISTRY_COMMANDS.join(' ')}`)} -F`);
  return `${lines.join('\n')}\n`;
}

/** The completion script for `shell`. */
export function completionScript(shell: Shell): string {
  return { bash, zsh, fish }[shell]();
}
