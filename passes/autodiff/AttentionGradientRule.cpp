//===- AttentionGradientRule.cpp - gradient rule of nn.attention ----------===//
//
// With K, V the keys and values widened to [B, H, P + S, D] (prefix
// concatenated, KV heads repeated), P = softmax(scale·Q·Kᵀ + mask) and
// O = P·V, for dO:
//   dP = dO·Vᵀ,  dL = P ⊙ (dP − Σ_j dP ⊙ P),
//   dQ = scale·dL·K,  dK = scale·dLᵀ·Q,  dV = Pᵀ·dO,  dmask = dL,
// then dK and dV are summed over each KV head's query heads, the prefix
// rows summed over the batch, and dmask's prefix columns dropped. P is
// recomputed from the inputs rather than kept, as flash-attention backward
// does, so the forward op keeps no [T, S] activation.
//
//===----------------------------------------------------------------------===//
#include "passes/autodiff/AttentionGradientRule.h"

#include "passes/lowering/ExpandAttention.h"

using namespace mlir;

namespace peft::autodiff {

void attentionGrad(GradientBuilder &g) {
  auto op = g.as<nn::AttentionOp>();
  auto index = [&](unsigned odsOperand) -> std::optional<unsigned> {
    auto [start, length] = op.getODSOperandIndexAndLength(odsOperand);
    if (length == 0)
      return std::nullopt;
    return start;
  };
  std::optional<unsigned> maskAt = index(3), prefixKeyAt = index(4),
                          prefixValueAt = index(5);
  auto needs = [&](std::optional<unsigned> i) { return i && g.needs(*i); };
  bool keyGrads = g.needs(1) || needs(prefixKeyAt);
  bool valueGrads = g.needs(2) || needs(prefixValueAt);
  if (!g.needs(0) && !keyGrads && !valueGrads && !needs(maskAt))
    return;

  lowering::ExpandedAttention e = lowering::expandAttention(g, op);
  Value dOut = g.dout(), probs = e.probs;
  double scale = op.getScaleValue();
  int64_t kvHeads = GradientBuilder::shapeOf(op.getKey())[1];
  int64_t prefixLength = op.getPrefixLength();

  // [B, Hkv, P + S, D] -> the prefix's [Hkv, P, D] (summed over the batch)
  // and the real rows [B, Hkv, S, D].
  auto split = [&](Value widened, unsigned realAt,
                   std::optional<unsigned> prefixAt) {
    Value grouped = lowering::sumHeadGroups(g, widened, kvHeads);
    SmallVector<int64_t> shape(GradientBuilder::shapeOf(grouped));
    if (prefixLength == 0)
      return g.setGrad(realAt, grouped);
    int64_t keys = shape[2] - prefixLength;
    if (needs(prefixAt)) {
      Value rows =
          g.slice(grouped, {0, 0, 0, 0},
                  {shape[0], shape[1], prefixLength, shape[3]}, {1, 1, 1, 1});
      g.setGrad(*prefixAt, g.reduceSum(rows, {0}, /*keepdims=*/false));
    }
    if (g.needs(realAt))
      g.setGrad(realAt,
                g.slice(grouped, {0, 0, prefixLength, 0},
                        {shape[0], shape[1], keys, shape[3]}, {1, 1, 1, 1}));
  };

  if (valueGrads)
    split(g.matmul(probs, dOut, true, false), 2, prefixValueAt);
  if (!g.needs(0) && !keyGrads && !needs(maskAt))
    return;
  Value dProbs = g.matmul(dOut, e.values, false, true);
  Value dLogits = g.mul(
      probs,
      g.sub(dProbs, g.reduceSum(g.mul(dProbs, probs), {3}, /*keepdims=*/true)));
  if (needs(maskAt)) {
    SmallVector<int64_t> shape(GradientBuilder::shapeOf(dLogits));
    Value real = dLogits;
    if (prefixLength > 0) {
      shape[3] -= prefixLength;
      real = g.slice(dLogits, {0, 0, 0, prefixLength}, shape, {1, 1, 1, 1});
    }
    g.setGrad(*maskAt, real);
  }
  Value dScores = scale == 1.0 ? dLogits : g.scale(dLogits, scale);
  if (g.needs(0))
    g.setGrad(0, g.matmul(dScores, e.keys, false, false));
  if (keyGrads)
    split(g.matmul(dScores, op.getQuery(), true, false), 1, prefixKeyAt);
}

} // namespace peft::autodiff
