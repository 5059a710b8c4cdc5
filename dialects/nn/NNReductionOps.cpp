//===- NNReductionOps.cpp - result types of reductions --------------------===//
#include "dialects/nn/NNOps.h"

using namespace mlir;
using namespace peft::nn;

namespace {

std::string listStr(ArrayRef<int64_t> v) {
  std::string s;
  llvm::raw_string_ostream os(s);
  os << "[";
  llvm::interleaveComma(v, os);
  os << "]";
  return s;
}

/// The shape left after reducing `axes` (already checked) of `shape`.
SmallVector<int64_t> reducedShape(ArrayRef<int64_t> shape,
                                  ArrayRef<int64_t> axes, bool keepdims) {
  SmallVector<int64_t> out;
  for (auto [d, size] : llvm::enumerate(shape)) {
    bool reduced = llvm::is_contained(axes, (int64_t)d);
    if (!reduced)
      out.push_back(size);
    else if (keepdims)
      out.push_back(1);
  }
  return out;
}

LogicalResult inferReduce(std::optional<Location> loc, Type inputType,
                          ArrayRef<int64_t> axes, bool keepdims,
                          SmallVectorImpl<Type> &inferred) {
  auto in = cast<RankedTensorType>(inputType);
  int64_t rank = in.getRank();
  for (auto [i, a] : llvm::enumerate(axes)) {
    if (a < 0 || a >= rank)
      return inferenceError(loc, "axes " + listStr(axes) +
                                     " are out of range for rank " +
                                     Twine(rank));
    if (i > 0 && axes[i - 1] >= a)
      return inferenceError(loc, "axes " + listStr(axes) +
                                     " are not sorted and distinct");
  }
  inferred.push_back(RankedTensorType::get(
      reducedShape(in.getShape(), axes, keepdims), in.getElementType()));
  return success();
}

LogicalResult inferArgReduce(MLIRContext *ctx, std::optional<Location> loc,
                             Type inputType, int64_t axis, bool keepdims,
                             SmallVectorImpl<Type> &inferred) {
  auto in = cast<RankedTensorType>(inputType);
  if (in.getRank() == 0)
    return inferenceError(loc, "needs an input of rank >= 1");
  if (axis < 0 || axis >= in.getRank())
    return inferenceError(loc, "axis " + Twine(axis) +
                                   " is out of range for rank " +
                                   Twine(in.getRank()));
  if (in.getDimSize(axis) == 0)
    return inferenceError(loc, "cannot take the index of an empty axis");
  inferred.push_back(
      RankedTensorType::get(reducedShape(in.getShape(), {axis}, keepdims),
                            IntegerType::get(ctx, 64)));
  return success();
}

} // namespace

#define PEFT_REDUCE_INFERENCE(OpClass)                                         \
  LogicalResult OpClass::inferReturnTypes(                                     \
      MLIRContext *, std::optional<Location> loc, Adaptor adaptor,             \
      SmallVectorImpl<Type> &inferred) {                                       \
    return inferReduce(loc, adaptor.getInput().getType(), adaptor.getAxes(),   \
                       adaptor.getKeepdims(), inferred);                       \
  }
PEFT_REDUCE_INFERENCE(ReduceSumOp)
PEFT_REDUCE_INFERENCE(ReduceMeanOp)
PEFT_REDUCE_INFERENCE(ReduceProdOp)
PEFT_REDUCE_INFERENCE(ReduceMaxOp)
PEFT_REDUCE_INFERENCE(ReduceMinOp)
#undef PEFT_REDUCE_INFERENCE

LogicalResult ArgMaxOp::inferReturnTypes(MLIRContext *ctx,
                                         std::optional<Location> loc,
                                         Adaptor adaptor,
                                         SmallVectorImpl<Type> &inferred) {
  return inferArgReduce(ctx, loc, adaptor.getInput().getType(),
                        adaptor.getAxis(), adaptor.getKeepdims(), inferred);
}

LogicalResult ArgMinOp::inferReturnTypes(MLIRContext *ctx,
                                         std::optional<Location> loc,
                                         Adaptor adaptor,
                                         SmallVectorImpl<Type> &inferred) {
  return inferArgReduce(ctx, loc, adaptor.getInput().getType(),
                        adaptor.getAxis(), adaptor.getKeepdims(), inferred);
}
