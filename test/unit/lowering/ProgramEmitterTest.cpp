//===- ProgramEmitterTest.cpp - the emitted program's structure -----------===//
//
// The LoRA training step of a golden model, lowered and planned, with
// `kern.extent` set on each kernel as the loop emitter would (the number
// of elements of its first result), emitted as a program: every buffer id
// in range, arena buffers inside the arena and aligned, one step per GEMM,
// launch and assign (plus the copies that start an accumulating GEMM),
// GEMM dimensions consistent with their buffers, params initialised as the
// spec says, and the program survives its wire format.
//
//===----------------------------------------------------------------------===//
#include "LoweringTestUtil.h"

#include "codegen/program/ProgramEmitter.h"

#include <gtest/gtest.h>

using namespace mlir;
using namespace peft;
using program::Buffer;
using program::Step;

namespace {

class ProgramEmission : public ::testing::Test {
protected:
  void SetUp() override {
    lowering_test::registerLoweringDialects(registry);
    ctx = std::make_unique<MLIRContext>(registry);
    ctx->loadAllAvailableDialects();
    std::string error;
    module = lowering_test::buildLowered(
        *ctx, lowering_test::goldenPath("llama/model.onnx"),
        lowering_test::goldenPath("lora_llama_qv/spec.yaml"), spec, error);
    ASSERT_TRUE(module) << error;
  }

  void setExtents() {
    for (auto fn : module->getOps<func::FuncOp>())
      if (fn->hasAttr(kern::attr::kKernel))
        fn->setAttr(
            kern::attr::kExtent,
            IntegerAttr::get(IntegerType::get(ctx.get(), 64),
                             cast<RankedTensorType>(fn.getResultTypes()[0])
                                 .getNumElements()));
  }

