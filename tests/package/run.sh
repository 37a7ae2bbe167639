#!/usr/bin/env bash
# Package tests: install brisk into a scratch prefix and build programs
# against it the ways a downstream user would.
#
#   run.sh install      cmake --install <build dir> --prefix <prefix>
#   run.sh find_package configure, build and run tests/package (CMake consumer)
#   run.sh pkg_config   compile consumer.c with `pkg-config --cflags --libs brisk`
#   run.sh static       link consumer.c with libbrisk.a (gcc -static when the
#                       glibc static libraries exist, else a dynamic executable)
#
# Environment (set by tests/package.cmake): BRISK_BUILD_DIR, BRISK_CONFIG, BRISK_PREFIX,
# BRISK_WORK, BRISK_VERSION, CMAKE_COMMAND, CMAKE_GENERATOR, CC, CXX,
# PKG_CONFIG (may be empty).  Exit status 77 means skipped.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
step=${1:?usage: run.sh install|find_package|pkg_config|static}
: "${BRISK_BUILD_DIR:?}" "${BRISK_PREFIX:?}" "${BRISK_WORK:?}" "${BRISK_VERSION:?}"
: "${CMAKE_COMMAND:=cmake}" "${CC:=cc}" "${CXX:=c++}"

fail() { echo "FAIL: $*" >&2; exit 1; }
skip() { echo "SKIP: $*"; exit 77; }
note() { echo "-- $*"; }

work="$BRISK_WORK/$step"
rm -rf "$work"
mkdir -p "$work"

installed() {
    [ -f "$BRISK_PREFIX/.brisk-installed" ] ||
        fail "no installation in $BRISK_PREFIX (the package.install test must run first)"
    libdir=$(cat "$BRISK_PREFIX/.brisk-installed")
}

# Find the installed brisk.pc and the library directory.
pc_dir() {
    local pc
    pc=$(find "$BRISK_PREFIX" -name brisk.pc -path '*/pkgconfig/*' -print -quit)
    [ -n "$pc" ] || fail "brisk.pc was not installed under $BRISK_PREFIX"
    dirname "$pc"
}

case $step in
install)
    rm -rf "$BRISK_PREFIX"
    config=()
    [ -n "${BRISK_CONFIG:-}" ] && config=(--config "$BRISK_CONFIG")
    note "cmake --install $BRISK_BUILD_DIR --prefix $BRISK_PREFIX ${config[*]}"
    "$CMAKE_COMMAND" --install "$BRISK_BUILD_DIR" --prefix "$BRISK_PREFIX" "${config[@]}"
    so=$(find "$BRISK_PREFIX" -name libbrisk.so -print -quit)
    [ -n "$so" ] || fail "libbrisk.so was not installed"
    libdir=$(dirname "$so")
    # Layout: the soname chain, the archive, the header, the package files,
    # and nothing of the test-only brisk_core.
    [ -L "$libdir/libbrisk.so" ] || fail "libbrisk.so is not a symlink"
    [ -L "$libdir/libbrisk.so.${BRISK_VERSION%%.*}" ] ||
        fail "soname link libbrisk.so.${BRISK_VERSION%%.*} missing"
    [ -f "$libdir/libbrisk.so.$BRISK_VERSION" ] || fail "libbrisk.so.$BRISK_VERSION missing"
    [ "$(readlink -f "$libdir/libbrisk.so")" = "$(readlink -f "$libdir/libbrisk.so.$BRISK_VERSION")" ] ||
        fail "libbrisk.so does not lead to libbrisk.so.$BRISK_VERSION"
    soname=$(objdump -p "$libdir/libbrisk.so.$BRISK_VERSION" | awk '$1 == "SONAME" { print $2 }')
    [ "$soname" = "libbrisk.so.${BRISK_VERSION%%.*}" ] || fail "SONAME is '$soname'"
    [ -f "$libdir/libbrisk.a" ] || fail "libbrisk.a missing"
    [ -f "$BRISK_PREFIX/include/brisk.h" ] || fail "include/brisk.h missing"
    [ -f "$libdir/cmake/brisk/brisk-config.cmake" ] || fail "brisk-config.cmake missing"
    [ -f "$libdir/cmake/brisk/brisk-config-version.cmake" ] || fail "brisk-config-version.cmake missing"
    [ -f "$libdir/pkgconfig/brisk.pc" ] || fail "brisk.pc missing"
    if [ -n "$(find "$BRISK_PREFIX" -name '*brisk_core*' -o -name '*brisk_layers*')" ]; then
        fail "test-only brisk_core/brisk_layers files were installed"
    fi
    if grep -rq 'brisk_core\|brisk_layers' "$libdir/cmake/brisk"; then
        fail "brisk_core/brisk_layers leaked into the exported CMake files"
    fi
    # The archive must define the standard names itself.
    nm -g --defined-only "$libdir/libbrisk.a" > "$work/archive.syms" 2> /dev/null
    grep -qw 'T malloc' "$work/archive.syms" || fail "libbrisk.a does not define malloc"
    echo "$libdir" > "$BRISK_PREFIX/.brisk-installed"
    (cd "$BRISK_PREFIX" && find . ! -name .brisk-installed | sort)
    echo "install: OK"
    ;;

