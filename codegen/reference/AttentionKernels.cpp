//===- AttentionKernels.cpp - nn.attention --------------------------------===//
//
// Each query row in double: logits over the prefix keys, then the real keys
// (scaled dot products plus the mask, -inf where causal hides a key),
// softmax shifted by the row maximum, and the probability-weighted sum of
// the values. The dot products accumulate in the order nn.matmul's kernel
// uses, so the raised graph evaluates as the graph it replaced (to rounding
// in the scale and mask additions).
//
//===----------------------------------------------------------------------===//
#include "codegen/reference/Kernels.h"

#include "dialects/nn/NNOps.h"

#include <cmath>

using namespace mlir;

namespace peft::ref {
namespace {

/// Numpy-broadcast view of the mask over [B, H, T, S].
class MaskView {
public:
  MaskView(const Tensor *mask, const Shape &full)
      : mask_(mask), map_(mask ? mask->shape() : Shape{}, full) {}
  double at(int64_t linear) const {
    return mask_ ? mask_->getDouble(map_(linear)) : 0.0;
  }

private:
  const Tensor *mask_;
  BroadcastMap map_;
};

LogicalResult attention(Operation *raw, ArrayRef<Tensor> in,
                        SmallVectorImpl<Tensor> &out, const EvalContext &ctx) {
  auto op = cast<nn::AttentionOp>(raw);
  auto operand = [&](unsigned odsIndex) -> const Tensor * {
    auto [start, length] = op.getODSOperandIndexAndLength(odsIndex);
    return length ? &in[start] : nullptr;
  };
  const Tensor &q = *operand(0), &k = *operand(1), &v = *operand(2);
  const Tensor *mask = operand(3), *prefixKey = operand(4),
               *prefixValue = operand(5);
  int64_t batch = q.shape()[0], heads = q.shape()[1], queries = q.shape()[2],
          depth = q.shape()[3];
  int64_t kvHeads = k.shape()[1], keys = k.shape()[2];
  int64_t group = heads / kvHeads;
  int64_t prefixLength = prefixKey ? prefixKey->shape()[1] : 0;
  int64_t total = prefixLength + keys;
  double scale = op.getScaleValue();
  bool causal = op.getCausal();
  MaskView maskAt(mask, Shape{batch, heads, queries, keys});

  Tensor result(ctx.storageType(op.getResult()), q.shape());
  std::vector<double> logits(total);
  for (int64_t b = 0; b < batch; ++b)
    for (int64_t h = 0; h < heads; ++h) {
      int64_t kvHead = h / group;
      // Row j of the widened keys or values.
      auto row = [&](const Tensor &real, const Tensor *prefix, int64_t j,
                     int64_t d) {
        if (j < prefixLength)
          return prefix->getDouble((kvHead * prefixLength + j) * depth + d);
        return real.getDouble(
            ((b * kvHeads + kvHead) * keys + j - prefixLength) * depth + d);
      };
      for (int64_t t = 0; t < queries; ++t) {
        int64_t qRow = ((b * heads + h) * queries + t) * depth;
        double max = -INFINITY;
        for (int64_t j = 0; j < total; ++j) {
          double dot = 0;
          for (int64_t d = 0; d < depth; ++d)
            dot += q.getDouble(qRow + d) * row(k, prefixKey, j, d);
          double logit = dot * scale;
          if (j >= prefixLength) {
            int64_t s = j - prefixLength;
            logit += maskAt.at(((b * heads + h) * queries + t) * keys + s);
            if (causal && s > t + keys - queries)
              logit = -INFINITY;
          }
          logits[j] = logit;
          max = std::max(max, logit);
        }
        double sum = 0;
        for (int64_t j = 0; j < total; ++j)
          sum += std::exp(logits[j] - max);
        for (int64_t d = 0; d < depth; ++d) {
          double acc = 0;
          for (int64_t j = 0; j < total; ++j)
            acc += std::exp(logits[j] - max) / sum * row(v, prefixValue, j, d);
          result.setDouble(qRow + d, acc);
        }
      }
    }
  out.push_back(std::move(result));
  return success();
}

} // namespace

void registerAttentionKernels(KernelRegistry &r) {
  r.add("nn.attention", attention);
}

} // namespace peft::ref
