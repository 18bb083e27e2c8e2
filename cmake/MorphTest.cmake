# morph_test(NAME SOURCES ... LABEL unit|bpf|integration|e2e [LIBS ...] [TIMEOUT s] [SERIAL])
# One gtest executable registered as one ctest test with its tier label. Tiers that need privilege or the
# test bed call the MORPH_REQUIRE_* macros of tests/support/requirements.h, which fail (under CI=true) or
# skip with a reason.
find_package(GTest REQUIRED)

# Tier label, timeout (default 300 s), the source/build dirs for the test, exit 77 = skipped; e2e and
# SERIAL tests take the test bed one at a time (TCG guests saturate both cores).
function(morph_test_properties NAME LABEL TIMEOUT SERIAL)
  if(NOT TIMEOUT)
    set(TIMEOUT 300)
  endif()
  set_tests_properties(${NAME} PROPERTIES LABELS ${LABEL} TIMEOUT ${TIMEOUT}
    ENVIRONMENT "MORPH_SOURCE_DIR=${CMAKE_SOURCE_DIR};MORPH_BINARY_DIR=${CMAKE_BINARY_DIR}"
    SKIP_RETURN_CODE 77)
  if(SERIAL OR LABEL STREQUAL "e2e")
    set_tests_properties(${NAME} PROPERTIES RESOURCE_LOCK testbed)
  endif()
endfunction()
function(morph_test NAME)
  cmake_parse_arguments(ARG "SERIAL" "LABEL;TIMEOUT" "SOURCES;LIBS" ${ARGN})
  if(NOT ARG_LABEL MATCHES "^(unit|bpf|integration|e2e)$")
    message(FATAL_ERROR "morph_test(${NAME}): LABEL must be unit, bpf, integration or e2e")
  endif()
  add_executable(${NAME} ${ARG_SOURCES})
  target_link_libraries(${NAME} PRIVATE ${ARG_LIBS} morph_test_support GTest::gtest GTest::gmock)
  add_test(NAME ${NAME} COMMAND ${NAME})
  morph_test_properties(${NAME} "${ARG_LABEL}" "${ARG_TIMEOUT}" "${ARG_SERIAL}")
endfunction()

# morph_script_test(NAME COMMAND ... LABEL tier [TIMEOUT s])
function(morph_script_test NAME)
  cmake_parse_arguments(ARG "" "LABEL;TIMEOUT" "COMMAND" ${ARGN})
  add_test(NAME ${NAME} COMMAND ${ARG_COMMAND})
  morph_test_properties(${NAME} "${ARG_LABEL}" "${ARG_TIMEOUT}" "")
endfunction()
