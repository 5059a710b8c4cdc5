// Module paths, kinds, layers, output heads, tied weights and PEFT's
// parameter count, on the exported goldens and on hand-written IR.
#include "passes/analysis/ModuleNames.h"
#include "dialects/nn/NNOps.h"
#include "dialects/peft/PeftOps.h"
#include "frontends/onnx/Importer.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/Parser/Parser.h"
#include "mlir/Pass/PassManager.h"
#include "mlir/Transforms/Passes.h"

#include <gtest/gtest.h>

using namespace mlir;
using peft::analysis::Module;
using peft::analysis::ModuleTable;

namespace {

OwningOpRef<ModuleOp> importGolden(MLIRContext &context, const char *model) {
  peft::onnx_import::ImportOptions options;
  options.inputShapes["input_ids"] = {2, 8};
  options.inputShapes["attention_mask"] = {2, 8};
  OwningOpRef<ModuleOp> module = peft::onnx_import::importOnnxModel(
      context, std::string(PEFT_SOURCE_DIR) + "/test/goldens/" + model,
      options);
  PassManager pm(&context);
  pm.addPass(createCanonicalizerPass());
  if (!module || failed(pm.run(*module)))
    return nullptr;
  return module;
}

TEST(ModuleNames, LayerIndexIsTheFirstNumberedComponent) {
  using peft::analysis::layerIndexOf;
  EXPECT_EQ(layerIndexOf("model.layers.3.mlp.up_proj"), 3);
  EXPECT_EQ(layerIndexOf("transformer.h.11.attn.c_attn"), 11);
  EXPECT_EQ(layerIndexOf("layers.0.mlp"), 0);
  EXPECT_EQ(layerIndexOf("lm_head"), std::nullopt);
  EXPECT_EQ(layerIndexOf("model.norm"), std::nullopt);
}

TEST(ModuleNames, TrainableLineIsPeftsFormat) {
  peft::analysis::TrainableCount count{896, 23584};
  EXPECT_EQ(
      count.line(),
      "trainable params: 896 || all params: 23,584 || trainable%: 3.7992");
  count = {1234567, 1234567};
  EXPECT_EQ(count.line(), "trainable params: 1,234,567 || all params: "
                          "1,234,567 || trainable%: 100.0000");
}

// TorchScript with constant folding: Linear weights are [in, out] copies
// named onnx::MatMul_NNN; the node scopes give the paths.
TEST(ModuleNames, LlamaFromNodeScopes) {
  MLIRContext context;
  OwningOpRef<ModuleOp> module = importGolden(context, "llama/model.onnx");
  ASSERT_TRUE(module);
  FailureOr<ModuleTable> table = ModuleTable::build(*module);
  ASSERT_TRUE(succeeded(table));
  // embed_tokens, 7 linears and 2 norms per layer, the final norm, lm_head.
  EXPECT_EQ(table->modules.size(), 21u);
  const Module *q = table->find("model.layers.1.self_attn.q_proj");
  ASSERT_TRUE(q);
  EXPECT_EQ(q->info.kind, "linear");
  EXPECT_EQ(q->info.layer, 1);
  EXPECT_EQ(q->info.inFeatures, 32);
  EXPECT_EQ(q->info.outFeatures, 32);
  EXPECT_FALSE(q->weightOutIn);
  EXPECT_TRUE(table->params.at(q->slot("weight")->param).torchTransposed);
  const Module *head = table->find("lm_head");
  ASSERT_TRUE(head);
  EXPECT_TRUE(head->info.isOutputHead);
  EXPECT_FALSE(q->info.isOutputHead);
  const Module *norm = table->find("model.layers.0.input_layernorm");
  ASSERT_TRUE(norm);
  EXPECT_EQ(norm->info.kind, "norm");
  EXPECT_EQ(table->find("model.embed_tokens")->info.kind, "embedding");
  // The folded rotary frequency table is a buffer, not a parameter:
  // LlamaForCausalLM has 22688 parameters.
  EXPECT_EQ(table->countBaseParameters(), 22688);
}

// GPT-2: Conv1D as Gemm (state-dict weights [in, out] plus bias adds),
// LayerNorm, and lm_head folded into a transposed copy of wte.
TEST(ModuleNames, Gpt2TiedHeadCountsOnce) {
  MLIRContext context;
  OwningOpRef<ModuleOp> module = importGolden(context, "gpt2/model.onnx");
  ASSERT_TRUE(module);
  FailureOr<ModuleTable> table = ModuleTable::build(*module);
  ASSERT_TRUE(succeeded(table));
  const Module *cAttn = table->find("transformer.h.0.attn.c_attn");
  ASSERT_TRUE(cAttn);
  EXPECT_TRUE(cAttn->info.hasBias);
  EXPECT_EQ(cAttn->info.outFeatures, 96);
  EXPECT_EQ(cAttn->slot("bias")->param, "transformer.h.0.attn.c_attn.bias");
  EXPECT_FALSE(
      table->params.at("transformer.h.0.attn.c_attn.weight").torchTransposed);
  const Module *ln = table->find("transformer.h.1.ln_2");
  ASSERT_TRUE(ln);
  EXPECT_TRUE(ln->info.hasBias);
  const Module *head = table->find("lm_head");
  ASSERT_TRUE(head);
  EXPECT_EQ(table->params.at(head->slot("weight")->param).tiedTo,
            "transformer.wte.weight");
  EXPECT_EQ(table->countBaseParameters(), 28544);
}

// Paths survive printing without locations through the peft.module stamps;
// without either, state-dict names give them.
TEST(ModuleNames, AnnotationsAndStateDictNames) {
  MLIRContext context;
  context.loadDialect<func::FuncDialect, peft::nn::NNDialect,
                      peft::pir::PeftDialect>();
  OwningOpRef<ModuleOp> module = parseSourceString<ModuleOp>(R"mlir(
    peft.param @"onnx::MatMul_1" : tensor<4x6xf32> frozen value dense<1.0> : tensor<4x6xf32>
    peft.param @enc.proj.weight : tensor<6x4xf32> frozen value dense<1.0> : tensor<6x4xf32>
    peft.param @enc.proj.bias : tensor<6xf32> frozen value dense<1.0> : tensor<6xf32>
    func.func @forward(%x: tensor<2x4xf32>) -> tensor<2x6xf32> {
      %w = peft.use @"onnx::MatMul_1" : tensor<4x6xf32>
      %y = nn.matmul %x, %w {peft.module = "blocks.2.fc"} : tensor<2x4xf32>, tensor<4x6xf32> -> tensor<2x6xf32>
      %v = peft.use @enc.proj.weight : tensor<6x4xf32>
      %vt = nn.transpose %v perm [1, 0] : tensor<6x4xf32> -> tensor<4x6xf32>
      %z = nn.matmul %x, %vt : tensor<2x4xf32>, tensor<4x6xf32> -> tensor<2x6xf32>
      %b = peft.use @enc.proj.bias : tensor<6xf32>
      %zb = nn.add %b, %z : tensor<6xf32>, tensor<2x6xf32> -> tensor<2x6xf32>
      %s = nn.add %y, %zb : tensor<2x6xf32>, tensor<2x6xf32> -> tensor<2x6xf32>
      return %s : tensor<2x6xf32>
    }
  )mlir",
                                                             &context);
  ASSERT_TRUE(module);
  FailureOr<ModuleTable> table = ModuleTable::build(*module);
  ASSERT_TRUE(succeeded(table));
  ASSERT_EQ(table->modules.size(), 2u);
  const Module *fc = table->find("blocks.2.fc");
  ASSERT_TRUE(fc);
  EXPECT_EQ(fc->info.layer, 2);
  const Module *proj = table->find("enc.proj");
  ASSERT_TRUE(proj);
  EXPECT_TRUE(proj->weightOutIn); // x·Wᵀ through the transpose
  EXPECT_TRUE(proj->info.hasBias);
  EXPECT_FALSE(proj->info.isOutputHead); // added to another module's output
  EXPECT_EQ(table->countBaseParameters(), 24 + 24 + 6);
}

} // namespace
