//===- Elementwise.cpp - arithmetic, activations, comparisons -------------===//
//
// One nn op per ONNX op where the op is a unit later passes fuse or
// differentiate (gelu, sigmoid, elu, ...); short formulas of other ops are
// decomposed here (HardSigmoid, Selu, Celu, Softsign, Mish, PRelu,
// ThresholdedRelu, Clip, Mean) so they need no kernel or gradient of their own.
//
//===----------------------------------------------------------------------===//
#include "frontends/onnx/NodeImport.h"

#include "dialects/nn/NNOps.h"

#include "llvm/ADT/StringExtras.h"

#include <iterator>

using namespace mlir;

namespace peft::onnx_import {
namespace {

/// Sets result 0 from `v`, passing failure through.
LogicalResult finish(NodeContext &n, FailureOr<Value> v) {
  if (failed(v))
    return failure();
  n.setResult(0, *v);
  return success();
}

NamedAttribute f64Attr(NodeContext &n, StringRef name, double v) {
  return n.builder().getNamedAttr(name, n.builder().getF64FloatAttr(v));
}

/// `v` converted to element type `to` (v itself when it already has it).
FailureOr<Value> castElements(NodeContext &n, Value v, Type to) {
  auto type = cast<RankedTensorType>(v.getType());
  if (type.getElementType() == to)
    return v;
  return n.createTyped<nn::CastOp>({type.clone(to)}, {v});
}

template <typename OpTy> Handler unary() {
  return [](NodeContext &n) -> LogicalResult {
    if (failed(n.requireInputs(1)))
      return failure();
    return finish(n, n.create<OpTy>({n.input(0)}));
  };
}

template <typename OpTy> Handler binary() {
  return [](NodeContext &n) -> LogicalResult {
    if (failed(n.requireInputs(2)))
      return failure();
    return finish(n, n.create<OpTy>({n.input(0), n.input(1)}));
  };
}

/// A unary op with one float attribute `name` (ONNX default `def`).
template <typename OpTy> Handler unaryAlpha(StringRef name, double def) {
  return [name = name.str(), def](NodeContext &n) -> LogicalResult {
    if (failed(n.requireInputs(1)))
      return failure();
    return finish(n,
                  n.create<OpTy>({n.input(0)},
                                 {f64Attr(n, name, n.attrFloat(name, def))}));
  };
}

/// Sum, Max, Min, Mean: a left-to-right chain of binary ops, each
/// broadcasting; Mean divides the sum by the input count.
template <typename OpTy> Handler variadic(bool mean = false) {
  return [mean](NodeContext &n) -> LogicalResult {
    if (n.numInputs() == 0)
      return n.error() << "expects at least one input";
    if (failed(n.requireInputs(n.numInputs())))
      return failure();
    Value acc = n.input(0);
    for (unsigned i = 1; i < n.numInputs(); ++i) {
      auto v = n.create<OpTy>({acc, n.input(i)});
      if (failed(v))
        return failure();
      acc = *v;
    }
    if (mean && n.numInputs() > 1) {
      auto v = n.create<nn::DivOp>({acc, n.scalarLike(acc, n.numInputs())});
      if (failed(v))
        return failure();
      acc = *v;
    }
    n.setResult(0, acc);
    return success();
  };
}

/// Pow allows a base and exponent of different types; the result has the
/// base's. Float bases take the exponent converted; integer bases with a
/// float exponent are raised in f64 and truncated back, as ONNX's reference
/// (numpy) does.
LogicalResult importPow(NodeContext &n) {
  if (failed(n.requireInputs(2)))
    return failure();
  Value base = n.input(0), exponent = n.input(1);
  Type bt = n.inputType(0).getElementType();
  Type et = n.inputType(1).getElementType();
  if (bt == et)
    return finish(n, n.create<nn::PowOp>({base, exponent}));
  if (isa<FloatType>(bt) || !isa<FloatType>(et)) {
    auto e = castElements(n, exponent, bt);
    if (failed(e))
      return failure();
    return finish(n, n.create<nn::PowOp>({base, *e}));
  }
  Type f64 = n.builder().getF64Type();
  auto b = castElements(n, base, f64);
  if (failed(b))
    return failure();
  auto e = castElements(n, exponent, f64);
  if (failed(e))
    return failure();
  auto p = n.create<nn::PowOp>({*b, *e});
  if (failed(p))
    return failure();
  return finish(n, castElements(n, *p, bt));
}

/// Clip(x, min?, max?) = min(max(x, lo), hi); a missing bound is no bound.
LogicalResult importClip(NodeContext &n) {
  if (failed(n.requireInputs(1)))
    return failure();
  Value v = n.input(0);
  if (n.hasInput(1)) {
    auto lo = n.create<nn::MaxOp>({v, n.input(1)});
    if (failed(lo))
      return failure();
    v = *lo;
  }
  if (n.hasInput(2)) {
    auto hi = n.create<nn::MinOp>({v, n.input(2)});
    if (failed(hi))
      return failure();
    v = *hi;
  }
  n.setResult(0, v);
  return success();
}

/// max(0, min(1, alpha * x + beta)).
FailureOr<Value> hardSigmoid(NodeContext &n, Value x, double alpha,
                             double beta) {
  auto scaled = n.create<nn::MulOp>({x, n.scalarLike(x, alpha)});
  if (failed(scaled))
    return failure();
  auto shifted = n.create<nn::AddOp>({*scaled, n.scalarLike(x, beta)});
  if (failed(shifted))
    return failure();
  auto upper = n.create<nn::MinOp>({*shifted, n.scalarLike(x, 1.0)});
  if (failed(upper))
    return failure();
  return n.create<nn::MaxOp>({*upper, n.scalarLike(x, 0.0)});
}

LogicalResult importHardSigmoid(NodeContext &n) {
  if (failed(n.requireInputs(1)))
    return failure();
  return finish(n, hardSigmoid(n, n.input(0), n.attrFloat("alpha", 0.2),
                               n.attrFloat("beta", 0.5)));
}

LogicalResult importHardSwish(NodeContext &n) {
  if (failed(n.requireInputs(1)))
    return failure();
  Value x = n.input(0);
  auto gate = hardSigmoid(n, x, 1.0 / 6.0, 0.5);
  if (failed(gate))
    return failure();
  return finish(n, n.create<nn::MulOp>({x, *gate}));
}

/// gamma * elu(x, alpha).
LogicalResult importSelu(NodeContext &n) {
  if (failed(n.requireInputs(1)))
    return failure();
  Value x = n.input(0);
  auto elu = n.create<nn::EluOp>(
      {x},
      {f64Attr(n, "alpha", n.attrFloat("alpha", 1.67326319217681884765625))});
  if (failed(elu))
    return failure();
  double gamma = n.attrFloat("gamma", 1.05070102214813232421875);
  return finish(n, n.create<nn::MulOp>({*elu, n.scalarLike(x, gamma)}));
}

/// alpha * elu(x / alpha, 1) = max(0, x) + min(0, alpha * (e^(x/alpha) - 1)).
LogicalResult importCelu(NodeContext &n) {
  if (failed(n.requireInputs(1)))
    return failure();
  Value x = n.input(0);
  double alpha = n.attrFloat("alpha", 1.0);
  if (alpha == 0)
    return n.error() << "alpha must be non-zero";
  auto scaled = n.create<nn::DivOp>({x, n.scalarLike(x, alpha)});
  if (failed(scaled))
    return failure();
  auto elu = n.create<nn::EluOp>({*scaled}, {f64Attr(n, "alpha", 1.0)});
  if (failed(elu))
    return failure();
  return finish(n, n.create<nn::MulOp>({*elu, n.scalarLike(x, alpha)}));
}

/// x / (1 + |x|).
LogicalResult importSoftsign(NodeContext &n) {
  if (failed(n.requireInputs(1)))
    return failure();
  Value x = n.input(0);
  auto abs = n.create<nn::AbsOp>({x});
  if (failed(abs))
    return failure();
  auto denom = n.create<nn::AddOp>({*abs, n.scalarLike(x, 1.0)});
  if (failed(denom))
    return failure();
  return finish(n, n.create<nn::DivOp>({x, *denom}));
}

/// x * tanh(softplus(x)).
LogicalResult importMish(NodeContext &n) {
  if (failed(n.requireInputs(1)))
    return failure();
  Value x = n.input(0);
  auto sp = n.create<nn::SoftplusOp>({x});
  if (failed(sp))
    return failure();
  auto t = n.create<nn::TanhOp>({*sp});
  if (failed(t))
    return failure();
  return finish(n, n.create<nn::MulOp>({x, *t}));
}

/// where(x > alpha, x, 0).
LogicalResult importThresholdedRelu(NodeContext &n) {
  if (failed(n.requireInputs(1)))
    return failure();
  Value x = n.input(0);
  auto above =
      n.create<nn::GreaterOp>({x, n.scalarLike(x, n.attrFloat("alpha", 1.0))});
  if (failed(above))
    return failure();
  return finish(n, n.create<nn::WhereOp>({*above, x, n.scalarLike(x, 0.0)}));
}

/// where(x < 0, slope * x, x); slope broadcasts to x's shape.
LogicalResult importPRelu(NodeContext &n) {
  if (failed(n.requireInputs(2)))
    return failure();
  Value x = n.input(0), slope = n.input(1);
  SmallVector<int64_t> shape;
  ArrayRef<int64_t> xShape = n.inputType(0).getShape();
  if (failed(nn::broadcastShapes(std::nullopt, xShape,
                                 n.inputType(1).getShape(), shape)) ||
      ArrayRef<int64_t>(shape) != xShape)
    return n.error() << "the slope " << n.inputType(1)
                     << " must broadcast to the input's shape "
                     << n.inputType(0);
  auto negative = n.create<nn::LessOp>({x, n.scalarLike(x, 0.0)});
  if (failed(negative))
    return failure();
  auto scaled = n.create<nn::MulOp>({x, slope});
  if (failed(scaled))
    return failure();
  return finish(n, n.create<nn::WhereOp>({*negative, *scaled, x}));
}

LogicalResult importGelu(NodeContext &n) {
  if (failed(n.requireInputs(1)))
    return failure();
  std::string approximate = n.attrString("approximate", "none");
  if (approximate != "none" && approximate != "tanh")
    return n.error() << "approximate='" << approximate << "' is not supported "
                     << "(expected 'none' or 'tanh')";
  return finish(
      n, n.create<nn::GeluOp>(
             {n.input(0)},
             {n.builder().getNamedAttr(
                 "approximate", n.builder().getStringAttr(approximate))}));
}

LogicalResult importIsInf(NodeContext &n) {
  if (failed(n.requireInputs(1)))
    return failure();
  Builder &b = n.builder();
  return finish(
      n, n.create<nn::IsInfOp>(
             {n.input(0)},
             {b.getNamedAttr("detect_negative",
                             b.getBoolAttr(n.attrInt("detect_negative", 1))),
              b.getNamedAttr("detect_positive",
                             b.getBoolAttr(n.attrInt("detect_positive", 1)))}));
}

LogicalResult importMod(NodeContext &n) {
  if (failed(n.requireInputs(2)))
    return failure();
  SmallVector<NamedAttribute> attrs;
  int64_t fmod = n.attrInt("fmod", 0);
  if (fmod != 0 && fmod != 1)
    return n.error() << "fmod must be 0 or 1, got " << fmod;
  if (fmod)
    attrs.push_back(
        n.builder().getNamedAttr("fmod", n.builder().getUnitAttr()));
  return finish(n, n.create<nn::ModOp>({n.input(0), n.input(1)}, attrs));
}

LogicalResult importBitShift(NodeContext &n) {
  if (failed(n.requireInputs(2)))
    return failure();
  std::string direction =
      llvm::StringRef(n.attrString("direction", "")).lower();
  if (direction != "left" && direction != "right")
    return n.error() << "direction must be \"LEFT\" or \"RIGHT\"";
  return finish(
      n, n.create<nn::BitShiftOp>(
             {n.input(0), n.input(1)},
             {n.builder().getNamedAttr("direction",
                                       n.builder().getStringAttr(direction))}));
}

/// Cast and CastLike share this once the target element type is known.
LogicalResult castTo(NodeContext &n, Type to) {
  return finish(n, castElements(n, n.input(0), to));
}

/// The ONNX name of a data type, including those newer than libonnx's enum.
std::string onnxTypeName(int64_t type) {
  if (onnx::TensorProto_DataType_IsValid((int)type))
    return onnx::TensorProto_DataType_Name((onnx::TensorProto_DataType)type);
  static const char *const newer[] = {
      "FLOAT8E4M3FN", "FLOAT8E4M3FNUZ", "FLOAT8E5M2", "FLOAT8E5M2FNUZ",
      "UINT4",        "INT4",           "FLOAT4E2M1", "FLOAT8E8M0"};
  if (type >= 17 && type < 17 + (int64_t)std::size(newer))
    return newer[type - 17];
  return "type " + std::to_string(type);
}

LogicalResult importCast(NodeContext &n) {
  if (failed(n.requireInputs(1)))
    return failure();
  if (!n.hasAttr("to"))
    return n.error() << "the 'to' attribute is missing";
  int64_t to = n.attrInt("to", 0);
  Type et = elementTypeFromOnnx(n.context(), (int32_t)to);
  if (!et)
    return n.error() << "casting to " << onnxTypeName(to)
                     << " is not supported";
  return castTo(n, et);
}

LogicalResult importCastLike(NodeContext &n) {
  if (failed(n.requireInputs(2)))
    return failure();
  return castTo(n, n.inputType(1).getElementType());
}

} // namespace

void registerElementwiseHandlers(HandlerRegistry &r) {
  // Unary math.
  r.add("", "Neg", 6, unary<nn::NegOp>());
  r.add("", "Abs", 6, unary<nn::AbsOp>());
  r.add("", "Sign", 9, unary<nn::SignOp>());
  r.add("", "Exp", 6, unary<nn::ExpOp>());
  r.add("", "Log", 6, unary<nn::LogOp>());
  r.add("", "Sqrt", 6, unary<nn::SqrtOp>());
  r.add("", "Reciprocal", 6, unary<nn::ReciprocalOp>());
  r.add("", "Erf", 9, unary<nn::ErfOp>());
  r.add("", "Sin", 7, unary<nn::SinOp>());
  r.add("", "Cos", 7, unary<nn::CosOp>());
  r.add("", "Tan", 7, unary<nn::TanOp>());
  r.add("", "Asin", 7, unary<nn::AsinOp>());
  r.add("", "Acos", 7, unary<nn::AcosOp>());
  r.add("", "Atan", 7, unary<nn::AtanOp>());
  r.add("", "Sinh", 9, unary<nn::SinhOp>());
  r.add("", "Cosh", 9, unary<nn::CoshOp>());
  r.add("", "Asinh", 9, unary<nn::AsinhOp>());
  r.add("", "Acosh", 9, unary<nn::AcoshOp>());
  r.add("", "Atanh", 9, unary<nn::AtanhOp>());
  r.add("", "Floor", 6, unary<nn::FloorOp>());
  r.add("", "Ceil", 6, unary<nn::CeilOp>());
  r.add("", "Round", 11, unary<nn::RoundOp>());
  r.add("", "IsNaN", 9, unary<nn::IsNanOp>());
  r.add("", "IsInf", 10, importIsInf);

  // Activations.
  r.add("", "Relu", 6, unary<nn::ReluOp>());
  r.add("", "Tanh", 6, unary<nn::TanhOp>());
  r.add("", "Sigmoid", 6, unary<nn::SigmoidOp>());
  r.add("", "Softplus", 1, unary<nn::SoftplusOp>());
  r.add("", "Softsign", 1, importSoftsign);
  r.add("", "LeakyRelu", 6, unaryAlpha<nn::LeakyReluOp>("alpha", 0.01));
  r.add("", "Elu", 6, unaryAlpha<nn::EluOp>("alpha", 1.0));
  r.add("", "Selu", 6, importSelu);
  r.add("", "Celu", 12, importCelu);
  r.add("", "Gelu", 20, importGelu);
  r.add("", "HardSigmoid", 6, importHardSigmoid);
  r.add("", "HardSwish", 14, importHardSwish);
  r.add("", "ThresholdedRelu", 10, importThresholdedRelu);
  r.add("", "PRelu", 7, importPRelu);
  r.add("", "Mish", 18, importMish);

  // Binary arithmetic and variadic reductions over inputs.
  r.add("", "Add", 7, binary<nn::AddOp>());
  r.add("", "Sub", 7, binary<nn::SubOp>());
  r.add("", "Mul", 7, binary<nn::MulOp>());
  r.add("", "Div", 7, binary<nn::DivOp>());
  r.add("", "Pow", 7, importPow);
  r.add("", "Mod", 10, importMod);
  r.add("", "BitShift", 11, importBitShift);
  r.add("", "Max", 8, variadic<nn::MaxOp>());
  r.add("", "Min", 8, variadic<nn::MinOp>());
  r.add("", "Sum", 8, variadic<nn::AddOp>());
  r.add("", "Mean", 8, variadic<nn::AddOp>(/*mean=*/true));
  r.add("", "Clip", 11, importClip);

  // Comparisons and logic.
  r.add("", "Equal", 7, binary<nn::EqualOp>());
  r.add("", "Less", 7, binary<nn::LessOp>());
  r.add("", "LessOrEqual", 12, binary<nn::LessEqualOp>());
  r.add("", "Greater", 7, binary<nn::GreaterOp>());
  r.add("", "GreaterOrEqual", 12, binary<nn::GreaterEqualOp>());
  r.add("", "And", 7, binary<nn::AndOp>());
  r.add("", "Or", 7, binary<nn::OrOp>());
  r.add("", "Xor", 7, binary<nn::XorOp>());
  r.add("", "Not", 1, unary<nn::NotOp>());

  // Selection and conversion.
  r.add("", "Where", 9, [](NodeContext &n) -> LogicalResult {
    if (failed(n.requireInputs(3)))
      return failure();
    return finish(n,
                  n.create<nn::WhereOp>({n.input(0), n.input(1), n.input(2)}));
  });
  r.add("", "Cast", 6, importCast);
  r.add("", "CastLike", 15, importCastLike);
}

} // namespace peft::onnx_import
