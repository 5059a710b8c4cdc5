//===- FreezeParams.cpp - freeze everything the spec does not train -------===//
//
// peft-insert-adapters marks what the spec trains (with `peft.key`, the name
// the tensor is saved under); every other param is frozen here, whatever a
// hand-written or earlier module said, so the trainable set is exactly the
// spec's.
//
//===----------------------------------------------------------------------===//
#include "passes/Passes.h"
#include "passes/analysis/ModuleNames.h"

#include "llvm/ADT/DenseSet.h"

namespace peft {
#define GEN_PASS_DEF_FREEZEPARAMS
#include "passes/Passes.h.inc"
} // namespace peft

using namespace mlir;
using namespace peft;
namespace attr = peft::analysis::attr;

namespace {

struct FreezeParamsPass
    : public peft::impl::FreezeParamsBase<FreezeParamsPass> {
  void runOnOperation() override {
    ModuleOp module = getOperation();
    llvm::DenseSet<StringAttr> read;
    module.walk(
        [&](pir::UseOp use) { read.insert(use.getParamAttr().getAttr()); });
    int64_t trainable = 0;
    for (auto param : module.getOps<pir::ParamOp>()) {
      if (!param->hasAttr(attr::kKey)) {
        param.setTrainable(false);
        continue;
      }
      if (!param.getTrainable())
        continue;
      ++trainable;
      if (!read.contains(param.getSymNameAttr()))
        param.emitWarning("peft-freeze: trainable param @")
            << param.getSymName()
            << " is read by no function, so training cannot change it";
    }
    if (trainable == 0) {
      module.emitError("peft-freeze: no param is trainable: the spec's "
                       "methods select nothing to train (does the module "
                       "carry a `peft.spec` and did peft-insert-adapters "
                       "run?)");
      return signalPassFailure();
    }
  }
};

} // namespace
