//===- GradientCheckTest.cpp - gradient rules vs finite differences -------===//
//
// Each case is a function @f written in MLIR. The harness turns every
// argument of @f into a peft.param (float arguments trainable unless marked
// frozen) holding random f64 values, builds
//   @loss = sum over results r of @f: reduce_sum(r * random weights),
// runs peft-differentiate and evaluates @train_step on the reference
// evaluator in f64. Every gradient must match central finite differences of
// @loss to a relative error below 1e-6. Inputs stay away from kinks (relu
// and abs at 0, ties of max/min, pooling windows with equal values).
//
// A second test walks the rule table: every differentiable op needs a case
// here, and every registered nn op needs an entry in the table.
//
//===----------------------------------------------------------------------===//
#include "codegen/reference/Evaluator.h"
#include "codegen/reference/TensorAttr.h"
#include "passes/Passes.h"
#include "passes/autodiff/GradientRules.h"

#include "mlir/IR/IRMapping.h"
#include "mlir/IR/Verifier.h"
#include "mlir/Parser/Parser.h"
#include "mlir/Pass/PassManager.h"
#include "llvm/ADT/StringSet.h"

#include <gtest/gtest.h>

#include <cmath>
#include <numeric>
#include <random>

using namespace mlir;
using namespace peft;

namespace {

//===----------------------------------------------------------------------===//
// Cases
//===----------------------------------------------------------------------===//

/// How one argument of @f is filled.
struct Input {
  enum Kind { Trainable, Frozen, Integer, Fixed } kind = Trainable;
  double lo = -1, hi = 1;
  bool awayFromZero = false;  // magnitude in [lo, hi], random sign
  std::vector<double> values; // used instead of random values when given
};

Input input(Input::Kind kind, double lo, double hi, bool awayFromZero = false,
            std::vector<double> values = {}) {
  Input in;
  in.kind = kind;
  in.lo = lo;
  in.hi = hi;
  in.awayFromZero = awayFromZero;
  in.values = std::move(values);
  return in;
}
Input F(double lo = -1, double hi = 1) {
  return input(Input::Trainable, lo, hi);
}
/// Trainable, |x| in [lo, hi] with a random sign: away from kinks at 0.
Input S(double lo = 0.2, double hi = 1) {
  return input(Input::Trainable, lo, hi, true);
}
Input Frozen(double lo = -1, double hi = 1) {
  return input(Input::Frozen, lo, hi);
}
Input I(int64_t lo, int64_t hi) { return input(Input::Integer, lo, hi); }
/// Frozen integers (indices, conditions) with these values, repeated.
Input Ints(std::vector<double> values) {
  return input(Input::Fixed, 0, 0, false, std::move(values));
}
/// Trainable with these values, repeated.
Input Values(std::vector<double> values) {
  return input(Input::Trainable, 0, 0, false, std::move(values));
}

struct Case {
  std::string name;
  std::vector<Input> inputs;
  std::string mlir; // defines func.func @f
};

std::string tensorType(const std::string &shape, const std::string &et) {
  return "tensor<" + (shape.empty() ? "" : shape + "x") + et + ">";
}

/// @f(%x) = op(%x) on a 2x3 f64 tensor.
Case unary(const std::string &op, Input in, const std::string &attrs = "") {
  std::string t = "tensor<2x3xf64>";
  return {op + (attrs.empty() ? "" : "_attrs"),
          {in},
          "func.func @f(%x: " + t + ") -> " + t + " {\n  %r = nn." + op +
              " %x " + attrs + " : " + t + "\n  return %r : " + t + "\n}"};
}

/// @f(%a, %b) = op(%a, %b), broadcasting `a` and `b` to `r`.
Case binary(const std::string &name, const std::string &op, Input a, Input b,
            const std::string &sa = "2x3", const std::string &sb = "3",
            const std::string &sr = "2x3") {
  std::string ta = tensorType(sa, "f64"), tb = tensorType(sb, "f64"),
              tr = tensorType(sr, "f64");
  return {name,
          {a, b},
          "func.func @f(%a: " + ta + ", %b: " + tb + ") -> " + tr +
              " {\n  %r = nn." + op + " %a, %b : " + ta + ", " + tb + " -> " +
              tr + "\n  return %r : " + tr + "\n}"};
}

std::vector<Case> allCases() {
  std::vector<Case> cases = {
      // Elementwise unary.
      unary("neg", F()),
      unary("abs", S()),
      unary("relu", S()),
      unary("leaky_relu", S(), "{alpha = 0.1 : f64}"),
      unary("elu", S(), "{alpha = 1.5 : f64}"),
      unary("exp", F()),
      unary("log", F(0.5, 2)),
      unary("sqrt", F(0.5, 2)),
      unary("reciprocal", S(0.5, 2)),
      unary("tanh", F()),
      unary("sigmoid", F(-2, 2)),
      unary("erf", F()),
      unary("softplus", F(-2, 2)),
      unary("sin", F()),
      unary("cos", F()),
      unary("tan", F()),
      unary("asin", F(-0.8, 0.8)),
      unary("acos", F(-0.8, 0.8)),
      unary("atan", F(-2, 2)),
      unary("sinh", F()),
      unary("cosh", F()),
      unary("asinh", F(-2, 2)),
      unary("acosh", F(1.2, 3)),
      unary("atanh", F(-0.8, 0.8)),
      {"gelu_none",
       {F(-2, 2)},
       R"(func.func @f(%x: tensor<2x3xf64>) -> tensor<2x3xf64> {
  %r = nn.gelu %x {approximate = "none"} : tensor<2x3xf64>
  return %r : tensor<2x3xf64>
})"},
      {"gelu_tanh",
       {F(-2, 2)},
       R"(func.func @f(%x: tensor<2x3xf64>) -> tensor<2x3xf64> {
  %r = nn.gelu %x {approximate = "tanh"} : tensor<2x3xf64>
  return %r : tensor<2x3xf64>
})"},

