# Installation: the components as an exported CMake package (find_package(pagekeeper CONFIG)
# with one COMPONENT per library component), a pkg-config file, the public headers, the
# generated version header, and the two executables.
#
#   find_package(pagekeeper 0.1 CONFIG REQUIRED COMPONENTS core)   # the header-only pool
#   target_link_libraries(app PRIVATE pagekeeper::core)
#
# Each component has its own export file (pagekeeper-<name>-targets.cmake), loaded with the
# dependencies it needs only when that component is asked for, so a consumer of the pool
# alone needs nothing but a C++20 compiler and threads.

include_guard(GLOBAL)
include(CMakePackageConfigHelpers)

set(PAGEKEEPER_INSTALL_CMAKEDIR ${CMAKE_INSTALL_LIBDIR}/cmake/pagekeeper)

# The find_dependency() calls each component's config needs, in the installed config's
# words (static libraries bring their private dependencies to the final link).
set(PAGEKEEPER_DEPS_core "find_dependency(Threads)")
set(PAGEKEEPER_DEPS_tiers
    "find_dependency(nlohmann_json 3.10)\nfind_dependency(PkgConfig)\npkg_check_modules(LMDB REQUIRED IMPORTED_TARGET lmdb)\npkg_check_modules(HIREDIS REQUIRED IMPORTED_TARGET hiredis)")
set(PAGEKEEPER_DEPS_broker "find_dependency(nlohmann_json 3.10)\nfind_dependency(spdlog)")
set(PAGEKEEPER_DEPS_llama "find_dependency(spdlog)")
set(PAGEKEEPER_DEPS_embedding
    "find_dependency(OpenSSL COMPONENTS Crypto)\nfind_dependency(PkgConfig)\npkg_check_modules(XXHASH REQUIRED IMPORTED_TARGET libxxhash)\nif(NOT TARGET PkgConfig::HTTPLIB)\n  pkg_check_modules(HTTPLIB REQUIRED IMPORTED_TARGET GLOBAL cpp-httplib)\nendif()")
set(PAGEKEEPER_DEPS_adapter "find_dependency(nlohmann_json 3.10)\nfind_dependency(spdlog)")
set(PAGEKEEPER_DEPS_server
    "find_dependency(nlohmann_json 3.10)\nfind_dependency(spdlog)\nfind_dependency(tomlplusplus)\nfind_dependency(Boost 1.74)")

if(TARGET Llama::llama)
  # Built with llama.cpp, the static llama component links it (and every component using it
  # loads this one first): FindLlama.cmake, installed beside the config, finds it through
  # LLAMA_ROOT or the system's prefixes.
  string(APPEND PAGEKEEPER_DEPS_llama "\nfind_dependency(Llama)")
  install(FILES ${PROJECT_SOURCE_DIR}/cmake/FindLlama.cmake
    DESTINATION ${PAGEKEEPER_INSTALL_CMAKEDIR} COMPONENT development)
endif()

function(pagekeeper_install)
  get_property(components GLOBAL PROPERTY PAGEKEEPER_COMPONENTS_ADDED)
  set(include_root ${PROJECT_SOURCE_DIR}/include/pagekeeper)
  set(component_requires "")
  foreach(name IN LISTS components)
    install(TARGETS pagekeeper_${name} EXPORT pagekeeper-${name}-targets
      ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR} COMPONENT development
      LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR} COMPONENT development)
    install(EXPORT pagekeeper-${name}-targets NAMESPACE pagekeeper::
      DESTINATION ${PAGEKEEPER_INSTALL_CMAKEDIR} COMPONENT development)
    get_property(headers GLOBAL PROPERTY PAGEKEEPER_COMPONENT_HEADER_FILES_${name})
    foreach(header IN LISTS headers)
      get_filename_component(subdir ${header} DIRECTORY)
      install(FILES ${include_root}/${header}
        DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/pagekeeper/${subdir} COMPONENT development)
    endforeach()
    # The components this one links (its pagekeeper_* link libraries), loaded before it.
    get_target_property(links pagekeeper_${name} INTERFACE_LINK_LIBRARIES)
    set(requires "")
    foreach(link IN LISTS links)
      string(REGEX REPLACE "^\\$<LINK_ONLY:(.*)>$" "\\1" link "${link}")
      if(link MATCHES "^pagekeeper_(.+)$" AND CMAKE_MATCH_1 IN_LIST components)
        list(APPEND requires ${CMAKE_MATCH_1})
      endif()
    endforeach()
    list(REMOVE_DUPLICATES requires)
    string(APPEND component_requires "set(_pagekeeper_requires_${name} ${requires})\n")
    string(APPEND component_requires "set(_pagekeeper_deps_${name} [=[${PAGEKEEPER_DEPS_${name}}]=])\n")
  endforeach()
  install(TARGETS pagekeeper EXPORT pagekeeper-umbrella-targets)
  install(EXPORT pagekeeper-umbrella-targets NAMESPACE pagekeeper::
    DESTINATION ${PAGEKEEPER_INSTALL_CMAKEDIR} COMPONENT development)
  install(FILES ${PROJECT_BINARY_DIR}/generated/pagekeeper/version.hpp
    DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/pagekeeper COMPONENT development)

  set(PAGEKEEPER_CONFIG_COMPONENTS "${components}")
  set(PAGEKEEPER_CONFIG_REQUIRES "${component_requires}")
  configure_package_config_file(${PROJECT_SOURCE_DIR}/cmake/pagekeeperConfig.cmake.in
    ${PROJECT_BINARY_DIR}/pagekeeperConfig.cmake
    INSTALL_DESTINATION ${PAGEKEEPER_INSTALL_CMAKEDIR})
  write_basic_package_version_file(${PROJECT_BINARY_DIR}/pagekeeperConfigVersion.cmake
    COMPATIBILITY SameMinorVersion)
  install(FILES ${PROJECT_BINARY_DIR}/pagekeeperConfig.cmake
                ${PROJECT_BINARY_DIR}/pagekeeperConfigVersion.cmake
    DESTINATION ${PAGEKEEPER_INSTALL_CMAKEDIR} COMPONENT development)

  # pkg-config: the header-only core (Cflags only); the compiled components are for CMake
  # consumers, whose export files carry their dependencies.
  # Relocatable: the prefix is found from the .pc file's own directory, so a package or a
  # scratch install (cmake --install --prefix) answers with its own paths.
  file(RELATIVE_PATH PAGEKEEPER_PC_TO_PREFIX /prefix/${CMAKE_INSTALL_LIBDIR}/pkgconfig /prefix)
  configure_file(${PROJECT_SOURCE_DIR}/cmake/pagekeeper.pc.in ${PROJECT_BINARY_DIR}/pagekeeper.pc @ONLY)
  install(FILES ${PROJECT_BINARY_DIR}/pagekeeper.pc
    DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig COMPONENT development)
endfunction()
