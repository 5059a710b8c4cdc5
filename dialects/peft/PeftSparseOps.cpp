//===- PeftSparseOps.cpp - shape inference of the sparse ops --------------===//
//
// peft.sparse_delta keeps the weight's type; peft.sparse_gather gives one
// value per index. Both need a matrix when `transposed` (the transpose of
// anything else is not PyTorch's layout of a Linear weight).
//
//===----------------------------------------------------------------------===//
#include "dialects/peft/PeftOps.h"

using namespace mlir;
using namespace peft::pir;

namespace {

/// Reports at `location` (inference may run without one) in the form of a
/// verifier message.
LogicalResult inferError(std::optional<Location> location, StringRef opName,
                         const Twine &message) {
  if (location)
    emitError(*location) << "'" << opName << "' op " << message;
  return failure();
}

/// The dense operand and the index vector; `transposed` needs a matrix.
LogicalResult checkOperands(std::optional<Location> location, StringRef opName,
                            Value dense, Value indices, bool transposed) {
  auto denseType = dyn_cast<RankedTensorType>(dense.getType());
  auto indexType = dyn_cast<RankedTensorType>(indices.getType());
  if (!denseType || !indexType)
    return inferError(location, opName, "operands must be ranked tensors");
  if (indexType.getRank() != 1)
    return inferError(location, opName, "indices must be a vector [k]");
  if (transposed && denseType.getRank() != 2)
    return inferError(location, opName,
                      "'transposed' indexes the transpose of a matrix; the "
                      "operand has rank " +
                          Twine(denseType.getRank()));
  if (indexType.getDimSize(0) > denseType.getNumElements())
    return inferError(location, opName,
                      Twine(indexType.getDimSize(0)) +
                          " distinct indices into a tensor of " +
                          Twine(denseType.getNumElements()) + " elements");
  return success();
}

} // namespace

LogicalResult SparseDeltaOp::inferReturnTypes(MLIRContext *,
                                              std::optional<Location> location,
                                              Adaptor adaptor,
                                              SmallVectorImpl<Type> &inferred) {
  StringRef name = getOperationName();
  if (failed(checkOperands(location, name, adaptor.getWeight(),
                           adaptor.getIndices(), adaptor.getTransposed())))
    return failure();
  auto weight = cast<RankedTensorType>(adaptor.getWeight().getType());
  auto values = dyn_cast<RankedTensorType>(adaptor.getValues().getType());
  auto indices = cast<RankedTensorType>(adaptor.getIndices().getType());
  if (!values || values.getShape() != indices.getShape() ||
      values.getElementType() != weight.getElementType())
    return inferError(location, name,
                      "values must be [k] = [" + Twine(indices.getDimSize(0)) +
                          "] of the weight's element type");
  inferred.push_back(weight);
  return success();
}

LogicalResult SparseGatherOp::inferReturnTypes(
    MLIRContext *, std::optional<Location> location, Adaptor adaptor,
    SmallVectorImpl<Type> &inferred) {
  if (failed(checkOperands(location, getOperationName(), adaptor.getInput(),
                           adaptor.getIndices(), adaptor.getTransposed())))
    return failure();
  auto input = cast<RankedTensorType>(adaptor.getInput().getType());
  auto indices = cast<RankedTensorType>(adaptor.getIndices().getType());
  inferred.push_back(
      RankedTensorType::get(indices.getShape(), input.getElementType()));
  return success();
}