      // Elementwise binary, broadcasting included.
      binary("add", "add", F(), F()),
      binary("add_both_broadcast", "add", F(), F(), "2x1x3", "4x1", "2x4x3"),
      binary("sub", "sub", F(), F(), "3", "2x3"),
      binary("mul", "mul", F(), F(), "2x1x3", "4x1", "2x4x3"),
      binary("mul_frozen_rhs", "mul", F(), Frozen()),
      binary("div", "div", F(), S(0.5, 2)),
      binary("pow", "pow", F(0.5, 2), F(-2, 2)),
      binary("pow_scalar_exponent", "pow", F(0.5, 2), F(1, 3), "2x3", ""),
      binary("max", "max", F(), F()),
      binary("min", "min", F(), F(), "2x1", "2x3"),
      binary("mod", "mod", S(2.3, 2.7), F(1.5, 2)),
      binary("mod_fmod", "mod", S(2.3, 2.7), F(1.5, 2)),
      {"where",
       {Ints({1, 0, 0, 1, 1, 0}), F(), F()},
       R"(func.func @f(%c: tensor<2x3xi1>, %a: tensor<2x3xf64>, %b: tensor<3xf64>) -> tensor<2x3xf64> {
  %r = nn.where %c, %a, %b : tensor<2x3xi1>, tensor<2x3xf64>, tensor<3xf64> -> tensor<2x3xf64>
  return %r : tensor<2x3xf64>
})"},
      {"cast",
       {F()},
       R"(func.func @f(%x: tensor<2x3xf64>) -> tensor<2x3xf64> {
  %c = nn.cast %x : tensor<2x3xf64> -> tensor<2x3xf32>
  %r = nn.cast %c : tensor<2x3xf32> -> tensor<2x3xf64>
  return %r : tensor<2x3xf64>
})"},

      // Data movement.
      {"reshape",
       {F()},
       R"(func.func @f(%x: tensor<2x3xf64>) -> tensor<3x1x2xf64> {
  %r = nn.reshape %x : tensor<2x3xf64> -> tensor<3x1x2xf64>
  return %r : tensor<3x1x2xf64>
})"},
      {"transpose",
       {F()},
       R"(func.func @f(%x: tensor<2x3x4xf64>) -> tensor<4x2x3xf64> {
  %r = nn.transpose %x perm [2, 0, 1] : tensor<2x3x4xf64> -> tensor<4x2x3xf64>
  return %r : tensor<4x2x3xf64>
})"},
      {"broadcast_to",
       {F()},
       R"(func.func @f(%x: tensor<3x1xf64>) -> tensor<2x3x4xf64> {
  %r = nn.broadcast_to %x : tensor<3x1xf64> -> tensor<2x3x4xf64>
  return %r : tensor<2x3x4xf64>
})"},
      {"slice",
       {F()},
       R"(func.func @f(%x: tensor<4x5xf64>) -> tensor<2x3xf64> {
  %r = nn.slice %x starts [1, 0] sizes [2, 3] steps [1, 1] : tensor<4x5xf64> -> tensor<2x3xf64>
  return %r : tensor<2x3xf64>
})"},
      {"slice_strided_reversed",
       {F()},
       R"(func.func @f(%x: tensor<5x7xf64>) -> tensor<2x2xf64> {
  %r = nn.slice %x starts [4, 1] sizes [2, 2] steps [-2, 3] : tensor<5x7xf64> -> tensor<2x2xf64>
  return %r : tensor<2x2xf64>
})"},
      {"concat",
       {F(), Frozen(), F()},
       R"(func.func @f(%a: tensor<2x3xf64>, %b: tensor<2x1xf64>, %c: tensor<2x2xf64>) -> tensor<2x6xf64> {
  %r = nn.concat %a, %b, %c axis 1 : tensor<2x3xf64>, tensor<2x1xf64>, tensor<2x2xf64> -> tensor<2x6xf64>
  return %r : tensor<2x6xf64>
})"},
      {"gather_embedding",
       {F(), I(-4, 3)},
       R"(func.func @f(%t: tensor<4x5xf64>, %i: tensor<2x3xi64>) -> tensor<2x3x5xf64> {
  %r = nn.gather %t[%i] axis 0 : tensor<4x5xf64>, tensor<2x3xi64> -> tensor<2x3x5xf64>
  return %r : tensor<2x3x5xf64>
})"},
      {"gather_axis1",
       {F(), I(0, 3)},
       R"(func.func @f(%t: tensor<3x4x2xf64>, %i: tensor<2x2xi64>) -> tensor<3x2x2x2xf64> {
  %r = nn.gather %t[%i] axis 1 : tensor<3x4x2xf64>, tensor<2x2xi64> -> tensor<3x2x2x2xf64>
  return %r : tensor<3x2x2x2xf64>
})"},
      {"gather_scalar_index",
       {F(), I(-4, 3)},
       R"(func.func @f(%t: tensor<3x4xf64>, %i: tensor<i64>) -> tensor<3xf64> {
  %r = nn.gather %t[%i] axis 1 : tensor<3x4xf64>, tensor<i64> -> tensor<3xf64>
  return %r : tensor<3xf64>
})"},
      {"gather_elements",
       {F(), I(0, 3)},
       R"(func.func @f(%t: tensor<3x4xf64>, %i: tensor<3x2xi64>) -> tensor<3x2xf64> {
  %r = nn.gather_elements %t[%i] axis 1 : tensor<3x4xf64>, tensor<3x2xi64> -> tensor<3x2xf64>
  return %r : tensor<3x2xf64>
})"},
      {"gather_nd",
       {F(), I(0, 2)},
       R"(func.func @f(%t: tensor<3x4xf64>, %i: tensor<2x1xi64>) -> tensor<2x4xf64> {
  %r = nn.gather_nd %t[%i] batch_dims 0 : tensor<3x4xf64>, tensor<2x1xi64> -> tensor<2x4xf64>
  return %r : tensor<2x4xf64>
})"},
      {"pad_constant",
       {F()},
       R"(func.func @f(%x: tensor<2x3xf64>) -> tensor<3x5xf64> {
  %r = nn.pad %x mode "constant" low [1, 0] high [0, 2] : tensor<2x3xf64> -> tensor<3x5xf64>
  return %r : tensor<3x5xf64>
})"},
      {"pad_crop_and_value",
       {F(), F()},
       R"(func.func @f(%x: tensor<3x4xf64>, %v: tensor<f64>) -> tensor<3x4xf64> {
  %r = nn.pad %x value %v mode "constant" low [-1, 1] high [1, -1] : tensor<3x4xf64>, tensor<f64> -> tensor<3x4xf64>
  return %r : tensor<3x4xf64>
})"},
      {"pad_reflect",
       {F()},
       R"(func.func @f(%x: tensor<3x4xf64>) -> tensor<6x7xf64> {
  %r = nn.pad %x mode "reflect" low [1, 2] high [2, 1] : tensor<3x4xf64> -> tensor<6x7xf64>
  return %r : tensor<6x7xf64>
})"},
      {"pad_edge",
       {F()},
       R"(func.func @f(%x: tensor<3x4xf64>) -> tensor<6x7xf64> {
  %r = nn.pad %x mode "edge" low [1, 2] high [2, 1] : tensor<3x4xf64> -> tensor<6x7xf64>
  return %r : tensor<6x7xf64>
})"},
      {"pad_wrap",
       {F()},
       R"(func.func @f(%x: tensor<3x4xf64>) -> tensor<6x9xf64> {
  %r = nn.pad %x mode "wrap" low [1, 2] high [2, 3] : tensor<3x4xf64> -> tensor<6x9xf64>
  return %r : tensor<6x9xf64>
})"},
      {"trilu",
       {F()},
       R"(func.func @f(%x: tensor<3x4xf64>) -> tensor<3x4xf64> {
  %r = nn.trilu %x upper true k 1 : tensor<3x4xf64>
  return %r : tensor<3x4xf64>
})"},
      {"cumsum",
       {F()},
       R"(func.func @f(%x: tensor<3x4xf64>) -> tensor<3x4xf64> {
  %r = nn.cumsum %x axis 1 exclusive false reverse false : tensor<3x4xf64>
  return %r : tensor<3x4xf64>
})"},
      {"cumsum_exclusive_reverse",
       {F()},
       R"(func.func @f(%x: tensor<3x4xf64>) -> tensor<3x4xf64> {
  %r = nn.cumsum %x axis 0 exclusive true reverse true : tensor<3x4xf64>
  return %r : tensor<3x4xf64>
})"},
      {"scatter_elements",
       {F(), Ints({0, 2, 3, 1, 1, 0}), F()},
       R"(func.func @f(%d: tensor<3x4xf64>, %i: tensor<3x2xi64>, %u: tensor<3x2xf64>) -> tensor<3x4xf64> {
  %r = nn.scatter_elements %d[%i], %u axis 1 reduction "none" : tensor<3x4xf64>, tensor<3x2xi64>, tensor<3x2xf64> -> tensor<3x4xf64>
  return %r : tensor<3x4xf64>
})"},
      {"scatter_elements_add",
       {F(), Ints({0, 0, 3, 1, 2, 2}), F()},
       R"(func.func @f(%d: tensor<3x4xf64>, %i: tensor<3x2xi64>, %u: tensor<3x2xf64>) -> tensor<3x4xf64> {
  %r = nn.scatter_elements %d[%i], %u axis 1 reduction "add" : tensor<3x4xf64>, tensor<3x2xi64>, tensor<3x2xf64> -> tensor<3x4xf64>
  return %r : tensor<3x4xf64>
})"},
      {"scatter_nd",
       {F(), Ints({3, 1}), F()},
       R"(func.func @f(%d: tensor<4x3xf64>, %i: tensor<2x1xi64>, %u: tensor<2x3xf64>) -> tensor<4x3xf64> {
  %r = nn.scatter_nd %d[%i], %u reduction "none" : tensor<4x3xf64>, tensor<2x1xi64>, tensor<2x3xf64> -> tensor<4x3xf64>
  return %r : tensor<4x3xf64>
})"},
      {"scatter_nd_add",
       {F(), Ints({1, 1}), F()},
       R"(func.func @f(%d: tensor<4x3xf64>, %i: tensor<2x1xi64>, %u: tensor<2x3xf64>) -> tensor<4x3xf64> {
  %r = nn.scatter_nd %d[%i], %u reduction "add" : tensor<4x3xf64>, tensor<2x1xi64>, tensor<2x3xf64> -> tensor<4x3xf64>
  return %r : tensor<4x3xf64>
})"},
      {"one_hot",
       {I(0, 4), F()},
       R"(func.func @f(%i: tensor<2x3xi64>, %v: tensor<2xf64>) -> tensor<2x3x5xf64> {
  %r = nn.one_hot %i, %v depth 5 axis 2 : tensor<2x3xi64>, tensor<2xf64> -> tensor<2x3x5xf64>
  return %r : tensor<2x3x5xf64>
})"},

      // Reductions.
      {"reduce_sum_keepdims",
       {F()},
       R"(func.func @f(%x: tensor<2x3x4xf64>) -> tensor<1x3x1xf64> {
  %r = nn.reduce_sum %x axes [0, 2] keepdims : tensor<2x3x4xf64> -> tensor<1x3x1xf64>
  return %r : tensor<1x3x1xf64>
})"},
      {"reduce_sum",
       {F()},
       R"(func.func @f(%x: tensor<2x3x4xf64>) -> tensor<3xf64> {
  %r = nn.reduce_sum %x axes [0, 2] : tensor<2x3x4xf64> -> tensor<3xf64>
  return %r : tensor<3xf64>
})"},
      {"reduce_mean",
       {F()},
       R"(func.func @f(%x: tensor<2x3x4xf64>) -> tensor<2x4xf64> {
  %r = nn.reduce_mean %x axes [1] : tensor<2x3x4xf64> -> tensor<2x4xf64>
  return %r : tensor<2x4xf64>
})"},
      {"reduce_prod",
       {S(0.5, 1.5)},
       R"(func.func @f(%x: tensor<2x3x4xf64>) -> tensor<2x1x4xf64> {
  %r = nn.reduce_prod %x axes [1] keepdims : tensor<2x3x4xf64> -> tensor<2x1x4xf64>
  return %r : tensor<2x1x4xf64>
})"},
      {"reduce_prod_zeros",
       {Values({0.5, 0, 1.5, -0.7, 0, 0, 1.2, 0.8, -1.1, 0.9, 1.3, 0.6})},
       R"(func.func @f(%x: tensor<4x3xf64>) -> tensor<3xf64> {
  %r = nn.reduce_prod %x axes [0] : tensor<4x3xf64> -> tensor<3xf64>
  return %r : tensor<3xf64>
})"},
      {"reduce_max",
       {F()},
       R"(func.func @f(%x: tensor<2x3x4xf64>) -> tensor<2x4xf64> {
  %r = nn.reduce_max %x axes [1] : tensor<2x3x4xf64> -> tensor<2x4xf64>
  return %r : tensor<2x4xf64>
})"},
      {"reduce_min",
       {F()},
       R"(func.func @f(%x: tensor<2x3x4xf64>) -> tensor<1x3x1xf64> {
  %r = nn.reduce_min %x axes [0, 2] keepdims : tensor<2x3x4xf64> -> tensor<1x3x1xf64>
  return %r : tensor<1x3x1xf64>
})"},

      // Normalisation.
      {"softmax",
       {F(-2, 2)},
       R"(func.func @f(%x: tensor<2x5xf64>) -> tensor<2x5xf64> {
  %r = nn.softmax %x axis 1 : tensor<2x5xf64>
  return %r : tensor<2x5xf64>
})"},
      {"log_softmax",
       {F(-2, 2)},
       R"(func.func @f(%x: tensor<2x3x4xf64>) -> tensor<2x3x4xf64> {
  %r = nn.log_softmax %x axis 1 : tensor<2x3x4xf64>
  return %r : tensor<2x3x4xf64>
})"},
      {"layer_norm",
       {F(-2, 2), F(0.5, 1.5), F()},
       R"(func.func @f(%x: tensor<2x3x4xf64>, %s: tensor<4xf64>, %b: tensor<4xf64>) -> tensor<2x3x4xf64> {
  %y, %m, %r = nn.layer_norm %x, %s, %b axis 2 epsilon 1.0e-05 : tensor<2x3x4xf64>, tensor<4xf64>, tensor<4xf64> -> tensor<2x3x4xf64>, tensor<2x3x1xf64>, tensor<2x3x1xf64>
  return %y : tensor<2x3x4xf64>
})"},
      {"layer_norm_statistics",
       {F(-2, 2), F(0.5, 1.5)},
       R"(func.func @f(%x: tensor<2x3x4xf64>, %s: tensor<3x4xf64>) -> (tensor<2x3x4xf64>, tensor<2x1x1xf64>, tensor<2x1x1xf64>) {
  %y, %m, %r = nn.layer_norm %x, %s axis 1 epsilon 1.0e-03 : tensor<2x3x4xf64>, tensor<3x4xf64> -> tensor<2x3x4xf64>, tensor<2x1x1xf64>, tensor<2x1x1xf64>
  return %y, %m, %r : tensor<2x3x4xf64>, tensor<2x1x1xf64>, tensor<2x1x1xf64>
})"},

      // Linear algebra.
      binary("matmul", "matmul", F(), F(), "3x4", "4x5", "3x5"),
      binary("matmul_batch_broadcast", "matmul", F(), F(), "2x1x3x4", "3x4x5",
             "2x3x3x5"),
      binary("matmul_vector_lhs", "matmul", F(), F(), "4", "2x4x5", "2x5"),
      binary("matmul_vector_rhs", "matmul", F(), F(), "2x3x4", "4", "2x3"),
      binary("matmul_dot", "matmul", F(), F(), "4", "4", ""),
      {"matmul_transpose_lhs",
       {F(), F()},
       R"(func.func @f(%a: tensor<2x4x3xf64>, %b: tensor<4x5xf64>) -> tensor<2x3x5xf64> {
  %r = nn.matmul %a, %b {transpose_lhs = true} : tensor<2x4x3xf64>, tensor<4x5xf64> -> tensor<2x3x5xf64>
  return %r : tensor<2x3x5xf64>
})"},
      {"matmul_transpose_rhs",
       {F(), F()},
       R"(func.func @f(%a: tensor<3x4xf64>, %b: tensor<2x5x4xf64>) -> tensor<2x3x5xf64> {
  %r = nn.matmul %a, %b {transpose_rhs = true} : tensor<3x4xf64>, tensor<2x5x4xf64> -> tensor<2x3x5xf64>
  return %r : tensor<2x3x5xf64>
})"},
      {"matmul_linear_weight",
       {F(), F()},
       R"(func.func @f(%x: tensor<2x3x4xf64>, %w: tensor<5x4xf64>) -> tensor<2x3x5xf64> {
  %r = nn.matmul %x, %w {transpose_rhs = true} : tensor<2x3x4xf64>, tensor<5x4xf64> -> tensor<2x3x5xf64>
  return %r : tensor<2x3x5xf64>
})"},
      {"matmul_transpose_both",
       {F(), F()},
       R"(func.func @f(%a: tensor<4x3xf64>, %b: tensor<5x4xf64>) -> tensor<3x5xf64> {
  %r = nn.matmul %a, %b {transpose_lhs = true, transpose_rhs = true} : tensor<4x3xf64>, tensor<5x4xf64> -> tensor<3x5xf64>
  return %r : tensor<3x5xf64>
})"},
      {"conv_grouped_strided",
       {F(), F(), F()},
       R"(func.func @f(%x: tensor<2x4x5x6xf64>, %w: tensor<6x2x3x2xf64>, %b: tensor<6xf64>) -> tensor<2x6x3x5xf64> {
  %r = nn.conv %x, %w, %b strides [2, 1] pads [1, 0, 1, 1] dilations [1, 2] group 2 : tensor<2x4x5x6xf64>, tensor<6x2x3x2xf64>, tensor<6xf64> -> tensor<2x6x3x5xf64>
  return %r : tensor<2x6x3x5xf64>
})"},
      {"conv_dropped_rows",
       {F(), F()},
       R"(func.func @f(%x: tensor<1x2x7xf64>, %w: tensor<3x2x2xf64>) -> tensor<1x3x3xf64> {
  %r = nn.conv %x, %w strides [2] pads [0, 0] dilations [1] group 1 : tensor<1x2x7xf64>, tensor<3x2x2xf64> -> tensor<1x3x3xf64>
  return %r : tensor<1x3x3xf64>
})"},
      {"conv_transpose",
       {F(), F(), F()},
       R"(func.func @f(%x: tensor<1x4x3x3xf64>, %w: tensor<4x3x2x2xf64>, %b: tensor<3xf64>) -> tensor<1x3x6x5xf64> {
  %r = nn.conv_transpose %x, %w, %b strides [2, 2] pads [0, 1, 1, 0] dilations [1, 1] output_padding [1, 0] group 1 : tensor<1x4x3x3xf64>, tensor<4x3x2x2xf64>, tensor<3xf64> -> tensor<1x3x6x5xf64>
  return %r : tensor<1x3x6x5xf64>
})"},
      {"conv_transpose_grouped",
       {F(), F()},
       R"(func.func @f(%x: tensor<1x4x3xf64>, %w: tensor<4x1x3xf64>) -> tensor<1x2x3xf64> {
  %r = nn.conv_transpose %x, %w strides [1] pads [1, 1] dilations [1] output_padding [0] group 2 : tensor<1x4x3xf64>, tensor<4x1x3xf64> -> tensor<1x2x3xf64>
  return %r : tensor<1x2x3xf64>
})"},
      {"max_pool",
       {F()},
       R"(func.func @f(%x: tensor<1x2x5x5xf64>) -> tensor<1x2x3x3xf64> {
  %r = nn.max_pool %x kernel [2, 2] strides [2, 2] pads [0, 0, 1, 1] dilations [1, 1] : tensor<1x2x5x5xf64> -> tensor<1x2x3x3xf64>
  return %r : tensor<1x2x3x3xf64>
})"},
      {"max_pool_overlapping_ceil",
       {F()},
       R"(func.func @f(%x: tensor<1x1x6x6xf64>) -> tensor<1x1x3x3xf64> {
  %r = nn.max_pool %x kernel [3, 3] strides [2, 2] pads [0, 0, 0, 0] dilations [1, 1] {ceil_mode = true} : tensor<1x1x6x6xf64> -> tensor<1x1x3x3xf64>
  return %r : tensor<1x1x3x3xf64>
})"},
      {"avg_pool",
       {F()},
       R"(func.func @f(%x: tensor<1x2x5x5xf64>) -> tensor<1x2x3x3xf64> {
  %r = nn.avg_pool %x kernel [3, 3] strides [2, 2] pads [1, 1, 1, 1] dilations [1, 1] : tensor<1x2x5x5xf64> -> tensor<1x2x3x3xf64>
  return %r : tensor<1x2x3x3xf64>
})"},
      {"avg_pool_count_pad",
       {F()},
       R"(func.func @f(%x: tensor<1x2x5x5xf64>) -> tensor<1x2x3x3xf64> {
  %r = nn.avg_pool %x kernel [3, 3] strides [2, 2] pads [1, 1, 1, 1] dilations [1, 1] {count_include_pad = true} : tensor<1x2x5x5xf64> -> tensor<1x2x3x3xf64>
  return %r : tensor<1x2x3x3xf64>
})"},
      {"einsum_matmul",
       {F(), F()},
       R"(func.func @f(%a: tensor<3x4xf64>, %b: tensor<4x5xf64>) -> tensor<3x5xf64> {
  %r = nn.einsum "ij,jk->ik" %a, %b : (tensor<3x4xf64>, tensor<4x5xf64>) -> tensor<3x5xf64>
  return %r : tensor<3x5xf64>
})"},
      {"einsum_ellipsis_broadcast",
       {F(), F()},
       R"(func.func @f(%a: tensor<2x1x3x4xf64>, %b: tensor<3x4x5xf64>) -> tensor<2x3x3x5xf64> {
  %r = nn.einsum "...ij,...jk->...ik" %a, %b : (tensor<2x1x3x4xf64>, tensor<3x4x5xf64>) -> tensor<2x3x3x5xf64>
  return %r : tensor<2x3x3x5xf64>
})"},
      {"einsum_private_labels",
       {F(), F()},
       R"(func.func @f(%a: tensor<2x3xf64>, %b: tensor<4x5xf64>) -> tensor<2x4xf64> {
  %r = nn.einsum "ij,kl->ik" %a, %b : (tensor<2x3xf64>, tensor<4x5xf64>) -> tensor<2x4xf64>
  return %r : tensor<2x4xf64>
})"},
      {"einsum_three_operands",
       {F(), F(), F()},
       R"(func.func @f(%a: tensor<2x3xf64>, %b: tensor<3x4xf64>, %c: tensor<4xf64>) -> tensor<2xf64> {
  %r = nn.einsum "ij,jk,k->i" %a, %b, %c : (tensor<2x3xf64>, tensor<3x4xf64>, tensor<4xf64>) -> tensor<2xf64>
  return %r : tensor<2xf64>
})"},

      // Compositions: several users, a param used twice, frozen weights.
      {"mlp_block",
       {F(), F(), Frozen(), F(0.5, 1.5), F()},
       R"(func.func @f(%x: tensor<2x3x4xf64>, %w1: tensor<4x6xf64>, %w2: tensor<6x4xf64>, %s: tensor<4xf64>, %b: tensor<4xf64>) -> tensor<2x3x4xf64> {
  %h = nn.matmul %x, %w1 : tensor<2x3x4xf64>, tensor<4x6xf64> -> tensor<2x3x6xf64>
  %g = nn.gelu %h {approximate = "none"} : tensor<2x3x6xf64>
  %o = nn.matmul %g, %w2 : tensor<2x3x6xf64>, tensor<6x4xf64> -> tensor<2x3x4xf64>
  %res = nn.add %x, %o : tensor<2x3x4xf64>, tensor<2x3x4xf64> -> tensor<2x3x4xf64>
  %y, %m, %r = nn.layer_norm %res, %s, %b axis 2 epsilon 1.0e-05 : tensor<2x3x4xf64>, tensor<4xf64>, tensor<4xf64> -> tensor<2x3x4xf64>, tensor<2x3x1xf64>, tensor<2x3x1xf64>
  %att = nn.matmul %y, %y {transpose_rhs = true} : tensor<2x3x4xf64>, tensor<2x3x4xf64> -> tensor<2x3x3xf64>
  %p = nn.softmax %att axis 2 : tensor<2x3x3xf64>
  %z = nn.matmul %p, %y : tensor<2x3x3xf64>, tensor<2x3x4xf64> -> tensor<2x3x4xf64>
  return %z : tensor<2x3x4xf64>
})"},
      // Attention: grouped KV heads (4 query heads on 2), key/value
      // prefixes, a trainable mask and causal masking of T = 3 queries
      // over S = 3 keys; then the plain form with T < S (queries are the
      // last T positions).
      {"attention_gqa_prefix_causal",
       {F(), F(), F(), F(), F(), F()},
       R"(func.func @f(%q: tensor<2x4x3x2xf64>, %k: tensor<2x2x3x2xf64>, %v: tensor<2x2x3x2xf64>, %m: tensor<2x1x1x3xf64>, %pk: tensor<2x2x2xf64>, %pv: tensor<2x2x2xf64>) -> tensor<2x4x3x2xf64> {
  %r = nn.attention %q, %k, %v mask %m prefix %pk, %pv {causal = true, scale = 0.7 : f64} : tensor<2x4x3x2xf64>, tensor<2x2x3x2xf64>, tensor<2x2x3x2xf64> mask tensor<2x1x1x3xf64> prefix tensor<2x2x2xf64>, tensor<2x2x2xf64>
  return %r : tensor<2x4x3x2xf64>
})"},
      {"attention_plain_causal",
       {F(), F(), F()},
       R"(func.func @f(%q: tensor<1x2x2x3xf64>, %k: tensor<1x2x4x3xf64>, %v: tensor<1x2x4x3xf64>) -> tensor<1x2x2x3xf64> {
  %r = nn.attention %q, %k, %v {causal = true, scale = 0.5 : f64} : tensor<1x2x2x3xf64>, tensor<1x2x4x3xf64>, tensor<1x2x4x3xf64>
  return %r : tensor<1x2x2x3xf64>
})"},

      // peft adapters: the frozen base weight gets no gradient; a trainable
      // weight (second cases) checks the weight-gradient path too.
      {"lora_in_out",
       {F(), Frozen(), F(), F()},
       R"(func.func @f(%x: tensor<2x3x4xf64>, %w: tensor<4x5xf64>, %a: tensor<2x4xf64>, %b: tensor<5x2xf64>) -> tensor<2x3x5xf64> {
  %r = peft.lora %x, %w, %a, %b {scale = 2.0 : f64, weight_layout = "in_out"} : tensor<2x3x4xf64>, tensor<4x5xf64>, tensor<2x4xf64>, tensor<5x2xf64> -> tensor<2x3x5xf64>
  return %r : tensor<2x3x5xf64>
})"},
      {"lora_out_in_adapter_input",
       {F(), F(), F(), F(), F()},
       R"(func.func @f(%x: tensor<3x4xf64>, %w: tensor<5x4xf64>, %a: tensor<2x4xf64>, %b: tensor<5x2xf64>, %xd: tensor<3x4xf64>) -> tensor<3x5xf64> {
  %r = peft.lora %x, %w, %a, %b adapter_input %xd {scale = 0.5 : f64, weight_layout = "out_in"} : tensor<3x4xf64>, tensor<5x4xf64>, tensor<2x4xf64>, tensor<5x2xf64> -> tensor<3x5xf64>
  return %r : tensor<3x5xf64>
})"},
      // DoRA's norm n = ‖W' + s·B·A‖ is detached, so its gradients are those
      // of @f_surrogate, where n is an input held at @norm's value for the
      // unperturbed params.
      {"dora_in_out",
       {F(), Frozen(), F(), F(), F(0.5, 1.5)},
       R"(func.func @f(%x: tensor<2x3x4xf64>, %w: tensor<4x5xf64>, %a: tensor<2x4xf64>, %b: tensor<5x2xf64>, %m: tensor<5xf64>) -> tensor<2x3x5xf64> {
  %r = peft.dora %x, %w, %a, %b, %m {scale = 2.0 : f64, weight_layout = "in_out"} : tensor<2x3x4xf64>, tensor<4x5xf64>, tensor<2x4xf64>, tensor<5x2xf64>, tensor<5xf64> -> tensor<2x3x5xf64>
  return %r : tensor<2x3x5xf64>
}
func.func @f_surrogate(%x: tensor<2x3x4xf64>, %w: tensor<4x5xf64>, %a: tensor<2x4xf64>, %b: tensor<5x2xf64>, %m: tensor<5xf64>, %n: tensor<5xf64>) -> tensor<2x3x5xf64> {
  %c = nn.div %m, %n : tensor<5xf64>, tensor<5xf64> -> tensor<5xf64>
  %base = nn.matmul %x, %w : tensor<2x3x4xf64>, tensor<4x5xf64> -> tensor<2x3x5xf64>
  %t = nn.matmul %x, %a {transpose_rhs = true} : tensor<2x3x4xf64>, tensor<2x4xf64> -> tensor<2x3x2xf64>
  %lr = nn.matmul %t, %b {transpose_rhs = true} : tensor<2x3x2xf64>, tensor<5x2xf64> -> tensor<2x3x5xf64>
  %s = nn.constant dense<2.0> : tensor<f64>
  %slr = nn.mul %lr, %s : tensor<2x3x5xf64>, tensor<f64> -> tensor<2x3x5xf64>
  %sum = nn.add %base, %slr : tensor<2x3x5xf64>, tensor<2x3x5xf64> -> tensor<2x3x5xf64>
  %r = nn.mul %sum, %c : tensor<2x3x5xf64>, tensor<5xf64> -> tensor<2x3x5xf64>
  return %r : tensor<2x3x5xf64>
}
func.func @norm(%x: tensor<2x3x4xf64>, %w: tensor<4x5xf64>, %a: tensor<2x4xf64>, %b: tensor<5x2xf64>, %m: tensor<5xf64>) -> tensor<5xf64> {
  %ba = nn.matmul %b, %a : tensor<5x2xf64>, tensor<2x4xf64> -> tensor<5x4xf64>
  %s = nn.constant dense<2.0> : tensor<f64>
  %sba = nn.mul %ba, %s : tensor<5x4xf64>, tensor<f64> -> tensor<5x4xf64>
  %wt = nn.transpose %w perm [1, 0] : tensor<4x5xf64> -> tensor<5x4xf64>
  %merged = nn.add %wt, %sba : tensor<5x4xf64>, tensor<5x4xf64> -> tensor<5x4xf64>
  %sq = nn.mul %merged, %merged : tensor<5x4xf64>, tensor<5x4xf64> -> tensor<5x4xf64>
  %ss = nn.reduce_sum %sq axes [1] : tensor<5x4xf64> -> tensor<5xf64>
  %n = nn.sqrt %ss : tensor<5xf64>
  return %n : tensor<5xf64>
})"},
      {"dora_out_in_adapter_input",
       {F(), F(), F(), F(), F(0.5, 1.5), F()},
       R"(func.func @f(%x: tensor<3x4xf64>, %w: tensor<5x4xf64>, %a: tensor<2x4xf64>, %b: tensor<5x2xf64>, %m: tensor<5xf64>, %xd: tensor<3x4xf64>) -> tensor<3x5xf64> {
  %r = peft.dora %x, %w, %a, %b, %m adapter_input %xd {scale = 0.5 : f64, weight_layout = "out_in"} : tensor<3x4xf64>, tensor<5x4xf64>, tensor<2x4xf64>, tensor<5x2xf64>, tensor<5xf64> -> tensor<3x5xf64>
  return %r : tensor<3x5xf64>
}
func.func @f_surrogate(%x: tensor<3x4xf64>, %w: tensor<5x4xf64>, %a: tensor<2x4xf64>, %b: tensor<5x2xf64>, %m: tensor<5xf64>, %xd: tensor<3x4xf64>, %n: tensor<5xf64>) -> tensor<3x5xf64> {
  %c = nn.div %m, %n : tensor<5xf64>, tensor<5xf64> -> tensor<5xf64>
  %one = nn.constant dense<1.0> : tensor<f64>
  %c1 = nn.sub %c, %one : tensor<5xf64>, tensor<f64> -> tensor<5xf64>
  %base = nn.matmul %x, %w {transpose_rhs = true} : tensor<3x4xf64>, tensor<5x4xf64> -> tensor<3x5xf64>
  %dbase = nn.matmul %xd, %w {transpose_rhs = true} : tensor<3x4xf64>, tensor<5x4xf64> -> tensor<3x5xf64>
  %corr = nn.mul %dbase, %c1 : tensor<3x5xf64>, tensor<5xf64> -> tensor<3x5xf64>
  %t = nn.matmul %xd, %a {transpose_rhs = true} : tensor<3x4xf64>, tensor<2x4xf64> -> tensor<3x2xf64>
  %lr = nn.matmul %t, %b {transpose_rhs = true} : tensor<3x2xf64>, tensor<5x2xf64> -> tensor<3x5xf64>
  %s = nn.constant dense<0.5> : tensor<f64>
  %slr = nn.mul %lr, %s : tensor<3x5xf64>, tensor<f64> -> tensor<3x5xf64>
  %clr = nn.mul %slr, %c : tensor<3x5xf64>, tensor<5xf64> -> tensor<3x5xf64>
  %y1 = nn.add %base, %corr : tensor<3x5xf64>, tensor<3x5xf64> -> tensor<3x5xf64>
  %r = nn.add %y1, %clr : tensor<3x5xf64>, tensor<3x5xf64> -> tensor<3x5xf64>
  return %r : tensor<3x5xf64>
}
func.func @norm(%x: tensor<3x4xf64>, %w: tensor<5x4xf64>, %a: tensor<2x4xf64>, %b: tensor<5x2xf64>, %m: tensor<5xf64>, %xd: tensor<3x4xf64>) -> tensor<5xf64> {
  %ba = nn.matmul %b, %a : tensor<5x2xf64>, tensor<2x4xf64> -> tensor<5x4xf64>
  %s = nn.constant dense<0.5> : tensor<f64>
  %sba = nn.mul %ba, %s : tensor<5x4xf64>, tensor<f64> -> tensor<5x4xf64>
  %merged = nn.add %w, %sba : tensor<5x4xf64>, tensor<5x4xf64> -> tensor<5x4xf64>
  %sq = nn.mul %merged, %merged : tensor<5x4xf64>, tensor<5x4xf64> -> tensor<5x4xf64>
  %ss = nn.reduce_sum %sq axes [1] : tensor<5x4xf64> -> tensor<5xf64>
  %n = nn.sqrt %ss : tensor<5xf64>
  return %n : tensor<5xf64>
})"},
      {"ia3",
       {F(), F()},
       R"(func.func @f(%h: tensor<2x3x4xf64>, %l: tensor<4xf64>) -> tensor<2x3x4xf64> {
  %r = peft.ia3 %h, %l : tensor<2x3x4xf64>, tensor<4xf64> -> tensor<2x3x4xf64>
  return %r : tensor<2x3x4xf64>
})"},
      // Dropout at a fixed training step (3) is linear in x; the rule
      // redraws the mask. The second case feeds LoRA's adapter input, as
      // peft-insert-adapters does with lora_dropout > 0.
      {"dropout",
       {F(), Ints({3})},
       R"(func.func @f(%x: tensor<4x8xf64>, %s: tensor<i64>) -> tensor<4x8xf64> {
  %r = peft.dropout %x, %s {p = 3.000000e-01 : f64, seed = 7 : i64, stream = 2 : i64} : tensor<4x8xf64>, tensor<i64>
  return %r : tensor<4x8xf64>
})"},
      {"lora_dropout",
       {F(), Frozen(), F(), F(), Ints({5})},
       R"(func.func @f(%x: tensor<3x4xf64>, %w: tensor<5x4xf64>, %a: tensor<2x4xf64>, %b: tensor<5x2xf64>, %s: tensor<i64>) -> tensor<3x5xf64> {
  %xd = peft.dropout %x, %s {p = 2.500000e-01 : f64, seed = 1 : i64, stream = 0 : i64} : tensor<3x4xf64>, tensor<i64>
  %r = peft.lora %x, %w, %a, %b adapter_input %xd {scale = 0.5 : f64, weight_layout = "out_in"} : tensor<3x4xf64>, tensor<5x4xf64>, tensor<2x4xf64>, tensor<5x2xf64> -> tensor<3x5xf64>
  return %r : tensor<3x5xf64>
})"},

      // ReFT. The Householder map's diagonal only picks column signs
      // (int(X[j, j]), no gradient), so it is held at ±1.5 away from the
      // truncation's jumps; the base is a frozen buffer.
      {"householder_orthogonal",
       {Values({-1.5, 0.3, -0.2, 0.4, 1.5, 0.1, -0.6, 0.25, -1.5, 0.5, -0.35,
                0.7, -0.15, 0.45, 0.2}),
        Frozen()},
       R"(func.func @f(%x: tensor<5x3xf64>, %base: tensor<5x5xf64>) -> tensor<5x3xf64> {
  %q = peft.householder_orthogonal %x, %base : tensor<5x3xf64>, tensor<5x5xf64> -> tensor<5x3xf64>
  return %q : tensor<5x3xf64>
})"},
      // Rows named twice (2, 2) change once; -1 names none.
      {"loreft",
       {F(), F(), F(), F(), Ints({1, -1, 3, 0, 2, 2})},
       R"(func.func @f(%h: tensor<2x4x3xf64>, %r: tensor<3x2xf64>, %w: tensor<2x3xf64>, %b: tensor<2xf64>, %p: tensor<2x3xi64>) -> tensor<2x4x3xf64> {
  %y = peft.loreft %h, %r, %w, %b, %p : tensor<2x4x3xf64>, tensor<3x2xf64>, tensor<2x3xf64>, tensor<2xf64>, tensor<2x3xi64> -> tensor<2x4x3xf64>
  return %y : tensor<2x4x3xf64>
})"},
      // LoReFT as pyreft builds it: R from the Householder map, positions
      // from prompt lengths (f1+l1, one pad token before each prompt).
      {"loreft_householder_positions",
       {F(), Values({-1.5, 0.3, 0.4, 1.5, -0.6, 0.25, 0.5, -0.35}), Frozen(),
        F(), F(), Ints({5, 2})},
       R"(func.func @f(%h: tensor<2x6x4xf64>, %x: tensor<4x2xf64>, %base: tensor<4x4xf64>, %w: tensor<2x4xf64>, %b: tensor<2xf64>, %len: tensor<2xi64>) -> tensor<2x6x4xf64> {
  %r = peft.householder_orthogonal %x, %base : tensor<4x2xf64>, tensor<4x4xf64> -> tensor<4x2xf64>
  %p = peft.reft_positions %len {first_n = 1 : i64, last_n = 1 : i64, group = "all"} : tensor<2xi64> -> tensor<2x2xi64>
  %y = peft.loreft %h, %r, %w, %b, %p : tensor<2x6x4xf64>, tensor<4x2xf64>, tensor<2x4xf64>, tensor<2xf64>, tensor<2x2xi64> -> tensor<2x6x4xf64>
  return %y : tensor<2x6x4xf64>
})"},
      // ReFT dropout as peft-insert-interventions builds it: pyreft drops
      // out the whole intervened row (h + delta), the other rows stay h.
      {"loreft_dropout",
       {F(), F(), F(), F(), Ints({1, -1, 3, 0, 2, 2}), Ints({4})},
       R"(func.func @f(%h: tensor<2x4x3xf64>, %r: tensor<3x2xf64>, %w: tensor<2x3xf64>, %b: tensor<2xf64>, %p: tensor<2x3xi64>, %s: tensor<i64>) -> tensor<2x4x3xf64> {
  %y = peft.loreft %h, %r, %w, %b, %p : tensor<2x4x3xf64>, tensor<3x2xf64>, tensor<2x3xf64>, tensor<2xf64>, tensor<2x3xi64> -> tensor<2x4x3xf64>
  %d = peft.dropout %y, %s {p = 3.000000e-01 : f64, seed = 3 : i64, stream = 1 : i64} : tensor<2x4x3xf64>, tensor<i64>
  %m = peft.intervention_mask %p : tensor<2x3xi64> -> tensor<2x4x1xf64>
  %c = nn.cast %m : tensor<2x4x1xf64> -> tensor<2x4x1xi1>
  %o = nn.where %c, %d, %y : tensor<2x4x1xi1>, tensor<2x4x3xf64>, tensor<2x4x3xf64> -> tensor<2x4x3xf64>
  return %o : tensor<2x4x3xf64>
})"},
      {"nodireft",
       {F(), F(), F(), F(), Ints({1, -1, 3, 0, 2, 2})},
       R"(func.func @f(%h: tensor<2x4x3xf64>, %w: tensor<2x3xf64>, %b: tensor<2xf64>, %p2: tensor<2x3xf64>, %p: tensor<2x3xi64>) -> tensor<2x4x3xf64> {
  %y = peft.nodireft %h, %w, %b, %p2, %p : tensor<2x4x3xf64>, tensor<2x3xf64>, tensor<2xf64>, tensor<2x3xf64>, tensor<2x3xi64> -> tensor<2x4x3xf64>
  return %y : tensor<2x4x3xf64>
})"},

      // Sparse fine-tuning: a delta on 5 entries of a frozen weight. With
      // `transposed` the indices count in the [5, 4] transpose of the
      // stored [4, 5] weight (an export's x·W of PyTorch's x·Wᵀ); the
      // product makes every entry's cotangent different. The trainable
      // weight checks the cotangent that passes through to it.
      {"sparse_delta",
       {F(), Frozen(), Ints({0, 3, 7, 12, 19}), F()},
       R"(func.func @f(%x: tensor<3x4xf64>, %w: tensor<4x5xf64>, %i: tensor<5xi64>, %v: tensor<5xf64>) -> tensor<3x5xf64> {
  %we = peft.sparse_delta %w, %i, %v : tensor<4x5xf64>, tensor<5xi64>, tensor<5xf64>
  %r = nn.matmul %x, %we : tensor<3x4xf64>, tensor<4x5xf64> -> tensor<3x5xf64>
  return %r : tensor<3x5xf64>
})"},
      {"sparse_delta_transposed",
       {F(), F(), Ints({1, 2, 9, 14, 18}), F()},
       R"(func.func @f(%x: tensor<3x4xf64>, %w: tensor<4x5xf64>, %i: tensor<5xi64>, %v: tensor<5xf64>) -> tensor<3x5xf64> {
  %we = peft.sparse_delta %w, %i, %v {transposed} : tensor<4x5xf64>, tensor<5xi64>, tensor<5xf64>
  %r = nn.matmul %x, %we : tensor<3x4xf64>, tensor<4x5xf64> -> tensor<3x5xf64>
  return %r : tensor<3x5xf64>
})"},

      // Losses: ignored labels, the causal shift, integer label types.
      {"cross_entropy",
       {F(-2, 2), Ints({1, -100, 4, 0, 2, 3})},
       R"(func.func @f(%z: tensor<2x3x5xf64>, %y: tensor<2x3xi64>) -> tensor<f64> {
  %r = peft.cross_entropy %z, %y : tensor<2x3x5xf64>, tensor<2x3xi64> -> tensor<f64>
  return %r : tensor<f64>
})"},
      {"cross_entropy_causal",
       {F(-2, 2), Ints({3, 1, -1, 4, 0, 2, 2, -1})},
       R"(func.func @f(%z: tensor<2x4x5xf64>, %y: tensor<2x4xi32>) -> tensor<f64> {
  %r = peft.cross_entropy %z, %y {ignore_index = -1 : i64, shift = "causal"} : tensor<2x4x5xf64>, tensor<2x4xi32> -> tensor<f64>
  return %r : tensor<f64>
})"},
      {"mse",
       {F(), F()},
       R"(func.func @f(%p: tensor<2x3xf64>, %t: tensor<2x3xf64>) -> tensor<f64> {
  %r = peft.mse %p, %t : tensor<2x3xf64> -> tensor<f64>
  return %r : tensor<f64>
})"},
  };
  // The fmod variant differs from "mod" only by its unit attribute.
  for (Case &c : cases)
    if (c.name == "mod_fmod") {
      size_t at = c.mlir.find("%a, %b :");
      c.mlir.replace(at, 8, "%a, %b fmod :");
    }
  return cases;
}

