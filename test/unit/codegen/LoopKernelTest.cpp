// Loop kernels JIT-compiled for the host against the reference evaluator:
// every kernel function below is evaluated by codegen/reference and by its
// compiled loop kernel, called through the KernelABI.h entry point on the
// two halves of [0, extent). Integers and booleans must match bit for bit,
// floats to rtol 1e-5 (f32) / 1e-11 (f64).
#include "codegen/cpu/KernelCompiler.h"
#include "codegen/cpu/LoopEmitter.h"
#include "codegen/reference/Evaluator.h"
#include "dialects/nn/NNOps.h"
#include "dialects/peft/PeftOps.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/Diagnostics.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/Parser/Parser.h"

#include "llvm/Support/FileSystem.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/Program.h"

#include <gtest/gtest.h>

#include <dlfcn.h>

#include <cmath>
#include <limits>
#include <random>
#include <sstream>

using namespace mlir;
using namespace peft;

namespace {

std::string mlirTypeName(DType d) {
  switch (d) {
  case DType::Bool:
    return "i1";
  case DType::I8:
    return "i8";
  case DType::U8:
    return "ui8";
  case DType::I32:
    return "i32";
  case DType::I64:
    return "i64";
  case DType::F16:
    return "f16";
  case DType::BF16:
    return "bf16";
  case DType::F32:
    return "f32";
  case DType::F64:
    return "f64";
  }
  return "?";
}

std::string ty(DType d, const Shape &shape) {
  std::string s = "tensor<";
  for (int64_t v : shape)
    s += std::to_string(v) + "x";
  return s + mlirTypeName(d) + ">";
}

/// One kernel function and the inputs it runs on.
struct Case {
  std::string name;
  std::string func; // the func.func text
  std::vector<Tensor> inputs;
};

class LoopKernelTest : public ::testing::Test {
protected:
  LoopKernelTest()
      : handler_(&context_, [this](Diagnostic &diag) {
          errors_ += diag.str() + "\n";
          return success();
        }) {
    context_.loadDialect<func::FuncDialect, nn::NNDialect>();
  }

  Tensor random(DType d, const Shape &shape, double lo, double hi) {
    Tensor t(d, shape);
    std::uniform_real_distribution<double> real(lo, hi);
    std::uniform_int_distribution<int64_t> integer((int64_t)lo, (int64_t)hi);
    for (int64_t i = 0; i < t.numel(); ++i) {
      if (isFloat(d))
        t.setDouble(i, real(rng_));
      else
        t.setInt(i, d == DType::Bool ? integer(rng_) & 1 : integer(rng_));
    }
    return t;
  }

  /// y = op(x) with `attrs` spliced before the type.
  void unary(const std::string &op, DType d, double lo, double hi,
             const std::string &attrs = "", DType out = DType::Bool,
             const Shape &shape = {3, 7}) {
    bool predicate = out != DType::Bool || op == "is_nan" || op == "is_inf";
    DType rd = predicate ? out : d;
    std::string name = op + "_" + mlirTypeName(d) + "_" + std::to_string(n_++);
    std::string t = ty(d, shape), rt = ty(rd, shape);
    std::string sig = predicate ? t + " -> " + rt : t;
    add({name,
         "func.func private @" + name + "(%x: " + t + ") -> " + rt +
             " attributes {kern.kernel} {\n  %y = nn." + op + " %x " + attrs +
             " : " + sig + "\n  return %y : " + rt + "\n}\n",
         {random(d, shape, lo, hi)}});
  }

  /// z = op(a, b) with broadcasting of `sa` and `sb`.
  void binary(const std::string &op, DType d, double lo, double hi,
              const std::string &attrs = "", bool boolResult = false,
              Shape sa = {4, 1, 5}, Shape sb = {3, 1}, Shape sr = {4, 3, 5},
              Tensor *a = nullptr, Tensor *b = nullptr) {
    // nn.mod's `fmod` follows the operands, bit_shift's direction precedes.
    bool suffix = attrs == "fmod";
    std::string name = op + "_" + mlirTypeName(d) + "_" + std::to_string(n_++);
    std::string rt = ty(boolResult ? DType::Bool : d, sr);
    add({name,
         "func.func private @" + name + "(%a: " + ty(d, sa) + ", %b: " +
             ty(d, sb) + ") -> " + rt + " attributes {kern.kernel} {\n" +
             "  %y = nn." + op + " " + (suffix ? "" : attrs + " ") + "%a, %b " +
             (suffix ? attrs : "") + " : " + ty(d, sa) + ", " + ty(d, sb) +
             " -> " + rt + "\n  return %y : " + rt + "\n}\n",
         {a ? *a : random(d, sa, lo, hi), b ? *b : random(d, sb, lo, hi)}});
  }

