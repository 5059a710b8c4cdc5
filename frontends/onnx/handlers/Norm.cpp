//===- Norm.cpp - import handlers of this op family -------------------------===//
#include "frontends/onnx/NodeImport.h"

#include "dialects/nn/NNOps.h"

using namespace mlir;

namespace peft::onnx_import {

void registerNormHandlers(HandlerRegistry &r) {}

} // namespace peft::onnx_import
