//===- ConvEmitters.cpp - loop kernels of convolution, pooling, einsum ----===//
//
// One parallel iteration per result element; each iteration walks the
// window (or summed labels) of its element with nested scf.for loops and
// accumulates in f64, the way codegen/reference/LinalgKernels.cpp and
// GradKernels.cpp do, so f32 results match the reference to the last bit.
//
// The reference computes conv_transpose, conv_weight_grad and the pooling
// gradients by scattering into an accumulator; here each result element
// gathers its contributions instead (no two iterations write one element).
// Contributions are added in the order the reference's scatter adds them:
// where that order is ascending in the input position it comes from, the
// window taps are visited in reverse row-major order, because along every
// spatial dim the input position falls as the tap index rises.
//
// Taps outside the input read a clamped, always valid address and are then
// discarded with a select, which keeps the loop bodies branch-free.
//
//===----------------------------------------------------------------------===//
#include "codegen/cpu/EmitterSupport.h"

#include "dialects/nn/NNOps.h"

#include <cmath>
#include <limits>

using namespace mlir;

namespace peft::codegen {
namespace {

using Pred = arith::CmpIPredicate;

Value f64Const(OpBuilder &b, Location loc, double v) {
  return scalarConst(b, loc, b.getF64Type(), v);
}
Value addF(OpBuilder &b, Location loc, Value x, Value y) {
  return b.create<arith::AddFOp>(loc, x, y);
}
Value mulF(OpBuilder &b, Location loc, Value x, Value y) {
  return b.create<arith::MulFOp>(loc, x, y);
}

/// The sliding window of a convolution or pool over the spatial dims of
/// [N, C, D1..Dk]: per dim its stride, begin pad, end pad and dilation.
struct Window {
  SmallVector<int64_t> strides, pads, dilations;
  size_t rank() const { return strides.size(); }
  int64_t padBegin(size_t d) const { return pads[d]; }
  int64_t padEnd(size_t d) const { return pads[d + rank()]; }
};

/// `inputRank`: the rank of the [N, C, D1..Dk] tensor the window slides on.
LogicalResult checkWindow(Operation *op, const Window &w, size_t inputRank,
                          ArrayRef<int64_t> kernel) {
  if (inputRank < 3)
    return op->emitError(op->getName().getStringRef())
           << ": needs an input of rank >= 3 ([N, C, spatial...])";
  size_t spatialRank = inputRank - 2;
  if (w.rank() != spatialRank || w.dilations.size() != spatialRank ||
      w.pads.size() != 2 * spatialRank || kernel.size() != spatialRank)
    return op->emitError(op->getName().getStringRef())
           << ": window attributes do not match " << spatialRank
           << " spatial dims";
  for (size_t d = 0; d < spatialRank; ++d)
    if (w.strides[d] < 1 || w.dilations[d] < 1)
      return op->emitError(op->getName().getStringRef())
             << ": strides and dilations must be positive";
  return success();
}

/// The input position of tap `t` of the window at output position `o`
/// along spatial dim `d`: o * stride - pad_begin + t * dilation.
Value tapPosition(IndexMath &m, const Window &w, size_t d, Value o, Value t) {
  return m.add(m.sub(m.mul(o, w.strides[d]), w.padBegin(d)),
               m.mul(t, w.dilations[d]));
}

/// For input position `i` and tap `t` along dim `d`: the output position
/// whose window puts tap `t` on `i`, and whether there is one among the
/// `outExtent` outputs ((i + pad_begin - t * dilation) / stride, exact).
std::pair<Value, Value> windowAt(IndexMath &m, const Window &w, size_t d,
                                 Value i, Value t, int64_t outExtent) {
  Value num = m.sub(m.add(i, w.padBegin(d)), m.mul(t, w.dilations[d]));
  Value o = m.div(num, w.strides[d]);
  Value valid = m.ge(num, 0);
  if (w.strides[d] != 1)
    valid = m.land(valid, m.eq(m.rem(num, w.strides[d]), m.c(0)));
  valid = m.land(valid, m.lt(o, outExtent));
  return {m.select(valid, o, m.c(0)), valid};
}

/// Where tap `t` of the window at spatial output position `o` lands in an
/// input of spatial shape `inSpatial` with strides `inStrides` (of the whole
/// [N, C, ...] tensor) starting at `base`: the offset (clamped to `base`
/// outside the input, so always a valid address), whether it is inside the
/// input, and whether it is inside the padded extent.
struct Tap {
  Value offset, inInput, inPadded;
};
Tap locateTap(IndexMath &m, const Window &w, Value base, ArrayRef<Value> o,
              ArrayRef<Value> t, ArrayRef<int64_t> inSpatial,
              ArrayRef<int64_t> inStrides) {
  Value offset = base, inInput = m.trueVal(), inPadded = m.trueVal();
  for (size_t d = 0; d < w.rank(); ++d) {
    Value pos = tapPosition(m, w, d, o[d], t[d]);
    inInput = m.land(inInput, m.inRange(pos, 0, inSpatial[d]));
    inPadded = m.land(
        inPadded, m.inRange(pos, -w.padBegin(d), inSpatial[d] + w.padEnd(d)));
    offset = m.add(offset, m.mul(pos, inStrides[d + 2]));
  }
  return {m.select(inInput, offset, base), inInput, inPadded};
}

/// `acc + v` where `cond`, else `acc` (the reference's `if (cond) acc += v`:
/// a discarded -0.0 must not turn an accumulated -0.0 into +0.0).
Value addIf(OpBuilder &b, Location loc, Value cond, Value acc, Value v) {
  return b.create<arith::SelectOp>(loc, cond, addF(b, loc, acc, v), acc);
}

//===----------------------------------------------------------------------===//
// Convolutions
//===----------------------------------------------------------------------===//

/// out[n, m, o] = bias[m] + sum over the group's input channels c and taps t
/// of x[n, c, o * stride - pad + t * dilation] * w[m, c, t].
LogicalResult emitConv(LoopEmitContext &ctx) {
  auto op = cast<nn::ConvOp>(ctx.op());
  Window win{SmallVector<int64_t>(op.getStrides()),
             SmallVector<int64_t>(op.getPads()),
             SmallVector<int64_t>(op.getDilations())};
  ArrayRef<int64_t> xShape = shapeOf(op.getInput()),
                    wShape = shapeOf(op.getWeight()),
                    outShape = shapeOf(op.getResult());
  ArrayRef<int64_t> kernel = wShape.drop_front(2),
                    inSpatial = xShape.drop_front(2);
  if (failed(checkWindow(op, win, xShape.size(), kernel)))
    return failure();
  int64_t group = op.getGroup();
  int64_t inPerGroup = wShape[1], outPerGroup = outShape[1] / group;
  SmallVector<int64_t> xs = rowMajorStrides(xShape),
                       ws = rowMajorStrides(wShape);
  Source x(ctx, op.getInput()), w(ctx, op.getWeight());
  std::optional<Source> bias;
  if (op.getBias())
    bias = Source(ctx, op.getBias());
  Value out = ctx.buffer(op.getResult());
  Type elem = elementTypeOf(op.getResult());

  return ctx.parallel(numElementsOf(outShape), [&](OpBuilder &b, Location loc,
                                                   Value iv) {
    IndexMath m(b, loc);
    SmallVector<Value> o = delinearize(b, loc, iv, outShape);
    Value n = o[0], ch = o[1], g = m.div(ch, outPerGroup);
    ArrayRef<Value> oSpatial = ArrayRef<Value>(o).drop_front(2);
    Value acc0 = bias ? bias->readF64(b, loc, ch) : f64Const(b, loc, 0.0);
    ValueRange acc = forLoop(
        b, loc, 0, inPerGroup, {acc0},
        [&](OpBuilder &cb, Location cl, Value ci,
            ValueRange iters) -> SmallVector<Value> {
          IndexMath cm(cb, cl);
          Value xBase =
              cm.add(cm.mul(n, xs[0]),
                     cm.mul(cm.add(cm.mul(g, inPerGroup), ci), xs[1]));
          Value wBase = cm.add(cm.mul(ch, ws[0]), cm.mul(ci, ws[1]));
          return forBox(
              cb, cl, kernel, iters,
              [&](OpBuilder &tb, Location tl, ArrayRef<Value> t,
                  ValueRange a) -> SmallVector<Value> {
                IndexMath tm(tb, tl);
                Tap tap = locateTap(tm, win, xBase, oSpatial, t, inSpatial, xs);
                Value wOff = wBase;
                for (size_t d = 0; d < t.size(); ++d)
                  wOff = tm.add(wOff, tm.mul(t[d], ws[d + 2]));
                Value prod = mulF(tb, tl, x.readF64(tb, tl, tap.offset),
                                  w.readF64(tb, tl, wOff));
                return {addIf(tb, tl, tap.inInput, a[0], prod)};
              });
        });
    storeElement(b, loc, fromF64(b, loc, acc[0], elem), out, iv, elem);
    return success();
  });
}

/// out[n, m, p] = sum over the group's input channels c, input positions i
/// and taps t with i * stride - pad + t * dilation = p of
/// x[n, c, i] * w[c, m - g * M/group, t], then + bias[m].
LogicalResult emitConvTranspose(LoopEmitContext &ctx) {
  auto op = cast<nn::ConvTransposeOp>(ctx.op());
  Window win{SmallVector<int64_t>(op.getStrides()),
             SmallVector<int64_t>(op.getPads()),
             SmallVector<int64_t>(op.getDilations())};
  ArrayRef<int64_t> xShape = shapeOf(op.getInput()),
                    wShape = shapeOf(op.getWeight()),
                    outShape = shapeOf(op.getResult());
  ArrayRef<int64_t> kernel = wShape.drop_front(2),
                    inSpatial = xShape.drop_front(2);
  if (failed(checkWindow(op, win, xShape.size(), kernel)))
    return failure();
  int64_t group = op.getGroup();
  int64_t inPerGroup = xShape[1] / group, outPerGroup = wShape[1];
  SmallVector<int64_t> xs = rowMajorStrides(xShape),
                       ws = rowMajorStrides(wShape);
  Source x(ctx, op.getInput()), w(ctx, op.getWeight());
  std::optional<Source> bias;
  if (op.getBias())
    bias = Source(ctx, op.getBias());
  Value out = ctx.buffer(op.getResult());
  Type elem = elementTypeOf(op.getResult());

  return ctx.parallel(numElementsOf(outShape), [&](OpBuilder &b, Location loc,
                                                   Value iv) {
    IndexMath m(b, loc);
    SmallVector<Value> p = delinearize(b, loc, iv, outShape);
    Value n = p[0], ch = p[1];
    Value g = m.div(ch, outPerGroup), mi = m.rem(ch, outPerGroup);
    ValueRange acc =
        forLoop(b, loc, 0, inPerGroup, {f64Const(b, loc, 0.0)},
                [&](OpBuilder &cb, Location cl, Value cg,
                    ValueRange iters) -> SmallVector<Value> {
                  IndexMath cm(cb, cl);
                  Value c = cm.add(cm.mul(g, inPerGroup), cg);
                  Value xBase = cm.add(cm.mul(n, xs[0]), cm.mul(c, xs[1]));
                  Value wBase = cm.add(cm.mul(c, ws[0]), cm.mul(mi, ws[1]));
                  return forBox(
                      cb, cl, kernel, iters,
                      [&](OpBuilder &tb, Location tl, ArrayRef<Value> t,
                          ValueRange a) -> SmallVector<Value> {
                        IndexMath tm(tb, tl);
                        Value xOff = xBase, wOff = wBase, valid = tm.trueVal();
                        for (size_t d = 0; d < t.size(); ++d) {
                          auto [i, ok] = windowAt(tm, win, d, p[d + 2], t[d],
                                                  inSpatial[d]);
                          valid = tm.land(valid, ok);
                          xOff = tm.add(xOff, tm.mul(i, xs[d + 2]));
                          wOff = tm.add(wOff, tm.mul(t[d], ws[d + 2]));
                        }
                        Value prod = mulF(tb, tl, x.readF64(tb, tl, xOff),
                                          w.readF64(tb, tl, wOff));
                        return {addIf(tb, tl, valid, a[0], prod)};
                      },
                      /*reversed=*/true);
                });
    Value b0 = bias ? bias->readF64(b, loc, ch) : f64Const(b, loc, 0.0);
    storeElement(b, loc, fromF64(b, loc, addF(b, loc, acc[0], b0), elem), out,
                 iv, elem);
    return success();
  });
}

/// dW[m, c, t] = sum over n and output positions o of
/// dY[n, m, o] * x[n, g(m) * C/group + c, o * stride - pad + t * dilation].
LogicalResult emitConvWeightGrad(LoopEmitContext &ctx) {
  auto op = cast<nn::ConvWeightGradOp>(ctx.op());
  Window win{SmallVector<int64_t>(op.getStrides()),
             SmallVector<int64_t>(op.getPads()),
             SmallVector<int64_t>(op.getDilations())};
  ArrayRef<int64_t> xShape = shapeOf(op.getInput()),
                    dyShape = shapeOf(op.getGradOutput()),
                    wShape = shapeOf(op.getResult());
  ArrayRef<int64_t> kernel = wShape.drop_front(2),
                    inSpatial = xShape.drop_front(2),
                    outSpatial = dyShape.drop_front(2);
  if (failed(checkWindow(op, win, xShape.size(), kernel)))
    return failure();
  int64_t group = op.getGroup();
  int64_t inPerGroup = wShape[1], outPerGroup = wShape[0] / group;
  SmallVector<int64_t> xs = rowMajorStrides(xShape),
                       dys = rowMajorStrides(dyShape);
  Source x(ctx, op.getInput()), dy(ctx, op.getGradOutput());
  Value out = ctx.buffer(op.getResult());
  Type elem = elementTypeOf(op.getResult());

  return ctx.parallel(numElementsOf(wShape), [&](OpBuilder &b, Location loc,
                                                 Value iv) {
    IndexMath m(b, loc);
    SmallVector<Value> wc = delinearize(b, loc, iv, wShape);
    Value ch = wc[0], c = wc[1], g = m.div(ch, outPerGroup);
    ArrayRef<Value> t = ArrayRef<Value>(wc).drop_front(2);
    ValueRange acc = forLoop(
        b, loc, 0, xShape[0], {f64Const(b, loc, 0.0)},
        [&](OpBuilder &nb, Location nl, Value n,
            ValueRange iters) -> SmallVector<Value> {
          IndexMath nm(nb, nl);
          Value xBase = nm.add(nm.mul(n, xs[0]),
                               nm.mul(nm.add(nm.mul(g, inPerGroup), c), xs[1]));
          Value dyBase = nm.add(nm.mul(n, dys[0]), nm.mul(ch, dys[1]));
          return forBox(nb, nl, outSpatial, iters,
                        [&](OpBuilder &ob, Location ol, ArrayRef<Value> o,
                            ValueRange a) -> SmallVector<Value> {
                          IndexMath om(ob, ol);
                          Tap tap =
                              locateTap(om, win, xBase, o, t, inSpatial, xs);
                          Value dyOff = dyBase;
                          for (size_t d = 0; d < o.size(); ++d)
                            dyOff = om.add(dyOff, om.mul(o[d], dys[d + 2]));
                          Value prod = mulF(ob, ol, dy.readF64(ob, ol, dyOff),
                                            x.readF64(ob, ol, tap.offset));
                          return {addIf(ob, ol, tap.inInput, a[0], prod)};
                        });
        });
    storeElement(b, loc, fromF64(b, loc, acc[0], elem), out, iv, elem);
    return success();
  });
}

//===----------------------------------------------------------------------===//
// Pooling
//===----------------------------------------------------------------------===//

template <typename PoolOp> Window poolWindow(PoolOp op) {
  return Window{SmallVector<int64_t>(op.getStrides()),
                SmallVector<int64_t>(op.getPads()),
                SmallVector<int64_t>(op.getDilations())};
}

/// The element offset of [n, c] in a tensor with strides `strides`.
Value planeBase(IndexMath &m, ArrayRef<Value> coords,
                ArrayRef<int64_t> strides) {
  return m.add(m.mul(coords[0], strides[0]), m.mul(coords[1], strides[1]));
}

/// The maximum of the window at output position `o`: {best, whether any tap
/// was in the input, offset of the first maximum or -1}. With
/// `firstTapWins` the first tap in the input is taken whatever its value
/// (max_pool_grad's scan); without, the scan starts from the lowest value
/// (nn.max_pool's `std::max(best, v)`, which never takes a NaN). Later taps
/// win only when strictly greater.
struct WindowMax {
  Value best, any, at;
};
WindowMax windowMax(OpBuilder &b, Location loc, const Source &x, Type elem,
                    const Window &win, Value base, ArrayRef<Value> o,
                    ArrayRef<int64_t> kernel, ArrayRef<int64_t> inSpatial,
                    ArrayRef<int64_t> xs, bool firstTapWins) {
  IndexMath m(b, loc);
  bool isInt = !isa<FloatType>(elem);
  Type acc = isInt ? Type(b.getI64Type()) : computeType(elem);
  Value init =
      isInt
          ? intConst(b, loc, acc, std::numeric_limits<int64_t>::min())
          : scalarConst(b, loc, acc, -std::numeric_limits<double>::infinity());
  SmallVector<Value> r = forBox(
      b, loc, kernel,
      {init, b.create<arith::ConstantIntOp>(loc, 0, 1), m.c(-1)},
      [&](OpBuilder &tb, Location tl, ArrayRef<Value> t,
          ValueRange it) -> SmallVector<Value> {
        IndexMath tm(tb, tl);
        Tap tap = locateTap(tm, win, base, o, t, inSpatial, xs);
        Value v = x.read(tb, tl, tap.offset, isInt ? tb.getI64Type() : elem);
        Value greater = isInt ? tm.cmp(Pred::sgt, v, it[0])
                              : tb.create<arith::CmpFOp>(
                                      tl, arith::CmpFPredicate::OGT, v, it[0])
                                    .getResult();
        Value take = greater;
        if (firstTapWins)
          take = tb.createOrFold<arith::OrIOp>(tl, tm.lt(it[2], 0), greater);
        take = tm.land(tap.inInput, take);
        return {tm.select(take, v, it[0]),
                tb.createOrFold<arith::OrIOp>(tl, it[1], tap.inInput),
                tm.select(take, tap.offset, it[2])};
      });
  return {r[0], r[1], r[2]};
}

LogicalResult emitMaxPool(LoopEmitContext &ctx) {
  auto op = cast<nn::MaxPoolOp>(ctx.op());
  Window win = poolWindow(op);
  ArrayRef<int64_t> kernel = op.getKernelShape();
  ArrayRef<int64_t> xShape = shapeOf(op.getInput()),
                    outShape = shapeOf(op.getResult());
  if (failed(checkWindow(op, win, xShape.size(), kernel)))
    return failure();
  ArrayRef<int64_t> inSpatial = xShape.drop_front(2);
  SmallVector<int64_t> xs = rowMajorStrides(xShape);
  Source x(ctx, op.getInput());
  Value out = ctx.buffer(op.getResult());
  Type elem = elementTypeOf(op.getResult());
  bool isInt = !isa<FloatType>(elem);
  return ctx.parallel(
      numElementsOf(outShape), [&](OpBuilder &b, Location loc, Value iv) {
        IndexMath m(b, loc);
        SmallVector<Value> o = delinearize(b, loc, iv, outShape);
        WindowMax wm =
            windowMax(b, loc, x, elem, win, planeBase(m, o, xs),
                      ArrayRef<Value>(o).drop_front(2), kernel, inSpatial, xs,
                      /*firstTapWins=*/false);
        Value v = wm.best;
        if (isInt)
          v = convertElement(
              b, loc, m.select(wm.any, v, intConst(b, loc, b.getI64Type(), 0)),
              b.getI64Type(), elem);
        storeElement(b, loc, v, out, iv, elem);
        return success();
      });
}

/// The divisor of the window at output position `o` of an avg_pool: the
/// taps inside the input (or inside the padded extent with
/// `countIncludePad`), as an f64. A window is a box, so this is the product
/// of the per-dim counts.
Value windowCount(OpBuilder &b, Location loc, const Window &win,
                  ArrayRef<Value> o, ArrayRef<int64_t> kernel,
                  ArrayRef<int64_t> inSpatial, bool countIncludePad) {
  IndexMath m(b, loc);
  Value count = m.c(1);
  for (size_t d = 0; d < win.rank(); ++d) {
    ValueRange perDim =
        forLoop(b, loc, 0, kernel[d], {m.c(0)},
                [&](OpBuilder &tb, Location tl, Value t,
                    ValueRange it) -> SmallVector<Value> {
                  IndexMath tm(tb, tl);
                  Value pos = tapPosition(tm, win, d, o[d], t);
                  Value in = countIncludePad
                                 ? tm.inRange(pos, -win.padBegin(d),
                                              inSpatial[d] + win.padEnd(d))
                                 : tm.inRange(pos, 0, inSpatial[d]);
                  return {tm.add(it[0], tm.select(in, tm.c(1), tm.c(0)))};
                });
    count = m.mul(count, perDim[0]);
  }
  return b.create<arith::SIToFPOp>(loc, b.getF64Type(), m.toI64(count));
}

LogicalResult emitAvgPool(LoopEmitContext &ctx) {
  auto op = cast<nn::AvgPoolOp>(ctx.op());
  Window win = poolWindow(op);
  bool countPad = op.getCountIncludePad();
  ArrayRef<int64_t> kernel = op.getKernelShape();
  ArrayRef<int64_t> xShape = shapeOf(op.getInput()),
                    outShape = shapeOf(op.getResult());
  if (failed(checkWindow(op, win, xShape.size(), kernel)))
    return failure();
  ArrayRef<int64_t> inSpatial = xShape.drop_front(2);
  SmallVector<int64_t> xs = rowMajorStrides(xShape);
  Source x(ctx, op.getInput());
  Value out = ctx.buffer(op.getResult());
  Type elem = elementTypeOf(op.getResult());
  return ctx.parallel(numElementsOf(outShape), [&](OpBuilder &b, Location loc,
                                                   Value iv) {
    IndexMath m(b, loc);
    SmallVector<Value> o = delinearize(b, loc, iv, outShape);
    ArrayRef<Value> oSpatial = ArrayRef<Value>(o).drop_front(2);
    Value base = planeBase(m, o, xs);
    SmallVector<Value> sum =
        forBox(b, loc, kernel, {f64Const(b, loc, 0.0)},
               [&](OpBuilder &tb, Location tl, ArrayRef<Value> t,
                   ValueRange a) -> SmallVector<Value> {
                 IndexMath tm(tb, tl);
                 Tap tap = locateTap(tm, win, base, oSpatial, t, inSpatial, xs);
                 return {addIf(tb, tl, tap.inInput, a[0],
                               x.readF64(tb, tl, tap.offset))};
               });
    Value count =
        windowCount(b, loc, win, oSpatial, kernel, inSpatial, countPad);
    Value zero = f64Const(b, loc, 0.0);
    Value empty =
        b.create<arith::CmpFOp>(loc, arith::CmpFPredicate::OEQ, count, zero);
    Value mean = b.create<arith::DivFOp>(loc, sum[0], count);
    mean = m.select(empty,
                    f64Const(b, loc, std::numeric_limits<double>::quiet_NaN()),
                    mean);
    storeElement(b, loc, fromF64(b, loc, mean, elem), out, iv, elem);
    return success();
  });
}

/// dX[n, c, i] = sum of dY[n, c, o] over the windows o whose first maximum
/// is element i, in ascending o (the reference's scatter order).
LogicalResult emitMaxPoolGrad(LoopEmitContext &ctx) {
  auto op = cast<nn::MaxPoolGradOp>(ctx.op());
  Window win = poolWindow(op);
  ArrayRef<int64_t> kernel = op.getKernelShape();
  ArrayRef<int64_t> xShape = shapeOf(op.getInput()),
                    dyShape = shapeOf(op.getGradOutput());
  if (failed(checkWindow(op, win, xShape.size(), kernel)))
    return failure();
  ArrayRef<int64_t> inSpatial = xShape.drop_front(2),
                    outSpatial = dyShape.drop_front(2);
  SmallVector<int64_t> xs = rowMajorStrides(xShape),
                       dys = rowMajorStrides(dyShape);
  Source x(ctx, op.getInput()), dy(ctx, op.getGradOutput());
  Value out = ctx.buffer(op.getResult());
  Type elem = elementTypeOf(op.getResult());
  return ctx.parallel(numElementsOf(xShape), [&](OpBuilder &b, Location loc,
                                                 Value iv) {
    IndexMath m(b, loc);
    SmallVector<Value> xi = delinearize(b, loc, iv, xShape);
    Value xBase = planeBase(m, xi, xs), dyBase = planeBase(m, xi, dys);
    SmallVector<Value> acc = forBox(
        b, loc, kernel, {f64Const(b, loc, 0.0)},
        [&](OpBuilder &tb, Location tl, ArrayRef<Value> t,
            ValueRange a) -> SmallVector<Value> {
          IndexMath tm(tb, tl);
          SmallVector<Value> o;
          Value valid = tm.trueVal(), dyOff = dyBase;
          for (size_t d = 0; d < t.size(); ++d) {
            auto [od, ok] =
                windowAt(tm, win, d, xi[d + 2], t[d], outSpatial[d]);
            o.push_back(od);
            valid = tm.land(valid, ok);
            dyOff = tm.add(dyOff, tm.mul(od, dys[d + 2]));
          }
          // Only a window that exists needs its maximum.
          return ifElse(
              tb, tl, valid,
              [&](OpBuilder &vb, Location vl) -> SmallVector<Value> {
                IndexMath vm(vb, vl);
                WindowMax wm = windowMax(vb, vl, x, elem, win, xBase, o, kernel,
                                         inSpatial, xs,
                                         /*firstTapWins=*/true);
                Value mine = vm.eq(wm.at, iv);
                return {addIf(vb, vl, mine, a[0], dy.readF64(vb, vl, dyOff))};
              },
              [&](OpBuilder &, Location) -> SmallVector<Value> {
                return {a[0]};
              });
        },
        /*reversed=*/true);
    storeElement(b, loc, fromF64(b, loc, acc[0], elem), out, iv, elem);
    return success();
  });
}

/// dX[n, c, i] = sum of dY[n, c, o] / count(o) over the windows o that
/// contain element i, in ascending o.
LogicalResult emitAvgPoolGrad(LoopEmitContext &ctx) {
  auto op = cast<nn::AvgPoolGradOp>(ctx.op());
  Window win = poolWindow(op);
  bool countPad = op.getCountIncludePad();
  ArrayRef<int64_t> kernel = op.getKernelShape();
  ArrayRef<int64_t> dyShape = shapeOf(op.getGradOutput()),
                    xShape = shapeOf(op.getResult());
  if (failed(checkWindow(op, win, xShape.size(), kernel)))
    return failure();
  ArrayRef<int64_t> inSpatial = xShape.drop_front(2),
                    outSpatial = dyShape.drop_front(2);
  SmallVector<int64_t> dys = rowMajorStrides(dyShape);
  Source dy(ctx, op.getGradOutput());
  Value out = ctx.buffer(op.getResult());
  Type elem = elementTypeOf(op.getResult());
  return ctx.parallel(numElementsOf(xShape), [&](OpBuilder &b, Location loc,
                                                 Value iv) {
    IndexMath m(b, loc);
    SmallVector<Value> xi = delinearize(b, loc, iv, xShape);
    Value dyBase = planeBase(m, xi, dys);
    SmallVector<Value> acc = forBox(
        b, loc, kernel, {f64Const(b, loc, 0.0)},
        [&](OpBuilder &tb, Location tl, ArrayRef<Value> t,
            ValueRange a) -> SmallVector<Value> {
          IndexMath tm(tb, tl);
          SmallVector<Value> o;
          Value valid = tm.trueVal(), dyOff = dyBase;
          for (size_t d = 0; d < t.size(); ++d) {
            auto [od, ok] =
                windowAt(tm, win, d, xi[d + 2], t[d], outSpatial[d]);
            o.push_back(od);
            valid = tm.land(valid, ok);
            dyOff = tm.add(dyOff, tm.mul(od, dys[d + 2]));
          }
          Value count =
              windowCount(tb, tl, win, o, kernel, inSpatial, countPad);
          Value share =
              tb.create<arith::DivFOp>(tl, dy.readF64(tb, tl, dyOff), count);
          // A window with no counted tap contributes nothing.
          valid = tm.land(
              valid, tb.create<arith::CmpFOp>(tl, arith::CmpFPredicate::ONE,
                                              count, f64Const(tb, tl, 0.0)));
          return {addIf(tb, tl, valid, a[0], share)};
        },
        /*reversed=*/true);
    storeElement(b, loc, fromF64(b, loc, acc[0], elem), out, iv, elem);
    return success();
  });
}

//===----------------------------------------------------------------------===//
// Einsum
//===----------------------------------------------------------------------===//

/// out[o] = sum over the summed labels s of prod over operands of
/// operand[offset(o, s)]; an operand's offset is a sum of per-label strides
/// (a repeated label walks a diagonal, a broadcast size-1 dim has stride 0).
LogicalResult emitEinsum(LoopEmitContext &ctx) {
  auto op = cast<nn::EinsumOp>(ctx.op());
  SmallVector<ArrayRef<int64_t>> shapes;
  for (Value in : op.getInputs())
    shapes.push_back(shapeOf(in));
  FailureOr<nn::EinsumOp::Equation> eq =
      nn::EinsumOp::resolveEquation(op.getLoc(), op.getEquation(), shapes);
  if (failed(eq))
    return failure();
  SmallVector<unsigned> order(eq->resultLabels);
  for (const auto &labels : eq->operandLabels)
    for (unsigned l : labels)
      if (!llvm::is_contained(order, l))
        order.push_back(l);
  size_t outRank = eq->resultLabels.size();
  SmallVector<int64_t> outShape, sumShape;
  for (size_t i = 0; i < order.size(); ++i)
    (i < outRank ? outShape : sumShape).push_back(eq->sizes[order[i]]);
  if (outShape != SmallVector<int64_t>(shapeOf(op.getResult())))
    return op.emitError("nn.einsum: equation result shape does not match the "
                        "result type");

  SmallVector<Source> inputs;
  SmallVector<SmallVector<int64_t>> labelStride;
  for (auto [a, in] : llvm::enumerate(op.getInputs())) {
    inputs.push_back(Source(ctx, in));
    SmallVector<int64_t> strides = rowMajorStrides(shapes[a]);
    SmallVector<int64_t> perLabel(order.size(), 0);
    for (auto [d, label] : llvm::enumerate(eq->operandLabels[a])) {
      if (shapes[a][d] == 1)
        continue;
      perLabel[llvm::find(order, label) - order.begin()] += strides[d];
    }
    labelStride.push_back(perLabel);
  }
  Value out = ctx.buffer(op.getResult());
  Type elem = elementTypeOf(op.getResult());
  // The reference multiplies and sums integers in int64, floats in double.
  bool isInt = !isa<FloatType>(inputs[0].elem);

  return ctx.parallel(numElementsOf(outShape), [&](OpBuilder &b, Location loc,
                                                   Value iv) {
    Type acc = isInt ? Type(b.getI64Type()) : Type(b.getF64Type());
    SmallVector<Value> oi = delinearize(b, loc, iv, outShape);
    Value zero = isInt ? intConst(b, loc, acc, 0) : f64Const(b, loc, 0.0);
    SmallVector<Value> sum = forBox(
        b, loc, sumShape, {zero},
        [&](OpBuilder &sb, Location sl, ArrayRef<Value> si,
            ValueRange a) -> SmallVector<Value> {
          SmallVector<Value> coords(oi);
          coords.append(si.begin(), si.end());
          Value prod = isInt ? intConst(sb, sl, acc, 1) : f64Const(sb, sl, 1.0);
          for (auto [input, strides] : llvm::zip(inputs, labelStride)) {
            Value v = input.read(sb, sl, linearize(sb, sl, coords, strides),
                                 isInt ? Type(sb.getI64Type())
                                       : Type(sb.getF64Type()));
            prod = isInt ? sb.create<arith::MulIOp>(sl, prod, v).getResult()
                         : mulF(sb, sl, prod, v);
          }
          return {isInt ? sb.create<arith::AddIOp>(sl, a[0], prod).getResult()
                        : addF(sb, sl, a[0], prod)};
        });
    Value v = isInt ? convertElement(b, loc, sum[0], b.getI64Type(), elem)
                    : fromF64(b, loc, sum[0], elem);
    storeElement(b, loc, v, out, iv, elem);
    return success();
  });
}

} // namespace

void registerConvEmitters(EmitterRegistry &registry) {
  registry.addLoop("nn.conv", emitConv);
  registry.addLoop("nn.conv_transpose", emitConvTranspose);
  registry.addLoop("nn.conv_weight_grad", emitConvWeightGrad);
  registry.addLoop("nn.max_pool", emitMaxPool);
  registry.addLoop("nn.avg_pool", emitAvgPool);
  registry.addLoop("nn.max_pool_grad", emitMaxPoolGrad);
  registry.addLoop("nn.avg_pool_grad", emitAvgPoolGrad);
  registry.addLoop("nn.einsum", emitEinsum);
}

} // namespace peft::codegen
