//===- AttentionGradientRule.h - gradient rule of nn.attention --*- C++ -*-===//
//
// Listed in the table of GradientRules.cpp.
//
//===----------------------------------------------------------------------===//
#pragma once

#include "passes/autodiff/GradientRules.h"

namespace peft::autodiff {

/// Cotangents of query, key, value, prefix_key, prefix_value and the mask
/// of nn.attention, with the probabilities recomputed from the inputs.
void attentionGrad(GradientBuilder &g);

} // namespace peft::autodiff
