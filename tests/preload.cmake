# Preload tests (label "preload"): real programs (ls, grep, python3, gcc,
# git, sqlite3, sort) run with and without LD_PRELOAD=libbrisk.so and must
# produce the same output; the dynamic loader's trace proves brisk served
# every process.  Two helper programs check that memory libc allocates for
# a program and the 20 C++ operator forms are brisk's.  tests/preload/run.sh
# does the work; exit status 77 is a skip (a program that is not installed).
find_program(BRISK_BASH bash)
if(NOT BRISK_BASH)
  message(STATUS "bash not found: preload tests disabled")
  return()
endif()

# Helpers.  None links brisk: they get it only through LD_PRELOAD.
add_executable(preload_gen ${CMAKE_CURRENT_SOURCE_DIR}/preload/gen.c)
set_target_properties(preload_gen PROPERTIES OUTPUT_NAME gen)
add_executable(preload_libc_alloc ${CMAKE_CURRENT_SOURCE_DIR}/preload/libc_alloc.c)
set_target_properties(preload_libc_alloc PROPERTIES OUTPUT_NAME libc_alloc)
target_link_libraries(preload_libc_alloc PRIVATE ${CMAKE_DL_LIBS})
add_executable(preload_cxx_ops ${CMAKE_CURRENT_SOURCE_DIR}/preload/cxx_ops.cc)
set_target_properties(preload_cxx_ops PROPERTIES OUTPUT_NAME cxx_ops)
target_link_libraries(preload_cxx_ops PRIVATE ${CMAKE_DL_LIBS})
foreach(t preload_gen preload_libc_alloc preload_cxx_ops)
  target_compile_options(${t} PRIVATE -Wall -Wextra)
  set_target_properties(${t} PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${CMAKE_CURRENT_BINARY_DIR}/preload)
  add_dependencies(${t} brisk)   # the tests need libbrisk.so built as well
endforeach()

set(_preload_env
  BRISK_LIB=$<TARGET_FILE:brisk>
  BRISK_WORK=${CMAKE_CURRENT_BINARY_DIR}/preload-work
  BRISK_HELPERS=${CMAKE_CURRENT_BINARY_DIR}/preload)

# name  timeout (s)
set(_preload_tests
  ls 60  grep 90  python 90  gcc 120  git 120  sqlite3 90  sort 120  libc_alloc 30  cxx_ops 30)
list(LENGTH _preload_tests _n)
math(EXPR _last "${_n} - 1")
foreach(i RANGE 0 ${_last} 2)
  math(EXPR j "${i} + 1")
  list(GET _preload_tests ${i} name)
  list(GET _preload_tests ${j} timeout)
  add_test(NAME preload.${name}
    COMMAND ${BRISK_BASH} ${CMAKE_CURRENT_SOURCE_DIR}/preload/run.sh ${name})
  set_tests_properties(preload.${name} PROPERTIES
    LABELS preload
    ENVIRONMENT "${_preload_env}"
    SKIP_RETURN_CODE 77
    TIMEOUT ${timeout})
endforeach()
# Each of these runs several processes or threads at once; on a small
# machine let them not compete with each other.
set_tests_properties(preload.gcc preload.sort preload.git preload.python
  PROPERTIES RUN_SERIAL ON)

# Regressions found in review (tests/regress/): the background thread
# starting inside a refill of the list its creation allocates from, and a
# C++ plugin dlopened by a C program running out of memory.
add_executable(regress_bg_start ${CMAKE_CURRENT_SOURCE_DIR}/regress/bg_start.c)
target_link_libraries(regress_bg_start PRIVATE brisk)
target_compile_options(regress_bg_start PRIVATE -fno-builtin-malloc -fno-builtin-free)
foreach(size 272 288 4096)
  add_test(NAME regress.bg_start.${size} COMMAND regress_bg_start ${size})
  set_tests_properties(regress.bg_start.${size} PROPERTIES LABELS "unit" TIMEOUT 60
    ENVIRONMENT "BRISK_CONF=background_thread=1")
endforeach()
add_library(regress_plugin MODULE ${CMAKE_CURRENT_SOURCE_DIR}/regress/plugin.cc)
set_target_properties(regress_plugin PROPERTIES PREFIX "" OUTPUT_NAME plugin)
add_executable(regress_plugin_host ${CMAKE_CURRENT_SOURCE_DIR}/regress/plugin_host.c)
target_link_libraries(regress_plugin_host PRIVATE ${CMAKE_DL_LIBS})
add_dependencies(regress_plugin_host regress_plugin brisk)
add_test(NAME regress.cxx_plugin_oom
  COMMAND ${CMAKE_COMMAND} -E env LD_PRELOAD=$<TARGET_FILE:brisk>
          $<TARGET_FILE:regress_plugin_host> $<TARGET_FILE:regress_plugin>)
set_tests_properties(regress.cxx_plugin_oom PROPERTIES LABELS "preload" TIMEOUT 60
  PASS_REGULAR_EXPRESSION "bad_alloc caught, nothrow null")
# libbrisk.so dlopened (not preloaded): its initial-exec TLS must fit in
# the static TLS glibc keeps for libraries loaded later.
add_executable(regress_dlopen_brisk ${CMAKE_CURRENT_SOURCE_DIR}/regress/dlopen_brisk.c)
target_link_libraries(regress_dlopen_brisk PRIVATE ${CMAKE_DL_LIBS} Threads::Threads)
add_dependencies(regress_dlopen_brisk brisk)
add_test(NAME regress.dlopen COMMAND regress_dlopen_brisk $<TARGET_FILE:brisk>)
set_tests_properties(regress.dlopen PROPERTIES LABELS "unit" TIMEOUT 60
  PASS_REGULAR_EXPRESSION "dlopen ok")
