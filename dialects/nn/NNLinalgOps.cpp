//===- NNLinalgOps.cpp - inference of matmul and convolution --------------===//
#include "dialects/nn/NNOps.h"

using namespace mlir;
using namespace peft::nn;

LogicalResult MatMulOp::inferReturnTypes(MLIRContext *context,
                                         std::optional<Location> loc,
                                         Adaptor adaptor,
                                         SmallVectorImpl<Type> &inferred) {
  auto a = cast<RankedTensorType>(adaptor.getLhs().getType());
  auto b = cast<RankedTensorType>(adaptor.getRhs().getType());
  if (a.getElementType() != b.getElementType())
    return inferenceError(loc, "matmul operand element types differ");
  if (a.getRank() == 0 || b.getRank() == 0)
    return inferenceError(loc, "matmul operands must have rank >= 1");
  SmallVector<int64_t> as(a.getShape()), bs(b.getShape());
  bool aVec = as.size() == 1, bVec = bs.size() == 1;
  if (aVec)
    as.insert(as.begin(), 1);
  if (bVec)
    bs.push_back(1);
  int64_t m = as[as.size() - 2], k = as.back();
  int64_t k2 = bs[bs.size() - 2], n = bs.back();
  if (k != k2)
    return inferenceError(loc, "matmul contraction sizes differ: " + Twine(k) +
                                   " vs " + Twine(k2));
  SmallVector<int64_t> batch;
  if (failed(broadcastShapes(loc, ArrayRef<int64_t>(as).drop_back(2),
                             ArrayRef<int64_t>(bs).drop_back(2), batch)))
    return failure();
  if (!aVec)
    batch.push_back(m);
  if (!bVec)
    batch.push_back(n);
  inferred.push_back(RankedTensorType::get(batch, a.getElementType()));
  return success();
}
