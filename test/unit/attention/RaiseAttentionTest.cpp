//===- RaiseAttentionTest.cpp - raising keeps every model's function ------===//
//
// Each exported fixture (test/models, and the golden models of
// test/goldens) is imported as peftc imports it; peft-raise-attention must
// raise one nn.attention per layer, leave no softmax behind, and @forward
// evaluated in f64 on the reference evaluator must give the same outputs
// before and after raising, and after peft-decompose expands the raised ops
// again, to 1e-12 relative. The step statistics count the same GEMMs and
// FLOPs before and after.
//
//===----------------------------------------------------------------------===//
#include "codegen/reference/Evaluator.h"
#include "frontends/onnx/Importer.h"
#include "passes/Passes.h"
#include "passes/StepStats.h"
#include "peft/SafeTensors.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/IR/Verifier.h"
#include "mlir/Pass/PassManager.h"
#include "mlir/Transforms/Passes.h"

#include <gtest/gtest.h>

#include <cmath>

using namespace mlir;

namespace {

struct Case {
  const char *name;
  const char *model;  // under test/
  const char *inputs; // under test/, graph inputs by name (extra rows and
                      // tensors are ignored)
  int64_t layers;
  int64_t rows; // batch rows taken from `inputs`
};

/// The first `count` rows of `t`.
peft::Tensor firstRows(const peft::Tensor &t, int64_t count) {
  peft::Shape shape = t.shape();
  int64_t width = t.numel() / shape[0];
  shape[0] = count;
  peft::Tensor out(t.dtype(), shape);
  for (int64_t i = 0; i < count * width; ++i) {
    if (peft::isFloat(t.dtype()))
      out.setDouble(i, t.getDouble(i));
    else
      out.setInt(i, t.getInt(i));
  }
  return out;
}

/// Largest |a - b| over the largest |a| of the outputs.
double relativeError(const std::vector<peft::Tensor> &a,
                     const std::vector<peft::Tensor> &b) {
  double diff = 0, scale = 0;
  for (size_t r = 0; r < a.size(); ++r)
    for (int64_t i = 0; i < a[r].numel(); ++i) {
      diff = std::max(diff, std::fabs(a[r].getDouble(i) - b[r].getDouble(i)));
      scale = std::max(scale, std::fabs(a[r].getDouble(i)));
    }
  return diff / scale;
}

class RaiseAttention : public ::testing::TestWithParam<Case> {};

TEST_P(RaiseAttention, ForwardIsUnchanged) {
  const Case &c = GetParam();
  std::string root = std::string(PEFT_SOURCE_DIR) + "/test/";
  peft::SafeTensorsFile data;
  std::string error;
  ASSERT_TRUE(peft::readSafeTensors(root + c.inputs, data, error)) << error;

  DialectRegistry registry;
  peft::onnx_import::registerImportDialects(registry);
  registry.insert<func::FuncDialect, peft::nn::NNDialect,
                  peft::pir::PeftDialect, peft::kern::KernDialect>();
  MLIRContext context(registry);
  context.loadAllAvailableDialects();
  std::string diagnostics;
  ScopedDiagnosticHandler handler(&context, [&](Diagnostic &diag) {
    diagnostics += diag.str() + "\n";
    return success();
  });
  peft::onnx_import::ImportOptions options;
  for (auto &[name, tensor] : data.tensors) {
    peft::Shape shape = tensor.shape();
    shape[0] = c.rows;
    options.dataShapes[name] = shape;
  }
  OwningOpRef<ModuleOp> module =
      peft::onnx_import::importOnnxModel(context, root + c.model, options);
  ASSERT_TRUE(module) << diagnostics;
  PassManager canonicalize(&context);
  canonicalize.addPass(createCanonicalizerPass());
  ASSERT_TRUE(succeeded(canonicalize.run(*module))) << diagnostics;

  OwningOpRef<ModuleOp> raised = cast<ModuleOp>((*module)->clone());
  PassManager raise(&context);
  raise.addPass(peft::createRaiseAttention());
  ASSERT_TRUE(succeeded(raise.run(*raised))) << diagnostics;
  ASSERT_TRUE(succeeded(verify(*raised))) << diagnostics;
  int64_t attentions = 0, softmaxes = 0;
  raised->walk([&](Operation *op) {
    attentions += isa<peft::nn::AttentionOp>(op);
    softmaxes += isa<peft::nn::SoftmaxOp>(op);
  });
  EXPECT_EQ(attentions, c.layers) << c.name;
  EXPECT_EQ(softmaxes, 0) << c.name;
  // The step statistics count the raised op's two GEMMs as they counted
  // the matmuls it replaced.
  auto gemms = [](ModuleOp m) {
    peft::stats::GemmCount total;
    m.walk([&](Operation *op) {
      peft::stats::GemmCount count = peft::stats::gemmsOf(op);
      total.add(count.gemms, count.flops);
    });
    return std::make_pair(total.gemms, total.flops);
  };
  EXPECT_EQ(gemms(*raised), gemms(*module)) << c.name;

  OwningOpRef<ModuleOp> expanded = cast<ModuleOp>((*raised)->clone());
  PassManager decompose(&context);
  decompose.addPass(peft::createDecompose());
  ASSERT_TRUE(succeeded(decompose.run(*expanded))) << diagnostics;
  int64_t left = 0;
  expanded->walk([&](peft::nn::AttentionOp) { ++left; });
  EXPECT_EQ(left, 0);

  auto forward = module->lookupSymbol<func::FuncOp>("forward");
  std::vector<peft::Tensor> args;
  for (unsigned i = 0; i < forward.getNumArguments(); ++i) {
    auto name = forward.getArgAttrOfType<StringAttr>(i, "nn.name");
    const peft::Tensor *t = data.find(name.str());
    ASSERT_TRUE(t) << name.str();
    args.push_back(firstRows(*t, c.rows));
  }
  auto run = [&](ModuleOp m) {
    peft::ref::Evaluator eval(m, {/*promoteToF64=*/true});
    FailureOr<std::vector<peft::Tensor>> out = eval.run(args, "forward");
    EXPECT_TRUE(succeeded(out)) << diagnostics;
    return succeeded(out) ? *out : std::vector<peft::Tensor>{};
  };
  std::vector<peft::Tensor> before = run(*module), after = run(*raised),
                            again = run(*expanded);
  ASSERT_FALSE(before.empty());
  ASSERT_EQ(before.size(), after.size());
  ASSERT_EQ(before.size(), again.size());
  double raisedErr = relativeError(before, after),
         expandedErr = relativeError(before, again);
  EXPECT_LE(raisedErr, 1e-12) << c.name;
  EXPECT_LE(expandedErr, 1e-12) << c.name;
  std::printf("%s: %lld nn.attention; relative error raised %.1e, "
              "decomposed %.1e\n",
              c.name, (long long)attentions, raisedErr, expandedErr);
}

INSTANTIATE_TEST_SUITE_P(
    Models, RaiseAttention,
    ::testing::Values(Case{"llama_tiny", "models/llama-tiny/model.onnx",
                           "models/llama-tiny/inputs.safetensors", 2, 2},
                      Case{"llama_tiny_alt", "models/llama-tiny/model.onnx",
                           "models/llama-tiny/inputs_alt.safetensors", 2, 2},
                      Case{"llama_dynamo", "models/llama-dynamo/model.onnx",
                           "models/llama-dynamo/inputs.safetensors", 2, 2},
                      Case{"llama_dynamo_alt", "models/llama-dynamo/model.onnx",
                           "models/llama-dynamo/inputs_alt.safetensors", 2, 2},
                      Case{"gpt2_tiny", "models/gpt2-tiny/model.onnx",
                           "models/gpt2-tiny/inputs.safetensors", 2, 2},
                      Case{"gpt2_tiny_alt", "models/gpt2-tiny/model.onnx",
                           "models/gpt2-tiny/inputs_alt.safetensors", 2, 2},
                      Case{"bert_tiny", "models/bert-tiny/model.onnx",
                           "models/bert-tiny/inputs.safetensors", 2, 2},
                      Case{"bert_tiny_alt", "models/bert-tiny/model.onnx",
                           "models/bert-tiny/inputs_alt.safetensors", 2, 2},
                      Case{"vit_tiny", "models/vit-tiny/model.onnx",
                           "models/vit-tiny/inputs.safetensors", 2, 2},
                      Case{"wav2vec2_tiny", "models/wav2vec2-tiny/model.onnx",
                           "models/wav2vec2-tiny/inputs.safetensors", 2, 2},
                      Case{"golden_llama", "goldens/llama/model.onnx",
                           "goldens/lora_llama_qv/data.safetensors", 2, 2},
                      Case{"golden_gpt2", "goldens/gpt2/model.onnx",
                           "goldens/lora_gpt2_cattn/data.safetensors", 2, 2}),
    [](const auto &info) { return std::string(info.param.name); });

} // namespace
