//===- DifferentiateTrainable.cpp - reverse mode for the trainable params -===//
//
// @train_step = a copy of the loss function, extended with the backward
// sweep. The calculus lives in the gradient-rule table; this file decides
// which values get cotangents (activity analysis), walks the ops in reverse
// and sums cotangents.
//
//===----------------------------------------------------------------------===//
#include "passes/Passes.h"
#include "passes/autodiff/GradientRules.h"

#include "mlir/Interfaces/SideEffectInterfaces.h"
#include "llvm/ADT/DenseSet.h"

namespace peft {
#define GEN_PASS_DEF_DIFFERENTIATETRAINABLE
#include "passes/Passes.h.inc"
} // namespace peft

using namespace mlir;
using namespace peft;
using namespace peft::autodiff;

namespace {

constexpr StringLiteral kTrainStep = "train_step";
constexpr StringLiteral kGradOf = "peft.grad_of";

bool isFloatTensor(Value v) {
  auto t = dyn_cast<RankedTensorType>(v.getType());
  return t && isa<FloatType>(t.getElementType());
}

/// Whether cotangents can flow from `op`'s results to its operands. Ops the
/// table does not know are assumed to: the sweep then reports them.
bool gradientFlows(Operation &op) {
  const GradientEntry *entry = lookupGradient(op.getName().getStringRef());
  return !entry || entry->kind != GradientKind::NoGradient;
}

/// The active values of `body`: float values that depend on a trainable
/// param (forward reachability from its peft.use) and on which `loss`
/// depends (backward reachability).
DenseSet<Value> activeValues(Block &body, Value loss,
                             const DenseSet<StringAttr> &trainable) {
  DenseSet<Value> varied;
  auto isVaried = [&](Value v) { return varied.contains(v); };
  for (Operation &op : body.without_terminator()) {
    if (auto use = dyn_cast<pir::UseOp>(op)) {
      if (trainable.contains(use.getParamAttr().getAttr()) &&
          isFloatTensor(use.getResult()))
        varied.insert(use.getResult());
      continue;
    }
    if (!gradientFlows(op) || llvm::none_of(op.getOperands(), isVaried))
      continue;
    for (Value result : op.getResults())
      if (isFloatTensor(result))
        varied.insert(result);
  }
  DenseSet<Value> active;
  if (varied.contains(loss))
    active.insert(loss);
  auto isActive = [&](Value v) { return active.contains(v); };
  for (Operation &op : llvm::reverse(body.without_terminator())) {
    if (!gradientFlows(op) || llvm::none_of(op.getResults(), isActive))
      continue;
    for (Value operand : op.getOperands())
      if (varied.contains(operand))
        active.insert(operand);
  }
  return active;
}

/// The reverse sweep over `body`, building before its terminator. Fills
/// `paramGrads` with the summed cotangent of every trainable param read.
LogicalResult reverseSweep(Block &body, Value loss,
                           const DenseSet<Value> &active,
                           DenseMap<StringAttr, Value> &paramGrads) {
  if (!active.contains(loss))
    return success();
  SmallVector<Operation *> forward;
  for (Operation &op : body.without_terminator())
    forward.push_back(&op);
  OpBuilder b(body.getTerminator());

  auto sum = [&](Value &slot, Value grad, Location loc) {
    slot = slot ? b.create<nn::AddOp>(loc, slot, grad).getResult() : grad;
  };
  DenseMap<Value, Value> grads;
  auto lossType = cast<RankedTensorType>(loss.getType());
  grads[loss] = b.create<nn::ConstantOp>(
      loss.getLoc(), lossType,
      DenseElementsAttr::get(lossType,
                             b.getFloatAttr(lossType.getElementType(), 1.0)));

  for (Operation *op : llvm::reverse(forward)) {
    if (auto use = dyn_cast<pir::UseOp>(op)) {
      if (Value grad = grads.lookup(use.getResult()))
        sum(paramGrads[use.getParamAttr().getAttr()], grad, use.getLoc());
      continue;
    }
    SmallVector<Value> resultGrads;
    for (Value result : op->getResults())
      resultGrads.push_back(active.contains(result) ? grads.lookup(result)
                                                    : Value());
    if (llvm::none_of(resultGrads, [](Value g) { return bool(g); }))
      continue;
    llvm::SmallBitVector needs(op->getNumOperands());
    for (auto [i, operand] : llvm::enumerate(op->getOperands()))
      if (active.contains(operand))
        needs.set(i);
    if (needs.none())
      continue;

    const GradientEntry *entry = lookupGradient(op->getName().getStringRef());
    if (!entry)
      return op->emitError("no gradient rule for '")
             << op->getName()
             << "' (add one to passes/autodiff/GradientRules.cpp)";
    if (entry->kind == GradientKind::BackwardOnly)
      return op->emitError("'")
             << op->getName()
             << "' is a backward op; second-order gradients are not supported";
    GradientBuilder rule(b, op, resultGrads, needs);
    entry->rule(rule);
    if (rule.failed())
      return failure();
    for (unsigned i : needs.set_bits()) {
      Value grad = rule.operandGrads()[i];
      if (!grad)
        return op->emitError("the gradient rule of '")
               << op->getName() << "' built no gradient for operand " << i;
      sum(grads[op->getOperand(i)], grad, op->getLoc());
    }
  }
  return success();
}

struct DifferentiateTrainablePass
    : peft::impl::DifferentiateTrainableBase<DifferentiateTrainablePass> {
  using Base::Base;

  void runOnOperation() override {
    ModuleOp module = getOperation();
    MLIRContext *ctx = module.getContext();
    auto lossFn = module.lookupSymbol<func::FuncOp>(funcName);
    if (!lossFn) {
      module.emitError("peft-differentiate: the module has no function @")
          << funcName;
      return signalPassFailure();
    }
    if (lossFn.isExternal() || !llvm::hasSingleElement(lossFn.getBody())) {
      lossFn.emitError("peft-differentiate: @")
          << funcName << " must have a body of one block";
      return signalPassFailure();
    }
    auto lossType = lossFn.getNumResults()
                        ? dyn_cast<RankedTensorType>(lossFn.getResultTypes()[0])
                        : RankedTensorType();
    if (!lossType || !isa<FloatType>(lossType.getElementType()) ||
        lossType.getNumElements() != 1) {
      lossFn.emitError("peft-differentiate: the first result of @")
          << funcName << " must be the loss, a one-element float tensor";
      return signalPassFailure();
    }
    if (module.lookupSymbol(kTrainStep)) {
      module.emitError("peft-differentiate: the module already has @")
          << kTrainStep;
      return signalPassFailure();
    }
    SmallVector<pir::ParamOp> trainable;
    DenseSet<StringAttr> trainableNames;
    for (auto param : module.getOps<pir::ParamOp>())
      if (param.getTrainable()) {
        if (!isa<FloatType>(param.getTensorType().getElementType())) {
          param.emitError("peft-differentiate: trainable param @")
              << param.getSymName() << " is not a float tensor";
          return signalPassFailure();
        }
        trainable.push_back(param);
        trainableNames.insert(param.getSymNameAttr());
      }
    if (trainable.empty()) {
      module.emitError("peft-differentiate: no peft.param is trainable, so "
                       "there is nothing to differentiate");
      return signalPassFailure();
    }

    OpBuilder moduleBuilder(ctx);
    moduleBuilder.setInsertionPointAfter(lossFn);
    auto step = cast<func::FuncOp>(moduleBuilder.clone(*lossFn));
    step.setSymName(kTrainStep);
    Block &body = step.front();
    auto ret = cast<func::ReturnOp>(body.getTerminator());
    Value loss = ret.getOperand(0);

    DenseSet<Value> active = activeValues(body, loss, trainableNames);
    if (!active.contains(loss))
      step.emitWarning("the loss does not depend on any trainable param; "
                       "every gradient is zero");
    DenseMap<StringAttr, Value> paramGrads;
    if (failed(reverseSweep(body, loss, active, paramGrads))) {
      step.erase();
      return signalPassFailure();
    }

    OpBuilder b(ret);
    SmallVector<Value> results{loss};
    DictionaryAttr lossAttrs = lossFn.getResultAttrDict(0);
    SmallVector<DictionaryAttr> resultAttrs{
        lossAttrs ? lossAttrs : DictionaryAttr::get(ctx)};
    for (pir::ParamOp param : trainable) {
      Value grad = paramGrads.lookup(param.getSymNameAttr());
      if (!grad) {
        // Read nowhere the loss depends on: the gradient is zero.
        RankedTensorType type = param.getTensorType();
        grad = b.create<nn::ConstantOp>(
            param.getLoc(), type,
            DenseElementsAttr::get(type,
                                   b.getFloatAttr(type.getElementType(), 0.0)));
      }
      results.push_back(grad);
      resultAttrs.push_back(DictionaryAttr::get(
          ctx, {b.getNamedAttr(
                   kGradOf, FlatSymbolRefAttr::get(param.getSymNameAttr()))}));
    }
    b.create<func::ReturnOp>(ret.getLoc(), results);
    ret.erase();
    step.setType(FunctionType::get(ctx, step.getArgumentTypes(),
                                   ValueRange(results).getTypes()));
    step.setAllResultAttrs(resultAttrs);

    // Forward ops that only fed the loss function's other results are dead.
    for (Operation &op : llvm::make_early_inc_range(llvm::reverse(body)))
      if (isOpTriviallyDead(&op))
        op.erase();
  }
};

} // namespace
