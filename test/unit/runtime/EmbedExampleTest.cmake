# cmake -DBUILD_DIR= -DSOURCE_DIR= -DWORK_DIR= -DCXX= -DGENERATOR= -DPROGRAM=
#       -DWRITE_DATA= -P EmbedExampleTest.cmake
# Installs the runtime component of BUILD_DIR into a fresh prefix, configures
# and builds examples/embed against it with find_package(peftrt), and trains
# the test program's shared object for 20 steps over 8 batches: the loss of
# step 17 (batch 1 again) must be below that of step 1.
file(REMOVE_RECURSE "${WORK_DIR}")
file(MAKE_DIRECTORY "${WORK_DIR}/data")

function(run)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out
                  ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "failed (${rc}): ${ARGN}\n${out}\n${err}")
  endif()
  set(out "${out}" PARENT_SCOPE)
endfunction()

run(${CMAKE_COMMAND} --install "${BUILD_DIR}" --prefix "${WORK_DIR}/prefix"
    --component peftrt)
foreach(f include/peft/runtime.h lib/libpeftrt.a lib/libpeftrt.so
          lib/cmake/peftrt/peftrtConfig.cmake)
  if(NOT EXISTS "${WORK_DIR}/prefix/${f}")
    message(FATAL_ERROR "not installed: ${f}")
  endif()
endforeach()
run(${CMAKE_COMMAND} -S "${SOURCE_DIR}" -B "${WORK_DIR}/build" -G "${GENERATOR}"
    -DCMAKE_CXX_COMPILER=${CXX} -DCMAKE_BUILD_TYPE=Release
    "-DCMAKE_PREFIX_PATH=${WORK_DIR}/prefix")
run(${CMAKE_COMMAND} --build "${WORK_DIR}/build")
run("${WRITE_DATA}" --data "${WORK_DIR}/data")
run("${WORK_DIR}/build/embed" "${PROGRAM}" "${WORK_DIR}/data/data.safetensors"
    --weights "${WORK_DIR}/data/base.bin" --steps 20 --out
    "${WORK_DIR}/adapter")
message(STATUS "${out}")
string(REGEX MATCHALL "loss [0-9.e+-]+" losses "${out}")
list(LENGTH losses n)
if(NOT n EQUAL 20)
  message(FATAL_ERROR "expected 20 losses, got ${n}:\n${out}")
endif()
list(GET losses 0 first)
list(GET losses 16 last)
string(REPLACE "loss " "" first "${first}")
string(REPLACE "loss " "" last "${last}")
if(NOT last LESS first)
  message(FATAL_ERROR "the loss did not fall: ${first} -> ${last}")
endif()
if(NOT EXISTS "${WORK_DIR}/adapter/adapter_model.safetensors")
  message(FATAL_ERROR "no adapter written")
endif()
