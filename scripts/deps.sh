#!/usr/bin/env bash
# Install the Debian packages brisk needs to build, test and benchmark.
#
#   scripts/deps.sh          install what is missing (apt-get; sudo if not root)
#   scripts/deps.sh --check  only report; exit 1 if something is missing
#
# Only missing packages are installed (checked with dpkg-query).  As root it
# runs apt-get update and apt-get install -y; otherwise through sudo when
# sudo is available, else it prints the apt-get command to run and exits 1.
set -euo pipefail

packages=(
    # build
    build-essential gcc g++ cmake ninja-build pkg-config
    liburcu-dev                 # lfstack headers (header-only use)
    # benchmarks and the allocators they compare against
    libhwloc-dev libbenchmark-dev
    libjemalloc2 libjemalloc-dev
    libtcmalloc-minimal4 libgoogle-perftools-dev
    libmimalloc2.0 libmimalloc-dev
    # tests: valgrind, and the real programs of the preload tests
    valgrind gdb python3 git sqlite3
    # tests: the servers and databases of the apps tests (tests/apps)
    redis-server redis-tools
    postgresql                  # initdb, pg_ctl, pgbench (postgresql-15)
    libsqlite3-dev
    memcached libmemcached-tools
)
# Plots: either tool will do; gnuplot-nox is the smaller.
plot_alternatives=(gnuplot-nox python3-matplotlib)

check_only=0
case ${1:-} in
    --check) check_only=1 ;;
    "") ;;
    -h | --help) sed -n '2,9s/^# \{0,1\}//p' "$0"; exit 0 ;;
    *) echo "usage: $0 [--check]" >&2; exit 2 ;;
esac

if ! command -v dpkg-query > /dev/null || ! command -v apt-get > /dev/null; then
    echo "deps.sh: this script needs a Debian-based system (dpkg, apt-get)" >&2
    exit 1
fi

installed() {
    [ "$(dpkg-query -W -f='${db:Status-Status}' "$1" 2> /dev/null)" = installed ]
}

missing=()
for p in "${packages[@]}"; do
    installed "$p" || missing+=("$p")
done
have_plot=0
for p in "${plot_alternatives[@]}"; do
    installed "$p" && have_plot=1
done
[ "$have_plot" = 1 ] || missing+=("${plot_alternatives[0]}")

if [ ${#missing[@]} -eq 0 ]; then
    echo "deps.sh: all needed packages are installed"
    exit 0
fi
echo "deps.sh: missing: ${missing[*]}"
cmd=(apt-get install -y --no-install-recommends "${missing[@]}")
if [ "$check_only" = 1 ]; then
    echo "deps.sh: to install them: sudo ${cmd[*]}"
    exit 1
fi

if [ "$(id -u)" -eq 0 ]; then
    run=()
elif command -v sudo > /dev/null && sudo -n true 2> /dev/null; then
    run=(sudo)
elif command -v sudo > /dev/null && [ -t 0 ]; then
    run=(sudo)                  # sudo will ask for the password
else
    echo "deps.sh: not root and no usable sudo; run as root:" >&2
    echo "  apt-get update && ${cmd[*]}" >&2
    exit 1
fi

export DEBIAN_FRONTEND=noninteractive
"${run[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update
# Packages this Debian release does not know would make apt-get fail as a
# whole: name them clearly first.
unknown=()
for p in "${missing[@]}"; do
    policy=$(apt-cache policy "$p" 2> /dev/null || true)
    if ! grep -q 'Candidate: [^(]' <<< "$policy"; then
        unknown+=("$p")
    fi
done
if [ ${#unknown[@]} -gt 0 ]; then
    echo "deps.sh: no installable candidate for: ${unknown[*]} (check the apt sources)" >&2
    exit 1
fi
"${run[@]}" env DEBIAN_FRONTEND=noninteractive "${cmd[@]}"
echo "deps.sh: installed ${missing[*]}"