//===----------------------------------------------------------------------===//
// Harness
//===----------------------------------------------------------------------===//

std::unique_ptr<MLIRContext> makeContext() {
  DialectRegistry registry;
  registry.insert<func::FuncDialect, nn::NNDialect, pir::PeftDialect>();
  auto ctx = std::make_unique<MLIRContext>(registry);
  ctx->loadAllAvailableDialects();
  return ctx;
}

Tensor sample(const Input &in, RankedTensorType type, std::mt19937_64 &rng) {
  DType dtype = toDType(type.getElementType()).value_or(DType::F64);
  Tensor t(dtype, toShape(type));
  std::uniform_real_distribution<double> unit(0.0, 1.0);
  for (int64_t i = 0; i < t.numel(); ++i) {
    if (!in.values.empty()) {
      t.setDouble(i, in.values[i % in.values.size()]);
      continue;
    }
    switch (in.kind) {
    case Input::Trainable:
    case Input::Frozen: {
      double v = in.lo + (in.hi - in.lo) * unit(rng);
      if (in.awayFromZero && unit(rng) < 0.5)
        v = -v;
      t.setDouble(i, v);
      break;
    }
    case Input::Integer:
      t.setInt(i, (int64_t)in.lo + (int64_t)(unit(rng) * (in.hi - in.lo + 1)) %
                                       (int64_t)(in.hi - in.lo + 1));
      break;
    case Input::Fixed:
      break;
    }
  }
  return t;
}

