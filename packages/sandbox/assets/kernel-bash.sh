# hutch's Bash kernel driver: one bash that keeps cwd, variables and functions across cells.
#
# Runs inside the sandbox. Commands arrive on fd 60 as a header line `<type> <id> <bytes>` and
# <bytes> of payload; events leave on fd 61 as JSON lines, each optionally followed by
# `payloadBytes` raw bytes. After each cell a sentinel goes to stdout and stderr, so that output
# of the cell's background processes is told apart from the next cell's. Every name of the driver
# starts with __hutch_ and is left out of snapshots.

__hutch_dir=${BASH_SOURCE[0]%/*}
__hutch_count=0
__hutch_cell=
__hutch_interrupted=

# A newline first ends whatever partial line a cell may have left on the pipe.
__hutch_send() { printf '\n%s\n' "$1" >&61; }

# Reads one command; false at the end of the pipe.
__hutch_read() {
  local __hutch_header
  IFS= read -r -u 60 __hutch_header || return 1
  read -r __hutch_type __hutch_id __hutch_length <<<"$__hutch_header"
  __hutch_payload=
  if [[ $__hutch_length -gt 0 ]]; then
    LC_ALL=C IFS= read -r -d '' -N "$__hutch_length" -u 60 __hutch_payload
  fi
  return 0
}

__hutch_finish() {
  local __hutch_status=$1 __hutch_ok=false
  trap '' INT
  [[ $__hutch_status -eq 0 && -z $__hutch_interrupted ]] && __hutch_ok=true
  printf '\0hutch-cell-end:%s\0' "$__hutch_cell"
  printf '\0hutch-cell-end:%s\0' "$__hutch_cell" >&2
  __hutch_send "{\"type\":\"done\",\"id\":\"$__hutch_cell\",\"executionCount\":$__hutch_count,\"ok\":$__hutch_ok,\"exitCode\":$__hutch_status}"
  __hutch_cell=
  __hutch_interrupted=
}

# A JSON string of anything: every byte outside printable ASCII, quotes and backslashes escaped.
__hutch_json() {
  local LC_ALL=C __hutch_text=$1 __hutch_out= __hutch_i __hutch_c
  for ((__hutch_i = 0; __hutch_i < ${#__hutch_text}; __hutch_i++)); do
    __hutch_c=${__hutch_text:__hutch_i:1}
    case $__hutch_c in
      '"') __hutch_out+='\"' ;;
      '\') __hutch_out+='\\' ;;
      [[:print:]]) __hutch_out+=$__hutch_c ;;
      *) printf -v __hutch_c '\\u%04x' "'$__hutch_c"; __hutch_out+=$__hutch_c ;;
    esac
  done
  printf '"%s"' "$__hutch_out"
}

__hutch_snapshot() {
  local __hutch_file=/tmp/.hutch-kernel-state __hutch_name __hutch_saved= __hutch_names=
  {
    printf 'hutch-kernel:bash:1\n'
    printf 'cd -- %q 2>/dev/null\n' "$PWD"
    while IFS= read -r __hutch_name; do
      case $__hutch_name in
        __hutch_*|BASH*|EUID|UID|PPID|SHELLOPTS|GROUPS|FUNCNAME|PIPESTATUS|RANDOM|SECONDS|LINENO|HISTCMD|SRANDOM|EPOCH*|OPTIND|OPTERR|PWD|OLDPWD|SHLVL|_|COMP_*|DIRSTACK|HOSTNAME|HOSTTYPE|MACHTYPE|OSTYPE|IFS|PS4|BASHPID) continue ;;
      esac
      declare -p -- "$__hutch_name" 2>/dev/null |
        sed '1s/^declare -\([a-zA-Z-]*\) /declare -g\1 /; 1s/^declare -g- /declare -g /' || continue
      __hutch_names+=" $__hutch_name"
    done < <(compgen -v)
    while IFS= read -r __hutch_name; do
      case $__hutch_name in __hutch_*) continue ;; esac
      declare -f -- "$__hutch_name"
      __hutch_names+=" $__hutch_name"
    done < <(compgen -A function)
    printf '#names%s\n' "$__hutch_names"
  } >"$__hutch_file"
  for __hutch_name in $__hutch_names; do
    __hutch_saved+="${__hutch_saved:+,}$(__hutch_json "$__hutch_name")"
  done
  __hutch_send "{\"type\":\"snapshot\",\"id\":\"$1\",\"saved\":[$__hutch_saved],\"lost\":[],\"payloadBytes\":$(wc -c <"$__hutch_file")}"
  cat "$__hutch_file" >&61
  rm -f "$__hutch_file"
}

__hutch_restore() {
  local __hutch_file=/tmp/.hutch-kernel-state __hutch_name __hutch_restored=
  printf '%s' "$__hutch_payload" >"$__hutch_file"
  __hutch_payload=
  if [[ $(head -n1 "$__hutch_file") != 'hutch-kernel:bash:1' ]]; then
    __hutch_send "{\"type\":\"restored\",\"id\":\"$1\",\"restored\":[],\"lost\":[{\"name\":\"*\",\"reason\":\"the saved state is not a bash kernel's\"}]}"
    return
  fi
  source "$__hutch_file" >/dev/null 2>&1
  for __hutch_name in $(sed -n 's/^#names//p' "$__hutch_file"); do
    __hutch_restored+="${__hutch_restored:+,}$(__hutch_json "$__hutch_name")"
  done
  rm -f "$__hutch_file"
  __hutch_send "{\"type\":\"restored\",\"id\":\"$1\",\"restored\":[$__hutch_restored],\"lost\":[]}"
}

trap '' INT
cd /work || exit 1
__hutch_send "{\"type\":\"ready\",\"pid\":$$}"
source "$__hutch_dir/kernel-bash-loop.sh"
