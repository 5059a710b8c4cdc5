//===- PeftEmitters.cpp - optimizer updates, clipping, lr schedules -------===//
//
// The peft ops that survive peft-decompose: the optimizer's per-parameter
// updates (elementwise, so scalar emitters that the fused elementwise kernel
// calls per element) and the two ops that reduce to scalars (loop emitters).
//
// Each formula is codegen/reference/PeftKernels.cpp statement by statement:
// computed in f64, with the reference's Rounder (a store to the parameter's
// dtype, standing for PyTorch's in-place tensor ops) at the same points, so
// f32 results equal the reference's bit for bit (f16/bf16 parameters round
// through their f32 compute type, which may differ in the last bit).
//
//===----------------------------------------------------------------------===//
#include "codegen/cpu/EmitterSupport.h"

#include "dialects/peft/PeftOps.h"

#include "mlir/Dialect/Math/IR/Math.h"

#include <cmath>

using namespace mlir;

namespace peft::codegen {
namespace {

/// f64 arithmetic, one op per C++ operator of the reference.
class F64Math {
public:
  F64Math(OpBuilder &b, Location loc) : b(b), loc(loc) {}

  Value c(double v) { return scalarConst(b, loc, b.getF64Type(), v); }
  Value add(Value x, Value y) { return b.create<arith::AddFOp>(loc, x, y); }
  Value sub(Value x, Value y) { return b.create<arith::SubFOp>(loc, x, y); }
  Value mul(Value x, Value y) { return b.create<arith::MulFOp>(loc, x, y); }
  Value div(Value x, Value y) { return b.create<arith::DivFOp>(loc, x, y); }
  Value neg(Value x) { return b.create<arith::NegFOp>(loc, x); }
  Value sqrt(Value x) { return b.create<math::SqrtOp>(loc, x); }
  Value pow(Value x, Value y) { return b.create<math::PowFOp>(loc, x, y); }
  Value cos(Value x) { return b.create<math::CosOp>(loc, x); }
  Value fma(Value x, Value y, Value z) {
    return b.create<math::FmaOp>(loc, x, y, z);
  }
  /// std::max(x, y) on doubles: y when x < y, else x.
  Value max(Value x, Value y) {
    Value less = b.create<arith::CmpFOp>(loc, arith::CmpFPredicate::OLT, x, y);
    return b.create<arith::SelectOp>(loc, less, y, x);
  }
  /// (double) of an i64.
  Value fromInt(Value i64) {
    return b.create<arith::SIToFPOp>(loc, b.getF64Type(), i64);
  }

private:
  OpBuilder &b;
  Location loc;
};

/// The reference's Rounder: an f64 rounded as storing it in a tensor of
/// element type `elem` does, back in f64 (a no-op for f64 tensors).
class Rounder {
public:
  Rounder(OpBuilder &b, Location loc, Type elem) : b(b), loc(loc), elem(elem) {}
  Value operator()(Value v) {
    if (elem.isF64())
      return v;
    return toF64(b, loc, fromF64(b, loc, v, elem), elem);
  }

private:
  OpBuilder &b;
  Location loc;
  Type elem;
};

/// torch.lerp as ATen's CPU kernel computes it (one fused multiply-add,
/// anchored at the end nearer to the weight); the weight is a constant.
Value lerp(F64Math &f, Value self, Value end, double weight) {
  Value diff = f.sub(end, self);
  return std::abs(weight) < 0.5 ? f.fma(f.c(weight), diff, self)
                                : f.fma(f.c(weight - 1), diff, end);
}

/// torch.optim.AdamW's single-tensor step (see the reference's adamw).
LogicalResult emitAdamW(OpBuilder &b, Location loc, Operation *operation,
                        ValueRange operands, SmallVectorImpl<Value> &results) {
  auto op = cast<pir::AdamWOp>(operation);
  Type elem = elementTypeOf(op.getParam());
  double beta1 = op.getBeta1().convertToDouble();
  double beta2 = op.getBeta2().convertToDouble();
  double eps = op.getEps().convertToDouble();
  double weightDecay = op.getWeightDecay().convertToDouble();
  F64Math f(b, loc);
  Rounder round(b, loc, elem);

  Value lr = toF64(b, loc, operands[4], elementTypeOf(op.getLr()));
  Value step = toF64(b, loc, operands[5], elementTypeOf(op.getStep()));
  Value biasCorrection1 = f.sub(f.c(1), f.pow(f.c(beta1), step));
  Value biasCorrection2 = f.sub(f.c(1), f.pow(f.c(beta2), step));
  Value stepSize = f.div(lr, biasCorrection1);
  Value biasCorrection2Sqrt = f.pow(biasCorrection2, f.c(0.5));

  Value p = toF64(b, loc, operands[0], elem);
  Value g = toF64(b, loc, operands[1], elem);
  if (weightDecay != 0)
    p = round(f.mul(p, f.sub(f.c(1), f.mul(lr, f.c(weightDecay)))));
  Value m = round(lerp(f, toF64(b, loc, operands[2], elem), g, 1 - beta1));
  Value v = round(f.mul(toF64(b, loc, operands[3], elem), f.c(beta2)));
  v = round(f.add(v, f.mul(f.mul(f.c(1 - beta2), g), g)));
  Value denom = round(
      f.add(round(f.div(round(f.sqrt(v)), biasCorrection2Sqrt)), f.c(eps)));
  p = f.add(p, f.div(f.mul(f.neg(stepSize), m), denom));
  results.push_back(fromF64(b, loc, p, elem));
  results.push_back(fromF64(b, loc, m, elem));
  results.push_back(fromF64(b, loc, v, elem));
  return success();
}

/// torch.optim.SGD's single-tensor step (see the reference's sgd).
LogicalResult emitSgd(OpBuilder &b, Location loc, Operation *operation,
                      ValueRange operands, SmallVectorImpl<Value> &results) {
  auto op = cast<pir::SgdOp>(operation);
  Type elem = elementTypeOf(op.getParam());
  double momentum = op.getMomentum().convertToDouble();
  double dampening = op.getDampening().convertToDouble();
  double weightDecay = op.getWeightDecay().convertToDouble();
  bool nesterov = op.getNesterov();
  F64Math f(b, loc);
  Rounder round(b, loc, elem);

  Value p = toF64(b, loc, operands[0], elem);
  Value g = toF64(b, loc, operands[1], elem);
  Value buf = toF64(b, loc, operands[2], elem);
  Value lr = toF64(b, loc, operands[3], elementTypeOf(op.getLr()));
  Value step = convertElement(b, loc, operands[4], elementTypeOf(op.getStep()),
                              b.getI64Type());
  if (weightDecay != 0)
    g = round(f.add(g, f.mul(f.c(weightDecay), p)));
  if (momentum != 0) {
    // PyTorch has no buffer before the first step and clones the gradient.
    Value first = b.create<arith::CmpIOp>(loc, arith::CmpIPredicate::eq, step,
                                          intConst(b, loc, b.getI64Type(), 1));
    Value later = round(f.mul(buf, f.c(momentum)));
    later = round(f.add(later, f.mul(f.c(1 - dampening), g)));
    buf = b.create<arith::SelectOp>(loc, first, g, later);
    g = nesterov ? round(f.add(g, f.mul(f.c(momentum), buf))) : buf;
  }
  results.push_back(fromF64(b, loc, f.add(p, f.mul(f.neg(lr), g)), elem));
  results.push_back(fromF64(b, loc, buf, elem));
  return success();
}

/// clip_grad_norm_ (norm_type 2): the norm of the per-tensor norms, then
/// every gradient times min(max_norm / (total + 1e-6), 1). The norm is a
/// reduction over all gradients that every scaled element depends on, so
/// the kernel runs as ONE sequential iteration (extent 1): the reduction in
/// the reference's order, then the scaling.
LogicalResult emitClipGradNorm(LoopEmitContext &ctx) {
  auto op = cast<pir::ClipGradNormOp>(ctx.op());
  double maxNorm = op.getMaxNorm().convertToDouble();
  Type totalElem = elementTypeOf(op.getTotalNorm());
  struct Grad {
    Value in, out;
    Type inElem, outElem;
    int64_t size;
  };
  SmallVector<Grad> grads;
  for (auto [g, clipped] : llvm::zip(op.getGrads(), op.getClipped()))
    grads.push_back({ctx.buffer(g), ctx.buffer(clipped), elementTypeOf(g),
                     elementTypeOf(clipped), numElementsOf(shapeOf(g))});
  Value totalOut = ctx.buffer(op.getTotalNorm());

  return ctx.parallel(1, [&](OpBuilder &b, Location loc, Value) {
    F64Math f(b, loc);
    Rounder round(b, loc, totalElem);
    Value sumOfSquaredNorms = f.c(0);
    for (const Grad &g : grads) {
      ValueRange sq = forLoop(
          b, loc, 0, g.size, {f.c(0)},
          [&](OpBuilder &lb, Location ll, Value i,
              ValueRange acc) -> SmallVector<Value> {
            F64Math lf(lb, ll);
            Value v =
                toF64(lb, ll, loadElement(lb, ll, g.in, i, g.inElem), g.inElem);
            return {lf.add(acc[0], lf.mul(v, v))};
          });
      Value norm = round(f.sqrt(sq[0]));
      sumOfSquaredNorms = f.add(sumOfSquaredNorms, f.mul(norm, norm));
    }
    Value total = round(f.sqrt(sumOfSquaredNorms));
    Value coef = round(f.div(f.c(maxNorm), round(f.add(total, f.c(1e-6)))));
    // torch.clamp(max=1.0) keeps NaN, so a non-finite norm poisons the grads.
    Value above =
        b.create<arith::CmpFOp>(loc, arith::CmpFPredicate::OGT, coef, f.c(1));
    coef = b.create<arith::SelectOp>(loc, above, f.c(1), coef);
    for (const Grad &g : grads)
      forLoop(b, loc, 0, g.size, {},
              [&](OpBuilder &lb, Location ll, Value i,
                  ValueRange) -> SmallVector<Value> {
                F64Math lf(lb, ll);
                Value v = toF64(lb, ll, loadElement(lb, ll, g.in, i, g.inElem),
                                g.inElem);
                storeElement(lb, ll,
                             fromF64(lb, ll, lf.mul(v, coef), g.outElem), g.out,
                             i, g.outElem);
                return {};
              });
    storeElement(b, loc, fromF64(b, loc, total, totalElem), totalOut,
                 indexConst(b, loc, 0), totalElem);
    return success();
  });
}

/// transformers' schedule lambdas at k = step - 1 (see the reference's
/// lrSchedule); a scalar, so one iteration.
LogicalResult emitLrSchedule(LoopEmitContext &ctx) {
  auto op = cast<pir::LrScheduleOp>(ctx.op());
  int64_t warmup = op.getWarmup(), total = op.getTotal();
  StringRef kind = op.getKind();
  double baseLr = op.getBaseLr().convertToDouble();
  double cycles = op.getNumCycles().convertToDouble();
  Value stepIn = ctx.buffer(op.getStep());
  Type stepElem = elementTypeOf(op.getStep());
  Value lrOut = ctx.buffer(op.getLr());
  Type lrElem = elementTypeOf(op.getLr());

  return ctx.parallel(1, [&](OpBuilder &b, Location loc, Value) {
    F64Math f(b, loc);
    IndexMath m(b, loc);
    Value step = convertElement(
        b, loc, loadElement(b, loc, stepIn, indexConst(b, loc, 0), stepElem),
        stepElem, b.getI64Type());
    Value k = m.sub(step, 1);
    Value warm = f.div(f.fromInt(k), f.c((double)std::max<int64_t>(1, warmup)));
    Value after;
    if (kind == "constant") {
      after = f.c(1.0);
    } else if (kind == "linear") {
      Value remaining =
          f.fromInt(m.sub(intConst(b, loc, b.getI64Type(), total), k));
      after = f.max(
          f.c(0.0),
          f.div(remaining, f.c((double)std::max<int64_t>(1, total - warmup))));
    } else {
      Value progress = f.div(f.fromInt(m.sub(k, warmup)),
                             f.c((double)std::max<int64_t>(1, total - warmup)));
      Value wave = f.cos(f.mul(f.c(M_PI * cycles * 2.0), progress));
      after = f.max(f.c(0.0), f.mul(f.c(0.5), f.add(f.c(1.0), wave)));
    }
    Value factor = m.select(m.lt(k, warmup), warm, after);
    storeElement(b, loc, fromF64(b, loc, f.mul(f.c(baseLr), factor), lrElem),
                 lrOut, indexConst(b, loc, 0), lrElem);
    return success();
  });
}

} // namespace

void registerPeftEmitters(EmitterRegistry &registry) {
  registry.addScalar("peft.adamw", emitAdamW);
  registry.addScalar("peft.sgd", emitSgd);
  registry.addLoop("peft.clip_grad_norm", emitClipGradNorm);
  registry.addLoop("peft.lr_schedule", emitLrSchedule);
}

} // namespace peft::codegen
