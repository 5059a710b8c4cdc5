//===- AdapterInit.h - initial values of adapter params ---------*- C++ -*-===//
//
// Adapter params are created with an `init` rule rather than bytes
// (peft-insert-adapters); this file turns the rules into values with peftc's
// own deterministic generator, or points the params at an existing adapter
// in Hugging Face PEFT's layout (`--init-adapter DIR`). docs/adapters.md
// documents both.
//
// Init rules (the `init` attribute of a peft.param):
//   zeros, ones
//   kaiming_uniform  U(-b, b), b = 1/sqrt(fan_in), fan_in = the last dim:
//                    PyTorch's kaiming_uniform_(a=sqrt(5)) of nn.Linear, used
//                    by PEFT for lora_A (and lora_B with init_lora_weights
//                    false)
//   gaussian         N(0, (1/r)^2), r = the first dim (PEFT's
//                    init_lora_weights="gaussian" for lora_A [r, in])
//   normal           N(0, 1) (IA3 with init_ia3_weights false)
//   dora_norm        ‖W + scale·B·A‖ per output feature, from the params
//                    named in `peft.init_args` (DoRA's magnitude)
//
//===----------------------------------------------------------------------===//
#pragma once

#include "dialects/peft/PeftOps.h"
#include "peft/Tensor.h"

#include "mlir/IR/BuiltinOps.h"
#include "llvm/ADT/STLFunctionalExtras.h"

#include <cstdint>

namespace peft::adapters {

/// peftc's generator: SplitMix64 (Steele, Lea, Flood 2014), one stream per
/// param, seeded from the spec's `training.seed` and the param's name, so a
/// param's initial value does not depend on which other params exist or on
/// the order they are initialised in.
class InitRandom {
public:
  InitRandom(uint64_t seed, llvm::StringRef stream);
  uint64_t next();
  /// Uniform in [0, 1) with 53 random bits.
  double uniform();
  /// Standard normal (Box-Muller; the second value of each pair is used
  /// next).
  double normal();

private:
  uint64_t state_;
  bool haveSpare_ = false;
  double spare_ = 0;
};

using ParamReader =
    llvm::function_ref<mlir::FailureOr<Tensor>(llvm::StringRef name)>;
using ParamWriter = llvm::function_ref<mlir::LogicalResult(
    llvm::StringRef name, const Tensor &value)>;

/// The initial value of `param` by its `init` rule: drawn and constant
/// values in the param's dtype; dora_norm, computed from other params (which
/// `read` supplies), in f64, so that an f64 evaluation sees the norm the DoRA
/// op computes; a writer rounds it to its storage type.
mlir::FailureOr<Tensor> initialValue(pir::ParamOp param, uint64_t seed,
                                     ParamReader read);

/// Computes every param that has an `init` rule but no bytes (no storage or
/// value) and hands it to `write`, rules that read other params last. With
/// the reference evaluator: read = Evaluator::paramValue, write =
/// Evaluator::setParam.
mlir::LogicalResult initializeParams(mlir::ModuleOp module, uint64_t seed,
                                     ParamReader read, ParamWriter write);

/// Points every trainable param that has a `peft.key` at the tensor of that
/// name in `path` (a directory holding PEFT's `adapter_model.safetensors`,
/// or such a file): its storage becomes the bytes in the file, no copy. A
/// tensor stored in another dtype or transposed (`peft.key_transposed`)
/// changes the param's type to the file's and gets `nn.transpose`/`nn.cast`
/// after each `peft.use`. Adapter tensors (lora_A, lora_B, magnitudes,
/// ia3_l) must be in the file; biases and modules_to_save copies keep their
/// model values when absent (PEFT does not save `bias: lora_only` biases).
/// A file tensor no param claims is an error.
mlir::LogicalResult loadInitialAdapter(mlir::ModuleOp module,
                                       llvm::StringRef path);

/// Changes `param` to `type` with `storage`, and every `peft.use` of it to
/// give its consumers what they read before (transposed back when
/// `transposed`, cast to the old element type).
void rebindParam(pir::ParamOp param, mlir::RankedTensorType type,
                 pir::StorageAttr storage, bool transposed);

} // namespace peft::adapters
