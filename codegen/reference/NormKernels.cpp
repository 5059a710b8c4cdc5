//===- NormKernels.cpp - softmax and normalisation ------------------------===//
#include "codegen/reference/Kernels.h"

using namespace mlir;

namespace peft::ref {

void registerNormKernels(KernelRegistry &r) {}

} // namespace peft::ref
