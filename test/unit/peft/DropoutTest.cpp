//===- DropoutTest.cpp - peft.dropout's counter-based mask
//-----------------===//
//
// The generator against Random123's known-answer vectors, and the op on the
// reference evaluator: the dropped fraction is p within 4σ on 10⁵ elements,
// kept elements are scaled by 1/(1 − p), and the mask is a function of
// (seed, step, stream, element) only.
//
//===----------------------------------------------------------------------===//
#include "PeftTestUtil.h"

#include "peft/Dropout.h"

#include <cmath>

using namespace peft;
using namespace peft::test;

namespace {

TEST(Philox, MatchesRandom123KnownAnswers) {
  // Random123 1.14, kat_vectors: philox4x32 10 rounds.
  struct Kat {
    uint32_t counter[4], key[2], out[4];
  } kats[] = {
      {{0, 0, 0, 0}, {0, 0}, {0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8}},
      {{0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff},
       {0xffffffff, 0xffffffff},
       {0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd}},
      {{0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344},
       {0xa4093822, 0x299f31d0},
       {0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1}},
  };
  for (const Kat &k : kats) {
    dropout::Philox4x32 got = dropout::philox4x32_10(k.counter, k.key);
    for (int w = 0; w < 4; ++w)
      EXPECT_EQ(got.v[w], k.out[w]) << "word " << w;
  }
}

TEST(Philox, ThresholdAndScale) {
  EXPECT_EQ(dropout::dropThreshold(0.0), 0u);
  EXPECT_EQ(dropout::dropThreshold(0.5), uint64_t(1) << 31);
  EXPECT_EQ(dropout::dropThreshold(1.0), uint64_t(1) << 32);
  EXPECT_EQ(dropout::keepScale(0.2), 1.0 / 0.8);
  EXPECT_EQ(dropout::keepScale(1.0), 0.0);
}

constexpr int64_t kN = 100000;

/// @f(x, step) = dropout(x) with these attributes, on [kN] f64.
std::string dropoutModule(double p, int64_t seed, int64_t stream) {
  std::string type = "tensor<" + std::to_string(kN) + "xf64>";
  return "func.func @f(%x: " + type + ", %s: tensor<i64>) -> " + type +
         " {\n  %y = peft.dropout %x, %s {p = " + std::to_string(p) +
         " : f64, seed = " + std::to_string(seed) +
         " : i64, stream = " + std::to_string(stream) + " : i64} : " + type +
         ", tensor<i64>\n  return %y : " + type + "\n}\n";
}

class DropoutTest : public PeftEvalTest {
protected:
  /// The output of dropout(ones) at `step`.
  std::vector<double> mask(double p, int64_t seed, int64_t stream,
                           int64_t step) {
    parse(dropoutModule(p, seed, stream));
    Tensor ones(DType::F64, {kN});
    for (int64_t i = 0; i < kN; ++i)
      ones.setDouble(i, 1.0);
    auto out = run({ones, i64({}, {step})});
    EXPECT_TRUE(mlir::succeeded(out)) << errors;
    return mlir::succeeded(out) ? valuesOf((*out)[0]) : std::vector<double>();
  }
};

TEST_F(DropoutTest, DropsFractionPAndScalesTheRest) {
  for (double p : {0.05, 0.1, 0.5, 0.9}) {
    std::vector<double> y = mask(p, 42, 0, 1);
    ASSERT_EQ((int64_t)y.size(), kN);
    int64_t dropped = 0;
    for (double v : y) {
      if (v == 0) {
        ++dropped;
        continue;
      }
      // PyTorch's factor 1/(1 − p).
      ASSERT_EQ(v, 1.0 / (1.0 - p));
    }
    double sigma = std::sqrt(p * (1 - p) / kN);
    EXPECT_NEAR((double)dropped / kN, p, 4 * sigma) << "p = " << p;
  }
}

TEST_F(DropoutTest, MaskIsAFunctionOfSeedStepStreamAndElement) {
  const double p = 0.3;
  std::vector<double> base = mask(p, 7, 1, 5);
  EXPECT_EQ(mask(p, 7, 1, 5), base) << "same seed and step, another mask";
  auto differing = [&](const std::vector<double> &other) {
    int64_t n = 0;
    for (int64_t i = 0; i < kN; ++i)
      n += (base[i] == 0) != (other[i] == 0);
    return n;
  };
  // Two independent masks disagree on 2p(1 − p) of the elements.
  double expected = 2 * p * (1 - p) * kN;
  double sigma = std::sqrt(expected);
  EXPECT_NEAR(differing(mask(p, 7, 1, 6)), expected, 6 * sigma)
      << "the next step reuses the mask";
  EXPECT_NEAR(differing(mask(p, 7, 2, 5)), expected, 6 * sigma)
      << "another dropout op shares the mask";
  EXPECT_NEAR(differing(mask(p, 8, 1, 5)), expected, 6 * sigma)
      << "another seed gives the same mask";
  // Each element is decided by the header's function of its index alone,
  // which is what the generated kernels compute.
  uint64_t threshold = dropout::dropThreshold(p);
  for (int64_t i = 0; i < kN; i += 997)
    EXPECT_EQ(base[i] != 0, dropout::keep(threshold, 7, 5, 1, i))
        << "element " << i;
}

TEST_F(DropoutTest, EvaluationAndEdgeProbabilities) {
  for (double v : mask(0.5, 42, 0, 0))
    ASSERT_EQ(v, 1.0) << "step 0 (evaluation) must be the identity";
  for (double v : mask(0.0, 42, 0, 3))
    ASSERT_EQ(v, 1.0) << "p = 0 must be the identity";
  for (double v : mask(1.0, 42, 0, 3))
    ASSERT_EQ(v, 0.0) << "p = 1 must drop everything";
}

} // namespace
