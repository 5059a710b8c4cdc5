//===- EmitterSupport.h - scalar index math for loop emitters ---*- C++ -*-===//
//
// Small builders shared by the shape, convolution and peft loop emitters:
// index arithmetic that reads like the reference kernels' C++ (the same
// formulas, one op per operator), f64 accumulation (the reference evaluator
// accumulates floats in double, so doing the same reproduces its sums
// exactly), and nested loops over a static box (a convolution window, the
// summed labels of an einsum).
//
//===----------------------------------------------------------------------===//
#pragma once

#include "codegen/cpu/LoopEmitter.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/SCF/IR/SCF.h"

namespace peft::codegen {

/// Integer arithmetic on `index` (or i64) values, folded where both sides
/// are constants so static offsets cost nothing.
class IndexMath {
public:
  IndexMath(mlir::OpBuilder &b, mlir::Location loc) : b(b), loc(loc) {}

  mlir::Value c(int64_t v) { return indexConst(b, loc, v); }
  mlir::Value add(mlir::Value x, mlir::Value y) {
    return b.createOrFold<mlir::arith::AddIOp>(loc, x, y);
  }
  mlir::Value add(mlir::Value x, int64_t y) {
    return y == 0 ? x : add(x, constLike(x, y));
  }
  mlir::Value sub(mlir::Value x, mlir::Value y) {
    return b.createOrFold<mlir::arith::SubIOp>(loc, x, y);
  }
  mlir::Value sub(mlir::Value x, int64_t y) {
    return y == 0 ? x : sub(x, constLike(x, y));
  }
  mlir::Value mul(mlir::Value x, mlir::Value y) {
    return b.createOrFold<mlir::arith::MulIOp>(loc, x, y);
  }
  mlir::Value mul(mlir::Value x, int64_t y) {
    return y == 1 ? x : mul(x, constLike(x, y));
  }
  /// Truncating division and remainder (C++'s / and %).
  mlir::Value div(mlir::Value x, int64_t y) {
    return y == 1
               ? x
               : b.createOrFold<mlir::arith::DivSIOp>(loc, x, constLike(x, y));
  }
  mlir::Value rem(mlir::Value x, int64_t y) {
    return y == 1
               ? constLike(x, 0)
               : b.createOrFold<mlir::arith::RemSIOp>(loc, x, constLike(x, y));
  }
  mlir::Value cmp(mlir::arith::CmpIPredicate p, mlir::Value x, mlir::Value y) {
    return b.createOrFold<mlir::arith::CmpIOp>(loc, p, x, y);
  }
  mlir::Value cmp(mlir::arith::CmpIPredicate p, mlir::Value x, int64_t y) {
    return cmp(p, x, constLike(x, y));
  }
  mlir::Value lt(mlir::Value x, int64_t y) {
    return cmp(mlir::arith::CmpIPredicate::slt, x, y);
  }
  mlir::Value ge(mlir::Value x, int64_t y) {
    return cmp(mlir::arith::CmpIPredicate::sge, x, y);
  }
  mlir::Value eq(mlir::Value x, mlir::Value y) {
    return cmp(mlir::arith::CmpIPredicate::eq, x, y);
  }
  /// lo <= x < hi.
  mlir::Value inRange(mlir::Value x, int64_t lo, int64_t hi) {
    return land(ge(x, lo), lt(x, hi));
  }
  mlir::Value land(mlir::Value x, mlir::Value y) {
    return b.createOrFold<mlir::arith::AndIOp>(loc, x, y);
  }
  mlir::Value lnot(mlir::Value x) {
    return b.createOrFold<mlir::arith::XOrIOp>(
        loc, x, b.create<mlir::arith::ConstantIntOp>(loc, 1, 1));
  }
  mlir::Value trueVal() {
    return b.create<mlir::arith::ConstantIntOp>(loc, 1, 1);
  }
  mlir::Value select(mlir::Value cond, mlir::Value x, mlir::Value y) {
    return b.createOrFold<mlir::arith::SelectOp>(loc, cond, x, y);
  }
  mlir::Value toIndex(mlir::Value i64) {
    return b.createOrFold<mlir::arith::IndexCastOp>(loc, b.getIndexType(), i64);
  }
  mlir::Value toI64(mlir::Value index) {
    return b.createOrFold<mlir::arith::IndexCastOp>(loc, b.getI64Type(), index);
  }

