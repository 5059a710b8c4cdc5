//===- ReftGradientRules.cpp - gradient rules of the ReFT ops -------------===//
//
// The interventions change only the rows their positions select; the rules
// work on all rows flattened to [N, d] (N = batch·T) with the cotangent of
// the intervened path masked by peft.intervention_mask, so every GEMM is one
// [N, ·] product and no gather is needed.
//
//===----------------------------------------------------------------------===//
#include "passes/autodiff/ReftGradientRules.h"

#include "dialects/peft/PeftOps.h"

#include "mlir/IR/TypeUtilities.h"

using namespace mlir;

namespace peft::autodiff {
namespace {

using G = GradientBuilder;

/// The rows of an intervention as matrices: h and dy as [N, d], and the
/// cotangent of the intervened path dy ⊙ mask as [N, d].
struct Rows {
  Value h, dy, masked;
  SmallVector<int64_t> shape;
};

Rows rowsOf(G &g, Value h, Value positions) {
  Rows rows;
  rows.shape.assign(G::shapeOf(h).begin(), G::shapeOf(h).end());
  int64_t n = rows.shape[0] * rows.shape[1], d = rows.shape[2];
  Type element = getElementTypeOrSelf(h.getType());
  Value mask = g.create(
      "peft.intervention_mask", {positions}, {},
      RankedTensorType::get({rows.shape[0], rows.shape[1], 1}, element));
  rows.h = g.reshape(h, {n, d});
  rows.dy = g.reshape(g.dout(), {n, d});
  rows.masked = g.reshape(g.mul(g.dout(), mask), {n, d});
  return rows;
}

/// The cotangents of learned_source (W = operand `w`, b = operand `w` + 1)
/// from ds = d(h·Wᵀ + b): dW = dsᵀ·h, db = Σ_rows ds.
void sourceGrads(G &g, const Rows &rows, Value ds, unsigned w) {
  if (g.needs(w))
    g.setGrad(w, g.matmul(ds, rows.h, true, false));
  if (g.needs(w + 1))
    g.setGrad(w + 1, g.reduceSum(ds, {0}, false));
}

} // namespace

void householderOrthogonalGrad(G &g) {
  if (g.needs(1))
    return g.fail("the base of peft.householder_orthogonal is a buffer and "
                  "has no gradient rule");
  if (g.needs(0))
    g.setGrad(0, g.create("peft.householder_orthogonal_grad",
                          {g.in(0), g.in(1), g.dout()}));
}

/// With S = Wᵀ − R ([d, r]), s = h·S + b and g = dy ⊙ m (rows): ds = g·R,
/// dR = gᵀ·s − hᵀ·ds, dW = dsᵀ·h, db = Σ ds, dh = dy + ds·Sᵀ. S makes
/// h·Wᵀ − h·R and ds·W − ds·Rᵀ one GEMM each.
void loreftGrad(G &g) {
  Value h = g.in(0), rot = g.in(1), w = g.in(2), b = g.in(3);
  Rows rows = rowsOf(g, h, g.in(4));
  Value ds = g.matmul(rows.masked, rot, false, false);
  Value source;
  if (g.needs(0) || g.needs(1))
    source = g.sub(g.transpose(w, {1, 0}), rot);
  if (g.needs(1)) {
    Value s = g.add(g.matmul(rows.h, source, false, false), b);
    g.setGrad(1, g.sub(g.matmul(rows.masked, s, true, false),
                       g.matmul(rows.h, ds, true, false)));
  }
  sourceGrads(g, rows, ds, 2);
  if (g.needs(0)) {
    Value through = g.matmul(ds, source, false, true);
    g.setGrad(0, g.add(g.dout(), g.reshape(through, rows.shape)));
  }
}

/// With u = h·Wᵀ + b and g = dy ⊙ m (rows): du = g·Pᵀ, dP = uᵀ·g,
/// dW = duᵀ·h, db = Σ du, dh = dy + du·W.
void nodireftGrad(G &g) {
  Value h = g.in(0), w = g.in(1), b = g.in(2), proj = g.in(3);
  Rows rows = rowsOf(g, h, g.in(4));
  Value du = g.matmul(rows.masked, proj, false, true);
  if (g.needs(3)) {
    Value u = g.add(g.matmul(rows.h, w, false, true), b);
    g.setGrad(3, g.matmul(u, rows.masked, true, false));
  }
  sourceGrads(g, rows, du, 1);
  if (g.needs(0))
    g.setGrad(0, g.add(g.dout(),
                       g.reshape(g.matmul(du, w, false, false), rows.shape)));
}

} // namespace peft::autodiff
