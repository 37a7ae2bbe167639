# Installation and packaging of brisk.
#
# Installed: libbrisk.so (with its soname links), libbrisk.a, brisk.h, a CMake
# package (find_package(brisk) -> brisk::brisk, brisk::brisk_static) and a
# pkg-config file (brisk.pc).  brisk_core, the prefixed-API-only library the
# tests link, and the brisk_layers object library are build-tree only.
#
# Components: "runtime" holds the versioned shared library, "dev" everything
# a consumer builds against (namelink, archive, header, CMake and pkg-config
# files).
include(CMakePackageConfigHelpers)

set(BRISK_CMAKE_DIR "${CMAKE_INSTALL_LIBDIR}/cmake/brisk" CACHE STRING
    "Where brisk-config.cmake is installed (relative to the prefix)")
set(BRISK_PKGCONFIG_DIR "${CMAKE_INSTALL_LIBDIR}/pkgconfig" CACHE STRING
    "Where brisk.pc is installed (relative to the prefix)")
mark_as_advanced(BRISK_CMAKE_DIR BRISK_PKGCONFIG_DIR)

# Only the two override libraries enter the export set.  Their sources use
# $<TARGET_OBJECTS:brisk_layers>, which is compiled in, not linked, so the
# object library never becomes a link dependency of the exported targets;
# their only interface dependency is Threads::Threads, which the package
# config finds again with find_dependency().
install(TARGETS brisk brisk_static
  EXPORT brisk-targets
  LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
    COMPONENT runtime
    NAMELINK_COMPONENT dev
  ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
    COMPONENT dev
  RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR}
    COMPONENT runtime)

install(FILES ${PROJECT_SOURCE_DIR}/include/brisk.h
  DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}
  COMPONENT dev)

install(EXPORT brisk-targets
  NAMESPACE brisk::
  FILE brisk-targets.cmake
  DESTINATION ${BRISK_CMAKE_DIR}
  COMPONENT dev)

configure_package_config_file(
  ${CMAKE_CURRENT_LIST_DIR}/brisk-config.cmake.in
  ${PROJECT_BINARY_DIR}/cmake/brisk-config.cmake
  INSTALL_DESTINATION ${BRISK_CMAKE_DIR}
  PATH_VARS CMAKE_INSTALL_INCLUDEDIR CMAKE_INSTALL_LIBDIR)
# 0.x: a minor release may change the API, so only 0.<same minor>.* matches.
write_basic_package_version_file(
  ${PROJECT_BINARY_DIR}/cmake/brisk-config-version.cmake
  VERSION ${PROJECT_VERSION}
  COMPATIBILITY SameMinorVersion)
install(FILES
  ${PROJECT_BINARY_DIR}/cmake/brisk-config.cmake
  ${PROJECT_BINARY_DIR}/cmake/brisk-config-version.cmake
  DESTINATION ${BRISK_CMAKE_DIR}
  COMPONENT dev)

# brisk.pc locates the prefix from its own directory (${pcfiledir}), so the
# file stays right for `cmake --install --prefix`, DESTDIR staging and a
# moved tree.  Absolute LIBDIR/INCLUDEDIR/pkgconfig settings are used as is.
if(IS_ABSOLUTE "${BRISK_PKGCONFIG_DIR}")
  set(BRISK_PC_PREFIX "${CMAKE_INSTALL_PREFIX}")
else()
  file(RELATIVE_PATH _brisk_pc_up "/brisk-root/${BRISK_PKGCONFIG_DIR}" "/brisk-root")
  string(REGEX REPLACE "/$" "" _brisk_pc_up "${_brisk_pc_up}")
  set(BRISK_PC_PREFIX "\${pcfiledir}/${_brisk_pc_up}")
endif()
foreach(_dir LIBDIR INCLUDEDIR)
  if(IS_ABSOLUTE "${CMAKE_INSTALL_${_dir}}")
    set(BRISK_PC_${_dir} "${CMAKE_INSTALL_${_dir}}")
  else()
    set(BRISK_PC_${_dir} "\${prefix}/${CMAKE_INSTALL_${_dir}}")
  endif()
endforeach()
configure_file(${CMAKE_CURRENT_LIST_DIR}/brisk.pc.in ${PROJECT_BINARY_DIR}/brisk.pc @ONLY)
install(FILES ${PROJECT_BINARY_DIR}/brisk.pc
  DESTINATION ${BRISK_PKGCONFIG_DIR}
  COMPONENT dev)
