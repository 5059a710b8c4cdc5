# cmake -DCXX= -DINCLUDES="a|b" -DSOURCES="x.cpp|y.cpp" -DLIB=libpeftrt.a
#       -DWORK_DIR= -P StaticLinkTest.cmake
# Links the static runtime exactly as the issue states a program object is
# linked: `c++ objects... libpeftrt.a -ldnnl -lgomp`, then runs the result,
# which finds its program with Program::linked() and trains it.
string(REPLACE "|" ";" INCLUDES "${INCLUDES}")
string(REPLACE "|" ";" SOURCES "${SOURCES}")
file(REMOVE_RECURSE "${WORK_DIR}")
file(MAKE_DIRECTORY "${WORK_DIR}")
set(objects "")
set(flags "")
foreach(dir ${INCLUDES})
  list(APPEND flags "-I${dir}")
endforeach()
foreach(src ${SOURCES})
  get_filename_component(name "${src}" NAME_WE)
  execute_process(COMMAND "${CXX}" -std=c++17 -O1 ${flags} -c "${src}" -o
                          "${WORK_DIR}/${name}.o"
                  RESULT_VARIABLE rc ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "compiling ${src} failed:\n${err}")
  endif()
  list(APPEND objects "${WORK_DIR}/${name}.o")
endforeach()
execute_process(COMMAND "${CXX}" ${objects} "${LIB}" -ldnnl -lgomp -o
                        "${WORK_DIR}/linked-trainer"
                RESULT_VARIABLE rc ERROR_VARIABLE err)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "c++ objects libpeftrt.a -ldnnl -lgomp failed:\n${err}")
endif()
execute_process(COMMAND "${WORK_DIR}/linked-trainer" "${WORK_DIR}/base.bin"
                RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "linked-trainer failed (${rc}):\n${out}${err}")
endif()
string(REGEX MATCHALL "step [0-9]+ loss [0-9.e+-]+" steps "${out}")
list(LENGTH steps n)
if(NOT n EQUAL 3)
  message(FATAL_ERROR "expected 3 steps:\n${out}")
endif()
message(STATUS "${out}")
