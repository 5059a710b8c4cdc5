//===- DecomposeReft.h - the ReFT ops as GEMMs and loop kernels -*- C++ -*-===//
//
// peft-decompose's rewrites of pyreft's interventions and of the Householder
// map (and its gradient), listed in Decompose.cpp.
//
//===----------------------------------------------------------------------===//
#pragma once

#include "passes/autodiff/GradientRules.h"

namespace peft::lowering {

/// base·(householder_product(X)·diag(sign)) through peft.householder_sweep
/// and one GEMM.
mlir::Value decomposeHouseholderOrthogonal(autodiff::GradientBuilder &g,
                                           mlir::Operation *op);
/// The reverse sweep of the Householder product as two sweeps, batched GEMMs
/// over the reflectors and elementwise ops.
mlir::Value decomposeHouseholderOrthogonalGrad(autodiff::GradientBuilder &g,
                                               mlir::Operation *op);
/// peft.loreft / peft.nodireft on all rows as [N, d] GEMMs, the result
/// selected per row by peft.intervention_mask.
mlir::Value decomposeLoreft(autodiff::GradientBuilder &g, mlir::Operation *op);
mlir::Value decomposeNodireft(autodiff::GradientBuilder &g,
                              mlir::Operation *op);

} // namespace peft::lowering