  DialectRegistry registry;
  std::unique_ptr<MLIRContext> ctx;
  spec::PeftSpec spec;
  OwningOpRef<ModuleOp> module;
};

TEST_F(ProgramEmission, KernelsWithoutExtentAreAnError) {
  std::string diagnostics;
  ScopedDiagnosticHandler handler(ctx.get(), [&](Diagnostic &d) {
    diagnostics += d.str();
    return success();
  });
  EXPECT_TRUE(failed(codegen::emitProgram(*module)));
  EXPECT_NE(diagnostics.find("has no kern.extent"), std::string::npos)
      << diagnostics;
}

TEST_F(ProgramEmission, Structure) {
  setExtents();
  codegen::ProgramOptions options;
  options.seed = spec.training.seed;
  FailureOr<program::Program> emitted = codegen::emitProgram(*module, options);
  ASSERT_TRUE(succeeded(emitted));
  const program::Program &p = *emitted;
  EXPECT_EQ(p.arenaAlignment, 64u);
  EXPECT_GT(p.arenaBytes, 0u);
  EXPECT_LE(2 * p.arenaBytes, p.bufferBytesSum);
  EXPECT_FALSE(p.specJson.empty());

  // Buffers: ids in range, arena ones inside the arena, views inside their
  // base, byte sizes those of dtype and shape.
  for (const Buffer &b : p.buffers) {
    int64_t elements = 1;
    for (int64_t d : b.shape)
      elements *= d;
    EXPECT_EQ(b.bytes, elements * dtypeSize(b.dtype)) << b.name;
    switch (b.kind) {
    case Buffer::Kind::Arena:
      EXPECT_EQ(b.offset % 64, 0u) << b.name;
      EXPECT_LE(b.offset + b.bytes, p.arenaBytes) << b.name;
      break;
    case Buffer::Kind::View:
      ASSERT_LT(b.base, p.buffers.size());
      EXPECT_NE(p.buffers[b.base].kind, Buffer::Kind::View);
      EXPECT_LE(b.offset + b.bytes, p.buffers[b.base].bytes) << b.name;
      break;
    case Buffer::Kind::Param:
      ASSERT_LT(b.param, p.params.size());
      EXPECT_EQ(p.params[b.param].name, b.name);
      break;
    case Buffer::Kind::Constant:
      EXPECT_EQ(b.constant.size(), b.bytes) << b.name;
      break;
    }
  }

  // Params: frozen weights mapped from the model, lora_A drawn by the
  // compiler (init data), lora_B and the AdamW state zeros.
  int64_t loraA = 0, loraB = 0, state = 0, frozen = 0;
  for (const program::Param &q : p.params) {
    if (!q.trainable && q.stateOf.empty()) {
      EXPECT_EQ(q.init, program::Param::Init::File) << q.name;
      EXPECT_NE(q.file.find("model.onnx"), std::string::npos) << q.name;
      ++frozen;
    } else if (!q.stateOf.empty()) {
      EXPECT_EQ(q.init, program::Param::Init::Zeros) << q.name;
      EXPECT_TRUE(q.stateName == "exp_avg" || q.stateName == "exp_avg_sq")
          << q.name;
      ++state;
    } else if (q.peftKey.find("lora_A") != std::string::npos) {
      EXPECT_EQ(q.init, program::Param::Init::Data) << q.name;
      EXPECT_EQ(q.dataOffset % 64, 0u);
      EXPECT_LE(q.dataOffset + q.dataLength, p.initData.size());
      EXPECT_EQ(q.dataLength, q.shape[0] * q.shape[1] * 4);
      ++loraA;
    } else if (q.peftKey.find("lora_B") != std::string::npos) {
      EXPECT_EQ(q.init, program::Param::Init::Zeros) << q.name;
      ++loraB;
    }
  }
  // q_proj and v_proj of each of the model's layers.
  EXPECT_EQ(loraA, loraB);
  EXPECT_GT(loraA, 0);
  EXPECT_EQ(state, 2 * (loraA + loraB));
  EXPECT_GT(frozen, 0);

  // Kernels and functions.
  auto countOps = [&](StringRef fn, auto pred) {
    int64_t n = 0;
    module->lookupSymbol<func::FuncOp>(fn).walk(
        [&](Operation *op) { n += pred(op); });
    return n;
  };
  const program::Function *step = p.function("train_step");
  ASSERT_TRUE(step);
  int64_t launches = 0, gemms = 0, copies = 0;
  for (const Step &s : step->steps) {
    switch (s.kind) {
    case Step::Kind::Launch: {
      ++launches;
      ASSERT_LT(s.launch.kernel, p.kernels.size());
      EXPECT_EQ(s.launch.args.size(), p.kernels[s.launch.kernel].numArgs);
      EXPECT_GT(s.launch.extent, 0);
      for (uint32_t a : s.launch.args)
        EXPECT_LT(a, p.buffers.size());
      break;
    }
    case Step::Kind::Gemm: {
      ++gemms;
      const program::Gemm &g = s.gemm;
      ASSERT_LT(std::max({g.a, g.b, g.c}), p.buffers.size());
      EXPECT_EQ(p.buffers[g.c].kind, Buffer::Kind::Arena);
      EXPECT_EQ(p.buffers[g.a].bytes,
                (g.strideA ? g.batch : 1) * g.m * g.k * 4);
      EXPECT_EQ(p.buffers[g.b].bytes,
                (g.strideB ? g.batch : 1) * g.k * g.n * 4);
      EXPECT_EQ(p.buffers[g.c].bytes, g.batch * g.m * g.n * 4);
      if (g.hasBias)
        EXPECT_EQ(p.buffers[g.bias].bytes, g.n * 4);
      break;
    }
    case Step::Kind::Copy:
      ++copies;
      EXPECT_EQ(p.buffers[s.copy.src].bytes, p.buffers[s.copy.dst].bytes);
      break;
    }
  }
  EXPECT_EQ(launches, countOps("train_step", [](Operation *op) {
              return isa<kern::LaunchOp>(op);
            }));
  EXPECT_EQ(gemms, countOps("train_step", [](Operation *op) {
              return isa<kern::GemmOp>(op);
            }));
  int64_t assigns = countOps(
      "train_step", [](Operation *op) { return isa<pir::AssignOp>(op); });
  int64_t accumulating = countOps("train_step", [](Operation *op) {
    auto g = dyn_cast<kern::GemmOp>(op);
    return g && g.getC();
  });
  EXPECT_GE(copies, assigns);
  EXPECT_LE(copies, assigns + accumulating);
  EXPECT_EQ(assigns, 3 * (loraA + loraB));

  // Arguments: the data inputs by name and the step counter; results the
  // loss, the gradient norm and the lr.
  int64_t steps = 0;
  for (const program::Arg &a : step->args) {
    steps += a.isStep;
    if (!a.isStep)
      EXPECT_TRUE(a.name == "input_ids" || a.name == "attention_mask" ||
                  a.name == "labels")
          << a.name;
  }
  EXPECT_EQ(steps, 1);
  // input_ids index the embedding table (the LM head's width here); the
  // mask and the labels index nothing.
  int64_t vocab = 0;
  for (const program::Result &r : p.function("forward")->results)
    if (r.name == "logits")
      vocab = p.buffers[r.buffer].shape.back();
  ASSERT_GT(vocab, 0);
  for (const program::Arg &a : step->args)
    EXPECT_EQ(a.indexLimit, a.name == "input_ids" ? vocab : 0) << a.name;
  ASSERT_EQ(step->results.size(), 3u);
  EXPECT_EQ(step->results[1].metric, "grad_norm");
  EXPECT_EQ(step->results[2].metric, "lr");
  EXPECT_TRUE(p.function("loss"));

  // The wire format round-trips and passes the runtime's validation.
  std::string bytes = program::encodeProgram(p);
  program::Program decoded;
  std::string error;
  ASSERT_TRUE(
      program::decodeProgram(reinterpret_cast<const uint8_t *>(bytes.data()),
                             bytes.size(), decoded, error))
      << error;
  EXPECT_EQ(decoded.buffers.size(), p.buffers.size());
  EXPECT_EQ(decoded.functions.size(), p.functions.size());
  EXPECT_EQ(decoded.initData, p.initData);
  EXPECT_EQ(decoded.arenaBytes, p.arenaBytes);
}

} // namespace
