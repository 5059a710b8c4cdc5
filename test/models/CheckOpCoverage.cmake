# Runs the ONNX node tests, keeping the list of ops that have a passing test,
# then checks every op of every model in MODELS against it. A failing node
# test fails the onnx-conformance test already, so its exit code is not
# checked here: only the op list matters.
file(REMOVE ${PASSED_OPS})
execute_process(COMMAND ${CONFORMANCE} --passed-ops-out ${PASSED_OPS}
  OUTPUT_VARIABLE ignored RESULT_VARIABLE ignored_rc)
if(NOT EXISTS ${PASSED_OPS})
  message(FATAL_ERROR "peft-conformance wrote no ${PASSED_OPS} (exit ${ignored_rc})")
endif()
execute_process(COMMAND ${ONNX_OPS} ${MODELS} --passed-ops ${PASSED_OPS} RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "some fixture ops have no passing ONNX node test")
endif()
