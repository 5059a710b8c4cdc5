//===- ElementwiseEmitters.cpp - scalar formulas of the nn elementwise ops ===//
//
// Each formula matches codegen/reference/ElementwiseKernels.cpp: integers
// compute in i64 (compute values of narrower types are sign- or
// zero-extended; emitScalarOp wraps results to their width), division and
// remainder by 0 give 0, shifts by 64 or more give 0. Floats compute in
// their own precision (f32 in f32), where the reference uses double.
//
//===----------------------------------------------------------------------===//
#include "codegen/cpu/LoopEmitter.h"

#include "dialects/nn/NNOps.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/SCF/IR/SCF.h"

#include <cmath>

using namespace mlir;

namespace peft::codegen {
namespace {

using arith::CmpFPredicate;
using arith::CmpIPredicate;

bool isFloatValue(Value v) { return isa<FloatType>(v.getType()); }

Value cmpf(OpBuilder &b, Location loc, CmpFPredicate p, Value x, Value y) {
  return b.create<arith::CmpFOp>(loc, p, x, y);
}
Value cmpi(OpBuilder &b, Location loc, CmpIPredicate p, Value x, Value y) {
  return b.create<arith::CmpIOp>(loc, p, x, y);
}
Value select(OpBuilder &b, Location loc, Value c, Value x, Value y) {
  return b.create<arith::SelectOp>(loc, c, x, y);
}
Value cst(OpBuilder &b, Location loc, Value like, double v) {
  return scalarConst(b, loc, like.getType(), v);
}

/// Registers `opName` as a one-operand, one-result formula.
using Unary = std::function<Value(OpBuilder &, Location, Operation *, Value)>;
void unary(EmitterRegistry &r, StringRef opName, Unary f) {
  r.addScalar(opName, [f](OpBuilder &b, Location loc, Operation *op,
                          ValueRange in, SmallVectorImpl<Value> &out) {
    out.push_back(f(b, loc, op, in[0]));
    return success();
  });
}

using Binary =
    std::function<Value(OpBuilder &, Location, Operation *, Value, Value)>;
void binary(EmitterRegistry &r, StringRef opName, Binary f) {
  r.addScalar(opName, [f](OpBuilder &b, Location loc, Operation *op,
                          ValueRange in, SmallVectorImpl<Value> &out) {
    out.push_back(f(b, loc, op, in[0], in[1]));
    return success();
  });
}

/// A float math op of the math dialect.
template <typename MathOp> void mathOp(EmitterRegistry &r, StringRef opName) {
  unary(r, opName, [](OpBuilder &b, Location loc, Operation *, Value x) {
    return b.create<MathOp>(loc, x).getResult();
  });
}

/// Truncating integer division and remainder (C semantics) with the
/// reference's answers for the divisors C leaves undefined: x / 0 = 0,
/// x % 0 = 0, x / -1 = -x (wrapping), x % -1 = 0.
Value intDiv(OpBuilder &b, Location loc, Value x, Value y, bool remainder) {
  Value zero = cst(b, loc, x, 0), one = cst(b, loc, x, 1);
  Value isZero = cmpi(b, loc, CmpIPredicate::eq, y, zero);
  Value isMinusOne = cmpi(b, loc, CmpIPredicate::eq, y, cst(b, loc, x, -1));
  Value special = b.create<arith::OrIOp>(loc, isZero, isMinusOne);
  Value safe = select(b, loc, special, one, y);
  if (remainder) {
    Value r = b.create<arith::RemSIOp>(loc, x, safe);
    return select(b, loc, special, zero, r);
  }
  Value q = b.create<arith::DivSIOp>(loc, x, safe);
  Value neg = b.create<arith::SubIOp>(loc, zero, x);
  return select(b, loc, isZero, zero, select(b, loc, isMinusOne, neg, q));
}

/// Python's remainder (the sign of the divisor) from C's `r`.
Value floorAdjust(OpBuilder &b, Location loc, Value r, Value y) {
  Value adjusted, nonzero, rNeg, yNeg;
  if (isFloatValue(r)) {
    Value zero = cst(b, loc, r, 0);
    nonzero = cmpf(b, loc, CmpFPredicate::ONE, r, zero);
    rNeg = cmpf(b, loc, CmpFPredicate::OLT, r, zero);
    yNeg = cmpf(b, loc, CmpFPredicate::OLT, y, zero);
    adjusted = b.create<arith::AddFOp>(loc, r, y);
  } else {
    Value zero = cst(b, loc, r, 0);
    nonzero = cmpi(b, loc, CmpIPredicate::ne, r, zero);
    rNeg = cmpi(b, loc, CmpIPredicate::slt, r, zero);
    yNeg = cmpi(b, loc, CmpIPredicate::slt, y, zero);
    adjusted = b.create<arith::AddIOp>(loc, r, y);
  }
  Value signsDiffer = b.create<arith::XOrIOp>(loc, rNeg, yNeg);
  Value fix = b.create<arith::AndIOp>(loc, nonzero, signsDiffer);
  return select(b, loc, fix, adjusted, r);
}

/// Exact integer power by squaring, wrapping; negative exponents give the
/// truncated 1 / x^-y (1 for x = 1, +-1 for x = -1, else 0). A fixed trip
/// count of 64 covers every non-negative i64 exponent.
Value intPow(OpBuilder &b, Location loc, Value x, Value y) {
  Value zero = cst(b, loc, x, 0), one = cst(b, loc, x, 1);
  Value negative = cmpi(b, loc, CmpIPredicate::slt, y, zero);
  Value exponent = select(b, loc, negative, zero, y);
  ValueRange loop =
      forLoop(b, loc, 0, 64, ValueRange{one, x, exponent},
              [&](OpBuilder &nb, Location nloc, Value, ValueRange it) {
                Value bit = nb.create<arith::AndIOp>(nloc, it[2], one);
                Value odd = cmpi(nb, nloc, CmpIPredicate::ne, bit, zero);
                Value times = nb.create<arith::MulIOp>(nloc, it[0], it[1]);
                Value result = select(nb, nloc, odd, times, it[0]);
                Value base = nb.create<arith::MulIOp>(nloc, it[1], it[1]);
                Value e = nb.create<arith::ShRUIOp>(nloc, it[2], one);
                return SmallVector<Value>{result, base, e};
              });
  Value xIsOne = cmpi(b, loc, CmpIPredicate::eq, x, one);
  Value xIsMinusOne = cmpi(b, loc, CmpIPredicate::eq, x, cst(b, loc, x, -1));
  Value yOdd = cmpi(b, loc, CmpIPredicate::ne,
                    b.create<arith::AndIOp>(loc, y, one), zero);
  Value minusOnePow = select(b, loc, yOdd, cst(b, loc, x, -1), one);
  Value negResult = select(b, loc, xIsOne, one,
                           select(b, loc, xIsMinusOne, minusOnePow, zero));
  return select(b, loc, negative, negResult, loop[0]);
}

/// Comparisons: floats ordered (NaN compares false, != is not an op here),
/// integers as i64; i1 operands are widened so that true > false.
void compare(EmitterRegistry &r, StringRef opName, CmpFPredicate fp,
             CmpIPredicate ip) {
  binary(r, opName,
         [fp, ip](OpBuilder &b, Location loc, Operation *, Value x, Value y) {
           if (isFloatValue(x))
             return cmpf(b, loc, fp, x, y);
           if (x.getType().isInteger(1)) {
             x = b.create<arith::ExtUIOp>(loc, b.getI64Type(), x);
             y = b.create<arith::ExtUIOp>(loc, b.getI64Type(), y);
           }
           return cmpi(b, loc, ip, x, y);
         });
}

/// Floats: 1 / (1 + e^-x) for x >= 0, e^x / (1 + e^x) below, so exp never
/// overflows.
Value sigmoid(OpBuilder &b, Location loc, Value x) {
  Value t = b.create<math::ExpOp>(
      loc, b.create<arith::NegFOp>(loc, b.create<math::AbsFOp>(loc, x)));
  Value s = b.create<arith::DivFOp>(
      loc, cst(b, loc, x, 1),
      b.create<arith::AddFOp>(loc, cst(b, loc, x, 1), t));
  Value nonNeg = cmpf(b, loc, CmpFPredicate::OGE, x, cst(b, loc, x, 0));
  return select(b, loc, nonNeg, s, b.create<arith::MulFOp>(loc, t, s));
}

} // namespace

void registerElementwiseEmitters(EmitterRegistry &r) {
  // Unary ops on numbers, integers too.
  unary(r, "nn.neg", [](OpBuilder &b, Location loc, Operation *, Value x) {
    if (isFloatValue(x))
      return b.create<arith::NegFOp>(loc, x).getResult();
    return b.create<arith::SubIOp>(loc, cst(b, loc, x, 0), x).getResult();
  });
  unary(r, "nn.abs", [](OpBuilder &b, Location loc, Operation *, Value x) {
    if (isFloatValue(x))
      return b.create<math::AbsFOp>(loc, x).getResult();
    Value neg = b.create<arith::SubIOp>(loc, cst(b, loc, x, 0), x);
    return select(
        b, loc, cmpi(b, loc, CmpIPredicate::slt, x, cst(b, loc, x, 0)), neg, x);
  });
  unary(r, "nn.sign", [](OpBuilder &b, Location loc, Operation *, Value x) {
    Value zero = cst(b, loc, x, 0), one = cst(b, loc, x, 1),
          minus = cst(b, loc, x, -1);
    if (isFloatValue(x)) {
      // Zeros and NaN pass through, as the reference does.
      Value pos = cmpf(b, loc, CmpFPredicate::OGT, x, zero);
      Value neg = cmpf(b, loc, CmpFPredicate::OLT, x, zero);
      return select(b, loc, pos, one, select(b, loc, neg, minus, x));
    }
    Value pos = cmpi(b, loc, CmpIPredicate::sgt, x, zero);
    Value neg = cmpi(b, loc, CmpIPredicate::slt, x, zero);
    return select(b, loc, pos, one, select(b, loc, neg, minus, zero));
  });
  unary(r, "nn.relu", [](OpBuilder &b, Location loc, Operation *, Value x) {
    Value zero = cst(b, loc, x, 0);
    Value neg = isFloatValue(x) ? cmpf(b, loc, CmpFPredicate::OLT, x, zero)
                                : cmpi(b, loc, CmpIPredicate::slt, x, zero);
    return select(b, loc, neg, zero, x);
  });
  unary(r, "nn.not", [](OpBuilder &b, Location loc, Operation *, Value x) {
    return b.create<arith::XOrIOp>(loc, x, cst(b, loc, x, 1)).getResult();
  });

  // Float math.
  mathOp<math::ExpOp>(r, "nn.exp");
  mathOp<math::LogOp>(r, "nn.log");
  mathOp<math::SqrtOp>(r, "nn.sqrt");
  mathOp<math::TanhOp>(r, "nn.tanh");
  mathOp<math::ErfOp>(r, "nn.erf");
  mathOp<math::SinOp>(r, "nn.sin");
  mathOp<math::CosOp>(r, "nn.cos");
  mathOp<math::TanOp>(r, "nn.tan");
  mathOp<math::AsinOp>(r, "nn.asin");
  mathOp<math::AcosOp>(r, "nn.acos");
  mathOp<math::AtanOp>(r, "nn.atan");
  mathOp<math::SinhOp>(r, "nn.sinh");
  mathOp<math::CoshOp>(r, "nn.cosh");
  mathOp<math::AsinhOp>(r, "nn.asinh");
  mathOp<math::AcoshOp>(r, "nn.acosh");
  mathOp<math::AtanhOp>(r, "nn.atanh");
  mathOp<math::FloorOp>(r, "nn.floor");
  mathOp<math::CeilOp>(r, "nn.ceil");
  mathOp<math::RoundEvenOp>(r, "nn.round");
  unary(r, "nn.reciprocal",
        [](OpBuilder &b, Location loc, Operation *, Value x) {
          return b.create<arith::DivFOp>(loc, cst(b, loc, x, 1), x).getResult();
        });
  unary(r, "nn.sigmoid", [](OpBuilder &b, Location loc, Operation *, Value x) {
    return sigmoid(b, loc, x);
  });
  unary(r, "nn.softplus", [](OpBuilder &b, Location loc, Operation *, Value x) {
    // x + log1p(e^-x) above 0, log1p(e^x) below: log1p(e^-|x|) plus the
    // positive part.
    Value t = b.create<math::Log1pOp>(
        loc,
        b.create<math::ExpOp>(
            loc, b.create<arith::NegFOp>(loc, b.create<math::AbsFOp>(loc, x))));
    Value pos = cmpf(b, loc, CmpFPredicate::OGT, x, cst(b, loc, x, 0));
    return select(b, loc, pos, b.create<arith::AddFOp>(loc, x, t), t);
  });
  unary(r, "nn.leaky_relu",
        [](OpBuilder &b, Location loc, Operation *op, Value x) {
          double alpha = cast<nn::LeakyReluOp>(op).getAlpha().convertToDouble();
          Value scaled = b.create<arith::MulFOp>(loc, cst(b, loc, x, alpha), x);
          Value nonNeg = cmpf(b, loc, CmpFPredicate::OGE, x, cst(b, loc, x, 0));
          return select(b, loc, nonNeg, x, scaled);
        });
  unary(r, "nn.elu", [](OpBuilder &b, Location loc, Operation *op, Value x) {
    double alpha = cast<nn::EluOp>(op).getAlpha().convertToDouble();
    Value scaled = b.create<arith::MulFOp>(loc, cst(b, loc, x, alpha),
                                           b.create<math::ExpM1Op>(loc, x));
    Value nonNeg = cmpf(b, loc, CmpFPredicate::OGE, x, cst(b, loc, x, 0));
    return select(b, loc, nonNeg, x, scaled);
  });
  unary(r, "nn.gelu", [](OpBuilder &b, Location loc, Operation *op, Value x) {
    Value half = cst(b, loc, x, 0.5), one = cst(b, loc, x, 1);
    Value inner;
    if (cast<nn::GeluOp>(op).getApproximate() == "tanh") {
      // tanh(sqrt(2/pi) (x + 0.044715 x^3))
      Value x3 =
          b.create<arith::MulFOp>(loc, b.create<arith::MulFOp>(loc, x, x), x);
      Value poly = b.create<arith::AddFOp>(
          loc, x, b.create<arith::MulFOp>(loc, cst(b, loc, x, 0.044715), x3));
      inner = b.create<math::TanhOp>(
          loc, b.create<arith::MulFOp>(
                   loc, cst(b, loc, x, std::sqrt(2.0 / M_PI)), poly));
    } else {
      inner = b.create<math::ErfOp>(
          loc, b.create<arith::DivFOp>(loc, x, cst(b, loc, x, M_SQRT2)));
    }
    Value hx = b.create<arith::MulFOp>(loc, half, x);
    return b
        .create<arith::MulFOp>(loc, hx,
                               b.create<arith::AddFOp>(loc, one, inner))
        .getResult();
  });

  // Float predicates.
  unary(r, "nn.is_nan", [](OpBuilder &b, Location loc, Operation *, Value x) {
    return cmpf(b, loc, CmpFPredicate::UNO, x, x);
  });
  unary(r, "nn.is_inf", [](OpBuilder &b, Location loc, Operation *op, Value x) {
    auto isInf = cast<nn::IsInfOp>(op);
    Value inf = cst(b, loc, x, INFINITY);
    Value pos = cmpf(b, loc, CmpFPredicate::OEQ, x, inf);
    Value neg = cmpf(b, loc, CmpFPredicate::OEQ, x, cst(b, loc, x, -INFINITY));
    Value f = b.create<arith::ConstantOp>(loc, b.getBoolAttr(false));
    return b
        .create<arith::OrIOp>(loc, isInf.getDetectPositive() ? pos : f,
                              isInf.getDetectNegative() ? neg : f)
        .getResult();
  });

  // Binary arithmetic.
  binary(r, "nn.add",
         [](OpBuilder &b, Location loc, Operation *, Value x, Value y) {
           if (isFloatValue(x))
             return b.create<arith::AddFOp>(loc, x, y).getResult();
           return b.create<arith::AddIOp>(loc, x, y).getResult();
         });
  binary(r, "nn.sub",
         [](OpBuilder &b, Location loc, Operation *, Value x, Value y) {
           if (isFloatValue(x))
             return b.create<arith::SubFOp>(loc, x, y).getResult();
           return b.create<arith::SubIOp>(loc, x, y).getResult();
         });
  binary(r, "nn.mul",
         [](OpBuilder &b, Location loc, Operation *, Value x, Value y) {
           if (isFloatValue(x))
             return b.create<arith::MulFOp>(loc, x, y).getResult();
           return b.create<arith::MulIOp>(loc, x, y).getResult();
         });
  binary(r, "nn.div",
         [](OpBuilder &b, Location loc, Operation *, Value x, Value y) {
           if (isFloatValue(x))
             return b.create<arith::DivFOp>(loc, x, y).getResult();
           return intDiv(b, loc, x, y, /*remainder=*/false);
         });
  binary(r, "nn.pow",
         [](OpBuilder &b, Location loc, Operation *, Value x, Value y) {
           if (isFloatValue(x))
             return b.create<math::PowFOp>(loc, x, y).getResult();
           return intPow(b, loc, x, y);
         });
  binary(r, "nn.max",
         [](OpBuilder &b, Location loc, Operation *op, Value x, Value y) {
           return emitMax(b, loc, x, y, elementTypeOf(op->getResult(0)));
         });
  binary(r, "nn.min",
         [](OpBuilder &b, Location loc, Operation *op, Value x, Value y) {
           return emitMin(b, loc, x, y, elementTypeOf(op->getResult(0)));
         });
  binary(r, "nn.mod",
         [](OpBuilder &b, Location loc, Operation *op, Value x, Value y) {
           bool cStyle = cast<nn::ModOp>(op).getFmod();
           Value rem = isFloatValue(x)
                           ? b.create<arith::RemFOp>(loc, x, y).getResult()
                           : intDiv(b, loc, x, y, /*remainder=*/true);
           return cStyle ? rem : floorAdjust(b, loc, rem, y);
         });
  binary(r, "nn.bit_shift",
         [](OpBuilder &b, Location loc, Operation *op, Value x, Value y) {
           bool left = cast<nn::BitShiftOp>(op).getDirection() == "left";
           // The reference shifts the operand's 64-bit pattern; amounts outside
           // [0, 64) clear every bit.
           Value zero = cst(b, loc, x, 0);
           Value outside = b.create<arith::OrIOp>(
               loc, cmpi(b, loc, CmpIPredicate::slt, y, zero),
               cmpi(b, loc, CmpIPredicate::sge, y, cst(b, loc, x, 64)));
           Value amount = select(b, loc, outside, zero, y);
           Value shifted =
               left ? b.create<arith::ShLIOp>(loc, x, amount).getResult()
                    : b.create<arith::ShRUIOp>(loc, x, amount).getResult();
           return select(b, loc, outside, zero, shifted);
         });

  // Comparisons and logic.
  compare(r, "nn.equal", CmpFPredicate::OEQ, CmpIPredicate::eq);
  compare(r, "nn.less", CmpFPredicate::OLT, CmpIPredicate::slt);
  compare(r, "nn.less_equal", CmpFPredicate::OLE, CmpIPredicate::sle);
  compare(r, "nn.greater", CmpFPredicate::OGT, CmpIPredicate::sgt);
  compare(r, "nn.greater_equal", CmpFPredicate::OGE, CmpIPredicate::sge);
  binary(r, "nn.and",
         [](OpBuilder &b, Location loc, Operation *, Value x, Value y) {
           return b.create<arith::AndIOp>(loc, x, y).getResult();
         });
  binary(r, "nn.or",
         [](OpBuilder &b, Location loc, Operation *, Value x, Value y) {
           return b.create<arith::OrIOp>(loc, x, y).getResult();
         });
  binary(r, "nn.xor",
         [](OpBuilder &b, Location loc, Operation *, Value x, Value y) {
           return b.create<arith::XOrIOp>(loc, x, y).getResult();
         });

  // Selection and conversion.
  r.addScalar("nn.where", [](OpBuilder &b, Location loc, Operation *,
                             ValueRange in, SmallVectorImpl<Value> &out) {
    out.push_back(select(b, loc, in[0], in[1], in[2]));
    return success();
  });
  unary(r, "nn.cast", [](OpBuilder &b, Location loc, Operation *op, Value x) {
    return castScalar(b, loc, x, elementTypeOf(op->getOperand(0)),
                      elementTypeOf(op->getResult(0)));
  });
}

} // namespace peft::codegen
