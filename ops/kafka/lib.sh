# Shared by the ops/kafka scripts (sourced, not run). See ops/kafka/README.md.
# shellcheck shell=bash

kafka_here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
kafka_root="$(cd "$kafka_here/../.." && pwd)"

# Where the broker's jars are collected: outside the tracked tree, shared by every clone.
kafka_cache="${SECHEX_KAFKA_CACHE:-${XDG_CACHE_HOME:-${HOME:-/tmp}/.cache}/sechex/kafka}"
kafka_libs="$kafka_cache/libs"
# Where start/stop/kill-broker/restart-broker keep a running cluster when --dir is not given.
kafka_default_dir="${SECHEX_KAFKA_DIR:-${TMPDIR:-/tmp}/sechex-kafka-$(id -u)}"

klog() { echo "ops/kafka/${kafka_script:-?}: $*" >&2; }
kdie() {
  klog "error: $*"
  exit 1
}

# JVM options for every Kafka JVM: small heap, few GC threads (the machine has 2 cores and
# other builds run beside the broker). SECHEX_KAFKA_HEAP overrides the heap flags.
kafka_jvm_opts() {
  local heap="$1"
  # shellcheck disable=SC2206
  local opts=(${SECHEX_KAFKA_HEAP:-$heap}
    -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:ParallelGCThreads=1 -XX:ConcGCThreads=1
    -XX:+ExitOnOutOfMemoryError -Djava.awt.headless=true -Dfile.encoding=UTF-8)
  printf '%s\n' "${opts[@]}"
}

# Runs a Kafka main class with the cached jars (like bin/kafka-run-class.sh), logging WARN and
# above to stderr.
kafka_run_class() {
  local cls="$1"
  shift
  mapfile -t _opts < <(kafka_jvm_opts "-Xms32m -Xmx256m")
  java "${_opts[@]}" -XX:TieredStopAtLevel=1 \
    -Dlog4j.configuration="file:$kafka_here/log4j-tools.properties" \
    -cp "$kafka_libs/*" "$cls" "$@"
}

# Is $1 a live Kafka node of run dir $2 (guards against a reused PID)?
kafka_pid_is_ours() {
  local pid="$1" dir="$2"
  local cmd
  [ -n "$pid" ] && [ -r "/proc/$pid/cmdline" ] || return 1
  cmd="$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null)" || return 1
  [[ "$cmd" == *" kafka.Kafka $dir/node-"* ]]
}

# Prints N free TCP ports on 127.0.0.1, below the kernel's ephemeral range so that outgoing
# connections do not take them between start and restart-broker.
kafka_free_ports() {
  python3 - "$1" <<'EOF'
import random, socket, sys
n = int(sys.argv[1])
lo_eph = int(open("/proc/sys/net/ipv4/ip_local_port_range").read().split()[0])
hi = max(lo_eph - 1, 20000)
lo = 20000 if hi > 21000 else 10000
picked = set()
for _ in range(10000):
    if len(picked) == n:
        break
    p = random.randint(lo, hi)
    if p in picked:
        continue
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.bind(("127.0.0.1", p))
        picked.add(p)
    except OSError:
        pass
    finally:
        s.close()
if len(picked) < n:
    sys.exit("no free ports")
print(" ".join(str(p) for p in picked))
EOF
}

# Does broker $2's metadata, asked at address $1, list broker id $3 as alive (unfenced)?
kafka_lists_broker() {
  local addr="$1" id="$2"
  timeout 10 kcat -b "$addr" -L -m 3 2>/dev/null | grep -q "^  broker $id at "
}

# Parses `--dir DIR` / `--dir=DIR` out of the arguments into kafka_dir; the rest stay in kafka_args.
kafka_parse_dir() {
  kafka_dir="$kafka_default_dir"
  kafka_args=()
  while (($#)); do
    case "$1" in
      --dir) kafka_dir="${2:?--dir needs a value}"; shift 2 ;;
      --dir=*) kafka_dir="${1#--dir=}"; shift ;;
      *) kafka_args+=("$1"); shift ;;
    esac
  done
  kafka_dir="$(realpath -m -- "$kafka_dir")"
}