  void add(Case c) { cases_.push_back(std::move(c)); }

  /// Compiles every case in one module and compares each with the
  /// reference.
  void runAll() {
    std::string source;
    for (const Case &c : cases_)
      source += c.func;
    OwningOpRef<ModuleOp> module =
        parseSourceString<ModuleOp>(source, &context_);
    ASSERT_TRUE(module) << errors_ << source;
    ref::Evaluator evaluator(*module);
    std::vector<std::vector<Tensor>> expected;
    for (const Case &c : cases_) {
      auto r = evaluator.run(c.inputs, c.name);
      ASSERT_TRUE(succeeded(r)) << c.name << ": " << errors_;
      expected.push_back(std::move(*r));
    }
    auto loops = codegen::extractLoopKernels(*module);
    ASSERT_TRUE(succeeded(loops)) << errors_;
    auto jit = codegen::KernelJIT::create(**loops);
    ASSERT_TRUE(!!jit) << llvm::toString(jit.takeError()) << errors_;
    for (size_t ci = 0; ci < cases_.size(); ++ci) {
      const Case &c = cases_[ci];
      SCOPED_TRACE(c.name);
      auto fn = module->lookupSymbol<func::FuncOp>(c.name);
      auto extentAttr = fn->getAttrOfType<IntegerAttr>(codegen::kExtentAttr);
      ASSERT_TRUE(extentAttr);
      int64_t extent = extentAttr.getInt();
      peft_kernel_fn kernel = (*jit)->lookup(c.name);
      ASSERT_NE(kernel, nullptr);
      std::vector<Tensor> inputs = c.inputs, outputs;
      std::vector<void *> args;
      for (Tensor &t : inputs)
        args.push_back(t.mutableBytes());
      for (const Tensor &e : expected[ci])
        outputs.emplace_back(e.dtype(), e.shape());
      for (Tensor &t : outputs)
        args.push_back(t.mutableBytes());
      kernel(args.data(), 0, extent / 2);
      kernel(args.data(), extent / 2, extent);
      for (size_t r = 0; r < outputs.size(); ++r)
        expectClose(outputs[r], expected[ci][r],
                    c.name + " result " + std::to_string(r));
    }
  }

  static void expectClose(const Tensor &actual, const Tensor &expected,
                          const std::string &what) {
    ASSERT_EQ(actual.dtype(), expected.dtype()) << what;
    ASSERT_EQ(actual.shape(), expected.shape()) << what;
    int mismatches = 0;
    for (int64_t i = 0; i < actual.numel() && mismatches < 5; ++i) {
      if (!isFloat(actual.dtype())) {
        if (actual.getInt(i) != expected.getInt(i)) {
          ++mismatches;
          ADD_FAILURE() << what << " element " << i << ": " << actual.getInt(i)
                        << " != " << expected.getInt(i);
        }
        continue;
      }
      double a = actual.getDouble(i), e = expected.getDouble(i);
      if (std::isnan(e) ? std::isnan(a) : a == e)
        continue;
      double rtol = actual.dtype() == DType::F64   ? 1e-11
                    : actual.dtype() == DType::F32 ? 1e-5
                                                   : 1e-2;
      double atol = rtol * 0.1;
      if (!(std::fabs(a - e) <= rtol * std::fabs(e) + atol)) {
        ++mismatches;
        ADD_FAILURE() << what << " element " << i << ": " << a << " != " << e;
      }
    }
  }

