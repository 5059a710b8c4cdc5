//===- LinalgKernels.cpp - matmul and convolution -------------------------===//
#include "codegen/reference/Kernels.h"

using namespace mlir;

namespace peft::ref {
namespace {

/// numpy matmul with broadcast batch dims; 1-D operands are promoted.
FailureOr<Tensor> matmul(Operation *op, ArrayRef<Tensor> in,
                         const EvalContext &ctx) {
  Shape as = in[0].shape(), bs = in[1].shape();
  if (as.size() == 1)
    as.insert(as.begin(), 1);
  if (bs.size() == 1)
    bs.push_back(1);
  int64_t m = as[as.size() - 2], k = as.back(), n = bs.back();
  Shape aBatch(as.begin(), as.end() - 2), bBatch(bs.begin(), bs.end() - 2);
  Shape batch(std::max(aBatch.size(), bBatch.size()), 1);
  for (size_t i = 0; i < batch.size(); ++i) {
    size_t ia = i + aBatch.size() - batch.size(), ib = i + bBatch.size() - batch.size();
    int64_t da = i >= batch.size() - aBatch.size() ? aBatch[ia] : 1;
    int64_t db = i >= batch.size() - bBatch.size() ? bBatch[ib] : 1;
    batch[i] = std::max(da, db);
  }
  BroadcastMap amap(aBatch, batch), bmap(bBatch, batch);
  Tensor out(ctx.storageType(op->getResult(0)), resultShape(op));
  int64_t batchCount = numElements(batch);
  bool isInt = !isFloat(in[0].dtype());
  for (int64_t bi = 0; bi < batchCount; ++bi) {
    int64_t aOff = amap(bi) * m * k, bOff = bmap(bi) * k * n;
    for (int64_t i = 0; i < m; ++i)
      for (int64_t j = 0; j < n; ++j) {
        int64_t o = (bi * m + i) * n + j;
        if (isInt) {
          int64_t acc = 0;
          for (int64_t p = 0; p < k; ++p)
            acc += in[0].getInt(aOff + i * k + p) * in[1].getInt(bOff + p * n + j);
          out.setInt(o, acc);
        } else {
          double acc = 0;
          for (int64_t p = 0; p < k; ++p)
            acc += in[0].getDouble(aOff + i * k + p) * in[1].getDouble(bOff + p * n + j);
          out.setDouble(o, acc);
        }
      }
  }
  return out;
}

} // namespace

void registerLinalgKernels(KernelRegistry &r) {
  r.add("nn.matmul", singleResult(matmul));
}

} // namespace peft::ref
