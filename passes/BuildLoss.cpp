//===- BuildLoss.cpp - the training loss as a function --------------------===//
//
// @loss = @forward + the spec's loss. Outputs and inputs are found by their
// ONNX names (the `nn.name` argument/result attributes); data the loss reads
// that the model does not (labels, regression targets) become arguments, so
// a training step is one call with every tensor of a batch.
//
//===----------------------------------------------------------------------===//
#include "passes/Passes.h"
#include "passes/analysis/ModuleNames.h"

#include "mlir/IR/SymbolTable.h"
#include "mlir/Interfaces/SideEffectInterfaces.h"
#include "llvm/ADT/STLExtras.h"
#include "llvm/ADT/StringExtras.h"

namespace peft {
#define GEN_PASS_DEF_BUILDLOSS
#include "passes/Passes.h.inc"
} // namespace peft

using namespace mlir;
using namespace peft;

namespace {

constexpr StringLiteral kName = "nn.name";
constexpr StringLiteral kLossFunc = "loss";

std::string shapeText(ArrayRef<int64_t> shape) {
  std::string s = "[";
  llvm::interleave(
      shape, [&](int64_t d) { s += std::to_string(d); }, [&] { s += ", "; });
  return s + "]";
}

struct BuildLossPass : public peft::impl::BuildLossBase<BuildLossPass> {
  using BuildLossBase::BuildLossBase;

  void runOnOperation() override {
    ModuleOp module = getOperation();
    if (failed(build(module)))
      signalPassFailure();
  }

  /// The names of `func`'s results, for messages.
  static std::string outputNames(func::FuncOp func) {
    std::vector<std::string> names;
    for (unsigned i = 0; i < func.getNumResults(); ++i)
      if (auto name = func.getResultAttrOfType<StringAttr>(i, kName))
        names.push_back("'" + name.str() + "'");
    return names.empty() ? "none named" : llvm::join(names, ", ");
  }

  /// The result of `func` named `name`, or null.
  static std::optional<unsigned> outputNamed(func::FuncOp func,
                                             StringRef name) {
    for (unsigned i = 0; i < func.getNumResults(); ++i)
      if (auto attr = func.getResultAttrOfType<StringAttr>(i, kName))
        if (attr.getValue() == name)
          return i;
    return std::nullopt;
  }

  /// The argument named `name`, added (of `type`, or of the spec's
  /// `training.inputs` shape with `type`'s element type) when the model has
  /// none.
  FailureOr<Value> dataArgument(func::FuncOp loss, const spec::PeftSpec &spec,
                                StringRef name, RankedTensorType type,
                                StringRef role) {
    for (unsigned i = 0; i < loss.getNumArguments(); ++i)
      if (auto attr = loss.getArgAttrOfType<StringAttr>(i, kName))
        if (attr.getValue() == name) {
          auto argType = cast<RankedTensorType>(loss.getArgument(i).getType());
          if (argType.getShape() != type.getShape() ||
              isa<FloatType>(argType.getElementType()) !=
                  isa<FloatType>(type.getElementType()))
            return loss.emitError("peft-build-loss: the model input '")
                   << name << "' used as the loss's " << role << " is "
                   << argType << ", but the loss needs " << type;
          return loss.getArgument(i);
        }
    for (const spec::InputShape &input : spec.training.inputs)
      if (input.name == name &&
          ArrayRef<int64_t>(input.dims) != type.getShape())
        return loss.emitError("peft-build-loss: training.inputs gives '")
               << name << "' the shape " << shapeText(input.dims)
               << ", but as the loss's " << role << " it must be "
               << shapeText(type.getShape());
    unsigned index = loss.getNumArguments();
    loss.insertArgument(index, type, {}, loss.getLoc());
    loss.setArgAttr(index, kName, StringAttr::get(loss.getContext(), name));
    return loss.getArgument(index);
  }

