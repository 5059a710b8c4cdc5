//===- Elementwise.cpp - arithmetic, activations, comparisons -------------===//
#include "frontends/onnx/NodeImport.h"

#include "dialects/nn/NNOps.h"

using namespace mlir;

namespace peft::onnx_import {
namespace {

template <typename OpTy> Handler unary() {
  return [](NodeContext &n) -> LogicalResult {
    if (failed(n.requireInputs(1)))
      return failure();
    auto v = n.create<OpTy>({n.input(0)});
    if (failed(v))
      return failure();
    n.setResult(0, *v);
    return success();
  };
}

template <typename OpTy> Handler binary() {
  return [](NodeContext &n) -> LogicalResult {
    if (failed(n.requireInputs(2)))
      return failure();
    auto v = n.create<OpTy>({n.input(0), n.input(1)});
    if (failed(v))
      return failure();
    n.setResult(0, *v);
    return success();
  };
}

} // namespace

void registerElementwiseHandlers(HandlerRegistry &r) {
  r.add("", "Neg", 6, unary<nn::NegOp>());
  r.add("", "Exp", 6, unary<nn::ExpOp>());
  r.add("", "Add", 7, binary<nn::AddOp>());
  r.add("", "Sub", 7, binary<nn::SubOp>());
  r.add("", "Mul", 7, binary<nn::MulOp>());
  r.add("", "Div", 7, binary<nn::DivOp>());
  r.add("", "Equal", 7, binary<nn::EqualOp>());
}

} // namespace peft::onnx_import
