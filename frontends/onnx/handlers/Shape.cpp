//===- Shape.cpp - Reshape, Transpose, Slice, Gather, Concat, ... ---------===//
#include "frontends/onnx/NodeImport.h"

#include "dialects/nn/NNOps.h"

using namespace mlir;

namespace peft::onnx_import {
namespace {

/// Reshape with ONNX's 0 (copy) and -1 (infer) rules, resolved statically.
LogicalResult importReshape(NodeContext &n) {
  if (failed(n.requireInputs(2)))
    return failure();
  auto in = n.inputType(0);
  auto target = n.constantInts(1, "shape");
  if (failed(target))
    return failure();
  bool allowZero = n.attrInt("allowzero", 0) != 0;
  SmallVector<int64_t> shape;
  int64_t inferAt = -1, known = 1;
  for (auto [i, d] : llvm::enumerate(*target)) {
    if (d == 0 && !allowZero) {
      if ((int64_t)i >= in.getRank())
        return n.error() << "shape entry " << i << " is 0 (copy) but the input has rank "
                         << in.getRank();
      d = in.getDimSize(i);
    }
    if (d == -1) {
      if (inferAt >= 0)
        return n.error() << "shape has more than one -1";
      inferAt = i;
      shape.push_back(1);
      continue;
    }
    if (d < 0)
      return n.error() << "shape entry " << i << " is " << d;
    shape.push_back(d);
    known *= d;
  }
  if (inferAt >= 0) {
    if (known == 0 || in.getNumElements() % known)
      return n.error() << "cannot infer the -1 dimension: " << in.getNumElements()
                       << " elements do not divide by " << known;
    shape[inferAt] = in.getNumElements() / known;
  }
  auto v = n.createTyped<nn::ReshapeOp>(
      {RankedTensorType::get(shape, in.getElementType())}, {n.input(0)});
  if (failed(v))
    return failure();
  n.setResult(0, *v);
  return success();
}

} // namespace

void registerShapeHandlers(HandlerRegistry &r) {
  r.add("", "Reshape", 5, importReshape);
}

} // namespace peft::onnx_import
