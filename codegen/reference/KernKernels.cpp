//===- KernKernels.cpp - kern.gemm ----------------------------------------===//
//
// The library-call GEMM as the program runs it: alpha·op(A)·op(B), plus
// beta·C, plus the bias, then the epilogue, for each batch (a rank-2
// operand beside a rank-3 one is shared by every batch). kern.launch is
// run by the evaluator itself (it calls the kernel function).
//
//===----------------------------------------------------------------------===//
#include "codegen/reference/Kernels.h"

#include "dialects/kern/KernOps.h"

#include <cmath>

using namespace mlir;

namespace peft::ref {
namespace {

/// Element (i, j) of op(X) for batch `b` of a [batch?, rows, cols] tensor.
struct Matrix {
  const Tensor &t;
  bool transposed;
  int64_t rows, cols, stride;
  Matrix(const Tensor &t, bool transposed) : t(t), transposed(transposed) {
    int64_t rank = t.rank();
    rows = t.shape()[rank - 2];
    cols = t.shape()[rank - 1];
    stride = rank == 3 ? rows * cols : 0;
  }
  double at(int64_t b, int64_t i, int64_t j) const {
    return t.getDouble(b * stride + (transposed ? j * cols + i : i * cols + j));
  }
};

double epilogue(StringRef kind, double v) {
  if (kind == "relu")
    return v > 0 ? v : 0;
  if (kind == "gelu_erf")
    return 0.5 * v * (1 + std::erf(v / std::sqrt(2.0)));
  if (kind == "gelu_tanh")
    return 0.5 * v *
           (1 + std::tanh(std::sqrt(2.0 / M_PI) * (v + 0.044715 * v * v * v)));
  return v;
}

FailureOr<Tensor> gemm(Operation *op, ArrayRef<Tensor> in,
                       const EvalContext &ctx) {
  auto g = cast<kern::GemmOp>(op);
  Matrix a(in[0], g.getTransA()), b(in[1], g.getTransB());
  size_t next = 2;
  const Tensor *c = g.getC() ? &in[next++] : nullptr;
  const Tensor *bias = g.getBias() ? &in[next++] : nullptr;
  double alpha = g.getAlpha().convertToDouble();
  double beta = g.getBeta().convertToDouble();
  StringRef kind = g.getEpilogue();
  int64_t batch = g.getBatch(), m = g.getM(), n = g.getN(), k = g.getK();
  Tensor y(ctx.storageType(op->getResult(0)), resultShape(op));
  for (int64_t bi = 0; bi < batch; ++bi)
    for (int64_t i = 0; i < m; ++i)
      for (int64_t j = 0; j < n; ++j) {
        double acc = 0;
        for (int64_t p = 0; p < k; ++p)
          acc += a.at(bi, i, p) * b.at(bi, p, j);
        int64_t at = (bi * m + i) * n + j;
        double v = alpha * acc;
        if (c)
          v = v + beta * c->getDouble(at);
        if (bias)
          v = v + bias->getDouble(j);
        y.setDouble(at, epilogue(kind, v));
      }
  return y;
}

} // namespace

void registerKernKernels(KernelRegistry &r) {
  r.add("kern.gemm", singleResult(gemm));
}

} // namespace peft::ref
