//===- MergeAdapters.cpp - fold LoRA, DoRA and IA3 into the weights -------===//
//
// Inference IR: every adapter op of the model function becomes the plain
// product of its module with a merged weight. Weights are never attributes,
// so the merged values are computed, not folded: the pass adds
// `func.func @merge_adapters()`, which reads the frozen weights and the
// adapter params, computes each merged weight with nn ops and peft.assign's
// it to a new frozen param; the model function then reads those params.
// docs/adapters.md, "peft-merge-adapters", has the formulas.
//
//===----------------------------------------------------------------------===//
#include "passes/Passes.h"
#include "passes/analysis/ModuleNames.h"

#include "mlir/IR/IRMapping.h"
#include "mlir/IR/SymbolTable.h"
#include "mlir/Interfaces/InferTypeOpInterface.h"
#include "mlir/Interfaces/SideEffectInterfaces.h"
#include "llvm/ADT/APFloat.h"

namespace peft {
#define GEN_PASS_DEF_MERGEADAPTERS
#include "passes/Passes.h.inc"
} // namespace peft

using namespace mlir;
using namespace peft;
namespace attr = peft::analysis::attr;

namespace {

constexpr StringLiteral kPass = "peft-merge-adapters";
constexpr StringLiteral kMergeFn = "merge_adapters";
/// Param: the function that computes its value (`@merge_adapters`).
constexpr StringLiteral kComputedBy = "peft.computed_by";

ArrayRef<int64_t> shapeOf(Value v) {
  return cast<RankedTensorType>(v.getType()).getShape();
}
Type elementTypeOf(Value v) { return getElementTypeOrSelf(v.getType()); }

/// Builds nn ops by name with inferred result types (or `type`), at `b`.
class NNBuilder {
public:
  NNBuilder(OpBuilder &b, Location loc) : b_(b), loc_(loc) {}

  Value create(StringRef opName, ValueRange operands,
               ArrayRef<NamedAttribute> attrs = {}, Type type = {}) {
    MLIRContext *ctx = b_.getContext();
    std::optional<RegisteredOperationName> name =
        RegisteredOperationName::lookup(opName, ctx);
    if (!name) {
      failed_ = true;
      emitError(loc_) << kPass << ": '" << opName << "' is not registered";
      return {};
    }
    OperationState state(loc_, *name);
    state.addOperands(operands);
    state.addAttributes(attrs);
    if (type) {
      state.addTypes(type);
    } else {
      auto *infer = name->getInterface<InferTypeOpInterface>();
      SmallVector<Type> types;
      if (!infer ||
          mlir::failed(infer->inferReturnTypes(
              ctx, loc_, operands, state.attributes.getDictionary(ctx),
              OpaqueProperties(nullptr), RegionRange(), types))) {
        failed_ = true;
        emitError(loc_) << kPass << ": building '" << opName << "' failed";
        return {};
      }
      state.addTypes(types);
    }
    return b_.create(state)->getResult(0);
  }

  Value matmul(Value a, Value b, bool transposeA, bool transposeB) {
    SmallVector<NamedAttribute> attrs;
    if (transposeA)
      attrs.push_back(b_.getNamedAttr("transpose_lhs", b_.getBoolAttr(true)));
    if (transposeB)
      attrs.push_back(b_.getNamedAttr("transpose_rhs", b_.getBoolAttr(true)));
    return create("nn.matmul", {a, b}, attrs);
  }
  Value add(Value a, Value b) { return create("nn.add", {a, b}); }
  Value mul(Value a, Value b) { return create("nn.mul", {a, b}); }
  Value div(Value a, Value b) { return create("nn.div", {a, b}); }
  Value sqrt(Value a) { return create("nn.sqrt", {a}); }
  Value reduceSum(Value v, int64_t axis) {
    return create("nn.reduce_sum", {v},
                  {b_.getNamedAttr("axes", b_.getDenseI64ArrayAttr({axis})),
                   b_.getNamedAttr("keepdims", b_.getUnitAttr())});
  }
  Value reshape(Value v, ArrayRef<int64_t> shape) {
    if (shapeOf(v) == shape)
      return v;
    return create("nn.reshape", {v}, {},
                  RankedTensorType::get(shape, elementTypeOf(v)));
  }
  Value castTo(Value v, Type elementType) {
    if (elementTypeOf(v) == elementType)
      return v;
    return create("nn.cast", {v}, {},
                  RankedTensorType::get(shapeOf(v), elementType));
  }
  /// A rank-0 constant of element type `et`. A value `et` cannot hold
  /// exactly (an rsLoRA scale in f32) is made in f64 and cast, as the
  /// gradient rules do, so an f64 evaluation uses it exactly.
  Value scalar(double value, Type et) {
    if (auto ft = dyn_cast<FloatType>(et); ft && ft.getWidth() < 64) {
      bool lost = false;
      APFloat v(value);
      v.convert(ft.getFloatSemantics(), APFloat::rmNearestTiesToEven, &lost);
      if (lost)
        return castTo(scalar(value, b_.getF64Type()), et);
    }
    auto type = RankedTensorType::get({}, et);
    return create(
        "nn.constant", {},
        {b_.getNamedAttr(
            "value", DenseElementsAttr::get(type, b_.getFloatAttr(et, value)))},
        type);
  }

