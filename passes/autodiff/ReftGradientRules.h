//===- ReftGradientRules.h - gradient rules of the ReFT ops -----*- C++ -*-===//
//
// The rules of peft.householder_orthogonal, peft.loreft and peft.nodireft,
// listed in the table of GradientRules.cpp.
//
//===----------------------------------------------------------------------===//
#pragma once

#include "passes/autodiff/GradientRules.h"

namespace peft::autodiff {

/// dX through peft.householder_orthogonal_grad; the base is a buffer (no
/// gradient).
void householderOrthogonalGrad(GradientBuilder &g);
/// y = h + m ⊙ (h·Wᵀ + b − h·R)·Rᵀ.
void loreftGrad(GradientBuilder &g);
/// y = h + m ⊙ (h·Wᵀ + b)·P.
void nodireftGrad(GradientBuilder &g);

} // namespace peft::autodiff
