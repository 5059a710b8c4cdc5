//===- ShapeKernels.cpp - reshape, transpose, slice, gather, ... ----------===//
#include "codegen/reference/Kernels.h"

using namespace mlir;

namespace peft::ref {

void registerShapeKernels(KernelRegistry &r) {
  r.add("nn.reshape", singleResult([](Operation *op, ArrayRef<Tensor> in,
                                      const EvalContext &) -> FailureOr<Tensor> {
          return in[0].reshaped(resultShape(op));
        }));
}

} // namespace peft::ref
