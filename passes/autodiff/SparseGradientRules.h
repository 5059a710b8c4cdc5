//===- SparseGradientRules.h - gradient rule of peft.sparse_delta -*- C++ -*-=//
//
// Listed in the table of GradientRules.cpp.
//
//===----------------------------------------------------------------------===//
#pragma once

#include "passes/autodiff/GradientRules.h"

namespace peft::autodiff {

/// W_eff = W + scatter(indices, values): dvalues = gather(dW_eff, indices)
/// (peft.sparse_gather, k values: the dense cotangent of W_eff is read, not
/// kept), dW = dW_eff; indices are integers and get none.
void sparseDeltaGrad(GradientBuilder &g);

} // namespace peft::autodiff
