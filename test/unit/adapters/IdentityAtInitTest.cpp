// PEFT's initialisations leave the model's function unchanged (LoRA's and
// DoRA's B = 0, DoRA's m = ‖W‖, IA3's ones): on the exported fixtures of
// test/models, @forward after peft-insert-adapters with peftc's own initial
// values (AdapterInit) gives the outputs of the model without adapters (and
// PyTorch's, to the fixtures' f64 tolerance). This covers the
// layouts the analysis meets: dynamo's [out, in] weights through a transpose
// (LLaMA), and TorchScript's Gemm/MatMul without constant folding (GPT-2 with
// lm_head reading wte through a transpose, BERT with biases).
#include "codegen/reference/Evaluator.h"
#include "frontends/onnx/Importer.h"
#include "passes/AdapterInit.h"
#include "passes/Passes.h"
#include "passes/analysis/ModuleNames.h"
#include "peft/SafeTensors.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/Pass/PassManager.h"
#include "mlir/Transforms/Passes.h"

#include <gtest/gtest.h>

#include <cmath>

using namespace mlir;

namespace {

struct Case {
  const char *model;
  const char *spec;
  const char *adapterOp; // an op the spec must have inserted
};

class IdentityAtInit : public ::testing::TestWithParam<Case> {};

TEST_P(IdentityAtInit, ForwardIsUnchanged) {
  const Case &c = GetParam();
  std::string dir = std::string(PEFT_SOURCE_DIR) + "/test/models/" + c.model;
  peft::SafeTensorsFile inputs, expected;
  std::string error;
  ASSERT_TRUE(peft::readSafeTensors(dir + "/inputs.safetensors", inputs, error))
      << error;
  ASSERT_TRUE(
      peft::readSafeTensors(dir + "/outputs_f64.safetensors", expected, error))
      << error;

  MLIRContext context;
  std::string diagnostics;
  ScopedDiagnosticHandler handler(&context, [&](Diagnostic &diag) {
    diagnostics += diag.str() + "\n";
    return success();
  });
  peft::onnx_import::ImportOptions options;
  for (auto &[name, tensor] : inputs.tensors)
    options.dataShapes[name] = tensor.shape();
  OwningOpRef<ModuleOp> module =
      peft::onnx_import::importOnnxModel(context, dir + "/model.onnx", options);
  ASSERT_TRUE(module) << diagnostics;
  peft::spec::PeftSpec spec;
  ASSERT_TRUE(peft::spec::parseSpecString(c.spec, "spec", spec, error))
      << error;
  PassManager pm(&context);
  pm.addPass(createCanonicalizerPass());
  ASSERT_TRUE(succeeded(pm.run(*module))) << diagnostics;
  peft::spec::ResolvedTargets resolved;
  ASSERT_TRUE(
      succeeded(peft::analysis::attachSpec(*module, spec, resolved, error)))
      << error << diagnostics;
  OwningOpRef<ModuleOp> base = cast<ModuleOp>((*module)->clone());
  PassManager training(&context);
  training.addPass(peft::createInsertAdapters());
  training.addPass(peft::createFreezeParams());
  ASSERT_TRUE(succeeded(training.run(*module))) << diagnostics;
  int adapters = 0;
  module->walk([&](Operation *op) {
    adapters += op->getName().getStringRef() == c.adapterOp;
  });
  EXPECT_GT(adapters, 0) << "no " << c.adapterOp << " inserted";

  peft::ref::Evaluator eval(*module, {/*promoteToF64=*/true});
  auto read = [&](StringRef name) { return eval.paramValue(name); };
  auto write = [&](StringRef name, const peft::Tensor &value) {
    return eval.setParam(name, value);
  };
  ASSERT_TRUE(succeeded(peft::adapters::initializeParams(
      *module, spec.training.seed, read, write)))
      << diagnostics;

  auto forward = module->lookupSymbol<func::FuncOp>("forward");
  std::vector<peft::Tensor> args;
  for (unsigned i = 0; i < forward.getNumArguments(); ++i) {
    auto name = forward.getArgAttrOfType<StringAttr>(i, "nn.name");
    const peft::Tensor *t = inputs.find(name.str());
    ASSERT_TRUE(t) << name.str();
    args.push_back(*t);
  }
  auto outputs = eval.run(args, "forward");
  ASSERT_TRUE(succeeded(outputs)) << diagnostics;
  peft::ref::Evaluator baseEval(*base, {/*promoteToF64=*/true});
  auto baseOutputs = baseEval.run(args, "forward");
  ASSERT_TRUE(succeeded(baseOutputs)) << diagnostics;
  for (unsigned i = 0; i < forward.getNumResults(); ++i) {
    auto name = forward.getResultAttrOfType<StringAttr>(i, "nn.name");
    const peft::Tensor *want = expected.find(name.str());
    ASSERT_TRUE(want) << name.str();
    const peft::Tensor &got = (*outputs)[i], &plain = (*baseOutputs)[i];
    ASSERT_EQ(got.numel(), want->numel());
    double fromBase = 0, fromTorch = 0, baseFromTorch = 0;
    for (int64_t k = 0; k < got.numel(); ++k) {
      double scale = std::max(std::fabs(plain.getDouble(k)), 1.0);
      fromBase = std::max(
          fromBase, std::fabs(got.getDouble(k) - plain.getDouble(k)) / scale);
      fromTorch = std::max(
          fromTorch, std::fabs(got.getDouble(k) - want->getDouble(k)) / scale);
      baseFromTorch =
          std::max(baseFromTorch,
                   std::fabs(plain.getDouble(k) - want->getDouble(k)) / scale);
    }
    // Only rounding separates the adapted model from the plain one, and it
    // is as close to PyTorch as the plain one (test/models checks that).
    EXPECT_LE(fromBase, 1e-13) << name.str();
    EXPECT_LE(fromTorch, baseFromTorch + 1e-13) << name.str();
  }
}

INSTANTIATE_TEST_SUITE_P(
    Fixtures, IdentityAtInit,
    ::testing::Values(
        Case{"llama-dynamo",
             "{peft_type: LORA, r: 4, target_modules: all-linear}",
             "peft.lora"},
        Case{"llama-dynamo",
             "{peft_type: LORA, r: 2, use_dora: true, target_modules: "
             "[q_proj, v_proj, down_proj]}",
             "peft.dora"},
        Case{"llama-tiny",
             "{peft_type: IA3, target_modules: [k_proj, v_proj, down_proj], "
             "feedforward_modules: [down_proj]}",
             "peft.ia3"},
        Case{"gpt2-tiny",
             "{methods: [{peft_type: LORA, target_modules: [c_attn], "
             "fan_in_fan_out: true, use_dora: true, modules_to_save: "
             "[lm_head]}, {peft_type: BITFIT}]}",
             "peft.dora"},
        Case{"bert-tiny",
             "{peft_type: LORA, r: 2, use_rslora: true, init_lora_weights: "
             "gaussian, target_modules: '.*attention\\.self\\.(query|value)'}",
             "peft.lora"}),
    [](const auto &info) {
      std::string name =
          std::string(info.param.model) + "_" + std::to_string(info.index);
      for (char &ch : name)
        if (!isalnum(ch))
          ch = '_';
      return name;
    });

} // namespace
