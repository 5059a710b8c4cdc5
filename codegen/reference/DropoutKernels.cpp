//===- DropoutKernels.cpp - peft.dropout ----------------------------------===//
//
// The mask is runtime/include/peft/Dropout.h's, the one the generated CPU
// and CUDA kernels compute, so every backend drops the same elements.
//
//===----------------------------------------------------------------------===//
#include "codegen/reference/Kernels.h"

#include "dialects/peft/PeftOps.h"
#include "peft/Dropout.h"

using namespace mlir;

namespace peft::ref {
namespace {

/// Kept elements times 1/(1 − p) (PyTorch's `input * mask / (1 − p)`
/// computes the factor once, in the input's precision); dropped ones 0.
FailureOr<Tensor> dropoutKernel(Operation *op, ArrayRef<Tensor> in,
                                const EvalContext &ctx) {
  auto dropoutOp = cast<pir::DropoutOp>(op);
  const Tensor &x = in[0];
  int64_t step = in[1].getInt(0);
  Tensor y(ctx.storageType(op->getResult(0)), x.shape());
  if (step <= 0) {
    for (int64_t i = 0; i < x.numel(); ++i)
      y.setDouble(i, x.getDouble(i));
    return y;
  }
  double p = dropoutOp.getProbability();
  uint64_t threshold = dropout::dropThreshold(p);
  double scale = dropout::keepScale(p);
  uint64_t seed = dropoutOp.getSeedBits(), stream = dropoutOp.getStreamBits();
  for (int64_t i = 0; i < x.numel(); ++i)
    y.setDouble(
        i, dropout::keep(threshold, seed, (uint64_t)step, stream, (uint64_t)i)
               ? x.getDouble(i) * scale
               : 0.0);
  return y;
}

} // namespace

void registerDropoutKernels(KernelRegistry &r) {
  r.add("peft.dropout", singleResult(dropoutKernel));
}

} // namespace peft::ref