  MLIRContext context_;
  ScopedDiagnosticHandler handler_;
  std::string errors_;
  std::mt19937_64 rng_{42};
  std::vector<Case> cases_;
  int n_ = 0;
};

TEST_F(LoopKernelTest, UnaryFloat) {
  for (DType d : {DType::F32, DType::F64}) {
    for (const char *op :
         {"neg", "abs", "sign", "relu", "exp", "tanh", "sigmoid", "erf",
          "softplus", "sin", "cos", "atan", "sinh", "cosh", "asinh", "floor",
          "ceil", "round", "reciprocal"})
      unary(op, d, -6, 6);
    unary("log", d, 0.01, 50);
    unary("sqrt", d, 0, 50);
    unary("tan", d, -1.4, 1.4);
    unary("asin", d, -1, 1);
    unary("acos", d, -1, 1);
    unary("atanh", d, -0.99, 0.99);
    unary("acosh", d, 1, 20);
    unary("leaky_relu", d, -3, 3, "{alpha = 0.1 : f64}");
    unary("elu", d, -3, 3, "{alpha = 0.7 : f64}");
    unary("gelu", d, -4, 4, "{approximate = \"none\"}");
    unary("gelu", d, -4, 4, "{approximate = \"tanh\"}");
  }
  // Round half to even on exact halves.
  Tensor halves(DType::F32, {8});
  for (int i = 0; i < 8; ++i)
    halves.setDouble(i, -3.5 + i);
  add({"round_halves",
       "func.func private @round_halves(%x: tensor<8xf32>) -> tensor<8xf32> "
       "attributes {kern.kernel} {\n  %y = nn.round %x : tensor<8xf32>\n"
       "  return %y : tensor<8xf32>\n}\n",
       {halves}});
  runAll();
}

TEST_F(LoopKernelTest, FloatPredicatesAndMinMaxWithNaN) {
  Tensor x(DType::F32, {6}), y(DType::F32, {6});
  double nan = std::numeric_limits<double>::quiet_NaN(), inf = INFINITY;
  std::vector<double> xs = {1, nan, -inf, inf, 0, 2},
                      ys = {nan, 3, 1, 2, -0.0, 1};
  for (int i = 0; i < 6; ++i) {
    x.setDouble(i, xs[i]);
    y.setDouble(i, ys[i]);
  }
  add({"isnan",
       "func.func private @isnan(%x: tensor<6xf32>) -> tensor<6xi1> "
       "attributes {kern.kernel} {\n  %y = nn.is_nan %x : tensor<6xf32> -> "
       "tensor<6xi1>\n  return %y : tensor<6xi1>\n}\n",
       {x}});
  add({"isinf",
       "func.func private @isinf(%x: tensor<6xf32>) -> tensor<6xi1> "
       "attributes {kern.kernel} {\n  %y = nn.is_inf %x {detect_negative = "
       "true, detect_positive = false} : tensor<6xf32> -> tensor<6xi1>\n"
       "  return %y : tensor<6xi1>\n}\n",
       {x}});
  for (const char *op : {"max", "min", "less", "equal", "greater_equal"}) {
    bool cmp = std::string(op) != "max" && std::string(op) != "min";
    binary(op, DType::F32, 0, 0, "", cmp, {6}, {6}, {6}, &x, &y);
  }
  runAll();
}

TEST_F(LoopKernelTest, BinaryFloat) {
  for (DType d : {DType::F32, DType::F64}) {
    for (const char *op : {"add", "sub", "mul", "div", "max", "min"})
      binary(op, d, -5, 5);
    binary("pow", d, 0.1, 3);
    binary("mod", d, -7, 7);
    binary("mod", d, -7, 7, "fmod");
    for (const char *op :
         {"equal", "less", "less_equal", "greater", "greater_equal"})
      binary(op, d, -2, 2, "", /*boolResult=*/true);
  }
  runAll();
}

TEST_F(LoopKernelTest, IntegerSemantics) {
  for (DType d : {DType::I8, DType::U8, DType::I32, DType::I64}) {
    double lo = d == DType::U8 ? 0 : -100, hi = d == DType::U8 ? 255 : 100;
    for (const char *op : {"add", "sub", "mul", "div", "max", "min"})
      binary(op, d, lo, hi);
    binary("mod", d, lo, hi);
    binary("mod", d, lo, hi, "fmod");
    // Small divisors hit 0 and -1 (division by zero gives 0).
    binary("div", d, d == DType::U8 ? 0 : -2, 2);
    binary("mod", d, d == DType::U8 ? 0 : -2, 2);
    binary("pow", d, d == DType::U8 ? 0 : -3, 5);
    binary("bit_shift", d, 0, 70, "\"left\"");
    binary("bit_shift", d, lo, hi, "\"right\"");
    for (const char *op : {"neg", "abs", "sign", "relu"})
      unary(op, d, lo, hi);
    for (const char *op :
         {"equal", "less", "less_equal", "greater", "greater_equal"})
      binary(op, d, lo / 10, hi / 10, "", /*boolResult=*/true);
  }
  // Overflow wraps at the type's width.
  binary("mul", DType::I32, 40000, 90000);
  binary("add", DType::I8, 60, 127);
  for (const char *op : {"and", "or", "xor"})
    binary(op, DType::Bool, 0, 1, "", true);
  unary("not", DType::Bool, 0, 1);
  runAll();
}

TEST_F(LoopKernelTest, CastsFollowTensorCastTo) {
  std::vector<DType> types = {DType::Bool, DType::I8,  DType::U8,
                              DType::I32,  DType::I64, DType::F16,
                              DType::BF16, DType::F32, DType::F64};
  Shape shape = {40};
  for (DType from : types)
    for (DType to : types) {
      if (from == to)
        continue;
      Tensor x(from, shape);
      // Values around every limit, halves, NaN and infinities.
      std::vector<double> vals = {0,
                                  -0.0,
                                  1,
                                  -1,
                                  0.5,
                                  -0.5,
                                  1.5,
                                  2.5,
                                  -2.7,
                                  127,
                                  128,
                                  -128,
                                  -129,
                                  255,
                                  256,
                                  300.7,
                                  -300,
                                  65504,
                                  1e10,
                                  -1e10,
                                  2147483647.0,
                                  2147483648.0,
                                  -2147483649.0,
                                  9.3e18,
                                  -9.3e18,
                                  3.14159,
                                  NAN,
                                  INFINITY,
                                  -INFINITY,
                                  1e-3,
                                  7,
                                  100,
                                  -100,
                                  1000.25,
                                  33,
                                  12,
                                  254.9,
                                  0.999,
                                  -7,
                                  42};
      for (int64_t i = 0; i < x.numel(); ++i) {
        if (isFloat(from))
          x.setDouble(i, vals[i]);
        else
          x.setInt(i, std::isfinite(vals[i]) && std::fabs(vals[i]) < 9e18
                          ? (int64_t)vals[i] * 7919
                          : (int64_t)i * 1234567890123ll);
      }
      std::string name = "cast_" + mlirTypeName(from) + "_" + mlirTypeName(to);
      add({name,
           "func.func private @" + name + "(%x: " + ty(from, shape) + ") -> " +
               ty(to, shape) + " attributes {kern.kernel} {\n  %y = nn.cast " +
               "%x : " + ty(from, shape) + " -> " + ty(to, shape) +
               "\n  return %y : " + ty(to, shape) + "\n}\n",
           {x}});
    }
  runAll();
}

TEST_F(LoopKernelTest, WhereAndFusedChainWithBroadcastAndSeveralResults) {
  Tensor c = random(DType::Bool, {4, 1}, 0, 1);
  add({"where",
       "func.func private @where(%c: tensor<4x1xi1>, %x: tensor<3xi64>, %y: "
       "tensor<4x3xi64>) -> tensor<4x3xi64> attributes {kern.kernel} {\n"
       "  %r = nn.where %c, %x, %y : tensor<4x1xi1>, tensor<3xi64>, "
       "tensor<4x3xi64> -> tensor<4x3xi64>\n  return %r : tensor<4x3xi64>\n}\n",
       {c, random(DType::I64, {3}, -9, 9), random(DType::I64, {4, 3}, -9, 9)}});
  add({"fused",
       R"(func.func private @fused(%x: tensor<4x8xf32>, %b: tensor<8xf32>,
    %s: tensor<f32>, %i: tensor<4x1xi32>)
    -> (tensor<4x8xf32>, tensor<4x8xi1>, tensor<4x8xf32>) attributes {kern.kernel} {
  %half = nn.constant dense<0.5> : tensor<f32>
  %d = nn.constant dense<[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0]> : tensor<8xf32>
  %0 = nn.add %x, %b : tensor<4x8xf32>, tensor<8xf32> -> tensor<4x8xf32>
  %1 = nn.mul %0, %half : tensor<4x8xf32>, tensor<f32> -> tensor<4x8xf32>
  %2 = nn.tanh %1 : tensor<4x8xf32>
  %f = nn.cast %i : tensor<4x1xi32> -> tensor<4x1xf32>
  %3 = nn.sub %2, %f : tensor<4x8xf32>, tensor<4x1xf32> -> tensor<4x8xf32>
  %4 = nn.greater %3, %s : tensor<4x8xf32>, tensor<f32> -> tensor<4x8xi1>
  %5 = nn.where %4, %3, %d : tensor<4x8xi1>, tensor<4x8xf32>, tensor<8xf32> -> tensor<4x8xf32>
  return %5, %4, %0 : tensor<4x8xf32>, tensor<4x8xi1>, tensor<4x8xf32>
}
)",
       {random(DType::F32, {4, 8}, -2, 2), random(DType::F32, {8}, -1, 1),
        random(DType::F32, {}, -1, 1), random(DType::I32, {4, 1}, -1, 1)}});
  add({"constant",
       "func.func private @constant() -> tensor<2x3xi32> attributes "
       "{kern.kernel} {\n  %c = nn.constant dense<[[1, -2, 3], [4, 5, "
       "-6]]> : tensor<2x3xi32>\n  return %c : tensor<2x3xi32>\n}\n",
       {}});
  add({"passthrough",
       "func.func private @passthrough(%x: tensor<5xui8>) -> (tensor<5xui8>, "
       "tensor<5xui8>) attributes {kern.kernel} {\n  %y = nn.abs %x : "
       "tensor<5xui8>\n  return %y, %x : tensor<5xui8>, tensor<5xui8>\n}\n",
       {random(DType::U8, {5}, 0, 255)}});
  runAll();
}

