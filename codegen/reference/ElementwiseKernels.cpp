//===- ElementwiseKernels.cpp - unary, binary, comparison, where, cast ----===//
//
// Floats are computed in double and rounded to the result type; integers in
// int64 and wrapped to the result width on store (as numpy does). Integer
// arithmetic goes through uint64 so overflow wraps instead of being UB.
//
//===----------------------------------------------------------------------===//
#include "codegen/reference/Kernels.h"

#include "dialects/nn/NNOps.h"

#include <cmath>
#include <limits>

using namespace mlir;

namespace peft::ref {
namespace {

using FloatFn = std::function<double(double)>;
using IntFn = std::function<int64_t(int64_t)>;
using FloatFn2 = std::function<double(double, double)>;
using IntFn2 = std::function<int64_t(int64_t, int64_t)>;

Kernel unary(FloatFn f, IntFn fi = nullptr) {
  return singleResult([f, fi](Operation *op, ArrayRef<Tensor> in,
                              const EvalContext &ctx) -> FailureOr<Tensor> {
    DType out = ctx.storageType(op->getResult(0));
    if (!isFloat(in[0].dtype())) {
      if (!fi)
        return op->emitError(
            "reference evaluator: integer operands are not supported");
      return mapUnaryInt(in[0], out, fi);
    }
    return mapUnaryFloat(in[0], out, f);
  });
}

/// A unary float kernel whose function depends on the op's attributes.
template <typename OpTy>
Kernel unaryWithAttrs(std::function<FloatFn(OpTy)> make) {
  return singleResult([make](Operation *op, ArrayRef<Tensor> in,
                             const EvalContext &ctx) -> FailureOr<Tensor> {
    return mapUnaryFloat(in[0], ctx.storageType(op->getResult(0)),
                         make(cast<OpTy>(op)));
  });
}

Kernel binary(FloatFn2 f, IntFn2 fi) {
  return singleResult([f, fi](Operation *op, ArrayRef<Tensor> in,
                              const EvalContext &ctx) -> FailureOr<Tensor> {
    DType out = ctx.storageType(op->getResult(0));
    Shape shape = resultShape(op);
    if (!isFloat(in[0].dtype())) {
      if (!fi)
        return op->emitError(
            "reference evaluator: integer operands are not supported");
      return mapBinaryInt(in[0], in[1], shape, out, fi);
    }
    return mapBinaryFloat(in[0], in[1], shape, out, f);
  });
}

/// Comparisons: floats compare as doubles, integers as int64 (exact).
template <typename Cmp> Kernel compare(Cmp cmp) {
  return binary([cmp](double a, double b) { return cmp(a, b) ? 1.0 : 0.0; },
                [cmp](int64_t a, int64_t b) -> int64_t { return cmp(a, b); });
}

int64_t wrapAdd(int64_t a, int64_t b) {
  return (int64_t)((uint64_t)a + (uint64_t)b);
}
int64_t wrapSub(int64_t a, int64_t b) {
  return (int64_t)((uint64_t)a - (uint64_t)b);
}
int64_t wrapMul(int64_t a, int64_t b) {
  return (int64_t)((uint64_t)a * (uint64_t)b);
}

/// C division: truncates toward zero. Division by zero gives 0 rather than
/// trapping (ONNX leaves it undefined).
int64_t truncDiv(int64_t a, int64_t b) {
  if (b == 0)
    return 0;
  if (b == -1)
    return wrapSub(0, a); // INT64_MIN / -1 overflows
  return a / b;
}

/// C remainder: the sign of the dividend.
int64_t truncRem(int64_t a, int64_t b) {
  if (b == 0 || b == -1)
    return 0;
  return a % b;
}

/// Python remainder: the sign of the divisor.
int64_t floorRem(int64_t a, int64_t b) {
  int64_t r = truncRem(a, b);
  if (r != 0 && ((r < 0) != (b < 0)))
    r += b;
  return r;
}

double floorRemF(double a, double b) {
  double r = std::fmod(a, b);
  if (r != 0 && ((r < 0) != (b < 0)))
    r += b;
  return r;
}

/// Exact integer power by squaring (wrapping on overflow); negative
/// exponents give the truncated 1 / a^-b.
int64_t intPow(int64_t a, int64_t b) {
  if (b < 0) {
    if (a == 1)
      return 1;
    if (a == -1)
      return (b & 1) ? -1 : 1;
    return 0;
  }
  int64_t result = 1;
  while (b) {
    if (b & 1)
      result = wrapMul(result, a);
    a = wrapMul(a, a);
    b >>= 1;
  }
  return result;
}

double sigmoid(double x) {
  // Split by sign so exp never overflows.
  if (x >= 0)
    return 1.0 / (1.0 + std::exp(-x));
  double e = std::exp(x);
  return e / (1.0 + e);
}

double softplus(double x) {
  // log(1 + e^x) without overflow for large x.
  return x > 0 ? x + std::log1p(std::exp(-x)) : std::log1p(std::exp(x));
}

double nanMax(double a, double b) {
  if (std::isnan(a) || std::isnan(b))
    return std::numeric_limits<double>::quiet_NaN();
  return a > b ? a : b;
}

double nanMin(double a, double b) {
  if (std::isnan(a) || std::isnan(b))
    return std::numeric_limits<double>::quiet_NaN();
  return a < b ? a : b;
}

FailureOr<Tensor> where(Operation *op, ArrayRef<Tensor> in,
                        const EvalContext &ctx) {
  Shape shape = resultShape(op);
  Tensor out(ctx.storageType(op->getResult(0)), shape);
  BroadcastMap mc(in[0].shape(), shape), mx(in[1].shape(), shape),
      my(in[2].shape(), shape);
  bool fl = isFloat(out.dtype());
  for (int64_t i = 0, n = out.numel(); i < n; ++i) {
    const Tensor &src = in[0].getInt(mc(i)) ? in[1] : in[2];
    int64_t j = &src == &in[1] ? mx(i) : my(i);
    if (fl)
      out.setDouble(i, src.getDouble(j));
    else
      out.setInt(i, src.getInt(j));
  }
  return out;
}

FailureOr<Tensor> bitShift(Operation *op, ArrayRef<Tensor> in,
                           const EvalContext &ctx) {
  bool left = cast<nn::BitShiftOp>(op).getDirection() == "left";
  return mapBinaryInt(in[0], in[1], resultShape(op),
                      ctx.storageType(op->getResult(0)),
                      [left](int64_t a, int64_t b) -> int64_t {
                        // Shifting by the width or more clears every bit.
                        if (b < 0 || b >= 64)
                          return 0;
                        uint64_t u = (uint64_t)a;
                        return (int64_t)(left ? u << b : u >> b);
                      });
}

} // namespace

void registerElementwiseKernels(KernelRegistry &r) {
  // Unary, integers too.
  r.add("nn.neg", unary([](double x) { return -x; },
                        [](int64_t x) { return wrapSub(0, x); }));
  r.add("nn.abs", unary([](double x) { return std::fabs(x); },
                        [](int64_t x) { return x < 0 ? wrapSub(0, x) : x; }));
  r.add("nn.sign",
        unary([](double x) { return x > 0   ? 1.0
                                    : x < 0 ? -1.0
                                            : x; },
              [](int64_t x) -> int64_t { return (x > 0) - (x < 0); }));
  r.add("nn.relu", unary([](double x) { return x < 0 ? 0.0 : x; },
                         [](int64_t x) { return x < 0 ? 0 : x; }));
  r.add("nn.not", unary(nullptr, [](int64_t x) -> int64_t { return !x; }));

  // Unary float math.
  auto math = [&](StringRef name, double (*f)(double)) {
    r.add(name, unary([f](double x) { return f(x); }));
  };
  math("nn.exp", [](double x) { return std::exp(x); });
  math("nn.log", [](double x) { return std::log(x); });
  math("nn.sqrt", [](double x) { return std::sqrt(x); });
  math("nn.reciprocal", [](double x) { return 1.0 / x; });
  math("nn.tanh", [](double x) { return std::tanh(x); });
  math("nn.sigmoid", sigmoid);
  math("nn.erf", [](double x) { return std::erf(x); });
  math("nn.softplus", softplus);
  math("nn.sin", [](double x) { return std::sin(x); });
  math("nn.cos", [](double x) { return std::cos(x); });
  math("nn.tan", [](double x) { return std::tan(x); });
  math("nn.asin", [](double x) { return std::asin(x); });
  math("nn.acos", [](double x) { return std::acos(x); });
  math("nn.atan", [](double x) { return std::atan(x); });
  math("nn.sinh", [](double x) { return std::sinh(x); });
  math("nn.cosh", [](double x) { return std::cosh(x); });
  math("nn.asinh", [](double x) { return std::asinh(x); });
  math("nn.acosh", [](double x) { return std::acosh(x); });
  math("nn.atanh", [](double x) { return std::atanh(x); });
  math("nn.floor", [](double x) { return std::floor(x); });
  math("nn.ceil", [](double x) { return std::ceil(x); });
  // nearbyint rounds half to even under the default rounding mode.
  math("nn.round", [](double x) { return std::nearbyint(x); });

  // Activations with attributes.
  r.add("nn.leaky_relu",
        unaryWithAttrs<nn::LeakyReluOp>([](nn::LeakyReluOp op) {
          double alpha = op.getAlpha().convertToDouble();
          return FloatFn([alpha](double x) { return x >= 0 ? x : alpha * x; });
        }));
  r.add("nn.elu", unaryWithAttrs<nn::EluOp>([](nn::EluOp op) {
          double alpha = op.getAlpha().convertToDouble();
          return FloatFn(
              [alpha](double x) { return x >= 0 ? x : alpha * std::expm1(x); });
        }));
  r.add("nn.gelu", unaryWithAttrs<nn::GeluOp>([](nn::GeluOp op) {
          if (op.getApproximate() == "tanh")
            return FloatFn([](double x) {
              const double k = std::sqrt(2.0 / M_PI);
              return 0.5 * x *
                     (1.0 + std::tanh(k * (x + 0.044715 * x * x * x)));
            });
          return FloatFn(
              [](double x) { return 0.5 * x * (1.0 + std::erf(x / M_SQRT2)); });
        }));

  // Predicates on floats.
  r.add("nn.is_nan", unary([](double x) { return std::isnan(x) ? 1.0 : 0.0; }));
  r.add("nn.is_inf", unaryWithAttrs<nn::IsInfOp>([](nn::IsInfOp op) {
          bool neg = op.getDetectNegative(), pos = op.getDetectPositive();
          return FloatFn([neg, pos](double x) {
            return std::isinf(x) && (x < 0 ? neg : pos) ? 1.0 : 0.0;
          });
        }));

  // Binary arithmetic.
  r.add("nn.add", binary([](double a, double b) { return a + b; }, wrapAdd));
  r.add("nn.sub", binary([](double a, double b) { return a - b; }, wrapSub));
  r.add("nn.mul", binary([](double a, double b) { return a * b; }, wrapMul));
  r.add("nn.div", binary([](double a, double b) { return a / b; }, truncDiv));
  r.add("nn.pow",
        binary([](double a, double b) { return std::pow(a, b); }, intPow));
  r.add("nn.max",
        binary(nanMax, [](int64_t a, int64_t b) { return std::max(a, b); }));
  r.add("nn.min",
        binary(nanMin, [](int64_t a, int64_t b) { return std::min(a, b); }));
  r.add("nn.mod", [](Operation *op, ArrayRef<Tensor> in,
                     SmallVectorImpl<Tensor> &out, const EvalContext &ctx) {
    bool cStyle = cast<nn::ModOp>(op).getFmod();
    Kernel k = cStyle
                   ? binary([](double a, double b) { return std::fmod(a, b); },
                            truncRem)
                   : binary(floorRemF, floorRem);
    return k(op, in, out, ctx);
  });
  r.add("nn.bit_shift", singleResult(bitShift));

  // Comparisons and logic.
  r.add("nn.equal", compare([](auto a, auto b) { return a == b; }));
  r.add("nn.less", compare([](auto a, auto b) { return a < b; }));
  r.add("nn.less_equal", compare([](auto a, auto b) { return a <= b; }));
  r.add("nn.greater", compare([](auto a, auto b) { return a > b; }));
  r.add("nn.greater_equal", compare([](auto a, auto b) { return a >= b; }));
  r.add("nn.and", compare([](auto a, auto b) { return a && b; }));
  r.add("nn.or", compare([](auto a, auto b) { return a || b; }));
  r.add("nn.xor", compare([](auto a, auto b) { return (a != 0) != (b != 0); }));

  // Selection and conversion.
  r.add("nn.where", singleResult(where));
  r.add("nn.cast",
        singleResult([](Operation *op, ArrayRef<Tensor> in,
                        const EvalContext &ctx) -> FailureOr<Tensor> {
          return in[0].castTo(ctx.storageType(op->getResult(0)));
        }));
}

} // namespace peft::ref
