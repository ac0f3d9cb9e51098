# Shared by ops/smtp/start and ops/smtp/stop (sourced, not run).
# shellcheck shell=bash

smtp_here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

slog() { echo "ops/smtp/${smtp_script:-?}: $*" >&2; }
sdie() {
  slog "error: $*"
  exit 1
}

# Sets smtp_dir (absolute) and smtp_args (the other arguments) from "$@".
smtp_parse_dir() {
  smtp_dir=""
  smtp_args=()
  while (($#)); do
    case "$1" in
      --dir) smtp_dir="${2:?--dir needs a directory}"; shift 2 ;;
      --dir=*) smtp_dir="${1#--dir=}"; shift ;;
      *) smtp_args+=("$1"); shift ;;
    esac
  done
  [ -n "$smtp_dir" ] || sdie "--dir DIR is required"
}

# Is $1 the pid of a serve.py of run dir $2 (guards against a reused pid)?
smtp_pid_is_ours() {
  local pid="$1" dir="$2" cmd
  [ -n "$pid" ] && [ -r "/proc/$pid/cmdline" ] || return 1
  cmd="$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null)" || return 1
  [[ "$cmd" == *"/serve.py --dir $dir "* ]]
}

smtp_running_pid() {
  local pid=""
  [ -f "$smtp_dir/pid" ] && pid="$(cat "$smtp_dir/pid")"
  if smtp_pid_is_ours "$pid" "$smtp_dir"; then echo "$pid"; fi
}

# Is pid $1 still running (a zombie waiting for its parent to reap it has stopped serving)?
smtp_alive() {
  local state
  state="$(sed -n 's/^State:[[:space:]]*\([A-Z]\).*/\1/p' "/proc/$1/status" 2>/dev/null)" || return 1
  [ -n "$state" ] && [ "$state" != Z ] && [ "$state" != X ]
}