/// Collects the error messages of a context, to show them in a failure.
struct Diagnostics {
  explicit Diagnostics(MLIRContext &ctx)
      : handler(&ctx, [this](Diagnostic &d) {
          text += d.str() + "\n";
          return success();
        }) {}
  std::string text;
  ScopedDiagnosticHandler handler;
};

/// A case's module, ready for peft-differentiate: a param per argument of
/// @f and @loss = Σ over results r of @f: reduce_sum(r * random weights).
/// A case whose op treats a value as a constant in backward (DoRA's norm)
/// also defines @f_surrogate (@f's arguments plus that value, as the last
/// one) and @norm (the value, from @f's arguments): then @surrogate_loss is
/// @f_surrogate with the same weights, reading the value from the frozen
/// param @held_norm, which @held_norm_value computes.
struct LossModule {
  OwningOpRef<ModuleOp> module;
  bool holdsNorm = false;
  /// The function whose finite differences the gradients must match.
  std::string fdFunction = "loss";
};

using ParamList = SmallVector<std::pair<std::string, RankedTensorType>>;

/// Adds function `name`: the body of `src`, its arguments read from
/// `params`. With `weights`, it returns the weighted sum of src's results
/// (weights drawn on first use, so functions built later share them);
/// otherwise src's results.
void cloneWithParams(OpBuilder &b, func::FuncOp src, StringRef name,
                     const ParamList &params, std::vector<Tensor> *weights,
                     std::mt19937_64 &rng) {
  MLIRContext *ctx = b.getContext();
  Location loc = src.getLoc();
  auto fn = b.create<func::FuncOp>(loc, name, b.getFunctionType({}, {}));
  OpBuilder::InsertionGuard guard(b);
  b.setInsertionPointToStart(fn.addEntryBlock());
  IRMapping map;
  for (auto [arg, param] : llvm::zip(src.getArguments(), params))
    map.map(arg,
            b.create<pir::UseOp>(loc, param.second,
                                 FlatSymbolRefAttr::get(ctx, param.first)));
  for (Operation &op : src.getBody().front().without_terminator())
    b.clone(op, map);
  SmallVector<Value> results;
  for (Value result : src.getBody().front().getTerminator()->getOperands())
    results.push_back(map.lookup(result));
  if (weights) {
    Value loss;
    std::uniform_real_distribution<double> weight(-1.0, 1.0);
    for (auto [k, v] : llvm::enumerate(results)) {
      auto type = cast<RankedTensorType>(v.getType());
      if (weights->size() <= k) {
        Tensor w(toDType(type.getElementType()).value_or(DType::F64),
                 toShape(type));
        for (int64_t i = 0; i < w.numel(); ++i)
          w.setDouble(i, weight(rng));
        weights->push_back(w);
      }
      Value wv = b.create<nn::ConstantOp>(loc, type,
                                          attrFromTensor((*weights)[k], type));
      SmallVector<int64_t> all(type.getRank());
      std::iota(all.begin(), all.end(), 0);
      Value term = b.create<nn::ReduceSumOp>(
          loc, b.create<nn::MulOp>(loc, v, wv).getResult(),
          b.getDenseI64ArrayAttr(all), UnitAttr());
      loss = loss ? b.create<nn::AddOp>(loc, loss, term).getResult() : term;
    }
    results = {loss};
  }
  b.create<func::ReturnOp>(loc, results);
  fn.setType(b.getFunctionType({}, ValueRange(results).getTypes()));
}

