# cmake -DDIR=<dir> -P CheckNoLLVMIncludes.cmake
# Fails if any C/C++ source or header under DIR includes an LLVM or MLIR
# header (llvm/, llvm-c/, mlir/, mlir-c/), or if a CMake file there mentions
# LLVM or MLIR outside a comment (an include path or a library to link).
if(NOT DIR OR NOT IS_DIRECTORY "${DIR}")
  message(FATAL_ERROR "CheckNoLLVMIncludes: DIR='${DIR}' is not a directory")
endif()
file(GLOB_RECURSE sources
  "${DIR}/*.h" "${DIR}/*.hpp" "${DIR}/*.hh" "${DIR}/*.inc" "${DIR}/*.def"
  "${DIR}/*.c" "${DIR}/*.cc" "${DIR}/*.cpp" "${DIR}/*.cxx")
set(offenders "")
foreach(f ${sources})
  file(STRINGS "${f}" hits
    REGEX "^[ \t]*#[ \t]*include[ \t]*[<\"](llvm|mlir)(-c)?/")
  foreach(h ${hits})
    string(APPEND offenders "\n  ${f}: ${h}")
  endforeach()
endforeach()
file(GLOB_RECURSE cmakefiles "${DIR}/CMakeLists.txt" "${DIR}/*.cmake")
foreach(f ${cmakefiles})
  file(STRINGS "${f}" hits
    REGEX "[Ll][Ll][Vv][Mm]|[Mm][Ll][Ii][Rr]")
  foreach(h ${hits})
    if(NOT h MATCHES "^[ \t]*#")
      string(APPEND offenders "\n  ${f}: ${h}")
    endif()
  endforeach()
endforeach()
list(LENGTH sources n)
if(offenders)
  message(FATAL_ERROR "The runtime must not depend on LLVM/MLIR:${offenders}")
endif()
message(STATUS "No LLVM/MLIR includes in ${n} runtime sources under ${DIR}")
