# shellcheck shell=bash disable=SC2154  # $work is set by run.sh
# Shared helpers of the preload tests (sourced by run.sh).
#
# A program runs twice: once plainly, once with LD_PRELOAD=libbrisk.so.  The
# brisk run is traced by the dynamic loader (LD_DEBUG=files,bindings, one
# file per process under LD_DEBUG_OUTPUT), and prove_brisk reads the traces:
# for every process the program started, and every program image each of
# them exec'd, libbrisk.so must have been initialised, libc's own malloc
# calls must bind to it, and every object's malloc-family references must
# end in it (see prove_brisk).  That is the loader's own record of each process, so it
# also covers programs (ls, grep, sort) that close stderr before exit and
# cannot print BRISK_CONF=stats_print=1 statistics.

fail() { echo "FAIL: $*" >&2; exit 1; }
skip() { echo "SKIP: $*"; exit 77; }
note() { echo "-- $*"; }

# Is a program installed?  Prints its path.
need() {
    local path
    # Called as $(need ...): the message must go to stderr to be seen.
    path=$(command -v "$1" 2> /dev/null) ||
        skip "$1 is not installed (apt-get install ${2:-$1}; scripts/deps.sh installs it)" >&2
    echo "$path"
}

# run_plain TAG CMD...: stdout to $work/TAG.out, stderr to $work/TAG.err,
# stdin from $STDIN (default /dev/null).  Returns the exit status.
run_plain() {
    local tag=$1 t0 rc=0
    shift
    t0=$(date +%s%N)
    env -u LD_PRELOAD -u BRISK_CONF "$@" < "${STDIN:-/dev/null}" > "$work/$tag.out" 2> "$work/$tag.err" ||
        rc=$?
    elapsed "$tag" "$t0"
    return "$rc"
}

elapsed() {
    local ms=$((($(date +%s%N) - $2) / 1000000))
    note "$(printf '%-18s %4d.%03d s' "$1" $((ms / 1000)) $((ms % 1000)))"
}

# run_brisk TAG CMD...: as run_plain, under LD_PRELOAD=$BRISK_LIB with
# BRISK_CONF=$BRISK_CONF_RUN, traced into $work/TAG.ld/; then prove_brisk.
# Returns the exit status.
run_brisk() {
    local tag=$1 pid rc=0 t0
    shift
    rm -rf "$work/$tag.ld"
    mkdir -p "$work/$tag.ld"
    t0=$(date +%s%N)
    # The variables go into the environment of the forked child, which execs
    # CMD itself: $! is CMD's process id.
    LD_PRELOAD="$BRISK_LIB" LD_DEBUG=files,bindings LD_DEBUG_OUTPUT="$work/$tag.ld/ld" \
        BRISK_CONF="${BRISK_CONF_RUN:-}" BRISK_EXPECTED=1 \
        "$@" < "${STDIN:-/dev/null}" > "$work/$tag.out" 2> "$work/$tag.err" &
    pid=$!
    wait "$pid" || rc=$?
    elapsed "$tag" "$t0"
    if [ "$rc" -gt 128 ]; then
        echo "$tag: '$*' was killed by signal $((rc - 128)) under brisk" >&2
    fi
    prove_brisk "$work/$tag.ld" "$pid"
    return "$rc"
}

count() { grep -cF -- "$1" "$2" || true; }

