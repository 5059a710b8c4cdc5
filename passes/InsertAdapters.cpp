//===- InsertAdapters.cpp - apply the PEFT spec to the model --------------===//
//
// The spec says which modules get which method (frontends/spec resolves it
// with PEFT's rules); this pass rewrites the modules ModuleNames found:
// adapter ops and their params, trainable biases, trainable copies
// (modules_to_save) and modules trained in full.
//
//===----------------------------------------------------------------------===//
#include "passes/AdapterInit.h"
#include "passes/MethodInserters.h"
#include "passes/Passes.h"
#include "passes/analysis/ModuleNames.h"

#include "mlir/IR/SymbolTable.h"
#include "llvm/ADT/STLExtras.h"

#include <set>

namespace peft {
#define GEN_PASS_DEF_INSERTADAPTERS
#include "passes/Passes.h.inc"
} // namespace peft

using namespace mlir;
using namespace peft;
using namespace peft::analysis;
namespace attr = peft::analysis::attr;

namespace {

/// Roles of the params a PEFT pass adds to a module (not the module's own).
bool isAdapterRole(StringRef role) {
  return role == "lora_A" || role == "lora_B" ||
         role == "lora_magnitude_vector";
}

class Inserter {
public:
  Inserter(ModuleOp module, ModuleTable &table, const spec::PeftSpec &spec)
      : module_(module), table_(table), spec_(spec),
        builder_(module.getContext()), symbols_(module),
        params_(module, symbols_, "peft-insert-adapters") {
    for (const spec::MethodSpec &method : spec.methods)
      if (method.kind == spec::MethodKind::Lora ||
          method.kind == spec::MethodKind::IA3 ||
          method.kind == spec::MethodKind::BitFit)
        keyPrefix_ = "base_model.model.";
  }

  LogicalResult run(const spec::ResolvedTargets &resolved);

private:
  const Module &moduleAt(StringRef path) {
    const Module *module = table_.find(path);
    assert(module && "resolution only names modules of the table");
    return *module;
  }
  pir::ParamOp createParam(Location loc, StringRef name,
                           ArrayRef<int64_t> shape, Type elementType,
                           StringRef init, StringRef method);
  LogicalResult insertLowRank(const Module &module,
                              const spec::AdapterTarget &target,
                              const spec::LoraConfig &config);
  LogicalResult insertIa3(const Module &module,
                          const spec::AdapterTarget &target,
                          const spec::IA3Config &config);
  void trainBias(const Module &module);
  LogicalResult saveModule(const Module &module);
  LogicalResult trainInFull(const Module &module);
  void markTrainable(pir::ParamOp param, StringRef key, bool transposed);
  LogicalResult retie(pir::ParamOp folded, const ParamInfo &info);