  LogicalResult build(ModuleOp module) {
    FailureOr<spec::PeftSpec> spec =
        analysis::readSpecAttr(module, "peft-build-loss");
    if (failed(spec))
      return failure();
    auto forward = module.lookupSymbol<func::FuncOp>(funcName);
    if (!forward || forward.isExternal())
      return module.emitError("peft-build-loss: no function @")
             << funcName << " to build the loss on";
    if (module.lookupSymbol(kLossFunc))
      return module.emitError("peft-build-loss: the module has a @")
             << kLossFunc << " already";

    const spec::LossSpec &lossSpec = spec->training.loss;
    StringRef outputName = lossSpec.kind == spec::LossKind::CrossEntropy
                               ? StringRef(lossSpec.logits)
                           : lossSpec.kind == spec::LossKind::Mse
                               ? StringRef(lossSpec.prediction)
                               : StringRef(lossSpec.output);
    std::optional<unsigned> outputIndex = outputNamed(forward, outputName);
    if (!outputIndex)
      return forward.emitError("peft-build-loss: the loss reads model output '")
             << outputName << "', but @" << funcName
             << " has no output of that name (outputs: " << outputNames(forward)
             << ")";
    auto outputType =
        cast<RankedTensorType>(forward.getResultTypes()[*outputIndex]);
    if (!isa<FloatType>(outputType.getElementType()))
      return forward.emitError("peft-build-loss: model output '")
             << outputName << "' is " << outputType
             << "; the loss needs a float tensor";

    OpBuilder builder(module.getContext());
    builder.setInsertionPointAfter(forward);
    auto loss = cast<func::FuncOp>(builder.clone(*forward));
    loss.setSymName(kLossFunc);
    loss.setAllResultAttrs(ArrayRef<DictionaryAttr>{});
    auto ret = cast<func::ReturnOp>(loss.getBody().front().getTerminator());
    Value output = ret.getOperand(*outputIndex);
    Location loc = NameLoc::get(builder.getStringAttr("loss"), ret.getLoc());
    builder.setInsertionPoint(ret);

    Value value;
    switch (lossSpec.kind) {
    case spec::LossKind::CrossEntropy: {
      if (outputType.getRank() < 2)
        return forward.emitError("peft-build-loss: logits '")
               << outputName << "' are " << outputType
               << "; cross-entropy needs [..., sequence, classes]";
      // Prompt tuning's P virtual tokens lead every row of the logits; the
      // data's labels get P ignore_index entries in front (as PEFT does).
      int64_t virtualTokens = 0;
      if (auto attr =
              forward->getAttrOfType<IntegerAttr>("peft.virtual_tokens"))
        virtualTokens = attr.getInt();
      SmallVector<int64_t> labelsShape(outputType.getShape().drop_back());
      if (virtualTokens &&
          (labelsShape.size() != 2 || labelsShape[1] <= virtualTokens))
        return forward.emitError("peft-build-loss: logits '")
               << outputName << "' are " << outputType << "; with "
               << virtualTokens
               << " virtual tokens they must be [batch, P + T, classes]";
      if (virtualTokens)
        labelsShape[1] -= virtualTokens;
      auto labelsType =
          RankedTensorType::get(labelsShape, builder.getI64Type());
      FailureOr<Value> labels =
          dataArgument(loss, *spec, lossSpec.labels, labelsType, "labels");
      if (failed(labels))
        return failure();
      if (virtualTokens) {
        Type labelType =
            cast<RankedTensorType>(labels->getType()).getElementType();
        auto prefixType =
            RankedTensorType::get({labelsShape[0], virtualTokens}, labelType);
        if (!isa<IntegerType>(labelType))
          return forward.emitError("peft-build-loss: labels '")
                 << lossSpec.labels << "' must be integer class ids";
        Value prefix = builder.create<nn::ConstantOp>(
            loc, prefixType,
            DenseElementsAttr::get(
                prefixType,
                builder.getIntegerAttr(labelType, lossSpec.ignoreIndex)));
        labels = builder
                     .create<nn::ConcatOp>(loc, ValueRange{prefix, *labels},
                                           builder.getI64IntegerAttr(1))
                     .getResult();
      }
      if (!isa<IntegerType>(
              cast<RankedTensorType>(labels->getType()).getElementType()))
        return forward.emitError("peft-build-loss: labels '")
               << lossSpec.labels << "' must be integer class ids";
      value = builder.create<pir::CrossEntropyOp>(
          loc, output, *labels, builder.getI64IntegerAttr(lossSpec.ignoreIndex),
          builder.getStringAttr(
              lossSpec.shift == spec::LossShift::Causal ? "causal" : "none"));
      break;
    }
    case spec::LossKind::Mse: {
      FailureOr<Value> target =
          dataArgument(loss, *spec, lossSpec.target, outputType, "target");
      if (failed(target))
        return failure();
      value = builder.create<pir::MseOp>(loc, output, *target);
      break;
    }
    case spec::LossKind::ModelOutput:
      if (outputType.getNumElements() != 1)
        return forward.emitError("peft-build-loss: model output '")
               << outputName << "' is " << outputType
               << "; a loss output must hold one number";
      value = output;
      break;
    }
    builder.create<func::ReturnOp>(ret.getLoc(), value);
    ret.erase();
    loss.setFunctionType(builder.getFunctionType(
        loss.getBody().front().getArgumentTypes(), {value.getType()}));

    // Ops that fed only the other outputs are dead now.
    for (Operation &op :
         llvm::make_early_inc_range(llvm::reverse(loss.getBody().front())))
      if (isOpTriviallyDead(&op))
        op.erase();
    return success();
  }
};

} // namespace