/// Returns a null module (with a test failure) when the case is malformed.
LossModule buildLossModule(MLIRContext &ctx, const Case &c,
                           std::mt19937_64 &rng) {
  LossModule out;
  OwningOpRef<ModuleOp> module = parseSourceString<ModuleOp>(c.mlir, &ctx);
  if (!module)
    return out;
  auto f = module->lookupSymbol<func::FuncOp>("f");
  if (!f || f.getNumArguments() != c.inputs.size()) {
    ADD_FAILURE() << c.name << ": needs @f with one argument per input";
    return out;
  }
  auto surrogate = module->lookupSymbol<func::FuncOp>("f_surrogate");
  auto norm = module->lookupSymbol<func::FuncOp>("norm");
  if (bool(surrogate) != bool(norm) ||
      (surrogate &&
       (surrogate.getNumArguments() != f.getNumArguments() + 1 ||
        norm.getNumArguments() != f.getNumArguments() ||
        norm.getNumResults() != 1 ||
        norm.getResultTypes()[0] != surrogate.getArgumentTypes().back()))) {
    ADD_FAILURE() << c.name
                  << ": @f_surrogate takes @f's arguments and the held value, "
                     "which @norm computes from @f's arguments";
    return out;
  }
  Location loc = f.getLoc();
  OpBuilder b(&ctx);
  b.setInsertionPointToStart(module->getBody());
  ParamList params;
  for (auto [i, arg] : llvm::enumerate(f.getArguments())) {
    auto type = cast<RankedTensorType>(arg.getType());
    std::string name = "arg" + std::to_string(i);
    auto param = b.create<pir::ParamOp>(loc, name, type);
    param.setValueAttr(attrFromTensor(sample(c.inputs[i], type, rng), type));
    param.setTrainable(c.inputs[i].kind == Input::Trainable);
    params.push_back({name, type});
  }
  ParamList surrogateParams(params);
  if (surrogate) {
    auto type = cast<RankedTensorType>(surrogate.getArgumentTypes().back());
    auto held = b.create<pir::ParamOp>(loc, "held_norm", type);
    held.setValueAttr(attrFromTensor(
        Tensor(toDType(type.getElementType()).value_or(DType::F64),
               toShape(type)),
        type));
    surrogateParams.push_back({"held_norm", type});
  }

  b.setInsertionPointToEnd(module->getBody());
  std::vector<Tensor> weights;
  cloneWithParams(b, f, "loss", params, &weights, rng);
  f.erase();
  if (surrogate) {
    cloneWithParams(b, surrogate, "surrogate_loss", surrogateParams, &weights,
                    rng);
    cloneWithParams(b, norm, "held_norm_value", params, nullptr, rng);
    surrogate.erase();
    norm.erase();
    out.holdsNorm = true;
    out.fdFunction = "surrogate_loss";
  }
  out.module = std::move(module);
  return out;
}

