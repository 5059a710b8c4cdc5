//===- ElementwiseKernels.cpp - unary, binary and comparison ops ----------===//
#include "codegen/reference/Kernels.h"

#include <cmath>

using namespace mlir;

namespace peft::ref {
namespace {

Kernel unary(std::function<double(double)> f,
             std::function<int64_t(int64_t)> fi = nullptr) {
  return singleResult([f, fi](Operation *op, ArrayRef<Tensor> in,
                              const EvalContext &ctx) -> FailureOr<Tensor> {
    DType out = ctx.storageType(op->getResult(0));
    if (!isFloat(out)) {
      if (!fi)
        return op->emitError("reference evaluator: integer operands are not supported");
      return mapUnaryInt(in[0], out, fi);
    }
    return mapUnaryFloat(in[0], out, f);
  });
}

Kernel binary(std::function<double(double, double)> f,
              std::function<int64_t(int64_t, int64_t)> fi) {
  return singleResult([f, fi](Operation *op, ArrayRef<Tensor> in,
                              const EvalContext &ctx) -> FailureOr<Tensor> {
    DType out = ctx.storageType(op->getResult(0));
    Shape shape = resultShape(op);
    bool floatOperands = isFloat(in[0].dtype());
    if (!floatOperands) {
      if (!fi)
        return op->emitError("reference evaluator: integer operands are not supported");
      return mapBinaryInt(in[0], in[1], shape, out, fi);
    }
    return mapBinaryFloat(in[0], in[1], shape, out, f);
  });
}

} // namespace

void registerElementwiseKernels(KernelRegistry &r) {
  r.add("nn.neg", unary([](double x) { return -x; }, [](int64_t x) { return -x; }));
  r.add("nn.exp", unary([](double x) { return std::exp(x); }));
  r.add("nn.add", binary([](double a, double b) { return a + b; },
                         [](int64_t a, int64_t b) { return a + b; }));
  r.add("nn.sub", binary([](double a, double b) { return a - b; },
                         [](int64_t a, int64_t b) { return a - b; }));
  r.add("nn.mul", binary([](double a, double b) { return a * b; },
                         [](int64_t a, int64_t b) { return a * b; }));
  r.add("nn.div", binary([](double a, double b) { return a / b; },
                         [](int64_t a, int64_t b) { return b == 0 ? 0 : a / b; }));
  r.add("nn.equal", binary([](double a, double b) { return a == b ? 1.0 : 0.0; },
                           [](int64_t a, int64_t b) -> int64_t { return a == b; }));
}

} // namespace peft::ref
