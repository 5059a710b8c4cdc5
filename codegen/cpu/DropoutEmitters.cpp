//===- DropoutEmitters.cpp - peft.dropout's counter-based mask ------------===//
//
// peft.dropout (LoRA's lora_dropout, ReFT's dropout) as a loop kernel: one
// parallel iteration per element, its keep bit drawn by
// Philox-4x32-10 from (index, step, stream) under the key (seed), exactly as
// runtime/include/peft/Dropout.h (and so the reference evaluator and the
// CUDA kernels) computes it. The 32-bit words live in i64 values; every
// product and sum is masked back to 32 bits, so the body is plain integer
// arithmetic any backend prints.
//
//===----------------------------------------------------------------------===//
#include "codegen/cpu/EmitterSupport.h"

#include "dialects/peft/PeftOps.h"
#include "peft/Dropout.h"

using namespace mlir;

namespace peft::codegen {
namespace {

/// 32-bit words held in i64 values.
class Words {
public:
  Words(OpBuilder &b, Location loc) : b(b), loc(loc) {}

  Value c(uint64_t v) {
    return intConst(b, loc, b.getI64Type(), static_cast<int64_t>(v));
  }
  Value low(Value v) { return b.create<arith::AndIOp>(loc, v, c(0xFFFFFFFFu)); }
  Value high(Value v) { return b.create<arith::ShRUIOp>(loc, v, c(32)); }
  Value mul(Value x, Value y) { return b.create<arith::MulIOp>(loc, x, y); }
  Value add32(Value x, Value y) {
    return low(b.create<arith::AddIOp>(loc, x, y));
  }
  Value xor3(Value x, Value y, Value z) {
    return b.create<arith::XOrIOp>(loc, b.create<arith::XOrIOp>(loc, x, y), z);
  }

private:
  OpBuilder &b;
  Location loc;
};

/// Word 0 of philox4x32_10(counter, key), the words given in i64 values
/// below 2³². The ten rounds are unrolled (constant trip count).
Value philoxDraw(OpBuilder &b, Location loc, Value c0, Value c1, Value c2,
                 Value c3, Value k0, Value k1) {
  Words w(b, loc);
  for (int round = 0; round < 10; ++round) {
    // (u64)mul·c fits: both factors are below 2³².
    Value p0 = w.mul(w.c(0xD2511F53u), c0);
    Value p1 = w.mul(w.c(0xCD9E8D57u), c2);
    c0 = w.xor3(w.high(p1), c1, k0);
    c1 = w.low(p1);
    c2 = w.xor3(w.high(p0), c3, k1);
    c3 = w.low(p0);
    k0 = w.add32(k0, w.c(0x9E3779B9u));
    k1 = w.add32(k1, w.c(0xBB67AE85u));
  }
  return c0;
}

/// y[i] = keep(i) ? x[i]·(1 / (1 − p)) : 0 for step ≥ 1 (the product in f64,
/// rounded once, as the reference), y = x for step ≤ 0 (evaluation).
LogicalResult emitDropout(LoopEmitContext &ctx) {
  auto op = cast<pir::DropoutOp>(ctx.op());
  Source x(ctx, op.getInput()), step(ctx, op.getStep());
  Value out = ctx.buffer(op.getResult());
  Type elem = elementTypeOf(op.getResult());
  int64_t size = numElementsOf(shapeOf(op.getInput()));
  double p = op.getProbability();
  uint64_t threshold = dropout::dropThreshold(p);
  double scale = dropout::keepScale(p);
  uint64_t seed = op.getSeedBits(), stream = op.getStreamBits();
  // One element per parallel iteration (the draw is independent per
  // element; the step load is loop-invariant and hoisted on the CPU).
  return ctx.parallel(size, [&](OpBuilder &b, Location loc, Value i) {
    IndexMath m(b, loc);
    Words w(b, loc);
    Value stepValue = step.readInt(b, loc, m.c(0));
    Value training = m.cmp(arith::CmpIPredicate::sgt, stepValue,
                           intConst(b, loc, b.getI64Type(), 0));
    Value index = m.toI64(i);
    Value draw = philoxDraw(b, loc, w.low(index), w.high(index),
                            w.low(stepValue), w.c(stream & 0xFFFFFFFFu),
                            w.c(seed & 0xFFFFFFFFu), w.c(seed >> 32));
    Value kept = m.cmp(arith::CmpIPredicate::uge, draw, w.c(threshold));
    Value v = x.readF64(b, loc, i);
    Value scaled = b.create<arith::MulFOp>(
        loc, v, scalarConst(b, loc, b.getF64Type(), scale));
    Value zero = scalarConst(b, loc, b.getF64Type(), 0.0);
    Value y = m.select(training, m.select(kept, scaled, zero), v);
    storeElement(b, loc, fromF64(b, loc, y, elem), out, i, elem);
    return success();
  });
}

} // namespace

void registerDropoutEmitters(EmitterRegistry &registry) {
  registry.addLoop("peft.dropout", emitDropout);
}

} // namespace peft::codegen
