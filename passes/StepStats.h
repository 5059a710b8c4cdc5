//===- StepStats.h - GEMMs, FLOPs and kept activations of a step -*- C++
//-*-===//
//
// What one training step costs, read off `@train_step` as peft-differentiate
// (and peft-optimizer) built it: forward and backward GEMMs and their FLOPs,
// the weight-gradient GEMMs of each param, the backward op count, and the
// bytes of forward activations the backward reads, per layer too.
// docs/training-ir.md, "Step statistics", defines each number.
//
//===----------------------------------------------------------------------===//
#pragma once

#include "mlir/IR/BuiltinOps.h"
#include "mlir/Support/LogicalResult.h"
#include "llvm/Support/raw_ostream.h"

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace peft::stats {

struct GemmCount {
  int64_t gemms = 0;
  int64_t flops = 0;
  void add(int64_t count, int64_t f) {
    gemms += count;
    flops += f;
  }
};

/// The numbers of one layer (or of the ops outside every layer).
struct LayerStats {
  int64_t forwardOps = 0, backwardOps = 0;
  GemmCount forward, backward;
  int64_t keptValues = 0, keptBytes = 0;
};

struct StepStats {
  std::string function;
  int64_t forwardOps = 0, backwardOps = 0, updateOps = 0;
  GemmCount forward, backward;
  /// Backward GEMMs whose result is a param's gradient (the subset of
  /// `backward`), per param.
  GemmCount weightGradient;
  std::map<std::string, GemmCount> weightGradientByParam;
  /// Frozen params some backward GEMM computes the gradient of (must be
  /// empty: autodiff gives frozen weights no weight gradient).
  std::vector<std::string> frozenWithWeightGradient;
  /// Forward activations the backward reads, each value once.
  int64_t keptValues = 0, keptBytes = 0;
  /// By layer index (PEFT's: `model.layers.3...` -> 3); -1 for ops outside
  /// every layer (embedding, final norm, head, loss).
  std::map<int, LayerStats> layers;
  /// The trainable params and the optimizer state (`peft.state_of`) the
  /// program keeps, in elements and bytes: what a method's size is about
  /// (sparse fine-tuning's are proportional to its density).
  int64_t trainableValues = 0, trainableBytes = 0;
  int64_t stateValues = 0, stateBytes = 0;
};

/// Counts the step function `funcName` of `module`. Fails with a diagnostic
/// when there is no such function, or it is not a step peft-differentiate
/// made (no gradient results and no optimizer update).
mlir::FailureOr<StepStats> computeStepStats(mlir::ModuleOp module,
                                            llvm::StringRef funcName);

/// One number per line, `name: value`, then one line per layer.
void printStepStats(const StepStats &stats, llvm::raw_ostream &os);

/// The GEMMs an op performs and their FLOPs (2·M·N·K each, batch dims
/// multiplied in): nn.matmul, nn.einsum with a summed label, the
/// convolutions and the convolution weight gradient, and the component
/// GEMMs of peft.lora (3) and peft.dora (6, 7 with adapter_input).
GemmCount gemmsOf(mlir::Operation *op);

} // namespace peft::stats
