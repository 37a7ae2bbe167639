# Unit tests: each links brisk_core (prefixed API only, so they also run in
# the sanitizer presets) and may include internal headers from src/.
function(brisk_unit_test name)
  add_executable(${name} ${CMAKE_CURRENT_SOURCE_DIR}/${name}.c)
  target_link_libraries(${name} PRIVATE brisk_core)
  target_include_directories(${name} PRIVATE ${CMAKE_SOURCE_DIR}/src ${URCU_INCLUDE_DIR})
  target_compile_options(${name} PRIVATE -fno-builtin-malloc -fno-builtin-free)
  add_test(NAME ${name} COMMAND ${name})
  set_tests_properties(${name} PROPERTIES LABELS "unit;sanitize" TIMEOUT 120)
endfunction()

brisk_unit_test(test_smoke)

# Internal structures.
brisk_unit_test(test_size_class)
# the derivation, to check the compiled-in (generated) tables against it
target_sources(test_size_class PRIVATE ${CMAKE_SOURCE_DIR}/src/core/size_class.c)
brisk_unit_test(test_buddy)
brisk_unit_test(test_page_map)
brisk_unit_test(test_central_list)
brisk_unit_test(test_options)
# Memory return: decay with an injected clock, ticks, the release before a
# fork, and (more tests) the background thread, decay_ms=never and
# fork_release=0.
brisk_unit_test(test_decay)
target_link_libraries(test_decay PRIVATE Threads::Threads)
add_test(NAME test_decay_background COMMAND test_decay background)
set_tests_properties(test_decay_background PROPERTIES LABELS "unit;sanitize" TIMEOUT 120
  ENVIRONMENT "BRISK_CONF=decay_ms=300,background_thread=1")
add_test(NAME test_decay_never COMMAND test_decay never)
set_tests_properties(test_decay_never PROPERTIES LABELS "unit;sanitize" TIMEOUT 120
  ENVIRONMENT "BRISK_CONF=decay_ms=never")
add_test(NAME test_decay_fork_off COMMAND test_decay fork_off)
set_tests_properties(test_decay_fork_off PROPERTIES LABELS "unit;sanitize" TIMEOUT 120
  ENVIRONMENT "BRISK_CONF=fork_release=0")
if(BRISK_SANITIZE STREQUAL "thread")
  # These fork; see test_errors below for why TSan's deadlock detector is off.
  set_property(TEST test_decay test_decay_never test_decay_fork_off APPEND PROPERTY
               ENVIRONMENT "TSAN_OPTIONS=detect_deadlocks=0")
endif()

# Through the public API.
brisk_unit_test(test_thread_cache)
target_link_libraries(test_thread_cache PRIVATE Threads::Threads)
brisk_unit_test(test_api)

# Death tests: bad pointers and double frees abort a forked child, and the
# BRISK_CONF cases re-execute the test binary with the variable set.
brisk_unit_test(test_errors)
target_link_libraries(test_errors PRIVATE Threads::Threads)
if(BRISK_SANITIZE STREQUAL "thread")
  # brisk's fork handler holds every allocator lock at once (hundreds), more
  # than TSan's deadlock detector can track (64): it would abort the forked
  # children.  Lock order is still checked by the stress tests.
  set_tests_properties(test_errors PROPERTIES ENVIRONMENT "TSAN_OPTIONS=detect_deadlocks=0")
endif()

# RSS after freeing a large heap and after malloc_trim(0), through the real
# malloc of libbrisk.so (not the prefixed API, so not in the sanitizer
# presets, whose runtimes own malloc).
if(NOT BRISK_SANITIZE)
  add_executable(test_rss ${CMAKE_CURRENT_SOURCE_DIR}/test_rss.c)
  target_link_libraries(test_rss PRIVATE brisk Threads::Threads)
  target_compile_options(test_rss PRIVATE -fno-builtin-malloc -fno-builtin-free)
  add_test(NAME test_rss COMMAND test_rss)
  set_tests_properties(test_rss PROPERTIES LABELS "unit" TIMEOUT 180)
endif()
