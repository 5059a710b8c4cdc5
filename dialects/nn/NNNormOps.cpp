//===- NNNormOps.cpp - verifiers and inference of softmax and norms -------===//
#include "dialects/nn/NNOps.h"

using namespace mlir;
using namespace peft::nn;

namespace {

std::string typeStr(Type t) {
  std::string s;
  llvm::raw_string_ostream os(s);
  os << t;
  return s;
}

LogicalResult verifySoftmaxAxis(Operation *op, int64_t axis, int64_t rank) {
  if (rank == 0)
    return op->emitOpError("needs an input of rank >= 1");
  if (axis < 0 || axis >= rank)
    return op->emitOpError("axis ")
           << axis << " is out of range for rank " << rank;
  return success();
}

/// `param` (scale or bias) must broadcast to `normalized`, the trailing dims
/// of the input it scales, and share the input's element type.
LogicalResult checkNormParam(std::optional<Location> loc, StringRef role,
                             RankedTensorType param, RankedTensorType input,
                             ArrayRef<int64_t> normalized) {
  if (param.getElementType() != input.getElementType())
    return inferenceError(loc, role + " type " + typeStr(param) +
                                   " does not match the input's element "
                                   "type " +
                                   typeStr(input.getElementType()));
  ArrayRef<int64_t> shape = param.getShape();
  bool fits = shape.size() <= normalized.size();
  for (size_t i = 0; fits && i < shape.size(); ++i) {
    int64_t want = normalized[normalized.size() - shape.size() + i];
    fits = shape[i] == 1 || shape[i] == want;
  }
  if (!fits)
    return inferenceError(loc, role + " " + typeStr(param) +
                                   " does not broadcast to the normalised "
                                   "dims " +
                                   typeStr(RankedTensorType::get(
                                       normalized, input.getElementType())) +
                                   " of the input " + typeStr(input));
  return success();
}

} // namespace

LogicalResult SoftmaxOp::verify() {
  return verifySoftmaxAxis(*this, getAxis(), getInput().getType().getRank());
}

LogicalResult LogSoftmaxOp::verify() {
  return verifySoftmaxAxis(*this, getAxis(), getInput().getType().getRank());
}

LogicalResult LayerNormOp::inferReturnTypes(MLIRContext *,
                                            std::optional<Location> loc,
                                            Adaptor adaptor,
                                            SmallVectorImpl<Type> &inferred) {
  auto in = cast<RankedTensorType>(adaptor.getInput().getType());
  int64_t rank = in.getRank();
  int64_t axis = adaptor.getAxis();
  if (rank == 0)
    return inferenceError(loc, "needs an input of rank >= 1");
  if (axis < 0 || axis >= rank)
    return inferenceError(loc, "axis " + Twine(axis) +
                                   " is out of range for rank " + Twine(rank));
  ArrayRef<int64_t> normalized = in.getShape().drop_front(axis);
  if (failed(checkNormParam(
          loc, "scale", cast<RankedTensorType>(adaptor.getScale().getType()),
          in, normalized)))
    return failure();
  if (Value bias = adaptor.getBias())
    if (failed(checkNormParam(loc, "bias",
                              cast<RankedTensorType>(bias.getType()), in,
                              normalized)))
      return failure();
  if (adaptor.getEpsilon().convertToDouble() < 0)
    return inferenceError(loc, "epsilon must not be negative");
  SmallVector<int64_t> statShape(in.getShape());
  for (int64_t d = axis; d < rank; ++d)
    statShape[d] = 1;
  auto stat = RankedTensorType::get(statShape, in.getElementType());
  inferred.push_back(in);
  inferred.push_back(stat);
  inferred.push_back(stat);
  return success();
}
