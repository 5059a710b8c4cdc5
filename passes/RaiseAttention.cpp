//===- RaiseAttention.cpp - the attention pattern as one nn.attention -----===//
//
// Matches softmax(Q·Kᵀ·c + masks)·V as torch.onnx writes it for the
// transformer, ViT and speech encoders of test/models (Passes.td lists the
// accepted forms) and replaces it by nn.attention, which prefix tuning
// extends and the fused kernels implement. Matching reads the IR only; the
// rewrite starts once the whole pattern is known, so a pattern that does not
// match leaves no trace.
//
//===----------------------------------------------------------------------===//
#include "passes/Passes.h"

#include "codegen/reference/Evaluator.h"
#include "passes/autodiff/GradientRules.h"

#include "mlir/IR/TypeUtilities.h"
#include "llvm/ADT/SetVector.h"

#include <cmath>
#include <numeric>

namespace peft {
#define GEN_PASS_DEF_RAISEATTENTION
#include "passes/Passes.h.inc"
} // namespace peft

using namespace mlir;
using namespace peft;

namespace {

// The gradient builder's helpers create nn ops with inferred types at the
// raised op's location; no cotangents are involved.
using B = autodiff::GradientBuilder;

ArrayRef<int64_t> shapeOf(Value v) {
  return cast<RankedTensorType>(v.getType()).getShape();
}

/// The one value of a constant that holds a single value (one element, or a
/// splat), as a double.
std::optional<double> uniformConstant(Value v) {
  auto constant = v.getDefiningOp<nn::ConstantOp>();
  if (!constant)
    return std::nullopt;
  auto dense = dyn_cast<DenseElementsAttr>(constant.getValue());
  if (!dense || !dense.isSplat())
    return std::nullopt;
  Type et = dense.getElementType();
  if (isa<FloatType>(et))
    return dense.getSplatValue<APFloat>().convertToDouble();
  if (auto it = dyn_cast<IntegerType>(et); it && it.getWidth() > 1)
    return (double)dense.getSplatValue<APInt>().getSExtValue();
  return std::nullopt;
}

/// The value of a one-element tensor computed from constants alone (an
/// exporter's sqrt(head_dim) chain, which import does not fold), in double
/// as the f64 reference evaluation computes it.
std::optional<double> scalarConstant(Value v, int depth = 0) {
  auto type = dyn_cast<RankedTensorType>(v.getType());
  if (!type || type.getNumElements() != 1 || depth > 8)
    return std::nullopt;
  Operation *def = v.getDefiningOp();
  if (!def)
    return std::nullopt;
  if (isa<nn::ConstantOp>(def))
    return uniformConstant(v);
  auto operand = [&](unsigned i) {
    return scalarConstant(def->getOperand(i), depth + 1);
  };
  if (isa<nn::CastOp>(def)) {
    std::optional<double> x = operand(0);
    if (x && isa<IntegerType>(getElementTypeOrSelf(type)))
      return std::trunc(*x);
    return x;
  }
  if (isa<nn::SqrtOp, nn::ReciprocalOp, nn::NegOp>(def)) {
    std::optional<double> x = operand(0);
    if (!x)
      return std::nullopt;
    if (isa<nn::SqrtOp>(def))
      return std::sqrt(*x);
    return isa<nn::ReciprocalOp>(def) ? 1.0 / *x : -*x;
  }
  if (isa<nn::AddOp, nn::SubOp, nn::MulOp, nn::DivOp, nn::PowOp>(def) &&
      isa<FloatType>(getElementTypeOrSelf(type))) {
    std::optional<double> a = operand(0), b = operand(1);
    if (!a || !b)
      return std::nullopt;
    if (isa<nn::AddOp>(def))
      return *a + *b;
    if (isa<nn::SubOp>(def))
      return *a - *b;
    if (isa<nn::MulOp>(def))
      return *a * *b;
    if (isa<nn::DivOp>(def))
      return *a / *b;
    return std::pow(*a, *b);
  }
  return std::nullopt;
}

/// When `op` multiplies or divides `x` by a constant scalar without
/// changing its shape, `x` and the factor it applies.
std::optional<std::pair<Value, double>> scaling(Operation *op) {
  if (!op || !isa<nn::MulOp, nn::DivOp>(op))
    return std::nullopt;
  Value lhs = op->getOperand(0), rhs = op->getOperand(1);
  Type type = op->getResult(0).getType();
  if (lhs.getType() == type)
    if (std::optional<double> c = scalarConstant(rhs)) {
      if (isa<nn::MulOp>(op))
        return std::make_pair(lhs, *c);
      if (*c != 0)
        return std::make_pair(lhs, 1.0 / *c);
    }
  if (isa<nn::MulOp>(op) && rhs.getType() == type)
    if (std::optional<double> c = scalarConstant(lhs))
      return std::make_pair(rhs, *c);
  return std::nullopt;
}

/// Whether numpy broadcasting stretches `from` to exactly `to`.
bool shapeBroadcastsTo(ArrayRef<int64_t> from, ArrayRef<int64_t> to) {
  if (from.size() > to.size())
    return false;
  size_t lead = to.size() - from.size();
  for (size_t i = 0; i < from.size(); ++i)
    if (from[i] != 1 && from[i] != to[lead + i])
      return false;
  return true;
}

/// Whether `mask` is a float tensor of `logits`' element type that numpy
/// broadcasting stretches to `logits`' shape.
bool broadcastsTo(Value mask, Value logits) {
  return getElementTypeOrSelf(mask.getType()) ==
             getElementTypeOrSelf(logits.getType()) &&
         shapeBroadcastsTo(shapeOf(mask), shapeOf(logits));
}

/// The largest boolean buffer read to recognise a causal table (GPT-2's
/// 1024 x 1024).
constexpr int64_t kMaxTableElements = int64_t(1) << 24;

/// A boolean constant seen through slices and reshapes (the causal table a
/// GPT-2 export slices out of its [1, 1, 1024, 1024] buffer).
std::optional<std::vector<bool>> constantBools(Value v, int depth = 0) {
  if (depth > 8)
    return std::nullopt;
  Operation *def = v.getDefiningOp();
  if (auto constant = dyn_cast_or_null<nn::ConstantOp>(def)) {
    auto dense = dyn_cast<DenseElementsAttr>(constant.getValue());
    if (!dense || !dense.getElementType().isInteger(1))
      return std::nullopt;
    auto values = dense.getValues<bool>();
    return std::vector<bool>(values.begin(), values.end());
  }
  // A frozen buffer (GPT-2's `attn.bias` where the exporter kept it as an
  // initializer): its bytes are fixed for the compiled program.
  if (auto use = dyn_cast_or_null<pir::UseOp>(def)) {
    auto param = SymbolTable::lookupNearestSymbolFrom<pir::ParamOp>(
        use, use.getParamAttr());
    auto type = cast<RankedTensorType>(v.getType());
    if (!param || param.getTrainable() || !type.getElementType().isInteger(1) ||
        type.getNumElements() > kMaxTableElements)
      return std::nullopt;
    FailureOr<Tensor> table =
        ref::Evaluator(use->getParentOfType<ModuleOp>()).paramValue(use);
    if (failed(table))
      return std::nullopt;
    std::vector<bool> out(table->numel());
    for (int64_t i = 0; i < table->numel(); ++i)
      out[i] = table->getInt(i) != 0;
    return out;
  }
  if (auto reshape = dyn_cast_or_null<nn::ReshapeOp>(def))
    return constantBools(reshape.getInput(), depth + 1);
  auto slice = dyn_cast_or_null<nn::SliceOp>(def);
  if (!slice)
    return std::nullopt;
  std::optional<std::vector<bool>> in =
      constantBools(slice.getInput(), depth + 1);
  if (!in)
    return std::nullopt;
  ArrayRef<int64_t> inShape = shapeOf(slice.getInput());
  ArrayRef<int64_t> starts = slice.getStarts(), steps = slice.getSteps();
  RankedTensorType outType = slice.getResult().getType();
  ArrayRef<int64_t> outShape = outType.getShape();
  std::vector<bool> out(outType.getNumElements());
  SmallVector<int64_t> idx(outShape.size(), 0);
  for (int64_t linear = 0; linear < (int64_t)out.size(); ++linear) {
    int64_t rest = linear, from = 0;
    for (int64_t d = outShape.size() - 1; d >= 0; --d) {
      idx[d] = rest % outShape[d];
      rest /= outShape[d];
    }
    for (size_t d = 0; d < outShape.size(); ++d)
      from = from * inShape[d] + starts[d] + idx[d] * steps[d];
    out[linear] = (*in)[from];
  }
  return out;
}

/// Whether `cond` (true = keep the logit) is the causal table for logits
/// [..., T, S], T <= S: key s visible to query t iff s <= t + S - T.
bool isCausalTable(Value cond, bool keepWhenTrue, ArrayRef<int64_t> logits) {
  ArrayRef<int64_t> shape = shapeOf(cond);
  int64_t rank = logits.size(), queries = logits[rank - 2],
          keys = logits[rank - 1];
  if (shape.size() < 2 || queries > keys ||
      shape.take_back(2) != logits.take_back(2) ||
      llvm::any_of(shape.drop_back(2), [](int64_t d) { return d != 1; }))
    return false;
  std::optional<std::vector<bool>> table = constantBools(cond);
  if (!table)
    return false;
  for (int64_t t = 0; t < queries; ++t)
    for (int64_t s = 0; s < keys; ++s)
      if ((*table)[t * keys + s] != ((s <= t + keys - queries) == keepWhenTrue))
        return false;
  return true;
}

/// One mask term in the order the graph applies them: an additive tensor,
/// or where(cond, logits, fill) (`keepWhenTrue`) / where(cond, fill,
/// logits).
struct MaskTerm {
  Value additive;
  Value cond, fill;
  bool keepWhenTrue = true;
};

/// How the keys reach Q·Kᵀ: K = transpose(source, perm) ([.., S, D]).
struct KeySource {
  Value source;
  SmallVector<int64_t> perm;
  bool identity() const {
    for (size_t i = 0; i < perm.size(); ++i)
      if (perm[i] != (int64_t)i)
        return false;
    return true;
  }
};

struct Match {
  Value query;
  KeySource key;
  Value value;
  double scale = 1.0;
  SmallVector<MaskTerm> masks;
  /// The pattern's ops from the output towards the inputs: erased when the
  /// rewrite leaves them unused.
  SmallVector<Operation *> ops;
};

/// Peels constant scalings off `v` (each an op whose result only the
/// pattern reads) into `m.scale`.
Value peelScaling(Value v, Match &m) {
  while (v.hasOneUse()) {
    auto s = scaling(v.getDefiningOp());
    if (!s)
      break;
    m.ops.push_back(v.getDefiningOp());
    m.scale *= s->second;
    v = s->first;
  }
  return v;
}

/// Q·Kᵀ: `mm` of rank 3 or 4 with matching batch dims.
std::optional<Match> matchScores(nn::MatMulOp mm) {
  int64_t rank = mm.getResult().getType().getRank();
  if (mm.getTransposeLhs() || (rank != 3 && rank != 4) ||
      shapeOf(mm.getLhs()).size() != (size_t)rank ||
      shapeOf(mm.getRhs()).size() != (size_t)rank)
    return std::nullopt;
  Match m;
  m.ops.push_back(mm);
  m.query = peelScaling(mm.getLhs(), m);
  Value keyT = peelScaling(mm.getRhs(), m);
  SmallVector<int64_t> swap(rank);
  std::iota(swap.begin(), swap.end(), 0);
  std::swap(swap[rank - 2], swap[rank - 1]);
  if (mm.getTransposeRhs()) {
    SmallVector<int64_t> identity(rank);
    std::iota(identity.begin(), identity.end(), 0);
    m.key = {keyT, identity};
  } else if (auto t = keyT.getDefiningOp<nn::TransposeOp>();
             t && keyT.hasOneUse()) {
    m.ops.push_back(t);
    Value source = peelScaling(t.getInput(), m);
    // K = transpose(Kᵀ, swap) = transpose(source, perm ∘ swap).
    SmallVector<int64_t> perm;
    for (int64_t i : swap)
      perm.push_back(t.getPerm()[i]);
    m.key = {source, perm};
  } else {
    m.key = {keyT, swap};
  }
  if (shapeOf(m.query).take_front(rank - 2) !=
      shapeOf(mm.getResult()).take_front(rank - 2))
    return std::nullopt;
  return m;
}

/// The logits below the softmax: masks, then (further from the softmax)
/// scalings, then Q·Kᵀ. `scaled`: a scaling was met nearer the softmax, so
/// no mask may follow (it would scale the mask).
std::optional<Match> matchLogits(Value x, bool scaled, int depth) {
  Operation *def = x.getDefiningOp();
  if (!def || !x.hasOneUse() || depth > 16)
    return std::nullopt;
  if (auto mm = dyn_cast<nn::MatMulOp>(def))
    return matchScores(mm);
  if (auto s = scaling(def)) {
    std::optional<Match> m = matchLogits(s->first, true, depth + 1);
    if (m) {
      m->scale *= s->second;
      m->ops.insert(m->ops.begin(), def);
    }
    return m;
  }
  if (scaled)
    return std::nullopt;
  if (isa<nn::AddOp>(def)) {
    for (unsigned side : {0u, 1u}) {
      Value logits = def->getOperand(side), mask = def->getOperand(1 - side);
      if (logits.getType() != x.getType() || !broadcastsTo(mask, x))
        continue;
      if (std::optional<Match> m = matchLogits(logits, false, depth + 1)) {
        m->masks.push_back({mask, {}, {}, true});
        m->ops.insert(m->ops.begin(), def);
        return m;
      }
    }
    return std::nullopt;
  }
  if (auto where = dyn_cast<nn::WhereOp>(def)) {
    for (bool keepWhenTrue : {true, false}) {
      Value logits = keepWhenTrue ? where.getLhs() : where.getRhs();
      Value fill = keepWhenTrue ? where.getRhs() : where.getLhs();
      std::optional<double> f = uniformConstant(fill);
      // A fill this low masks as adding it does: x + fill rounds to fill
      // in f32 and f64 alike for any logit below 1e20 in magnitude.
      if (logits.getType() != x.getType() || !f || *f > -1e30 ||
          getElementTypeOrSelf(fill.getType()) !=
              getElementTypeOrSelf(x.getType()) ||
          !broadcastsTo(fill, x) ||
          !shapeBroadcastsTo(shapeOf(where.getCondition()), shapeOf(x)))
        continue;
      if (std::optional<Match> m = matchLogits(logits, false, depth + 1)) {
        m->masks.push_back({{}, where.getCondition(), fill, keepWhenTrue});
        m->ops.insert(m->ops.begin(), def);
        return m;
      }
    }
  }
  return std::nullopt;
}

/// K or V [B, H, S, D] built by repeating KV heads (reshape to
/// [B, Hkv, 1, S, D], broadcast_to [B, Hkv, G, S, D], reshape): the
/// [B, Hkv, S, D] tensor before the repeat, and the repeat's ops.
std::optional<std::pair<Value, SmallVector<Operation *>>>
unrepeatHeads(Value x) {
  auto merge = x.getDefiningOp<nn::ReshapeOp>();
  if (!merge)
    return std::nullopt;
  auto expand = merge.getInput().getDefiningOp<nn::BroadcastToOp>();
  if (!expand)
    return std::nullopt;
  auto split = expand.getInput().getDefiningOp<nn::ReshapeOp>();
  if (!split)
    return std::nullopt;
  ArrayRef<int64_t> out = shapeOf(x), repeated = shapeOf(expand.getResult()),
                    one = shapeOf(split.getResult()),
                    in = shapeOf(split.getInput());
  if (out.size() != 4 || repeated.size() != 5 || in.size() != 4 ||
      one != ArrayRef<int64_t>{in[0], in[1], 1, in[2], in[3]} ||
      repeated != ArrayRef<int64_t>{in[0], in[1], repeated[2], in[2], in[3]} ||
      out != ArrayRef<int64_t>{in[0], in[1] * repeated[2], in[2], in[3]})
    return std::nullopt;
  return std::make_pair(split.getInput(),
                        SmallVector<Operation *>{merge, expand, split});
}

/// For rank-3 attention ([B·H, T, D]): the [B, H] that the reshapes
/// flattening Q, K and V agree on, else [1, B·H].
std::pair<int64_t, int64_t> headSplit(ArrayRef<Value> flattened) {
  int64_t n = shapeOf(flattened.front())[0];
  std::optional<std::pair<int64_t, int64_t>> agreed;
  for (Value v : flattened) {
    auto reshape = v.getDefiningOp<nn::ReshapeOp>();
    ArrayRef<int64_t> in =
        reshape ? shapeOf(reshape.getInput()) : ArrayRef<int64_t>{};
    ArrayRef<int64_t> flat = shapeOf(v);
    if (in.size() != 4 || in[0] * in[1] != n ||
        in.take_back(2) != flat.drop_front())
      return {1, n};
    std::pair<int64_t, int64_t> split{in[0], in[1]};
    if (agreed && *agreed != split)
      return {1, n};
    agreed = split;
  }
  return *agreed;
}

/// Replaces the matched pattern ending in `output` (the product with V) by
/// nn.attention; false (and no change) when the operands do not fit it.
bool rewrite(Match &m, nn::MatMulOp output) {
  int64_t rank = shapeOf(m.query).size();
  ArrayRef<int64_t> q = shapeOf(m.query);
  // Shapes as they will be once K is materialised.
  SmallVector<int64_t> keyShape;
  for (int64_t i : m.key.perm)
    keyShape.push_back(shapeOf(m.key.source)[i]);
  ArrayRef<int64_t> v = shapeOf(m.value);
  if (keyShape.size() != (size_t)rank || v.size() != (size_t)rank ||
      ArrayRef<int64_t>(keyShape).drop_back(2) != q.drop_back(2) ||
      keyShape.back() != q.back() || ArrayRef<int64_t>(keyShape) != v ||
      !isa<FloatType>(getElementTypeOrSelf(m.query.getType())) ||
      getElementTypeOrSelf(m.key.source.getType()) !=
          getElementTypeOrSelf(m.query.getType()) ||
      getElementTypeOrSelf(m.value.getType()) !=
          getElementTypeOrSelf(m.query.getType()))
    return false;
  ArrayRef<int64_t> logits = shapeOf(output.getLhs());

  OpBuilder builder(output);
  B g(builder, output, {}, llvm::SmallBitVector(output->getNumOperands()));
  Value query = m.query, value = m.value;
  Value key =
      m.key.identity() ? m.key.source : g.transpose(m.key.source, m.key.perm);
  bool causal = false;
  Value mask;
  Type elementType = getElementTypeOrSelf(query.getType());
  for (const MaskTerm &term : m.masks) {
    Value additive = term.additive;
    if (!additive) {
      if (!causal && isCausalTable(term.cond, term.keepWhenTrue, logits)) {
        causal = true;
        continue;
      }
      Value zero = g.splat(RankedTensorType::get({}, elementType), 0.0);
      additive = term.keepWhenTrue ? g.where(term.cond, zero, term.fill)
                                   : g.where(term.cond, term.fill, zero);
    }
    mask = mask ? g.add(mask, additive) : additive;
  }

  if (rank == 3) {
    std::pair<int64_t, int64_t> split = headSplit({query, key, value});
    int64_t batch = split.first, heads = split.second;
    auto lift = [&](Value x) {
      ArrayRef<int64_t> s = shapeOf(x);
      SmallVector<int64_t> lifted{batch, heads, s[1], s[2]};
      auto reshape = x.getDefiningOp<nn::ReshapeOp>();
      if (reshape && shapeOf(reshape.getInput()) == ArrayRef(lifted))
        return Value(reshape.getInput());
      return g.reshape(x, lifted);
    };
    query = lift(query);
    key = lift(key);
    value = lift(value);
    if (mask) {
      SmallVector<int64_t> s(shapeOf(mask));
      while (s.size() < 3)
        s.insert(s.begin(), 1);
      if (s[0] == 1)
        s.insert(s.begin(), 1);
      else
        s = {batch, heads, s[1], s[2]};
      mask = g.reshape(mask, s);
    }
  } else {
    // Grouped-query attention: read K and V before the head repeat.
    auto k = unrepeatHeads(key), vv = unrepeatHeads(value);
    if (k && vv && shapeOf(k->first) == shapeOf(vv->first)) {
      key = k->first;
      value = vv->first;
      m.ops.append(k->second);
      m.ops.append(vv->second);
    }
  }
  auto attention = builder.create<nn::AttentionOp>(
      output.getLoc(), query, key, value, mask, Value(), Value(),
      builder.getF64FloatAttr(m.scale), builder.getBoolAttr(causal));
  Value result = attention.getResult();
  if (rank == 3)
    result = g.reshape(result, shapeOf(output.getResult()));
  output.getResult().replaceAllUsesWith(result);
  return true;
}

struct RaiseAttentionPass
    : public peft::impl::RaiseAttentionBase<RaiseAttentionPass> {
  void runOnOperation() override {
    SmallVector<nn::SoftmaxOp> softmaxes;
    getOperation().walk([&](nn::SoftmaxOp op) { softmaxes.push_back(op); });
    for (nn::SoftmaxOp softmax : softmaxes) {
      int64_t rank = softmax.getResult().getType().getRank();
      if ((int64_t)softmax.getAxis() != rank - 1 ||
          !softmax.getResult().hasOneUse())
        continue;
      auto output =
          dyn_cast<nn::MatMulOp>(*softmax.getResult().getUsers().begin());
      if (!output || output.getLhs() != softmax.getResult() ||
          output.getTransposeLhs() || output.getTransposeRhs())
        continue;
      std::optional<Match> m =
          matchLogits(softmax.getInput(), /*scaled=*/false, 0);
      if (!m)
        continue;
      m->value = output.getRhs();
      m->ops.insert(m->ops.begin(),
                    {output.getOperation(), softmax.getOperation()});
      if (!rewrite(*m, output))
        continue;
      // Erase the pattern's ops that nothing reads any more, users first,
      // and the side-effect free ops (nn ops, peft.use) that only fed them,
      // such as the constant chain of a scale or a causal table.
      llvm::SetVector<Operation *> pending(m->ops.begin(), m->ops.end());
      for (bool erased = true; erased;) {
        erased = false;
        for (Operation *op : pending)
          if (op->use_empty()) {
            pending.remove(op);
            for (Value operand : op->getOperands())
              if (Operation *def = operand.getDefiningOp();
                  def && (isa<nn::NNDialect>(def->getDialect()) ||
                          isa<pir::UseOp>(def)))
                pending.insert(def);
            op->erase();
            erased = true;
            break;
          }
      }
    }
  }
};

} // namespace
