//===- MergeAdaptersTest.cpp - merged weights compute the adapted model ---===//
//
// peft-merge-adapters replaces every adapter op of @forward by a product
// with a merged weight that @merge_adapters computes. On the goldens'
// trained adapters (test/goldens/<case>/final_adapter, loaded as
// --init-adapter does) and on fixtures with random adapter values, @forward
// before merging and @merge_adapters + @forward after agree in f64 to
// 1e-12 relative: LoRA (including rsLoRA's inexact scale), DoRA, IA3 on
// outputs (with a bias, which IA3 scales too) and on feed-forward inputs,
// and GPT-2's fan_in_fan_out Conv1D layout.
//
//===----------------------------------------------------------------------===//
#include "codegen/reference/Evaluator.h"
#include "frontends/onnx/Importer.h"
#include "passes/AdapterInit.h"
#include "passes/Passes.h"
#include "passes/analysis/ModuleNames.h"
#include "peft/SafeTensors.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/IR/Verifier.h"
#include "mlir/Pass/PassManager.h"
#include "mlir/Transforms/Passes.h"

#include <gtest/gtest.h>

#include <cmath>

using namespace mlir;
using namespace peft;

namespace {

struct Case {
  const char *name;
  /// Relative to the source tree.
  const char *model;
  /// A golden case's spec.yaml (relative) or an inline spec.
  const char *spec;
  /// The golden's trained adapter (relative); null: random adapter values.
  const char *adapter;
  /// The inputs: a golden's data.safetensors (rows 0..batch-1) or a
  /// fixture's inputs.safetensors (whole).
  const char *inputs;
  const char *adapterOp;
};

std::string source(const std::string &relative) {
  return std::string(PEFT_SOURCE_DIR) + "/" + relative;
}

/// The first `count` rows of a [rows, ...] tensor.
Tensor firstRows(const Tensor &t, int64_t count) {
  Shape shape = t.shape();
  if (shape.empty() || shape[0] <= count)
    return t;
  int64_t width = t.numel() / shape[0];
  shape[0] = count;
  Tensor out(t.dtype(), shape);
  for (int64_t i = 0; i < count * width; ++i) {
    if (isFloat(t.dtype()))
      out.setDouble(i, t.getDouble(i));
    else
      out.setInt(i, t.getInt(i));
  }
  return out;
}

/// max |a − b| / max |a| over a pair of tensors.
double relativeError(const Tensor &want, const Tensor &got) {
  double diff = 0, scale = 0;
  for (int64_t i = 0; i < want.numel(); ++i) {
    diff = std::max(diff, std::fabs(got.getDouble(i) - want.getDouble(i)));
    scale = std::max(scale, std::fabs(want.getDouble(i)));
  }
  return diff / std::max(scale, 1e-300);
}

class MergeAdapters : public ::testing::TestWithParam<Case> {};

TEST_P(MergeAdapters, MergedForwardMatchesAdaptedForward) {
  const Case &c = GetParam();
  std::string error;
  spec::PeftSpec spec;
  std::string specText = c.spec;
  if (llvm::StringRef(specText).ends_with(".yaml"))
    ASSERT_TRUE(spec::parseSpecFile(source(specText), spec, error)) << error;
  else
    ASSERT_TRUE(spec::parseSpecString(specText, "spec", spec, error)) << error;
  SafeTensorsFile data;
  ASSERT_TRUE(readSafeTensors(source(c.inputs), data, error)) << error;

  MLIRContext context;
  context.printOpOnDiagnostic(false);
  std::string diagnostics;
  ScopedDiagnosticHandler handler(&context, [&](Diagnostic &diag) {
    diagnostics += diag.str() + "\n";
    return success();
  });
  onnx_import::ImportOptions options;
  int64_t batch = spec.training.batchSize.value_or(0);
  for (const spec::InputShape &input : spec.training.inputs)
    options.dataShapes[input.name] = input.dims;
  if (spec.training.inputs.empty())
    for (auto &[name, tensor] : data.tensors)
      options.dataShapes[name] = tensor.shape();
  OwningOpRef<ModuleOp> module =
      onnx_import::importOnnxModel(context, source(c.model), options);
  ASSERT_TRUE(module) << diagnostics;
  {
    PassManager pm(&context);
    pm.addPass(createCanonicalizerPass());
    ASSERT_TRUE(succeeded(pm.run(*module))) << diagnostics;
  }
  spec::ResolvedTargets resolved;
  ASSERT_TRUE(succeeded(analysis::attachSpec(*module, spec, resolved, error)))
      << error << diagnostics;
  OwningOpRef<ModuleOp> base = cast<ModuleOp>((*module)->clone());
  {
    PassManager pm(&context);
    InsertAdaptersOptions insert;
    if (c.adapter)
      insert.initAdapter = source(c.adapter);
    pm.addPass(createInsertAdapters(insert));
    pm.addPass(createInsertSparse());
    pm.addPass(createFreezeParams());
    ASSERT_TRUE(succeeded(pm.run(*module))) << diagnostics;
  }

  // The adapter values: the golden's trained ones, or random ones (PEFT's
  // initial values would make every adapter the identity).
  std::map<std::string, Tensor> adapterValues;
  {
    ref::Evaluator eval(*module, {/*promoteToF64=*/true});
    ASSERT_TRUE(succeeded(adapters::initializeParams(
        *module, spec.training.seed,
        [&](StringRef name) { return eval.paramValue(name); },
        [&](StringRef name, const Tensor &value) {
          adapterValues[name.str()] = value;
          return eval.setParam(name, value);
        })))
        << diagnostics;
    if (!c.adapter)
      for (auto param : module->getOps<pir::ParamOp>()) {
        // Frozen method params (sparse indices) keep their values.
        if (!param->hasAttr(analysis::attr::kMethod) || !param.getTrainable())
          continue;
        FailureOr<Tensor> init = eval.paramValue(param.getSymName());
        ASSERT_TRUE(succeeded(init)) << diagnostics;
        adapters::InitRandom random(7, param.getSymName());
        Tensor value = *init;
        // Around the initial value (ones, ‖W‖) or zero (B), by 0.3 of it.
        for (int64_t i = 0; i < value.numel(); ++i) {
          double v = value.getDouble(i);
          double spread = v == 0 ? 0.1 : 0.3 * std::fabs(v);
          value.setDouble(i, v + spread * (2 * random.uniform() - 1));
        }
        adapterValues[param.getSymName().str()] = value;
      }
  }
  auto setAdapters = [&](ref::Evaluator &eval) {
    for (auto &[name, value] : adapterValues)
      ASSERT_TRUE(succeeded(eval.setParam(name, value))) << diagnostics;
  };

  auto forward = module->lookupSymbol<func::FuncOp>("forward");
  ASSERT_TRUE(forward);
  std::vector<Tensor> args;
  for (unsigned i = 0; i < forward.getNumArguments(); ++i) {
    auto name = forward.getArgAttrOfType<StringAttr>(i, "nn.name");
    ASSERT_TRUE(name);
    const Tensor *t = data.find(name.str());
    ASSERT_TRUE(t) << name.str();
    args.push_back(batch ? firstRows(*t, batch) : *t);
  }
  int adapterOps = 0;
  forward.walk([&](Operation *op) {
    adapterOps += op->getName().getStringRef() == c.adapterOp;
  });
  ASSERT_GT(adapterOps, 0) << "no " << c.adapterOp << " inserted";

  ref::Evaluator adapted(*module, {/*promoteToF64=*/true});
  setAdapters(adapted);
  auto before = adapted.run(args, "forward");
  ASSERT_TRUE(succeeded(before)) << diagnostics;
  ref::Evaluator plain(*base, {/*promoteToF64=*/true});
  auto baseline = plain.run(args, "forward");
  ASSERT_TRUE(succeeded(baseline)) << diagnostics;

  {
    PassManager pm(&context);
    pm.addPass(createMergeAdapters());
    ASSERT_TRUE(succeeded(pm.run(*module))) << diagnostics;
    ASSERT_TRUE(succeeded(verify(*module))) << diagnostics;
  }
  forward.walk([&](Operation *op) {
    EXPECT_FALSE((isa<pir::LoraOp, pir::DoraOp, pir::Ia3Op>(op)))
        << "left in @forward: " << op->getName().getStringRef().str();
    if (auto use = dyn_cast<pir::UseOp>(op)) {
      auto param = module->lookupSymbol<pir::ParamOp>(use.getParamAttr());
      EXPECT_FALSE(param->hasAttr(analysis::attr::kMethod))
          << "@forward still reads adapter @" << use.getParam().str();
    }
  });

  ref::Evaluator merged(*module, {/*promoteToF64=*/true});
  setAdapters(merged);
  ASSERT_TRUE(succeeded(merged.run({}, "merge_adapters"))) << diagnostics;
  auto after = merged.run(args, "forward");
  ASSERT_TRUE(succeeded(after)) << diagnostics;

  ASSERT_EQ(before->size(), after->size());
  for (size_t i = 0; i < before->size(); ++i) {
    double err = relativeError((*before)[i], (*after)[i]);
    double effect = relativeError((*baseline)[i], (*before)[i]);
    EXPECT_LT(err, 1e-12) << c.name << " output " << i;
    // The adapters change the outputs, so agreeing is not trivial.
    EXPECT_GT(effect, 1e-4) << c.name << " output " << i;
    std::printf("%s output %zu: merged vs adapted %.1e (adapter effect "
                "%.1e)\n",
                c.name, i, err, effect);
  }
}

INSTANTIATE_TEST_SUITE_P(
    Cases, MergeAdapters,
    ::testing::Values(
        Case{"lora_llama_qv", "test/goldens/llama/model.onnx",
             "test/goldens/lora_llama_qv/spec.yaml",
             "test/goldens/lora_llama_qv/final_adapter",
             "test/goldens/lora_llama_qv/data.safetensors", "peft.lora"},
        Case{"rslora_llama", "test/goldens/llama/model.onnx",
             "test/goldens/rslora_llama/spec.yaml",
             "test/goldens/rslora_llama/final_adapter",
             "test/goldens/rslora_llama/data.safetensors", "peft.lora"},
        Case{"dora_llama_qv", "test/goldens/llama/model.onnx",
             "test/goldens/dora_llama_qv/spec.yaml",
             "test/goldens/dora_llama_qv/final_adapter",
             "test/goldens/dora_llama_qv/data.safetensors", "peft.dora"},
        Case{"ia3_llama", "test/goldens/llama/model.onnx",
             "test/goldens/ia3_llama/spec.yaml",
             "test/goldens/ia3_llama/final_adapter",
             "test/goldens/ia3_llama/data.safetensors", "peft.ia3"},
        Case{"lora_gpt2_cattn", "test/goldens/gpt2/model.onnx",
             "test/goldens/lora_gpt2_cattn/spec.yaml",
             "test/goldens/lora_gpt2_cattn/final_adapter",
             "test/goldens/lora_gpt2_cattn/data.safetensors", "peft.lora"},
        // GPT-2's Conv1D ([in, out]) with DoRA: the norm runs over axis 0.
        Case{"dora_gpt2_cattn_random", "test/models/gpt2-tiny/model.onnx",
             "{peft_type: LORA, r: 4, lora_alpha: 8, use_dora: true, "
             "target_modules: [c_attn, c_fc], fan_in_fan_out: true}",
             nullptr, "test/models/gpt2-tiny/inputs.safetensors", "peft.dora"},
        // IA3 on outputs with a bias (BERT's query/value) and on a
        // feed-forward input (the output dense's).
        Case{"ia3_bert_random", "test/models/bert-tiny/model.onnx",
             "{peft_type: IA3, target_modules: "
             "'.*(query|value|output\\.dense)', "
             "feedforward_modules: '.*layer\\.[0-9]+\\.output\\.dense'}",
             nullptr, "test/models/bert-tiny/inputs.safetensors", "peft.ia3"},
        // Sparse deltas (random values on the selected entries) on every
        // linear weight of the golden's spec, folded into the weights.
        Case{"sparse_llama", "test/goldens/llama/model.onnx",
             "test/goldens/sparse_llama/spec.yaml", nullptr,
             "test/goldens/sparse_llama/data.safetensors",
             "peft.sparse_delta"}),
    [](const auto &info) { return std::string(info.param.name); });

} // namespace
