//===- ReftEmitters.cpp - ReFT positions, row masks, Householder sweeps ---===//
//
// The ReFT ops that survive peft-decompose (passes/lowering/
// ReftDecompositions.cpp turns peft.loreft, peft.nodireft and the
// Householder map into GEMMs, elementwise ops and these):
//
//   peft.reft_positions      one parallel iteration per position slot, its
//                            closed form from the example's prompt length;
//   peft.intervention_mask   one per row of [batch, T], scanning the
//                            example's positions;
//   peft.householder_sweep   one per column of the swept matrix: the column
//                            goes through the k reflectors in turn, each
//                            step reading the slice it wrote before (the
//                            result holds every partial product, so no
//                            scratch is needed).
//
// Each follows codegen/reference/ReftKernels.cpp (sums in f64, in the same
// order), so f64 results equal the reference's bit for bit. What the
// reference reports as an error (a negative prompt length, a position
// outside the sequence) cannot fail a kernel: a negative length selects no
// position and an outside position selects no row.
//
//===----------------------------------------------------------------------===//
#include "codegen/cpu/EmitterSupport.h"

#include "dialects/peft/PeftOps.h"

using namespace mlir;

namespace peft::codegen {
namespace {

/// f64 arithmetic on scalar values.
Value addF(OpBuilder &b, Location loc, Value x, Value y) {
  return b.create<arith::AddFOp>(loc, x, y);
}
Value mulF(OpBuilder &b, Location loc, Value x, Value y) {
  return b.create<arith::MulFOp>(loc, x, y);
}
Value subF(OpBuilder &b, Location loc, Value x, Value y) {
  return b.create<arith::SubFOp>(loc, x, y);
}

/// pyreft's get_intervention_locations per slot: slot i of example b is the
/// i-th position of [0, f) ∪ [L − l, L) (as the group selects) plus
/// `offset`, or −1 past the end, with f = min(L / 2, first_n) and
/// l = min(L / 2, last_n).
LogicalResult emitReftPositions(LoopEmitContext &ctx) {
  auto op = cast<pir::ReftPositionsOp>(ctx.op());
  int64_t firstN = op.getFirst(), lastN = op.getLast();
  int64_t offset = op.getPositionOffset();
  StringRef group = op.getGroup();
  Source lengths(ctx, op.getPromptLengths());
  Value out = ctx.buffer(op.getResult());
  ArrayRef<int64_t> shape = shapeOf(op.getResult());
  int64_t batch = shape[0], count = shape[1];
  Type i64 = ctx.builder().getI64Type();
  return ctx.parallel(batch * count, [&](OpBuilder &b, Location loc, Value iv) {
    IndexMath m(b, loc);
    Value example = m.div(iv, count);
    Value slot = m.toI64(m.rem(iv, count));
    Value length = lengths.readInt(b, loc, example);
    length = m.select(m.lt(length, 0), intConst(b, loc, i64, 0), length);
    Value half = m.div(length, 2);
    auto atMost = [&](Value v, int64_t bound) {
      return m.select(
          m.cmp(arith::CmpIPredicate::slt, v, intConst(b, loc, i64, bound)), v,
          intConst(b, loc, i64, bound));
    };
    Value first =
        group == "last" ? intConst(b, loc, i64, 0) : atMost(half, firstN);
    Value last =
        group == "first" ? intConst(b, loc, i64, 0) : atMost(half, lastN);
    // Slots [0, first) hold the first positions, [first, first + last) the
    // last ones, the rest −1.
    Value inFirst = m.cmp(arith::CmpIPredicate::slt, slot, first);
    Value lastSlot = m.sub(slot, first);
    Value inLast = m.cmp(arith::CmpIPredicate::slt, lastSlot, last);
    Value lastPosition = m.add(m.sub(length, last), lastSlot);
    Value position =
        m.select(inFirst, slot,
                 m.select(inLast, lastPosition, intConst(b, loc, i64, -1)));
    Value real =
        m.cmp(arith::CmpIPredicate::sge, position, intConst(b, loc, i64, 0));
    position = m.select(real, m.add(position, offset), position);
    storeElement(b, loc, position, out, iv, elementTypeOf(op.getResult()));
    return success();
  });
}

/// mask[b, t] = 1 when one of positions[b, :] is t.
LogicalResult emitInterventionMask(LoopEmitContext &ctx) {
  auto op = cast<pir::InterventionMaskOp>(ctx.op());
  Source positions(ctx, op.getPositions());
  Value out = ctx.buffer(op.getResult());
  Type elem = elementTypeOf(op.getResult());
  ArrayRef<int64_t> shape = shapeOf(op.getResult());
  int64_t seq = shape[1], count = shapeOf(op.getPositions())[1];
  return ctx.parallel(
      shape[0] * seq, [&](OpBuilder &b, Location loc, Value iv) {
        IndexMath m(b, loc);
        Value example = m.div(iv, seq);
        Value t = m.toI64(m.rem(iv, seq));
        ValueRange found = forLoop(
            b, loc, 0, count, {b.create<arith::ConstantIntOp>(loc, 0, 1)},
            [&](OpBuilder &lb, Location ll, Value p,
                ValueRange acc) -> SmallVector<Value> {
              IndexMath lm(lb, ll);
              Value position =
                  positions.readInt(lb, ll, lm.add(lm.mul(example, count), p));
              return {lb.create<arith::OrIOp>(ll, acc[0], lm.eq(position, t))};
            });
        Type compute = computeType(elem);
        Value value = m.select(found[0], scalarConst(b, loc, compute, 1.0),
                               scalarConst(b, loc, compute, 0.0));
        storeElement(b, loc, value, out, iv, elem);
        return success();
      });
}

/// One column of S: starts as column c of M (or of I[n, k]), then each
/// reflector in sweep order maps slice `from` to slice `to`:
/// dot = Σ_{i≥j} v_j[i]·S[from][i, c], S[to][i, c] = S[from][i, c] −
/// tau_j·dot·v_j[i], with tau_j = 2 / (1 + Σ_{i>j} X[i, j]²).
LogicalResult emitHouseholderSweep(LoopEmitContext &ctx) {
  auto op = cast<pir::HouseholderSweepOp>(ctx.op());
  Source x(ctx, op.getInput());
  Source start;
  if (op.getStart())
    start = Source(ctx, op.getStart());
  Value out = ctx.buffer(op.getResult());
  Type elem = elementTypeOf(op.getResult());
  ArrayRef<int64_t> xs = shapeOf(op.getInput());
  int64_t n = xs[0], k = xs[1];
  int64_t cols = shapeOf(op.getResult())[2];
  bool adjoint = op.getAdjoint();
  return ctx.parallel(cols, [&](OpBuilder &b, Location loc, Value c) {
    IndexMath m(b, loc);
    Type f64 = b.getF64Type();
    // Element (slice, i, c) of S and element (i, j) of X.
    auto sIndex = [&](IndexMath &im, Value slice, Value i) {
      return im.add(im.add(im.mul(slice, n * cols), im.mul(i, cols)), c);
    };
    auto readS = [&](OpBuilder &lb, Location ll, Value slice, Value i) {
      IndexMath im(lb, ll);
      return toF64(lb, ll, loadElement(lb, ll, out, sIndex(im, slice, i), elem),
                   elem);
    };
    auto readX = [&](OpBuilder &lb, Location ll, Value i, Value j) {
      IndexMath im(lb, ll);
      return x.readF64(lb, ll, im.add(im.mul(i, k), j));
    };
    auto writeS = [&](OpBuilder &lb, Location ll, Value slice, Value i,
                      Value v) {
      IndexMath im(lb, ll);
      storeElement(lb, ll, fromF64(lb, ll, v, elem), out, sIndex(im, slice, i),
                   elem);
    };

    Value first = m.c(adjoint ? 0 : k);
    forLoop(b, loc, 0, n, {},
            [&](OpBuilder &lb, Location ll, Value i,
                ValueRange) -> SmallVector<Value> {
              IndexMath im(lb, ll);
              Value v;
              if (start.buffer) {
                v = start.readF64(lb, ll, im.add(im.mul(i, cols), c));
              } else {
                Value diagonal = im.eq(i, c);
                v = im.select(diagonal, scalarConst(lb, ll, f64, 1.0),
                              scalarConst(lb, ll, f64, 0.0));
              }
              writeS(lb, ll, first, i, v);
              return {};
            });

    forLoop(b, loc, 0, k, {},
            [&](OpBuilder &sb, Location sl, Value s,
                ValueRange) -> SmallVector<Value> {
              IndexMath sm(sb, sl);
              // Reflector j maps slice `from` to slice `to`.
              Value j = adjoint ? s : sm.sub(sm.c(k - 1), s);
              Value from = adjoint ? j : sm.add(j, 1);
              Value to = adjoint ? sm.add(j, 1) : j;
              Value below = sm.add(j, 1);
              Value zero = scalarConst(sb, sl, f64, 0.0);
              ValueRange sums = forLoop(
                  sb, sl, below, sm.c(n), {zero, readS(sb, sl, from, j)},
                  [&](OpBuilder &lb, Location ll, Value i,
                      ValueRange acc) -> SmallVector<Value> {
                    Value tail = readX(lb, ll, i, j);
                    return {addF(lb, ll, acc[0], mulF(lb, ll, tail, tail)),
                            addF(lb, ll, acc[1],
                                 mulF(lb, ll, tail, readS(lb, ll, from, i)))};
                  });
              Value tau = sb.create<arith::DivFOp>(
                  sl, scalarConst(sb, sl, f64, 2.0),
                  addF(sb, sl, scalarConst(sb, sl, f64, 1.0), sums[0]));
              Value scaled = mulF(sb, sl, tau, sums[1]);
              forLoop(sb, sl, sm.c(0), j, {},
                      [&](OpBuilder &lb, Location ll, Value i,
                          ValueRange) -> SmallVector<Value> {
                        writeS(lb, ll, to, i, readS(lb, ll, from, i));
                        return {};
                      });
              writeS(sb, sl, to, j,
                     subF(sb, sl, readS(sb, sl, from, j), scaled));
              forLoop(sb, sl, below, sm.c(n), {},
                      [&](OpBuilder &lb, Location ll, Value i,
                          ValueRange) -> SmallVector<Value> {
                        Value v = mulF(lb, ll, scaled, readX(lb, ll, i, j));
                        writeS(lb, ll, to, i,
                               subF(lb, ll, readS(lb, ll, from, i), v));
                        return {};
                      });
              return {};
            });
    return success();
  });
}

} // namespace

void registerReftEmitters(EmitterRegistry &registry) {
  registry.addLoop("peft.reft_positions", emitReftPositions);
  registry.addLoop("peft.intervention_mask", emitInterventionMask);
  registry.addLoop("peft.householder_sweep", emitHouseholderSweep);
}

} // namespace peft::codegen
