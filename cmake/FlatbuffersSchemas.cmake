# flatbuffers_schemas(TARGET SCHEMAS a.fbs ...)
# Generates C++ headers (INTERFACE target TARGET) and Python modules (into ${CMAKE_BINARY_DIR}/python)
# from the schemas with flatc. Python output is for third-party consumers and integration tests.
function(flatbuffers_schemas TARGET)
  cmake_parse_arguments(ARG "" "" "SCHEMAS" ${ARGN})
  set(cpp_dir ${CMAKE_BINARY_DIR}/generated/schemas)
  set(py_dir ${CMAKE_BINARY_DIR}/python)
  file(MAKE_DIRECTORY ${cpp_dir} ${py_dir})
  set(outputs "")
  foreach(fbs ${ARG_SCHEMAS})
    get_filename_component(abs ${fbs} ABSOLUTE)
    get_filename_component(stem ${fbs} NAME_WE)
    set(hdr ${cpp_dir}/${stem}_generated.h)
    set(py_stamp ${py_dir}/.${stem}.stamp)
    add_custom_command(
      OUTPUT ${hdr}
      COMMAND ${FLATC_EXECUTABLE} --cpp --scoped-enums -I ${CMAKE_CURRENT_SOURCE_DIR}
              -o ${cpp_dir} ${abs}
      DEPENDS ${abs} ${ARG_SCHEMAS}
      COMMENT "flatc --cpp ${stem}.fbs" VERBATIM)
    add_custom_command(
      OUTPUT ${py_stamp}
      COMMAND ${FLATC_EXECUTABLE} --python -I ${CMAKE_CURRENT_SOURCE_DIR} -o ${py_dir} ${abs}
      COMMAND ${CMAKE_COMMAND} -E touch ${py_stamp}
      DEPENDS ${abs} ${ARG_SCHEMAS}
      COMMENT "flatc --python ${stem}.fbs" VERBATIM)
    list(APPEND outputs ${hdr} ${py_stamp})
  endforeach()
  add_custom_target(${TARGET}_gen ALL DEPENDS ${outputs})
  add_library(${TARGET} INTERFACE)
  add_dependencies(${TARGET} ${TARGET}_gen)
  target_include_directories(${TARGET} INTERFACE ${cpp_dir})
  target_link_libraries(${TARGET} INTERFACE flatbuffers::flatbuffers)
endfunction()
