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

/// The layout of an [N, C, D1..Dk] tensor: its shape and row-major strides.
struct Planes {
  ArrayRef<int64_t> shape;
  SmallVector<int64_t> strides;

  explicit Planes(Value tensor)
      : shape(shapeOf(tensor)), strides(rowMajorStrides(shape)) {}
  ArrayRef<int64_t> spatial() const { return shape.drop_front(2); }
  /// The offset of element [n, c, 0, ..., 0].
  Value base(IndexMath &m, Value n, Value c) const {
    return m.add(m.mul(n, strides[0]), m.mul(c, strides[1]));
  }
  /// `base` moved to spatial position `pos` of its [n, c] plane.
  Value at(IndexMath &m, Value base, ArrayRef<Value> pos) const {
    for (size_t d = 0; d < pos.size(); ++d)
      base = m.add(base, m.mul(pos[d], strides[d + 2]));
    return base;
  }
};

/// The spatial part [D1..Dk] of coordinates [N, C, D1..Dk].
ArrayRef<Value> spatialOf(ArrayRef<Value> coords) {
  return coords.drop_front(2);
}

/// What every window emitter reads off its op (a conv or pool op): the
/// window, checked against the kernel and against the tensor the window
/// slides on (`in`), and the result, written one element per parallel
/// iteration.
struct WindowEmit {
  Window win;
  SmallVector<int64_t> kernel;
  Planes in;
  Source x; // reads `in`
  ArrayRef<int64_t> outShape;
  Value out;
  Type elem;

  /// Stores f64 `v` as result element `iv`.
  void storeF64(OpBuilder &b, Location loc, Value v, Value iv) const {
    storeElement(b, loc, fromF64(b, loc, v, elem), out, iv, elem);
  }
};
template <typename WindowOp>
FailureOr<WindowEmit> windowEmit(LoopEmitContext &ctx, WindowOp op,
                                 Value slidesOn, ArrayRef<int64_t> kernel) {
  WindowEmit e{Window{SmallVector<int64_t>(op.getStrides()),
                      SmallVector<int64_t>(op.getPads()),
                      SmallVector<int64_t>(op.getDilations())},
               SmallVector<int64_t>(kernel),
               Planes(slidesOn),
               Source(ctx, slidesOn),
               shapeOf(op.getResult()),
               ctx.buffer(op.getResult()),
               elementTypeOf(op.getResult())};
  if (failed(checkWindow(op, e.win, e.in.shape.size(), e.kernel)))
    return failure();
  return e;
}