  ModuleOp module_;
  ModuleTable &table_;
  const spec::PeftSpec &spec_;
  OpBuilder builder_;
  SymbolTable symbols_;
  ParamFactory params_;
  std::string keyPrefix_;
  std::set<std::string> adapted_;
  /// Tells the dropout ops apart in their masks (peft.dropout's `stream`).
  int64_t nextStream_ = 0;
};

pir::ParamOp Inserter::createParam(Location loc, StringRef name,
                                   ArrayRef<int64_t> shape, Type elementType,
                                   StringRef init, StringRef method) {
  return params_.create(loc, name, RankedTensorType::get(shape, elementType),
                        /*trainable=*/true, init, method);
}

LogicalResult Inserter::insertLowRank(const Module &module,
                                      const spec::AdapterTarget &target,
                                      const spec::LoraConfig &config) {
  auto matmul = dyn_cast<nn::MatMulOp>(module.anchor);
  Location loc = module.anchor->getLoc();
  StringRef method = config.useDora ? "dora" : "lora";
  if (!matmul)
    return emitError(loc) << "peft-insert-adapters: " << module.info.path
                          << " is a " << module.opName
                          << " already; a module takes one adapter";

  // The stored weight and how the product reads it; a transpose between the
  // two folds into the layout, so it is never materialised.
  Value weight = matmul.getRhs();
  bool outIn = matmul.getTransposeRhs();
  auto transpose = weight.getDefiningOp<nn::TransposeOp>();
  if (transpose && transpose.getPerm() == ArrayRef<int64_t>{1, 0}) {
    weight = transpose.getInput();
    outIn = !outIn;
  }
  Type elementType = cast<RankedTensorType>(weight.getType()).getElementType();
  int64_t in = module.info.inFeatures, out = module.info.outFeatures;
  int64_t rank = target.rank;
  std::string base = "base_model.model." + module.info.path;

  StringRef initA = config.initLoraWeights == spec::LoraInit::Gaussian
                        ? "gaussian"
                        : "kaiming_uniform";
  StringRef initB = config.initLoraWeights == spec::LoraInit::Random
                        ? "kaiming_uniform"
                        : "zeros";
  pir::ParamOp a = createParam(loc, base + ".lora_A.weight", {rank, in},
                               elementType, initA, method);
  pir::ParamOp b = a ? createParam(loc, base + ".lora_B.weight", {out, rank},
                                   elementType, initB, method)
                     : nullptr;
  if (!b)
    return failure();

  builder_.setInsertionPoint(matmul);
  Value useA = useParam(builder_, loc, a), useB = useParam(builder_, loc, b);
  // PEFT's lora_dropout(x) feeds lora_A (and DoRA's x̃·W term); the base
  // product reads x itself.
  Value adapterInput;
  if (config.loraDropout > 0) {
    auto dropout = builder_.create<pir::DropoutOp>(
        loc, matmul.getLhs(),
        stepArgument(matmul->getParentOfType<func::FuncOp>()),
        builder_.getF64FloatAttr(config.loraDropout),
        builder_.getI64IntegerAttr(spec_.training.seed),
        builder_.getI64IntegerAttr(nextStream_++));
    dropout->setAttr(attr::kModule, builder_.getStringAttr(module.info.path));
    adapterInput = dropout.getResult();
  }
  FloatAttr scale = builder_.getF64FloatAttr(target.scale);
  StringAttr layout = builder_.getStringAttr(outIn ? "out_in" : "in_out");
  Operation *adapter;
  if (config.useDora) {
    const ParamSlot *weightSlot = module.slot("weight");
    pir::ParamOp m = createParam(loc, base + ".lora_magnitude_vector", {out},
                                 elementType, "dora_norm", method);
    if (!m)
      return failure();
    // The magnitude starts at the norm of the initial W + s·B·A, read from
    // the stored weight (whose layout is the module's, not this product's).
    m->setAttr(
        attr::kInitArgs,
        builder_.getDictionaryAttr(
            {builder_.getNamedAttr("weight",
                                   FlatSymbolRefAttr::get(builder_.getContext(),
                                                          weightSlot->param)),
             builder_.getNamedAttr("lora_a",
                                   FlatSymbolRefAttr::get(a.getOperation())),
             builder_.getNamedAttr("lora_b",
                                   FlatSymbolRefAttr::get(b.getOperation())),
             builder_.getNamedAttr("scale", scale),
             builder_.getNamedAttr("weight_layout",
                                   builder_.getStringAttr(module.weightOutIn
                                                              ? "out_in"
                                                              : "in_out"))}));
    Value useM = useParam(builder_, loc, m);
    adapter =
        builder_.create<pir::DoraOp>(loc, matmul.getLhs(), weight, useA, useB,
                                     useM, adapterInput, scale, layout);
  } else {
    adapter = builder_.create<pir::LoraOp>(loc, matmul.getLhs(), weight, useA,
                                           useB, adapterInput, scale, layout);
  }
  adapter->setAttr(attr::kModule, builder_.getStringAttr(module.info.path));
  matmul.getResult().replaceAllUsesWith(adapter->getResult(0));
  matmul.erase();
  if (transpose && transpose->use_empty())
    transpose.erase();
  adapted_.insert(module.info.path);
  return success();
}

LogicalResult Inserter::insertIa3(const Module &module,
                                  const spec::AdapterTarget &target,
                                  const spec::IA3Config &config) {
  auto matmul = dyn_cast<nn::MatMulOp>(module.anchor);
  Location loc = module.anchor->getLoc();
  if (!matmul)
    return emitError(loc) << "peft-insert-adapters: " << module.info.path
                          << " is a " << module.opName
                          << " already; a module takes one adapter";
  Type elementType = cast<RankedTensorType>(matmul.getType()).getElementType();
  int64_t features =
      target.feedforward ? module.info.inFeatures : module.info.outFeatures;
  // PEFT stores ia3_l as [out, 1] (scales the output) or [1, in] (scales the
  // input of a feed-forward layer); the op takes the flat vector.
  SmallVector<int64_t> shape = target.feedforward
                                   ? SmallVector<int64_t>{1, features}
                                   : SmallVector<int64_t>{features, 1};
  pir::ParamOp factors = createParam(
      loc, "base_model.model." + module.info.path + ".ia3_l", shape,
      elementType, config.initIa3Weights ? "ones" : "normal", "ia3");
  if (!factors)
    return failure();
  auto flatType = RankedTensorType::get({features}, elementType);
  auto scaleBy = [&](Value value) {
    Value flat = builder_.create<nn::ReshapeOp>(
        loc, flatType, useParam(builder_, loc, factors));
    auto ia3 = builder_.create<pir::Ia3Op>(loc, value, flat);
    ia3->setAttr(attr::kModule, builder_.getStringAttr(module.info.path));
    return ia3;
  };
  if (target.feedforward) {
    builder_.setInsertionPoint(matmul);
    matmul->setOperand(0, scaleBy(matmul.getLhs()).getResult());
  } else {
    // After the bias: PEFT scales base_layer(x), bias included.
    Operation *last = module.biasAdd ? module.biasAdd : matmul.getOperation();
    Value output = last->getResult(0);
    builder_.setInsertionPointAfter(last);
    pir::Ia3Op ia3 = scaleBy(output);
    output.replaceAllUsesExcept(ia3.getResult(), ia3);
  }
  adapted_.insert(module.info.path);
  return success();
}

void Inserter::markTrainable(pir::ParamOp param, StringRef key,
                             bool transposed) {
  param.setTrainable(true);
  if (param->hasAttr(attr::kKey))
    return; // trained by an earlier method already
  param->setAttr(attr::kKey, builder_.getStringAttr(key));
  if (transposed)
    param->setAttr(attr::kKeyTransposed, builder_.getUnitAttr());
}

void Inserter::trainBias(const Module &module) {
  const ParamSlot *slot = module.slot("bias");
  if (!slot)
    return; // resolution lists only modules with a bias
  auto param = symbols_.lookup<pir::ParamOp>(slot->param);
  // PEFT wraps adapted layers, so their bias sits under base_layer.
  std::string key =
      keyPrefix_ + module.info.path +
      (adapted_.count(module.info.path) ? ".base_layer.bias" : ".bias");
  markTrainable(param, key, false);
}

LogicalResult Inserter::saveModule(const Module &module) {
  for (const ParamSlot &slot : module.params) {
    if (isAdapterRole(slot.role))
      continue;
    auto original = symbols_.lookup<pir::ParamOp>(slot.param);
    if (!original)
      continue; // re-tied to its table by an earlier method
    const ParamInfo &info = table_.params.at(slot.param);
    std::string name = "base_model.model." + module.info.path + "." + slot.role;
    auto copy = symbols_.lookup<pir::ParamOp>(name);
    if (!copy) {
      RankedTensorType type = original.getTensorType();
      copy = createParam(original.getLoc(), name, type.getShape(),
                         type.getElementType(), "", "modules_to_save");
      if (!copy)
        return failure();
      // The copy starts as the module's own values: the same bytes.
      if (auto storage = original.getStorageAttr())
        copy.setStorageAttr(storage);
      if (auto value = original.getValueAttr())
        copy.setValueAttr(value);
      copy->setAttr(attr::kCopyOf,
                    FlatSymbolRefAttr::get(original.getOperation()));
      if (info.torchTransposed)
        copy->setAttr(attr::kKeyTransposed, builder_.getUnitAttr());
    }
    builder_.setInsertionPoint(slot.user);
    Value operand = slot.user->getOperand(slot.operand);
    slot.user->setOperand(
        slot.operand,
        replicateChain(builder_, operand,
                       useParam(builder_, slot.user->getLoc(), copy)));
  }
  return success();
}

/// A folded copy of a tied embedding table (lm_head = wteᵀ) trains as the
/// table itself, as in PyTorch: its uses read the table instead.
LogicalResult Inserter::retie(pir::ParamOp folded, const ParamInfo &info) {
  auto table = symbols_.lookup<pir::ParamOp>(info.tiedTo);
  bool transposed =
      table.getTensorType().getShape() != folded.getTensorType().getShape();
  SmallVector<pir::UseOp> uses;
  module_.walk([&](pir::UseOp use) {
    if (use.getParam() == folded.getSymName())
      uses.push_back(use);
  });
  for (pir::UseOp oldUse : uses) {
    builder_.setInsertionPoint(oldUse);
    Value value = useParam(builder_, oldUse.getLoc(), table);
    if (transposed)
      value = builder_.create<nn::TransposeOp>(
          oldUse.getLoc(), value, builder_.getDenseI64ArrayAttr({1, 0}));
    oldUse.getResult().replaceAllUsesWith(value);
    oldUse.erase();
  }
  symbols_.erase(folded);
  return success();
}

LogicalResult Inserter::trainInFull(const Module &module) {
  for (const ParamSlot &slot : module.params) {
    if (isAdapterRole(slot.role))
      continue;
    auto param = symbols_.lookup<pir::ParamOp>(slot.param);
    if (!param)
      continue; // re-tied to its table already
    const ParamInfo &info = table_.params.at(slot.param);
    if (!info.tiedTo.empty()) {
      if (failed(retie(param, info)))
        return failure();
      const ParamInfo &tableInfo = table_.params.at(info.tiedTo);
      markTrainable(symbols_.lookup<pir::ParamOp>(info.tiedTo),
                    keyPrefix_ + tableInfo.module + "." + tableInfo.role,
                    false);
      continue;
    }
    std::string key = keyPrefix_ + module.info.path + "." + slot.role;
    markTrainable(param, key, info.torchTransposed);
  }
  return success();
}

LogicalResult Inserter::run(const spec::ResolvedTargets &resolved) {
  // Placed by structure, before LoRA replaces the products they find.
  auto create = [&](Location loc, StringRef name, ArrayRef<int64_t> shape,
                    Type elementType, StringRef init, StringRef method) {
    return createParam(loc, name, shape, elementType, init, method);
  };
  for (const spec::MethodSpec &methodSpec : spec_.methods) {
    if (const spec::BottleneckConfig *bottleneck = methodSpec.bottleneck())
      if (failed(
              insertBottleneckAdapters(module_, table_, *bottleneck, create)))
        return failure();
    if (const spec::PromptTuningConfig *prompt = methodSpec.promptTuning())
      if (failed(insertPromptTuning(module_, table_, *prompt, create)))
        return failure();
  }
  // Adapters first, so biases know which modules PEFT wraps.
  for (const spec::ResolvedMethod &method : resolved.methods) {
    const spec::MethodSpec &methodSpec = spec_.methods[method.methodIndex];
    // SPARSE targets are peft-insert-sparse's.
    if (methodSpec.sparse())
      continue;
    for (const spec::AdapterTarget &target : method.adapters) {
      const Module &module = moduleAt(target.path);
      LogicalResult done =
          methodSpec.lora() ? insertLowRank(module, target, *methodSpec.lora())
                            : insertIa3(module, target, *methodSpec.ia3());
      if (failed(done))
        return failure();
    }
  }
  for (const spec::ResolvedMethod &method : resolved.methods) {
    for (const std::string &path : method.trainableBiases)
      trainBias(moduleAt(path));
    bool inFull = method.kind == spec::MethodKind::FreezeLayers ||
                  method.kind == spec::MethodKind::Full;
    for (const std::string &path : method.trainableModules)
      if (failed(inFull ? trainInFull(moduleAt(path))
                        : saveModule(moduleAt(path))))
        return failure();
  }
  return success();
}

/// Applies the spec attached to `module` to its function `funcName`, then
/// loads the adapter at `initAdapter` (if any) into the new params.
LogicalResult insertAdapters(ModuleOp module, StringRef funcName,
                             StringRef initAdapter) {
  constexpr StringLiteral pass = "peft-insert-adapters";
  FailureOr<spec::PeftSpec> spec = readSpecAttr(module, pass);
  if (failed(spec))
    return failure();
  FailureOr<MethodTargets> targets =
      resolveMethodTargets(module, funcName, *spec, pass);
  if (failed(targets) ||
      failed(Inserter(module, targets->table, *spec).run(targets->resolved)))
    return failure();
  if (initAdapter.empty())
    return success();
  return adapters::loadInitialAdapter(module, initAdapter);
}

struct InsertAdaptersPass
    : public peft::impl::InsertAdaptersBase<InsertAdaptersPass> {
  using InsertAdaptersBase::InsertAdaptersBase;

  void runOnOperation() override {
    if (failed(insertAdapters(getOperation(), funcName, initAdapter)))
      signalPassFailure();
  }
};

} // namespace
