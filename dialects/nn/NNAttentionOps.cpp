//===- NNAttentionOps.cpp - verifier of nn.attention ----------------------===//
#include "dialects/nn/NNOps.h"

#include "mlir/IR/TypeUtilities.h"
#include "llvm/ADT/STLExtras.h"

using namespace mlir;
using namespace peft::nn;

namespace {

std::string shapeStr(ArrayRef<int64_t> shape) {
  std::string s = "[";
  llvm::interleave(
      shape, [&](int64_t d) { s += std::to_string(d); }, [&] { s += ", "; });
  return s + "]";
}

} // namespace

int64_t AttentionOp::getGroupSize() {
  return getQuery().getType().getDimSize(1) / getKey().getType().getDimSize(1);
}

int64_t AttentionOp::getPrefixLength() {
  Value prefix = getPrefixKey();
  return prefix ? cast<RankedTensorType>(prefix.getType()).getDimSize(1) : 0;
}

LogicalResult AttentionOp::verify() {
  auto q = cast<RankedTensorType>(getQuery().getType());
  auto k = cast<RankedTensorType>(getKey().getType());
  auto v = cast<RankedTensorType>(getValue().getType());
  Type elementType = q.getElementType();
  auto sameElement = [&](Value operand, StringRef name) -> LogicalResult {
    if (getElementTypeOrSelf(operand.getType()) != elementType)
      return emitOpError() << name << " element type "
                           << getElementTypeOrSelf(operand.getType())
                           << " differs from the query's " << elementType;
    return success();
  };
  if (q.getRank() != 4 || k.getRank() != 4 || v.getRank() != 4)
    return emitOpError("needs query [B, H, T, D] and key, value [B, Hkv, S, "
                       "D], got query ")
           << shapeStr(q.getShape()) << ", key " << shapeStr(k.getShape())
           << ", value " << shapeStr(v.getShape());
  if (failed(sameElement(getKey(), "key")) ||
      failed(sameElement(getValue(), "value")))
    return failure();
  int64_t batch = q.getDimSize(0), heads = q.getDimSize(1),
          queries = q.getDimSize(2), depth = q.getDimSize(3);
  int64_t kvHeads = k.getDimSize(1), keys = k.getDimSize(2);
  if (k.getShape() != v.getShape())
    return emitOpError("key ") << shapeStr(k.getShape()) << " and value "
                               << shapeStr(v.getShape()) << " shapes differ";
  if (k.getDimSize(0) != batch || k.getDimSize(3) != depth)
    return emitOpError("key/value ")
           << shapeStr(k.getShape()) << " must be [B=" << batch
           << ", Hkv, S, D=" << depth << "] for query "
           << shapeStr(q.getShape());
  if (kvHeads < 1 || heads % kvHeads != 0)
    return emitOpError("query heads ")
           << heads << " are not a multiple of key/value heads " << kvHeads;

  if (Value mask = getMask()) {
    if (failed(sameElement(mask, "mask")))
      return failure();
    ArrayRef<int64_t> m = cast<RankedTensorType>(mask.getType()).getShape();
    SmallVector<int64_t> full{batch, heads, queries, keys};
    bool broadcastable = m.size() <= full.size();
    for (size_t i = 0; broadcastable && i < m.size(); ++i) {
      int64_t target = full[full.size() - m.size() + i];
      broadcastable = m[i] == 1 || m[i] == target;
    }
    if (!broadcastable)
      return emitOpError("mask ") << shapeStr(m) << " does not broadcast to "
                                  << shapeStr(full) << " [B, H, T, S]";
  }

  Value prefixKey = getPrefixKey(), prefixValue = getPrefixValue();
  if (bool(prefixKey) != bool(prefixValue))
    return emitOpError("needs both prefix_key and prefix_value or neither");
  if (prefixKey) {
    if (failed(sameElement(prefixKey, "prefix_key")) ||
        failed(sameElement(prefixValue, "prefix_value")))
      return failure();
    ArrayRef<int64_t> pk =
        cast<RankedTensorType>(prefixKey.getType()).getShape();
    ArrayRef<int64_t> pv =
        cast<RankedTensorType>(prefixValue.getType()).getShape();
    if (pk != pv)
      return emitOpError("prefix_key ") << shapeStr(pk) << " and prefix_value "
                                        << shapeStr(pv) << " shapes differ";
    if (pk.size() != 3 || pk[0] != kvHeads || pk[2] != depth)
      return emitOpError("prefix_key/prefix_value ")
             << shapeStr(pk) << " must be [Hkv=" << kvHeads
             << ", P, D=" << depth << "]";
  }
  return success();
}
