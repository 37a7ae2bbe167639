# shellcheck shell=bash
# Shared helpers of the application tests (sourced by redis.sh, postgres.sh,
# sqlite.sh and memcached.sh).  See README.md.
#
# A test calls apps_init NAME first: that makes a temporary directory
# ($work), arms the clean-up (EXIT trap: every process the test started is
# stopped, TERM then KILL, by its process id; on failure the server logs are
# printed and $work is kept), and a watchdog that stops the test
# $BRISK_APPS_DEADLINE seconds after it started, before ctest's TIMEOUT
# would kill it with its servers still running.
#
# Environment (set by tests/apps.cmake): BRISK_LIB (libbrisk.so),
# BRISK_HELPERS (directory of our compiled clients), BRISK_APPS_DEADLINE.
# Exit status 77 means skipped.

set -euo pipefail

fail() { echo "FAIL: $*" >&2; exit 1; }
skip() { echo "SKIP: $*"; exit 77; }
note() { echo "-- $*"; }

: "${BRISK_LIB:?BRISK_LIB must name libbrisk.so (tests/apps.cmake sets it)}"
[ -f "$BRISK_LIB" ] || fail "$BRISK_LIB does not exist (build the brisk target)"
# The file the loader maps, as /proc/PID/maps names it.
BRISK_LIB_REAL=$(readlink -f "$BRISK_LIB")
export LC_ALL=C TZ=UTC

# Is a program installed?  Prints its path; skips the test if not.
need() {
    local path
    path=$(command -v "$1" 2> /dev/null) ||
        skip "$1 is not installed (apt-get install ${2:-$1}; scripts/deps.sh installs it)" >&2
    echo "$path"
}

# The distribution's python3 (a pyenv shim is a bash script that may pick
# another interpreter).
need_python() {
    if [ -x /usr/bin/python3 ]; then echo /usr/bin/python3; else need python3; fi
}

# ---- processes: start, track, stop --------------------------------------------

apps_pids=()       # processes to stop at exit (servers, helpers)
apps_logs=()       # logs to print when the test fails
apps_hooks=()      # commands run first at exit (e.g. pg_ctl stop)
apps_watchdog=

alive() { kill -0 "$1" 2> /dev/null; }

# A zombie (a child that exited but has not been waited for) still answers
# kill -0: count it as gone.
running() {
    local state
    alive "$1" || return 1
    state=$(awk '{print $3}' "/proc/$1/stat" 2> /dev/null) || return 1
    [ "$state" != Z ] && [ -n "$state" ]
}

# wait_gone PID SECONDS: poll until the process is gone.
wait_gone() {
    local pid=$1 i
    for ((i = 0; i < $2 * 10; i++)); do
        running "$pid" || return 0
        sleep 0.1
    done
    return 1
}

# stop_pid PID: TERM, up to 10 s, then KILL.
stop_pid() {
    local pid=$1
    running "$pid" || return 0
    kill -TERM "$pid" 2> /dev/null || true
    wait_gone "$pid" 10 && return 0
    echo "-- process $pid ignored SIGTERM for 10 s: SIGKILL" >&2
    kill -KILL "$pid" 2> /dev/null || true
    wait_gone "$pid" 5 || echo "-- process $pid survived SIGKILL" >&2
}

track_pid() { apps_pids+=("$1"); }
track_log() { apps_logs+=("$1"); }
at_exit() { apps_hooks+=("$1"); }

apps_cleanup() {
    local rc=$? hook pid log
    # Nothing may interrupt the clean-up: the watchdog goes first.
    trap - EXIT
    trap '' TERM INT HUP
    set +e
    if [ -n "$apps_watchdog" ] && alive "$apps_watchdog"; then
        kill -TERM "$apps_watchdog" 2> /dev/null
        wait "$apps_watchdog" 2> /dev/null
    fi
    for hook in "${apps_hooks[@]}"; do
        eval "$hook" > /dev/null 2>&1
    done
    for pid in "${apps_pids[@]}"; do
        stop_pid "$pid"
        wait "$pid" 2> /dev/null    # reap our own children: no zombies left
    done
    if [ "$rc" != 0 ] && [ "$rc" != 77 ]; then
        for log in "${apps_logs[@]}"; do
            [ -s "$log" ] || continue
            echo "---- last lines of $log ----" >&2
            tail -n 60 "$log" >&2
        done
        echo "-- work directory kept: $work" >&2
    else
        rm -rf "$work"
    fi
    exit "$rc"
}

