//===- GradientRules.cpp - one gradient rule per op -----------------------===//
//
// Notation in the rules: x, y = forward operand/result, dy = the result's
// cotangent, dx = what the rule builds. Rules only ask for the operands that
// need a gradient; broadcasting is undone by setGrad, which sums cotangents
// back to each operand's shape.
//
//===----------------------------------------------------------------------===//
#include "passes/autodiff/GradientRules.h"
#include "passes/autodiff/AttentionGradientRule.h"
#include "passes/autodiff/ReftGradientRules.h"
#include "passes/autodiff/SparseGradientRules.h"

#include "dialects/nn/NNOps.h"
#include "dialects/peft/PeftOps.h"

#include "mlir/IR/TypeUtilities.h"
#include "mlir/Interfaces/InferTypeOpInterface.h"
#include "llvm/ADT/STLExtras.h"
#include "llvm/ADT/StringExtras.h"
#include "llvm/ADT/StringMap.h"
#include "llvm/Support/raw_ostream.h"

#include <cmath>
#include <numeric>

using namespace mlir;

namespace peft::autodiff {

//===----------------------------------------------------------------------===//
// GradientBuilder
//===----------------------------------------------------------------------===//

GradientBuilder::GradientBuilder(OpBuilder &builder, Operation *op,
                                 ArrayRef<Value> resultGrads,
                                 const llvm::SmallBitVector &needsGrad)
    : b_(builder), op_(op), resultGrads_(resultGrads), needsGrad_(needsGrad),
      operandGrads_(op->getNumOperands()) {}

ArrayRef<int64_t> GradientBuilder::shapeOf(Value v) {
  return cast<RankedTensorType>(v.getType()).getShape();
}

void GradientBuilder::fail(const Twine &message) {
  if (!failed_)
    op_->emitError("cannot differentiate '")
        << op_->getName() << "': " << message;
  failed_ = true;
}

void GradientBuilder::setGrad(unsigned i, Value grad) {
  if (failed_ || !grad || !needs(i))
    return;
  auto type = cast<RankedTensorType>(in(i).getType());
  if (!isa<FloatType>(type.getElementType()))
    return;
  grad = sumTo(grad, type.getShape());
  if (failed_)
    return;
  if (grad.getType() != type) {
    std::string msg;
    llvm::raw_string_ostream os(msg);
    os << "the gradient of operand " << i << " is " << grad.getType()
       << ", expected " << type;
    return fail(msg);
  }
  Value &slot = operandGrads_[i];
  slot = slot ? add(slot, grad) : grad;
}

Value GradientBuilder::create(StringRef opName, ValueRange operands,
                              ArrayRef<NamedAttribute> attrs, Type type) {
  // After a failure the pass discards the function: build nothing more, and
  // hand back any value so the rule can run to its end.
  Value fallback = operands.empty() ? Value() : operands.front();
  if (failed_)
    return fallback;
  MLIRContext *ctx = b_.getContext();
  std::optional<RegisteredOperationName> name =
      RegisteredOperationName::lookup(opName, ctx);
  if (!name) {
    fail("its gradient needs '" + opName + "', which is not registered");
    return fallback;
  }
  OperationState state(op_->getLoc(), *name);
  state.addOperands(operands);
  state.addAttributes(attrs);
  if (type) {
    state.addTypes(type);
  } else {
    auto *infer = name->getInterface<InferTypeOpInterface>();
    SmallVector<Type> types;
    if (!infer ||
        mlir::failed(infer->inferReturnTypes(
            ctx, op_->getLoc(), operands, state.attributes.getDictionary(ctx),
            OpaqueProperties(nullptr), RegionRange(), types))) {
      fail("building '" + opName + "' for its gradient failed");
      return fallback;
    }
    state.addTypes(types);
  }
  return b_.create(state)->getResult(0);
}

NamedAttribute GradientBuilder::attr(StringRef name, Attribute value) {
  return b_.getNamedAttr(name, value);
}
NamedAttribute GradientBuilder::i64s(StringRef name, ArrayRef<int64_t> v) {
  return attr(name, b_.getDenseI64ArrayAttr(v));
}
NamedAttribute GradientBuilder::i64(StringRef name, int64_t v) {
  return attr(name, b_.getI64IntegerAttr(v));
}
NamedAttribute GradientBuilder::str(StringRef name, StringRef v) {
  return attr(name, b_.getStringAttr(v));
}

Value GradientBuilder::splat(Type type, double value) {
  auto tensor = cast<RankedTensorType>(type);
  Type et = tensor.getElementType();
  Attribute element = isa<FloatType>(et)
                          ? Attribute(b_.getFloatAttr(et, value))
                          : Attribute(b_.getIntegerAttr(et, (int64_t)value));
  return create("nn.constant", {},
                {attr("value", DenseElementsAttr::get(tensor, element))},
                tensor);
}

Value GradientBuilder::scalar(double value, Value like) {
  Type et = getElementTypeOrSelf(like.getType());
  // A rule's constants are real numbers (a LoRA scale, 1/n, gelu's
  // coefficients). One the element type cannot hold exactly is made in f64
  // and cast: a step evaluated in f64 (parity with PyTorch's f64 runs) then
  // uses it exactly, and compiled code folds the cast to the same rounding a
  // direct constant would have.
  if (auto ft = dyn_cast<FloatType>(et); ft && ft.getWidth() < 64) {
    bool lost = false;
    APFloat v(value);
    v.convert(ft.getFloatSemantics(), APFloat::rmNearestTiesToEven, &lost);
    if (lost)
      return castTo(splat(RankedTensorType::get({}, b_.getF64Type()), value),
                    et);
  }
  return splat(RankedTensorType::get({}, et), value);
}

Value GradientBuilder::castTo(Value v, Type elementType) {
  return create("nn.cast", {v}, {},
                RankedTensorType::get(shapeOf(v), elementType));
}

Value GradientBuilder::reshape(Value v, ArrayRef<int64_t> shape) {
  if (shapeOf(v) == shape)
    return v;
  return create(
      "nn.reshape", {v}, {},
      RankedTensorType::get(shape, getElementTypeOrSelf(v.getType())));
}

Value GradientBuilder::broadcastTo(Value v, ArrayRef<int64_t> shape) {
  if (shapeOf(v) == shape)
    return v;
  return create(
      "nn.broadcast_to", {v}, {},
      RankedTensorType::get(shape, getElementTypeOrSelf(v.getType())));
}

Value GradientBuilder::reduceSum(Value v, ArrayRef<int64_t> axes,
                                 bool keepdims) {
  SmallVector<NamedAttribute> attrs{i64s("axes", axes)};
  if (keepdims)
    attrs.push_back(attr("keepdims", b_.getUnitAttr()));
  return create("nn.reduce_sum", {v}, attrs);
}

Value GradientBuilder::transpose(Value v, ArrayRef<int64_t> perm) {
  return create("nn.transpose", {v}, {i64s("perm", perm)});
}

Value GradientBuilder::slice(Value v, ArrayRef<int64_t> starts,
                             ArrayRef<int64_t> sizes, ArrayRef<int64_t> steps) {
  return create(
      "nn.slice", {v},
      {i64s("starts", starts), i64s("sizes", sizes), i64s("steps", steps)});
}

Value GradientBuilder::pad(Value v, ArrayRef<int64_t> low,
                           ArrayRef<int64_t> high) {
  if (llvm::all_of(low, [](int64_t p) { return p == 0; }) &&
      llvm::all_of(high, [](int64_t p) { return p == 0; }))
    return v;
  return create(
      "nn.pad", {v},
      {str("mode", "constant"), i64s("low", low), i64s("high", high)});
}

Value GradientBuilder::matmul(Value a, Value b, bool transposeA,
                              bool transposeB) {
  SmallVector<NamedAttribute> attrs;
  if (transposeA)
    attrs.push_back(attr("transpose_lhs", b_.getBoolAttr(true)));
  if (transposeB)
    attrs.push_back(attr("transpose_rhs", b_.getBoolAttr(true)));
  return create("nn.matmul", {a, b}, attrs);
}

Value GradientBuilder::sumTo(Value v, ArrayRef<int64_t> shape) {
  ArrayRef<int64_t> from = shapeOf(v);
  if (from == shape || failed_)
    return v;
  if (from.size() < shape.size()) {
    fail("a cotangent of rank " + Twine(from.size()) +
         " cannot be summed to rank " + Twine(shape.size()));
    return v;
  }
  size_t lead = from.size() - shape.size();
  SmallVector<int64_t> axes;
  for (size_t i = 0; i < from.size(); ++i)
    if (i < lead || (shape[i - lead] == 1 && from[i] != 1))
      axes.push_back(i);
  if (!axes.empty())
    v = reduceSum(v, axes, /*keepdims=*/true);
  return reshape(v, shape);
}

Value GradientBuilder::unreduce(Value grad, Value input,
                                ArrayRef<int64_t> axes) {
  SmallVector<int64_t> kept(shapeOf(input));
  for (int64_t a : axes)
    kept[a] = 1;
  return broadcastTo(reshape(grad, kept), shapeOf(input));
}

//===----------------------------------------------------------------------===//
// Rules
//===----------------------------------------------------------------------===//

namespace {

using G = GradientBuilder;

constexpr double kPi = 3.14159265358979323846;

/// dx = dy * f'(x), for elementwise f.
void chain(G &g, Value derivative) {
  g.setGrad(0, g.mul(g.dout(), derivative));
}

Value positive(G &g, Value x) {
  return g.create("nn.greater", {x, g.scalar(0, x)});
}

SmallVector<int64_t> iota(int64_t from, int64_t to) {
  SmallVector<int64_t> v(to - from);
  std::iota(v.begin(), v.end(), from);
  return v;
}

SmallVector<int64_t> inversePermutation(ArrayRef<int64_t> perm) {
  SmallVector<int64_t> inv(perm.size());
  for (auto [i, p] : llvm::enumerate(perm))
    inv[p] = i;
  return inv;
}

int64_t product(ArrayRef<int64_t> dims) {
  return std::accumulate(dims.begin(), dims.end(), int64_t(1),
                         std::multiplies<int64_t>());
}

// --- elementwise ------------------------------------------------------------

/// d/dx gelu: Phi(x) + x phi(x) exactly; the tanh form differentiates its
/// own approximation, as PyTorch does.
void geluGrad(G &g) {
  Value x = g.in(0);
  if (g.as<nn::GeluOp>().getApproximate() == "tanh") {
    const double k = std::sqrt(2.0 / kPi), c = 0.044715;
    Value x2 = g.mul(x, x);
    Value t =
        g.unary("nn.tanh", g.scale(g.mul(x, g.shift(g.scale(x2, c), 1.0)), k));
    Value du = g.scale(g.shift(g.scale(x2, 3 * c), 1.0), k);
    Value dt = g.mul(g.shift(g.neg(g.mul(t, t)), 1.0), du);
    return chain(g, g.scale(g.add(g.shift(t, 1.0), g.mul(x, dt)), 0.5));
  }
  Value cdf = g.scale(
      g.shift(g.unary("nn.erf", g.scale(x, 1.0 / std::sqrt(2.0))), 1.0), 0.5);
  Value pdf = g.scale(g.unary("nn.exp", g.scale(g.mul(x, x), -0.5)),
                      1.0 / std::sqrt(2.0 * kPi));
  chain(g, g.add(cdf, g.mul(x, pdf)));
}

/// max/min: the winner takes the cotangent, ties split it evenly (as
/// PyTorch's maximum/minimum): lhs share = (1 +- sign(a - b)) / 2.
void extremumGrad(G &g, double direction) {
  Value a = g.in(0), b = g.in(1);
  Value lhsShare =
      g.shift(g.scale(g.unary("nn.sign", g.sub(a, b)), 0.5 * direction), 0.5);
  if (g.needs(0))
    g.setGrad(0, g.mul(g.dout(), lhsShare));
  if (g.needs(1))
    g.setGrad(1, g.mul(g.dout(), g.shift(g.neg(lhsShare), 1.0)));
}

void powGrad(G &g) {
  Value a = g.in(0), b = g.in(1), dy = g.dout();
  if (g.needs(0))
    g.setGrad(0,
              g.mul(dy, g.mul(b, g.create("nn.pow", {a, g.shift(b, -1.0)}))));
  // d/db a^b = a^b log a; PyTorch takes it as 0 at a = 0 (where log a is
  // -inf but a^b is 0 for b > 0).
  if (g.needs(1)) {
    Value atZero = g.create("nn.equal", {a, g.scalar(0, a)});
    Value logA = g.where(atZero, g.scalar(0, a), g.unary("nn.log", a));
    g.setGrad(1, g.mul(dy, g.mul(g.out(), logA)));
  }
}

// --- shape ------------------------------------------------------------------

/// Places dy back at the positions the slice read, zeros elsewhere:
/// reverse negative steps, spread strided ones with zeros between, pad.
void sliceGrad(G &g) {
  auto s = g.as<nn::SliceOp>();
  ArrayRef<int64_t> inShape = G::shapeOf(g.in(0)), starts = s.getStarts(),
                    sizes = s.getSizes(), steps = s.getSteps();
  size_t rank = inShape.size();
  SmallVector<int64_t> first(rank), stride(rank), revStarts(rank, 0),
      revSteps(rank, 1);
  bool reversed = false, strided = false;
  for (size_t d = 0; d < rank; ++d) {
    stride[d] = std::abs(steps[d]);
    first[d] = steps[d] < 0 ? starts[d] + (sizes[d] - 1) * steps[d] : starts[d];
    if (steps[d] < 0 && sizes[d] > 1) {
      revStarts[d] = sizes[d] - 1;
      revSteps[d] = -1;
      reversed = true;
    }
    strided |= stride[d] > 1 && sizes[d] > 0;
  }
  Value dx = g.dout();
  if (reversed)
    dx = g.slice(dx, revStarts, sizes, revSteps);
  if (strided) {
    // [.., k, ..] -> [.., k, 1, ..] -> pad to [.., k, s, ..] -> [.., k*s, ..]
    SmallVector<int64_t> split, high, merged;
    for (size_t d = 0; d < rank; ++d) {
      split.push_back(sizes[d]);
      high.push_back(0);
      merged.push_back(sizes[d] * stride[d]);
      if (stride[d] > 1) {
        split.push_back(1);
        high.push_back(stride[d] - 1);
      }
    }
    SmallVector<int64_t> low(split.size(), 0);
    dx = g.reshape(g.pad(g.reshape(dx, split), low, high), merged);
  }
  SmallVector<int64_t> high(rank);
  for (size_t d = 0; d < rank; ++d)
    high[d] =
        inShape[d] - first[d] - sizes[d] * std::max<int64_t>(stride[d], 1);
  g.setGrad(0, g.pad(dx, first, high));
}

void concatGrad(G &g) {
  int64_t axis = g.as<nn::ConcatOp>().getAxis(), offset = 0;
  for (unsigned i = 0; i < g.op()->getNumOperands(); ++i) {
    ArrayRef<int64_t> shape = G::shapeOf(g.in(i));
    if (g.needs(i)) {
      SmallVector<int64_t> starts(shape.size(), 0), steps(shape.size(), 1);
      starts[axis] = offset;
      g.setGrad(i, g.slice(g.dout(), starts, shape, steps));
    }
    offset += shape[axis];
  }
}

/// Scatter-adds dy into zeros of the table: the index dims of dy move to the
/// front so one scatter_nd (the embedding backward) serves every axis.
void gatherGrad(G &g) {
  int64_t axis = g.as<nn::GatherOp>().getAxis();
  Value data = g.in(0), indices = g.in(1);
  ArrayRef<int64_t> dataShape = G::shapeOf(data),
                    idxShape = G::shapeOf(indices);
  int64_t q = idxShape.size(), rank = dataShape.size();
  Value dy = g.dout();
  SmallVector<int64_t> front = iota(axis, axis + q);
  front.append(iota(0, axis));
  front.append(iota(axis + q, axis + q + rank - 1 - axis));
  if (axis > 0)
    dy = g.transpose(dy, front);
  SmallVector<int64_t> table{dataShape[axis]};
  table.append(dataShape.begin(), dataShape.begin() + axis);
  table.append(dataShape.begin() + axis + 1, dataShape.end());
  SmallVector<int64_t> tuples(idxShape);
  tuples.push_back(1);
  Value zeros = g.splat(
      RankedTensorType::get(table, getElementTypeOrSelf(data.getType())));
  Value dx = g.create("nn.scatter_nd", {zeros, g.reshape(indices, tuples), dy},
                      {g.str("reduction", "add")});
  if (axis > 0) {
    SmallVector<int64_t> back;
    for (int64_t d = 0; d < rank; ++d)
      back.push_back(d < axis ? d + 1 : d == axis ? 0 : d);
    dx = g.transpose(dx, back);
  }
  g.setGrad(0, dx);
}

/// Scatters with `reduction` none overwrite: the overwritten data gets no
/// gradient and each update gets the cotangent at its target.
template <bool ND> void scatterGrad(G &g) {
  StringRef reduction = g.op()->getAttrOfType<StringAttr>("reduction");
  if (reduction != "none" && reduction != "add")
    return g.fail("scatter with reduction '" + reduction +
                  "' has no gradient rule");
  Value indices = g.in(1), updates = g.in(2), dy = g.dout();
  SmallVector<NamedAttribute> axis;
  if (!ND)
    axis.push_back(g.attr("axis", g.op()->getAttr("axis")));
  if (g.needs(0)) {
    SmallVector<NamedAttribute> attrs(axis);
    attrs.push_back(g.attr("reduction", g.op()->getAttr("reduction")));
    g.setGrad(0,
              reduction == "add"
                  ? dy
                  : g.create(ND ? "nn.scatter_nd" : "nn.scatter_elements",
                             {dy, indices, g.splat(updates.getType())}, attrs));
  }
  if (g.needs(2)) {
    if (ND)
      axis.push_back(g.i64("batch_dims", 0));
    g.setGrad(2, g.create(ND ? "nn.gather_nd" : "nn.gather_elements",
                          {dy, indices}, axis));
  }
}

/// edge/reflect/wrap pads read input elements several times; the input
/// cotangent gathers them back one dim at a time (the index map is a
/// product of per-dim maps).
Value unpadDim(G &g, Value dy, int64_t d, int64_t n, int64_t low, int64_t high,
               StringRef mode) {
  SmallVector<int64_t> shape(G::shapeOf(dy));
  size_t rank = shape.size();
  auto part = [&](int64_t start, int64_t size) {
    SmallVector<int64_t> starts(rank, 0), sizes(shape), steps(rank, 1);
    starts[d] = start;
    sizes[d] = size;
    return g.slice(dy, starts, sizes, steps);
  };
  auto reversed = [&](Value v) {
    SmallVector<int64_t> starts(rank, 0), sizes(G::shapeOf(v)), steps(rank, 1);
    starts[d] = sizes[d] - 1;
    steps[d] = -1;
    return g.slice(v, starts, sizes, steps);
  };
  auto place = [&](Value v, int64_t before, int64_t after) {
    SmallVector<int64_t> lo(rank, 0), hi(rank, 0);
    lo[d] = before;
    hi[d] = after;
    return g.pad(v, lo, hi);
  };
  Value dx = part(low, n);
  if (low > 0) {
    Value l = part(0, low);
    if (mode == "edge")
      l = place(g.reduceSum(l, {d}, true), 0, n - 1);
    else if (mode == "reflect")
      l = place(reversed(l), 1, n - 1 - low);
    else
      l = place(l, n - low, 0);
    dx = g.add(dx, l);
  }
  if (high > 0) {
    Value h = part(low + n, high);
    if (mode == "edge")
      h = place(g.reduceSum(h, {d}, true), n - 1, 0);
    else if (mode == "reflect")
      h = place(reversed(h), n - 1 - high, 1);
    else
      h = place(h, 0, n - high);
    dx = g.add(dx, h);
  }
  return dx;
}

void padGrad(G &g) {
  auto p = g.as<nn::PadOp>();
  ArrayRef<int64_t> low = p.getLow(), high = p.getHigh(),
                    inShape = G::shapeOf(g.in(0));
  StringRef mode = p.getMode();
  if (mode == "constant") {
    SmallVector<int64_t> cropLow, cropHigh;
    for (auto [l, h] : llvm::zip(low, high)) {
      cropLow.push_back(-l);
      cropHigh.push_back(-h);
    }
    Value dx = g.pad(g.dout(), cropLow, cropHigh);
    g.setGrad(0, dx);
    // The fill value's cotangent: everything that did not come from x.
    if (p.getValue() && g.needs(1)) {
      SmallVector<int64_t> all = iota(0, inShape.size());
      Value fill =
          g.sub(g.reduceSum(g.dout(), all, false), g.reduceSum(dx, all, false));
      g.setGrad(1, g.reshape(fill, G::shapeOf(g.in(1))));
    }
    return;
  }
  Value dx = g.dout();
  for (int64_t d = inShape.size() - 1; d >= 0; --d) {
    int64_t n = inShape[d];
    if (low[d] < 0 || high[d] < 0 ||
        (mode == "reflect" && std::max(low[d], high[d]) >= n) ||
        (mode == "wrap" && std::max(low[d], high[d]) > n))
      return g.fail("pad mode '" + mode + "' by " + Twine(low[d]) + " and " +
                    Twine(high[d]) + " along a dim of " + Twine(n) +
                    " has no gradient rule");
    if (low[d] || high[d])
      dx = unpadDim(g, dx, d, n, low[d], high[d], mode);
  }
  g.setGrad(0, dx);
}

/// d off = sum of dy where the index is absent, d on = where it is present.
void oneHotGrad(G &g) {
  auto o = g.as<nn::OneHotOp>();
  Value values = g.in(1), dy = g.dout();
  auto valuesType = cast<RankedTensorType>(values.getType());
  Type et = valuesType.getElementType();
  Attribute onOff =
      DenseElementsAttr::get(valuesType, {Attribute(FloatAttr::get(et, 0.0)),
                                          Attribute(FloatAttr::get(et, 1.0))});
  Value unit =
      g.create("nn.constant", {}, {g.attr("value", onOff)}, valuesType);
  Value hot =
      g.create("nn.one_hot", {g.in(0), unit},
               {g.i64("depth", o.getDepth()), g.i64("axis", o.getAxis())});
  SmallVector<int64_t> all = iota(0, G::shapeOf(dy).size());
  Value on = g.reduceSum(g.mul(dy, hot), all, false);
  Value off = g.sub(g.reduceSum(dy, all, false), on);
  g.setGrad(1, g.create("nn.concat", {g.reshape(off, {1}), g.reshape(on, {1})},
                        {g.i64("axis", 0)}));
}

// --- reductions -------------------------------------------------------------

template <typename OpT> ArrayRef<int64_t> axesOf(G &g) {
  return g.as<OpT>().getAxes();
}

/// d/dx_i prod = product of the other elements: y / x_i where x_i != 0; at
/// a zero, the product of the nonzero rest if it is the only zero, else 0.
void reduceProdGrad(G &g) {
  auto r = g.as<nn::ReduceProdOp>();
  ArrayRef<int64_t> axes = r.getAxes();
  Value x = g.in(0), zero = g.scalar(0, x), one = g.scalar(1, x);
  Value isZero = g.create("nn.equal", {x, zero});
  Value nonzero = g.where(isZero, one, x);
  Value zeros = g.reduceSum(g.castTo(isZero, getElementTypeOrSelf(x.getType())),
                            axes, true);
  Value rest = g.create("nn.reduce_prod", {nonzero},
                        {g.i64s("axes", axes),
                         g.attr("keepdims", UnitAttr::get(r.getContext()))});
  Value atZero = g.where(g.create("nn.equal", {zeros, one}), rest, zero);
  Value others =
      g.where(isZero, atZero, g.div(g.unreduce(g.out(), x, axes), nonzero));
  g.setGrad(0, g.mul(g.unreduce(g.dout(), x, axes), others));
}

/// max/min reductions: the cotangent goes to the extreme elements, split
/// evenly among ties (PyTorch's amax/amin).
template <typename OpT> void extremeReduceGrad(G &g) {
  ArrayRef<int64_t> axes = axesOf<OpT>(g);
  Value x = g.in(0);
  Value hit = g.castTo(g.create("nn.equal", {x, g.unreduce(g.out(), x, axes)}),
                       getElementTypeOrSelf(x.getType()));
  Value ties = g.reduceSum(hit, axes, /*keepdims=*/true);
  g.setGrad(0, g.mul(g.div(g.unreduce(g.dout(), x, axes), ties), hit));
}

// --- normalisation ----------------------------------------------------------

void layerNormGrad(G &g) {
  auto ln = g.as<nn::LayerNormOp>();
  Value x = g.in(0), scale = g.in(1), mean = g.out(1), inv = g.out(2);
  ArrayRef<int64_t> shape = G::shapeOf(x);
  SmallVector<int64_t> axes = iota(ln.getAxis(), shape.size());
  double n = product(shape.drop_front(ln.getAxis()));
  Value xhat = g.mul(g.sub(x, mean), inv);
  Value dy = g.dout(0), dmean = g.dout(1), dinv = g.dout(2);
  if (dy) {
    if (g.needs(1))
      g.setGrad(1, g.mul(dy, xhat));
    if (ln.getBias())
      g.setGrad(2, dy);
  }
  if (!g.needs(0))
    return;
  // dx = inv * (dxhat - mean(dxhat) - xhat * mean(dxhat * xhat))
  Value dx;
  auto accumulate = [&](Value term) { dx = dx ? g.add(dx, term) : term; };
  if (dy) {
    Value dxhat = g.mul(dy, scale);
    Value m1 = g.scale(g.reduceSum(dxhat, axes, true), 1.0 / n);
    Value m2 = g.scale(g.reduceSum(g.mul(dxhat, xhat), axes, true), 1.0 / n);
    accumulate(g.mul(inv, g.sub(g.sub(dxhat, m1), g.mul(xhat, m2))));
  }
  // The statistics are outputs too: d mean/dx = 1/n, d inv/dx = -inv^2 xhat/n.
  if (dmean)
    accumulate(g.broadcastTo(g.scale(dmean, 1.0 / n), shape));
  if (dinv)
    accumulate(g.mul(g.mul(dinv, g.mul(inv, inv)), g.scale(xhat, -1.0 / n)));
  g.setGrad(0, dx);
}

// --- linear algebra ---------------------------------------------------------

/// With A' = op(a), B' = op(b): dA' = dy B'^T and dB' = A'^T dy, written with
/// transpose flags so no transpose is materialised; 1-D operands are lifted
/// to matrices as numpy does and summed back after.
void matmulGrad(G &g) {
  auto m = g.as<nn::MatMulOp>();
  bool ta = m.getTransposeLhs(), tb = m.getTransposeRhs();
  Value a = g.in(0), b = g.in(1), dy = g.dout();
  ArrayRef<int64_t> aShape = G::shapeOf(a), bShape = G::shapeOf(b);
  bool aVec = aShape.size() == 1, bVec = bShape.size() == 1;
  SmallVector<int64_t> dyShape(G::shapeOf(dy));
  if (bVec)
    dyShape.push_back(1);
  if (aVec)
    dyShape.insert(dyShape.end() - 1, 1);
  if (aVec)
    a = g.reshape(a, {1, aShape[0]});
  if (bVec)
    b = g.reshape(b, {bShape[0], 1});
  dy = g.reshape(dy, dyShape);
  if (g.needs(0)) {
    Value da = ta ? g.matmul(b, dy, tb, true) : g.matmul(dy, b, false, !tb);
    g.setGrad(0, g.reshape(g.sumTo(da, G::shapeOf(a)), aShape));
  }
  if (g.needs(1) && !ta && G::shapeOf(a).size() > 2 && bShape.size() == 2) {
    // A Linear layer's weight: fold the batch dims of x and dy into rows, so
    // dW is one GEMM over all tokens rather than a batched GEMM and a sum.
    ArrayRef<int64_t> rowsA = G::shapeOf(a), rowsDy = G::shapeOf(dy);
    int64_t rows = product(rowsA.drop_back());
    Value a2 = g.reshape(a, {rows, rowsA.back()});
    Value dy2 = g.reshape(dy, {rows, rowsDy.back()});
    g.setGrad(1, tb ? g.matmul(dy2, a2, true, false)
                    : g.matmul(a2, dy2, true, false));
  } else if (g.needs(1)) {
    Value db = tb ? g.matmul(dy, a, true, ta) : g.matmul(a, dy, !ta, false);
    g.setGrad(1, g.reshape(g.sumTo(db, G::shapeOf(b)), bShape));
  }
}

SmallVector<NamedAttribute> windowAttrs(G &g, bool withGroup) {
  SmallVector<NamedAttribute> attrs;
  for (StringRef name : {"strides", "pads", "dilations"})
    attrs.push_back(g.attr(name, g.op()->getAttr(name)));
  if (withGroup)
    attrs.push_back(g.attr("group", g.op()->getAttr("group")));
  return attrs;
}

void biasGrad(G &g, unsigned operand) {
  if (g.op()->getNumOperands() > operand && g.needs(operand)) {
    SmallVector<int64_t> axes = iota(0, G::shapeOf(g.dout()).size());
    axes.erase(axes.begin() + 1);
    g.setGrad(operand, g.reduceSum(g.dout(), axes, false));
  }
}

/// dx is the transposed convolution of dy (output_padding restores the
/// rows the forward's floor dropped); dW is conv_weight_grad.
void convGrad(G &g) {
  auto c = g.as<nn::ConvOp>();
  Value x = g.in(0), w = g.in(1), dy = g.dout();
  if (g.needs(0)) {
    ArrayRef<int64_t> in = G::shapeOf(x), k = G::shapeOf(w),
                      out = G::shapeOf(dy), s = c.getStrides(), p = c.getPads(),
                      d = c.getDilations();
    size_t n = s.size();
    SmallVector<int64_t> outputPadding;
    for (size_t i = 0; i < n; ++i)
      outputPadding.push_back(in[i + 2] -
                              (s[i] * (out[i + 2] - 1) + d[i] * (k[i + 2] - 1) +
                               1 - p[i] - p[i + n]));
    SmallVector<NamedAttribute> attrs = windowAttrs(g, true);
    attrs.push_back(g.i64s("output_padding", outputPadding));
    g.setGrad(0, g.create("nn.conv_transpose", {dy, w}, attrs));
  }
  if (g.needs(1))
    g.setGrad(1, g.create("nn.conv_weight_grad", {x, dy}, windowAttrs(g, true),
                          w.getType()));
  biasGrad(g, 2);
}

/// conv_transpose is the adjoint of the convolution with the same weight:
/// its input cotangent is that convolution of dy, its weight cotangent the
/// convolution's weight gradient with dy as input.
void convTransposeGrad(G &g) {
  auto c = g.as<nn::ConvTransposeOp>();
  Value x = g.in(0), w = g.in(1), dy = g.dout();
  for (auto [pad, stride] : llvm::zip(c.getOutputPadding(), c.getStrides()))
    if (pad >= stride)
      return g.fail("output_padding >= stride has no gradient rule");
  if (g.needs(0))
    g.setGrad(0, g.create("nn.conv", {dy, w}, windowAttrs(g, true)));
  if (g.needs(1))
    g.setGrad(1, g.create("nn.conv_weight_grad", {dy, x}, windowAttrs(g, true),
                          w.getType()));
  biasGrad(g, 2);
}

SmallVector<NamedAttribute> poolAttrs(G &g, bool avg) {
  SmallVector<NamedAttribute> attrs = windowAttrs(g, false);
  SmallVector<StringRef> names{"kernel_shape", "ceil_mode"};
  if (avg)
    names.push_back("count_include_pad");
  for (StringRef name : names)
    if (Attribute a = g.op()->getAttr(name))
      attrs.push_back(g.attr(name, a));
  return attrs;
}

/// Each operand's cotangent is the einsum of dy with the other operands.
/// Labels only that operand has are summed in the forward, so they are
/// broadcast back; `...` dims it broadcast are summed by setGrad.
void einsumGrad(G &g) {
  auto e = g.as<nn::EinsumOp>();
  SmallVector<ArrayRef<int64_t>> shapes;
  for (Value v : e.getInputs())
    shapes.push_back(G::shapeOf(v));
  FailureOr<nn::EinsumOp::Equation> eq =
      nn::EinsumOp::resolveEquation(e.getLoc(), e.getEquation(), shapes);
  if (failed(eq))
    return g.fail("its equation does not resolve");
  // Every label gets a letter of its own, `...` dims included.
  static constexpr StringLiteral letters =
      "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
  llvm::DenseMap<unsigned, char> letterOf;
  auto spell = [&](ArrayRef<unsigned> labels) {
    std::string s;
    for (unsigned l : labels) {
      auto it = letterOf.try_emplace(
          l, letterOf.size() < letters.size() ? letters[letterOf.size()] : '?');
      s += it.first->second;
    }
    return s;
  };
  auto fullShape = [&](ArrayRef<unsigned> labels) {
    SmallVector<int64_t> shape;
    for (unsigned l : labels)
      shape.push_back(eq->sizes[l]);
    return shape;
  };
  for (unsigned i = 0; i < shapes.size(); ++i) {
    if (!g.needs(i))
      continue;
    ArrayRef<unsigned> labels = eq->operandLabels[i];
    if (llvm::SmallDenseSet<unsigned>(labels.begin(), labels.end()).size() !=
        labels.size())
      return g.fail("an operand with a repeated label (a diagonal) has no "
                    "gradient rule");
    SmallVector<Value> operands{g.dout()};
    SmallVector<std::string> terms{spell(eq->resultLabels)};
    llvm::SmallDenseSet<unsigned> present(eq->resultLabels.begin(),
                                          eq->resultLabels.end());
    for (unsigned j = 0; j < shapes.size(); ++j) {
      if (j == i)
        continue;
      ArrayRef<unsigned> other = eq->operandLabels[j];
      operands.push_back(g.broadcastTo(g.in(j), fullShape(other)));
      terms.push_back(spell(other));
      present.insert(other.begin(), other.end());
    }
    SmallVector<unsigned> kept;
    SmallVector<int64_t> keptShape;
    for (unsigned l : labels) {
      if (present.contains(l))
        kept.push_back(l);
      keptShape.push_back(present.contains(l) ? eq->sizes[l] : 1);
    }
    std::string equation = llvm::join(terms, ",") + "->" + spell(kept);
    if (letterOf.size() > letters.size())
      return g.fail("the equation has more labels than einsum has letters");
    Value d = g.create("nn.einsum", operands, {g.str("equation", equation)});
    g.setGrad(i, g.broadcastTo(g.reshape(d, keptShape), fullShape(labels)));
  }
}

// --- peft adapters ----------------------------------------------------------
//
// peft.lora / peft.dora multiply by the frozen weight as the graph does:
// W' = W (`in_out`, W: [in, out]) or Wᵀ (`out_in`, W: [out, in]). The
// low-rank path goes through its r-wide intermediates only: B·A is never
// formed, in the forward or here.

/// `v` as a matrix of rows: [..., k] -> [rows, k] (a vector is one row).
Value asRows(G &g, Value v) {
  ArrayRef<int64_t> shape = G::shapeOf(v);
  int64_t cols = shape.empty() ? 1 : shape.back();
  return g.reshape(v, {product(shape.drop_back()), cols});
}

/// x̃·W' : [..., in] -> [..., out].
Value applyWeight(G &g, Value x, Value w, bool outIn) {
  return g.matmul(x, w, false, outIn);
}

/// dy·W'ᵀ : [..., out] -> [..., in], the input cotangent through W.
Value throughWeight(G &g, Value dy, Value w, bool outIn) {
  return g.matmul(dy, w, false, !outIn);
}

/// The cotangent of W for y = x·W': one GEMM over all rows, in W's layout.
Value weightGrad(G &g, Value x, Value dy, bool outIn) {
  Value x2 = asRows(g, x), dy2 = asRows(g, dy);
  return outIn ? g.matmul(dy2, x2, true, false)
               : g.matmul(x2, dy2, true, false);
}

/// The low-rank path y += s·(x̃·Aᵀ)·Bᵀ (A = operand 2, B = operand 3) with
/// cotangent `dy`: with u = s·(dy·B) and t = x̃·Aᵀ (both [..., r]),
/// dA = uᵀ·x̃, dB = s·dyᵀ·t, and (returned when `wantInput`) dx̃ = u·A.
Value lowRankGrad(G &g, Value dy, Value xt, double s, bool wantInput) {
  Value a = g.in(2), b = g.in(3), dxt;
  if (g.needs(2) || wantInput) {
    Value u = g.scale(g.matmul(dy, b, false, false), s);
    if (g.needs(2))
      g.setGrad(2, g.matmul(asRows(g, u), asRows(g, xt), true, false));
    if (wantInput)
      dxt = g.matmul(u, a, false, false);
  }
  if (g.needs(3)) {
    Value t = g.scale(g.matmul(xt, a, false, true), s);
    g.setGrad(3, g.matmul(asRows(g, dy), asRows(g, t), true, false));
  }
  return dxt;
}

/// y = x·W' + s·(x̃·Aᵀ)·Bᵀ. The frozen weight is inactive, so it gets no
/// weight-gradient GEMM; dx still flows through it.
void loraGrad(G &g) {
  auto lora = g.as<pir::LoraOp>();
  bool outIn = lora.isWeightOutIn();
  double s = lora.getScale().convertToDouble();
  Value x = g.in(0), w = g.in(1), dy = g.dout();
  Value adapterInput = lora.getAdapterInput();
  unsigned xtIndex = adapterInput ? 4 : 0;
  Value dxt =
      lowRankGrad(g, dy, adapterInput ? adapterInput : x, s, g.needs(xtIndex));
  if (g.needs(0))
    g.setGrad(0, throughWeight(g, dy, w, outIn));
  g.setGrad(xtIndex, dxt);
  if (g.needs(1))
    g.setGrad(1, weightGrad(g, x, dy, outIn));
}

/// DoRA's n = ‖W' + s·B·A‖ per output feature (over the input axis), from
/// the expansion n² = ‖W'_o‖² + 2s·Σ_k B[o,k]·(A·W')[k,o]
/// + s²·Σ_k (B·A·Aᵀ)[o,k]·B[o,k], so only [r, out] and [r, r] products are
/// formed. n is detached: it is built from forward values and no cotangent
/// flows into it.
Value doraNorm(G &g, Value w, Value a, Value b, double s, bool outIn) {
  Value w2 = g.reduceSum(g.mul(w, w), {outIn ? 1 : 0}, false);
  Value aw = applyWeight(g, a, w, outIn);
  Value cross = g.reduceSum(g.mul(g.transpose(b, {1, 0}), aw), {0}, false);
  Value gram = g.matmul(a, a, false, true);
  Value quad =
      g.reduceSum(g.mul(g.matmul(b, gram, false, false), b), {1}, false);
  Value sq = g.add(g.add(w2, g.scale(cross, 2 * s)), g.scale(quad, s * s));
  return g.unary("nn.sqrt", sq);
}

/// y = x·W' + (c − 1)·(x̃·W') + c·s·(x̃·Aᵀ)·Bᵀ with c = m / n and n
/// detached (PEFT, DoRA paper §4.3). Without adapter_input (x̃ = x) this is
/// c·(x·W' + s·x·Aᵀ·Bᵀ). dm = Σ_rows dy·(x̃·W' + s·x̃·Aᵀ·Bᵀ) / n, which
/// recomputes x̃·W' (the forward op does not expose it).
void doraGrad(G &g) {
  auto dora = g.as<pir::DoraOp>();
  bool outIn = dora.isWeightOutIn();
  double s = dora.getScale().convertToDouble();
  Value x = g.in(0), w = g.in(1), a = g.in(2), b = g.in(3), m = g.in(4);
  Value dy = g.dout();
  Value adapterInput = dora.getAdapterInput();
  Value xt = adapterInput ? adapterInput : x;
  unsigned xtIndex = adapterInput ? 5 : 0;
  Value n = doraNorm(g, w, a, b, s, outIn);
  Value c = g.div(m, n);
  Value cdy = g.mul(dy, c);
  Value dxt = lowRankGrad(g, cdy, xt, s, g.needs(xtIndex));
  if (adapterInput) {
    // The base product sees x, the (c − 1) correction sees x̃.
    Value correction = g.mul(dy, g.shift(c, -1.0));
    if (g.needs(0))
      g.setGrad(0, throughWeight(g, dy, w, outIn));
    if (g.needs(5))
      g.setGrad(5, g.add(dxt, throughWeight(g, correction, w, outIn)));
    if (g.needs(1))
      g.setGrad(1, g.add(weightGrad(g, x, dy, outIn),
                         weightGrad(g, xt, correction, outIn)));
  } else {
    if (g.needs(0))
      g.setGrad(0, g.add(throughWeight(g, cdy, w, outIn), dxt));
    if (g.needs(1))
      g.setGrad(1, weightGrad(g, x, cdy, outIn));
  }
  if (g.needs(4)) {
    Value lowRank = g.matmul(g.matmul(xt, a, false, true), b, false, true);
    Value inner = g.add(applyWeight(g, xt, w, outIn), g.scale(lowRank, s));
    int64_t out = G::shapeOf(m)[0];
    g.setGrad(4, g.div(g.sumTo(g.mul(dy, inner), {out}), n));
  }
}

// --- losses -----------------------------------------------------------------

/// A constant of `type` (integer elements) filled with `value`.
Value intSplat(G &g, RankedTensorType type, int64_t value) {
  auto attr = DenseElementsAttr::get(
      type, IntegerAttr::get(type.getElementType(), value));
  return g.create("nn.constant", {}, {g.attr("value", attr)}, type);
}

/// d logits = (softmax(logits) − onehot(label)) · dy / count at counted
/// positions, 0 at ignored ones, where count is the number of positions
/// whose (shifted, for causal) label is not ignore_index.
void crossEntropyGrad(G &g) {
  auto ce = g.as<pir::CrossEntropyOp>();
  Value logits = g.in(0), labels = g.in(1), dy = g.dout();
  auto labelType = cast<RankedTensorType>(labels.getType());
  ArrayRef<int64_t> shape = labelType.getShape();
  int64_t rank = shape.size(), vocab = G::shapeOf(logits).back();
  int64_t ignoreIndex = ce.getIgnoredLabel();
  Type floatType = getElementTypeOrSelf(logits.getType());

  // The label each position is scored against: causal shifts the labels
  // left by one along the last axis and ignores the last position.
  Value target = labels;
  if (ce.isCausal()) {
    SmallVector<int64_t> last(shape);
    if (rank > 0)
      last.back() = 1;
    Value fill =
        intSplat(g, RankedTensorType::get(last, labelType.getElementType()),
                 ignoreIndex);
    target = fill;
    if (rank > 0 && shape.back() > 1) {
      SmallVector<int64_t> starts(rank, 0), sizes(shape), steps(rank, 1);
      starts.back() = 1;
      sizes.back() = shape.back() - 1;
      target =
          g.create("nn.concat", {g.slice(labels, starts, sizes, steps), fill},
                   {g.i64("axis", rank - 1)});
    }
  }
  RankedTensorType scalarLabel =
      RankedTensorType::get({}, labelType.getElementType());
  Value ignored =
      g.create("nn.equal", {target, intSplat(g, scalarLabel, ignoreIndex)});
  Value counted = g.castTo(g.unary("nn.not", ignored), floatType);
  Value count = rank > 0 ? g.reduceSum(counted, iota(0, rank), false) : counted;
  // Ignored labels may be anywhere (-100 would count from the end in
  // one_hot): score them against class 0, then mask the row out.
  Value safe = g.where(ignored, intSplat(g, scalarLabel, 0), target);
  auto pairType = RankedTensorType::get({2}, floatType);
  Value offOn = g.create(
      "nn.constant", {},
      {g.attr("value",
              DenseElementsAttr::get(
                  pairType, {Attribute(FloatAttr::get(floatType, 0.0)),
                             Attribute(FloatAttr::get(floatType, 1.0))}))},
      pairType);
  Value hot = g.create("nn.one_hot", {safe, offOn},
                       {g.i64("depth", vocab), g.i64("axis", rank)});
  Value probs = g.create("nn.softmax", {logits}, {g.i64("axis", rank)});
  SmallVector<int64_t> rowShape(shape);
  rowShape.push_back(1);
  Value rowScale = g.mul(g.reshape(counted, rowShape), g.div(dy, count));
  g.setGrad(0, g.mul(g.sub(probs, hot), rowScale));
}

/// d prediction = 2·(prediction − target)·dy / N, d target its negation.
void mseGrad(G &g) {
  Value pred = g.in(0), target = g.in(1);
  double n = product(G::shapeOf(pred));
  Value dpred = g.mul(g.sub(pred, target), g.scale(g.dout(), 2.0 / n));
  if (g.needs(0))
    g.setGrad(0, dpred);
  if (g.needs(1))
    g.setGrad(1, g.neg(dpred));
}

//===----------------------------------------------------------------------===//
// The table
//===----------------------------------------------------------------------===//

constexpr GradientKind Rule = GradientKind::Rule;
constexpr GradientKind None = GradientKind::NoGradient;
constexpr GradientKind BackwardOnly = GradientKind::BackwardOnly;

const GradientEntry kTable[] = {
    // Elementwise unary: dx = dy * f'(x).
    {"nn.neg", Rule, [](G &g) { g.setGrad(0, g.neg(g.dout())); }},
    {"nn.abs", Rule, [](G &g) { chain(g, g.unary("nn.sign", g.in(0))); }},
    {"nn.relu", Rule,
     [](G &g) {
       g.setGrad(
           0, g.where(positive(g, g.in(0)), g.dout(), g.scalar(0, g.dout())));
     }},
    {"nn.leaky_relu", Rule,
     [](G &g) {
       double alpha = g.as<nn::LeakyReluOp>().getAlpha().convertToDouble();
       g.setGrad(0, g.where(positive(g, g.in(0)), g.dout(),
                            g.scale(g.dout(), alpha)));
     }},
    {"nn.elu", Rule,
     [](G &g) {
       double alpha = g.as<nn::EluOp>().getAlpha().convertToDouble();
       g.setGrad(0, g.where(positive(g, g.in(0)), g.dout(),
                            g.mul(g.dout(), g.shift(g.out(), alpha))));
     }},
    {"nn.exp", Rule, [](G &g) { chain(g, g.out()); }},
    {"nn.log", Rule, [](G &g) { g.setGrad(0, g.div(g.dout(), g.in(0))); }},
    {"nn.sqrt", Rule,
     [](G &g) { g.setGrad(0, g.div(g.scale(g.dout(), 0.5), g.out())); }},
    {"nn.reciprocal", Rule,
     [](G &g) { chain(g, g.neg(g.mul(g.out(), g.out()))); }},
    {"nn.tanh", Rule,
     [](G &g) { chain(g, g.shift(g.neg(g.mul(g.out(), g.out())), 1.0)); }},
    {"nn.sigmoid", Rule,
     [](G &g) { chain(g, g.mul(g.out(), g.shift(g.neg(g.out()), 1.0))); }},
    {"nn.erf", Rule,
     [](G &g) {
       Value x = g.in(0);
       chain(g, g.scale(g.unary("nn.exp", g.neg(g.mul(x, x))),
                        2.0 / std::sqrt(kPi)));
     }},
    {"nn.gelu", Rule, geluGrad},
    {"nn.softplus", Rule,
     [](G &g) { chain(g, g.unary("nn.sigmoid", g.in(0))); }},
    {"nn.sin", Rule, [](G &g) { chain(g, g.unary("nn.cos", g.in(0))); }},
    {"nn.cos", Rule, [](G &g) { chain(g, g.neg(g.unary("nn.sin", g.in(0)))); }},
    {"nn.tan", Rule,
     [](G &g) { chain(g, g.shift(g.mul(g.out(), g.out()), 1.0)); }},
    {"nn.asin", Rule,
     [](G &g) {
       Value x = g.in(0);
       g.setGrad(0, g.div(g.dout(), g.unary("nn.sqrt",
                                            g.shift(g.neg(g.mul(x, x)), 1.0))));
     }},
    {"nn.acos", Rule,
     [](G &g) {
       Value x = g.in(0);
       g.setGrad(0, g.neg(g.div(
                        g.dout(),
                        g.unary("nn.sqrt", g.shift(g.neg(g.mul(x, x)), 1.0)))));
     }},
    {"nn.atan", Rule,
     [](G &g) {
       g.setGrad(0, g.div(g.dout(), g.shift(g.mul(g.in(0), g.in(0)), 1.0)));
     }},
    {"nn.sinh", Rule, [](G &g) { chain(g, g.unary("nn.cosh", g.in(0))); }},
    {"nn.cosh", Rule, [](G &g) { chain(g, g.unary("nn.sinh", g.in(0))); }},
    {"nn.asinh", Rule,
     [](G &g) {
       g.setGrad(
           0, g.div(g.dout(),
                    g.unary("nn.sqrt", g.shift(g.mul(g.in(0), g.in(0)), 1.0))));
     }},
    {"nn.acosh", Rule,
     [](G &g) {
       g.setGrad(
           0, g.div(g.dout(), g.unary("nn.sqrt",
                                      g.shift(g.mul(g.in(0), g.in(0)), -1.0))));
     }},
    {"nn.atanh", Rule,
     [](G &g) {
       g.setGrad(0,
                 g.div(g.dout(), g.shift(g.neg(g.mul(g.in(0), g.in(0))), 1.0)));
     }},
    // Piecewise constant, boolean or integer: no gradient flows.
    {"nn.sign", None, nullptr},
    {"nn.floor", None, nullptr},
    {"nn.ceil", None, nullptr},
    {"nn.round", None, nullptr},
    {"nn.not", None, nullptr},
    {"nn.is_nan", None, nullptr},
    {"nn.is_inf", None, nullptr},
    {"nn.constant", None, nullptr},

    // Elementwise binary (setGrad sums broadcast dims away).
    {"nn.add", Rule,
     [](G &g) {
       g.setGrad(0, g.dout());
       g.setGrad(1, g.dout());
     }},
    {"nn.sub", Rule,
     [](G &g) {
       g.setGrad(0, g.dout());
       if (g.needs(1))
         g.setGrad(1, g.neg(g.dout()));
     }},
    {"nn.mul", Rule,
     [](G &g) {
       if (g.needs(0))
         g.setGrad(0, g.mul(g.dout(), g.in(1)));
       if (g.needs(1))
         g.setGrad(1, g.mul(g.dout(), g.in(0)));
     }},
    {"nn.div", Rule,
     [](G &g) {
       if (g.needs(0))
         g.setGrad(0, g.div(g.dout(), g.in(1)));
       if (g.needs(1))
         g.setGrad(1, g.neg(g.div(g.mul(g.dout(), g.out()), g.in(1))));
     }},
    {"nn.pow", Rule, powGrad},
    {"nn.max", Rule, [](G &g) { extremumGrad(g, +1); }},
    {"nn.min", Rule, [](G &g) { extremumGrad(g, -1); }},
    // a mod b = a - b * q with q = floor(a / b) (or trunc with fmod), so
    // d/db = -q = (y - a) / b.
    {"nn.mod", Rule,
     [](G &g) {
       g.setGrad(0, g.dout());
       if (g.needs(1))
         g.setGrad(1, g.mul(g.dout(), g.div(g.sub(g.out(), g.in(0)), g.in(1))));
     }},
    {"nn.bit_shift", None, nullptr},
    {"nn.equal", None, nullptr},
    {"nn.less", None, nullptr},
    {"nn.less_equal", None, nullptr},
    {"nn.greater", None, nullptr},
    {"nn.greater_equal", None, nullptr},
    {"nn.and", None, nullptr},
    {"nn.or", None, nullptr},
    {"nn.xor", None, nullptr},
    {"nn.where", Rule,
     [](G &g) {
       Value cond = g.in(0), dy = g.dout(), zero = g.scalar(0, dy);
       if (g.needs(1))
         g.setGrad(1, g.where(cond, dy, zero));
       if (g.needs(2))
         g.setGrad(2, g.where(cond, zero, dy));
     }},
    // Only float -> float casts are active (integers carry no gradient).
    {"nn.cast", Rule,
     [](G &g) {
       g.setGrad(0,
                 g.castTo(g.dout(), getElementTypeOrSelf(g.in(0).getType())));
     }},

    // Data movement: the adjoint moves dy back.
    {"nn.reshape", Rule,
     [](G &g) { g.setGrad(0, g.reshape(g.dout(), G::shapeOf(g.in(0)))); }},
    {"nn.transpose", Rule,
     [](G &g) {
       g.setGrad(0,
                 g.transpose(g.dout(), inversePermutation(
                                           g.as<nn::TransposeOp>().getPerm())));
     }},
    {"nn.broadcast_to", Rule, [](G &g) { g.setGrad(0, g.dout()); }},
    {"nn.slice", Rule, sliceGrad},
    {"nn.concat", Rule, concatGrad},
    {"nn.pad", Rule, padGrad},
    {"nn.gather", Rule, gatherGrad},
    {"nn.gather_elements", Rule,
     [](G &g) {
       g.setGrad(0, g.create("nn.scatter_elements",
                             {g.splat(g.in(0).getType()), g.in(1), g.dout()},
                             {g.attr("axis", g.op()->getAttr("axis")),
                              g.str("reduction", "add")}));
     }},
    {"nn.gather_nd", Rule,
     [](G &g) {
       if (g.as<nn::GatherNDOp>().getBatchDims() != 0)
         return g.fail("gather_nd with batch_dims > 0 has no gradient rule");
       g.setGrad(0, g.create("nn.scatter_nd",
                             {g.splat(g.in(0).getType()), g.in(1), g.dout()},
                             {g.str("reduction", "add")}));
     }},
    {"nn.scatter_elements", Rule, scatterGrad<false>},
    {"nn.scatter_nd", Rule, scatterGrad<true>},
    {"nn.trilu", Rule,
     [](G &g) {
       auto t = g.as<nn::TriluOp>();
       g.setGrad(0, g.create("nn.trilu", {g.dout()},
                             {g.attr("upper", t.getUpperAttr()),
                              g.attr("k", t.getKAttr())}));
     }},
    // The adjoint of a running sum is the running sum the other way.
    {"nn.cumsum", Rule,
     [](G &g) {
       auto c = g.as<nn::CumSumOp>();
       g.setGrad(0,
                 g.create("nn.cumsum", {g.dout()},
                          {g.attr("axis", c.getAxisAttr()),
                           g.attr("exclusive", c.getExclusiveAttr()),
                           g.attr("reverse", BoolAttr::get(c.getContext(),
                                                           !c.getReverse()))}));
     }},
    {"nn.one_hot", Rule, oneHotGrad},

    // Reductions.
    {"nn.reduce_sum", Rule,
     [](G &g) {
       g.setGrad(0, g.unreduce(g.dout(), g.in(0), axesOf<nn::ReduceSumOp>(g)));
     }},
    {"nn.reduce_mean", Rule,
     [](G &g) {
       ArrayRef<int64_t> axes = axesOf<nn::ReduceMeanOp>(g),
                         shape = G::shapeOf(g.in(0));
       double n = 1;
       for (int64_t a : axes)
         n *= shape[a];
       g.setGrad(0, g.unreduce(g.scale(g.dout(), 1.0 / n), g.in(0), axes));
     }},
    {"nn.reduce_prod", Rule, reduceProdGrad},
    {"nn.reduce_max", Rule, extremeReduceGrad<nn::ReduceMaxOp>},
    {"nn.reduce_min", Rule, extremeReduceGrad<nn::ReduceMinOp>},
    {"nn.argmax", None, nullptr},
    {"nn.argmin", None, nullptr},

    // Normalisation.
    {"nn.softmax", Rule,
     [](G &g) {
       Value y = g.out(), dy = g.dout();
       int64_t axis = g.as<nn::SoftmaxOp>().getAxis();
       g.setGrad(0,
                 g.mul(y, g.sub(dy, g.reduceSum(g.mul(dy, y), {axis}, true))));
     }},
    {"nn.log_softmax", Rule,
     [](G &g) {
       Value dy = g.dout();
       int64_t axis = g.as<nn::LogSoftmaxOp>().getAxis();
       g.setGrad(0, g.sub(dy, g.mul(g.unary("nn.exp", g.out()),
                                    g.reduceSum(dy, {axis}, true))));
     }},
    {"nn.layer_norm", Rule, layerNormGrad},

    // Linear algebra.
    {"nn.matmul", Rule, matmulGrad},
    {"nn.conv", Rule, convGrad},
    {"nn.conv_transpose", Rule, convTransposeGrad},
    {"nn.max_pool", Rule,
     [](G &g) {
       g.setGrad(0, g.create("nn.max_pool_grad", {g.in(0), g.dout()},
                             poolAttrs(g, false), g.in(0).getType()));
     }},
    {"nn.avg_pool", Rule,
     [](G &g) {
       g.setGrad(0, g.create("nn.avg_pool_grad", {g.dout()}, poolAttrs(g, true),
                             g.in(0).getType()));
     }},
    {"nn.einsum", Rule, einsumGrad},
    // passes/autodiff/AttentionGradientRule.cpp.
    {"nn.attention", Rule, attentionGrad},

    // peft adapters and losses. The optimizer ops (adamw, sgd,
    // clip_grad_norm, lr_schedule) run after the backward sweep and are not
    // differentiated.
    {"peft.lora", Rule, loraGrad},
    {"peft.dora", Rule, doraGrad},
    {"peft.ia3", Rule,
     [](G &g) {
       if (g.needs(0))
         g.setGrad(0, g.mul(g.dout(), g.in(1)));
       if (g.needs(1))
         g.setGrad(1, g.mul(g.dout(), g.in(0)));
     }},
    // dx = dy·mask/(1 − p): the same dropout (step, seed, stream) applied
    // to dy redraws the forward's mask, so no mask is kept for backward.
    {"peft.dropout", Rule,
     [](G &g) {
       g.setGrad(0, g.create("peft.dropout", {g.dout(), g.in(1)},
                             g.op()->getAttrs(), g.dout().getType()));
     }},
    // ReFT (passes/autodiff/ReftGradientRules.cpp).
    {"peft.householder_orthogonal", Rule, householderOrthogonalGrad},
    {"peft.loreft", Rule, loreftGrad},
    {"peft.nodireft", Rule, nodireftGrad},
    {"peft.reft_positions", None, nullptr},
    {"peft.intervention_mask", None, nullptr},
    // Sparse fine-tuning (passes/autodiff/SparseGradientRules.cpp).
    {"peft.sparse_delta", Rule, sparseDeltaGrad},
    {"peft.cross_entropy", Rule, crossEntropyGrad},
    {"peft.mse", Rule, mseGrad},

    // Ops only gradient rules create.
    {"nn.conv_weight_grad", BackwardOnly, nullptr},
    {"nn.max_pool_grad", BackwardOnly, nullptr},
    {"nn.avg_pool_grad", BackwardOnly, nullptr},
    {"peft.householder_orthogonal_grad", BackwardOnly, nullptr},
    // Made by peft-decompose, after the autodiff.
    {"peft.householder_sweep", BackwardOnly, nullptr},
    {"peft.sparse_gather", BackwardOnly, nullptr},
};

} // namespace

ArrayRef<GradientEntry> gradientTable() { return kTable; }

const GradientEntry *lookupGradient(StringRef opName) {
  static const llvm::StringMap<const GradientEntry *> index = [] {
    llvm::StringMap<const GradientEntry *> m;
    for (const GradientEntry &e : kTable)
      m[e.opName] = &e;
    return m;
  }();
  return index.lookup(opName);
}

} // namespace peft::autodiff