# prove_brisk DIR PID: check every trace DIR/ld.* (one per process) in one
# pass.  Per process: as many libbrisk.so initialisations as program images
# (exec replaces the image, the trace file stays), libc's malloc bound to
# brisk, and every malloc-family reference reaching brisk.  A reference
# bound to another object is fine only when that object does not define the
# function but holds its canonical PLT entry (a non-PIE program taking its
# address, such as python3 or cc1): then that object's own reference must be
# bound to libbrisk.so.  A program with its own malloc fails.
prove_brisk() {
    local dir=$1 pid=$2 summary
    [ -s "$dir/ld.$pid" ] ||
        fail "no loader trace for process $pid: the program did not run dynamically linked"
    summary=$(awk -v lib="$BRISK_LIB" '
        function finish(   i, good, libc, name) {
            if (file == "")
                return
            name = "process " file " (trace " file ")"
            procs++
            total += images
            if (images == 0)
                { print "FAIL: " name ": never started a program"; bad++ }
            else if (inits != images || libc_inits != images)
                { print "FAIL: " name ": " images " program image(s) (" programs "), libbrisk.so initialised in " inits; bad++ }
            libc = 0
            for (i = 1; i <= n; i++) {
                good = to[i] == lib || ((to[i], sym[i]) in ok)
                if (!good && strays < 5)
                    { print "FAIL: " name ": " sym[i] " of " from[i] " bound to " to[i]; strays++ }
                if (!good)
                    bad++
                if (good && sym[i] == "malloc" && from[i] ~ /\/libc\.so\.6$/)
                    libc = 1
            }
            if (!libc && images)
                { print "FAIL: " name ": libc.so.6 malloc not bound to libbrisk.so"; bad++ }
            images = inits = libc_inits = n = 0
            programs = ""
            split("", ok)
        }
        BEGIN {
            split("malloc calloc realloc free posix_memalign aligned_alloc memalign valloc pvalloc malloc_usable_size reallocarray", f, " ")
            for (k in f)
                family[f[k]] = 1
        }
        FNR == 1 { finish(); file = FILENAME }
        /transferring control: / { images++ }
        /initialize program: / { p = $0; sub(/.*initialize program: /, "", p); programs = programs (programs == "" ? "" : " ") p }
        index($0, "calling init: " lib) && substr($0, index($0, "calling init: ") + 14) == lib { inits++ }
        /calling init: [^ ]*\/libc\.so\.6$/ { libc_inits++ }
        /binding file .* normal symbol `/ {
            s = substr($0, index($0, "normal symbol `") + 15)
            s = substr(s, 1, index(s, "'\''") - 1)
            if (!(s in family))
                next
            r = substr($0, index($0, "binding file ") + 13)
            j = index(r, " to ")
            a = substr(r, 1, j - 1)
            sub(/ \[[0-9]+\]$/, "", a)
            b = substr(r, j + 4)
            b = substr(b, 1, index(b, "]: normal symbol `") - 1)
            sub(/ \[[0-9]+$/, "", b)
            n++
            from[n] = a; to[n] = b; sym[n] = s
            if (b == lib)
                ok[a, s] = 1
        }
        END {
            finish()
            print "SUMMARY " procs " " total " " bad + 0
        }' "$dir"/ld.*)
    case $summary in *"SUMMARY "*" 0") ;; *)
        echo "$summary" | grep -v '^SUMMARY' | sed "s|process $dir/ld\.|process |" >&2
        fail "brisk did not serve every process (traces in $dir)" ;;
    esac
    # shellcheck disable=SC2086  # split the summary into words
    set -- $summary
    note "libbrisk.so initialised and bound malloc in $2 process(es), $3 program image(s)"
}

# The brisk run printed its statistics at exit (BRISK_CONF=stats_print=1),
# at least $2 times.
expect_stats() {
    local n
    n=$(count "brisk statistics" "$work/$1.err")
    [ "$n" -ge "${2:-1}" ] ||
        { tail -n 20 "$work/$1.err" >&2; fail "no 'brisk statistics' on the stderr of the brisk run"; }
    note "brisk statistics printed by $n process(es)"
}

# Outputs must be identical.
same() {
    if ! cmp -s "$1" "$2"; then
        diff -u "$1" "$2" | head -n 40 >&2 || true
        fail "output differs: $1 vs $2"
    fi
}

# Run CMD plainly and under brisk and compare stdout; for programs reading
# live system trees, a difference is only a failure when a second plain run
# agrees with the first (otherwise the tree changed meanwhile: retry once).
compare_runs() {
    local tag=$1
    shift
    for _ in 1 2; do
        run_plain "$tag.plain" "$@" || fail "plain run of '$*' failed: $(head -c 400 "$work/$tag.plain.err")"
        run_brisk "$tag.brisk" "$@" || fail "brisk run of '$*' failed: $(head -c 400 "$work/$tag.brisk.err")"
        cmp -s "$work/$tag.plain.out" "$work/$tag.brisk.out" && break
        run_plain "$tag.plain2" "$@" || fail "second plain run of '$*' failed"
        if cmp -s "$work/$tag.plain.out" "$work/$tag.plain2.out"; then
            same "$work/$tag.plain.out" "$work/$tag.brisk.out"
        fi
        note "the input changed between runs; retrying"
    done
    same "$work/$tag.plain.out" "$work/$tag.brisk.out"
    note "$tag: $(wc -l < "$work/$tag.brisk.out") identical lines ($(wc -c < "$work/$tag.brisk.out") bytes)"
}