# apps_init NAME: $work, clean-up trap, watchdog.
apps_init() {
    local main=$$
    apps_deadline=${BRISK_APPS_DEADLINE:-120}
    work=$(mktemp -d "${TMPDIR:-/tmp}/brisk-apps-$1.XXXXXX")
    chmod 755 "$work"
    trap apps_cleanup EXIT
    trap 'fail "interrupted"' INT HUP
    trap 'fail "deadline of $apps_deadline s reached (BRISK_APPS_DEADLINE)"' TERM
    # The watchdog: after the deadline, TERM the test and whatever it is
    # waiting for in the foreground (bash runs the trap only once that
    # returns).  Killed by the clean-up, it takes its sleep with it.
    (
        trap 'kill "$sp" 2> /dev/null; exit 0' TERM
        sleep "$apps_deadline" &
        sp=$!
        wait "$sp"
        echo "-- watchdog: $apps_deadline s passed, stopping the test" >&2
        kill -TERM "$main" 2> /dev/null
        for c in $(ps -o pid= --ppid "$main" 2> /dev/null); do
            [ "$c" = "$BASHPID" ] || kill -TERM "$c" 2> /dev/null
        done
    ) &
    apps_watchdog=$!
    note "work directory $work, deadline ${apps_deadline} s"
}

# A TCP port on 127.0.0.1 nobody listens on now (the kernel's choice for
# port 0).  A server may still lose it to another process before binding:
# the tests retry their start on "address in use".
free_port() {
    "$(need_python)" -c 'import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])'
}

# start_bg LOG CMD...: run CMD in the background, stdout and stderr to LOG;
# tracked for clean-up.  Sets $bg_pid (CMD's own process id: bash execs it).
start_bg() {
    local log=$1
    shift
    "$@" < /dev/null > "$log" 2>&1 &
    bg_pid=$!
    track_pid "$bg_pid"
    track_log "$log"
}

# start_server WHAT LOG READY CMD...: start CMD in the background (as
# start_bg) on a free port, which replaces @PORT@ in its arguments, and
# poll "READY PORT" (a command or function) every 0.2 s until it succeeds,
# for up to 60 s.  If the server dies with "Address already in use" in its
# log (another process took the port first), try another port, 3 times in
# all.  Sets $port and $server_pid.
start_server() {
    local what=$1 log=$2 ready=$3 attempt i a args
    shift 3
    for attempt in 1 2 3; do
        port=$(free_port)
        args=()
        for a in "$@"; do args+=("${a//@PORT@/$port}"); done
        start_bg "$log" "${args[@]}"
        server_pid=$bg_pid
        for ((i = 0; i < 300; i++)); do
            if "$ready" "$port" > /dev/null 2>&1; then
                note "$what (pid $server_pid) ready on 127.0.0.1:$port after $((i / 5)).$((i % 5 * 2)) s"
                return 0
            fi
            running "$server_pid" || break
            sleep 0.2
        done
        if ! running "$server_pid" && grep -qi "address already in use" "$log" && [ "$attempt" -lt 3 ]; then
            note "port $port was taken, retrying"
            continue
        fi
        running "$server_pid" || fail "$what exited before it was ready"
        fail "$what (pid $server_pid) not ready after 60 s"
    done
}

# prove_brisk PID WHAT [LIB]: libbrisk.so (the file LD_PRELOAD named) is
# mapped in the process.
prove_brisk() {
    local pid=$1 what=$2 lib=${3:-$BRISK_LIB_REAL}
    [ -r "/proc/$pid/maps" ] || fail "cannot read /proc/$pid/maps ($what)"
    grep -qF " $lib" "/proc/$pid/maps" ||
        fail "$what (pid $pid): $lib is not mapped (/proc/$pid/maps)"
    note "brisk mapped in $what (pid $pid): $(basename "$lib")"
}

# check_log LOG: brisk's diagnostics ("brisk: ...") and crash reports must
# not appear in a server's log.
check_log() {
    if grep -nE '(^|[^a-z_])brisk: ' "$1" >&2 ||
        grep -niE 'crashed by signal|terminated by signal|segmentation fault|stack trace|double free|corrupted|assertion' "$1" >&2; then
        fail "$1 reports an allocator error or a crash"
    fi
}

# pick_user; as_user CMD...: run CMD unprivileged.  As root: as user
# $apps_user (postgres if it exists, else nobody), through runuser (or
# setpriv); as anyone else: as is.  "${asu[@]}" is the prefix that does it,
# for use after timeout or env.
apps_user=
asu=()
pick_user() {
    if [ "$(id -u)" -ne 0 ]; then
        apps_user=$(id -un)
        asu=()
        return
    fi
    if getent passwd postgres > /dev/null; then apps_user=postgres; else apps_user=nobody; fi
    if command -v runuser > /dev/null; then
        asu=(runuser -u "$apps_user" --)
    else
        asu=(setpriv --reuid="$apps_user" --regid="$(id -g "$apps_user")" --init-groups --)
    fi
}
as_user() { "${asu[@]}" "$@"; }

# rss_kib PID: resident set size of a process, in KiB.
rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status" 2> /dev/null || echo 0; }

elapsed_since() {
    local ms=$((($(date +%s%N) - $1) / 1000000))
    printf '%d.%03d s' $((ms / 1000)) $((ms % 1000))
}
