//===- ReductionKernels.cpp - reductions and arg-reductions ---------------===//
#include "codegen/reference/Kernels.h"

using namespace mlir;

namespace peft::ref {

void registerReductionKernels(KernelRegistry &r) {}

} // namespace peft::ref