find_package)
    installed
    gen=()
    [ -n "${CMAKE_GENERATOR:-}" ] && gen=(-G "$CMAKE_GENERATOR")
    note "configuring the consumer project with CMAKE_PREFIX_PATH=$BRISK_PREFIX"
    "$CMAKE_COMMAND" -S "$here" -B "$work/build" "${gen[@]}" \
        -DCMAKE_BUILD_TYPE=Release \
        -DCMAKE_C_COMPILER="$CC" -DCMAKE_CXX_COMPILER="$CXX" \
        -DCMAKE_PREFIX_PATH="$BRISK_PREFIX" \
        -DCMAKE_FIND_PACKAGE_NO_PACKAGE_REGISTRY=ON \
        -DCMAKE_FIND_USE_PACKAGE_REGISTRY=OFF > "$work/configure.log" 2>&1 ||
        { cat "$work/configure.log"; fail "configuring the consumer project failed"; }
    grep -F -- "-- brisk $BRISK_VERSION from " "$work/configure.log" ||
        { cat "$work/configure.log"; fail "find_package(brisk) did not report version $BRISK_VERSION"; }
    grep -q "from $(readlink -f "$BRISK_PREFIX")\|from $BRISK_PREFIX" "$work/configure.log" ||
        fail "find_package(brisk) found a brisk outside $BRISK_PREFIX"
    "$CMAKE_COMMAND" --build "$work/build" > "$work/build.log" 2>&1 ||
        { cat "$work/build.log"; fail "building the consumer project failed"; }
    export LD_LIBRARY_PATH="$libdir${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
    "$work/build/consumer" "$libdir" || fail "consumer (brisk::brisk) failed"
    "$work/build/consumer_cxx" || fail "consumer_cxx (brisk::brisk) failed"
    "$work/build/consumer_static" || fail "consumer_static (brisk::brisk_static) failed"
    "$work/build/consumer_static_c" || fail "consumer_static_c (brisk::brisk_static, C link) failed"
    ldd "$work/build/consumer" > "$work/consumer.ldd"
    grep -qF "libbrisk.so.${BRISK_VERSION%%.*} => $libdir/" "$work/consumer.ldd" ||
        { cat "$work/consumer.ldd"; fail "consumer does not load libbrisk from $libdir"; }
    ldd "$work/build/consumer_static" > "$work/consumer_static.ldd"
    if grep -q libbrisk "$work/consumer_static.ldd"; then
        fail "consumer_static (libbrisk.a) still depends on libbrisk.so"
    fi
    echo "find_package: OK"
    ;;