  bool failed() const { return failed_; }

private:
  OpBuilder &b_;
  Location loc_;
  bool failed_ = false;
};

class Merger {
public:
  Merger(ModuleOp module, func::FuncOp fn, func::FuncOp mergeFn)
      : module_(module), fn_(fn), symbols_(module),
        mergeBuilder_(mergeFn.front().getTerminator()) {
    for (auto param : module.getOps<pir::ParamOp>())
      lastParam_ = param;
  }

  LogicalResult mergeLowRank(Operation *op);
  LogicalResult mergeIa3(pir::Ia3Op op, const analysis::ModuleTable &table);
  LogicalResult mergeSparse(pir::SparseDeltaOp op);

private:
  FailureOr<Value> lift(Value v, Operation *user);
  Value publish(Operation *anchor, StringRef name, Value merged,
                OpBuilder &fnBuilder);

  ModuleOp module_;
  func::FuncOp fn_;
  SymbolTable symbols_;
  OpBuilder mergeBuilder_;
  /// @forward values -> their copies in @merge_adapters.
  IRMapping lifted_;
  Operation *lastParam_ = nullptr;
};

/// The copy of `v` (a value of the model function) in @merge_adapters: the
/// ops it is computed by (peft.use and its layout/type changes) are cloned
/// once. A weight that depends on the function's inputs cannot be merged.
FailureOr<Value> Merger::lift(Value v, Operation *user) {
  if (Value done = lifted_.lookupOrNull(v))
    return done;
  Operation *def = v.getDefiningOp();
  if (!def || def->getNumRegions() || !isMemoryEffectFree(def))
    return user->emitError(kPass)
           << ": operand computed from the function's inputs or with side "
              "effects; only weights that are functions of params merge";
  for (Value operand : def->getOperands())
    if (failed(lift(operand, user)))
      return failure();
  mergeBuilder_.clone(*def, lifted_);
  return lifted_.lookup(v);
}

/// Declares a frozen param for `merged` (computed in @merge_adapters, which
/// assigns it) and returns its peft.use in the model function, built at
/// `fnBuilder`.
Value Merger::publish(Operation *anchor, StringRef name, Value merged,
                      OpBuilder &fnBuilder) {
  MLIRContext *ctx = module_.getContext();
  OpBuilder mb(ctx);
  if (lastParam_)
    mb.setInsertionPointAfter(lastParam_);
  else
    mb.setInsertionPointToStart(module_.getBody());
  auto type = cast<RankedTensorType>(merged.getType());
  auto param = mb.create<pir::ParamOp>(anchor->getLoc(), name, type);
  param->setAttr(kComputedBy, FlatSymbolRefAttr::get(ctx, kMergeFn));
  // A clash (a module merged twice, a model param of that name) gets a
  // numbered name.
  symbols_.insert(param);
  lastParam_ = param;
  auto ref = FlatSymbolRefAttr::get(param.getSymNameAttr());
  mergeBuilder_.create<pir::AssignOp>(anchor->getLoc(), ref, merged);
  return fnBuilder.create<pir::UseOp>(anchor->getLoc(), type, ref);
}

std::string modulePathOf(Operation *op) {
  if (auto path = op->getAttrOfType<StringAttr>(attr::kModule))
    return path.str();
  return "";
}

/// LoRA: W' = W + s·B·A in W's layout ([out, in]: s·B·A; [in, out]:
/// s·Aᵀ·Bᵀ). DoRA: V = that, W' = V · m / ‖V‖ with one norm per output
/// feature (over the input axis), as PEFT's merge computes it.
LogicalResult Merger::mergeLowRank(Operation *op) {
  auto lora = dyn_cast<pir::LoraOp>(op);
  auto dora = dyn_cast<pir::DoraOp>(op);
  Value x = lora ? lora.getInput() : dora.getInput();
  Value w = lora ? lora.getWeight() : dora.getWeight();
  Value a = lora ? lora.getLoraA() : dora.getLoraA();
  Value b = lora ? lora.getLoraB() : dora.getLoraB();
  bool outIn = lora ? lora.isWeightOutIn() : dora.isWeightOutIn();
  double s = (lora ? lora.getScale() : dora.getScale()).convertToDouble();

  FailureOr<Value> wm = lift(w, op), am = lift(a, op), bm = lift(b, op);
  if (failed(wm) || failed(am) || failed(bm))
    return failure();
  Type et = elementTypeOf(w);
  NNBuilder nb(mergeBuilder_, op->getLoc());
  Value delta = outIn ? nb.matmul(*bm, *am, false, false)
                      : nb.matmul(*am, *bm, true, true);
  if (nb.failed())
    return failure();
  delta = nb.castTo(delta, et);
  Value merged = nb.add(*wm, nb.mul(delta, nb.scalar(s, et)));
  if (dora) {
    FailureOr<Value> mm = lift(dora.getMagnitude(), op);
    if (failed(mm))
      return failure();
    int64_t out = shapeOf(w)[outIn ? 0 : 1];
    Value norm = nb.sqrt(nb.reduceSum(nb.mul(merged, merged), outIn ? 1 : 0));
    SmallVector<int64_t> perFeature =
        outIn ? SmallVector<int64_t>{out, 1} : SmallVector<int64_t>{1, out};
    Value magnitude = nb.reshape(nb.castTo(*mm, et), perFeature);
    merged = nb.mul(merged, nb.div(magnitude, norm));
  }
  if (nb.failed())
    return failure();

  std::string path = modulePathOf(op);
  OpBuilder fb(op);
  Value weight = publish(
      op, (path.empty() ? std::string("adapter") : path) + ".weight.merged",
      merged, fb);
  NNBuilder fnb(fb, op->getLoc());
  Value y = fnb.matmul(x, weight, false, outIn);
  if (fnb.failed())
    return failure();
  if (y.getType() != op->getResult(0).getType())
    return op->emitError(kPass)
           << ": the merged product has type " << y.getType()
           << ", the adapter " << op->getResult(0).getType();
  if (!path.empty())
    y.getDefiningOp()->setAttr(attr::kModule, fb.getStringAttr(path));
  op->getResult(0).replaceAllUsesWith(y);
  op->erase();
  return success();
}

/// Sparse fine-tuning: W' = W + scatter(indices, delta) is the op itself,
/// computed once in @merge_adapters instead of on every forward.
LogicalResult Merger::mergeSparse(pir::SparseDeltaOp op) {
  FailureOr<Value> merged = lift(op.getResult(), op);
  if (failed(merged))
    return failure();
  std::string path = modulePathOf(op);
  OpBuilder fb(op);
  Value weight = publish(
      op, (path.empty() ? std::string("adapter") : path) + ".weight.merged",
      *merged, fb);
  op.getResult().replaceAllUsesWith(weight);
  op->erase();
  return success();
}

/// IA3 scales a linear module's output (its result after the bias) or, for
/// feed-forward modules, its input by l. Folded into the weight as PEFT
/// does: W·diag(l) along the output features, bias·l; or diag(l)·W along the
/// input features. In the layout of the matmul's right operand R ([in, out],
/// or [out, in] with transpose_rhs) that is a broadcast multiply.
LogicalResult Merger::mergeIa3(pir::Ia3Op op,
                               const analysis::ModuleTable &table) {
  std::string path = modulePathOf(op);
  const analysis::Module *module = path.empty() ? nullptr : table.find(path);
  auto matmul =
      module ? dyn_cast_or_null<nn::MatMulOp>(module->anchor) : nn::MatMulOp();
  if (!matmul)
    return op.emitError(kPass)
           << ": peft.ia3 names no linear module (peft.module '" << path
           << "'); it cannot be folded into a weight";
  Value outputValue = module->biasAdd ? module->biasAdd->getResult(0)
                                      : Value(matmul.getResult());
  bool feedForward = matmul.getLhs() == op.getResult();
  if (!feedForward && op.getInput() != outputValue)
    return op.emitError(kPass) << ": peft.ia3 of " << path
                               << " is neither on the module's input nor on "
                                  "its output";
  // Scaling the weight scales every reader of the product (or of the
  // input): the adapter must be the only one.
  if (feedForward ? !op.getResult().hasOneUse() : !op.getInput().hasOneUse())
    return op.emitError(kPass)
           << ": the " << (feedForward ? "scaled input" : "output") << " of "
           << path << " has other users; folding IA3 would scale them too";
  if (matmul.getTransposeLhs() || shapeOf(matmul.getRhs()).size() != 2)
    return op.emitError(kPass)
           << ": " << path << " is not an x·W product with a 2-D weight";

  FailureOr<Value> rm = lift(matmul.getRhs(), op);
  FailureOr<Value> lm = lift(op.getFactors(), op);
  if (failed(rm) || failed(lm))
    return failure();
  bool transposed = matmul.getTransposeRhs();
  ArrayRef<int64_t> rShape = shapeOf(matmul.getRhs());
  Type et = elementTypeOf(matmul.getRhs());
  int64_t features = shapeOf(op.getFactors()).back();
  // R's axis that holds the scaled features: outputs are R's last axis
  // ([in, out]) or first ([out, in]); inputs the other one.
  int64_t axis = (feedForward != transposed) ? 0 : 1;
  if (rShape[axis] != features)
    return op.emitError(kPass)
           << ": " << features << " IA3 factors for a "
           << "weight of shape [" << rShape[0] << ", " << rShape[1] << "]";
  NNBuilder nb(mergeBuilder_, op.getLoc());
  SmallVector<int64_t> factorShape = axis == 0
                                         ? SmallVector<int64_t>{features, 1}
                                         : SmallVector<int64_t>{1, features};
  Value factors = nb.castTo(*lm, et);
  Value merged = nb.mul(*rm, nb.reshape(factors, factorShape));
  Value mergedBias;
  unsigned biasOperand = 0;
  if (!feedForward && module->biasAdd) {
    const analysis::ParamSlot *bias = module->slot("bias");
    if (!bias || bias->user != module->biasAdd)
      return op.emitError(kPass)
             << ": the bias of " << path << " is not a param";
    biasOperand = bias->operand;
    Value biasValue = module->biasAdd->getOperand(biasOperand);
    FailureOr<Value> bm = lift(biasValue, op);
    if (failed(bm))
      return failure();
    mergedBias =
        nb.mul(*bm, nb.reshape(nb.castTo(*lm, elementTypeOf(biasValue)),
                               shapeOf(biasValue).size() == 1
                                   ? SmallVector<int64_t>{features}
                                   : SmallVector<int64_t>(shapeOf(biasValue))));
  }
  if (nb.failed())
    return failure();

  OpBuilder fb(matmul);
  matmul->setOperand(1, publish(op, path + ".weight.merged", merged, fb));
  if (mergedBias) {
    fb.setInsertionPoint(module->biasAdd);
    module->biasAdd->setOperand(
        biasOperand, publish(op, path + ".bias.merged", mergedBias, fb));
  }
  op.getResult().replaceAllUsesWith(op.getInput());
  op.erase();
  return success();
}

struct MergeAdaptersPass : peft::impl::MergeAdaptersBase<MergeAdaptersPass> {
  using Base::Base;

