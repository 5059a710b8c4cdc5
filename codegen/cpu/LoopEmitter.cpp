//===- LoopEmitter.cpp - helpers and the emitter registry -----------------===//
#include "codegen/cpu/LoopEmitter.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/SCF/IR/SCF.h"

#include <limits>

using namespace mlir;

namespace peft::codegen {

//===----------------------------------------------------------------------===//
// Element types
//===----------------------------------------------------------------------===//

Type storageType(Type t) {
  if (auto it = dyn_cast<IntegerType>(t)) {
    if (it.getWidth() == 1)
      return IntegerType::get(t.getContext(), 8);
    if (!it.isSignless())
      return IntegerType::get(t.getContext(), it.getWidth());
  }
  return t;
}

Type computeType(Type t) {
  if (auto it = dyn_cast<IntegerType>(t))
    return it.getWidth() == 1 ? t : IntegerType::get(t.getContext(), 64);
  if (t.isF16() || t.isBF16())
    return Float32Type::get(t.getContext());
  return t;
}

bool isUnsignedInteger(Type t) {
  auto it = dyn_cast<IntegerType>(t);
  return it && it.isUnsigned();
}

Type elementTypeOf(Value tensor) {
  return cast<ShapedType>(tensor.getType()).getElementType();
}

ArrayRef<int64_t> shapeOf(Value tensor) {
  return cast<ShapedType>(tensor.getType()).getShape();
}

int64_t numElementsOf(ArrayRef<int64_t> shape) {
  int64_t n = 1;
  for (int64_t d : shape)
    n *= d;
  return n;
}

SmallVector<int64_t> rowMajorStrides(ArrayRef<int64_t> shape) {
  SmallVector<int64_t> strides(shape.size(), 1);
  for (int64_t d = (int64_t)shape.size() - 2; d >= 0; --d)
    strides[d] = strides[d + 1] * shape[d + 1];
  return strides;
}

MemRefType bufferType(RankedTensorType t) {
  int64_t n = std::max<int64_t>(numElementsOf(t.getShape()), 1);
  return MemRefType::get({n}, storageType(t.getElementType()));
}

//===----------------------------------------------------------------------===//
// Scalars
//===----------------------------------------------------------------------===//

Value indexConst(OpBuilder &b, Location loc, int64_t v) {
  return b.create<arith::ConstantIndexOp>(loc, v);
}

Value scalarConst(OpBuilder &b, Location loc, Type computeTy, double v) {
  if (auto ft = dyn_cast<FloatType>(computeTy))
    return b.create<arith::ConstantOp>(loc, b.getFloatAttr(ft, v));
  return intConst(b, loc, computeTy, (int64_t)v);
}

Value intConst(OpBuilder &b, Location loc, Type computeTy, int64_t v) {
  if (auto ft = dyn_cast<FloatType>(computeTy))
    return b.create<arith::ConstantOp>(loc, b.getFloatAttr(ft, (double)v));
  if (computeTy.isInteger(1))
    v = v != 0;
  return b.create<arith::ConstantOp>(loc, b.getIntegerAttr(computeTy, v));
}

/// Rounds an f64 to f32 with round-to-odd (as the runtime's
/// roundToOddFloat): an inexact result gets an odd last bit, so a second
/// rounding to f16/bf16 is correctly rounded from the f64.
static Value roundToOddF32(OpBuilder &b, Location loc, Value d) {
  Type i32 = b.getI32Type();
  Value f = b.create<arith::TruncFOp>(loc, b.getF32Type(), d);
  Value back = b.create<arith::ExtFOp>(loc, d.getType(), f);
  Value exact =
      b.create<arith::CmpFOp>(loc, arith::CmpFPredicate::OEQ, back, d);
  Value nan = b.create<arith::CmpFOp>(loc, arith::CmpFPredicate::UNO, d, d);
  Value bits = b.create<arith::BitcastOp>(loc, i32, f);
  Value one = intConst(b, loc, i32, 1);
  Value odd = b.create<arith::CmpIOp>(loc, arith::CmpIPredicate::ne,
                                      b.create<arith::AndIOp>(loc, bits, one),
                                      intConst(b, loc, i32, 0));
  Value keep =
      b.create<arith::OrIOp>(loc, b.create<arith::OrIOp>(loc, exact, nan), odd);
  // nextafter(f, toward d): one step up in magnitude when moving away from
  // zero, i.e. when "f < d" differs from "f is negative".
  Value up = b.create<arith::CmpFOp>(loc, arith::CmpFPredicate::OLT, back, d);
  Value negative = b.create<arith::CmpIOp>(loc, arith::CmpIPredicate::slt, bits,
                                           intConst(b, loc, i32, 0));
  Value away = b.create<arith::XOrIOp>(loc, up, negative);
  Value stepped = b.create<arith::SelectOp>(
      loc, away, b.create<arith::AddIOp>(loc, bits, one),
      b.create<arith::SubIOp>(loc, bits, one));
  Value result = b.create<arith::SelectOp>(loc, keep, bits, stepped);
  return b.create<arith::BitcastOp>(loc, b.getF32Type(), result);
}

/// f32 -> bf16, round to nearest even, NaN quieted (the runtime's
/// floatToBf16), in integer ops: no libcall, and the same on every target.
static Value f32ToBf16(OpBuilder &b, Location loc, Value f) {
  Type i32 = b.getI32Type();
  Value x = b.create<arith::BitcastOp>(loc, i32, f);
  Value sixteen = intConst(b, loc, i32, 16);
  Value hi = b.create<arith::ShRUIOp>(loc, x, sixteen);
  Value lsb = b.create<arith::AndIOp>(loc, hi, intConst(b, loc, i32, 1));
  Value rounded = b.create<arith::ShRUIOp>(
      loc,
      b.create<arith::AddIOp>(
          loc, x,
          b.create<arith::AddIOp>(loc, intConst(b, loc, i32, 0x7fff), lsb)),
      sixteen);
  Value quiet = b.create<arith::OrIOp>(loc, hi, intConst(b, loc, i32, 0x40));
  Value nan = b.create<arith::CmpFOp>(loc, arith::CmpFPredicate::UNO, f, f);
  Value r = b.create<arith::SelectOp>(loc, nan, quiet, rounded);
  Value r16 = b.create<arith::TruncIOp>(loc, b.getI16Type(), r);
  return b.create<arith::BitcastOp>(loc, b.getBF16Type(), r16);
}

static Value bf16ToF32(OpBuilder &b, Location loc, Value h) {
  Type i32 = b.getI32Type();
  Value bits = b.create<arith::BitcastOp>(loc, b.getI16Type(), h);
  Value wide = b.create<arith::ExtUIOp>(loc, i32, bits);
  Value shifted = b.create<arith::ShLIOp>(loc, wide, intConst(b, loc, i32, 16));
  return b.create<arith::BitcastOp>(loc, b.getF32Type(), shifted);
}

/// A float compute value (f32 or f64) rounded once to float storage type
/// `st` (f16, bf16, f32 or f64).
static Value toFloatStorage(OpBuilder &b, Location loc, Value v, Type st) {
  if (v.getType() == st)
    return v;
  if (st.isF64())
    return b.create<arith::ExtFOp>(loc, st, v);
  if (st.isF32())
    return b.create<arith::TruncFOp>(loc, st, v);
  if (v.getType().isF64())
    v = roundToOddF32(b, loc, v);
  if (st.isBF16())
    return f32ToBf16(b, loc, v);
  return b.create<arith::TruncFOp>(loc, st, v);
}

/// A float storage value widened to compute type `ct`.
static Value fromFloatStorage(OpBuilder &b, Location loc, Value v, Type ct) {
  if (v.getType() == ct)
    return v;
  if (v.getType().isBF16()) {
    v = bf16ToF32(b, loc, v);
    if (v.getType() == ct)
      return v;
  }
  return b.create<arith::ExtFOp>(loc, ct, v);
}

/// Rounds a compute value to what a tensor of element type `elem` can hold
/// and back, so that a fused chain sees the values an unfused one stores:
/// narrow integers wrap, f16/bf16 round.
static Value normalize(OpBuilder &b, Location loc, Value v, Type elem) {
  Type st = storageType(elem);
  if (auto it = dyn_cast<IntegerType>(elem)) {
    if (it.getWidth() == 1 || it.getWidth() == 64)
      return v;
    Value narrow = b.create<arith::TruncIOp>(loc, st, v);
    Type ct = computeType(elem);
    if (it.isUnsigned())
      return b.create<arith::ExtUIOp>(loc, ct, narrow);
    return b.create<arith::ExtSIOp>(loc, ct, narrow);
  }
  if (elem.isF16() || elem.isBF16())
    return fromFloatStorage(b, loc, toFloatStorage(b, loc, v, st),
                            computeType(elem));
  return v;
}

Value loadElement(OpBuilder &b, Location loc, Value buffer, Value index,
                  Type elem) {
  Value v = b.create<memref::LoadOp>(loc, buffer, index);
  Type ct = computeType(elem);
  if (elem.isInteger(1))
    return b.create<arith::CmpIOp>(loc, arith::CmpIPredicate::ne, v,
                                   intConst(b, loc, v.getType(), 0));
  if (v.getType() == ct)
    return v;
  if (isa<FloatType>(ct))
    return fromFloatStorage(b, loc, v, ct);
  if (isUnsignedInteger(elem))
    return b.create<arith::ExtUIOp>(loc, ct, v);
  return b.create<arith::ExtSIOp>(loc, ct, v);
}

void storeElement(OpBuilder &b, Location loc, Value v, Value buffer,
                  Value index, Type elem) {
  if (!buffer)
    return;
  Type st = storageType(elem);
  if (elem.isInteger(1))
    v = b.create<arith::ExtUIOp>(loc, st, v);
  else if (isa<FloatType>(st))
    v = toFloatStorage(b, loc, v, st);
  else if (v.getType() != st)
    v = b.create<arith::TruncIOp>(loc, st, v);
  b.create<memref::StoreOp>(loc, v, buffer, index);
}

/// Float to integer as Tensor::setDouble does it: NaN gives 0, values at or
/// beyond the target's limits saturate, the rest truncate toward zero. The
/// limits are compared in the source's compute type; those that round there
/// (2^31 - 1 in f32, 2^63 - 1) round up to a power of two, which `>=`
/// treats exactly as the reference does in double.
static Value floatToInt(OpBuilder &b, Location loc, Value v, Type to) {
  unsigned width = cast<IntegerType>(to).getWidth();
  bool isUnsigned = isUnsignedInteger(to);
  double lo, hi;
  if (isUnsigned) {
    lo = 0;
    hi = (double)((width == 64 ? ~0ull : (1ull << width) - 1));
  } else {
    lo = -std::ldexp(1.0, width - 1);
    hi = std::ldexp(1.0, width - 1) - 1;
  }
  int64_t loInt =
      isUnsigned ? 0 : std::numeric_limits<int64_t>::min() >> (64 - width);
  int64_t hiInt = isUnsigned
                      ? (int64_t)((1ull << width) - 1)
                      : std::numeric_limits<int64_t>::max() >> (64 - width);
  Type ft = v.getType();
  Type i64 = b.getI64Type();
  Value truncated = b.create<arith::FPToSIOp>(loc, i64, v);
  Value low = b.create<arith::CmpFOp>(loc, arith::CmpFPredicate::OLE, v,
                                      scalarConst(b, loc, ft, lo));
  Value high = b.create<arith::CmpFOp>(loc, arith::CmpFPredicate::OGE, v,
                                       scalarConst(b, loc, ft, hi));
  Value nan = b.create<arith::CmpFOp>(loc, arith::CmpFPredicate::UNO, v, v);
  Value r = b.create<arith::SelectOp>(loc, low, intConst(b, loc, i64, loInt),
                                      truncated);
  r = b.create<arith::SelectOp>(loc, high, intConst(b, loc, i64, hiInt), r);
  return b.create<arith::SelectOp>(loc, nan, intConst(b, loc, i64, 0), r);
}

Value castScalar(OpBuilder &b, Location loc, Value v, Type from, Type to) {
  if (from == to)
    return v;
  Type ct = computeType(to);
  if (to.isInteger(1)) {
    if (from.isInteger(1))
      return v;
    if (isa<FloatType>(v.getType()))
      return b.create<arith::CmpFOp>(loc, arith::CmpFPredicate::UNE, v,
                                     scalarConst(b, loc, v.getType(), 0));
    return b.create<arith::CmpIOp>(loc, arith::CmpIPredicate::ne, v,
                                   intConst(b, loc, v.getType(), 0));
  }
  if (from.isInteger(1)) {
    if (isa<FloatType>(ct))
      return b.create<arith::UIToFPOp>(loc, ct, v);
    return b.create<arith::ExtUIOp>(loc, ct, v);
  }
  bool fromFloat = isa<FloatType>(from), toFloat = isa<FloatType>(to);
  if (!fromFloat && !toFloat)
    return normalize(b, loc, v, to);
  if (fromFloat && !toFloat)
    return normalize(b, loc, floatToInt(b, loc, v, to), to);
  if (!fromFloat) {
    // The reference converts int64 -> double -> target; going straight from
    // i64 to a narrower float could round differently (double rounding).
    v = b.create<arith::SIToFPOp>(loc, b.getF64Type(), v);
  }
  // Float to float: one rounding to the target's storage type.
  return fromFloatStorage(b, loc, toFloatStorage(b, loc, v, storageType(to)),
                          ct);
}

Value normalizeScalar(OpBuilder &b, Location loc, Value v, Type elem) {
  return normalize(b, loc, v, elem);
}

//===----------------------------------------------------------------------===//
// Indexing and loops
//===----------------------------------------------------------------------===//

SmallVector<Value> delinearize(OpBuilder &b, Location loc, Value linear,
                               ArrayRef<int64_t> shape) {
  SmallVector<Value> coords(shape.size());
  SmallVector<int64_t> strides = rowMajorStrides(shape);
  int64_t total = numElementsOf(shape);
  for (size_t d = 0; d < shape.size(); ++d) {
    if (shape[d] == 1) {
      coords[d] = indexConst(b, loc, 0);
      continue;
    }
    Value c = linear;
    // linear < total, so dividing is only needed below the outermost
    // non-trivial dim, and the remainder only above the innermost.
    if (strides[d] != 1)
      c = b.create<arith::DivUIOp>(loc, c, indexConst(b, loc, strides[d]));
    if (strides[d] * shape[d] != total)
      c = b.create<arith::RemUIOp>(loc, c, indexConst(b, loc, shape[d]));
    coords[d] = c;
  }
  return coords;
}

Value linearize(OpBuilder &b, Location loc, ValueRange coords,
                ArrayRef<int64_t> strides) {
  Value sum;
  for (auto [c, s] : llvm::zip(coords, strides)) {
    if (s == 0)
      continue;
    Value term = s == 1 ? c
                        : b.create<arith::MulIOp>(loc, c, indexConst(b, loc, s))
                              .getResult();
    sum = sum ? b.create<arith::AddIOp>(loc, sum, term).getResult() : term;
  }
  return sum ? sum : indexConst(b, loc, 0);
}

Value broadcastIndex(OpBuilder &b, Location loc, Value resultLinear,
                     ArrayRef<int64_t> result, ArrayRef<int64_t> operand) {
  int64_t n = numElementsOf(operand);
  if (n == numElementsOf(result))
    return resultLinear;
  if (n == 1)
    return indexConst(b, loc, 0);
  // Operand strides aligned to the result's dims, 0 where broadcast.
  SmallVector<int64_t> opStrides = rowMajorStrides(operand);
  SmallVector<int64_t> strides(result.size(), 0);
  size_t offset = result.size() - operand.size();
  for (size_t d = 0; d < operand.size(); ++d)
    if (operand[d] != 1)
      strides[d + offset] = opStrides[d];
  SmallVector<Value> coords = delinearize(b, loc, resultLinear, result);
  return linearize(b, loc, coords, strides);
}

ValueRange forLoop(OpBuilder &b, Location loc, Value lb, Value ub,
                   ValueRange inits, LoopBodyFn body) {
  auto loop = b.create<scf::ForOp>(
      loc, lb, ub, indexConst(b, loc, 1), inits,
      [&](OpBuilder &nb, Location nloc, Value iv, ValueRange iters) {
        SmallVector<Value> next = body(nb, nloc, iv, iters);
        nb.create<scf::YieldOp>(nloc, next);
      });
  return loop.getResults();
}

ValueRange forLoop(OpBuilder &b, Location loc, int64_t lb, int64_t ub,
                   ValueRange inits, LoopBodyFn body) {
  return forLoop(b, loc, indexConst(b, loc, lb), indexConst(b, loc, ub), inits,
                 body);
}

static Value minMax(OpBuilder &b, Location loc, Value x, Value y, bool isMax) {
  if (isa<FloatType>(x.getType())) {
    // As the reference: NaN wins, otherwise `x > y ? x : y` (so which zero
    // comes out of max(-0, +0) matches too).
    Value pick = b.create<arith::CmpFOp>(
        loc, isMax ? arith::CmpFPredicate::OGT : arith::CmpFPredicate::OLT, x,
        y);
    Value r = b.create<arith::SelectOp>(loc, pick, x, y);
    Value nan = b.create<arith::CmpFOp>(loc, arith::CmpFPredicate::UNO, x, y);
    Value qnan = b.create<arith::ConstantOp>(
        loc,
        b.getFloatAttr(x.getType(),
                       APFloat::getQNaN(
                           cast<FloatType>(x.getType()).getFloatSemantics())));
    return b.create<arith::SelectOp>(loc, nan, qnan, r);
  }
  // Compute values of unsigned types are zero-extended, so a signed i64
  // comparison orders them right.
  if (isMax)
    return b.create<arith::MaxSIOp>(loc, x, y);
  return b.create<arith::MinSIOp>(loc, x, y);
}

Value emitMax(OpBuilder &b, Location loc, Value x, Value y, Type) {
  return minMax(b, loc, x, y, /*isMax=*/true);
}

Value emitMin(OpBuilder &b, Location loc, Value x, Value y, Type) {
  return minMax(b, loc, x, y, /*isMax=*/false);
}

//===----------------------------------------------------------------------===//
// Registry
//===----------------------------------------------------------------------===//

void EmitterRegistry::addScalar(StringRef opName, ScalarEmitterFn fn) {
  scalar_[opName] = std::move(fn);
}

void EmitterRegistry::addLoop(StringRef opName, LoopEmitterFn fn) {
  loop_[opName] = std::move(fn);
}

const ScalarEmitterFn *EmitterRegistry::lookupScalar(StringRef opName) const {
  auto it = scalar_.find(opName);
  return it == scalar_.end() ? nullptr : &it->second;
}

const LoopEmitterFn *EmitterRegistry::lookupLoop(StringRef opName) const {
  auto it = loop_.find(opName);
  return it == loop_.end() ? nullptr : &it->second;
}

const EmitterRegistry &EmitterRegistry::instance() {
  static const EmitterRegistry registry = [] {
    EmitterRegistry r;
#define PEFT_EMITTER_FAMILY(Family) register##Family##Emitters(r);
#include "codegen/cpu/EmitterFamilies.def"
#undef PEFT_EMITTER_FAMILY
    return r;
  }();
  return registry;
}

LogicalResult emitScalarOp(OpBuilder &b, Location loc, Operation *op,
                           ValueRange operands,
                           SmallVectorImpl<Value> &results) {
  const ScalarEmitterFn *fn =
      EmitterRegistry::instance().lookupScalar(op->getName().getStringRef());
  if (!fn)
    return op->emitError("loop emission: no scalar emitter for '")
           << op->getName() << "'";
  size_t before = results.size();
  if (failed((*fn)(b, loc, op, operands, results)))
    return failure();
  if (results.size() - before != op->getNumResults())
    return op->emitError("loop emission: scalar emitter of '")
           << op->getName() << "' produced " << results.size() - before
           << " values for " << op->getNumResults() << " results";
  // Round every result to its tensor's element type, as storing it would.
  for (unsigned i = 0; i < op->getNumResults(); ++i)
    results[before + i] =
        normalize(b, loc, results[before + i], elementTypeOf(op->getResult(i)));
  return success();
}

} // namespace peft::codegen
