//===- ReftKernels.cpp - ReFT interventions and the Householder map -------===//
//
// The golden numerics of pyreft's interventions and of PyTorch's orthogonal
// parametrization (Householder map, dynamic trivialization), written in the
// order of operations of the Python they mirror.
//
//===----------------------------------------------------------------------===//
#include "codegen/reference/Kernels.h"

#include "dialects/peft/PeftOps.h"

#include <algorithm>
#include <cmath>
#include <vector>

using namespace mlir;

namespace peft::ref {
namespace {

//===----------------------------------------------------------------------===//
// Householder orthogonal map
//===----------------------------------------------------------------------===//

/// One row-major n×k matrix of doubles.
struct Matrix {
  int64_t rows = 0, cols = 0;
  std::vector<double> v;
  Matrix(int64_t rows, int64_t cols)
      : rows(rows), cols(cols), v(rows * cols, 0.0) {}
  double &at(int64_t i, int64_t j) { return v[i * cols + j]; }
  double at(int64_t i, int64_t j) const { return v[i * cols + j]; }
};

/// The reflectors of torch's `_Orthogonal.forward` (householder map) for
/// X: [n, k]: v_j = e_j + tril(X, -1)[:, j], tau_j = 2 / (1 + ‖tail_j‖²),
/// and the column signs int(X[j, j]).
struct Reflectors {
  int64_t n, k;
  const Tensor &x;
  std::vector<double> tau, sign;

