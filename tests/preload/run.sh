#!/usr/bin/env bash
# Preload tests: real programs run with and without LD_PRELOAD=libbrisk.so;
# their output must be identical, and the dynamic loader's trace must show
# brisk in every process they started (see lib.sh).
#
#   run.sh TEST     TEST: ls grep python gcc git sqlite3 sort libc_alloc cxx_ops
#
# Environment (set by tests/preload.cmake): BRISK_LIB (libbrisk.so, absolute
# path), BRISK_WORK (scratch directory), BRISK_HELPERS (directory of the
# gen, libc_alloc and cxx_ops programs).  Exit status 77 means skipped.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$here/lib.sh"

test=${1:?usage: run.sh TEST}
: "${BRISK_LIB:?}" "${BRISK_WORK:?}" "${BRISK_HELPERS:?}"
case $BRISK_LIB in /*) ;; *) fail "BRISK_LIB must be an absolute path" ;; esac
[ -f "$BRISK_LIB" ] || fail "$BRISK_LIB does not exist (build the brisk target)"

work="$BRISK_WORK/$test"
rm -rf "$work"
mkdir -p "$work"
export LC_ALL=C.UTF-8 TZ=UTC
# shellcheck disable=SC2034  # read by run_brisk in lib.sh
BRISK_CONF_RUN=

case $test in
ls)
    # ls -lR: directory reading, sorting, user/group name lookups.
    ls=$(need ls coreutils)
    trees=()
    for d in /usr/share/doc /usr/include; do
        [ -d "$d" ] && trees+=("$d")
    done
    [ ${#trees[@]} -gt 0 ] || skip "neither /usr/share/doc nor /usr/include exists"
    compare_runs ls "$ls" -lR --time-style=full-iso "${trees[@]}"
    ;;

grep)
    # grep -r over /usr/include: a DFA pattern, a back-reference (glibc
    # regex), and case-insensitive multibyte matching.
    grep=$(need grep)
    [ -d /usr/include ] || skip "/usr/include does not exist"
    compare_runs grep_dfa "$grep" -rnE 'alloc|free|mmap' /usr/include
    compare_runs grep_backref env LC_ALL=C "$grep" -rnE '([a-z]{3,})_\1' /usr/include
    compare_runs grep_icase "$grep" -rniE '\b(str|mem)[a-z]*\(' /usr/include
    ;;

python)
    # Prefer the distribution's interpreter (a pyenv shim is a bash script).
    if [ -x /usr/bin/python3 ]; then python=/usr/bin/python3; else python=$(need python3); fi
    export PYTHONHASHSEED=0 PYTHONDONTWRITEBYTECODE=1
    BRISK_CONF_RUN=stats_print=1
    compare_runs python "$python" "$here/workload.py"
    # workload.py itself checked /proc/self/maps and brisk_stats().
    grep -F "workload.py: libbrisk mapped" "$work/python.brisk.err" ||
        fail "workload.py did not report libbrisk in its own process"
    expect_stats python.brisk
    ;;

gcc)
    # gcc -c of a C and a C++ file: the driver, cc1/cc1plus and as all run
    # under brisk; the objects must be byte-identical, and the linked
    # programs must print the same.
    gcc=$(need gcc)
    gxx=$(need g++)
    BRISK_CONF_RUN=stats_print=1
    for mode in plain brisk; do
        mkdir -p "$work/$mode"
        runner=run_$mode
        "$runner" "cc.$mode" "$gcc" -O2 -g -frandom-seed=brisk -c "$here/gcc_input.c" -o "$work/$mode/c.o" ||
            fail "$mode: gcc -c failed: $(head -c 600 "$work/cc.$mode.err")"
        "$runner" "cxx.$mode" "$gxx" -std=c++17 -O2 -g -frandom-seed=brisk -c "$here/gxx_input.cc" \
            -o "$work/$mode/cxx.o" || fail "$mode: g++ -c failed: $(head -c 600 "$work/cxx.$mode.err")"
        "$runner" "ld.$mode" "$gcc" -o "$work/$mode/c" "$work/$mode/c.o" -lm ||
            fail "$mode: linking with gcc failed: $(head -c 600 "$work/ld.$mode.err")"
        "$runner" "ldxx.$mode" "$gxx" -o "$work/$mode/cxx" "$work/$mode/cxx.o" ||
            fail "$mode: linking with g++ failed: $(head -c 600 "$work/ldxx.$mode.err")"
    done
    same "$work/plain/c.o" "$work/brisk/c.o"
    same "$work/plain/cxx.o" "$work/brisk/cxx.o"
    for prog in c cxx; do
        "$work/plain/$prog" > "$work/$prog.plain.run" || fail "plain-compiled $prog failed"
        "$work/brisk/$prog" > "$work/$prog.brisk.run" || fail "brisk-compiled $prog failed"
        same "$work/$prog.plain.run" "$work/$prog.brisk.run"
    done
    for tag in cc cxx ld ldxx; do
        expect_stats "$tag.brisk" 2    # the driver and at least one tool
    done
    note "objects identical: c.o $(wc -c < "$work/brisk/c.o") bytes, cxx.o $(wc -c < "$work/brisk/cxx.o") bytes"
    ;;

git)
    need git > /dev/null
    BRISK_CONF_RUN=stats_print=1
    run_plain git.plain sh "$here/git_workload.sh" "$work/plain" ||
        fail "plain git workload failed: $(tail -c 800 "$work/git.plain.err")"
    run_brisk git.brisk sh "$here/git_workload.sh" "$work/brisk" ||
        fail "git workload under brisk failed: $(tail -c 800 "$work/git.brisk.err")"
    same "$work/git.plain.out" "$work/git.brisk.out"
    grep -qx "files 1000" "$work/git.brisk.out" || fail "git ls-files does not count 1000 files"
    grep -qx "fsck ok" "$work/git.brisk.out" || fail "git fsck failed under brisk"
    expect_stats git.brisk 10
    sed -n 's/^\(commit[12]\) /-- \1 /p' "$work/git.brisk.out"
    ;;

sqlite3)
    sqlite3=$(need sqlite3)
    BRISK_CONF_RUN=stats_print=1
    STDIN="$here/sqlite_workload.sql" run_plain sqlite3.plain "$sqlite3" -bail "$work/plain.db" ||
        fail "plain sqlite3 failed: $(head -c 600 "$work/sqlite3.plain.err")"
    STDIN="$here/sqlite_workload.sql" run_brisk sqlite3.brisk "$sqlite3" -bail "$work/brisk.db" ||
        fail "sqlite3 under brisk failed: $(head -c 600 "$work/sqlite3.brisk.err")"
    same "$work/sqlite3.plain.out" "$work/sqlite3.brisk.out"
    grep -qx ok "$work/sqlite3.brisk.out" || fail "PRAGMA integrity_check did not say ok"
    expect_stats sqlite3.brisk
    note "$(grep -c . "$work/sqlite3.brisk.out") identical result lines"
    ;;

sort)
    sort=$(need sort coreutils)
    "$BRISK_HELPERS/gen" lines 1150000 > "$work/input" || fail "generating the input failed"
    note "input: $(wc -c < "$work/input") bytes, $(wc -l < "$work/input") lines"
    # A small buffer forces temporary files and a merge; then a keyed,
    # numeric, stable sort with the default (large) buffer; both threaded.
    mkdir -p "$work/tmp"
    compare_runs sort_merge env LC_ALL=C "$sort" --parallel=2 -S 8M -T "$work/tmp" "$work/input"
    compare_runs sort_keys "$sort" --parallel=2 -s -t "$(printf '\t')" -k2,2n -k1,1 "$work/input"
    note "sha256 $(sha256sum < "$work/sort_keys.brisk.out" | cut -c1-16)"
    rm -f "$work/input" "$work"/sort_*.out
    ;;

libc_alloc)
    run_brisk libc_alloc "$BRISK_HELPERS/libc_alloc" /usr/include ||
        fail "libc_alloc failed: $(cat "$work/libc_alloc.err")"
    cat "$work/libc_alloc.out"
    ;;

cxx_ops)
    run_brisk cxx_ops "$BRISK_HELPERS/cxx_ops" || fail "cxx_ops failed: $(cat "$work/cxx_ops.err")"
    cat "$work/cxx_ops.out"
    ;;

*)
    fail "unknown test '$test'"
    ;;
esac
echo "$test: OK"
