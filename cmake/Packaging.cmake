# Installation (`cmake --install`) and the Debian package (`cpack` / the `package` target).
# Layout under the prefix (GNUInstallDirs): bin/ the three programs; share/morph/ the events example, the
# generated Python schema modules (python/) and the .fbs schemas (schemas/); share/doc/morph/ the docs;
# lib/systemd/system/ the units. Configuration goes to <sysconfdir>/morph, which follows GNUInstallDirs'
# rule for CMAKE_INSTALL_FULL_SYSCONFDIR, decided when installing rather than when configuring: /etc/morph
# for the prefix /usr (the .deb), <prefix>/etc/morph for any other prefix (`--prefix /tmp/x` stays in
# /tmp/x). Packaging files live in packaging/; docs/operations.md "Deployment" describes the result.
include(GNUInstallDirs)

set(MORPH_SYSTEMD_UNITDIR "lib/systemd/system" CACHE STRING
    "Where the systemd units go, relative to the install prefix")

install(TARGETS morph-agent morph-controller morphctl RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})

# Configuration. The controller's example names /var/lib/morph/ledger.db (the built-in default); the
# packaged unit keeps the ledger in its own StateDirectory, so the installed copy says so.
file(READ ${CMAKE_SOURCE_DIR}/config/morph-controller.toml _morph_controller_toml)
string(REPLACE "path = \"/var/lib/morph/ledger.db\"" "path = \"/var/lib/morph-controller/ledger.db\""
       _morph_controller_toml_packaged "${_morph_controller_toml}")
if(_morph_controller_toml_packaged STREQUAL _morph_controller_toml)
  message(FATAL_ERROR "cmake/Packaging.cmake: config/morph-controller.toml no longer has "
                      "path = \"/var/lib/morph/ledger.db\"; update the packaged ledger path")
endif()
set(_morph_controller_toml_out ${CMAKE_BINARY_DIR}/packaging/morph-controller.toml)
if(EXISTS ${_morph_controller_toml_out})
  file(READ ${_morph_controller_toml_out} _morph_controller_toml_old)
endif()
if(NOT _morph_controller_toml_old STREQUAL _morph_controller_toml_packaged)  # rewrite only on change
  file(WRITE ${_morph_controller_toml_out} "${_morph_controller_toml_packaged}")
endif()
set_property(DIRECTORY ${CMAKE_SOURCE_DIR} APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS
             ${CMAKE_SOURCE_DIR}/config/morph-controller.toml)
if(IS_ABSOLUTE "${CMAKE_INSTALL_SYSCONFDIR}")  # -DCMAKE_INSTALL_SYSCONFDIR=/etc: taken as given
  set(_morph_confdir "${CMAKE_INSTALL_SYSCONFDIR}/morph")
else()
  set(_morph_confdir "/\${MORPH_SYSCONF_PREFIX}${CMAKE_INSTALL_SYSCONFDIR}/morph")
endif()
install(CODE [[
  # /usr -> /etc (the Debian layout); any other prefix keeps etc/ inside it. No leading slash, so that the
  # destination below never starts with "//" (a network path to file(INSTALL) under DESTDIR).
  if(CMAKE_INSTALL_PREFIX STREQUAL "/usr")
    set(MORPH_SYSCONF_PREFIX "")
  else()
    string(REGEX REPLACE "^/+" "" MORPH_SYSCONF_PREFIX "${CMAKE_INSTALL_PREFIX}/")
  endif()
]])
install(FILES ${CMAKE_SOURCE_DIR}/config/morph-agent.toml ${_morph_controller_toml_out}
        DESTINATION "${_morph_confdir}"
        PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ WORLD_READ)

install(FILES ${CMAKE_SOURCE_DIR}/packaging/systemd/morph-agent.service
              ${CMAKE_SOURCE_DIR}/packaging/systemd/morph-controller.service
        DESTINATION ${MORPH_SYSTEMD_UNITDIR})

# For third-party consumers of the events stream: the example, the schemas, the generated Python modules.
install(PROGRAMS ${CMAKE_SOURCE_DIR}/scripts/events-subscriber.py DESTINATION ${CMAKE_INSTALL_DATADIR}/morph)
install(DIRECTORY ${CMAKE_SOURCE_DIR}/schemas/ DESTINATION ${CMAKE_INSTALL_DATADIR}/morph/schemas
        FILES_MATCHING PATTERN "*.fbs")
install(DIRECTORY ${CMAKE_BINARY_DIR}/python/ DESTINATION ${CMAKE_INSTALL_DATADIR}/morph/python
        FILES_MATCHING PATTERN "*.py" PATTERN "__pycache__" EXCLUDE)

install(FILES ${CMAKE_SOURCE_DIR}/README.md DESTINATION ${CMAKE_INSTALL_DOCDIR})
install(DIRECTORY ${CMAKE_SOURCE_DIR}/docs/ DESTINATION ${CMAKE_INSTALL_DOCDIR} FILES_MATCHING PATTERN "*.md")

# The .deb. Dependencies come from dpkg-shlibdeps over the installed binaries; libvirtd is only
# recommended (the controller and morphctl run without it).
set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME morph)
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_VENDOR "Morph")
set(CPACK_PACKAGE_CONTACT "Morph maintainers <morph-maintainers@example.org>")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "Dynamic resource morphing for libvirt/KVM hosts")
set(CPACK_PACKAGE_DESCRIPTION "Morph lets running VMs change their resource profile through a market.\n\
morph-agent measures per-VM KPIs with eBPF and applies shifts through libvirt on each\n\
hypervisor host; morph-controller runs the market; morphctl is the command line.")
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SECTION admin)
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_PACKAGE_DEPENDS "adduser")
set(CPACK_DEBIAN_PACKAGE_RECOMMENDS "libvirt-daemon-system")
set(CPACK_DEBIAN_PACKAGE_SUGGESTS "python3-zmq, python3-flatbuffers")
set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA
    ${CMAKE_SOURCE_DIR}/packaging/debian/conffiles
    ${CMAKE_SOURCE_DIR}/packaging/debian/postinst
    ${CMAKE_SOURCE_DIR}/packaging/debian/prerm
    ${CMAKE_SOURCE_DIR}/packaging/debian/postrm)
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)
# RelWithDebInfo binaries are ~20 MiB each with their DWARF; the package ships them stripped.
set(CPACK_STRIP_FILES ON)
# Only what install() put there: no source package, no build-tree leftovers.
set(CPACK_SOURCE_GENERATOR "")
include(CPack)
