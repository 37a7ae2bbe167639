#!/usr/bin/env bash
# Example tests: build examples/echo_server against the brisk that the
# package.install test put in a scratch prefix, the ways its README says,
# and run it.
#
#   run.sh find_package   the example's CMake project, CMAKE_PREFIX_PATH=<prefix>
#                         (the server links brisk::brisk, libbrisk.so)
#   run.sh static         the same with -DECHO_SERVER_STATIC=ON
#                         (brisk::brisk_static, libbrisk.a)
#   run.sh pkg_config     the example's Makefile, PKG_CONFIG_PATH=<prefix>/lib/pkgconfig
#                         (the documented cc commands if make is missing)
#
# Then, for each: the server on a port of its own choosing (port 0), the
# load client (ECHO_CONNECTIONS x ECHO_REQUESTS, every checksum verified),
# brisk proven in the server process (libbrisk.so from the prefix in
# /proc/PID/maps; for the static link, brisk's symbols in the executable and
# no libbrisk.so), SIGTERM and exit status 0; then a second server stopped
# by a "quit" request, exit status 0.  Every process started is stopped at
# exit (trap), and none may be left running the server.
#
# Environment (set by tests/examples.cmake): BRISK_PREFIX, BRISK_WORK,
# BRISK_VERSION, EXAMPLES_SOURCE (the examples/ directory), CMAKE_COMMAND,
# CMAKE_GENERATOR, CC, PKG_CONFIG (may be empty), MAKE (may be empty),
# ECHO_CONNECTIONS, ECHO_REQUESTS.  Exit status 77 means skipped (only when
# pkg-config is missing, for the pkg_config step).
set -euo pipefail

step=${1:?usage: run.sh find_package|static|pkg_config}
: "${BRISK_PREFIX:?}" "${BRISK_WORK:?}" "${BRISK_VERSION:?}" "${EXAMPLES_SOURCE:?}"
: "${CMAKE_COMMAND:=cmake}" "${CC:=cc}"
: "${ECHO_CONNECTIONS:=8}" "${ECHO_REQUESTS:=200}"
src="$EXAMPLES_SOURCE/echo_server"
export LC_ALL=C

fail() { echo "FAIL: $*" >&2; exit 1; }
skip() { echo "SKIP: $*"; exit 77; }
note() { echo "-- $*"; }
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.2f s", b - a }'; }

work="$BRISK_WORK/$step"
rm -rf "$work"
mkdir -p "$work"

# ---- processes: every one we start is stopped at exit ------------------------

pids=()
logs=()

# A zombie (exited, not yet waited for) still answers kill -0: count it as gone.
running() {
    local state
    kill -0 "$1" 2> /dev/null || return 1
    state=$(awk '{ print $3 }' "/proc/$1/stat" 2> /dev/null) || return 1
    [ -n "$state" ] && [ "$state" != Z ]
}

# wait_gone PID SECONDS
wait_gone() {
    local i
    for ((i = 0; i < $2 * 10; i++)); do
        running "$1" || return 0
        sleep 0.1
    done
    return 1
}

