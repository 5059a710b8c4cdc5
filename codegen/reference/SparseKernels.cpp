//===- SparseKernels.cpp - peft.sparse_delta and peft.sparse_gather -------===//
//
// The golden semantics of sparse fine-tuning's ops (PeftSparseOps.td): the
// delta is added in double and rounded once to the result's dtype, as
// PyTorch's `weight + delta` on a float tensor rounds. Indices that are not
// strictly increasing or lie out of range are errors here (the generated
// kernels cannot report them).
//
//===----------------------------------------------------------------------===//
#include "codegen/reference/Kernels.h"

#include "dialects/peft/PeftOps.h"

using namespace mlir;

namespace peft::ref {
namespace {

/// Where position `p` of PyTorch's layout lies in the stored tensor:
/// itself, or for `transposed` (a stored [a, b] matrix whose PyTorch layout
/// is its [b, a] transpose) row p mod a, column p div a.
int64_t storedIndex(int64_t p, const Shape &stored, bool transposed) {
  if (!transposed)
    return p;
  int64_t a = stored[0], b = stored[1];
  return (p % a) * b + p / a;
}

/// Checks that `indices` are strictly increasing positions in [0, numel).
LogicalResult checkIndices(Operation *op, const Tensor &indices,
                           int64_t numel) {
  for (int64_t j = 0; j < indices.numel(); ++j) {
    int64_t p = indices.getInt(j);
    if (p < 0 || p >= numel)
      return op->emitError(op->getName().getStringRef())
             << ": index " << j << " is " << p << ", outside [0, " << numel
             << ")";
    if (j > 0 && p <= indices.getInt(j - 1))
      return op->emitError(op->getName().getStringRef())
             << ": indices must be strictly increasing; index " << j << " is "
             << p << " after " << indices.getInt(j - 1);
  }
  return success();
}

FailureOr<Tensor> sparseDelta(Operation *op, ArrayRef<Tensor> in,
                              const EvalContext &ctx) {
  bool transposed = cast<pir::SparseDeltaOp>(op).getTransposed();
  const Tensor &w = in[0], &indices = in[1], &values = in[2];
  if (failed(checkIndices(op, indices, w.numel())))
    return failure();
  Tensor y(ctx.storageType(op->getResult(0)), w.shape());
  for (int64_t i = 0; i < w.numel(); ++i)
    y.setDouble(i, w.getDouble(i));
  for (int64_t j = 0; j < indices.numel(); ++j) {
    int64_t at = storedIndex(indices.getInt(j), w.shape(), transposed);
    y.setDouble(at, w.getDouble(at) + values.getDouble(j));
  }
  return y;
}

FailureOr<Tensor> sparseGather(Operation *op, ArrayRef<Tensor> in,
                               const EvalContext &ctx) {
  bool transposed = cast<pir::SparseGatherOp>(op).getTransposed();
  const Tensor &x = in[0], &indices = in[1];
  if (failed(checkIndices(op, indices, x.numel())))
    return failure();
  Tensor y(ctx.storageType(op->getResult(0)), indices.shape());
  for (int64_t j = 0; j < indices.numel(); ++j)
    y.setDouble(
        j, x.getDouble(storedIndex(indices.getInt(j), x.shape(), transposed)));
  return y;
}

} // namespace

void registerSparseKernels(KernelRegistry &r) {
  r.add("peft.sparse_delta", singleResult(sparseDelta));
  r.add("peft.sparse_gather", singleResult(sparseGather));
}

} // namespace peft::ref