# Starts node $2 of the cluster in run dir $1 in the background (its own session, stdin and
# stdout detached) and records its PID in node-$2/pid.
kafka_launch_node() {
  local dir="$1" id="$2" nd="$1/node-$2" libs
  libs="$(cat "$dir/libs")"
  mkdir -p "$nd/logs"
  mapfile -t _opts < <(kafka_jvm_opts "$(cat "$dir/heap")")
  setsid java "${_opts[@]}" -Dkafka.logs.dir="$nd/logs" \
    -Dlog4j.configuration="file:$kafka_here/log4j-broker.properties" \
    -cp "$libs/*" kafka.Kafka "$nd/server.properties" </dev/null >>"$nd/logs/stdout.log" 2>&1 &
  local pid=$! i
  echo "$pid" >"$nd/pid"
  # Until the forked shell has exec'd java, the PID does not look like ours yet.
  for ((i = 0; i < 100; i++)); do
    kafka_pid_is_ours "$pid" "$dir" && return 0
    [ -d "/proc/$pid" ] || return 0 # died at once: kafka_wait_ready tells
    sleep 0.05
  done
}

kafka_node_pid() { cat "$1/node-$2/pid" 2>/dev/null || true; }
kafka_node_addr() { echo "127.0.0.1:$(cat "$1/node-$2/port")"; }

# Shows the end of node $2's logs on stderr.
kafka_log_tail() {
  local nd="$1/node-$2"
  for f in "$nd/logs/server.log" "$nd/logs/stdout.log"; do
    [ -s "$f" ] || continue
    echo "---- last lines of $f" >&2
    tail -n "${3:-30}" "$f" >&2
  done
}

# Waits until every node in "$3..." is alive and, asked on its own address, lists all of the
# nodes in "$3..." as live brokers. $1: run dir, $2: timeout in seconds. Returns 1 (after
# showing the logs) on timeout, 2 when a node died, 3 when a node died on a taken port.
kafka_wait_ready() {
  local dir="$1" timeout="$2" id other ok
  shift 2
  local deadline=$((SECONDS + timeout))
  while :; do
    ok=1
    for id in "$@"; do
      if ! kafka_pid_is_ours "$(kafka_node_pid "$dir" "$id")" "$dir"; then
        if grep -qs "Address already in use" "$dir/node-$id/logs/server.log" "$dir/node-$id/logs/stdout.log"; then
          return 3
        fi
        klog "node $id exited while starting"
        kafka_log_tail "$dir" "$id" 40
        return 2
      fi
    done
    for id in "$@"; do
      for other in "$@"; do
        if ! kafka_lists_broker "$(kafka_node_addr "$dir" "$id")" "$other"; then
          ok=0
          break 2
        fi
      done
    done
    ((ok)) && return 0
    if ((SECONDS >= deadline)); then
      klog "not ready after ${timeout} s (kcat -L did not list every broker)"
      for id in "$@"; do kafka_log_tail "$dir" "$id" 30; done
      return 1
    fi
    sleep 0.5
  done
}

# Sends signal $3 to every live node of run dir $1 listed in "$4...", waits up to $2 seconds
# for them to exit, then SIGKILLs what is left.
kafka_stop_nodes() {
  local dir="$1" timeout="$2" sig="$3" id pid
  shift 3
  local pids=()
  for id in "$@"; do
    pid="$(kafka_node_pid "$dir" "$id")"
    if kafka_pid_is_ours "$pid" "$dir"; then
      kill -s "$sig" "$pid" 2>/dev/null || true
      pids+=("$pid")
    fi
  done
  local deadline=$((SECONDS + timeout)) alive
  while :; do
    alive=()
    for pid in "${pids[@]}"; do
      kafka_pid_is_ours "$pid" "$dir" && alive+=("$pid")
    done
    ((${#alive[@]} == 0)) && return 0
    if ((SECONDS >= deadline)); then
      if [ "$sig" = KILL ]; then
        klog "error: still alive after SIGKILL: ${alive[*]}"
        return 1
      fi
      klog "still running ${timeout} s after SIG$sig, SIGKILL: ${alive[*]}"
      kill -KILL "${alive[@]}" 2>/dev/null || true
      deadline=$((SECONDS + 10))
      sig=KILL
    fi
    sleep 0.2
  done
}
