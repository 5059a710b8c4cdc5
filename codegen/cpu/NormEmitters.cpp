//===- NormEmitters.cpp - softmax, log_softmax, layer_norm ----------------===//
//
// One parallel iteration per row (softmax: per position outside `axis`;
// layer_norm: per index of the leading dims), inner loops over the row in
// the reference's passes and order of operations.
//
//===----------------------------------------------------------------------===//
#include "codegen/cpu/LoopEmitter.h"

#include "dialects/nn/NNOps.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Math/IR/Math.h"

#include <cmath>

using namespace mlir;

namespace peft::codegen {
namespace {

/// Softmax or log-softmax along `axis`, shifted by the row maximum.
LoopEmitterFn softmaxEmitter(bool logOutput) {
  return [logOutput](LoopEmitContext &ctx) -> LogicalResult {
    Operation *op = ctx.op();
    Value input = op->getOperand(0);
    ArrayRef<int64_t> shape = shapeOf(input);
    Type elem = elementTypeOf(input);
    int64_t axis = op->getAttrOfType<IntegerAttr>("axis").getInt();
    int64_t outer = 1, len = shape[axis], inner = 1;
    for (int64_t d = 0; d < axis; ++d)
      outer *= shape[d];
    for (int64_t d = axis + 1; d < (int64_t)shape.size(); ++d)
      inner *= shape[d];
    Value in = ctx.operandBuffer(0), out = ctx.resultBuffer(0);
    Type ct = computeType(elem);
    return ctx.parallel(outer * inner, [&](OpBuilder &b, Location loc,
                                           Value iv) {
      Value o = b.create<arith::DivUIOp>(loc, iv, indexConst(b, loc, inner));
      Value i = b.create<arith::RemUIOp>(loc, iv, indexConst(b, loc, inner));
      Value base = b.create<arith::AddIOp>(
          loc, b.create<arith::MulIOp>(loc, o, indexConst(b, loc, len * inner)),
          i);
      auto at = [&](OpBuilder &nb, Location nl, Value k) -> Value {
        return nb.create<arith::AddIOp>(
            nl, base,
            nb.create<arith::MulIOp>(nl, k, indexConst(nb, nl, inner)));
      };
      // m = max(m, x) as std::max: a NaN element is skipped here (and
      // poisons the sum below).
      Value m =
          forLoop(b, loc, 0, len, scalarConst(b, loc, ct, -INFINITY),
                  [&](OpBuilder &nb, Location nl, Value k, ValueRange it) {
                    Value x = loadElement(nb, nl, in, at(nb, nl, k), elem);
                    Value less = nb.create<arith::CmpFOp>(
                        nl, arith::CmpFPredicate::OLT, it[0], x);
                    return SmallVector<Value>{
                        nb.create<arith::SelectOp>(nl, less, x, it[0])};
                  })[0];
      auto reassoc = arith::FastMathFlagsAttr::get(
          b.getContext(), arith::FastMathFlags::reassoc);
      Value sum =
          forLoop(b, loc, 0, len, scalarConst(b, loc, ct, 0),
                  [&](OpBuilder &nb, Location nl, Value k, ValueRange it) {
                    Value x = loadElement(nb, nl, in, at(nb, nl, k), elem);
                    Value e = nb.create<math::ExpOp>(
                        nl, nb.create<arith::SubFOp>(nl, x, m));
                    return SmallVector<Value>{
                        nb.create<arith::AddFOp>(nl, it[0], e, reassoc)};
                  })[0];
      Value logSum =
          logOutput ? b.create<math::LogOp>(loc, sum).getResult() : Value();
      forLoop(
          b, loc, 0, len, {},
          [&](OpBuilder &nb, Location nl, Value k, ValueRange) {
            Value idx = at(nb, nl, k);
            Value x = loadElement(nb, nl, in, idx, elem);
            Value shifted = nb.create<arith::SubFOp>(nl, x, m);
            Value y =
                logOutput
                    ? nb.create<arith::SubFOp>(nl, shifted, logSum).getResult()
                    : nb.create<arith::DivFOp>(
                            nl, nb.create<math::ExpOp>(nl, shifted), sum)
                          .getResult();
            storeElement(nb, nl, y, out, idx, elem);
            return SmallVector<Value>{};
          });
      return success();
    });
  };
}

/// mean, biased variance (two passes), inv_std_dev = 1/sqrt(var + eps),
/// result = (x - mean) * inv_std_dev * scale + bias.
LogicalResult emitLayerNorm(LoopEmitContext &ctx) {
  auto ln = cast<nn::LayerNormOp>(ctx.op());
  Value input = ln.getInput();
  ArrayRef<int64_t> shape = shapeOf(input);
  Type elem = elementTypeOf(input);
  int64_t axis = (int64_t)ln.getAxis();
  ArrayRef<int64_t> normalized = shape.drop_front(axis);
  int64_t rows = numElementsOf(shape.take_front(axis));
  int64_t cols = numElementsOf(normalized);
  double epsilon = ln.getEpsilon().convertToDouble();
  Value in = ctx.operandBuffer(0), scale = ctx.operandBuffer(1);
  Value bias = ln.getBias() ? ctx.operandBuffer(2) : Value();
  Value y = ctx.resultBuffer(0), meanOut = ctx.resultBuffer(1),
        invOut = ctx.resultBuffer(2);
  Type scaleElem = elementTypeOf(ln.getScale());
  Type ct = computeType(elem);
  return ctx.parallel(rows, [&](OpBuilder &b, Location loc, Value r) {
    Value base =
        b.create<arith::MulIOp>(loc, r, indexConst(b, loc, cols)).getResult();
    auto at = [&](OpBuilder &nb, Location nl, Value c) -> Value {
      return nb.create<arith::AddIOp>(nl, base, c);
    };
    auto reassoc = arith::FastMathFlagsAttr::get(b.getContext(),
                                                 arith::FastMathFlags::reassoc);
    Value count = scalarConst(b, loc, ct, (double)cols);
    Value sum =
        forLoop(b, loc, 0, cols, scalarConst(b, loc, ct, 0),
                [&](OpBuilder &nb, Location nl, Value c, ValueRange it) {
                  Value x = loadElement(nb, nl, in, at(nb, nl, c), elem);
                  return SmallVector<Value>{
                      nb.create<arith::AddFOp>(nl, it[0], x, reassoc)};
                })[0];
    Value mu = b.create<arith::DivFOp>(loc, sum, count);
    Value sq = forLoop(b, loc, 0, cols, scalarConst(b, loc, ct, 0),
                       [&](OpBuilder &nb, Location nl, Value c, ValueRange it) {
                         Value x = loadElement(nb, nl, in, at(nb, nl, c), elem);
                         Value d = nb.create<arith::SubFOp>(nl, x, mu);
                         Value dd = nb.create<arith::MulFOp>(nl, d, d);
                         return SmallVector<Value>{
                             nb.create<arith::AddFOp>(nl, it[0], dd, reassoc)};
                       })[0];
    Value var = b.create<arith::DivFOp>(loc, sq, count);
    Value inv = b.create<arith::DivFOp>(
        loc, scalarConst(b, loc, ct, 1),
        b.create<math::SqrtOp>(
            loc, b.create<arith::AddFOp>(loc, var,
                                         scalarConst(b, loc, ct, epsilon))));
    forLoop(b, loc, 0, cols, {},
            [&](OpBuilder &nb, Location nl, Value c, ValueRange) {
              Value idx = at(nb, nl, c);
              Value x = loadElement(nb, nl, in, idx, elem);
              Value s = loadElement(
                  nb, nl, scale,
                  broadcastIndex(nb, nl, c, normalized, shapeOf(ln.getScale())),
                  scaleElem);
              Value v = nb.create<arith::MulFOp>(
                  nl,
                  nb.create<arith::MulFOp>(
                      nl, nb.create<arith::SubFOp>(nl, x, mu), inv),
                  s);
              if (bias)
                v = nb.create<arith::AddFOp>(
                    nl, v,
                    loadElement(nb, nl, bias,
                                broadcastIndex(nb, nl, c, normalized,
                                               shapeOf(ln.getBias())),
                                elementTypeOf(ln.getBias())));
              storeElement(nb, nl, v, y, idx, elem);
              return SmallVector<Value>{};
            });
    storeElement(b, loc, mu, meanOut, r, elementTypeOf(ln.getMean()));
    storeElement(b, loc, inv, invOut, r, elementTypeOf(ln.getInvStdDev()));
    return success();
  });
}

} // namespace

void registerNormEmitters(EmitterRegistry &r) {
  r.addLoop("nn.softmax", softmaxEmitter(/*logOutput=*/false));
  r.addLoop("nn.log_softmax", softmaxEmitter(/*logOutput=*/true));
  r.addLoop("nn.layer_norm", emitLayerNorm);
}

} // namespace peft::codegen
