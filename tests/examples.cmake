# Example tests (labels "apps" and "examples"): examples/echo_server, a
# thread-pool TCP server that links brisk, built against the scratch
# installation that package.install makes (the brisk_installed fixture) the
# ways examples/README.md shows: find_package(brisk) with brisk::brisk,
# find_package with brisk::brisk_static, and pkg-config (the Makefile).
# Each runs the server on a port it picks itself, its load client with
# every checksum verified, proves brisk is in the server, stops it with
# SIGTERM (exit status 0), and leaves no process behind.
# tests/examples/run.sh does the work; exit status 77 is a skip (pkg-config
# missing).
find_program(BRISK_EXAMPLES_BASH bash)
find_program(BRISK_EXAMPLES_PKG_CONFIG NAMES pkg-config pkgconf)
find_program(BRISK_EXAMPLES_MAKE NAMES make gmake)
if(NOT BRISK_EXAMPLES_BASH OR NOT TEST package.install)
  message(STATUS "bash or the package tests missing: example tests disabled")
  return()
endif()

set(_examples_env
  # The prefix tests/package.cmake installs into.
  BRISK_PREFIX=${CMAKE_CURRENT_BINARY_DIR}/package-work/prefix
  BRISK_WORK=${CMAKE_CURRENT_BINARY_DIR}/examples-work
  BRISK_VERSION=${PROJECT_VERSION}
  EXAMPLES_SOURCE=${PROJECT_SOURCE_DIR}/examples
  CMAKE_COMMAND=${CMAKE_COMMAND}
  CMAKE_GENERATOR=${CMAKE_GENERATOR}
  CC=${CMAKE_C_COMPILER}
  PKG_CONFIG=$<$<BOOL:${BRISK_EXAMPLES_PKG_CONFIG}>:${BRISK_EXAMPLES_PKG_CONFIG}>
  MAKE=$<$<BOOL:${BRISK_EXAMPLES_MAKE}>:${BRISK_EXAMPLES_MAKE}>
  ECHO_CONNECTIONS=8
  ECHO_REQUESTS=200)

foreach(step find_package static pkg_config)
  add_test(NAME examples.echo_server.${step}
    COMMAND ${BRISK_EXAMPLES_BASH} ${CMAKE_CURRENT_SOURCE_DIR}/examples/run.sh ${step})
  set_tests_properties(examples.echo_server.${step} PROPERTIES
    LABELS "apps;examples"
    ENVIRONMENT "${_examples_env}"
    FIXTURES_REQUIRED brisk_installed
    # They read the prefix the package tests write, and each runs a server
    # and an 8-thread client: alone on a small machine.
    RESOURCE_LOCK brisk_package_prefix
    RUN_SERIAL ON
    SKIP_RETURN_CODE 77
    TIMEOUT 120)
endforeach()
