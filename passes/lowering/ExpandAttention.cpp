//===- ExpandAttention.cpp - nn.attention as GEMMs and a softmax ----------===//
#include "passes/lowering/ExpandAttention.h"

#include "mlir/IR/TypeUtilities.h"

#include <cmath>

using namespace mlir;

namespace peft::lowering {
namespace {

using B = autodiff::GradientBuilder;

/// concat(prefix broadcast over the batch, x) along the sequence axis, then
/// each KV head repeated for its `group` query heads.
Value widen(B &g, Value x, Value prefix, int64_t group) {
  SmallVector<int64_t> shape(B::shapeOf(x));
  int64_t batch = shape[0], kvHeads = shape[1], depth = shape[3];
  if (prefix) {
    int64_t p = B::shapeOf(prefix)[1];
    Value batched = g.broadcastTo(g.reshape(prefix, {1, kvHeads, p, depth}),
                                  {batch, kvHeads, p, depth});
    x = g.create("nn.concat", {batched, x}, {g.i64("axis", 2)});
    shape[2] += p;
  }
  if (group == 1)
    return x;
  int64_t len = shape[2];
  Value repeated = g.broadcastTo(g.reshape(x, {batch, kvHeads, 1, len, depth}),
                                 {batch, kvHeads, group, len, depth});
  return g.reshape(repeated, {batch, kvHeads * group, len, depth});
}

/// The additive mask over all P + S keys: the op's mask broadcast to its key
/// extent and padded with P zero columns in front.
Value widenMask(B &g, Value mask, int64_t keys, int64_t prefixLength) {
  SmallVector<int64_t> shape(B::shapeOf(mask));
  while (shape.size() < 4)
    shape.insert(shape.begin(), 1);
  mask = g.reshape(mask, shape);
  if (prefixLength == 0)
    return mask;
  shape[3] = keys;
  mask = g.broadcastTo(mask, shape);
  return g.pad(mask, {0, 0, 0, prefixLength}, {0, 0, 0, 0});
}

/// 0 where query t sees key j, -inf where `causal` hides it: [T, P + S].
Value causalMask(B &g, Type elementType, int64_t queries, int64_t keys,
                 int64_t prefixLength) {
  auto type =
      RankedTensorType::get({queries, prefixLength + keys}, elementType);
  auto floatType = cast<FloatType>(elementType);
  APFloat zero = APFloat::getZero(floatType.getFloatSemantics());
  APFloat hidden =
      APFloat::getInf(floatType.getFloatSemantics(), /*Negative=*/true);
  SmallVector<APFloat> values;
  values.reserve(type.getNumElements());
  for (int64_t t = 0; t < queries; ++t)
    for (int64_t j = 0; j < prefixLength + keys; ++j) {
      bool hide = j >= prefixLength && j - prefixLength > t + keys - queries;
      values.push_back(hide ? hidden : zero);
    }
  return g.create("nn.constant", {},
                  {g.attr("value", DenseElementsAttr::get(type, values))},
                  type);
}

} // namespace

ExpandedAttention expandAttention(B &g, nn::AttentionOp op) {
  ExpandedAttention e;
  ArrayRef<int64_t> q = B::shapeOf(op.getQuery());
  int64_t queries = q[2], keys = B::shapeOf(op.getKey())[2];
  int64_t group = op.getGroupSize(), prefixLength = op.getPrefixLength();
  e.keys = widen(g, op.getKey(), op.getPrefixKey(), group);
  e.values = widen(g, op.getValue(), op.getPrefixValue(), group);
  Value logits = g.matmul(op.getQuery(), e.keys, false, true);
  // x·1 is x: no multiply where the graph had none (unscaled scores).
  if (op.getScaleValue() != 1.0)
    logits = g.scale(logits, op.getScaleValue());
  if (Value mask = op.getMask())
    logits = g.add(logits, widenMask(g, mask, keys, prefixLength));
  if (op.getCausal())
    logits = g.add(logits, causalMask(g, getElementTypeOrSelf(logits.getType()),
                                      queries, keys, prefixLength));
  e.probs = g.create("nn.softmax", {logits}, {g.i64("axis", 3)});
  e.result = g.matmul(e.probs, e.values, false, false);
  return e;
}

Value sumHeadGroups(B &g, Value value, int64_t kvHeads) {
  SmallVector<int64_t> shape(B::shapeOf(value));
  if (shape[1] == kvHeads)
    return value;
  Value grouped = g.reshape(
      value, {shape[0], kvHeads, shape[1] / kvHeads, shape[2], shape[3]});
  return g.reduceSum(grouped, {2}, /*keepdims=*/false);
}

} // namespace peft::lowering
