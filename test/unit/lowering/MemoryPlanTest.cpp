//===- MemoryPlanTest.cpp - the arena plan on the test models -------------===//
//
// peft-plan-memory on LoRA/DoRA training steps of the golden models: the
// plan is checked against an independent liveness computation (no two
// tensors live at once share a byte, except a GEMM accumulating in place
// into the tensor it reads last), and its peak is at most half the sum of
// all buffers, with the exact numbers recorded so that a change in the
// planner or the lowering shows.
//
//===----------------------------------------------------------------------===//
#include "LoweringTestUtil.h"

#include "passes/lowering/MemoryPlan.h"

#include "llvm/Support/MathExtras.h"

#include <gtest/gtest.h>

using namespace mlir;
using namespace peft;

namespace {

struct Live {
  Value value;
  int64_t def, last, offset, bytes;
};

/// Checks the plan of `fn` without using the planner's code.
void checkFunction(func::FuncOp fn) {
  Block &block = fn.getBody().front();
  DenseMap<Operation *, int64_t> index;
  int64_t n = 0;
  for (Operation &op : block)
    index[&op] = n++;
  auto argOffsets =
      fn->getAttrOfType<DenseI64ArrayAttr>(kern::attr::kArgOffsets);
  ASSERT_TRUE(argOffsets) << fn.getSymName().str();
  // The last op reading `v`, directly or through reshape views; n when it
  // is returned.
  std::function<int64_t(Value)> lastUse = [&](Value v) -> int64_t {
    int64_t last = -1;
    for (OpOperand &use : v.getUses()) {
      Operation *user = use.getOwner();
      if (isa<func::ReturnOp>(user))
        return n;
      last = std::max(last, index[user]);
      if (auto reshape = dyn_cast<nn::ReshapeOp>(user))
        last = std::max(last, lastUse(reshape.getResult()));
    }
    return last;
  };
  std::vector<Live> live;
  auto bytesOf = [](Value v) {
    return (int64_t)llvm::alignTo(
        kern::tensorBytes(cast<RankedTensorType>(v.getType())), 64);
  };
  for (auto [i, arg] : llvm::enumerate(fn.getArguments()))
    live.push_back({arg, -1, lastUse(arg), argOffsets[i], bytesOf(arg)});
  for (Operation &op : block) {
    auto offsets = op.getAttrOfType<DenseI64ArrayAttr>(kern::attr::kOffsets);
    if (!isa<kern::GemmOp, kern::LaunchOp>(op))
      continue;
    ASSERT_TRUE(offsets) << "an op without kern.offsets";
    for (auto [i, r] : llvm::enumerate(op.getResults())) {
      live.push_back({r, index[&op], std::max(lastUse(r), index[&op]),
                      offsets[i], bytesOf(r)});
      EXPECT_EQ(offsets[i] % 64, 0);
    }
  }
  auto rootOf = [](Value v) {
    while (auto reshape = v.getDefiningOp<nn::ReshapeOp>())
      v = reshape.getInput();
    return v;
  };
  for (size_t i = 0; i < live.size(); ++i)
    for (size_t j = i + 1; j < live.size(); ++j) {
      const Live &a = live[i], &b = live[j];
      bool timeOverlap = a.def <= b.last && b.def <= a.last;
      bool spaceOverlap = a.offset < b.offset + b.bytes &&
                          b.offset < a.offset + a.bytes && a.bytes && b.bytes;
      if (!timeOverlap || !spaceOverlap)
        continue;
      // A GEMM accumulating in place into `a`, which it reads last.
      auto gemm = b.value.getDefiningOp<kern::GemmOp>();
      bool inPlace = gemm && gemm.getC() && rootOf(gemm.getC()) == a.value &&
                     a.last == b.def && a.offset == b.offset;
      EXPECT_TRUE(inPlace) << "@" << fn.getSymName().str()
                           << ": buffers live at once overlap: [" << a.offset
                           << ", +" << a.bytes << ") from op " << a.def
                           << " to " << a.last << " and [" << b.offset << ", +"
                           << b.bytes << ") from op " << b.def << " to "
                           << b.last;
    }
}

struct PlanCase {
  const char *name, *model, *spec;
  int64_t peak, sum;
};

class MemoryPlan : public ::testing::TestWithParam<PlanCase> {};

TEST_P(MemoryPlan, ReusesAtLeastHalf) {
  const PlanCase &c = GetParam();
  DialectRegistry registry;
  lowering_test::registerLoweringDialects(registry);
  MLIRContext ctx(registry);
  ctx.loadAllAvailableDialects();
  spec::PeftSpec spec;
  std::string error;
  OwningOpRef<ModuleOp> module = lowering_test::buildLowered(
      ctx, lowering_test::goldenPath(c.model),
      lowering_test::goldenPath(c.spec), spec, error);
  ASSERT_TRUE(module) << error;
  for (auto fn : module->getOps<func::FuncOp>())
    if (!fn->hasAttr(kern::attr::kKernel))
      checkFunction(fn);
  auto peak = (*module)->getAttrOfType<IntegerAttr>(kern::attr::kArenaBytes);
  auto sum = (*module)->getAttrOfType<IntegerAttr>(kern::attr::kBufferBytesSum);
  ASSERT_TRUE(peak && sum);
  std::string printed;
  llvm::raw_string_ostream os(printed);
  ASSERT_TRUE(succeeded(lowering::printMemoryPlan(*module, os)));
  std::printf("%s: %s", c.name,
              printed.substr(0, printed.find('\n') + 1).c_str());
  EXPECT_LE(2 * peak.getInt(), sum.getInt());
  EXPECT_EQ(peak.getInt(), c.peak) << c.name;
  EXPECT_EQ(sum.getInt(), c.sum) << c.name;
}

INSTANTIATE_TEST_SUITE_P(
    Models, MemoryPlan,
    ::testing::Values(PlanCase{"lora_llama_qv", "llama/model.onnx",
                               "lora_llama_qv/spec.yaml", 83904, 601792},
                      PlanCase{"dora_llama_qv", "llama/model.onnx",
                               "dora_llama_qv/spec.yaml", 91200, 748480},
                      PlanCase{"lora_gpt2_cattn", "gpt2/model.onnx",
                               "lora_gpt2_cattn/spec.yaml", 118208, 685824}),
    [](const ::testing::TestParamInfo<PlanCase> &info) {
      return std::string(info.param.name);
    });

} // namespace