cleanup() {
    local rc=$? pid log
    trap - EXIT INT TERM HUP
    set +e
    for pid in "${pids[@]}"; do
        running "$pid" || continue
        echo "-- stopping process $pid left running" >&2
        kill -TERM "$pid" 2> /dev/null
        wait_gone "$pid" 5 || kill -KILL "$pid" 2> /dev/null
        wait "$pid" 2> /dev/null
    done
    if [ "$rc" != 0 ] && [ "$rc" != 77 ]; then
        for log in "${logs[@]}"; do
            [ -s "$log" ] || continue
            echo "---- $log ----" >&2
            tail -n 40 "$log" >&2
        done
        echo "-- work directory kept: $work" >&2
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'fail "interrupted"' INT TERM HUP

# Processes running the executable $1 (by /proc/PID/exe).
processes_of() {
    local d
    for d in /proc/[0-9]*; do
        [ "$(readlink "$d/exe" 2> /dev/null)" = "$1" ] && echo "${d#/proc/}"
    done
    return 0
}

# ---- the installation --------------------------------------------------------

[ -f "$BRISK_PREFIX/.brisk-installed" ] ||
    fail "no installation in $BRISK_PREFIX (the package.install test must run first)"
libdir=$(cat "$BRISK_PREFIX/.brisk-installed")
major=${BRISK_VERSION%%.*}
# The file the loader maps, as /proc/PID/maps names it.
brisk_so=$(readlink -f "$libdir/libbrisk.so.$major")
[ -f "$brisk_so" ] || fail "$libdir/libbrisk.so.$major is missing"

# ---- build -------------------------------------------------------------------

t0=$(now)
case $step in
find_package | static)
    gen=()
    [ -n "${CMAKE_GENERATOR:-}" ] && gen=(-G "$CMAKE_GENERATOR")
    static=OFF
    [ "$step" = static ] && static=ON
    note "cmake -S $src -B $work/build -DCMAKE_PREFIX_PATH=$BRISK_PREFIX -DECHO_SERVER_STATIC=$static"
    logs+=("$work/configure.log")
    "$CMAKE_COMMAND" -S "$src" -B "$work/build" "${gen[@]}" \
        -DCMAKE_BUILD_TYPE=Release -DCMAKE_C_COMPILER="$CC" \
        -DCMAKE_PREFIX_PATH="$BRISK_PREFIX" -DECHO_SERVER_STATIC="$static" \
        -DCMAKE_FIND_USE_PACKAGE_REGISTRY=OFF > "$work/configure.log" 2>&1 ||
        fail "configuring examples/echo_server failed"
    grep -F -- "-- brisk $BRISK_VERSION from " "$work/configure.log" ||
        fail "find_package(brisk) did not report version $BRISK_VERSION"
    grep -q "from \($(readlink -f "$BRISK_PREFIX")\|$BRISK_PREFIX\)/" "$work/configure.log" ||
        fail "find_package(brisk) found a brisk outside $BRISK_PREFIX"
    logs+=("$work/build.log")
    "$CMAKE_COMMAND" --build "$work/build" --parallel 2 > "$work/build.log" 2>&1 ||
        fail "building examples/echo_server failed"
    bin="$work/build"
    ;;
pkg_config)
    if [ -z "${PKG_CONFIG:-}" ] || ! command -v "$PKG_CONFIG" > /dev/null; then
        skip "pkg-config is not installed (apt-get install pkg-config)"
    fi
    pc=$(find "$BRISK_PREFIX" -name brisk.pc -path '*/pkgconfig/*' -print -quit)
    [ -n "$pc" ] || fail "brisk.pc was not installed under $BRISK_PREFIX"
    export PKG_CONFIG_PATH
    PKG_CONFIG_PATH=$(dirname "$pc")
    note "PKG_CONFIG_PATH=$PKG_CONFIG_PATH: $("$PKG_CONFIG" --cflags --libs brisk)"
    bin="$work/build"
    logs+=("$work/build.log")
    if [ -n "${MAKE:-}" ] && command -v "$MAKE" > /dev/null; then
        note "$MAKE -f $src/Makefile O=$bin"
        "$MAKE" -f "$src/Makefile" O="$bin" CC="$CC" PKG_CONFIG="$PKG_CONFIG" > "$work/build.log" 2>&1 ||
            fail "building examples/echo_server with its Makefile failed"
    else
        note "make not found: the cc commands of the Makefile's header"
        mkdir -p "$bin"
        {
            # shellcheck disable=SC2046  # the flags are words
            "$CC" -std=c11 -O2 -pthread -Wall -Wextra -o "$bin/echo_server" "$src/echo_server.c" \
                $("$PKG_CONFIG" --cflags --libs brisk) \
                -Wl,-rpath,"$("$PKG_CONFIG" --variable=libdir brisk)" &&
                "$CC" -std=c11 -O2 -pthread -Wall -Wextra -o "$bin/echo_client" "$src/echo_client.c"
        } > "$work/build.log" 2>&1 || fail "building examples/echo_server with cc failed"
    fi
    ;;
*)
    fail "unknown step '$step'"
    ;;
esac
if grep -i 'warning:' "$work/build.log"; then
    fail "the example does not build warning-free"
fi
server="$bin/echo_server"
client="$bin/echo_client"
if [ ! -x "$server" ] || [ ! -x "$client" ]; then
    fail "echo_server or echo_client was not built"
fi
note "built in $(since "$t0")"