TEST_F(LoopKernelTest, Reductions) {
  struct R {
    Shape in;
    std::string axes;
    bool keep;
    Shape out;
  };
  std::vector<R> shapes = {{{3, 4, 5}, "[1]", true, {3, 1, 5}},
                           {{3, 4, 5}, "[0, 2]", false, {4}},
                           {{3, 4, 5}, "[1, 2]", false, {3}},
                           {{3, 4, 5}, "[0, 1, 2]", false, {}},
                           {{6, 7}, "[]", false, {6, 7}}};
  for (DType d : {DType::F32, DType::F64, DType::I32, DType::U8})
    for (const char *op : {"reduce_sum", "reduce_mean", "reduce_prod",
                           "reduce_max", "reduce_min"})
      for (const R &r : shapes) {
        std::string name = std::string(op) + "_" + mlirTypeName(d) + "_" +
                           std::to_string(n_++);
        double lo = d == DType::U8 ? 0 : -3, hi = d == DType::U8 ? 6 : 3;
        if (std::string(op) == "reduce_prod" && isFloat(d))
          lo = 0.5, hi = 1.5;
        add({name,
             "func.func private @" + name + "(%x: " + ty(d, r.in) + ") -> " +
                 ty(d, r.out) + " attributes {kern.kernel} {\n  %y = nn." + op +
                 " %x axes " + r.axes + (r.keep ? " keepdims" : "") + " : " +
                 ty(d, r.in) + " -> " + ty(d, r.out) +
                 "\n  return %y : " + ty(d, r.out) + "\n}\n",
             {random(d, r.in, lo, hi)}});
      }
  for (DType d : {DType::F32, DType::I64})
    for (const char *op : {"argmax", "argmin"})
      for (int axis = 0; axis < 3; ++axis)
        for (const char *flags : {"", " keepdims select_last_index"}) {
          Shape in = {3, 4, 5}, out = in;
          bool keep = flags[0] != 0;
          if (keep)
            out[axis] = 1;
          else
            out.erase(out.begin() + axis);
          std::string name = std::string(op) + "_" + std::to_string(n_++);
          // Few distinct values, so ties occur.
          add({name,
               "func.func private @" + name + "(%x: " + ty(d, in) + ") -> " +
                   ty(DType::I64, out) +
                   " attributes {kern.kernel} {\n  %y = nn." + op +
                   " %x axis " + std::to_string(axis) + flags + " : " +
                   ty(d, in) + " -> " + ty(DType::I64, out) +
                   "\n  return %y : " + ty(DType::I64, out) + "\n}\n",
               {random(d, in, -2, 2)}});
        }
  // NaN in max/argmax.
  Tensor withNan = random(DType::F32, {2, 5}, -1, 1);
  withNan.setDouble(3, NAN);
  add({"max_nan",
       "func.func private @max_nan(%x: tensor<2x5xf32>) -> tensor<2xf32> "
       "attributes {kern.kernel} {\n  %y = nn.reduce_max %x axes [1] : "
       "tensor<2x5xf32> -> tensor<2xf32>\n  return %y : tensor<2xf32>\n}\n",
       {withNan}});
  add({"argmax_nan",
       "func.func private @argmax_nan(%x: tensor<2x5xf32>) -> tensor<2xi64> "
       "attributes {kern.kernel} {\n  %y = nn.argmax %x axis 1 : "
       "tensor<2x5xf32> -> tensor<2xi64>\n  return %y : tensor<2xi64>\n}\n",
       {withNan}});
  runAll();
}

