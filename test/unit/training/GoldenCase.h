//===- GoldenCase.h - reading the PyTorch + PEFT parity goldens -*- C++ -*-===//
//
// test/goldens/<case>/: spec.yaml, data.safetensors, losses.json,
// final_trainable.safetensors, initial_adapter/ (or pyreft's
// initial_interventions.safetensors), made by scripts/gen_goldens. Shared by
// the reference-evaluator, lowered-IR and compiled-code parity tests (and
// their raised-attention variants), which also share the compilation of a
// case up to the training step (as peftc compiles it), the reading of its
// data and the comparison of the trained tensors with the golden's.
//
//===----------------------------------------------------------------------===//
#pragma once

#include "codegen/reference/Evaluator.h"
#include "frontends/onnx/Importer.h"
#include "frontends/spec/PeftSpec.h"
#include "passes/AdapterInit.h"
#include "passes/Passes.h"
#include "passes/analysis/ModuleNames.h"
#include "peft/SafeTensors.h"
#include "peft/Tensor.h"

#include "mlir/IR/Verifier.h"
#include "mlir/Pass/PassManager.h"
#include "mlir/Transforms/Passes.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/JSON.h"
#include "llvm/Support/MemoryBuffer.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace peft::golden {

inline std::string goldenPath(const std::string &relative) {
  return std::string(PEFT_GOLDENS_DIR) + "/" + relative;
}

/// PEFT's parameter name -> the key it saves the tensor under
/// (`...lora_A.default.weight` -> `...lora_A.weight`,
/// `lm_head.modules_to_save.default.weight` -> `lm_head.weight`).
inline std::string keyOfPeftName(std::string name) {
  auto erase = [&](const std::string &what, const std::string &with) {
    size_t at = name.find(what);
    if (at != std::string::npos)
      name.replace(at, what.size(), with);
  };
  erase(".lora_magnitude_vector.default.weight", ".lora_magnitude_vector");
  // Prompt tuning's table is saved as `prompt_embeddings`.
  erase("prompt_encoder.default.embedding.weight", "prompt_embeddings");
  erase(".modules_to_save.default", "");
  erase(".default", "");
  return name;
}

/// A projected prefix (PREFIX_TUNING with prefix_projection) trains PEFT's
/// PrefixEncoder, but PEFT's initial_adapter/ holds only the encoder's
/// output: such a case starts from initial_prefix_encoder.safetensors, whose
/// keys are the encoder's PEFT names less the adapter name, as peftc keys
/// those params. `caseDir` is the case's folder.
inline std::string prefixEncoderFile(const std::string &caseDir) {
  return caseDir + "/initial_prefix_encoder.safetensors";
}

/// The key of a final_trainable.safetensors tensor: keyOfPeftName, or for a
/// projected prefix's encoder the name less `.default`.
inline std::string keyOfTrainedName(const std::string &name,
                                    bool projectedPrefix) {
  size_t at = name.find(".default.");
  if (projectedPrefix && at != std::string::npos)
    return name.substr(0, at) + name.substr(at + 8);
  return keyOfPeftName(name);
}

inline double relative(double got, double want) {
  return std::abs(got - want) / std::max(std::abs(want), 1e-300);
}

/// Rows [first, first + count) of a [rows, ...] tensor.
inline Tensor rows(const Tensor &t, int64_t first, int64_t count) {
  Shape shape = t.shape();
  int64_t width = t.numel() / shape[0];
  shape[0] = count;
  Tensor out(t.dtype(), shape);
  for (int64_t i = 0; i < count * width; ++i) {
    if (isFloat(t.dtype()))
      out.setDouble(i, t.getDouble(first * width + i));
    else
      out.setInt(i, t.getInt(first * width + i));
  }
  return out;
}

struct Golden {
  llvm::json::Object json;
  std::string model;
  int64_t steps = 0;
  std::vector<double> losses, gradNorms, lrs;
  std::vector<std::vector<double>> microLosses;
  double finalLoss = 0;
};

inline std::vector<double> numbers(const llvm::json::Array *array) {
  std::vector<double> out;
  if (array)
    for (const llvm::json::Value &v : *array)
      out.push_back(v.getAsNumber().value_or(std::nan("")));
  return out;
}

