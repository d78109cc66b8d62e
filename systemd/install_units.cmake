# Runs at `cmake --install` time (see CMakeLists.txt): writes mesad.service and mesad.socket
# into the unit directory with the /usr/local paths replaced by the install prefix's.
foreach(var MESA_UNIT_DIR MESA_BINDIR MESA_SYSCONFDIR MESA_DOCDIR)
  if(NOT IS_ABSOLUTE "${${var}}")
    set(${var} "${CMAKE_INSTALL_PREFIX}/${${var}}")
  endif()
endforeach()

foreach(unit mesad.service mesad.socket)
  file(READ "${MESA_UNIT_SOURCE_DIR}/${unit}" text)
  string(REPLACE "/usr/local/bin/mesad" "${MESA_BINDIR}/mesad" text "${text}")
  string(REPLACE "/usr/local/etc/mesad" "${MESA_SYSCONFDIR}/mesad" text "${text}")
  string(REPLACE "/usr/local/share/doc/mesad" "${MESA_DOCDIR}" text "${text}")
  set(target "$ENV{DESTDIR}${MESA_UNIT_DIR}/${unit}")
  message(STATUS "Installing: ${target}")
  file(WRITE "${target}" "${text}")
  list(APPEND CMAKE_INSTALL_MANIFEST_FILES "${MESA_UNIT_DIR}/${unit}")
endforeach()