std::string print(ModuleOp module) {
  std::string text;
  llvm::raw_string_ostream os(text);
  module.print(os);
  return text;
}

double evalLoss(ref::Evaluator &evaluator, StringRef fn = "loss") {
  auto out = evaluator.run({}, fn);
  return succeeded(out) ? (*out)[0].getDouble(0) : std::nan("");
}

class GradientCheck : public ::testing::TestWithParam<Case> {};

TEST_P(GradientCheck, MatchesFiniteDifferences) {
  const Case &c = GetParam();
  auto ctx = makeContext();
  Diagnostics diags(*ctx);
  std::mt19937_64 rng(std::hash<std::string>()(c.name));
  LossModule built = buildLossModule(*ctx, c, rng);
  OwningOpRef<ModuleOp> &module = built.module;
  ASSERT_TRUE(module) << diags.text;
  ASSERT_TRUE(succeeded(verify(*module))) << diags.text;

  PassManager pm(ctx.get());
  pm.addPass(createDifferentiateTrainable());
  ASSERT_TRUE(succeeded(pm.run(*module))) << diags.text;

  ref::Evaluator evaluator(*module, {/*promoteToF64=*/true});
  auto step = evaluator.run({}, "train_step");
  ASSERT_TRUE(succeeded(step)) << diags.text;

  SmallVector<pir::ParamOp> trainable;
  for (auto p : module->getOps<pir::ParamOp>())
    if (p.getTrainable())
      trainable.push_back(p);
  ASSERT_EQ(step->size(), trainable.size() + 1);
  EXPECT_NEAR((*step)[0].getDouble(0), evalLoss(evaluator), 1e-12);

  if (built.holdsNorm) {
    // Hold the value at the unperturbed params; the surrogate must then
    // agree with the op there.
    auto held = evaluator.run({}, "held_norm_value");
    ASSERT_TRUE(succeeded(held)) << diags.text;
    auto param = module->lookupSymbol<pir::ParamOp>("held_norm");
    param.setValueAttr(attrFromTensor((*held)[0], param.getTensorType()));
    double op = evalLoss(evaluator),
           surrogate = evalLoss(evaluator, built.fdFunction);
    EXPECT_NEAR(surrogate, op, 1e-12 * std::max(1.0, std::abs(op)))
        << c.name << ": @f_surrogate does not compute @f";
  }

  const double h = 1e-6;
  for (auto [k, param] : llvm::enumerate(trainable)) {
    const Tensor &grad = (*step)[k + 1];
    RankedTensorType type = param.getTensorType();
    Tensor base = *tensorFromAttr(param.getValueAttr());
    ASSERT_EQ(grad.numel(), base.numel());
    Tensor probe(base.dtype(), base.shape()); // an unshared copy
    for (int64_t i = 0; i < base.numel(); ++i)
      probe.setDouble(i, base.getDouble(i));
    double diff2 = 0, ref2 = 0;
    for (int64_t i = 0; i < base.numel(); ++i) {
      double x = base.getDouble(i);
      probe.setDouble(i, x + h);
      param.setValueAttr(attrFromTensor(probe, type));
      double up = evalLoss(evaluator, built.fdFunction);
      probe.setDouble(i, x - h);
      param.setValueAttr(attrFromTensor(probe, type));
      double down = evalLoss(evaluator, built.fdFunction);
      probe.setDouble(i, x);
      double fd = (up - down) / (2 * h);
      diff2 += std::pow(grad.getDouble(i) - fd, 2);
      ref2 += fd * fd;
    }
    param.setValueAttr(attrFromTensor(base, type));
    double norm = std::sqrt(ref2), err = std::sqrt(diff2) / norm;
    EXPECT_GT(norm, 1e-6) << c.name << ": the gradient of @"
                          << param.getSymName().str()
                          << " vanishes; the case checks nothing";
    EXPECT_LT(err, 1e-6) << c.name << ": gradient of @"
                         << param.getSymName().str()
                         << " differs from finite differences in\n"
                         << print(*module);
  }
}