inline bool readGolden(const std::string &caseName, Golden &g,
                       std::string &error) {
  auto buffer =
      llvm::MemoryBuffer::getFile(goldenPath(caseName + "/losses.json"));
  if (!buffer) {
    error = "cannot read losses.json";
    return false;
  }
  llvm::Expected<llvm::json::Value> value =
      llvm::json::parse((*buffer)->getBuffer());
  if (!value || !value->getAsObject()) {
    if (!value)
      llvm::consumeError(value.takeError());
    error = "losses.json is not a JSON object";
    return false;
  }
  g.json = *value->getAsObject();
  g.model = g.json.getString("model").value_or("").str();
  g.steps = g.json.getInteger("steps").value_or(0);
  g.losses = numbers(g.json.getArray("losses"));
  g.gradNorms = numbers(g.json.getArray("grad_norms"));
  g.lrs = numbers(g.json.getArray("lrs"));
  g.finalLoss = g.json.getNumber("final_loss").value_or(std::nan(""));
  if (const llvm::json::Array *micro = g.json.getArray("micro_batch_losses"))
    for (const llvm::json::Value &step : *micro)
      g.microLosses.push_back(numbers(step.getAsArray()));
  if (g.steps < 1 || (int64_t)g.losses.size() != g.steps ||
      (int64_t)g.gradNorms.size() != g.steps ||
      (int64_t)g.lrs.size() != g.steps) {
    error = "losses.json lacks steps/losses/grad_norms/lrs";
    return false;
  }
  return true;
}

/// readGolden and the case's spec.yaml.
inline bool readCase(const std::string &caseName, Golden &g,
                     spec::PeftSpec &spec, std::string &error) {
  if (!readGolden(caseName, g, error)) {
    error = caseName + ": " + error;
    return false;
  }
  return spec::parseSpecFile(goldenPath(caseName + "/spec.yaml"), spec, error);
}

/// The case's data.safetensors.
inline bool readCaseData(const std::string &caseName, SafeTensorsFile &data,
                         std::string &error) {
  return readSafeTensors(goldenPath(caseName + "/data.safetensors"), data,
                         error);
}

/// An MLIR context with the dialects the training pipeline and its lowering
/// use, collecting diagnostics in `diagnostics` (without the ops they name).
class PipelineContext {
public:
  PipelineContext()
      : ctx(registry()), handler_(&ctx, [this](mlir::Diagnostic &d) {
          diagnostics += d.str() + "\n";
          return mlir::success();
        }) {
    ctx.loadAllAvailableDialects();
    ctx.printOpOnDiagnostic(false);
  }

  mlir::MLIRContext ctx;
  std::string diagnostics;

private:
  static mlir::DialectRegistry registry() {
    mlir::DialectRegistry registry;
    onnx_import::registerImportDialects(registry);
    registry.insert<mlir::func::FuncDialect, nn::NNDialect, pir::PeftDialect,
                    kern::KernDialect>();
    return registry;
  }

  mlir::ScopedDiagnosticHandler handler_;
};

/// The model at `modelPath` as peftc imports it for `spec`: with the spec's
/// input shapes, canonicalized, its modules annotated and the spec
/// attached. Null on failure (the context has the diagnostics).
inline mlir::OwningOpRef<mlir::ModuleOp>
importCase(mlir::MLIRContext &ctx, const spec::PeftSpec &spec,
           const std::string &modelPath) {
  onnx_import::ImportOptions options;
  for (const spec::InputShape &input : spec.training.inputs)
    options.dataShapes[input.name] = spec::importShape(spec, input);
  mlir::OwningOpRef<mlir::ModuleOp> module =
      onnx_import::importOnnxModel(ctx, modelPath, options);
  if (!module)
    return nullptr;
  mlir::PassManager canonicalize(&ctx);
  canonicalize.addPass(mlir::createCanonicalizerPass());
  if (mlir::failed(canonicalize.run(*module)) ||
      mlir::failed(analysis::annotateModules(*module)))
    return nullptr;
  analysis::writeSpecAttr(*module, spec);
  return module;
}

