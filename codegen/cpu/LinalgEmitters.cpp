//===- LinalgEmitters.cpp - nn.matmul where it is not a library GEMM
//-------===//
//
// The fallback for the matmuls peft-lower-gemms leaves to generated code
// (integer operands, odd shapes): one parallel iteration per output
// element, a dot product over k inside. numpy semantics as the reference:
// batch dims broadcast, 1-D operands promoted, transpose flags swap an
// operand's last two dims.
//
//===----------------------------------------------------------------------===//
#include "codegen/cpu/LoopEmitter.h"

#include "dialects/nn/NNOps.h"

#include "mlir/Dialect/Arith/IR/Arith.h"

using namespace mlir;

namespace peft::codegen {
namespace {

LogicalResult emitMatMul(LoopEmitContext &ctx) {
  auto mm = cast<nn::MatMulOp>(ctx.op());
  bool transA = mm.getTransposeLhs(), transB = mm.getTransposeRhs();
  SmallVector<int64_t> as(shapeOf(mm.getLhs())), bs(shapeOf(mm.getRhs()));
  if (as.size() == 1)
    as.insert(as.begin(), 1);
  if (bs.size() == 1)
    bs.push_back(1);
  // Stored extents of the last two dims, and the logical m, k, n.
  int64_t aRows = as[as.size() - 2], aCols = as.back();
  int64_t bRows = bs[bs.size() - 2], bCols = bs.back();
  int64_t m = transA ? aCols : aRows, k = transA ? aRows : aCols;
  int64_t n = transB ? bRows : bCols;
  ArrayRef<int64_t> aBatch = ArrayRef<int64_t>(as).drop_back(2);
  ArrayRef<int64_t> bBatch = ArrayRef<int64_t>(bs).drop_back(2);
  SmallVector<int64_t> batch;
  if (failed(nn::broadcastShapes(mm.getLoc(), aBatch, bBatch, batch)))
    return failure();
  Type aElem = elementTypeOf(mm.getLhs()), bElem = elementTypeOf(mm.getRhs());
  Type outElem = elementTypeOf(mm.getResult());
  Type acc = computeType(outElem);
  if (acc.isInteger(1))
    return mm.emitError("loop emission: nn.matmul of booleans");
  Value a = ctx.operandBuffer(0), bbuf = ctx.operandBuffer(1),
        out = ctx.resultBuffer(0);
  int64_t batchCount = numElementsOf(batch);
  return ctx.parallel(batchCount * m * n, [&](OpBuilder &b, Location loc,
                                              Value iv) {
    Value j = b.create<arith::RemUIOp>(loc, iv, indexConst(b, loc, n));
    Value rest = b.create<arith::DivUIOp>(loc, iv, indexConst(b, loc, n));
    Value i = b.create<arith::RemUIOp>(loc, rest, indexConst(b, loc, m));
    Value bi = b.create<arith::DivUIOp>(loc, rest, indexConst(b, loc, m));
    Value aOff =
        b.create<arith::MulIOp>(loc, broadcastIndex(b, loc, bi, batch, aBatch),
                                indexConst(b, loc, m * k));
    Value bOff =
        b.create<arith::MulIOp>(loc, broadcastIndex(b, loc, bi, batch, bBatch),
                                indexConst(b, loc, k * n));
    // a[i, p] at aOff + (transA ? p * aCols + i : i * aCols + p), b[p, j]
    // at bOff + (transB ? j * bCols + p : p * bCols + j).
    Value aBase = b.create<arith::AddIOp>(
        loc, aOff,
        transA ? i
               : b.create<arith::MulIOp>(loc, i, indexConst(b, loc, aCols))
                     .getResult());
    Value bBase = b.create<arith::AddIOp>(
        loc, bOff,
        transB ? b.create<arith::MulIOp>(loc, j, indexConst(b, loc, bCols))
                     .getResult()
               : j);
    Value aStep = indexConst(b, loc, transA ? aCols : 1);
    Value bStep = indexConst(b, loc, transB ? 1 : bCols);
    Value sum = forLoop(
        b, loc, 0, k, scalarConst(b, loc, acc, 0),
        [&](OpBuilder &nb, Location nl, Value p, ValueRange it) {
          Value x = loadElement(
              nb, nl, a,
              nb.create<arith::AddIOp>(nl, aBase,
                                       nb.create<arith::MulIOp>(nl, p, aStep)),
              aElem);
          Value y = loadElement(
              nb, nl, bbuf,
              nb.create<arith::AddIOp>(nl, bBase,
                                       nb.create<arith::MulIOp>(nl, p, bStep)),
              bElem);
          Value next =
              isa<FloatType>(acc)
                  ? nb.create<arith::AddFOp>(nl, it[0],
                                             nb.create<arith::MulFOp>(nl, x, y))
                        .getResult()
                  : nb.create<arith::AddIOp>(nl, it[0],
                                             nb.create<arith::MulIOp>(nl, x, y))
                        .getResult();
          return SmallVector<Value>{next};
        })[0];
    storeElement(b, loc, sum, out, iv, outElem);
    return success();
  });
}

} // namespace

void registerLinalgEmitters(EmitterRegistry &r) {
  r.addLoop("nn.matmul", emitMatMul);
}

} // namespace peft::codegen
