//===- Linalg.cpp - MatMul, Gemm, Conv ------------------------------------===//
#include "frontends/onnx/NodeImport.h"

#include "dialects/nn/NNOps.h"

using namespace mlir;

namespace peft::onnx_import {
namespace {

LogicalResult importMatMul(NodeContext &n) {
  if (failed(n.requireInputs(2)))
    return failure();
  auto v = n.create<nn::MatMulOp>({n.input(0), n.input(1)});
  if (failed(v))
    return failure();
  n.setResult(0, *v);
  return success();
}

} // namespace

void registerLinalgHandlers(HandlerRegistry &r) {
  r.add("", "MatMul", 1, importMatMul);
}

} // namespace peft::onnx_import
