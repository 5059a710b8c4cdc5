//===- ShapeEmitters.cpp - loop kernels of data movement and indexing -----===//
//
// One parallel iteration per result element wherever each result element
// depends on inputs only (reshape, transpose, slice, concat, gathers,
// broadcast, pad, trilu, one_hot): the index arithmetic of the reference
// kernels in codegen/reference/ShapeKernels.cpp, evaluated per element.
// Elements move through their compute type, which holds every value of the
// storage type exactly, so data movement is bit-exact.
//
// The ops that accumulate (cumsum, scatters) iterate over the independent
// lines of the result and walk each line sequentially in the reference's
// order, so duplicate scatter indices combine exactly as there.
//
// Index tensors: negative indices count from the end as in the reference;
// an index still out of range, which the reference evaluator reports as an
// error, reads zero (gathers) or writes nothing (scatters), because a kernel
// cannot fail and must never touch memory outside its buffers.
//
//===----------------------------------------------------------------------===//
#include "codegen/cpu/EmitterSupport.h"

#include "dialects/nn/NNOps.h"

using namespace mlir;

namespace peft::codegen {
namespace {

using Pred = arith::CmpIPredicate;

/// Produces the value (compute type of the result) of result element `iv`.
using ElementFn =
    llvm::function_ref<Value(OpBuilder &, Location, Value iv, Type elem)>;

/// One parallel iteration per element of the op's single result.
LogicalResult emitPerElement(LoopEmitContext &ctx, ElementFn element) {
  Value result = ctx.op()->getResult(0);
  Value out = ctx.buffer(result);
  Type elem = elementTypeOf(result);
  return ctx.parallel(numElementsOf(shapeOf(result)),
                      [&](OpBuilder &b, Location loc, Value iv) {
                        storeElement(b, loc, element(b, loc, iv, elem), out, iv,
                                     elem);
                        return success();
                      });
}

int64_t product(ArrayRef<int64_t> dims) { return numElementsOf(dims); }

/// An index read from an index tensor for a dimension of size `dim`:
/// negative values count from the end. Returns the index (as `index`,
/// clamped to 0 when out of range, so it is always safe to address with)
/// and whether it was in range.
std::pair<Value, Value> wrapIndex(IndexMath &m, Value i64, int64_t dim) {
  Value wrapped = m.select(m.lt(i64, 0), m.add(i64, dim), i64);
  Value valid = m.land(m.ge(wrapped, 0), m.lt(wrapped, dim));
  return {m.select(valid, m.toIndex(wrapped), m.c(0)), valid};
}

//===----------------------------------------------------------------------===//
// Pure data movement
//===----------------------------------------------------------------------===//

LogicalResult emitReshape(LoopEmitContext &ctx) {
  Source x(ctx, ctx.op()->getOperand(0));
  return emitPerElement(ctx,
                        [&](OpBuilder &b, Location loc, Value iv, Type elem) {
                          return x.read(b, loc, iv, elem);
                        });
}

LogicalResult emitTranspose(LoopEmitContext &ctx) {
  auto op = cast<nn::TransposeOp>(ctx.op());
  Source x(ctx, op.getInput());
  SmallVector<int64_t> inStrides = rowMajorStrides(shapeOf(op.getInput()));
  SmallVector<int64_t> strides; // input stride of each result dim
  for (int64_t p : op.getPerm())
    strides.push_back(inStrides[p]);
  ArrayRef<int64_t> outShape = shapeOf(op.getResult());
  return emitPerElement(
      ctx, [&](OpBuilder &b, Location loc, Value iv, Type elem) {
        SmallVector<Value> idx = delinearize(b, loc, iv, outShape);
        return x.read(b, loc, linearize(b, loc, idx, strides), elem);
      });
}

LogicalResult emitSlice(LoopEmitContext &ctx) {
  auto op = cast<nn::SliceOp>(ctx.op());
  Source x(ctx, op.getInput());
  SmallVector<int64_t> inStrides = rowMajorStrides(shapeOf(op.getInput()));
  ArrayRef<int64_t> starts = op.getStarts(), steps = op.getSteps();
  // src = sum((starts[d] + idx[d] * steps[d]) * inStrides[d]).
  int64_t base = 0;
  SmallVector<int64_t> strides;
  for (size_t d = 0; d < inStrides.size(); ++d) {
    base += starts[d] * inStrides[d];
    strides.push_back(steps[d] * inStrides[d]);
  }
  ArrayRef<int64_t> outShape = shapeOf(op.getResult());
  return emitPerElement(ctx, [&](OpBuilder &b, Location loc, Value iv,
                                 Type elem) {
    IndexMath m(b, loc);
    SmallVector<Value> idx = delinearize(b, loc, iv, outShape);
    return x.read(b, loc, m.add(linearize(b, loc, idx, strides), base), elem);
  });
}

LogicalResult emitConcat(LoopEmitContext &ctx) {
  auto op = cast<nn::ConcatOp>(ctx.op());
  int64_t axis = op.getAxis();
  ArrayRef<int64_t> shape = shapeOf(op.getResult());
  int64_t inner = product(shape.drop_front(axis + 1)), outAxis = shape[axis];
  // The inputs that own a part of the axis, with the offset of that part.
  struct Part {
    Source source;
    int64_t begin, size;
  };
  SmallVector<Part> parts;
  int64_t offset = 0;
  for (Value input : op.getInputs()) {
    int64_t size = shapeOf(input)[axis];
    if (size > 0)
      parts.push_back({Source(ctx, input), offset, size});
    offset += size;
  }
  if (parts.empty()) // every input is empty along the axis: so is the result
    return emitPerElement(ctx, [&](OpBuilder &b, Location loc, Value,
                                   Type elem) { return zeroOf(b, loc, elem); });
  return emitPerElement(ctx, [&](OpBuilder &b, Location loc, Value iv,
                                 Type elem) {
    IndexMath m(b, loc);
    Value a = m.rem(m.div(iv, inner), outAxis);
    Value o = m.div(iv, inner * outAxis), i = m.rem(iv, inner);
    // Part j reads [o, a - begin, i] of its input; the parts are
    // tested in axis order, each branch only loading from its own.
    std::function<Value(OpBuilder &, Location, size_t)> pick =
        [&](OpBuilder &pb, Location pl, size_t j) -> Value {
      IndexMath pm(pb, pl);
      const Part &p = parts[j];
      auto read = [&](OpBuilder &rb, Location rl) -> SmallVector<Value> {
        IndexMath rm(rb, rl);
        Value src = rm.add(
            rm.mul(rm.add(rm.mul(o, p.size), rm.sub(a, p.begin)), inner), i);
        return {p.source.read(rb, rl, src, elem)};
      };
      if (j + 1 == parts.size())
        return read(pb, pl)[0];
      return ifElse(pb, pl, pm.lt(a, parts[j + 1].begin), read,
                    [&](OpBuilder &eb, Location el) -> SmallVector<Value> {
                      return {pick(eb, el, j + 1)};
                    })[0];
    };
    return pick(b, loc, 0);
  });
}

LogicalResult emitBroadcastTo(LoopEmitContext &ctx) {
  Operation *op = ctx.op();
  Source x(ctx, op->getOperand(0));
  ArrayRef<int64_t> in = shapeOf(op->getOperand(0));
  ArrayRef<int64_t> out = shapeOf(op->getResult(0));
  return emitPerElement(
      ctx, [&](OpBuilder &b, Location loc, Value iv, Type elem) {
        return x.read(b, loc, broadcastIndex(b, loc, iv, out, in), elem);
      });
}

/// Where a pad reads coordinate `s` of a dimension of size `n` from (the
/// reference's padSource): the returned index is always inside [0, n) and
/// `outside` says whether the fill value replaces the element instead.
/// Inside [0, n) every mode reads `s` itself.
std::pair<Value, Value> padSource(IndexMath &m, StringRef mode, Value s,
                                  int64_t n) {
  if (n == 0)
    return {m.c(0), m.trueVal()};
  if (mode == "edge") {
    Value clamped = m.select(m.lt(s, 0), m.c(0), s);
    clamped = m.select(m.ge(clamped, n), m.c(n - 1), clamped);
    return {clamped, Value()};
  }
  if (mode == "wrap")
    return {m.rem(m.add(m.rem(s, n), n), n), Value()};
  if (mode == "reflect") {
    if (n == 1)
      return {m.c(0), Value()};
    int64_t period = 2 * (n - 1);
    Value r = m.rem(m.add(m.rem(s, period), period), period);
    return {m.select(m.lt(r, n), r, m.sub(m.c(period), r)), Value()};
  }
  Value inside = m.land(m.ge(s, 0), m.lt(s, n));
  return {m.select(inside, s, m.c(0)), m.lnot(inside)};
}

LogicalResult emitPad(LoopEmitContext &ctx) {
  auto op = cast<nn::PadOp>(ctx.op());
  StringRef mode = op.getMode();
  if (mode != "constant" && mode != "edge" && mode != "wrap" &&
      mode != "reflect")
    return op.emitError("nn.pad: unknown mode '") << mode << "'";
  Source x(ctx, op.getInput());
  std::optional<Source> fill;
  if (op.getValue())
    fill = Source(ctx, op.getValue());
  ArrayRef<int64_t> inShape = shapeOf(op.getInput());
  ArrayRef<int64_t> outShape = shapeOf(op.getResult());
  ArrayRef<int64_t> low = op.getLow();
  SmallVector<int64_t> inStrides = rowMajorStrides(inShape);
  return emitPerElement(ctx, [&](OpBuilder &b, Location loc, Value iv,
                                 Type elem) {
    IndexMath m(b, loc);
    SmallVector<Value> idx = delinearize(b, loc, iv, outShape);
    Value src = m.c(0), filled;
    for (size_t d = 0; d < idx.size(); ++d) {
      auto [s, outside] = padSource(m, mode, m.sub(idx[d], low[d]), inShape[d]);
      src = m.add(src, m.mul(s, inStrides[d]));
      if (outside)
        filled = filled ? b.createOrFold<arith::OrIOp>(loc, filled, outside)
                        : outside;
    }
    Value v = x.read(b, loc, src, elem);
    if (!filled)
      return v;
    Value fillValue =
        fill ? fill->read(b, loc, m.c(0), elem) : zeroOf(b, loc, elem);
    return m.select(filled, fillValue, v);
  });
}

LogicalResult emitTrilu(LoopEmitContext &ctx) {
  auto op = cast<nn::TriluOp>(ctx.op());
  bool upper = op.getUpper();
  int64_t k = static_cast<int64_t>(op.getK());
  Source x(ctx, op.getInput());
  ArrayRef<int64_t> shape = shapeOf(op.getInput());
  int64_t rows = shape[shape.size() - 2], cols = shape.back();
  return emitPerElement(
      ctx, [&](OpBuilder &b, Location loc, Value iv, Type elem) {
        IndexMath m(b, loc);
        Value j = m.rem(iv, cols), i = m.rem(m.div(iv, cols), rows);
        Value diag = m.sub(j, i);
        Value keep = upper ? m.ge(diag, k) : m.cmp(Pred::sle, diag, m.c(k));
        return m.select(keep, x.read(b, loc, iv, elem), zeroOf(b, loc, elem));
      });
}

//===----------------------------------------------------------------------===//
// Gathers and one_hot
//===----------------------------------------------------------------------===//

LogicalResult emitGather(LoopEmitContext &ctx) {
  auto op = cast<nn::GatherOp>(ctx.op());
  int64_t axis = op.getAxis();
  Source data(ctx, op.getData()), indices(ctx, op.getIndices());
  ArrayRef<int64_t> shape = shapeOf(op.getData());
  int64_t dim = shape[axis], inner = product(shape.drop_front(axis + 1));
  int64_t count = product(shapeOf(op.getIndices()));
  return emitPerElement(ctx, [&](OpBuilder &b, Location loc, Value iv,
                                 Type elem) {
    IndexMath m(b, loc);
    Value o = m.div(iv, count * inner), n = m.rem(m.div(iv, inner), count);
    Value i = m.rem(iv, inner);
    auto [at, valid] = wrapIndex(m, indices.readInt(b, loc, n), dim);
    Value src = m.add(m.mul(m.add(m.mul(o, dim), at), inner), i);
    return m.select(valid, data.read(b, loc, src, elem), zeroOf(b, loc, elem));
  });
}

LogicalResult emitGatherElements(LoopEmitContext &ctx) {
  auto op = cast<nn::GatherElementsOp>(ctx.op());
  size_t axis = op.getAxis();
  Source data(ctx, op.getData()), indices(ctx, op.getIndices());
  ArrayRef<int64_t> ds = shapeOf(op.getData()), is = shapeOf(op.getIndices());
  for (size_t d = 0; d < is.size(); ++d)
    if (d != axis && is[d] > ds[d])
      return op.emitError("nn.gather_elements: indices dim ")
             << d << " (" << is[d] << ") reaches past data dim (" << ds[d]
             << ")";
  SmallVector<int64_t> dataStrides = rowMajorStrides(ds);
  return emitPerElement(
      ctx, [&](OpBuilder &b, Location loc, Value iv, Type elem) {
        IndexMath m(b, loc);
        SmallVector<Value> idx = delinearize(b, loc, iv, is);
        auto [at, valid] = wrapIndex(m, indices.readInt(b, loc, iv), ds[axis]);
        idx[axis] = at;
        return m.select(
            valid, data.read(b, loc, linearize(b, loc, idx, dataStrides), elem),
            zeroOf(b, loc, elem));
      });
}

/// The offset in a tensor of shape `shape` of the index tuple
/// indices[tuple * k .. tuple * k + k) over dims [first, first + k), and
/// whether every index of the tuple is in range.
std::pair<Value, Value> tupleOffset(OpBuilder &b, Location loc,
                                    const Source &indices, Value tuple,
                                    int64_t k, int64_t first,
                                    ArrayRef<int64_t> shape) {
  IndexMath m(b, loc);
  SmallVector<int64_t> strides = rowMajorStrides(shape);
  Value offset = m.c(0), valid = m.trueVal();
  for (int64_t j = 0; j < k; ++j) {
    Value at = m.add(m.mul(tuple, k), j);
    auto [i, ok] = wrapIndex(m, indices.readInt(b, loc, at), shape[first + j]);
    offset = m.add(offset, m.mul(i, strides[first + j]));
    valid = m.land(valid, ok);
  }
  return {offset, valid};
}

LogicalResult emitGatherND(LoopEmitContext &ctx) {
  auto op = cast<nn::GatherNDOp>(ctx.op());
  int64_t bdims = op.getBatchDims();
  Source data(ctx, op.getData()), indices(ctx, op.getIndices());
  ArrayRef<int64_t> ds = shapeOf(op.getData()), is = shapeOf(op.getIndices());
  if (is.empty() || bdims + is.back() > (int64_t)ds.size())
    return op.emitError("nn.gather_nd: index tuples of length ")
           << (is.empty() ? 0 : is.back()) << " after " << bdims
           << " batch dims exceed the data rank " << ds.size();
  int64_t k = is.back();
  int64_t perBatch = product(is.drop_front(bdims).drop_back());
  int64_t batchStride = product(ds.drop_front(bdims));
  int64_t inner = product(ds.drop_front(bdims + k));
  return emitPerElement(ctx, [&](OpBuilder &b, Location loc, Value iv,
                                 Type elem) {
    IndexMath m(b, loc);
    Value tuple = m.div(iv, inner), e = m.rem(iv, inner);
    Value batch = m.div(tuple, perBatch);
    auto [offset, valid] = tupleOffset(b, loc, indices, tuple, k, bdims, ds);
    Value src = m.add(m.add(m.mul(batch, batchStride), offset), e);
    return m.select(valid, data.read(b, loc, src, elem), zeroOf(b, loc, elem));
  });
}

LogicalResult emitOneHot(LoopEmitContext &ctx) {
  auto op = cast<nn::OneHotOp>(ctx.op());
  int64_t depth = op.getDepth(), axis = op.getAxis();
  Source indices(ctx, op.getIndices()), values(ctx, op.getValues());
  ArrayRef<int64_t> is = shapeOf(op.getIndices());
  int64_t inner = product(is.drop_front(axis));
  return emitPerElement(
      ctx, [&](OpBuilder &b, Location loc, Value iv, Type elem) {
        IndexMath m(b, loc);
        Value o = m.div(iv, depth * inner);
        Value d = m.rem(m.div(iv, inner), depth), i = m.rem(iv, inner);
        Value index = indices.readInt(b, loc, m.add(m.mul(o, inner), i));
        index = m.select(m.lt(index, 0), m.add(index, depth), index);
        Value on = m.eq(m.toI64(d), index);
        return m.select(on, values.read(b, loc, m.c(1), elem),
                        values.read(b, loc, m.c(0), elem));
      });
}

//===----------------------------------------------------------------------===//
// Accumulating ops: cumsum and scatters
//===----------------------------------------------------------------------===//

LogicalResult emitCumSum(LoopEmitContext &ctx) {
  auto op = cast<nn::CumSumOp>(ctx.op());
  int64_t axis = op.getAxis();
  bool exclusive = op.getExclusive(), reverse = op.getReverse();
  Source x(ctx, op.getInput());
  Value out = ctx.buffer(op.getResult());
  Type elem = elementTypeOf(op.getResult());
  ArrayRef<int64_t> shape = shapeOf(op.getInput());
  int64_t outer = product(shape.take_front(axis));
  int64_t dim = shape.empty() ? 1 : shape[axis];
  int64_t inner =
      product(shape.drop_front(std::min<size_t>(axis + 1, shape.size())));
  // The reference sums floats in double and integers in int64.
  bool isInt = !isa<FloatType>(elem);
  return ctx.parallel(outer * inner, [&](OpBuilder &b, Location loc, Value iv) {
    IndexMath m(b, loc);
    Value o = m.div(iv, inner), i = m.rem(iv, inner);
    Type accType = isInt ? Type(b.getI64Type()) : Type(b.getF64Type());
    Value zero = isInt ? intConst(b, loc, accType, 0)
                       : scalarConst(b, loc, accType, 0.0);
    forLoop(
        b, loc, 0, dim, {zero},
        [&](OpBuilder &lb, Location ll, Value s,
            ValueRange sum) -> SmallVector<Value> {
          IndexMath lm(lb, ll);
          Value a = reverse ? lm.sub(lm.c(dim - 1), s) : s;
          Value at = lm.add(lm.mul(lm.add(lm.mul(o, dim), a), inner), i);
          Value v = isInt ? x.readInt(lb, ll, at)
                          : toF64(lb, ll, x.read(lb, ll, at, x.elem), x.elem);
          Value next = isInt ? lb.createOrFold<arith::AddIOp>(ll, sum[0], v)
                             : lb.createOrFold<arith::AddFOp>(ll, sum[0], v);
          Value result = exclusive ? sum[0] : next;
          result = isInt ? convertElement(lb, ll, result, lb.getI64Type(), elem)
                         : fromF64(lb, ll, result, elem);
          storeElement(lb, ll, result, out, at, elem);
          return {next};
        });
    return success();
  });
}

/// A scatter's combination of the current element `a` with update `u`, as
/// the reference's scatterOne: floats in their compute type (one rounding,
/// like double then rounding to the element type), integers in int64.
Value combine(OpBuilder &b, Location loc, StringRef reduction, Value a, Value u,
              Type elem) {
  if (reduction == "none")
    return u;
  bool isInt = !isa<FloatType>(elem);
  Type i64 = b.getI64Type();
  if (isInt) {
    a = convertElement(b, loc, a, elem, i64);
    u = convertElement(b, loc, u, elem, i64);
  }
  Value r;
  if (reduction == "add")
    r = isInt ? b.create<arith::AddIOp>(loc, a, u).getResult()
              : b.create<arith::AddFOp>(loc, a, u).getResult();
  else if (reduction == "mul")
    r = isInt ? b.create<arith::MulIOp>(loc, a, u).getResult()
              : b.create<arith::MulFOp>(loc, a, u).getResult();
  else {
    // std::max(a, u) keeps `a` unless a < u; std::min(a, u) unless u < a.
    bool isMax = reduction == "max";
    Value lhs = isMax ? a : u, rhs = isMax ? u : a;
    Value less =
        isInt
            ? b.create<arith::CmpIOp>(loc, Pred::slt, lhs, rhs).getResult()
            : b.create<arith::CmpFOp>(loc, arith::CmpFPredicate::OLT, lhs, rhs)
                  .getResult();
    r = b.create<arith::SelectOp>(loc, less, u, a);
  }
  return isInt ? convertElement(b, loc, r, i64, elem) : r;
}

/// A scatter whose result the kernel does not return has nothing to do.
LogicalResult emitNothing(LoopEmitContext &ctx) {
  return ctx.parallel(0,
                      [](OpBuilder &, Location, Value) { return success(); });
}

LogicalResult checkReduction(Operation *op, StringRef reduction) {
  if (reduction == "none" || reduction == "add" || reduction == "mul" ||
      reduction == "max" || reduction == "min")
    return success();
  return op->emitError(op->getName().getStringRef())
         << ": unknown reduction '" << reduction << "'";
}

/// One iteration per line along `axis` of the data: the line is copied,
/// then the updates whose indices share its other coordinates are applied
/// in index order (the order the reference visits them in).
LogicalResult emitScatterElements(LoopEmitContext &ctx) {
  auto op = cast<nn::ScatterElementsOp>(ctx.op());
  size_t axis = op.getAxis();
  StringRef reduction = op.getReduction();
  if (failed(checkReduction(op, reduction)))
    return failure();
  Source data(ctx, op.getData()), indices(ctx, op.getIndices()),
      updates(ctx, op.getUpdates());
  Value out = ctx.buffer(op.getResult());
  if (!out)
    return emitNothing(ctx);
  Type elem = elementTypeOf(op.getResult());
  ArrayRef<int64_t> ds = shapeOf(op.getData()), is = shapeOf(op.getIndices());
  for (size_t d = 0; d < is.size(); ++d)
    if (d != axis && is[d] > ds[d])
      return op.emitError("nn.scatter_elements: indices dim ")
             << d << " (" << is[d] << ") reaches past data dim (" << ds[d]
             << ")";
  SmallVector<int64_t> lineShape(ds);
  lineShape.erase(lineShape.begin() + axis);
  SmallVector<int64_t> dataStrides = rowMajorStrides(ds),
                       indexStrides = rowMajorStrides(is);
  return ctx.parallel(product(lineShape), [&](OpBuilder &b, Location loc,
                                              Value iv) {
    IndexMath m(b, loc);
    SmallVector<Value> line = delinearize(b, loc, iv, lineShape);
    auto coordsAt = [&](Value t) {
      SmallVector<Value> c(line);
      c.insert(c.begin() + axis, t);
      return c;
    };
    forLoop(b, loc, 0, ds[axis], {},
            [&](OpBuilder &lb, Location ll, Value t,
                ValueRange) -> SmallVector<Value> {
              Value at = linearize(lb, ll, coordsAt(t), dataStrides);
              storeElement(lb, ll, data.read(lb, ll, at, elem), out, at, elem);
              return {};
            });
    // Lines past the indices' extent receive no update.
    Value covered = m.trueVal();
    for (size_t d = 0, l = 0; d < ds.size(); ++d) {
      if (d == axis)
        continue;
      if (is[d] < ds[d])
        covered = m.land(covered, m.lt(line[l], is[d]));
      ++l;
    }
    ifThen(b, loc, covered, [&](OpBuilder &cb, Location cl) {
      forLoop(cb, cl, 0, is[axis], {},
              [&](OpBuilder &lb, Location ll, Value k,
                  ValueRange) -> SmallVector<Value> {
                IndexMath lm(lb, ll);
                Value p = linearize(lb, ll, coordsAt(k), indexStrides);
                auto [i, valid] =
                    wrapIndex(lm, indices.readInt(lb, ll, p), ds[axis]);
                Value index = i;
                ifThen(lb, ll, valid, [&](OpBuilder &vb, Location vl) {
                  Value at = linearize(vb, vl, coordsAt(index), dataStrides);
                  Value current = loadElement(vb, vl, out, at, elem);
                  Value u = updates.read(vb, vl, p, elem);
                  storeElement(vb, vl,
                               combine(vb, vl, reduction, current, u, elem),
                               out, at, elem);
                });
                return {};
              });
    });
    return success();
  });
}

/// One iteration per element position inside the scattered slices: the
/// position is copied in every slice, then every index tuple's update for
/// it is applied in tuple order.
LogicalResult emitScatterND(LoopEmitContext &ctx) {
  auto op = cast<nn::ScatterNDOp>(ctx.op());
  StringRef reduction = op.getReduction();
  if (failed(checkReduction(op, reduction)))
    return failure();
  Source data(ctx, op.getData()), indices(ctx, op.getIndices()),
      updates(ctx, op.getUpdates());
  Value out = ctx.buffer(op.getResult());
  if (!out)
    return emitNothing(ctx);
  Type elem = elementTypeOf(op.getResult());
  ArrayRef<int64_t> ds = shapeOf(op.getData()), is = shapeOf(op.getIndices());
  if (is.empty() || is.back() > (int64_t)ds.size())
    return op.emitError("nn.scatter_nd: index tuples of length ")
           << (is.empty() ? 0 : is.back()) << " exceed the data rank "
           << ds.size();
  int64_t k = is.back();
  int64_t tuples = product(is) / std::max<int64_t>(k, 1);
  int64_t inner = product(ds.drop_front(k));
  int64_t slices = inner ? product(ds) / inner : 0;
  return ctx.parallel(inner, [&](OpBuilder &b, Location loc, Value e) {
    forLoop(b, loc, 0, slices, {},
            [&](OpBuilder &lb, Location ll, Value s,
                ValueRange) -> SmallVector<Value> {
              IndexMath lm(lb, ll);
              Value at = lm.add(lm.mul(s, inner), e);
              storeElement(lb, ll, data.read(lb, ll, at, elem), out, at, elem);
              return {};
            });
    forLoop(
        b, loc, 0, tuples, {},
        [&](OpBuilder &lb, Location ll, Value t,
            ValueRange) -> SmallVector<Value> {
          auto [tupleAt, valid] = tupleOffset(lb, ll, indices, t, k, 0, ds);
          Value offset = tupleAt;
          ifThen(lb, ll, valid, [&](OpBuilder &vb, Location vl) {
            IndexMath vm(vb, vl);
            Value at = vm.add(offset, e);
            Value current = loadElement(vb, vl, out, at, elem);
            Value u = updates.read(vb, vl, vm.add(vm.mul(t, inner), e), elem);
            storeElement(vb, vl, combine(vb, vl, reduction, current, u, elem),
                         out, at, elem);
          });
          return {};
        });
    return success();
  });
}

} // namespace

void registerShapeEmitters(EmitterRegistry &registry) {
  registry.addLoop("nn.reshape", emitReshape);
  registry.addLoop("nn.transpose", emitTranspose);
  registry.addLoop("nn.slice", emitSlice);
  registry.addLoop("nn.concat", emitConcat);
  registry.addLoop("nn.gather", emitGather);
  registry.addLoop("nn.gather_elements", emitGatherElements);
  registry.addLoop("nn.gather_nd", emitGatherND);
  registry.addLoop("nn.broadcast_to", emitBroadcastTo);
  registry.addLoop("nn.pad", emitPad);
  registry.addLoop("nn.trilu", emitTrilu);
  registry.addLoop("nn.cumsum", emitCumSum);
  registry.addLoop("nn.scatter_elements", emitScatterElements);
  registry.addLoop("nn.scatter_nd", emitScatterND);
  registry.addLoop("nn.one_hot", emitOneHot);
}

} // namespace peft::codegen