/// windowEmit for a pool op, whose kernel is its kernel_shape attribute.
template <typename PoolOp>
FailureOr<WindowEmit> poolWindow(LoopEmitContext &ctx, PoolOp op,
                                 Value slidesOn) {
  return windowEmit(ctx, op, slidesOn, op.getKernelShape());
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

/// Where tap `t` of the window at spatial output position `o` lands in the
/// tensor the window slides on, from the offset `base` of its [n, c] plane:
/// the offset (clamped to `base` outside the input, so always a valid
/// address), whether it is inside the input, and whether it is inside the
/// padded extent.
struct Tap {
  Value offset, inInput, inPadded;
};
Tap locateTap(IndexMath &m, const WindowEmit &e, Value base, ArrayRef<Value> o,
              ArrayRef<Value> t) {
  const Window &w = e.win;
  ArrayRef<int64_t> inSpatial = e.in.spatial();
  Value offset = base, inInput = m.trueVal(), inPadded = m.trueVal();
  for (size_t d = 0; d < w.rank(); ++d) {
    Value pos = tapPosition(m, w, d, o[d], t[d]);
    inInput = m.land(inInput, m.inRange(pos, 0, inSpatial[d]));
    inPadded = m.land(
        inPadded, m.inRange(pos, -w.padBegin(d), inSpatial[d] + w.padEnd(d)));
    offset = m.add(offset, m.mul(pos, e.in.strides[d + 2]));
  }
  return {m.select(inInput, offset, base), inInput, inPadded};
}

/// The loop emitters' forEachTap (codegen/reference/Kernels.h): nested loops
/// over the taps t of the window at spatial output position `o`, in
/// row-major order, each located from `base` as locateTap does, carrying
/// `inits`; `body` returns the values for the next tap.
using TapBodyFn = function_ref<SmallVector<Value>(
    OpBuilder &, Location, ArrayRef<Value> t, const Tap &, ValueRange iters)>;
SmallVector<Value> forEachTap(OpBuilder &b, Location loc, const WindowEmit &e,
                              Value base, ArrayRef<Value> o, ValueRange inits,
                              TapBodyFn body) {
  return forBox(b, loc, e.kernel, inits,
                [&](OpBuilder &tb, Location tl, ArrayRef<Value> t,
                    ValueRange it) -> SmallVector<Value> {
                  IndexMath tm(tb, tl);
                  return body(tb, tl, t, locateTap(tm, e, base, o, t), it);
                });
}

/// The windows that cover spatial position `i` of the tensor the taps land
/// in, one per tap t: the window position `o` that puts t on `i`, whether
/// it exists, and its offset in `windows` (the tensor indexed by window
/// position) from the offset `base` of an [n, c] plane there.
struct Covering {
  SmallVector<Value> o;
  Value valid, offset;
};
/// Loops over the taps t in reverse row-major order, which gathers the
/// contributions to `i` in the order the reference's scatter adds them
/// (ascending window position), carrying `inits`.
using CoveringBodyFn =
    function_ref<SmallVector<Value>(OpBuilder &, Location, ArrayRef<Value> t,
                                    const Covering &, ValueRange iters)>;
SmallVector<Value> forEachCoveringWindow(OpBuilder &b, Location loc,
                                         const WindowEmit &e, ArrayRef<Value> i,
                                         const Planes &windows, Value base,
                                         ValueRange inits,
                                         CoveringBodyFn body) {
  ArrayRef<int64_t> extents = windows.spatial();
  return forBox(
      b, loc, e.kernel, inits,
      [&](OpBuilder &tb, Location tl, ArrayRef<Value> t,
          ValueRange it) -> SmallVector<Value> {
        IndexMath tm(tb, tl);
        Covering c{{}, tm.trueVal(), base};
        for (size_t d = 0; d < t.size(); ++d) {
          auto [od, ok] = windowAt(tm, e.win, d, i[d], t[d], extents[d]);
          c.o.push_back(od);
          c.valid = tm.land(c.valid, ok);
          c.offset = tm.add(c.offset, tm.mul(od, windows.strides[d + 2]));
        }
        return body(tb, tl, t, c, it);
      },
      /*reversed=*/true);
}

/// `acc + v` where `cond`, else `acc` (the reference's `if (cond) acc += v`:
/// a discarded -0.0 must not turn an accumulated -0.0 into +0.0).
Value addIf(OpBuilder &b, Location loc, Value cond, Value acc, Value v) {
  return b.create<arith::SelectOp>(loc, cond, addF(b, loc, acc, v), acc);
}

/// An optional operand (a bias) as a Source.
std::optional<Source> optionalSource(LoopEmitContext &ctx, Value tensor) {
  if (!tensor)
    return std::nullopt;
  return Source(ctx, tensor);
}

/// x[xOff] * w[tap t of the kernel plane at wBase], in f64: one term of a
/// convolution's sum.
Value convTerm(OpBuilder &b, Location loc, const Source &x, Value xOff,
               const Source &w, const Planes &wl, Value wBase,
               ArrayRef<Value> t) {
  IndexMath m(b, loc);
  Value wOff = wl.at(m, wBase, t);
  return mulF(b, loc, x.readF64(b, loc, xOff), w.readF64(b, loc, wOff));
}

//===----------------------------------------------------------------------===//
// Convolutions
//===----------------------------------------------------------------------===//

/// What nn.conv and nn.conv_transpose read off their op: the window (it
/// slides on x), the weight and its layout, the optional bias and the group
/// count.
struct ConvEmit : WindowEmit {
  Planes wl;
  Source w;
  std::optional<Source> bias;
  int64_t group;

  /// bias[ch] in f64, or 0 without a bias.
  Value biasAt(OpBuilder &b, Location loc, Value ch) const {
    return bias ? bias->readF64(b, loc, ch) : f64Const(b, loc, 0.0);
  }
};
template <typename ConvOp>
FailureOr<ConvEmit> convEmit(LoopEmitContext &ctx, ConvOp op) {
  Planes wl(op.getWeight());
  FailureOr<WindowEmit> e = windowEmit(ctx, op, op.getInput(), wl.spatial());
  if (failed(e))
    return failure();
  return ConvEmit{{std::move(*e)},
                  std::move(wl),
                  Source(ctx, op.getWeight()),
                  optionalSource(ctx, op.getBias()),
                  int64_t(op.getGroup())};
}

/// out[n, m, o] = bias[m] + sum over the group's input channels c and taps t
/// of x[n, c, o * stride - pad + t * dilation] * w[m, c, t].
LogicalResult emitConv(LoopEmitContext &ctx) {
  FailureOr<ConvEmit> conv = convEmit(ctx, cast<nn::ConvOp>(ctx.op()));
  if (failed(conv))
    return failure();
  const ConvEmit &c = *conv;
  int64_t inPerGroup = c.wl.shape[1], outPerGroup = c.outShape[1] / c.group;

  return ctx.parallel(
      numElementsOf(c.outShape), [&](OpBuilder &b, Location loc, Value iv) {
        IndexMath m(b, loc);
        SmallVector<Value> o = delinearize(b, loc, iv, c.outShape);
        Value n = o[0], ch = o[1], g = m.div(ch, outPerGroup);
        ValueRange acc = forLoop(
            b, loc, 0, inPerGroup, {c.biasAt(b, loc, ch)},
            [&](OpBuilder &cb, Location cl, Value ci,
                ValueRange iters) -> SmallVector<Value> {
              IndexMath cm(cb, cl);
              Value xBase = c.in.base(cm, n, cm.add(cm.mul(g, inPerGroup), ci));
              Value wBase = c.wl.base(cm, ch, ci);
              return forEachTap(
                  cb, cl, c, xBase, spatialOf(o), iters,
                  [&](OpBuilder &tb, Location tl, ArrayRef<Value> t,
                      const Tap &tap, ValueRange a) -> SmallVector<Value> {
                    Value term =
                        convTerm(tb, tl, c.x, tap.offset, c.w, c.wl, wBase, t);
                    return {addIf(tb, tl, tap.inInput, a[0], term)};
                  });
            });
        c.storeF64(b, loc, acc[0], iv);
        return success();
      });
}

/// out[n, m, p] = sum over the group's input channels c, input positions i
/// and taps t with i * stride - pad + t * dilation = p of
/// x[n, c, i] * w[c, m - g * M/group, t], then + bias[m].
LogicalResult emitConvTranspose(LoopEmitContext &ctx) {
  FailureOr<ConvEmit> conv = convEmit(ctx, cast<nn::ConvTransposeOp>(ctx.op()));
  if (failed(conv))
    return failure();
  const ConvEmit &c = *conv;
  int64_t inPerGroup = c.in.shape[1] / c.group, outPerGroup = c.wl.shape[1];

  return ctx.parallel(
      numElementsOf(c.outShape), [&](OpBuilder &b, Location loc, Value iv) {
        IndexMath m(b, loc);
        SmallVector<Value> p = delinearize(b, loc, iv, c.outShape);
        Value n = p[0], ch = p[1];
        Value g = m.div(ch, outPerGroup), mi = m.rem(ch, outPerGroup);
        ValueRange acc = forLoop(
            b, loc, 0, inPerGroup, {f64Const(b, loc, 0.0)},
            [&](OpBuilder &cb, Location cl, Value cg,
                ValueRange iters) -> SmallVector<Value> {
              IndexMath cm(cb, cl);
              Value xc = cm.add(cm.mul(g, inPerGroup), cg);
              Value wBase = c.wl.base(cm, xc, mi);
              // The taps land in the result; the windows sit at positions of x.
              return forEachCoveringWindow(
                  cb, cl, c, spatialOf(p), c.in, c.in.base(cm, n, xc), iters,
                  [&](OpBuilder &tb, Location tl, ArrayRef<Value> t,
                      const Covering &at, ValueRange a) -> SmallVector<Value> {
                    Value term =
                        convTerm(tb, tl, c.x, at.offset, c.w, c.wl, wBase, t);
                    return {addIf(tb, tl, at.valid, a[0], term)};
                  });
            });
        c.storeF64(b, loc, addF(b, loc, acc[0], c.biasAt(b, loc, ch)), iv);
        return success();
      });
}

/// dW[m, c, t] = sum over n and output positions o of
/// dY[n, m, o] * x[n, g(m) * C/group + c, o * stride - pad + t * dilation].
LogicalResult emitConvWeightGrad(LoopEmitContext &ctx) {
  auto op = cast<nn::ConvWeightGradOp>(ctx.op());
  Planes dyl(op.getGradOutput());
  FailureOr<WindowEmit> e =
      windowEmit(ctx, op, op.getInput(), shapeOf(op.getResult()).drop_front(2));
  if (failed(e))
    return failure();
  int64_t inPerGroup = e->outShape[1],
          outPerGroup = e->outShape[0] / op.getGroup();
  Source dy(ctx, op.getGradOutput());

  return ctx.parallel(numElementsOf(e->outShape), [&](OpBuilder &b,
                                                      Location loc, Value iv) {
    IndexMath m(b, loc);
    SmallVector<Value> wc = delinearize(b, loc, iv, e->outShape);
    Value ch = wc[0], c = wc[1], g = m.div(ch, outPerGroup);
    ArrayRef<Value> t = spatialOf(wc);
    ValueRange acc = forLoop(
        b, loc, 0, e->in.shape[0], {f64Const(b, loc, 0.0)},
        [&](OpBuilder &nb, Location nl, Value n,
            ValueRange iters) -> SmallVector<Value> {
          IndexMath nm(nb, nl);
          Value xBase = e->in.base(nm, n, nm.add(nm.mul(g, inPerGroup), c));
          Value dyBase = dyl.base(nm, n, ch);
          // One tap, every window: the loops run over output positions.
          return forBox(nb, nl, dyl.spatial(), iters,
                        [&](OpBuilder &ob, Location ol, ArrayRef<Value> o,
                            ValueRange a) -> SmallVector<Value> {
                          IndexMath om(ob, ol);
                          Tap tap = locateTap(om, *e, xBase, o, t);
                          Value dyOff = dyl.at(om, dyBase, o);
                          Value prod = mulF(ob, ol, dy.readF64(ob, ol, dyOff),
                                            e->x.readF64(ob, ol, tap.offset));
                          return {addIf(ob, ol, tap.inInput, a[0], prod)};
                        });
        });
    e->storeF64(b, loc, acc[0], iv);
    return success();
  });
}

//===----------------------------------------------------------------------===//
// Pooling
//===----------------------------------------------------------------------===//

/// The maximum of the window at output position `o`: {best, whether any tap
/// was in the input, offset of the first maximum or -1}. With
/// `firstTapWins` the first tap in the input is taken whatever its value
/// (max_pool_grad's scan); without, the scan starts from the lowest value
/// (nn.max_pool's `std::max(best, v)`, which never takes a NaN). Later taps
/// win only when strictly greater.
struct WindowMax {
  Value best, any, at;
};
WindowMax windowMax(OpBuilder &b, Location loc, const WindowEmit &e, Value base,
                    ArrayRef<Value> o, bool firstTapWins) {
  IndexMath m(b, loc);
  Type elem = e.elem;
  bool isInt = !isa<FloatType>(elem);
  Type acc = isInt ? Type(b.getI64Type()) : computeType(elem);
  Value init =
      isInt
          ? intConst(b, loc, acc, std::numeric_limits<int64_t>::min())
          : scalarConst(b, loc, acc, -std::numeric_limits<double>::infinity());
  SmallVector<Value> r = forEachTap(
      b, loc, e, base, o,
      {init, b.create<arith::ConstantIntOp>(loc, 0, 1), m.c(-1)},
      [&](OpBuilder &tb, Location tl, ArrayRef<Value>, const Tap &tap,
          ValueRange it) -> SmallVector<Value> {
        IndexMath tm(tb, tl);
        Value v = e.x.read(tb, tl, tap.offset, isInt ? tb.getI64Type() : elem);
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
  FailureOr<WindowEmit> e = poolWindow(ctx, op, op.getInput());
  if (failed(e))
    return failure();
  Type elem = e->elem;
  bool isInt = !isa<FloatType>(elem);
  return ctx.parallel(
      numElementsOf(e->outShape), [&](OpBuilder &b, Location loc, Value iv) {
        IndexMath m(b, loc);
        SmallVector<Value> o = delinearize(b, loc, iv, e->outShape);
        WindowMax wm = windowMax(b, loc, *e, e->in.base(m, o[0], o[1]),
                                 spatialOf(o), /*firstTapWins=*/false);
        Value v = wm.best;
        if (isInt)
          v = convertElement(
              b, loc, m.select(wm.any, v, intConst(b, loc, b.getI64Type(), 0)),
              b.getI64Type(), elem);
        storeElement(b, loc, v, e->out, iv, elem);
        return success();
      });
}

/// The divisor of the window at output position `o` of an avg_pool: the
/// taps inside the input (or inside the padded extent with
/// `countIncludePad`), as an f64. A window is a box, so this is the product
/// of the per-dim counts.
Value windowCount(OpBuilder &b, Location loc, const WindowEmit &e,
                  ArrayRef<Value> o, bool countIncludePad) {
  IndexMath m(b, loc);
  const Window &win = e.win;
  ArrayRef<int64_t> inSpatial = e.in.spatial();
  Value count = m.c(1);
  for (size_t d = 0; d < win.rank(); ++d) {
    ValueRange perDim =
        forLoop(b, loc, 0, e.kernel[d], {m.c(0)},
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
  FailureOr<WindowEmit> e = poolWindow(ctx, op, op.getInput());
  if (failed(e))
    return failure();
  return ctx.parallel(numElementsOf(e->outShape), [&](OpBuilder &b,
                                                      Location loc, Value iv) {
    IndexMath m(b, loc);
    SmallVector<Value> o = delinearize(b, loc, iv, e->outShape);
    ArrayRef<Value> oSpatial = spatialOf(o);
    SmallVector<Value> sum =
        forEachTap(b, loc, *e, e->in.base(m, o[0], o[1]), oSpatial,
                   {f64Const(b, loc, 0.0)},
                   [&](OpBuilder &tb, Location tl, ArrayRef<Value>,
                       const Tap &tap, ValueRange a) -> SmallVector<Value> {
                     return {addIf(tb, tl, tap.inInput, a[0],
                                   e->x.readF64(tb, tl, tap.offset))};
                   });
    Value count = windowCount(b, loc, *e, oSpatial, op.getCountIncludePad());
    Value zero = f64Const(b, loc, 0.0);
    Value empty =
        b.create<arith::CmpFOp>(loc, arith::CmpFPredicate::OEQ, count, zero);
    Value mean = b.create<arith::DivFOp>(loc, sum[0], count);
    mean = m.select(empty,
                    f64Const(b, loc, std::numeric_limits<double>::quiet_NaN()),
                    mean);
    e->storeF64(b, loc, mean, iv);
    return success();
  });
}

/// A window that covers element i of a pool gradient's dX.
struct CoveringWindow {
  const WindowEmit &e;
  /// dY, whose element for this window is at `at.offset`.
  const Source &dy;
  const Covering &at;
  /// i's coordinates [n, c, i...] and offset in dX.
  ArrayRef<Value> xi;
  Value iv;
};
/// The loop kernel of pool gradient `op`: dX[n, c, i] is the f64 sum, in
/// ascending window position (the reference's scatter order), over the
/// windows that cover i, of what `add` makes of the running sum and such a
/// window. `slidesOn`: the x-shaped tensor the window slides on.
using PoolGradAddFn = function_ref<Value(OpBuilder &, Location,
                                         const CoveringWindow &, Value acc)>;
template <typename PoolGradOp>
LogicalResult emitPoolGrad(LoopEmitContext &ctx, PoolGradOp op, Value slidesOn,
                           PoolGradAddFn add) {
  FailureOr<WindowEmit> e = poolWindow(ctx, op, slidesOn);
  if (failed(e))
    return failure();
  Planes dyl(op.getGradOutput());
  Source dy(ctx, op.getGradOutput());
  return ctx.parallel(
      numElementsOf(e->in.shape), [&](OpBuilder &b, Location loc, Value iv) {
        IndexMath m(b, loc);
        SmallVector<Value> xi = delinearize(b, loc, iv, e->in.shape);
        SmallVector<Value> acc = forEachCoveringWindow(
            b, loc, *e, spatialOf(xi), dyl, dyl.base(m, xi[0], xi[1]),
            {f64Const(b, loc, 0.0)},
            [&](OpBuilder &tb, Location tl, ArrayRef<Value>, const Covering &at,
                ValueRange a) -> SmallVector<Value> {
              return {add(tb, tl, CoveringWindow{*e, dy, at, xi, iv}, a[0])};
            });
        e->storeF64(b, loc, acc[0], iv);
        return success();
      });
}

/// dX[n, c, i] = sum of dY[n, c, o] over the windows o whose first maximum
/// is element i, in ascending o (the reference's scatter order).
LogicalResult emitMaxPoolGrad(LoopEmitContext &ctx) {
  auto op = cast<nn::MaxPoolGradOp>(ctx.op());
  return emitPoolGrad(
      ctx, op, op.getInput(),
      [](OpBuilder &b, Location loc, const CoveringWindow &w, Value acc) {
        // Only a window that exists needs its maximum.
        return ifElse(
            b, loc, w.at.valid,
            [&](OpBuilder &vb, Location vl) -> SmallVector<Value> {
              IndexMath vm(vb, vl);
              WindowMax wm =
                  windowMax(vb, vl, w.e, w.e.in.base(vm, w.xi[0], w.xi[1]),
                            w.at.o, /*firstTapWins=*/true);
              Value mine = vm.eq(wm.at, w.iv);
              return {
                  addIf(vb, vl, mine, acc, w.dy.readF64(vb, vl, w.at.offset))};
            },
            [&](OpBuilder &, Location) -> SmallVector<Value> {
              return {acc};
            })[0];
      });
}

/// dX[n, c, i] = sum of dY[n, c, o] / count(o) over the windows o that
/// contain element i, in ascending o.
LogicalResult emitAvgPoolGrad(LoopEmitContext &ctx) {
  auto op = cast<nn::AvgPoolGradOp>(ctx.op());
  bool countPad = op.getCountIncludePad();
  return emitPoolGrad(
      ctx, op, op.getResult(),
      [&](OpBuilder &b, Location loc, const CoveringWindow &w, Value acc) {
        IndexMath m(b, loc);
        Value count = windowCount(b, loc, w.e, w.at.o, countPad);
        Value share = b.create<arith::DivFOp>(
            loc, w.dy.readF64(b, loc, w.at.offset), count);
        // A window with no counted tap contributes nothing.
        Value valid = m.land(
            w.at.valid, b.create<arith::CmpFOp>(loc, arith::CmpFPredicate::ONE,
                                                count, f64Const(b, loc, 0.0)));
        return addIf(b, loc, valid, acc, share);
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