TEST_F(LoopKernelTest, SoftmaxAndLayerNorm) {
  for (DType d : {DType::F32, DType::F64})
    for (const char *op : {"softmax", "log_softmax"})
      for (int axis = 0; axis < 3; ++axis) {
        Shape s = {3, 4, 5};
        std::string name = std::string(op) + "_" + std::to_string(n_++);
        add({name,
             "func.func private @" + name + "(%x: " + ty(d, s) + ") -> " +
                 ty(d, s) + " attributes {kern.kernel} {\n  %y = nn." + op +
                 " %x axis " + std::to_string(axis) + " : " + ty(d, s) +
                 "\n  return %y : " + ty(d, s) + "\n}\n",
             {random(d, s, -10, 10)}});
      }
  add({"layer_norm",
       R"(func.func private @layer_norm(%x: tensor<3x4x6xf32>, %g: tensor<6xf32>,
    %b: tensor<4x1xf32>) -> (tensor<3x4x6xf32>, tensor<3x1x1xf32>, tensor<3x1x1xf32>)
    attributes {kern.kernel} {
  %y, %m, %r = nn.layer_norm %x, %g, %b axis 1 epsilon 1.0e-5 : tensor<3x4x6xf32>, tensor<6xf32>, tensor<4x1xf32> -> tensor<3x4x6xf32>, tensor<3x1x1xf32>, tensor<3x1x1xf32>
  return %y, %m, %r : tensor<3x4x6xf32>, tensor<3x1x1xf32>, tensor<3x1x1xf32>
}
)",
       {random(DType::F32, {3, 4, 6}, 5, 9), random(DType::F32, {6}, -2, 2),
        random(DType::F32, {4, 1}, -1, 1)}});
  add({"layer_norm_nobias",
       R"(func.func private @layer_norm_nobias(%x: tensor<5x8xf64>, %g: tensor<8xf64>)
    -> (tensor<5x8xf64>, tensor<5x1xf64>, tensor<5x1xf64>) attributes {kern.kernel} {
  %y, %m, %r = nn.layer_norm %x, %g axis 1 epsilon 1.0e-3 : tensor<5x8xf64>, tensor<8xf64> -> tensor<5x8xf64>, tensor<5x1xf64>, tensor<5x1xf64>
  return %y, %m, %r : tensor<5x8xf64>, tensor<5x1xf64>, tensor<5x1xf64>
}
)",
       {random(DType::F64, {5, 8}, -3, 3), random(DType::F64, {8}, -2, 2)}});
  runAll();
}

