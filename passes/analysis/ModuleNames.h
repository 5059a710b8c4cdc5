//===- ModuleNames.h - PyTorch module paths of an imported model -*- C++
//-*-===//
//
// PEFT targets modules by their PyTorch path
// (`model.layers.0.self_attn.q_proj`); an imported ONNX graph has ops and
// parameters. This analysis finds the modules in the IR (DESIGN.md "Module
// names"):
//
//  - linear: `nn.matmul` whose right operand is a 2-D float param (through
//    `nn.transpose [1, 0]` and `nn.cast`, which only change its layout and
//    type), plus the `nn.add` of a 1-D param right after it (the bias); or a
//    `peft.lora`/`peft.dora` an earlier pass made of one;
//  - embedding: `nn.gather` on axis 0 of a 2-D float param;
//  - norm: `nn.layer_norm` with param scale/bias, or a 1-D param multiplied
//    (weight) or added (bias) elementwise, as decomposed RMS/LayerNorm are;
//  - conv: `nn.conv` with a param weight.
//
// A module's path comes from, in order: the `peft.module` attribute of its op
// (stamped by annotateModules, so it survives printing without locations);
// the TorchScript node scope of the op's location
// (`/model/layers.0/self_attn/q_proj/MatMul` ->
// `model.layers.0.self_attn.q_proj`); the state-dict name of its weight (dynamo
// exports keep `model.layers.0.self_attn.q_proj.weight`). Weights that
// TorchScript's constant folding stored transposed under a generated name
// (`onnx::MatMul_454`) are [in, out] copies of PyTorch's [out, in] tensor.
//
// Tied weights (GPT-2's lm_head, folded into a transposed copy of `wte`) are
// found by comparing the bytes of a folded linear weight with the embedding
// tables of the same (or transposed) shape; they are one parameter.
//
//===----------------------------------------------------------------------===//
#pragma once

#include "frontends/spec/PeftSpec.h"
#include "frontends/spec/TargetResolution.h"

#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/Operation.h"
#include "mlir/Support/LogicalResult.h"

#include <map>
#include <optional>
#include <string>
#include <vector>

namespace peft::analysis {

/// Discardable attributes the PEFT passes read and write.
namespace attr {
/// Module: the resolved spec as JSON (frontends/spec toJson), a string.
constexpr llvm::StringLiteral kSpec = "peft.spec";
/// Op: the PyTorch path of the module the op computes.
constexpr llvm::StringLiteral kModule = "peft.module";
/// Param: the key PEFT saves/loads the tensor under
/// (`base_model.model.<module>.lora_A.weight`, `...bias`).
constexpr llvm::StringLiteral kKey = "peft.key";
/// Param (unit): the tensor under `peft.key` is the transpose of the param
/// (a folded [in, out] copy of PyTorch's [out, in] weight).
constexpr llvm::StringLiteral kKeyTransposed = "peft.key_transposed";
/// Param: the method that created it ("lora", "dora", "ia3",
/// "modules_to_save"); such params are adapters, not base parameters.
constexpr llvm::StringLiteral kMethod = "peft.method";
/// Param: the base param a modules_to_save copy was made from.
constexpr llvm::StringLiteral kCopyOf = "peft.copy_of";
/// Param: what the `init` rule needs beyond the param's own shape.
constexpr llvm::StringLiteral kInitArgs = "peft.init_args";
/// Param and op: the pyvene key of the ReFT intervention it belongs to
/// (`layer_3_comp_block_output_unit_pos_nunit_1#0`).
constexpr llvm::StringLiteral kIntervention = "peft.intervention";
/// Function argument (unit): the i64 scalar training step counter: the
/// 1-based number of the micro-batch being computed (= the optimizer step
/// without gradient accumulation), 0 in evaluation. peft.dropout draws its
/// mask from it; peft-optimizer's step argument carries it too.
constexpr llvm::StringLiteral kStep = "peft.step";
} // namespace attr

/// Where a module reads a param: operand `operand` of `user`. The value
/// there is the param's `peft.use`, possibly through `nn.transpose`/`nn.cast`.
struct ParamSlot {
  std::string role;  // "weight", "bias", or the state-dict leaf name
  std::string param; // symbol name
  mlir::Operation *user = nullptr;
  unsigned operand = 0;
};

struct Module {
  spec::ModuleInfo info;
  /// The op the module was recognised by ("nn.matmul", "nn.gather",
  /// "nn.layer_norm", "nn.mul", "peft.lora", ...).
  std::string opName;
  std::vector<ParamSlot> params;

