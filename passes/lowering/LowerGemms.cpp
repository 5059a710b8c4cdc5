//===- LowerGemms.cpp - float nn.matmul -> kern.gemm ----------------------===//
//
// A GEMM library call takes transposes, a scale, an accumulator and a bias
// for free, so the ops around a product that are exactly those fold into
// the kern.gemm: an nn.transpose of an operand's last two dims, a multiply
// by a scalar constant (alpha), then either an add of a same-shaped tensor
// (the accumulator, beta = 1: LoRA's `base + s·(x·Aᵀ)·Bᵀ`) or of a [n]
// vector (the bias). Each fold needs the product to be the only user of the
// value it folds, so nothing else sees the intermediate.
//
//===----------------------------------------------------------------------===//
#include "passes/Passes.h"

#include "mlir/IR/TypeUtilities.h"
#include "llvm/ADT/SetVector.h"

namespace peft {
#define GEN_PASS_DEF_LOWERGEMMS
#include "passes/Passes.h.inc"
} // namespace peft

using namespace mlir;
using namespace peft;

namespace {

ArrayRef<int64_t> shapeOf(Value v) {
  return cast<RankedTensorType>(v.getType()).getShape();
}

int64_t product(ArrayRef<int64_t> dims) {
  int64_t p = 1;
  for (int64_t d : dims)
    p *= d;
  return p;
}

/// `v` itself, or the input of the nn.transpose that swaps the last two
/// dims of it (toggling `transposed`; the transpose goes to `folded`).
Value throughTranspose(Value v, bool &transposed,
                       SmallVectorImpl<Operation *> &folded) {
  auto t = v.getDefiningOp<nn::TransposeOp>();
  if (!t)
    return v;
  ArrayRef<int64_t> perm = t.getPerm();
  int64_t rank = perm.size();
  if (rank < 2)
    return v;
  for (int64_t i = 0; i < rank - 2; ++i)
    if (perm[i] != i)
      return v;
  if (perm[rank - 2] != rank - 1 || perm[rank - 1] != rank - 2)
    return v;
  transposed = !transposed;
  folded.push_back(t);
  return t.getInput();
}

/// The value of a rank-0 float constant (an nn.constant, or one cast from
/// f64 as the passes make scales the element type cannot hold exactly).
std::optional<double> scalarConstant(Value v) {
  if (auto cast = v.getDefiningOp<nn::CastOp>())
    v = cast.getInput();
  auto constant = v.getDefiningOp<nn::ConstantOp>();
  if (!constant)
    return std::nullopt;
  auto type = cast<RankedTensorType>(constant.getType());
  auto dense = dyn_cast<DenseElementsAttr>(constant.getValue());
  if (type.getRank() != 0 || !isa<FloatType>(type.getElementType()) || !dense)
    return std::nullopt;
  return dense.getSplatValue<APFloat>().convertToDouble();
}

/// The sole user of `v`, when it has exactly one.
Operation *soleUser(Value v) {
  return v.hasOneUse() ? *v.getUsers().begin() : nullptr;
}

/// `v` reshaped to `shape` (a view), or `v` when it has it. A reshape of a
/// reshape reads the first one's source.
Value reshapeTo(OpBuilder &b, Location loc, Value v, ArrayRef<int64_t> shape) {
  if (shapeOf(v) == shape)
    return v;
  while (auto reshape = v.getDefiningOp<nn::ReshapeOp>())
    v = reshape.getInput();
  if (shapeOf(v) == shape)
    return v;
  auto type = RankedTensorType::get(shape, getElementTypeOrSelf(v.getType()));
  return b.create<nn::ReshapeOp>(loc, type, v);
}

struct Operands {
  Value a, b;
  bool transA = false, transB = false;
  /// Transposes folded into the flags (erased when nothing else reads them).
  SmallVector<Operation *> transposes;
};

/// The operands of a GEMM computing `matmul`, each rank 2 or 3; fails when
/// the batch dims broadcast in a way one batch stride cannot express.
FailureOr<Operands> gemmOperands(OpBuilder &b, nn::MatMulOp matmul) {
  Location loc = matmul.getLoc();
  Operands o;
  o.transA = matmul.getTransposeLhs();
  o.transB = matmul.getTransposeRhs();
  o.a = throughTranspose(matmul.getLhs(), o.transA, o.transposes);
  o.b = throughTranspose(matmul.getRhs(), o.transB, o.transposes);
  // Batch dims that are all 1 broadcast like none at all; others must be
  // equal or absent on one side for one batch stride to express them.
  auto batchOf = [](Value v) {
    ArrayRef<int64_t> s = shapeOf(v);
    return s.size() > 2 && product(s.drop_back(2)) != 1 ? s.drop_back(2)
                                                        : ArrayRef<int64_t>();
  };
  if (!batchOf(o.a).empty() && !batchOf(o.b).empty() &&
      batchOf(o.a) != batchOf(o.b))
    return failure();
  // numpy promotes a 1-D operand to a row (left) or column (right) matrix.
  if (shapeOf(o.a).size() == 1)
    o.a = reshapeTo(b, loc, o.a, {1, shapeOf(o.a)[0]});
  if (shapeOf(o.b).size() == 1)
    o.b = reshapeTo(b, loc, o.b, {shapeOf(o.b)[0], 1});
  ArrayRef<int64_t> sa = shapeOf(o.a), sb = shapeOf(o.b);
  ArrayRef<int64_t> batchA = sa.drop_back(2), batchB = sb.drop_back(2);
  auto matrix = [](ArrayRef<int64_t> s) { return s.take_back(2); };
  if (product(batchA) == 1 && !batchA.empty())
    o.a = reshapeTo(b, loc, o.a, matrix(sa)), batchA = {};
  if (product(batchB) == 1 && !batchB.empty())
    o.b = reshapeTo(b, loc, o.b, matrix(sb)), batchB = {};
  auto flatten = [&](Value v, ArrayRef<int64_t> batch) {
    if (batch.empty())
      return v;
    ArrayRef<int64_t> s = shapeOf(v);
    return reshapeTo(b, loc, v, {product(batch), s[s.size() - 2], s.back()});
  };
  // Rows of a batched left operand against one right matrix are one GEMM.
  if (!batchA.empty() && batchB.empty() && !o.transA) {
    ArrayRef<int64_t> s = shapeOf(o.a);
    o.a = reshapeTo(b, loc, o.a, {product(s.drop_back()), s.back()});
    return o;
  }
  o.a = flatten(o.a, batchA);
  o.b = flatten(o.b, batchB);
  return o;
}

struct LowerGemmsPass : public peft::impl::LowerGemmsBase<LowerGemmsPass> {
  void runOnOperation() override {
    SmallVector<nn::MatMulOp> matmuls;
    getOperation().walk([&](nn::MatMulOp op) {
      if (isa<FloatType>(getElementTypeOrSelf(op.getType())))
        matmuls.push_back(op);
    });
    for (nn::MatMulOp matmul : matmuls)
      lower(matmul);
    // A view of a view reads the first one's source (the accumulators
    // above were viewed before their producers became GEMMs); views left
    // unread go.
    SmallVector<nn::ReshapeOp> reshapes;
    getOperation().walk([&](nn::ReshapeOp op) { reshapes.push_back(op); });
    for (nn::ReshapeOp op : reshapes) {
      if (auto source = op.getInput().getDefiningOp<nn::ReshapeOp>())
        op.getInputMutable().assign(source.getInput());
      if (op.getInput().getType() == op.getType())
        op.getResult().replaceAllUsesWith(op.getInput());
    }
    for (nn::ReshapeOp op : llvm::reverse(reshapes))
      if (op->use_empty())
        op->erase();
  }

