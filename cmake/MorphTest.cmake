# morph_test(NAME SOURCES ... LABEL unit|bpf|integration|e2e [LIBS ...] [TIMEOUT s] [SERIAL])
# One gtest executable registered as one ctest test with its tier label. Tiers that need privilege or the
# test bed call the MORPH_REQUIRE_* macros of tests/support/requirements.h, which fail (under CI=true) or
# skip with a reason.
find_package(GTest REQUIRED)
function(morph_test NAME)
  cmake_parse_arguments(ARG "SERIAL" "LABEL;TIMEOUT" "SOURCES;LIBS" ${ARGN})
  if(NOT ARG_LABEL MATCHES "^(unit|bpf|integration|e2e)$")
    message(FATAL_ERROR "morph_test(${NAME}): LABEL must be unit, bpf, integration or e2e")
  endif()
  add_executable(${NAME} ${ARG_SOURCES})
  target_link_libraries(${NAME} PRIVATE ${ARG_LIBS} morph_test_support GTest::gtest GTest::gmock)
  add_test(NAME ${NAME} COMMAND ${NAME})
  if(NOT ARG_TIMEOUT)
    set(ARG_TIMEOUT 300)
  endif()
  set_tests_properties(${NAME} PROPERTIES LABELS ${ARG_LABEL} TIMEOUT ${ARG_TIMEOUT}
    ENVIRONMENT "MORPH_SOURCE_DIR=${CMAKE_SOURCE_DIR};MORPH_BINARY_DIR=${CMAKE_BINARY_DIR}"
    SKIP_RETURN_CODE 77)
  if(ARG_SERIAL OR ARG_LABEL STREQUAL "e2e")
    # VMs under TCG saturate both cores; e2e tests take the test bed one at a time.
    set_tests_properties(${NAME} PROPERTIES RESOURCE_LOCK testbed)
  endif()
endfunction()

# morph_script_test(NAME COMMAND ... LABEL tier [TIMEOUT s])
function(morph_script_test NAME)
  cmake_parse_arguments(ARG "" "LABEL;TIMEOUT" "COMMAND" ${ARGN})
  add_test(NAME ${NAME} COMMAND ${ARG_COMMAND})
  if(NOT ARG_TIMEOUT)
    set(ARG_TIMEOUT 300)
  endif()
  set_tests_properties(${NAME} PROPERTIES LABELS ${ARG_LABEL} TIMEOUT ${ARG_TIMEOUT}
    ENVIRONMENT "MORPH_SOURCE_DIR=${CMAKE_SOURCE_DIR};MORPH_BINARY_DIR=${CMAKE_BINARY_DIR}"
    SKIP_RETURN_CODE 77)
  if(ARG_LABEL STREQUAL "e2e")
    set_tests_properties(${NAME} PROPERTIES RESOURCE_LOCK testbed)
  endif()
endfunction()
