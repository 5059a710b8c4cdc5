//===- SparseGradientRules.cpp - gradient rule of peft.sparse_delta -------===//
#include "passes/autodiff/SparseGradientRules.h"

#include "dialects/peft/PeftOps.h"

using namespace mlir;

namespace peft::autodiff {

void sparseDeltaGrad(GradientBuilder &g) {
  auto op = g.as<pir::SparseDeltaOp>();
  if (g.needs(0))
    g.setGrad(0, g.dout());
  if (g.needs(2)) {
    SmallVector<NamedAttribute> attrs;
    if (op.getTransposed())
      attrs.push_back(g.attr(op.getTransposedAttrName().getValue(),
                             UnitAttr::get(op.getContext())));
    g.setGrad(2, g.create("peft.sparse_gather", {g.dout(), op.getIndices()},
                          attrs, op.getValues().getType()));
  }
}

} // namespace peft::autodiff
