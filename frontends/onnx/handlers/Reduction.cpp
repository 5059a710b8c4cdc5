//===- Reduction.cpp - import handlers of this op family -------------------------===//
#include "frontends/onnx/NodeImport.h"

#include "dialects/nn/NNOps.h"

using namespace mlir;

namespace peft::onnx_import {

void registerReductionHandlers(HandlerRegistry &r) {}

} // namespace peft::onnx_import
