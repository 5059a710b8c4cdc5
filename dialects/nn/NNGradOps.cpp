//===- NNGradOps.cpp - verifiers of the backward-only ops -----------------===//
//
// Each backward op is checked against the forward op it differentiates: the
// gradient it consumes must have the shape that forward op produces.
//
//===----------------------------------------------------------------------===//
#include "dialects/nn/NNOps.h"

#include "mlir/IR/TypeUtilities.h"
#include "llvm/ADT/STLExtras.h"

using namespace mlir;
using namespace peft::nn;

namespace {

std::string shapeStr(ArrayRef<int64_t> shape) {
  std::string s = "[";
  llvm::interleave(
      shape, [&](int64_t d) { s += std::to_string(d); }, [&] { s += ", "; });
  return s + "]";
}

/// The spatial output shape [N, C', O1..Ok] of a window of `kernel` sliding
/// over `in` [N, C, D1..Dk] (C' = `channels`), as nn.conv and the pooling
/// ops compute it; fails with a message on `op` when attributes are bad.
FailureOr<SmallVector<int64_t>>
windowedShape(Operation *op, ArrayRef<int64_t> in, int64_t channels,
              ArrayRef<int64_t> kernel, ArrayRef<int64_t> strides,
              ArrayRef<int64_t> pads, ArrayRef<int64_t> dilations,
              bool ceilMode) {
  if (in.size() < 3) {
    op->emitOpError("needs a [N, C, D1...] input, got ") << shapeStr(in);
    return failure();
  }
  size_t k = in.size() - 2;
  if (kernel.size() != k || strides.size() != k || dilations.size() != k ||
      pads.size() != 2 * k) {
    op->emitOpError("over ")
        << k << " spatial dims needs " << k
        << " kernel sizes, strides and dilations and " << 2 * k << " pads";
    return failure();
  }
  SmallVector<int64_t> out{in[0], channels};
  for (size_t i = 0; i < k; ++i) {
    if (strides[i] < 1 || dilations[i] < 1 || kernel[i] < 1 || pads[i] < 0 ||
        pads[i + k] < 0) {
      op->emitOpError("needs kernel sizes, strides and dilations >= 1 and "
                      "pads >= 0");
      return failure();
    }
    int64_t span =
        in[i + 2] + pads[i] + pads[i + k] - dilations[i] * (kernel[i] - 1) - 1;
    if (span < 0) {
      op->emitOpError("window does not fit spatial dim ") << i;
      return failure();
    }
    int64_t o =
        (ceilMode ? (span + strides[i] - 1) / strides[i] : span / strides[i]) +
        1;
    if (ceilMode && (o - 1) * strides[i] >= in[i + 2] + pads[i])
      --o;
    out.push_back(o);
  }
  return out;
}

LogicalResult checkGradShape(Operation *op, ArrayRef<int64_t> expected,
                             Type gradType) {
  auto grad = cast<RankedTensorType>(gradType).getShape();
  if (grad != ArrayRef<int64_t>(expected))
    return op->emitOpError("grad_output has shape ")
           << shapeStr(grad) << " but the forward op produces "
           << shapeStr(expected);
  return success();
}

LogicalResult checkSameElementType(Operation *op) {
  Type t = getElementTypeOrSelf(op->getResult(0).getType());
  for (Value v : op->getOperands())
    if (getElementTypeOrSelf(v.getType()) != t)
      return op->emitOpError("operands and result must share an element type");
  return success();
}

} // namespace

LogicalResult ConvWeightGradOp::verify() {
  if (failed(checkSameElementType(*this)))
    return failure();
  ArrayRef<int64_t> in = getInput().getType().getShape();
  ArrayRef<int64_t> w = getResult().getType().getShape();
  int64_t group = getGroup();
  if (w.size() != in.size() || w.size() < 3)
    return emitOpError("result must be a [M, C/group, K1...] weight of the "
                       "input's rank");
  if (group < 1 || w[0] % group != 0 || w[1] * group != in[1])
    return emitOpError("weight ")
           << shapeStr(w) << " does not fit " << in[1] << " input channels in "
           << group << " groups";
  FailureOr<SmallVector<int64_t>> out =
      windowedShape(*this, in, w[0], w.drop_front(2), getStrides(), getPads(),
                    getDilations(), /*ceilMode=*/false);
  if (failed(out))
    return failure();
  return checkGradShape(*this, *out, getGradOutput().getType());
}

LogicalResult MaxPoolGradOp::verify() {
  if (failed(checkSameElementType(*this)))
    return failure();
  ArrayRef<int64_t> in = getInput().getType().getShape();
  FailureOr<SmallVector<int64_t>> out =
      windowedShape(*this, in, in.size() > 1 ? in[1] : 0, getKernelShape(),
                    getStrides(), getPads(), getDilations(), getCeilMode());
  if (failed(out))
    return failure();
  return checkGradShape(*this, *out, getGradOutput().getType());
}

LogicalResult AvgPoolGradOp::verify() {
  if (failed(checkSameElementType(*this)))
    return failure();
  ArrayRef<int64_t> in = getResult().getType().getShape();
  FailureOr<SmallVector<int64_t>> out =
      windowedShape(*this, in, in.size() > 1 ? in[1] : 0, getKernelShape(),
                    getStrides(), getPads(), getDilations(), getCeilMode());
  if (failed(out))
    return failure();
  return checkGradShape(*this, *out, getGradOutput().getType());
}
