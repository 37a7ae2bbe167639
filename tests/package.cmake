# Package tests (label "package"): install the build into a scratch prefix,
# then build and run downstream programs against it through
# find_package(brisk), pkg-config, and a static link with libbrisk.a.
# tests/package/run.sh does the work; exit status 77 is a skip.
find_program(BRISK_BASH bash)
find_program(BRISK_PKG_CONFIG NAMES pkg-config pkgconf)
if(NOT BRISK_BASH)
  message(STATUS "bash not found: package tests disabled")
  return()
endif()

set(_pkg_work ${CMAKE_CURRENT_BINARY_DIR}/package-work)
set(_pkg_env
  BRISK_BUILD_DIR=${PROJECT_BINARY_DIR}
  BRISK_CONFIG=$<CONFIG>
  BRISK_PREFIX=${_pkg_work}/prefix
  BRISK_WORK=${_pkg_work}
  BRISK_VERSION=${PROJECT_VERSION}
  CMAKE_COMMAND=${CMAKE_COMMAND}
  CMAKE_GENERATOR=${CMAKE_GENERATOR}
  CC=${CMAKE_C_COMPILER}
  CXX=${CMAKE_CXX_COMPILER}
  PKG_CONFIG=$<$<BOOL:${BRISK_PKG_CONFIG}>:${BRISK_PKG_CONFIG}>)

foreach(step install find_package pkg_config static)
  add_test(NAME package.${step}
    COMMAND ${BRISK_BASH} ${CMAKE_CURRENT_SOURCE_DIR}/package/run.sh ${step})
  set_tests_properties(package.${step} PROPERTIES
    LABELS package
    ENVIRONMENT "${_pkg_env}"
    SKIP_RETURN_CODE 77
    TIMEOUT 120)
  if(step STREQUAL "install")
    set_tests_properties(package.${step} PROPERTIES FIXTURES_SETUP brisk_installed)
  else()
    set_tests_properties(package.${step} PROPERTIES FIXTURES_REQUIRED brisk_installed)
  endif()
endforeach()
# They share the scratch prefix: one at a time.
set_tests_properties(package.install package.find_package package.pkg_config package.static
  PROPERTIES RESOURCE_LOCK brisk_package_prefix)
