//===- DecomposeReft.cpp - the ReFT ops as GEMMs and loop kernels ---------===//
//
// The interventions are low-rank products on the residual stream: as GEMMs
// over all N = batch·T rows ([N, d]·[d, r], then [N, r]·[r, d]) they run in
// the GEMM library, and a row mask keeps the result only where the
// positions name the row (exactly: unselected rows are the input itself).
// The rows outside the positions cost r/d of one projection of the layer, so
// gathering the selected rows first would save next to nothing; the
// gradient rules (passes/autodiff/ReftGradientRules.cpp) use the same
// masked all-row form.
//
// The Householder map is sequential in its k reflectors but tiny (O(k²·n)):
// peft.householder_sweep runs it column by column and keeps every partial
// product, from which the gradient is batched GEMMs over the reflectors.
//
//===----------------------------------------------------------------------===//
#include "passes/lowering/DecomposeReft.h"

#include "dialects/peft/PeftOps.h"

#include "mlir/IR/TypeUtilities.h"

using namespace mlir;

namespace peft::lowering {
namespace {

using B = autodiff::GradientBuilder;

/// sign_j = int(X[j, j]) (Tensor.int() truncates toward zero), as a [k] row
/// that scales the columns of an [n, k] matrix.
Value columnSigns(B &g, Value x) {
  ArrayRef<int64_t> shape = B::shapeOf(x);
  int64_t n = shape[0], k = shape[1];
  Value top = n == k ? x : g.slice(x, {0, 0}, {k, k}, {1, 1});
  Value diagonal = g.create("nn.einsum", {top}, {g.str("equation", "ii->i")});
  Type element = getElementTypeOrSelf(x.getType());
  return g.castTo(g.castTo(diagonal, IntegerType::get(x.getContext(), 64)),
                  element);
}

/// peft.householder_sweep of X from I[n, k] (or, adjoint, of `start`).
Value sweep(B &g, Value x, Value start = {}) {
  if (!start)
    return g.create("peft.householder_sweep", {x});
  return g.create("peft.householder_sweep", {x, start},
                  {g.attr("adjoint", UnitAttr::get(x.getContext()))});
}

/// Slices [from, from + count) of a [k + 1, n, m] sweep.
Value slices(B &g, Value s, int64_t from, int64_t count) {
  ArrayRef<int64_t> shape = B::shapeOf(s);
  return g.slice(s, {from, 0, 0}, {count, shape[1], shape[2]}, {1, 1, 1});
}

/// The rows that `positions` selects, as an i1 [batch, T, 1] condition.
Value selectedRows(B &g, Value h, Value positions) {
  ArrayRef<int64_t> shape = B::shapeOf(h);
  Type element = getElementTypeOrSelf(h.getType());
  Value mask =
      g.create("peft.intervention_mask", {positions}, {},
               RankedTensorType::get({shape[0], shape[1], 1}, element));
  return g.castTo(mask, IntegerType::get(h.getContext(), 1));
}

/// h + delta on the selected rows, h itself elsewhere.
Value intervene(B &g, Value h, Value positions, Value deltaRows) {
  Value delta = g.reshape(deltaRows, B::shapeOf(h));
  return g.where(selectedRows(g, h, positions), g.add(h, delta), h);
}

} // namespace

Value decomposeHouseholderOrthogonal(B &g, Operation *op) {
  auto map = cast<pir::HouseholderOrthogonalOp>(op);
  Value x = map.getInput();
  ArrayRef<int64_t> shape = B::shapeOf(x);
  int64_t n = shape[0], k = shape[1];
  Value product = g.reshape(slices(g, sweep(g, x), 0, 1), {n, k});
  return g.matmul(map.getBase(), g.mul(product, columnSigns(g, x)), false,
                  false);
}

/// The reference's reverse sweep (codegen/reference/ReftKernels.cpp) for all
/// reflectors j at once, with P_{j+1} = H_{j+1}·…·H_{k−1}·I[n, k] from the
/// sweep of I and G_j = H_{j−1}·…·H_0·G_0 from the adjoint sweep of
/// G_0 = (baseᵀ·dQ)·diag(sign):
///   a_j = P_{j+1}ᵀ·v_j, c_j = G_jᵀ·v_j, dtau_j = −c_j·a_j,
///   dv_j = −tau_j·(G_j·a_j + P_{j+1}·c_j),
///   dX[i, j] = dv_j[i] − tau_j²·X[i, j]·dtau_j for i > j (0 elsewhere).
Value decomposeHouseholderOrthogonalGrad(B &g, Operation *op) {
  auto grad = cast<pir::HouseholderOrthogonalGradOp>(op);
  Value x = grad.getInput();
  ArrayRef<int64_t> shape = B::shapeOf(x);
  int64_t n = shape[0], k = shape[1];
  Type element = getElementTypeOrSelf(x.getType());
  Value g0 = g.mul(g.matmul(grad.getBase(), grad.getResultGrad(), true, false),
                   columnSigns(g, x));
  Value next = slices(g, sweep(g, x), 1, k);
  Value left = slices(g, sweep(g, x, g0), 0, k);

  // v_j = e_j + tril(X, −1)[:, j], as rows [k, 1, n] of the batched GEMMs.
  auto trilu = [&](Value v, bool upper, int64_t diagonal) {
    return g.create("nn.trilu", {v},
                    {g.attr("upper", BoolAttr::get(x.getContext(), upper)),
                     g.i64("k", diagonal)});
  };
  Value tails = trilu(x, false, -1);
  Value ones = g.splat(RankedTensorType::get({n, k}, element), 1.0);
  Value identity = trilu(trilu(ones, false, 0), true, 0);
  Value v = g.reshape(g.transpose(g.add(tails, identity), {1, 0}), {k, 1, n});

  Value a = g.matmul(v, next, false, false);               // [k, 1, k]
  Value c = g.matmul(v, left, false, false);               // [k, 1, k]
  Value dtau = g.neg(g.reduceSum(g.mul(c, a), {2}, true)); // [k, 1, 1]
  Value ga = g.matmul(left, g.reshape(a, {k, k, 1}), false, false);
  Value pc = g.matmul(next, g.reshape(c, {k, k, 1}), false, false);
  Value squares = g.reduceSum(g.mul(tails, tails), {0}, false);
  Value tau =
      g.reshape(g.div(g.scalar(2.0, x), g.shift(squares, 1.0)), {k, 1, 1});
  Value dv = g.neg(g.mul(tau, g.add(ga, pc))); // [k, n, 1]
  Value xt = g.reshape(g.transpose(x, {1, 0}), {k, n, 1});
  Value dxt = g.sub(dv, g.mul(g.mul(g.mul(tau, tau), xt), dtau));
  return trilu(g.transpose(g.reshape(dxt, {k, n}), {1, 0}), false, -1);
}

/// LoreftIntervention: h + (h·Wᵀ + b − h·R)·Rᵀ, with h·Wᵀ − h·R as one
/// GEMM h·(Wᵀ − R).
Value decomposeLoreft(B &g, Operation *op) {
  auto loreft = cast<pir::LoreftOp>(op);
  Value h = loreft.getInput(), rot = loreft.getRotation();
  ArrayRef<int64_t> shape = B::shapeOf(h);
  Value rows = g.reshape(h, {shape[0] * shape[1], shape[2]});
  Value source = g.sub(g.transpose(loreft.getWeight(), {1, 0}), rot);
  Value s = g.add(g.matmul(rows, source, false, false), loreft.getBias());
  return intervene(g, h, loreft.getPositions(), g.matmul(s, rot, false, true));
}

/// NodireftIntervention: h + (h·Wᵀ + b)·P.
Value decomposeNodireft(B &g, Operation *op) {
  auto nodireft = cast<pir::NodireftOp>(op);
  Value h = nodireft.getInput();
  ArrayRef<int64_t> shape = B::shapeOf(h);
  Value rows = g.reshape(h, {shape[0] * shape[1], shape[2]});
  Value u = g.add(g.matmul(rows, nodireft.getWeight(), false, true),
                  nodireft.getBias());
  return intervene(g, h, nodireft.getPositions(),
                   g.matmul(u, nodireft.getProjection(), false, false));
}

} // namespace peft::lowering