/// Where a case's training starts: pyreft's initial interventions (ReFT
/// cases), the projected prefix's encoder, PEFT's initial adapter, or, where
/// the case has none of them (sparse deltas), the methods' own init.
struct CaseStart {
  InsertAdaptersOptions adapters;
  InsertInterventionsOptions interventions;
  bool reft = false;
  /// PEFT's initial_adapter of a projected prefix holds the encoder's
  /// output only; its trained tensors are keyed by keyOfTrainedName(_, true).
  bool projectedPrefix = false;
};
inline CaseStart caseStart(const std::string &caseName) {
  CaseStart start;
  std::string interventions =
      goldenPath(caseName + "/initial_interventions.safetensors");
  start.reft = llvm::sys::fs::exists(interventions);
  if (start.reft)
    start.interventions.initInterventions = interventions;
  std::string initialAdapter = goldenPath(caseName + "/initial_adapter");
  std::string prefixEncoder = prefixEncoderFile(goldenPath(caseName));
  start.projectedPrefix = llvm::sys::fs::exists(prefixEncoder);
  if (start.projectedPrefix)
    initialAdapter = prefixEncoder;
  if (!start.reft && llvm::sys::fs::exists(initialAdapter))
    start.adapters.initAdapter = initialAdapter;
  return start;
}

/// The passes peftc runs from the imported model to the training step: the
/// methods (started from `start`), peft-freeze, peft-build-loss,
/// peft-differentiate and peft-optimizer.
inline void addTrainingPasses(mlir::PassManager &pm, const CaseStart &start) {
  pm.addPass(createInsertPrefixTuning());
  pm.addPass(createInsertAdapters(start.adapters));
  pm.addPass(createInsertInterventions(start.interventions));
  pm.addPass(createInsertSparse());
  pm.addPass(createFreezeParams());
  pm.addPass(createBuildLoss());
  pm.addPass(createDifferentiateTrainable());
  pm.addPass(createOptimizer());
}

/// The case's training step as peftc compiles it: importCase, then
/// addTrainingPasses from caseStart and, if given, the passes `more` adds.
/// The passes `first` adds, if given, run on the imported model before the
/// methods (as peftc runs peft-raise-attention). Null on failure (the
/// context has the diagnostics).
inline mlir::OwningOpRef<mlir::ModuleOp>
compileCase(mlir::MLIRContext &ctx, const std::string &caseName,
            const spec::PeftSpec &spec, const Golden &golden,
            llvm::function_ref<void(mlir::PassManager &)> more = nullptr,
            llvm::function_ref<void(mlir::PassManager &)> first = nullptr) {
  mlir::OwningOpRef<mlir::ModuleOp> module =
      importCase(ctx, spec, goldenPath(caseName + "/" + golden.model));
  if (!module)
    return nullptr;
  mlir::PassManager pm(&ctx);
  if (first)
    first(pm);
  addTrainingPasses(pm, caseStart(caseName));
  if (more)
    more(pm);
  if (mlir::failed(pm.run(*module)))
    return nullptr;
  return module;
}

/// Gives the params the methods added their initial values on `eval` (the
/// evaluator of `module`), as peftc's trainer does at its start.
inline mlir::LogicalResult initializeOnEvaluator(ref::Evaluator &eval,
                                                 mlir::ModuleOp module,
                                                 uint64_t seed) {
  return adapters::initializeParams(
      module, seed, [&](llvm::StringRef name) { return eval.paramValue(name); },
      [&](llvm::StringRef name, const Tensor &value) {
        return eval.setParam(name, value);
      });
}

/// The f64 evaluator of `module`, verified, with the params the methods
/// added at their initial values (initializeOnEvaluator). Null on failure
/// (the context has the diagnostics).
inline std::unique_ptr<ref::Evaluator> startEvaluator(mlir::ModuleOp module,
                                                      uint64_t seed) {
  if (mlir::failed(mlir::verify(module)))
    return nullptr;
  auto eval = std::make_unique<ref::Evaluator>(
      module, ref::EvalOptions{/*promoteToF64=*/true});
  if (mlir::failed(initializeOnEvaluator(*eval, module, seed)))
    return nullptr;
  return eval;
}

