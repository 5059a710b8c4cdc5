//===- MethodInserters.cpp - what the PEFT method passes share ------------===//
//
// Param creation, the step counter and layout-chain replication, used by
// peft-insert-adapters (and the bottleneck and prompt-tuning inserters it
// calls), peft-insert-interventions, peft-insert-sparse and
// peft-insert-prefix-tuning.
//
//===----------------------------------------------------------------------===//
#include "passes/MethodInserters.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/IRMapping.h"
#include "mlir/IR/SymbolTable.h"

using namespace mlir;
namespace attr = peft::analysis::attr;

namespace peft {

ParamFactory::ParamFactory(ModuleOp module, SymbolTable &symbols,
                           StringRef pass, StringRef duplicateHint)
    : module_(module), symbols_(symbols), builder_(module.getContext()),
      pass_(pass.str()), duplicateHint_(duplicateHint.str()) {}

pir::ParamOp ParamFactory::create(Location loc, StringRef name,
                                  RankedTensorType type, bool trainable,
                                  StringRef init, StringRef method,
                                  DictionaryAttr initArgs) {
  if (symbols_.lookup(name)) {
    emitError(loc) << pass_ << ": a param named '" << name
                   << "' exists already (" << duplicateHint_ << ")";
    return nullptr;
  }
  if (!last_)
    for (auto param : module_.getOps<pir::ParamOp>())
      last_ = param;
  if (last_)
    builder_.setInsertionPointAfter(last_);
  else
    builder_.setInsertionPointToStart(module_.getBody());
  auto param = builder_.create<pir::ParamOp>(
      NameLoc::get(builder_.getStringAttr(name)), name, type);
  param.setTrainable(trainable);
  if (!init.empty())
    param.setInit(init);
  if (!method.empty())
    param->setAttr(attr::kMethod, builder_.getStringAttr(method));
  param->setAttr(attr::kKey, builder_.getStringAttr(name));
  if (initArgs)
    param->setAttr(attr::kInitArgs, initArgs);
  symbols_.insert(param);
  last_ = param;
  return param;
}

FailureOr<MethodTargets> resolveMethodTargets(ModuleOp module,
                                              StringRef funcName,
                                              const spec::PeftSpec &spec,
                                              StringRef pass) {
  FailureOr<analysis::ModuleTable> table =
      analysis::ModuleTable::build(module, funcName);
  if (failed(table))
    return failure();
  MethodTargets targets{std::move(*table), {}};
  std::string error;
  if (!spec::resolveTargets(spec, targets.table.moduleInfos(), targets.resolved,
                            error)) {
    module.emitError(pass) << ": " << error;
    return failure();
  }
  return targets;
}

Value useParam(OpBuilder &b, Location loc, pir::ParamOp param) {
  return b.create<pir::UseOp>(loc, param.getTensorType(), param.getSymName());
}

Value stepArgument(func::FuncOp func) {
  for (unsigned i = 0; i < func.getNumArguments(); ++i)
    if (func.getArgAttr(i, attr::kStep))
      return func.getArgument(i);
  MLIRContext *ctx = func.getContext();
  func.insertArgument(
      0, RankedTensorType::get({}, IntegerType::get(ctx, 64)),
      DictionaryAttr::get(ctx,
                          {NamedAttribute(StringAttr::get(ctx, attr::kStep),
                                          UnitAttr::get(ctx))}),
      func.getLoc());
  return func.getArgument(0);
}

Value replicateChain(OpBuilder &b, Value value, Value source) {
  Operation *def = value.getDefiningOp();
  if (!def || isa<pir::UseOp>(def))
    return source;
  Value input = replicateChain(b, def->getOperand(0), source);
  IRMapping mapping;
  mapping.map(def->getOperand(0), input);
  return b.clone(*def, mapping)->getResult(0);
}

} // namespace peft
