# Application tests (label "apps"): real servers and databases (Redis,
# PostgreSQL, SQLite, memcached) run with LD_PRELOAD=libbrisk.so on
# loopback, each in a temporary directory on a free port; a short load, its
# results checked, brisk proven in the server processes (/proc/PID/maps),
# a clean stop.  See tests/apps/README.md.  Exit status 77 is a skip (the
# server is not installed: scripts/deps.sh installs it).
#
# Also the unit test of jemalloc's API as libbrisk.so defines it (label
# "unit"): it links libbrisk.so itself, so it cannot run in the sanitizer
# builds, which keep the sanitizer's malloc.
find_program(BRISK_APPS_BASH bash)

add_executable(test_jemalloc_compat ${CMAKE_CURRENT_SOURCE_DIR}/apps/test_jemalloc_compat.c)
target_link_libraries(test_jemalloc_compat PRIVATE brisk ${CMAKE_DL_LIBS})
target_compile_options(test_jemalloc_compat PRIVATE -Wall -Wextra -fno-builtin-malloc -fno-builtin-free)
add_test(NAME test_jemalloc_compat COMMAND test_jemalloc_compat)
set_tests_properties(test_jemalloc_compat PROPERTIES LABELS "unit" TIMEOUT 120)

if(NOT BRISK_APPS_BASH)
  message(STATUS "bash not found: apps tests disabled")
  return()
endif()

set(_apps_helpers ${CMAKE_CURRENT_BINARY_DIR}/apps)

# Our SQLite client, through the C API.  Without libsqlite3-dev the test
# still runs the sqlite3 shell part and says it skipped the rest.
find_path(BRISK_SQLITE3_INCLUDE sqlite3.h)
find_library(BRISK_SQLITE3_LIB sqlite3)
if(BRISK_SQLITE3_INCLUDE AND BRISK_SQLITE3_LIB)
  add_executable(apps_sqlite_capi ${CMAKE_CURRENT_SOURCE_DIR}/apps/sqlite_capi.c)
  set_target_properties(apps_sqlite_capi PROPERTIES OUTPUT_NAME sqlite_capi
    RUNTIME_OUTPUT_DIRECTORY ${_apps_helpers})
  target_include_directories(apps_sqlite_capi PRIVATE ${BRISK_SQLITE3_INCLUDE})
  target_link_libraries(apps_sqlite_capi PRIVATE ${BRISK_SQLITE3_LIB} Threads::Threads)
  target_compile_options(apps_sqlite_capi PRIVATE -Wall -Wextra)
  add_dependencies(apps_sqlite_capi brisk)
else()
  message(STATUS "libsqlite3-dev not found: the apps.sqlite test skips its C API part")
endif()

set(_apps_env
  BRISK_LIB=$<TARGET_FILE:brisk>
  BRISK_HELPERS=${_apps_helpers})

# name  timeout (s).  Each script stops itself (and its servers) 15 s before
# its timeout, so that ctest never has to kill a test with servers running.
set(_apps_tests redis 120  postgres 150  sqlite 120  memcached 90)
list(LENGTH _apps_tests _n)
math(EXPR _last "${_n} - 1")
foreach(i RANGE 0 ${_last} 2)
  math(EXPR j "${i} + 1")
  list(GET _apps_tests ${i} name)
  list(GET _apps_tests ${j} timeout)
  math(EXPR deadline "${timeout} - 15")
  add_test(NAME apps.${name}
    COMMAND ${BRISK_APPS_BASH} ${CMAKE_CURRENT_SOURCE_DIR}/apps/${name}.sh)
  set_tests_properties(apps.${name} PROPERTIES
    LABELS apps
    ENVIRONMENT "${_apps_env};BRISK_APPS_DEADLINE=${deadline}"
    SKIP_RETURN_CODE 77
    TIMEOUT ${timeout})
endforeach()
# Servers with several threads or processes each: on a small machine, let
# them not compete with each other for the CPUs.
set_tests_properties(apps.redis apps.postgres apps.memcached apps.sqlite PROPERTIES RUN_SERIAL ON)
