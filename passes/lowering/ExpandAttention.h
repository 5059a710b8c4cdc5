//===- ExpandAttention.h - nn.attention as GEMMs and a softmax --*- C++ -*-===//
//
// One expansion of nn.attention into nn ops, shared by peft-decompose (which
// replaces the op by it) and the op's gradient rule (which recomputes the
// probabilities from it, as flash-attention backward passes do). It follows
// the reference kernel's order of operations (codegen/reference/
// AttentionKernels.cpp): logits = (Q·Kᵀ)·scale + mask, then the causal
// -inf, softmax over the keys, times V.
//
//===----------------------------------------------------------------------===//
#pragma once

#include "dialects/nn/NNOps.h"
#include "passes/autodiff/GradientRules.h"

namespace peft::lowering {

struct ExpandedAttention {
  /// Keys and values with the prefix concatenated and the KV heads repeated
  /// for every query head: [B, H, P + S, D].
  mlir::Value keys, values;
  /// softmax(logits) over the P + S keys: [B, H, T, P + S].
  mlir::Value probs;
  /// probs · values: [B, H, T, D], the op's result.
  mlir::Value result;
};

/// Builds the expansion of `op` with `g`'s helpers (before its insertion
/// point, at the op's location).
ExpandedAttention expandAttention(autodiff::GradientBuilder &g,
                                  nn::AttentionOp op);

/// The rows of `value` [B, H, L, D] summed over each group of H / Hkv query
/// heads: [B, Hkv, L, D] (the adjoint of repeating the KV heads).
mlir::Value sumHeadGroups(autodiff::GradientBuilder &g, mlir::Value value,
                          int64_t kvHeads);

} // namespace peft::lowering