// Sparse fine-tuning's ops: the delta's binary search (k of 1, 5 and every
// position, first and last positions included) and the gather, in both
// layouts of the indices.
TEST_F(LoopKernelTest, SparseDeltaAndGather) {
  context_.loadDialect<pir::PeftDialect>();
  std::vector<std::vector<int64_t>> indexSets = {{0, 3, 7, 12, 19}, {19}, {}};
  for (int64_t p = 0; p < 20; ++p)
    indexSets.back().push_back(p);
  for (DType d : {DType::F32, DType::F64})
    for (bool transposed : {false, true})
      for (const std::vector<int64_t> &set : indexSets) {
        int64_t k = set.size();
        Tensor indices(DType::I64, {k});
        for (int64_t j = 0; j < k; ++j)
          indices.setInt(j, set[j]);
        std::string attrs = transposed ? "{transposed} " : "";
        std::string w = ty(d, {4, 5}), it = ty(DType::I64, {k}),
                    vt = ty(d, {k});
        std::string name = "sparse_delta_" + std::to_string(n_++);
        add({name,
             "func.func private @" + name + "(%w: " + w + ", %i: " + it +
                 ", %v: " + vt + ") -> " + w +
                 " attributes {kern.kernel} {\n  %y = peft.sparse_delta %w, "
                 "%i, %v " +
                 attrs + ": " + w + ", " + it + ", " + vt +
                 "\n  return %y : " + w + "\n}\n",
             {random(d, {4, 5}, -2, 2), indices, random(d, {k}, -1, 1)}});
        name = "sparse_gather_" + std::to_string(n_++);
        add({name,
             "func.func private @" + name + "(%x: " + w + ", %i: " + it +
                 ") -> " + vt +
                 " attributes {kern.kernel} {\n  %y = peft.sparse_gather %x, "
                 "%i " +
                 attrs + ": " + w + ", " + it + " -> " + vt +
                 "\n  return %y : " + vt + "\n}\n",
             {random(d, {4, 5}, -2, 2), indices}});
      }
  runAll();
}