  explicit Reflectors(const Tensor &x)
      : n(x.shape()[0]), k(x.shape()[1]), x(x), tau(k), sign(k) {
    for (int64_t j = 0; j < k; ++j) {
      double squares = 0;
      for (int64_t i = j + 1; i < n; ++i)
        squares += x.getDouble(i * k + j) * x.getDouble(i * k + j);
      tau[j] = 2.0 / (1.0 + squares);
      // Tensor.int(): truncation toward zero.
      sign[j] = std::trunc(x.getDouble(j * k + j));
    }
  }
  /// Entry i of v_j.
  double reflector(int64_t i, int64_t j) const {
    if (i < j)
      return 0.0;
    return i == j ? 1.0 : x.getDouble(i * k + j);
  }
  /// v_jᵀ·P[:, c] for an n-row P.
  double dot(int64_t j, const Matrix &p, int64_t c) const {
    double sum = 0;
    for (int64_t i = j; i < n; ++i)
      sum += reflector(i, j) * p.at(i, c);
    return sum;
  }
  /// P ← H_j·P = P − tau_j·v_j·(v_jᵀ·P), for an n-row P.
  void reflect(int64_t j, Matrix &p) const {
    for (int64_t c = 0; c < p.cols; ++c) {
      double scaled = tau[j] * dot(j, p, c);
      for (int64_t i = j; i < n; ++i)
        p.at(i, c) -= scaled * reflector(i, j);
    }
  }
  /// P_j = H_j·…·H_{k−1}·I[n, k] for j = k … 0 (partials[j]); P_0 is
  /// householder_product(A, tau).
  std::vector<Matrix> partials() const {
    std::vector<Matrix> p(k + 1, Matrix(n, k));
    for (int64_t j = 0; j < k; ++j)
      p[k].at(j, j) = 1.0;
    for (int64_t j = k - 1; j >= 0; --j) {
      p[j] = p[j + 1];
      reflect(j, p[j]);
    }
    return p;
  }
};

/// base·M (or baseᵀ·M) for the n×n frozen `base` of the Householder map and
/// an n-row M: the product both halves of the map have with the buffer.
Matrix baseTimes(const Tensor &base, bool transposeBase, const Matrix &m) {
  int64_t n = m.rows;
  Matrix out(n, m.cols);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t c = 0; c < m.cols; ++c) {
      double acc = 0;
      for (int64_t l = 0; l < n; ++l)
        acc +=
            base.getDouble(transposeBase ? l * n + i : i * n + l) * m.at(l, c);
      out.at(i, c) = acc;
    }
  return out;
}

/// Q = base · (householder_product(A, tau) · diag(sign)).
FailureOr<Tensor> householderOrthogonal(Operation *op, ArrayRef<Tensor> in,
                                        const EvalContext &ctx) {
  const Tensor &x = in[0], &base = in[1];
  Reflectors refl(x);
  Matrix withSigns = std::move(refl.partials()[0]);
  for (int64_t m = 0; m < refl.n; ++m)
    for (int64_t c = 0; c < refl.k; ++c)
      withSigns.at(m, c) *= refl.sign[c];
  Matrix q = baseTimes(base, /*transposeBase=*/false, withSigns);
  Tensor out(ctx.storageType(op->getResult(0)), resultShape(op));
  for (int64_t i = 0; i < refl.n * refl.k; ++i)
    out.setDouble(i, q.v[i]);
  return out;
}

/// Reverse sweep through P_j = H_j·P_{j+1}: with G the cotangent of P_j,
/// a = P_{j+1}ᵀ·v, c = Gᵀ·v: dtau_j = −c·a, dv_j = −tau_j·(G·a + P_{j+1}·c),
/// and G ← H_j·G for P_{j+1}. tau_j = 2/(1 + Σ tail²) adds
/// −tau_j²·A[i, j]·dtau_j to each tail entry.
FailureOr<Tensor> householderOrthogonalGrad(Operation *op, ArrayRef<Tensor> in,
                                            const EvalContext &ctx) {
  const Tensor &x = in[0], &base = in[1], &dq = in[2];
  Reflectors refl(x);
  int64_t n = refl.n, k = refl.k;
  std::vector<Matrix> p = refl.partials();
  // dP_0 = diag-scaled baseᵀ·dQ.
  Matrix dqm(n, k);
  for (int64_t i = 0; i < n * k; ++i)
    dqm.v[i] = dq.getDouble(i);
  Matrix g = baseTimes(base, /*transposeBase=*/true, dqm);
  for (int64_t m = 0; m < n; ++m)
    for (int64_t c = 0; c < k; ++c)
      g.at(m, c) *= refl.sign[c];
  Tensor dx(ctx.storageType(op->getResult(0)), resultShape(op));
  std::vector<double> a(k), c(k);
  for (int64_t j = 0; j < k; ++j) {
    const Matrix &next = p[j + 1];
    for (int64_t col = 0; col < k; ++col) {
      a[col] = refl.dot(j, next, col);
      c[col] = refl.dot(j, g, col);
    }
    double dtau = 0;
    for (int64_t col = 0; col < k; ++col)
      dtau -= c[col] * a[col];
    double tau = refl.tau[j];
    for (int64_t i = j + 1; i < n; ++i) {
      double ga = 0, pc = 0;
      for (int64_t col = 0; col < k; ++col) {
        ga += g.at(i, col) * a[col];
        pc += next.at(i, col) * c[col];
      }
      double dv = -tau * (ga + pc);
      dx.setDouble(i * k + j, dv - tau * tau * x.getDouble(i * k + j) * dtau);
    }
    refl.reflect(j, g);
  }
  return dx;
}

/// S[k] = M, S[j] = H_j·S[j+1] (or, adjoint, S[0] = M, S[j+1] = H_j·S[j]),
/// with M the start operand or I[n, k].
FailureOr<Tensor> householderSweep(Operation *op, ArrayRef<Tensor> in,
                                   const EvalContext &ctx) {
  auto sweep = cast<pir::HouseholderSweepOp>(op);
  Reflectors refl(in[0]);
  int64_t n = refl.n, k = refl.k;
  Shape shape = resultShape(op);
  int64_t cols = shape[2];
  Matrix m(n, cols);
  if (sweep.getStart())
    for (int64_t i = 0; i < n * cols; ++i)
      m.v[i] = in[1].getDouble(i);
  else
    for (int64_t j = 0; j < k; ++j)
      m.at(j, j) = 1.0;
  Tensor out(ctx.storageType(op->getResult(0)), shape);
  // Each slice continues from its stored (rounded) values, as the loop
  // kernel reads the slice before back from the result.
  auto store = [&](int64_t slice) {
    for (int64_t i = 0; i < n * cols; ++i) {
      out.setDouble(slice * n * cols + i, m.v[i]);
      m.v[i] = out.getDouble(slice * n * cols + i);
    }
  };
  bool adjoint = sweep.getAdjoint();
  store(adjoint ? 0 : k);
  for (int64_t s = 0; s < k; ++s) {
    int64_t j = adjoint ? s : k - 1 - s;
    refl.reflect(j, m);
    store(adjoint ? j + 1 : j);
  }
  return out;
}

//===----------------------------------------------------------------------===//
// Positions and interventions
//===----------------------------------------------------------------------===//

/// pyreft's get_intervention_locations for one prompt length, padded with
/// -1, plus `offset` on the real positions.
FailureOr<Tensor> reftPositions(Operation *op, ArrayRef<Tensor> in,
                                const EvalContext &) {
  auto positions = cast<pir::ReftPositionsOp>(op);
  int64_t firstN = positions.getFirst(), lastN = positions.getLast();
  int64_t offset = positions.getPositionOffset();
  StringRef group = positions.getGroup();
  Shape shape = resultShape(op);
  int64_t batch = shape[0], count = shape[1];
  Tensor out(DType::I64, shape);
  for (int64_t b = 0; b < batch; ++b) {
    int64_t length = in[0].getInt(b);
    if (length < 0)
      return op->emitError("reft_positions: prompt length ")
             << length << " of example " << b << " is negative";
    int64_t first = std::min(length / 2, firstN);
    int64_t last = std::min(length / 2, lastN);
    std::vector<int64_t> list;
    if (group != "last")
      for (int64_t i = 0; i < first; ++i)
        list.push_back(i + offset);
    if (group != "first")
      for (int64_t i = length - last; i < length; ++i)
        list.push_back(i + offset);
    for (int64_t i = 0; i < count; ++i)
      out.setInt(b * count + i, i < (int64_t)list.size() ? list[i] : -1);
  }
  return out;
}

/// Which rows of each example `positions` selects: selected[b·T + t].
FailureOr<std::vector<char>> selectedRows(Operation *op,
                                          const Tensor &positions,
                                          int64_t batch, int64_t seq) {
  std::vector<char> selected(batch * seq, 0);
  int64_t count = positions.shape()[1];
  for (int64_t b = 0; b < batch; ++b)
    for (int64_t i = 0; i < count; ++i) {
      int64_t t = positions.getInt(b * count + i);
      if (t == -1)
        continue;
      if (t < 0 || t >= seq)
        return op->emitError(op->getName().getStringRef())
               << ": position " << t << " of example " << b
               << " is outside [0, " << seq << ")";
      selected[b * seq + t] = 1;
    }
  return selected;
}

FailureOr<Tensor> interventionMask(Operation *op, ArrayRef<Tensor> in,
                                   const EvalContext &ctx) {
  Shape shape = resultShape(op);
  FailureOr<std::vector<char>> selected =
      selectedRows(op, in[0], shape[0], shape[1]);
  if (failed(selected))
    return failure();
  Tensor mask(ctx.storageType(op->getResult(0)), shape);
  for (size_t i = 0; i < selected->size(); ++i)
    mask.setDouble(i, (*selected)[i] ? 1.0 : 0.0);
  return mask;
}

/// The learned source of one row: s = W·h + b ([r], nn.Linear).
void learnedSource(const Tensor &h, int64_t row, const Tensor &w,
                   const Tensor &b, int64_t d, int64_t r,
                   std::vector<double> &s) {
  s.assign(r, 0.0);
  for (int64_t j = 0; j < r; ++j) {
    double acc = 0;
    for (int64_t i = 0; i < d; ++i)
      acc += h.getDouble(row * d + i) * w.getDouble(j * d + i);
    s[j] = acc + b.getDouble(j);
  }
}

/// y = h, plus `addDelta(row, delta)` ([d] values, zeroed) on the rows the
/// positions select: the shape both interventions share.
template <typename AddDelta>
FailureOr<Tensor>
interveneSelectedRows(Operation *op, const Tensor &h, const Tensor &positions,
                      const EvalContext &ctx, AddDelta addDelta) {
  Shape shape = h.shape();
  int64_t batch = shape[0], seq = shape[1], d = shape[2];
  FailureOr<std::vector<char>> selected =
      selectedRows(op, positions, batch, seq);
  if (failed(selected))
    return failure();
  Tensor y(ctx.storageType(op->getResult(0)), shape);
  std::vector<double> delta(d);
  for (int64_t row = 0; row < batch * seq; ++row) {
    std::fill(delta.begin(), delta.end(), 0.0);
    if ((*selected)[row])
      addDelta(row, delta);
    for (int64_t i = 0; i < d; ++i)
      y.setDouble(row * d + i, h.getDouble(row * d + i) + delta[i]);
  }
  return y;
}

/// LoreftIntervention.forward on the selected rows:
/// rotated = h·R, out = h + (learned_source(h) − rotated)·Rᵀ.
FailureOr<Tensor> loreft(Operation *op, ArrayRef<Tensor> in,
                         const EvalContext &ctx) {
  const Tensor &h = in[0], &rot = in[1], &w = in[2], &b = in[3];
  int64_t d = h.shape()[2], r = w.shape()[0];
  std::vector<double> s;
  return interveneSelectedRows(
      op, h, in[4], ctx, [&](int64_t row, std::vector<double> &delta) {
        learnedSource(h, row, w, b, d, r, s);
        for (int64_t j = 0; j < r; ++j) {
          double rotated = 0;
          for (int64_t i = 0; i < d; ++i)
            rotated += h.getDouble(row * d + i) * rot.getDouble(i * r + j);
          s[j] -= rotated;
        }
        for (int64_t i = 0; i < d; ++i)
          for (int64_t j = 0; j < r; ++j)
            delta[i] += s[j] * rot.getDouble(i * r + j);
      });
}

/// NodireftIntervention.forward on the selected rows:
/// out = h + learned_source(h)·P.
FailureOr<Tensor> nodireft(Operation *op, ArrayRef<Tensor> in,
                           const EvalContext &ctx) {
  const Tensor &h = in[0], &w = in[1], &b = in[2], &proj = in[3];
  int64_t d = h.shape()[2], r = w.shape()[0];
  std::vector<double> s;
  return interveneSelectedRows(
      op, h, in[4], ctx, [&](int64_t row, std::vector<double> &delta) {
        learnedSource(h, row, w, b, d, r, s);
        for (int64_t i = 0; i < d; ++i)
          for (int64_t j = 0; j < r; ++j)
            delta[i] += s[j] * proj.getDouble(j * d + i);
      });
}

} // namespace

void registerReftKernels(KernelRegistry &r) {
  r.add("peft.householder_orthogonal", singleResult(householderOrthogonal));
  r.add("peft.householder_orthogonal_grad",
        singleResult(householderOrthogonalGrad));
  r.add("peft.householder_sweep", singleResult(householderSweep));
  r.add("peft.reft_positions", singleResult(reftPositions));
  r.add("peft.intervention_mask", singleResult(interventionMask));
  r.add("peft.loreft", singleResult(loreft));
  r.add("peft.nodireft", singleResult(nodireft));
}

} // namespace peft::ref