INSTANTIATE_TEST_SUITE_P(Rules, GradientCheck, ::testing::ValuesIn(allCases()),
                         [](const ::testing::TestParamInfo<Case> &info) {
                           return info.param.name;
                         });

/// Every differentiable op in the table has a finite-difference case, and
/// every nn op the dialect registers is in the table.
TEST(GradientTable, EveryRuleHasAFiniteDifferenceCase) {
  auto ctx = makeContext();
  Diagnostics diags(*ctx);
  llvm::StringSet<> covered;
  for (const Case &c : allCases()) {
    OwningOpRef<ModuleOp> module =
        parseSourceString<ModuleOp>(c.mlir, ctx.get());
    ASSERT_TRUE(module) << c.name << ": " << diags.text;
    module->walk(
        [&](Operation *op) { covered.insert(op->getName().getStringRef()); });
  }
  for (const autodiff::GradientEntry &entry : autodiff::gradientTable()) {
    EXPECT_TRUE(RegisteredOperationName::lookup(entry.opName, ctx.get()))
        << "the table names '" << entry.opName.str()
        << "', which is not a registered op";
    if (entry.kind == autodiff::GradientKind::Rule)
      EXPECT_TRUE(covered.contains(entry.opName))
          << "'" << entry.opName.str()
          << "' has a gradient rule but no finite-difference case";
  }
}