TEST_F(LoopKernelTest, MatMulFallback) {
  struct M {
    Shape a, b, out;
    std::string attrs;
  };
  std::vector<M> shapes = {
      {{3, 4}, {4, 5}, {3, 5}, ""},
      {{2, 1, 3, 4}, {3, 4, 2}, {2, 3, 3, 2}, ""},
      {{4}, {4, 3}, {3}, ""},
      {{2, 3, 4}, {4}, {2, 3}, ""},
      {{4, 3}, {5, 4}, {3, 5}, "{transpose_lhs = true, transpose_rhs = true}"},
      {{2, 3, 4}, {2, 5, 4}, {2, 3, 5}, "{transpose_rhs = true}"}};
  for (DType d : {DType::F32, DType::I32, DType::I64})
    for (const M &m : shapes) {
      std::string name = "matmul_" + std::to_string(n_++);
      add({name,
           "func.func private @" + name + "(%a: " + ty(d, m.a) +
               ", %b: " + ty(d, m.b) + ") -> " + ty(d, m.out) +
               " attributes {kern.kernel} {\n  %y = nn.matmul %a, %b " +
               m.attrs + " : " + ty(d, m.a) + ", " + ty(d, m.b) + " -> " +
               ty(d, m.out) + "\n  return %y : " + ty(d, m.out) + "\n}\n",
           {random(d, m.a, -9, 9), random(d, m.b, -9, 9)}});
    }
  runAll();
}

