//===- GradientRules.h - the table of reverse-mode gradient rules -*- C++
//-*-===//
//
// The one place that knows calculus. Each op name maps to a rule that, given
// the forward op, the cotangents of its results and which operands need a
// gradient, builds the operand cotangents with nn ops (ONNX Runtime's
// gradient_builder is the model). Ops through which no gradient flows
// (comparisons, integer results, piecewise-constant functions) are listed
// in the same table, so the table names every op the autodiff knows.
//
//===----------------------------------------------------------------------===//
#pragma once

#include "mlir/IR/Builders.h"
#include "mlir/IR/BuiltinTypes.h"
#include "mlir/IR/Operation.h"
#include "llvm/ADT/SmallBitVector.h"

namespace peft::autodiff {

/// What a rule sees (the forward op, its result cotangents, which operands
/// need a gradient) and the helpers it builds operand cotangents with. New
/// ops go before the builder's insertion point, at the forward op's location.
class GradientBuilder {
public:
  GradientBuilder(mlir::OpBuilder &builder, mlir::Operation *op,
                  llvm::ArrayRef<mlir::Value> resultGrads,
                  const llvm::SmallBitVector &needsGrad);

  mlir::Operation *op() const { return op_; }
  template <typename OpT> OpT as() const { return llvm::cast<OpT>(op_); }
  /// Forward operand i and result i.
  mlir::Value in(unsigned i) const { return op_->getOperand(i); }
  mlir::Value out(unsigned i = 0) const { return op_->getResult(i); }
  /// The cotangent of result i; null when none flows into it.
  mlir::Value dout(unsigned i = 0) const { return resultGrads_[i]; }
  /// Whether operand i needs a gradient (it is active).
  bool needs(unsigned i) const { return needsGrad_.test(i); }
  /// Records operand i's cotangent, summing broadcast dims back to the
  /// operand's shape; ignored when the operand needs no gradient.
  void setGrad(unsigned i, mlir::Value grad);
  /// Reports an unsupported variant on the forward op; the pass fails.
  void fail(const llvm::Twine &message);

  bool failed() const { return failed_; }
  llvm::ArrayRef<mlir::Value> operandGrads() const { return operandGrads_; }

  // --- Creating ops --------------------------------------------------------
  /// Creates `OpName` with inferred result types (or `type` when given).
  mlir::Value create(llvm::StringRef opName, mlir::ValueRange operands,
                     llvm::ArrayRef<mlir::NamedAttribute> attrs = {},
                     mlir::Type type = {});
  mlir::NamedAttribute attr(llvm::StringRef name, mlir::Attribute value);
  mlir::NamedAttribute i64s(llvm::StringRef name, llvm::ArrayRef<int64_t> v);
  mlir::NamedAttribute i64(llvm::StringRef name, int64_t v);
  mlir::NamedAttribute str(llvm::StringRef name, llvm::StringRef v);

  mlir::Value unary(llvm::StringRef opName, mlir::Value x) {
    return create(opName, {x});
  }
  mlir::Value add(mlir::Value a, mlir::Value b) {
    return create("nn.add", {a, b});
  }
  mlir::Value sub(mlir::Value a, mlir::Value b) {
    return create("nn.sub", {a, b});
  }
  mlir::Value mul(mlir::Value a, mlir::Value b) {
    return create("nn.mul", {a, b});
  }
  mlir::Value div(mlir::Value a, mlir::Value b) {
    return create("nn.div", {a, b});
  }
  mlir::Value neg(mlir::Value a) { return unary("nn.neg", a); }
  /// a * s and a + s for a double s.
  mlir::Value scale(mlir::Value a, double s) { return mul(a, scalar(s, a)); }
  mlir::Value shift(mlir::Value a, double s) { return add(a, scalar(s, a)); }
  /// A rank-0 constant with `like`'s element type.
  mlir::Value scalar(double value, mlir::Value like);
  /// A splat constant of `type` (0 by default).
  mlir::Value splat(mlir::Type type, double value = 0);
  mlir::Value where(mlir::Value cond, mlir::Value a, mlir::Value b) {
    return create("nn.where", {cond, a, b});
  }
  mlir::Value castTo(mlir::Value v, mlir::Type elementType);
  mlir::Value reshape(mlir::Value v, llvm::ArrayRef<int64_t> shape);
  mlir::Value broadcastTo(mlir::Value v, llvm::ArrayRef<int64_t> shape);
  mlir::Value reduceSum(mlir::Value v, llvm::ArrayRef<int64_t> axes,
                        bool keepdims);
  mlir::Value transpose(mlir::Value v, llvm::ArrayRef<int64_t> perm);
  mlir::Value slice(mlir::Value v, llvm::ArrayRef<int64_t> starts,
                    llvm::ArrayRef<int64_t> sizes,
                    llvm::ArrayRef<int64_t> steps);
  /// Zero padding; negative amounts crop.
  mlir::Value pad(mlir::Value v, llvm::ArrayRef<int64_t> low,
                  llvm::ArrayRef<int64_t> high);
  mlir::Value matmul(mlir::Value a, mlir::Value b, bool transposeA,
                     bool transposeB);
  /// Sums `v` over the dims numpy broadcasting added to reach `shape`.
  mlir::Value sumTo(mlir::Value v, llvm::ArrayRef<int64_t> shape);
  /// The cotangent of a reduction over `axes` of `input`, spread back over
  /// the reduced dims.
  mlir::Value unreduce(mlir::Value grad, mlir::Value input,
                       llvm::ArrayRef<int64_t> axes);

  static llvm::ArrayRef<int64_t> shapeOf(mlir::Value v);

private:
  mlir::OpBuilder &b_;
  mlir::Operation *op_;
  llvm::SmallVector<mlir::Value> resultGrads_;
  llvm::SmallBitVector needsGrad_;
  llvm::SmallVector<mlir::Value> operandGrads_;
  bool failed_ = false;
};

/// A rule builds the cotangents of the operands that need one.
using GradientRule = void (*)(GradientBuilder &);

enum class GradientKind {
  /// Differentiable: `rule` builds operand cotangents.
  Rule,
  /// No gradient flows: the result is integer or boolean, or piecewise
  /// constant (derivative zero almost everywhere). Results are constants
  /// to the autodiff.
  NoGradient,
  /// Backward-only ops: differentiating them (second order) is not built.
  BackwardOnly,
};

struct GradientEntry {
  llvm::StringLiteral opName;
  GradientKind kind;
  GradientRule rule; // set for GradientKind::Rule
};

/// Every op the autodiff knows, in one table.
llvm::ArrayRef<GradientEntry> gradientTable();
/// The entry for `opName` ("nn.add"), or null when the table lacks it.
const GradientEntry *lookupGradient(llvm::StringRef opName);

} // namespace peft::autodiff