  mlir::OpBuilder &b;
  mlir::Location loc;

private:
  mlir::Value constLike(mlir::Value x, int64_t v) {
    if (x.getType().isIndex())
      return c(v);
    return b.create<mlir::arith::ConstantIntOp>(loc, v, x.getType());
  }
};

/// A compute value of tensor element type `elem` widened to f64, as the
/// reference evaluator's Tensor::getDouble reads it.
inline mlir::Value toF64(mlir::OpBuilder &b, mlir::Location loc, mlir::Value v,
                         mlir::Type elem) {
  return castScalar(b, loc, v, elem, b.getF64Type());
}
/// An f64 value as a compute value of tensor element type `elem`, rounded
/// (or, for integers, truncated and saturated) as Tensor::setDouble stores it.
inline mlir::Value fromF64(mlir::OpBuilder &b, mlir::Location loc,
                           mlir::Value v, mlir::Type elem) {
  return castScalar(b, loc, v, b.getF64Type(), elem);
}
/// A compute value of tensor element type `from` converted to the compute
/// type of `to` (nn.cast semantics; identity when the types agree).
inline mlir::Value convertElement(mlir::OpBuilder &b, mlir::Location loc,
                                  mlir::Value v, mlir::Type from,
                                  mlir::Type to) {
  return from == to ? v : castScalar(b, loc, v, from, to);
}
/// The zero of tensor element type `elem`, in its compute type.
inline mlir::Value zeroOf(mlir::OpBuilder &b, mlir::Location loc,
                          mlir::Type elem) {
  return scalarConst(b, loc, computeType(elem), 0.0);
}

/// Nested `for` loops over the row-major box `extents` (outermost first),
/// carrying `inits`; `body` gets one index per dim and returns the values
/// for the next iteration. With `reversed`, every dim counts down, so the
/// box is visited in reverse row-major order. No extents: `body` runs once.
using BoxBodyFn = llvm::function_ref<llvm::SmallVector<mlir::Value>(
    mlir::OpBuilder &, mlir::Location, llvm::ArrayRef<mlir::Value> coords,
    mlir::ValueRange iters)>;
namespace detail {
inline llvm::SmallVector<mlir::Value>
forBoxFrom(mlir::OpBuilder &b, mlir::Location loc,
           llvm::ArrayRef<int64_t> extents, mlir::ValueRange inits,
           BoxBodyFn body, bool reversed,
           llvm::SmallVectorImpl<mlir::Value> &coords) {
  if (coords.size() == extents.size())
    return body(b, loc, coords, inits);
  int64_t extent = extents[coords.size()];
  mlir::ValueRange results =
      forLoop(b, loc, 0, extent, inits,
              [&](mlir::OpBuilder &nb, mlir::Location nl, mlir::Value iv,
                  mlir::ValueRange iters) {
                IndexMath m(nb, nl);
                coords.push_back(reversed ? m.sub(m.c(extent - 1), iv) : iv);
                llvm::SmallVector<mlir::Value> next =
                    forBoxFrom(nb, nl, extents, iters, body, reversed, coords);
                coords.pop_back();
                return next;
              });
  return llvm::SmallVector<mlir::Value>(results.begin(), results.end());
}
} // namespace detail
inline llvm::SmallVector<mlir::Value>
forBox(mlir::OpBuilder &b, mlir::Location loc, llvm::ArrayRef<int64_t> extents,
       mlir::ValueRange inits, BoxBodyFn body, bool reversed = false) {
  llvm::SmallVector<mlir::Value> coords;
  return detail::forBoxFrom(b, loc, extents, inits, body, reversed, coords);
}

/// `if (cond) then() else other()` yielding the values both branches return
/// (of the same types).
using BranchFn = llvm::function_ref<llvm::SmallVector<mlir::Value>(
    mlir::OpBuilder &, mlir::Location)>;
inline llvm::SmallVector<mlir::Value> ifElse(mlir::OpBuilder &b,
                                             mlir::Location loc,
                                             mlir::Value cond, BranchFn then,
                                             BranchFn other) {
  auto op = b.create<mlir::scf::IfOp>(
      loc, cond,
      [&](mlir::OpBuilder &nb, mlir::Location nl) {
        nb.create<mlir::scf::YieldOp>(nl, then(nb, nl));
      },
      [&](mlir::OpBuilder &nb, mlir::Location nl) {
        nb.create<mlir::scf::YieldOp>(nl, other(nb, nl));
      });
  return llvm::SmallVector<mlir::Value>(op.getResults().begin(),
                                        op.getResults().end());
}
/// `if (cond) then()` with no results.
inline void
ifThen(mlir::OpBuilder &b, mlir::Location loc, mlir::Value cond,
       llvm::function_ref<void(mlir::OpBuilder &, mlir::Location)> then) {
  b.create<mlir::scf::IfOp>(loc, cond,
                            [&](mlir::OpBuilder &nb, mlir::Location nl) {
                              then(nb, nl);
                              nb.create<mlir::scf::YieldOp>(nl);
                            });
}

/// A tensor a loop emitter reads: its buffer and element type.
struct Source {
  mlir::Value buffer;
  mlir::Type elem;

  Source() = default;
  Source(LoopEmitContext &ctx, mlir::Value tensor)
      : buffer(ctx.buffer(tensor)), elem(elementTypeOf(tensor)) {}

  /// Element `index` in the compute type of tensor element type `as`.
  mlir::Value read(mlir::OpBuilder &b, mlir::Location loc, mlir::Value index,
                   mlir::Type as) const {
    return convertElement(b, loc, loadElement(b, loc, buffer, index, elem),
                          elem, as);
  }
  /// Element `index` widened to f64 (Tensor::getDouble).
  mlir::Value readF64(mlir::OpBuilder &b, mlir::Location loc,
                      mlir::Value index) const {
    return read(b, loc, index, b.getF64Type());
  }
  /// Element `index` as an i64 (for index tensors).
  mlir::Value readInt(mlir::OpBuilder &b, mlir::Location loc,
                      mlir::Value index) const {
    return read(b, loc, index, b.getI64Type());
  }
};

} // namespace peft::codegen