# How the server links brisk.
readelf -d "$server" > "$work/server.dynamic"
if [ "$step" = static ]; then
    if grep -q 'NEEDED.*libbrisk' "$work/server.dynamic"; then
        fail "the static build of echo_server still needs libbrisk.so"
    fi
    nm "$server" > "$work/server.syms"
    for sym in malloc free calloc realloc brisk_stats; do
        grep -q " T $sym\$" "$work/server.syms" || fail "$sym is not defined in the executable"
    done
    if grep -q ' _int_malloc$\| ptmalloc_init' "$work/server.syms"; then
        fail "glibc's malloc implementation was linked in"
    fi
    note "static link: malloc, free, calloc, realloc and brisk_stats are defined in echo_server itself (nm)"
else
    grep -q "NEEDED.*\[libbrisk\.so\.$major\]" "$work/server.dynamic" ||
        fail "echo_server does not need libbrisk.so.$major"
fi

# ---- run ---------------------------------------------------------------------

# start_server LOG: the server on port 0; sets $server_pid and $port.
start_server() {
    local log=$1 i
    "$server" -t 4 0 < /dev/null > "$log" 2>&1 &
    server_pid=$!
    pids+=("$server_pid")
    logs+=("$log")
    port=
    for ((i = 0; i < 100; i++)); do
        port=$(sed -n 's/^echo_server: listening on 127\.0\.0\.1:\([0-9][0-9]*\) .*/\1/p' "$log")
        [ -n "$port" ] && break
        running "$server_pid" || fail "echo_server exited before listening"
        sleep 0.1
    done
    [ -n "$port" ] || fail "echo_server did not listen within 10 s"
    note "echo_server (pid $server_pid) listening on 127.0.0.1:$port"
}

# expect_exit_0 HOW: wait up to 10 s for the server to exit; its status must be 0.
expect_exit_0() {
    local how=$1 rc=0 t
    t=$(now)
    wait_gone "$server_pid" 10 || fail "echo_server did not exit within 10 s of $how"
    wait "$server_pid" || rc=$?
    [ "$rc" = 0 ] || fail "echo_server exited with status $rc after $how"
    note "echo_server exited with status 0 $(since "$t") after $how"
}

start_server "$work/server.log"
grep -F "echo_server: malloc() is served by brisk" "$work/server.log" ||
    fail "the server does not report malloc() served by brisk"

maps="/proc/$server_pid/maps"
[ -r "$maps" ] || fail "cannot read $maps"
if [ "$step" = static ]; then
    if grep -q 'libbrisk' "$maps"; then
        fail "a libbrisk shared object is mapped in the statically linked server"
    fi
else
    grep -qF " $brisk_so" "$maps" || fail "$brisk_so is not mapped in echo_server (pid $server_pid)"
    note "$brisk_so is mapped in echo_server (pid $server_pid)"
fi

t=$(now)
total=$((ECHO_CONNECTIONS * ECHO_REQUESTS))
logs+=("$work/client.log")
rc=0
timeout 60 "$client" -c "$ECHO_CONNECTIONS" -n "$ECHO_REQUESTS" "$port" > "$work/client.log" 2>&1 || rc=$?
cat "$work/client.log"
[ "$rc" != 124 ] || fail "echo_client did not finish within 60 s"
[ "$rc" = 0 ] || fail "echo_client exited with status $rc"
grep -qxF "echo_client: OK: all $total checksums verified" "$work/client.log" ||
    fail "echo_client did not verify all $total checksums"
note "client done in $(since "$t")"
running "$server_pid" || fail "echo_server died under load"

kill -TERM "$server_pid"
expect_exit_0 SIGTERM
cat "$work/server.log"
grep -qx "echo_server: stopping (SIGTERM)" "$work/server.log" || fail "no 'stopping (SIGTERM)' line"
grep -q "^echo_server: served $total requests (0 failed) on $ECHO_CONNECTIONS connections" "$work/server.log" ||
    fail "the server's count of requests is not $total with none failed"

# Second run: shut down by a "quit" request.
start_server "$work/server-quit.log"
timeout 20 "$client" -q "$port" || fail "echo_client -q failed"
expect_exit_0 '"quit"'
grep -qx "echo_server: stopping (quit request)" "$work/server-quit.log" || fail "no 'stopping (quit request)' line"

left=$(processes_of "$(readlink -f "$server")")
[ -z "$left" ] || fail "echo_server processes left running: $left"
note "no echo_server process left"
echo "examples.$step: OK ($(since "$t0"))"