/// The evaluator inputs of `fn` for micro-batch `micro` (`batch` rows of
/// each data tensor, by argument name) of training step `step` (the
/// `peft.step` argument). False, with `error`, for an argument without
/// data.
inline bool stepInputs(mlir::func::FuncOp fn, const SafeTensorsFile &data,
                       int64_t micro, int64_t batch, int64_t step,
                       std::vector<Tensor> &inputs, std::string &error) {
  inputs.clear();
  for (unsigned i = 0; i < fn.getNumArguments(); ++i) {
    if (fn.getArgAttr(i, "peft.step")) {
      Tensor t(DType::I64, {});
      t.setInt(0, step);
      inputs.push_back(t);
      continue;
    }
    auto name = fn.getArgAttrOfType<mlir::StringAttr>(i, "nn.name");
    const Tensor *all = name ? data.find(name.str()) : nullptr;
    if (!all) {
      error = "no data for argument " + std::to_string(i) + " of @" +
              fn.getSymName().str();
      return false;
    }
    inputs.push_back(rows(*all, micro * batch, batch));
  }
  return true;
}

/// The golden's trained tensors (final_trainable.safetensors), by the key
/// of the param that trains each (keyOfTrainedName).
struct TrainedTensors {
  SafeTensorsFile file;
  std::map<std::string, const Tensor *> byKey;
};
inline bool readTrained(const std::string &caseName, bool projectedPrefix,
                        TrainedTensors &trained, std::string &error) {
  if (!readSafeTensors(goldenPath(caseName + "/final_trainable.safetensors"),
                       trained.file, error))
    return false;
  trained.byKey.clear();
  for (const auto &[name, tensor] : trained.file.tensors)
    trained.byKey[keyOfTrainedName(name, projectedPrefix)] = &tensor;
  return true;
}

/// ||got - want|| / ||want|| of the trained tensor `got`, as peftc holds it,
/// against the golden's `want` (`transposed`: PEFT saves got's transpose).
/// Where `skip(i, delta)` is given and true, element i of `want` is left out
/// (`delta`: got's element less want's).
inline double
trainedError(const Tensor &got, const Tensor &want, bool transposed,
             llvm::function_ref<bool(int64_t, double)> skip = nullptr) {
  int64_t cols = got.rank() == 2 ? got.shape()[1] : 1;
  int64_t rowsOfGot = got.rank() == 2 ? got.shape()[0] : got.numel();
  double diff = 0, ref = 0;
  for (int64_t i = 0; i < want.numel(); ++i) {
    // want[i] under the transpose is got[(i % rows) * cols + i / rows].
    int64_t j = transposed ? (i % rowsOfGot) * cols + i / rowsOfGot : i;
    double delta = got.getDouble(j) - want.getDouble(i);
    if (skip && skip(i, delta))
      continue;
    diff += delta * delta;
    ref += want.getDouble(i) * want.getDouble(i);
  }
  return std::sqrt(diff / std::max(ref, 1e-300));
}

/// The worst trainedError over the trained tensors and how many there were.
struct TrainedComparison {
  double worst = 0;
  std::string worstKey;
  size_t matched = 0;
};

/// Every trainable param of `module`, as `eval` holds it after training,
/// compared with the golden's tensor of its peft.key. False, with `error`,
/// for a param without key, value or golden tensor of its size.
inline bool compareTrainedOnEvaluator(mlir::ModuleOp module,
                                      ref::Evaluator &eval,
                                      const TrainedTensors &trained,
                                      TrainedComparison &out,
                                      std::string &error) {
  out = TrainedComparison();
  for (auto param : module.getOps<pir::ParamOp>()) {
    if (!param.getTrainable())
      continue;
    std::string name = param.getSymName().str();
    auto key = param->getAttrOfType<mlir::StringAttr>(analysis::attr::kKey);
    if (!key) {
      error = "trainable @" + name + " has no peft.key";
      return false;
    }
    auto it = trained.byKey.find(key.str());
    if (it == trained.byKey.end()) {
      error = "the golden has no trained tensor " + key.str();
      return false;
    }
    mlir::FailureOr<Tensor> got = eval.paramValue(name);
    if (mlir::failed(got)) {
      error = "no value for @" + name;
      return false;
    }
    const Tensor &want = *it->second;
    if (got->numel() != want.numel()) {
      error = key.str() + ": " + std::to_string(got->numel()) +
              " elements, the golden's " + std::to_string(want.numel());
      return false;
    }
    double err = trainedError(*got, want,
                              param->hasAttr(analysis::attr::kKeyTransposed));
    if (err >= out.worst) {
      out.worst = err;
      out.worstKey = key.str();
    }
    ++out.matched;
  }
  return true;
}

} // namespace peft::golden