// The object file peftc links into trainers: linked here into a shared
// object with the system C compiler and loaded, its globals must hold the
// program bytes and the kernel table, and its kernels must run.
TEST_F(LoopKernelTest, ObjectFileDefinesProgramGlobalsAndKernels) {
  OwningOpRef<ModuleOp> module = parseSourceString<ModuleOp>(
      R"(func.func private @scale(%x: tensor<6xf32>, %s: tensor<f32>) -> tensor<6xf32> attributes {kern.kernel} {
  %y = nn.mul %x, %s : tensor<6xf32>, tensor<f32> -> tensor<6xf32>
  return %y : tensor<6xf32>
}
func.func private @rowsum(%x: tensor<2x3xi32>) -> tensor<2xi32> attributes {kern.kernel} {
  %y = nn.reduce_sum %x axes [1] : tensor<2x3xi32> -> tensor<2xi32>
  return %y : tensor<2xi32>
})",
      &context_);
  ASSERT_TRUE(module) << errors_;
  auto loops = codegen::extractLoopKernels(*module);
  ASSERT_TRUE(succeeded(loops)) << errors_;

  llvm::SmallString<128> dir;
  ASSERT_FALSE(llvm::sys::fs::createUniqueDirectory("peftc-object", dir));
  std::string obj = (dir + "/kernels.o").str(),
              so = (dir + "/kernels.so").str();
  std::vector<uint8_t> program = {0x0a, 0x03, 'a', 'b', 'c', 0x00, 0xff};
  {
    std::error_code ec;
    llvm::raw_fd_ostream out(obj, ec);
    ASSERT_FALSE(ec) << ec.message();
    llvm::Error e =
        codegen::emitObjectFile(**loops, program, {"rowsum", "scale"}, out);
    ASSERT_FALSE(!!e) << llvm::toString(std::move(e)) << errors_;
  }
  auto cc = llvm::sys::findProgramByName("cc");
  ASSERT_TRUE(!!cc) << "no C compiler driver";
  std::string msg;
  int rc =
      llvm::sys::ExecuteAndWait(*cc, {*cc, "-shared", "-o", so, obj, "-lm"},
                                std::nullopt, {}, 0, 0, &msg);
  ASSERT_EQ(rc, 0) << msg;

  void *lib = dlopen(so.c_str(), RTLD_NOW | RTLD_LOCAL);
  ASSERT_NE(lib, nullptr) << dlerror();
  auto *data = (const uint8_t *)dlsym(lib, PEFTC_PROGRAM_DATA_SYMBOL);
  auto *size = (const uint64_t *)dlsym(lib, PEFTC_PROGRAM_SIZE_SYMBOL);
  auto *table =
      (const peft_kernel_entry *)dlsym(lib, PEFTC_KERNEL_TABLE_SYMBOL);
  auto *count = (const uint64_t *)dlsym(lib, PEFTC_KERNEL_COUNT_SYMBOL);
  ASSERT_TRUE(data && size && table && count);
  EXPECT_EQ(std::vector<uint8_t>(data, data + *size), program);
  ASSERT_EQ(*count, 2u);
  EXPECT_STREQ(table[0].name, "rowsum");
  EXPECT_STREQ(table[1].name, "scale");

  auto extentOf = [&](StringRef name) {
    return module->lookupSymbol<func::FuncOp>(name)
        ->getAttrOfType<IntegerAttr>(codegen::kExtentAttr)
        .getInt();
  };
  ASSERT_EQ(extentOf("rowsum"), 2);
  int32_t x[6] = {1, 2, 3, -4, 5, 100}, sums[2] = {0, 0};
  void *args[2] = {x, sums};
  table[0].fn(args, 0, 1);
  table[0].fn(args, 1, 2);
  EXPECT_EQ(sums[0], 6);
  EXPECT_EQ(sums[1], 101);
  float xs[6] = {1, -2, 0.5f, 4, 8, -16}, s = 0.25f, ys[6];
  void *args2[3] = {xs, &s, ys};
  table[1].fn(args2, 0, extentOf("scale"));
  for (int i = 0; i < 6; ++i)
    EXPECT_EQ(ys[i], xs[i] * 0.25f);
  dlclose(lib);
  llvm::sys::fs::remove_directories(dir);
}

TEST_F(LoopKernelTest, KernelMixingTwoLoopOpsIsAnError) {
  OwningOpRef<ModuleOp> module = parseSourceString<ModuleOp>(
      R"(func.func private @k(%x: tensor<3x4xf32>) -> tensor<3xf32> attributes {kern.kernel} {
  %s = nn.softmax %x axis 1 : tensor<3x4xf32>
  %r = nn.reduce_sum %s axes [1] : tensor<3x4xf32> -> tensor<3xf32>
  return %r : tensor<3xf32>
})",
      &context_);
  ASSERT_TRUE(module) << errors_;
  EXPECT_TRUE(failed(codegen::emitLoopKernels(*module)));
  EXPECT_NE(errors_.find("mixes non-elementwise ops"), std::string::npos)
      << errors_;
}

} // namespace
