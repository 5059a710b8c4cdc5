//===- AdapterSave.cpp - the tensors of a saved adapter -------------------===//
#include "passes/AdapterSave.h"

#include "passes/analysis/ModuleNames.h"

#include <map>

using namespace mlir;

namespace peft::adapters {

Tensor transposed2d(const Tensor &t) {
  int64_t rows = t.shape()[0], cols = t.shape()[1];
  Tensor out(t.dtype(), {cols, rows});
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c)
      out.setDouble(c * rows + r, t.getDouble(r * cols + c));
  return out;
}

FailureOr<std::vector<std::pair<std::string, Tensor>>>
adapterTensors(ModuleOp module, ParamReader read) {
  namespace attr = analysis::attr;
  std::map<std::string, Tensor> byKey;
  for (auto param : module.getOps<pir::ParamOp>()) {
    auto key = param->getAttrOfType<StringAttr>(attr::kKey);
    // Frozen params with a key are saved too, as the runtime's
    // Session::saveAdapter does: sparse fine-tuning's indices, which say
    // where its trained values go.
    if (!key)
      continue;
    FailureOr<Tensor> value = read(param.getSymName());
    if (failed(value))
      return failure();
    Tensor saved = *value;
    if (param->hasAttr(attr::kKeyTransposed)) {
      if (saved.rank() != 2)
        return param.emitError("peft.key_transposed on @")
               << param.getSymName() << ", which is not a matrix";
      saved = transposed2d(saved);
    }
    if (!byKey.emplace(key.str(), std::move(saved)).second)
      return param.emitError("two trainable params are saved under '")
             << key.getValue() << "'";
  }
  return std::vector<std::pair<std::string, Tensor>>(byKey.begin(),
                                                     byKey.end());
}

} // namespace peft::adapters
