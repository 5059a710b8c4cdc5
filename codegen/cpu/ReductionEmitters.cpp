//===- ReductionEmitters.cpp - reductions and arg-reductions --------------===//
//
// One parallel iteration per output element; the reduced dims run as inner
// loops (adjacent reduced dims merged into one), accumulating in the
// compute type. Float sums and products carry `reassoc` so LLVM may
// vectorise them (partial sums, as PyTorch's reductions do).
//
//===----------------------------------------------------------------------===//
#include "codegen/cpu/LoopEmitter.h"

#include "dialects/nn/NNOps.h"

#include "mlir/Dialect/Arith/IR/Arith.h"

#include <cmath>
#include <limits>

using namespace mlir;

namespace peft::codegen {
namespace {

enum class Kind { Sum, Mean, Prod, Max, Min };

/// A run of adjacent dims, all reduced or all kept: its extent and its
/// stride in the input.
struct DimGroup {
  int64_t size, stride;
};

Value combine(OpBuilder &b, Location loc, Kind kind, Value acc, Value v) {
  bool isFloat = isa<FloatType>(acc.getType());
  auto reassoc = arith::FastMathFlagsAttr::get(b.getContext(),
                                               arith::FastMathFlags::reassoc);
  switch (kind) {
  case Kind::Sum:
  case Kind::Mean:
    return isFloat ? b.create<arith::AddFOp>(loc, acc, v, reassoc).getResult()
                   : b.create<arith::AddIOp>(loc, acc, v).getResult();
  case Kind::Prod:
    return isFloat ? b.create<arith::MulFOp>(loc, acc, v, reassoc).getResult()
                   : b.create<arith::MulIOp>(loc, acc, v).getResult();
  case Kind::Max:
  case Kind::Min: {
    if (!isFloat)
      return kind == Kind::Max
                 ? b.create<arith::MaxSIOp>(loc, acc, v).getResult()
                 : b.create<arith::MinSIOp>(loc, acc, v).getResult();
    // As the reference: `acc = (isnan(v) || v > acc) ? v : acc`.
    Value better =
        b.create<arith::CmpFOp>(loc,
                                kind == Kind::Max ? arith::CmpFPredicate::OGT
                                                  : arith::CmpFPredicate::OLT,
                                v, acc);
    Value vNan = b.create<arith::CmpFOp>(loc, arith::CmpFPredicate::UNO, v, v);
    Value take = b.create<arith::OrIOp>(loc, vNan, better);
    return b.create<arith::SelectOp>(loc, take, v, acc);
  }
  }
  return acc;
}

/// The accumulator's start: 0, 1, or the extreme the reference gives an
/// empty max/min (-inf/+inf, saturated to the integer type's limits).
Value initialValue(OpBuilder &b, Location loc, Kind kind, Type elem,
                   Type accType) {
  switch (kind) {
  case Kind::Sum:
  case Kind::Mean:
    return scalarConst(b, loc, accType, 0);
  case Kind::Prod:
    return scalarConst(b, loc, accType, 1);
  case Kind::Max:
  case Kind::Min:
    break;
  }
  bool isMax = kind == Kind::Max;
  if (isa<FloatType>(accType))
    return scalarConst(b, loc, accType, isMax ? -INFINITY : INFINITY);
  unsigned width = elem.getIntOrFloatBitWidth();
  if (width == 1)
    return intConst(b, loc, accType, isMax ? 0 : 1);
  if (isUnsignedInteger(elem))
    return intConst(b, loc, accType,
                    isMax ? 0 : (int64_t)((1ull << width) - 1));
  int64_t lo = std::numeric_limits<int64_t>::min() >> (64 - width);
  int64_t hi = std::numeric_limits<int64_t>::max() >> (64 - width);
  return intConst(b, loc, accType, isMax ? lo : hi);
}

/// Accumulates over the reduced groups (nested loops, outermost first).
Value reduceGroups(OpBuilder &b, Location loc, ArrayRef<DimGroup> groups,
                   Value offset, Value acc, Value input, Type elem, Kind kind) {
  if (groups.empty()) {
    Value v = loadElement(b, loc, input, offset, elem);
    if (v.getType() != acc.getType())
      v = b.create<arith::ExtUIOp>(loc, acc.getType(), v);
    return combine(b, loc, kind, acc, v);
  }
  DimGroup g = groups.front();
  return forLoop(b, loc, 0, g.size, acc,
                 [&](OpBuilder &nb, Location nloc, Value iv, ValueRange it) {
                   Value off = nb.create<arith::AddIOp>(
                       nloc, offset, linearize(nb, nloc, iv, {g.stride}));
                   return SmallVector<Value>{
                       reduceGroups(nb, nloc, groups.drop_front(), off, it[0],
                                    input, elem, kind)};
                 })[0];
}

LogicalResult emitReduce(LoopEmitContext &ctx, Kind kind,
                         ArrayRef<int64_t> axes) {
  Operation *op = ctx.op();
  Value input = op->getOperand(0);
  ArrayRef<int64_t> shape = shapeOf(input);
  Type elem = elementTypeOf(input);
  Type outElem = elementTypeOf(op->getResult(0));
  SmallVector<int64_t> strides = rowMajorStrides(shape);
  SmallVector<bool> reduced(shape.size(), false);
  for (int64_t a : axes)
    reduced[a] = true;
  // Kept dims (in order) and reduced groups (adjacent reduced dims merged).
  SmallVector<int64_t> keptShape, keptStrides;
  SmallVector<DimGroup> groups;
  int64_t count = 1;
  for (size_t d = 0; d < shape.size(); ++d) {
    if (!reduced[d]) {
      keptShape.push_back(shape[d]);
      keptStrides.push_back(strides[d]);
      continue;
    }
    count *= shape[d];
    if (d > 0 && reduced[d - 1] && !groups.empty())
      groups.back() = {groups.back().size * shape[d], strides[d]};
    else
      groups.push_back({shape[d], strides[d]});
  }
  Type accType = computeType(elem);
  if (accType.isInteger(1))
    accType = ctx.builder().getI64Type();
  Value in = ctx.operandBuffer(0), out = ctx.resultBuffer(0);
  return ctx.parallel(numElementsOf(keptShape), [&](OpBuilder &b, Location loc,
                                                    Value iv) {
    Value base =
        linearize(b, loc, delinearize(b, loc, iv, keptShape), keptStrides);
    Value acc =
        reduceGroups(b, loc, groups, base,
                     initialValue(b, loc, kind, elem, accType), in, elem, kind);
    if (kind == Kind::Mean) {
      if (isa<FloatType>(accType))
        acc = b.create<arith::DivFOp>(
            loc, acc, scalarConst(b, loc, accType, (double)count));
      else
        acc = count ? b.create<arith::DivSIOp>(loc, acc,
                                               intConst(b, loc, accType, count))
                          .getResult()
                    : intConst(b, loc, accType, 0);
    }
    if (outElem.isInteger(1))
      acc = b.create<arith::CmpIOp>(loc, arith::CmpIPredicate::ne, acc,
                                    intConst(b, loc, accType, 0));
    storeElement(b, loc, acc, out, iv, outElem);
    return success();
  });
}

template <typename OpTy> LoopEmitterFn reduceEmitter(Kind kind) {
  return [kind](LoopEmitContext &ctx) {
    return emitReduce(ctx, kind, cast<OpTy>(ctx.op()).getAxes());
  };
}

/// Whether candidate `v` replaces the current best `cur` of an arg-reduction
/// (the reference's rule): a NaN best is replaced only by a later NaN with
/// select_last_index; a NaN candidate wins otherwise; else strictly better,
/// or equal with select_last_index.
Value isBetter(OpBuilder &b, Location loc, Value v, Value cur, bool isMax,
               bool last) {
  Value t = b.create<arith::ConstantOp>(loc, b.getBoolAttr(true));
  Value f = b.create<arith::ConstantOp>(loc, b.getBoolAttr(false));
  if (isa<FloatType>(v.getType())) {
    auto cmp = [&](arith::CmpFPredicate p, Value x, Value y) -> Value {
      return b.create<arith::CmpFOp>(loc, p, x, y);
    };
    Value strict = cmp(
        isMax ? arith::CmpFPredicate::OGT : arith::CmpFPredicate::OLT, v, cur);
    Value tie = last ? cmp(arith::CmpFPredicate::OEQ, v, cur) : f;
    Value ordinary = b.create<arith::OrIOp>(loc, strict, tie);
    Value vNan = cmp(arith::CmpFPredicate::UNO, v, v);
    Value curNan = cmp(arith::CmpFPredicate::UNO, cur, cur);
    Value whenCurNan = last ? vNan : f;
    Value whenCurNumber = b.create<arith::SelectOp>(loc, vNan, t, ordinary);
    return b.create<arith::SelectOp>(loc, curNan, whenCurNan, whenCurNumber);
  }
  if (v.getType().isInteger(1)) {
    v = b.create<arith::ExtUIOp>(loc, b.getI64Type(), v);
    cur = b.create<arith::ExtUIOp>(loc, b.getI64Type(), cur);
  }
  Value strict = b.create<arith::CmpIOp>(
      loc, isMax ? arith::CmpIPredicate::sgt : arith::CmpIPredicate::slt, v,
      cur);
  if (!last)
    return strict;
  return b.create<arith::OrIOp>(
      loc, strict,
      b.create<arith::CmpIOp>(loc, arith::CmpIPredicate::eq, v, cur));
}

/// Index of the max (min) along `axis`, as the reference: ties keep the
/// first index unless select_last_index; NaN counts as the extreme.
template <typename OpTy> LoopEmitterFn argEmitter(bool isMax) {
  return [isMax](LoopEmitContext &ctx) -> LogicalResult {
    auto op = cast<OpTy>(ctx.op());
    Value input = op.getInput();
    ArrayRef<int64_t> shape = shapeOf(input);
    Type elem = elementTypeOf(input);
    int64_t axis = (int64_t)op.getAxis();
    bool last = op.getSelectLastIndex();
    int64_t len = shape[axis], inner = 1, outer = 1;
    for (int64_t d = 0; d < axis; ++d)
      outer *= shape[d];
    for (int64_t d = axis + 1; d < (int64_t)shape.size(); ++d)
      inner *= shape[d];
    Value in = ctx.operandBuffer(0), out = ctx.resultBuffer(0);
    Type resElem = elementTypeOf(op.getResult());
    return ctx.parallel(len ? outer * inner : 0, [&](OpBuilder &b, Location loc,
                                                     Value iv) {
      Value o = b.create<arith::DivUIOp>(loc, iv, indexConst(b, loc, inner));
      Value i = b.create<arith::RemUIOp>(loc, iv, indexConst(b, loc, inner));
      Value base = b.create<arith::AddIOp>(
          loc, b.create<arith::MulIOp>(loc, o, indexConst(b, loc, len * inner)),
          i);
      Value first = loadElement(b, loc, in, base, elem);
      Value zero = indexConst(b, loc, 0);
      ValueRange best = forLoop(
          b, loc, 1, len, ValueRange{first, zero},
          [&](OpBuilder &nb, Location nl, Value k, ValueRange it) {
            Value off = nb.create<arith::AddIOp>(
                nl, base,
                nb.create<arith::MulIOp>(nl, k, indexConst(nb, nl, inner)));
            Value v = loadElement(nb, nl, in, off, elem);
            Value better = isBetter(nb, nl, v, it[0], isMax, last);
            return SmallVector<Value>{
                nb.create<arith::SelectOp>(nl, better, v, it[0]),
                nb.create<arith::SelectOp>(nl, better, k, it[1])};
          });
      Value idx = b.create<arith::IndexCastOp>(loc, b.getI64Type(), best[1]);
      storeElement(b, loc, idx, out, iv, resElem);
      return success();
    });
  };
}

} // namespace

void registerReductionEmitters(EmitterRegistry &r) {
  r.addLoop("nn.reduce_sum", reduceEmitter<nn::ReduceSumOp>(Kind::Sum));
  r.addLoop("nn.reduce_mean", reduceEmitter<nn::ReduceMeanOp>(Kind::Mean));
  r.addLoop("nn.reduce_prod", reduceEmitter<nn::ReduceProdOp>(Kind::Prod));
  r.addLoop("nn.reduce_max", reduceEmitter<nn::ReduceMaxOp>(Kind::Max));
  r.addLoop("nn.reduce_min", reduceEmitter<nn::ReduceMinOp>(Kind::Min));
  r.addLoop("nn.argmax", argEmitter<nn::ArgMaxOp>(/*isMax=*/true));
  r.addLoop("nn.argmin", argEmitter<nn::ArgMinOp>(/*isMax=*/false));
}

} // namespace peft::codegen