  void runOnOperation() override {
    ModuleOp module = getOperation();
    MLIRContext *ctx = module.getContext();
    auto fn = module.lookupSymbol<func::FuncOp>(funcName);
    if (!fn || fn.isExternal() || !llvm::hasSingleElement(fn.getBody())) {
      module.emitError(kPass) << ": the module has no function @" << funcName
                              << " with a body of one block";
      return signalPassFailure();
    }
    if (module.lookupSymbol(kMergeFn)) {
      module.emitError(kPass) << ": the module already has @" << kMergeFn;
      return signalPassFailure();
    }
    SmallVector<Operation *> lowRank;
    SmallVector<pir::Ia3Op> ia3;
    SmallVector<pir::SparseDeltaOp> sparse;
    fn.walk([&](Operation *op) {
      if (isa<pir::LoraOp, pir::DoraOp>(op))
        lowRank.push_back(op);
      else if (auto scale = dyn_cast<pir::Ia3Op>(op))
        ia3.push_back(scale);
      else if (auto delta = dyn_cast<pir::SparseDeltaOp>(op))
        sparse.push_back(delta);
    });
    // The module table of the adapted function, before any op changes
    // (IA3 needs its linear modules).
    FailureOr<analysis::ModuleTable> table =
        analysis::ModuleTable::build(module, funcName);
    if (failed(table))
      return signalPassFailure();

    OpBuilder mb(ctx);
    mb.setInsertionPointAfter(fn);
    auto mergeFn = mb.create<func::FuncOp>(fn.getLoc(), kMergeFn,
                                           FunctionType::get(ctx, {}, {}));
    OpBuilder::atBlockEnd(mergeFn.addEntryBlock())
        .create<func::ReturnOp>(fn.getLoc());

    Merger merger(module, fn, mergeFn);
    for (pir::Ia3Op op : ia3)
      if (failed(merger.mergeIa3(op, *table)))
        return signalPassFailure();
    for (Operation *op : lowRank)
      if (failed(merger.mergeLowRank(op)))
        return signalPassFailure();
    for (pir::SparseDeltaOp op : sparse)
      if (failed(merger.mergeSparse(op)))
        return signalPassFailure();

    // The adapter params' reads (and their casts, reshapes) are dead in the
    // model function now.
    for (Operation &op : llvm::make_early_inc_range(llvm::reverse(fn.front())))
      if (isOpTriviallyDead(&op))
        op.erase();
  }
};

} // namespace
