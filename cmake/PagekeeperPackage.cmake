# The Debian package an operator installs: `cpack -G DEB` in a configured and built tree
# (scripts/run-tests.sh's `package` configuration builds it from the release build).
#
# One package, pagekeeper_<version>_<arch>.deb, holding pagekeeperd and pagekeeper in
# /usr/bin, the libraries, headers and CMake/pkg-config files of the development install,
# the systemd unit (a dedicated `pagekeeper` user, loopback bind, Restart=on-failure,
# ProtectSystem=strict, NoNewPrivileges and the other hardening options in
# packaging/pagekeeperd.service) and the default /etc/pagekeeper/pagekeeperd.toml (a conffile:
# dpkg keeps an operator's edits on upgrade). postinst creates the user and enables the unit
# without starting it; prerm stops it.
#
# llama.cpp: when the build links it (PAGEKEEPER_LLAMA), its shared libraries go into
# /usr/lib/pagekeeper, where the executables' RUNPATH finds them.

include_guard(GLOBAL)

install(FILES ${PROJECT_SOURCE_DIR}/packaging/pagekeeperd.service
  DESTINATION lib/systemd/system COMPONENT runtime)
# /etc whatever the prefix: the unit file names this path.
install(FILES ${PROJECT_SOURCE_DIR}/packaging/pagekeeperd.toml
  DESTINATION /etc/pagekeeper COMPONENT runtime)
install(FILES ${PROJECT_SOURCE_DIR}/README.md
  DESTINATION ${CMAKE_INSTALL_DOCDIR} COMPONENT runtime)

if(TARGET Llama::llama)
  # The libraries the executables load (libllama, libggml, libggml-base and the CPU backends
  # ggml loads at run time from the same directory), with their symlinks.
  get_target_property(_llama_library Llama::llama IMPORTED_LOCATION)
  get_filename_component(_llama_library_dir ${_llama_library} DIRECTORY)
  file(GLOB _llama_runtime_libs ${_llama_library_dir}/*.so*)
  install(FILES ${_llama_runtime_libs} DESTINATION ${CMAKE_INSTALL_LIBDIR}/pagekeeper
    COMPONENT runtime)
  set_target_properties(pagekeeperd pagekeeper_cli PROPERTIES
    INSTALL_RPATH "$ORIGIN/../${CMAKE_INSTALL_LIBDIR}/pagekeeper")
endif()

set(CPACK_PACKAGE_NAME pagekeeper)
set(CPACK_PACKAGE_VENDOR "pagekeeper")
set(CPACK_PACKAGE_CONTACT "pagekeeper maintainers <maintainers@pagekeeper.invalid>")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY
    "byte-budgeted paging substrate for AI inference hosts (pagekeeperd, pagekeeper)")
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_GENERATOR DEB)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SECTION net)
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_PACKAGE_DEPENDS "adduser")
set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA
    ${PROJECT_SOURCE_DIR}/packaging/debian/conffiles
    ${PROJECT_SOURCE_DIR}/packaging/debian/postinst
    ${PROJECT_SOURCE_DIR}/packaging/debian/prerm
    ${PROJECT_SOURCE_DIR}/packaging/debian/postrm)
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)
include(CPack)
