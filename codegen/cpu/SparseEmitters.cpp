//===- SparseEmitters.cpp - loop kernels of sparse fine-tuning's ops ------===//
//
// peft.sparse_delta: one parallel iteration per weight element, which looks
// its PyTorch-layout position up in the increasing indices by binary search
// (a fixed number of halvings, ceil(log2(k + 1)), so the loop has static
// bounds) and adds the delta where it finds it; no two iterations write
// one element, so the kernel parallelises over the weight like an
// elementwise op. peft.sparse_gather: one iteration per index.
//
// As codegen/reference/SparseKernels.cpp: the sum is the compute type's
// (f32 for f32: the reference's double sum rounded to f32 is the same
// number). Indices the reference rejects (not increasing, out of range)
// cannot be reported here: a sparse_delta then adds nothing where its
// search misses, a sparse_gather reads 0, and no access leaves a buffer.
//
//===----------------------------------------------------------------------===//
#include "codegen/cpu/EmitterSupport.h"

#include "dialects/peft/PeftOps.h"

using namespace mlir;

namespace peft::codegen {
namespace {

using Pred = arith::CmpIPredicate;

/// The PyTorch-layout position (index) of stored element `stored` (index)
/// of a weight of shape `shape`: itself, or for `transposed` (stored [a, b],
/// PyTorch's [b, a]) column·a + row.
Value pytorchPosition(IndexMath &m, Value stored, ArrayRef<int64_t> shape,
                      bool transposed) {
  if (!transposed)
    return stored;
  int64_t a = shape[0], b = shape[1];
  return m.add(m.mul(m.rem(stored, b), a), m.div(stored, b));
}

/// The stored element (index) of PyTorch-layout position `p` (index): the
/// inverse of pytorchPosition.
Value storedPosition(IndexMath &m, Value p, ArrayRef<int64_t> shape,
                     bool transposed) {
  if (!transposed)
    return p;
  int64_t a = shape[0], b = shape[1];
  return m.add(m.mul(m.rem(p, a), b), m.div(p, a));
}

LogicalResult emitSparseDelta(LoopEmitContext &ctx) {
  auto op = cast<pir::SparseDeltaOp>(ctx.op());
  Source weight(ctx, op.getWeight()), indices(ctx, op.getIndices()),
      values(ctx, op.getValues());
  Value out = ctx.buffer(op.getResult());
  Type elem = elementTypeOf(op.getResult());
  ArrayRef<int64_t> shape = shapeOf(op.getWeight());
  bool transposed = op.getTransposed();
  int64_t k = shapeOf(op.getIndices())[0];
  // Halvings that shrink [0, k] (k + 1 candidates) to one.
  int64_t halvings = 0;
  while ((int64_t(1) << halvings) <= k)
    ++halvings;
  return ctx.parallel(numElementsOf(shape), [&](OpBuilder &b, Location loc,
                                                Value iv) {
    IndexMath m(b, loc);
    Value position = m.toI64(pytorchPosition(m, iv, shape, transposed));
    // lower_bound: the first j with indices[j] >= position.
    ValueRange bounds =
        forLoop(b, loc, 0, halvings, {m.c(0), m.c(k)},
                [&](OpBuilder &lb, Location ll, Value,
                    ValueRange range) -> SmallVector<Value> {
                  IndexMath lm(lb, ll);
                  Value lo = range[0], hi = range[1];
                  Value open = lm.cmp(Pred::slt, lo, hi);
                  // lo < hi <= k keeps mid in range; a closed range reads index
                  // 0.
                  Value mid =
                      lm.select(open, lm.div(lm.add(lo, hi), 2), lm.c(0));
                  Value below =
                      lm.cmp(Pred::slt, indices.readInt(lb, ll, mid), position);
                  Value right = lm.land(open, below);
                  Value left = lm.land(open, lm.lnot(below));
                  return {lm.select(right, lm.add(mid, 1), lo),
                          lm.select(left, mid, hi)};
                });
    Value j = bounds[0];
    Value inside = m.cmp(Pred::slt, j, m.c(k));
    Value safe = m.select(inside, j, m.c(0));
    Value hit = m.land(inside, m.eq(indices.readInt(b, loc, safe), position));
    Value w = weight.read(b, loc, iv, elem);
    Value sum =
        b.create<arith::AddFOp>(loc, w, values.read(b, loc, safe, elem));
    storeElement(b, loc, m.select(hit, sum, w), out, iv, elem);
    return success();
  });
}

LogicalResult emitSparseGather(LoopEmitContext &ctx) {
  auto op = cast<pir::SparseGatherOp>(ctx.op());
  Source input(ctx, op.getInput()), indices(ctx, op.getIndices());
  Value out = ctx.buffer(op.getResult());
  Type elem = elementTypeOf(op.getResult());
  ArrayRef<int64_t> shape = shapeOf(op.getInput());
  int64_t numel = numElementsOf(shape);
  bool transposed = op.getTransposed();
  return ctx.parallel(shapeOf(op.getIndices())[0], [&](OpBuilder &b,
                                                       Location loc, Value iv) {
    IndexMath m(b, loc);
    Value p = indices.readInt(b, loc, iv);
    Value valid = m.land(m.ge(p, 0), m.lt(p, numel));
    Value at = storedPosition(m, m.toIndex(m.select(valid, p, m.toI64(m.c(0)))),
                              shape, transposed);
    Value x = input.read(b, loc, at, elem);
    storeElement(b, loc, m.select(valid, x, zeroOf(b, loc, elem)), out, iv,
                 elem);
    return success();
  });
}

} // namespace

void registerSparseEmitters(EmitterRegistry &registry) {
  registry.addLoop("peft.sparse_delta", emitSparseDelta);
  registry.addLoop("peft.sparse_gather", emitSparseGather);
}

} // namespace peft::codegen