/// Every peft op that computes tensors in a loss (adapters, losses) is in
/// the table. The others are handled by the sweep itself (peft.use) or
/// come after it (the optimizer's ops and assigns).
TEST(GradientTable, NamesEveryPeftLossOp) {
  auto ctx = makeContext();
  const llvm::StringSet<> afterBackward = {
      "peft.param",      "peft.use", "peft.assign",
      "peft.adamw",      "peft.sgd", "peft.clip_grad_norm",
      "peft.lr_schedule"};
  for (RegisteredOperationName name : ctx->getRegisteredOperations())
    if (name.getDialectNamespace() == "peft" &&
        !afterBackward.contains(name.getStringRef()))
      EXPECT_TRUE(autodiff::lookupGradient(name.getStringRef()))
          << "'" << name.getStringRef().str()
          << "' has no entry in passes/autodiff/GradientRules.cpp";
}

TEST(GradientTable, NamesEveryNNOp) {
  auto ctx = makeContext();
  for (RegisteredOperationName name : ctx->getRegisteredOperations())
    if (name.getDialectNamespace() == "nn")
      EXPECT_TRUE(autodiff::lookupGradient(name.getStringRef()))
          << "'" << name.getStringRef().str()
          << "' is neither differentiable nor listed as having no gradient "
             "in passes/autodiff/GradientRules.cpp";
}

} // namespace