  // Linear modules only.
  mlir::Operation *anchor = nullptr; // nn.matmul / peft.lora / peft.dora
  /// True when the weight param is stored [out, in] (used as x·Wᵀ).
  bool weightOutIn = false;
  /// The bias add after the product, when the module has a bias.
  mlir::Operation *biasAdd = nullptr;

  const ParamSlot *slot(llvm::StringRef role) const;
};

struct ParamInfo {
  std::string name;
  /// The module (and its role there) that reads it; empty for buffers.
  std::string module, role;
  /// A model parameter PEFT counts (rather than a folded buffer such as a
  /// rotary frequency table, or integer data).
  bool isParameter = false;
  /// The parameter whose bytes (or their transpose) this one repeats.
  std::string tiedTo;
  /// Stored as the transpose of PyTorch's tensor (TorchScript folding).
  bool torchTransposed = false;
  /// Created by a PEFT pass (attr::kMethod): an adapter, not a base param.
  bool isAdapter = false;
  int64_t numel = 0;
  std::vector<int64_t> shape;
};

class ModuleTable {
public:
  /// Finds the modules of function `funcName` of `module`. Fails (with a
  /// diagnostic) only when there is no such function.
  static mlir::FailureOr<ModuleTable>
  build(mlir::ModuleOp module, llvm::StringRef funcName = "forward");

  std::vector<Module> modules;
  std::map<std::string, ParamInfo> params;

  /// The module list PEFT's target resolution works on.
  std::vector<spec::ModuleInfo> moduleInfos() const;
  const Module *find(llvm::StringRef path) const;
  /// Base parameters as PEFT counts them: tied weights once, adapters not.
  int64_t countBaseParameters() const;
};

/// Stamps `peft.module` on the op of every module of `funcName`, so module
/// paths survive printing the IR without locations.
mlir::LogicalResult annotateModules(mlir::ModuleOp module,
                                    llvm::StringRef funcName = "forward");

/// The `peft.spec` attribute of `module`, parsed. Errors are emitted on the
/// module (`who` names the pass asking).
mlir::FailureOr<spec::PeftSpec> readSpecAttr(mlir::ModuleOp module,
                                             llvm::StringRef who);
/// Writes `spec` as the `peft.spec` attribute (compact JSON).
void writeSpecAttr(mlir::ModuleOp module, const spec::PeftSpec &spec);

/// What `peftc --spec` does before the passes: stamps module paths
/// (annotateModules), resolves `spec` on the modules of `funcName` (so
/// errors point into the spec file: "file:line:col: error: ..." in `error`)
/// and attaches it.
mlir::LogicalResult attachSpec(mlir::ModuleOp module,
                               const spec::PeftSpec &spec,
                               spec::ResolvedTargets &resolved,
                               std::string &error,
                               llvm::StringRef funcName = "forward");

/// PEFT's `print_trainable_parameters()`:
/// "trainable params: N || all params: M || trainable%: P", where M counts
/// the base parameters once (tied weights once) plus every adapter tensor.
///
/// With ReFT interventions (params of peft-insert-interventions), pyreft's
/// ReftModel.print_trainable_parameters() instead:
/// "trainable intervention params: I || trainable model params: N\n
/// model params: M || trainable%: P", M without the interventions, P the
/// Python repr of 100·(I + N)/M.
struct TrainableCount {
  int64_t trainable = 0;
  int64_t all = 0;
  int64_t interventions = 0;
  std::string line() const;
};
mlir::FailureOr<TrainableCount>
countTrainable(mlir::ModuleOp module, llvm::StringRef funcName = "forward");

/// The module list as `peftc --list-targets` prints it: one module a line,
/// `path kind in out [layer=N] [head] [bias]` (the format `peft-spec
/// --modules` reads) and a comment with the op, weight shape and params.
void printModuleTable(const ModuleTable &table, llvm::raw_ostream &os);

/// The layer index PEFT reads from a module path: the first all-digit
/// component that follows a named one (`model.layers.3.mlp` -> 3).
std::optional<int> layerIndexOf(llvm::StringRef path);

} // namespace peft::analysis
