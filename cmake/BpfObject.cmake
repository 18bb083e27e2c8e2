# bpf_object(NAME SOURCES a.bpf.c b.bpf.c ...)
#
# The one way a BPF object and its skeleton are built. Compiles each *.bpf.c with clang -target bpf (CO-RE,
# against the committed vmlinux.h; bpf/ and bpf/lib/ on the include path), links the objects with
# `bpftool gen object` into ${NAME}.bpf.o, generates ${NAME}.skel.h (skeleton struct `${NAME}`) with
# `bpftool gen skeleton`, and exposes an INTERFACE target ${NAME}_skel whose include directory holds the
# skeleton. Depfiles make every object rebuild when any header it includes changes.

set(BPF_VMLINUX_DIR ${CMAKE_SOURCE_DIR}/bpf/vmlinux/x86)
set(BPF_ARCH_DEFINE -D__TARGET_ARCH_x86)

function(bpf_object NAME)
  cmake_parse_arguments(ARG "" "" "SOURCES" ${ARGN})
  set(out_dir ${CMAKE_CURRENT_BINARY_DIR}/bpf_${NAME})
  file(MAKE_DIRECTORY ${out_dir})
  set(objs "")
  foreach(src ${ARG_SOURCES})
    get_filename_component(abs ${src} ABSOLUTE)
    get_filename_component(stem ${src} NAME_WE)
    set(obj ${out_dir}/${stem}.tmp.o)
    file(RELATIVE_PATH rel_obj ${CMAKE_BINARY_DIR} ${obj})
    add_custom_command(
      OUTPUT ${obj}
      COMMAND ${BPF_CLANG} -g -O2 -target bpf ${BPF_ARCH_DEFINE} -Wall -Werror
              -I${BPF_VMLINUX_DIR} -I${CMAKE_SOURCE_DIR}/bpf -I${CMAKE_SOURCE_DIR}/bpf/lib
              -MD -MF ${obj}.d -c ${abs} -o ${obj}
      DEPENDS ${abs}
      DEPFILE ${obj}.d
      COMMENT "BPF ${stem}.bpf.c"
      VERBATIM)
    list(APPEND objs ${obj})
  endforeach()
  set(linked ${out_dir}/${NAME}.bpf.o)
  set(skel ${out_dir}/${NAME}.skel.h)
  add_custom_command(
    OUTPUT ${linked}
    COMMAND ${BPFTOOL} gen object ${linked} ${objs}
    DEPENDS ${objs}
    COMMENT "BPF link ${NAME}.bpf.o"
    VERBATIM)
  add_custom_command(
    OUTPUT ${skel}
    COMMAND ${BPFTOOL} gen skeleton ${linked} name ${NAME} > ${skel}
    DEPENDS ${linked}
    COMMENT "BPF skeleton ${NAME}.skel.h"
    VERBATIM)
  add_custom_target(${NAME}_skel_gen DEPENDS ${skel})
  add_library(${NAME}_skel INTERFACE)
  add_dependencies(${NAME}_skel ${NAME}_skel_gen)
  target_include_directories(${NAME}_skel INTERFACE ${out_dir} ${CMAKE_SOURCE_DIR}/bpf)
  target_link_libraries(${NAME}_skel INTERFACE PkgConfig::LIBBPF)
endfunction()