pkg_config)
    installed
    if [ -z "${PKG_CONFIG:-}" ] || ! command -v "$PKG_CONFIG" > /dev/null; then
        skip "pkg-config is not installed (apt-get install pkg-config)"
    fi
    export PKG_CONFIG_PATH
    PKG_CONFIG_PATH="$(pc_dir)"
    ver=$("$PKG_CONFIG" --modversion brisk)
    [ "$ver" = "$BRISK_VERSION" ] || fail "pkg-config --modversion brisk: '$ver'"
    flags=$("$PKG_CONFIG" --cflags --libs brisk)
    note "pkg-config --cflags --libs brisk: $flags"
    case " $flags " in *" -lbrisk "*) ;; *) fail "no -lbrisk in '$flags'" ;; esac
    static_flags=$("$PKG_CONFIG" --static --libs brisk)
    case " $static_flags " in *" -pthread "*) ;; *) fail "no -pthread in --static '$static_flags'" ;; esac
    # shellcheck disable=SC2086  # the flags are words
    "$CC" -O2 -o "$work/consumer" "$here/consumer.c" $flags -ldl
    # shellcheck disable=SC2086
    "$CXX" -O2 -o "$work/consumer_cxx" "$here/consumer_cxx.cc" $flags
    # The consumer project again, finding brisk through FindPkgConfig.
    gen=()
    [ -n "${CMAKE_GENERATOR:-}" ] && gen=(-G "$CMAKE_GENERATOR")
    "$CMAKE_COMMAND" -S "$here" -B "$work/build" "${gen[@]}" \
        -DCMAKE_BUILD_TYPE=Release -DCONSUMER_USE_PKGCONFIG=ON \
        -DCMAKE_C_COMPILER="$CC" -DCMAKE_CXX_COMPILER="$CXX" \
        -DPKG_CONFIG_EXECUTABLE="$(command -v "$PKG_CONFIG")" > "$work/configure.log" 2>&1 ||
        { cat "$work/configure.log"; fail "configuring the consumer project (pkg-config) failed"; }
    grep -F -- "-- brisk $BRISK_VERSION from pkg-config" "$work/configure.log" ||
        { cat "$work/configure.log"; fail "pkg_check_modules(brisk) did not report $BRISK_VERSION"; }
    "$CMAKE_COMMAND" --build "$work/build" > "$work/build.log" 2>&1 ||
        { cat "$work/build.log"; fail "building the consumer project (pkg-config) failed"; }
    export LD_LIBRARY_PATH="$libdir${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
    "$work/consumer" "$libdir" || fail "consumer (pkg-config, cc) failed"
    "$work/consumer_cxx" || fail "consumer_cxx (pkg-config, c++) failed"
    "$work/build/consumer" "$libdir" || fail "consumer (pkg-config, CMake) failed"
    "$work/build/consumer_cxx" || fail "consumer_cxx (pkg-config, CMake) failed"
    echo "pkg_config: OK"
    ;;

static)
    installed
    if [ -n "${PKG_CONFIG:-}" ] && command -v "$PKG_CONFIG" > /dev/null; then
        export PKG_CONFIG_PATH
        PKG_CONFIG_PATH="$(pc_dir)"
        link=$("$PKG_CONFIG" --static --cflags --libs brisk)
    else
        link="-I$BRISK_PREFIX/include -L$libdir -lbrisk -pthread"
    fi
    libc_a=$("$CC" -print-file-name=libc.a)
    if [ "$libc_a" != libc.a ] && [ -f "$libc_a" ]; then
        note "fully static: $CC -static consumer.c $link"
        # shellcheck disable=SC2086
        "$CC" -static -O2 -DCONSUMER_LINKS_ARCHIVE=1 -o "$work/consumer" "$here/consumer.c" $link \
            > "$work/link.log" 2>&1 || { cat "$work/link.log"; fail "static link with libbrisk.a failed"; }
        # Linker warnings about getpwnam & co in static glibc are expected;
        # anything about malloc is not (it would mean glibc's malloc.o).
        if grep -i 'malloc\|multiple definition' "$work/link.log"; then
            fail "static link pulled glibc's malloc"
        fi
        readelf -l "$work/consumer" > "$work/consumer.phdrs"
        if grep -q INTERP "$work/consumer.phdrs"; then
            fail "the -static link produced a dynamically linked executable"
        fi
        kind=static
    else
        note "glibc static libraries missing ($libc_a): dynamic executable with $libdir/libbrisk.a"
        "$CC" -O2 -DCONSUMER_LINKS_ARCHIVE=1 -o "$work/consumer" "$here/consumer.c" \
            -I"$BRISK_PREFIX/include" "$libdir/libbrisk.a" -pthread -ldl
        kind=dynamic
    fi
    # The malloc in the executable must be brisk's: malloc/free/... symbols
    # come from libbrisk.a and no glibc malloc object is present.
    nm "$work/consumer" > "$work/consumer.syms"
    grep -qw 'brisk_malloc' "$work/consumer.syms" || fail "brisk_malloc not linked in"
    if grep -q ' _int_malloc$\| ptmalloc_init' "$work/consumer.syms"; then
        fail "glibc's malloc implementation was linked in"
    fi
    "$work/consumer" || fail "consumer ($kind, libbrisk.a) failed"
    echo "static ($kind): OK"
    ;;

*)
    fail "unknown step '$step'"
    ;;
esac