  void lower(nn::MatMulOp matmul) {
    OpBuilder b(matmul);
    Location loc = matmul.getLoc();
    FailureOr<Operands> o = gemmOperands(b, matmul);
    if (failed(o))
      return;
    auto ta = cast<RankedTensorType>(o->a.getType());
    auto tb = cast<RankedTensorType>(o->b.getType());
    int64_t m = ta.getDimSize(ta.getRank() - (o->transA ? 1 : 2));
    int64_t n = tb.getDimSize(tb.getRank() - (o->transB ? 2 : 1));
    SmallVector<int64_t> shape;
    if (ta.getRank() == 3 || tb.getRank() == 3)
      shape.push_back(ta.getRank() == 3 ? ta.getDimSize(0) : tb.getDimSize(0));
    shape.append({m, n});
    auto gemmType = RankedTensorType::get(shape, ta.getElementType());
    auto resultType = cast<RankedTensorType>(matmul.getType());

    // The ops the GEMM absorbs, each the only user of the value before it.
    Value replaced = matmul.getResult();
    double alpha = 1.0;
    Value accumulator, bias;
    SmallVector<Operation *> absorbed;
    if (auto mul = dyn_cast_or_null<nn::MulOp>(soleUser(replaced))) {
      Value other = mul.getLhs() == replaced ? mul.getRhs() : mul.getLhs();
      std::optional<double> s = scalarConstant(other);
      if (s && mul.getType() == resultType) {
        alpha = *s;
        replaced = mul.getResult();
        absorbed.push_back(mul);
      }
    }
    if (auto add = dyn_cast_or_null<nn::AddOp>(soleUser(replaced))) {
      Value other = add.getLhs() == replaced ? add.getRhs() : add.getLhs();
      auto otherType = cast<RankedTensorType>(other.getType());
      if (add.getType() == resultType && other != replaced) {
        if (otherType == resultType) {
          accumulator = other;
          replaced = add.getResult();
          absorbed.push_back(add);
        } else if (otherType.getRank() == 1 && otherType.getDimSize(0) == n &&
                   otherType.getElementType() == resultType.getElementType()) {
          bias = other;
          replaced = add.getResult();
          absorbed.push_back(add);
        }
      }
    }
    // Built where the last absorbed op was, after everything it reads.
    b.setInsertionPoint(replaced.getDefiningOp());
    if (accumulator)
      accumulator = reshapeTo(b, loc, accumulator, shape);
    auto gemm = b.create<kern::GemmOp>(
        loc, gemmType, o->a, o->b, accumulator, bias, b.getBoolAttr(o->transA),
        b.getBoolAttr(o->transB), b.getF64FloatAttr(alpha),
        b.getF64FloatAttr(accumulator ? 1.0 : 0.0), b.getStringAttr("none"));
    Value result = reshapeTo(b, loc, gemm.getResult(), resultType.getShape());
    replaced.replaceAllUsesWith(result);
    // The absorbed ops, last first, then whatever only they read.
    llvm::SetVector<Operation *> dead;
    dead.insert(absorbed.rbegin(), absorbed.rend());
    dead.insert(matmul);
    dead.insert(o->transposes.begin(), o->transposes.end());
    for (size_t i = 0; i < dead.size(); ++i) {
      Operation *op = dead[i];
      if (!op->use_empty())
        continue;
      for (Value v : op->getOperands())
        if (Operation *def = v.getDefiningOp();
            def && isa<nn::ConstantOp, nn::CastOp>(def) && v.hasOneUse())
          dead.insert(def);
      op->erase();
    }
  }
};

} // namespace
