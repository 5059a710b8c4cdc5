// Reference kernels of the ReFT ops against PyTorch and pyreft: the
// Householder map and its gradient against torch 2.7.1's
// parametrizations.orthogonal (values printed by PyTorch in f64), the
// positions against pyreft's get_intervention_locations, the interventions
// against values worked out by hand.
#include "PeftTestUtil.h"

#include <cmath>

namespace peft::test {
namespace {

class ReftKernels : public PeftEvalTest {};

// torch.nn.utils.parametrizations.orthogonal on a 5x3 weight (householder
// map, trivialization on), `original` set to X after registration; W is
// lin.weight, dX the gradient of sum(W * G) with respect to `original`.
const std::vector<double> kX = {-1.0,
                                -0.645217551589235,
                                -0.3955513451381439,
                                -0.010439736497987179,
                                1.7,
                                0.2593183744755176,
                                -0.6562609809917814,
                                0.09599753592841814,
                                -1.2,
                                -1.1093896849650002,
                                0.1294922706831101,
                                -0.5148510909215095,
                                -0.25037920618821846,
                                0.13668386921003817,
                                -0.45904998676279074};
const std::vector<double> kBase = {
    0.7950200894901085,  0.17031005920021514,  -0.27854563187411663,
    0.5106562270684551,  -0.02408505267627038, 0.2932611461605876,
    -0.502209167016006,  -0.5515486435025599,  -0.5934057694971691,
    -0.0738074474265705, 0.20809192520492417,  0.5740421422172897,
    0.01626704995857378, -0.4767306843694078,  0.6321681795925942,
    -0.2080902109819282, -0.43433458996533847, -0.22630015033657025,
    0.3810441613566705,  0.7560724284794249,   -0.4419696507880642,
    0.44789454028658837, -0.7528147513549571,  0.12096698789484012,
    -0.15063282028086017};
const std::vector<double> kW = {
    -0.4899390291030892, -0.3684524859717554,  -0.5762377500515729,
    0.688495616508026,   0.26493590033449876,  -0.5268940280143353,
    0.20451897224588578, -0.7694015101486068,  -0.15192365025242607,
    -0.2816459580456253, 0.3769930588666778,   -0.590747485605637,
    0.4059323565802601,  -0.24484542887824196, -0.1351641646403594};
const std::vector<double> kG = {
    -0.040421087473651175, 0.28811682688855406,  -0.007537307963943466,
    -0.914495452479524,    -1.0885836526934918,  -0.2665963045720212,
    0.18942346075724142,   -0.21902281098819965, 2.0575912707261748,
    -0.035421882969449175, 0.06271882958315587,  -0.7663062812044589,
    1.0992505253519338,    2.756538312872294,    0.17528332277766262};
const std::vector<double> kDX = {0.0,
                                 0.0,
                                 0.0,
                                 -1.9546070209521689,
                                 0.0,
                                 0.0,
                                 -0.7932346489115678,
                                 3.800354136083836,
                                 0.0,
                                 0.08819204554678939,
                                 3.232403883418565,
                                 -0.1790330611247669,
                                 -0.1029146840664015,
                                 4.5031374442640955,
                                 1.073049124229628};

TEST_F(ReftKernels, HouseholderMatchesTorchOrthogonal) {
  parse(R"mlir(
    func.func @f(%x: tensor<5x3xf64>, %base: tensor<5x5xf64>, %g: tensor<5x3xf64>)
        -> (tensor<5x3xf64>, tensor<5x3xf64>) {
      %q = peft.householder_orthogonal %x, %base : tensor<5x3xf64>, tensor<5x5xf64> -> tensor<5x3xf64>
      %dx = peft.householder_orthogonal_grad %x, %base, %g : tensor<5x3xf64>, tensor<5x5xf64> -> tensor<5x3xf64>
      return %q, %dx : tensor<5x3xf64>, tensor<5x3xf64>
    })mlir");
  auto out = runOk({f64({5, 3}, kX), f64({5, 5}, kBase), f64({5, 3}, kG)});
  ASSERT_EQ(out.size(), 2u);
  expectNear(out[0], kW, 1e-14);
  expectNear(out[1], kDX, 1e-12);
}

// The identity base and X = −I give I[n, k] (torch's right_inverse returns
// −I so that the initial weight is the base's first columns); a diagonal
// entry in (−1, 1) truncates to 0 and zeroes its column.
TEST_F(ReftKernels, HouseholderDiagonalPicksColumnSigns) {
  parse(R"mlir(
    func.func @f(%x: tensor<3x2xf64>, %base: tensor<3x3xf64>) -> tensor<3x2xf64> {
      %q = peft.householder_orthogonal %x, %base : tensor<3x2xf64>, tensor<3x3xf64> -> tensor<3x2xf64>
      return %q : tensor<3x2xf64>
    })mlir");
  Tensor eye = f64({3, 3}, {1, 0, 0, 0, 1, 0, 0, 0, 1});
  expectNear(runOk({f64({3, 2}, {-1, 0, 0, -1, 0, 0}), eye})[0],
             {1, 0, 0, 1, 0, 0});
  expectNear(runOk({f64({3, 2}, {-1, 0, 0, 0.9, 0, 0}), eye})[0],
             {1, 0, 0, 0, 0, 0});
  expectNear(runOk({f64({3, 2}, {2.5, 0, 0, -1, 0, 0}), eye})[0],
             {-2, 0, 0, 1, 0, 0});
}

// pyreft's get_intervention_locations(positions="f5+l5") for prompt lengths
// 0, 1, 3, 7 and 12, plus 1 (its datasets prepend a pad token); pyreft pads
// with that token's position 0, the op with −1.
TEST_F(ReftKernels, PositionsMatchPyreft) {
  parse(R"mlir(
    func.func @f(%len: tensor<5xi64>) -> (tensor<5x10xi64>, tensor<5x5xi64>, tensor<5x5xi64>) {
      %all = peft.reft_positions %len {first_n = 5 : i64, last_n = 5 : i64, group = "all"} : tensor<5xi64> -> tensor<5x10xi64>
      %first = peft.reft_positions %len {first_n = 5 : i64, last_n = 5 : i64, group = "first"} : tensor<5xi64> -> tensor<5x5xi64>
      %last = peft.reft_positions %len {first_n = 5 : i64, last_n = 5 : i64, group = "last"} : tensor<5xi64> -> tensor<5x5xi64>
      return %all, %first, %last : tensor<5x10xi64>, tensor<5x5xi64>, tensor<5x5xi64>
    })mlir");
  auto out = runOk({i64({5}, {0, 1, 3, 7, 12})});
  ASSERT_EQ(out.size(), 3u);
  std::vector<double> all = {-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, //
                             -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, //
                             1,  3,  -1, -1, -1, -1, -1, -1, -1, -1, //
                             1,  2,  3,  5,  6,  7,  -1, -1, -1, -1, //
                             1,  2,  3,  4,  5,  8,  9,  10, 11, 12};
  expectNear(out[0], all);
  expectNear(out[1], {-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, 1, -1, -1,
                      -1, -1, 1,  2,  3,  -1, -1, 1,  2,  3,  4, 5});
  expectNear(out[2], {-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, 3,  -1, -1,
                      -1, -1, 5,  6,  7,  -1, -1, 8,  9,  10, 11, 12});
}

// d = 2, r = 1, R = [1, 0]ᵀ, W = [0, 1], b = 1: on a selected row
// h + (h₁ + 1 − h₀)·[1, 0]; rows not named (or −1) pass through, and a row
// named twice changes once.
TEST_F(ReftKernels, LoreftChangesOnlyTheNamedRows) {
  parse(R"mlir(
    func.func @f(%h: tensor<1x3x2xf64>, %r: tensor<2x1xf64>, %w: tensor<1x2xf64>,
                 %b: tensor<1xf64>, %p: tensor<1x3xi64>) -> (tensor<1x3x2xf64>, tensor<1x3x1xf64>) {
      %y = peft.loreft %h, %r, %w, %b, %p : tensor<1x3x2xf64>, tensor<2x1xf64>, tensor<1x2xf64>, tensor<1xf64>, tensor<1x3xi64> -> tensor<1x3x2xf64>
      %m = peft.intervention_mask %p : tensor<1x3xi64> -> tensor<1x3x1xf64>
      return %y, %m : tensor<1x3x2xf64>, tensor<1x3x1xf64>
    })mlir");
  auto out =
      runOk({f64({1, 3, 2}, {1, 2, 3, 4, 5, 6}), f64({2, 1}, {1, 0}),
             f64({1, 2}, {0, 1}), f64({1}, {1}), i64({1, 3}, {2, -1, 2})});
  ASSERT_EQ(out.size(), 2u);
  // Row 2: h = [5, 6], s = 6 + 1 − 5 = 2: [7, 6].
  expectNear(out[0], {1, 2, 3, 4, 7, 6});
  expectNear(out[1], {0, 0, 1});
}

// NodiReFT: h + (W·h + b)·P with W = [1, 1], b = −1, P = [2, 3].
TEST_F(ReftKernels, NodireftChangesOnlyTheNamedRows) {
  parse(R"mlir(
    func.func @f(%h: tensor<1x2x2xf64>, %w: tensor<1x2xf64>, %b: tensor<1xf64>,
                 %pr: tensor<1x2xf64>, %p: tensor<1x1xi64>) -> tensor<1x2x2xf64> {
      %y = peft.nodireft %h, %w, %b, %pr, %p : tensor<1x2x2xf64>, tensor<1x2xf64>, tensor<1xf64>, tensor<1x2xf64>, tensor<1x1xi64> -> tensor<1x2x2xf64>
      return %y : tensor<1x2x2xf64>
    })mlir");
  auto out = runOk({f64({1, 2, 2}, {1, 2, 3, 4}), f64({1, 2}, {1, 1}),
                    f64({1}, {-1}), f64({1, 2}, {2, 3}), i64({1, 1}, {0})});
  // Row 0: u = 1 + 2 − 1 = 2: [1 + 4, 2 + 6].
  expectNear(out[0], {5, 8, 3, 4});
}

TEST_F(ReftKernels, PositionOutsideTheSequenceIsAnError) {
  parse(R"mlir(
    func.func @f(%p: tensor<1x1xi64>) -> tensor<1x3x1xf64> {
      %m = peft.intervention_mask %p : tensor<1x1xi64> -> tensor<1x3x1xf64>
      return %m : tensor<1x3x1xf64>
    })mlir");
  EXPECT_TRUE(mlir::failed(run({i64({1, 1}, {3})})));
  EXPECT_NE(errors.find("position 3 of example 0 is outside [0, 3)"),
            std::string::npos)
      << errors;
}

// ReFT dropout as peft-insert-interventions builds it (pyreft's
// self.dropout(output) on the intervened rows): on a selected row every
// element is 0 or (h + delta)/(1 − p), about p of them 0; other rows are h
// exactly; step 0 (evaluation) is the intervention itself. PyTorch's RNG is
// not reproduced, so the mask is checked by its statistics.
TEST_F(ReftKernels, DropoutLandsOnTheWholeInterventionOutput) {
  parse(R"mlir(
    func.func @f(%h: tensor<2x16x64xf64>, %r: tensor<64x2xf64>, %w: tensor<2x64xf64>,
                 %b: tensor<2xf64>, %p: tensor<2x12xi64>, %s: tensor<i64>) -> (tensor<2x16x64xf64>, tensor<2x16x64xf64>) {
      %y = peft.loreft %h, %r, %w, %b, %p : tensor<2x16x64xf64>, tensor<64x2xf64>, tensor<2x64xf64>, tensor<2xf64>, tensor<2x12xi64> -> tensor<2x16x64xf64>
      %d = peft.dropout %y, %s {p = 2.500000e-01 : f64, seed = 5 : i64, stream = 0 : i64} : tensor<2x16x64xf64>, tensor<i64>
      %m = peft.intervention_mask %p : tensor<2x12xi64> -> tensor<2x16x1xf64>
      %c = nn.cast %m : tensor<2x16x1xf64> -> tensor<2x16x1xi1>
      %o = nn.where %c, %d, %y : tensor<2x16x1xi1>, tensor<2x16x64xf64>, tensor<2x16x64xf64> -> tensor<2x16x64xf64>
      return %o, %y : tensor<2x16x64xf64>, tensor<2x16x64xf64>
    })mlir");
  auto values = [](int64_t n, double phase) {
    std::vector<double> v(n);
    for (int64_t i = 0; i < n; ++i)
      v[i] = std::sin(0.37 * i + phase);
    return v;
  };
  // Example 0 intervenes on rows 0..11, example 1 on rows 4..9.
  std::vector<int64_t> positions(24, -1);
  for (int64_t t = 0; t < 12; ++t)
    positions[t] = t;
  for (int64_t t = 0; t < 6; ++t)
    positions[12 + t] = 4 + t;
  std::vector<Tensor> inputs = {f64({2, 16, 64}, values(2 * 16 * 64, 0.1)),
                                f64({64, 2}, values(128, 1)),
                                f64({2, 64}, values(128, 2)),
                                f64({2}, {0.5, -0.25}),
                                i64({2, 12}, positions),
                                i64({}, {3})};
  auto train = runOk(inputs);
  ASSERT_EQ(train.size(), 2u);
  const Tensor &out = train[0], &y = train[1], &h = inputs[0];
  int64_t selected = 0, zeros = 0;
  for (int64_t b = 0; b < 2; ++b)
    for (int64_t t = 0; t < 16; ++t) {
      bool intervened = b == 0 ? t < 12 : (t >= 4 && t < 10);
      for (int64_t i = 0; i < 64; ++i) {
        int64_t e = (b * 16 + t) * 64 + i;
        if (!intervened) {
          ASSERT_EQ(out.getDouble(e), h.getDouble(e)) << e;
          ASSERT_EQ(y.getDouble(e), h.getDouble(e)) << e;
          continue;
        }
        ++selected;
        // The intervention changed the row; dropout keeps h + delta scaled.
        double kept = y.getDouble(e) * (1.0 / (1.0 - 0.25));
        if (out.getDouble(e) == 0.0)
          ++zeros;
        else
          ASSERT_EQ(out.getDouble(e), kept) << e;
      }
    }
  ASSERT_EQ(selected, (12 + 6) * 64);
  // p = 0.25 over 1152 draws: standard deviation 0.013.
  double dropped = double(zeros) / double(selected);
  EXPECT_NEAR(dropped, 0.25, 0.05) << zeros << " of " << selected;

  inputs[5] = i64({}, {0});
  auto eval = runOk(inputs);
  ASSERT_EQ(eval.size(), 2u);
  for (int64_t e = 0; e < out.numel(); ++e)
    ASSERT_EQ(eval[0].getDouble(e), eval[1].getDouble(e)) << e;
}

} // namespace
} // namespace peft::test
