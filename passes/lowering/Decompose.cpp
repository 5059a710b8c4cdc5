//===- Decompose.cpp - adapter and loss ops into nn ops -------------------===//
//
// After this pass the GEMMs of the adapters are plain nn.matmul ops that
// peft-lower-gemms hands to the GEMM library, and everything else is nn ops
// the kernel emitter knows. Each rewrite follows the order of operations of
// the op's reference kernel (codegen/reference/PeftKernels.cpp) so an f64
// evaluation before and after agrees to rounding.
//
//===----------------------------------------------------------------------===//
#include "passes/Passes.h"
#include "passes/autodiff/GradientRules.h"
#include "passes/lowering/DecomposeReft.h"
#include "passes/lowering/ExpandAttention.h"

#include "mlir/IR/TypeUtilities.h"
#include "llvm/ADT/TypeSwitch.h"

#include <numeric>

namespace peft {
#define GEN_PASS_DEF_DECOMPOSE
#include "passes/Passes.h.inc"
} // namespace peft

using namespace mlir;
using namespace peft;

namespace {

// The gradient builder's helpers build nn ops with inferred types before
// the insertion point, at the op's location; no cotangents are involved.
using B = autodiff::GradientBuilder;

SmallVector<int64_t> allAxes(Value v) {
  SmallVector<int64_t> axes(B::shapeOf(v).size());
  std::iota(axes.begin(), axes.end(), 0);
  return axes;
}

/// x̃·Aᵀ·Bᵀ through the r-wide intermediate: A = [r, in], B = [out, r].
Value lowRank(B &g, Value xt, Value a, Value b) {
  return g.matmul(g.matmul(xt, a, false, true), b, false, true);
}

/// y = x·W' + (x̃·Aᵀ·Bᵀ)·s, PEFT's `result + lora_B(lora_A(x)) * scaling`.
Value decomposeLora(B &g, pir::LoraOp op) {
  Value x = op.getInput(), w = op.getWeight();
  Value xt = op.getAdapterInput() ? op.getAdapterInput() : x;
  Value base = g.matmul(x, w, false, op.isWeightOutIn());
  Value lo = lowRank(g, xt, op.getLoraA(), op.getLoraB());
  return g.add(base, g.scale(lo, op.getScale().convertToDouble()));
}

/// DoRA's n = ‖W' + s·B·A‖ per output feature without forming B·A:
/// n² = ‖W'_o‖² + 2s·Σ_k B[o,k]·(A·W')[k,o] + s²·Σ_k (B·A·Aᵀ)[o,k]·B[o,k].
Value doraNorm(B &g, Value w, Value a, Value b, double s, bool outIn) {
  Value w2 = g.reduceSum(g.mul(w, w), {outIn ? 1 : 0}, false);
  Value aw = g.matmul(a, w, false, outIn);
  Value cross = g.reduceSum(g.mul(g.transpose(b, {1, 0}), aw), {0}, false);
  Value gram = g.matmul(a, a, false, true);
  Value quad =
      g.reduceSum(g.mul(g.matmul(b, gram, false, false), b), {1}, false);
  Value sq = g.add(g.add(w2, g.scale(cross, 2 * s)), g.scale(quad, s * s));
  return g.unary("nn.sqrt", sq);
}

/// PEFT's DoraLinearLayer with c = m / n:
/// y = x·W' + ((c − 1)·(x̃·W') + (c·(x̃·Aᵀ·Bᵀ))·s).
Value decomposeDora(B &g, pir::DoraOp op) {
  bool outIn = op.isWeightOutIn();
  double s = op.getScale().convertToDouble();
  Value x = op.getInput(), w = op.getWeight(), a = op.getLoraA(),
        b = op.getLoraB();
  Value xt = op.getAdapterInput() ? op.getAdapterInput() : x;
  Value c = g.div(op.getMagnitude(), doraNorm(g, w, a, b, s, outIn));
  Value base = g.matmul(x, w, false, outIn);
  Value droppedBase =
      op.getAdapterInput() ? g.matmul(xt, w, false, outIn) : base;
  Value lo = lowRank(g, xt, a, b);
  Value dora =
      g.add(g.mul(g.shift(c, -1.0), droppedBase), g.scale(g.mul(c, lo), s));
  return g.add(base, dora);
}

/// mean((p − t)²) as sum / N.
Value decomposeMse(B &g, pir::MseOp op) {
  Value d = g.sub(op.getPrediction(), op.getTarget());
  Value sum = g.reduceSum(g.mul(d, d), allAxes(d), false);
  double n = cast<RankedTensorType>(d.getType()).getNumElements();
  return g.div(sum, g.scalar(n, sum));
}

/// An integer splat constant of `type`.
Value intSplat(B &g, RankedTensorType type, int64_t value) {
  auto attr = DenseElementsAttr::get(
      type, IntegerAttr::get(type.getElementType(), value));
  return g.create("nn.constant", {}, {g.attr("value", attr)}, type);
}

/// Σ −log_softmax(logits)[label] over counted positions / their count, the
/// label of a position being the next one along the last axis when causal
/// (the last position then has none: ignore_index).
Value decomposeCrossEntropy(B &g, pir::CrossEntropyOp op) {
  Value logits = op.getLogits(), labels = op.getLabels();
  auto labelType = cast<RankedTensorType>(labels.getType());
  ArrayRef<int64_t> shape = labelType.getShape();
  int64_t rank = shape.size();
  int64_t ignoreIndex = op.getIgnoredLabel();
  Type floatType = getElementTypeOrSelf(logits.getType());

  Value target = labels;
  if (op.isCausal()) {
    SmallVector<int64_t> last(shape);
    last.back() = 1;
    Value fill =
        intSplat(g, RankedTensorType::get(last, labelType.getElementType()),
                 ignoreIndex);
    target = fill;
    if (shape.back() > 1) {
      SmallVector<int64_t> starts(rank, 0), sizes(shape), steps(rank, 1);
      starts.back() = 1;
      sizes.back() = shape.back() - 1;
      target =
          g.create("nn.concat", {g.slice(labels, starts, sizes, steps), fill},
                   {g.i64("axis", rank - 1)});
    }
  }
  RankedTensorType scalarLabel =
      RankedTensorType::get({}, labelType.getElementType());
  Value ignored =
      g.create("nn.equal", {target, intSplat(g, scalarLabel, ignoreIndex)});
  // Ignored positions read class 0 (ignore_index may lie outside [0, V))
  // and are zeroed after.
  Value safe = g.where(ignored, intSplat(g, scalarLabel, 0), target);
  Value logProbs = g.create("nn.log_softmax", {logits}, {g.i64("axis", rank)});
  SmallVector<int64_t> indexShape(shape);
  indexShape.push_back(1);
  Value picked =
      g.create("nn.gather_elements", {logProbs, g.reshape(safe, indexShape)},
               {g.i64("axis", rank)});
  Value nll = g.neg(g.reshape(picked, shape));
  RankedTensorType scalarFloat = RankedTensorType::get({}, floatType);
  Value losses = g.where(ignored, g.splat(scalarFloat, 0.0), nll);
  Value counted = g.castTo(g.unary("nn.not", ignored), floatType);
  Value total = g.reduceSum(losses, allAxes(losses), false);
  Value count = g.reduceSum(counted, allAxes(counted), false);
  // No counted position: 0 / 0 = NaN, as PyTorch's mean reduction gives.
  return g.div(total, count);
}

struct DecomposePass : public peft::impl::DecomposeBase<DecomposePass> {
  void runOnOperation() override {
    SmallVector<Operation *> ops;
    getOperation().walk([&](Operation *op) {
      if (isa<pir::LoraOp, pir::DoraOp, pir::Ia3Op, pir::MseOp,
              pir::CrossEntropyOp, pir::HouseholderOrthogonalOp,
              pir::HouseholderOrthogonalGradOp, pir::LoreftOp, pir::NodireftOp,
              nn::AttentionOp>(op))
        ops.push_back(op);
    });
    for (Operation *op : ops) {
      OpBuilder builder(op);
      B g(builder, op, {}, llvm::SmallBitVector(op->getNumOperands()));
      Value result =
          llvm::TypeSwitch<Operation *, Value>(op)
              .Case([&](pir::LoraOp o) { return decomposeLora(g, o); })
              .Case([&](pir::DoraOp o) { return decomposeDora(g, o); })
              .Case([&](pir::Ia3Op o) {
                return g.mul(o.getInput(), o.getFactors());
              })
              .Case([&](pir::MseOp o) { return decomposeMse(g, o); })
              .Case([&](pir::CrossEntropyOp o) {
                return decomposeCrossEntropy(g, o);
              })
              .Case([&](pir::HouseholderOrthogonalOp o) {
                return lowering::decomposeHouseholderOrthogonal(g, o);
              })
              .Case([&](pir::HouseholderOrthogonalGradOp o) {
                return lowering::decomposeHouseholderOrthogonalGrad(g, o);
              })
              .Case([&](pir::LoreftOp o) {
                return lowering::decomposeLoreft(g, o);
              })
              .Case([&](pir::NodireftOp o) {
                return lowering::decomposeNodireft(g, o);
              })
              .Case([&](nn::AttentionOp o) {
                return lowering::expandAttention(g, o).result;
              });
      if (g.failed())
        return signalPassFailure();
      if (result.getType() != op->getResult(0).getType()) {
        op->emitError("decomposition produced ")
            << result.getType() << " for a result of type "
            << op->getResult(0).getType();
        return signalPassFailure();
      }
      op->getResult(0).replaceAllUsesWith(result);
      op->erase();
    }
  }
};

} // namespace
