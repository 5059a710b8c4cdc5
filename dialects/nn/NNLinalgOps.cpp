//===- NNLinalgOps.cpp - inference of matmul, convolution, pooling, einsum ===//
#include "dialects/nn/NNOps.h"

#include "llvm/ADT/STLExtras.h"
#include "llvm/ADT/StringExtras.h"

using namespace mlir;
using namespace peft::nn;

namespace {

/// The adaptors of ops with required attributes index a sorted attribute
/// list by position, so attributes are checked before any getter runs.
template <typename Adaptor>
LogicalResult verifyAttributes(MLIRContext *context,
                               std::optional<Location> loc, Adaptor &adaptor) {
  return adaptor.verify(loc ? *loc : UnknownLoc::get(context));
}

bool flag(BoolAttr attr) { return attr && attr.getValue(); }

std::string shapeStr(ArrayRef<int64_t> shape) {
  std::string s = "[";
  llvm::interleave(
      shape, [&](int64_t d) { s += std::to_string(d); }, [&] { s += ", "; });
  return s + "]";
}

/// Checks the window attributes shared by convolutions and pooling over `k`
/// spatial dims: k strides and dilations >= 1, 2k pads >= 0.
LogicalResult checkWindow(std::optional<Location> loc, StringRef op, size_t k,
                          ArrayRef<int64_t> strides, ArrayRef<int64_t> pads,
                          ArrayRef<int64_t> dilations) {
  if (strides.size() != k || dilations.size() != k || pads.size() != 2 * k)
    return inferenceError(
        loc, op + " over " + Twine(k) + " spatial dims needs " + Twine(k) +
                 " strides and dilations and " + Twine(2 * k) + " pads");
  for (size_t i = 0; i < k; ++i)
    if (strides[i] < 1 || dilations[i] < 1)
      return inferenceError(loc, op + " strides and dilations must be >= 1");
  for (int64_t p : pads)
    if (p < 0)
      return inferenceError(loc, op + " pads must be >= 0");
  return success();
}

/// Output extent of a sliding window; fails when the window does not fit.
FailureOr<int64_t> windowOutput(std::optional<Location> loc, StringRef op,
                                int64_t in, int64_t kernel, int64_t stride,
                                int64_t padBegin, int64_t padEnd,
                                int64_t dilation, bool ceilMode) {
  int64_t span = in + padBegin + padEnd - dilation * (kernel - 1) - 1;
  if (kernel < 1 || span < 0) {
    (void)inferenceError(loc, op + " window of " + Twine(kernel) +
                                  " (dilation " + Twine(dilation) +
                                  ") does not fit a padded extent of " +
                                  Twine(in + padBegin + padEnd));
    return failure();
  }
  int64_t out = (ceilMode ? (span + stride - 1) / stride : span / stride) + 1;
  // A ceil_mode window must start inside the input or its begin padding.
  if (ceilMode && (out - 1) * stride >= in + padBegin)
    --out;
  return out;
}

LogicalResult inferPool(MLIRContext *context, std::optional<Location> loc,
                        StringRef op, Type inputType, ArrayRef<int64_t> kernel,
                        ArrayRef<int64_t> strides, ArrayRef<int64_t> pads,
                        ArrayRef<int64_t> dilations, bool ceilMode,
                        SmallVectorImpl<Type> &inferred) {
  auto in = cast<RankedTensorType>(inputType);
  if (in.getRank() < 3)
    return inferenceError(loc, op + " input must be [N, C, D1...], got " +
                                   shapeStr(in.getShape()));
  size_t k = in.getRank() - 2;
  if (kernel.size() != k)
    return inferenceError(loc, op + " kernel_shape has " +
                                   Twine(kernel.size()) + " dims, input has " +
                                   Twine(k) + " spatial dims");
  if (failed(checkWindow(loc, op, k, strides, pads, dilations)))
    return failure();
  SmallVector<int64_t> shape(in.getShape().take_front(2));
  for (size_t i = 0; i < k; ++i) {
    FailureOr<int64_t> o =
        windowOutput(loc, op, in.getDimSize(i + 2), kernel[i], strides[i],
                     pads[i], pads[i + k], dilations[i], ceilMode);
    if (failed(o))
      return failure();
    shape.push_back(*o);
  }
  inferred.push_back(RankedTensorType::get(shape, in.getElementType()));
  return success();
}

/// Checks weight and bias of a (transposed) convolution: the weight covers
/// `weightInChannels` input channels, which must be all of them; the bias has
/// one value per output channel.
LogicalResult checkConvOperands(std::optional<Location> loc, StringRef op,
                                RankedTensorType in, RankedTensorType w,
                                Value bias, int64_t group, int64_t outChannels,
                                int64_t weightInChannels) {
  if (in.getRank() < 3)
    return inferenceError(loc, op + " input must be [N, C, D1...], got " +
                                   shapeStr(in.getShape()));
  if (w.getRank() != in.getRank())
    return inferenceError(loc, op + " weight rank " + Twine(w.getRank()) +
                                   " differs from input rank " +
                                   Twine(in.getRank()));
  if (w.getElementType() != in.getElementType())
    return inferenceError(loc, op + " input and weight element types differ");
  if (!isa<FloatType>(in.getElementType()))
    return inferenceError(loc, op + " needs floating-point operands");
  if (group < 1)
    return inferenceError(loc, op + " group must be >= 1");
  if (in.getDimSize(1) % group || outChannels % group)
    return inferenceError(loc, op + " channels (" + Twine(in.getDimSize(1)) +
                                   " in, " + Twine(outChannels) +
                                   " out) are not divisible by group " +
                                   Twine(group));
  if (weightInChannels != in.getDimSize(1))
    return inferenceError(loc,
                          op + " weight " + shapeStr(w.getShape()) +
                              " does not match " + Twine(in.getDimSize(1)) +
                              " input channels with group " + Twine(group));
  if (bias) {
    auto b = cast<RankedTensorType>(bias.getType());
    if (b.getElementType() != in.getElementType() || b.getRank() != 1 ||
        b.getDimSize(0) != outChannels)
      return inferenceError(loc, op + " bias must be a vector of " +
                                     Twine(outChannels) +
                                     " values of the input's element type");
  }
  return success();
}

} // namespace

//===----------------------------------------------------------------------===//
// matmul
//===----------------------------------------------------------------------===//

LogicalResult MatMulOp::inferReturnTypes(MLIRContext *context,
                                         std::optional<Location> loc,
                                         Adaptor adaptor,
                                         SmallVectorImpl<Type> &inferred) {
  auto a = cast<RankedTensorType>(adaptor.getLhs().getType());
  auto b = cast<RankedTensorType>(adaptor.getRhs().getType());
  if (a.getElementType() != b.getElementType())
    return inferenceError(loc, "matmul operand element types differ");
  if (a.getRank() == 0 || b.getRank() == 0)
    return inferenceError(loc, "matmul operands must have rank >= 1");
  bool transA = flag(adaptor.getTransposeLhsAttr());
  bool transB = flag(adaptor.getTransposeRhsAttr());
  if ((transA && a.getRank() < 2) || (transB && b.getRank() < 2))
    return inferenceError(loc, "matmul transpose flags need an operand of "
                               "rank >= 2");
  SmallVector<int64_t> as(a.getShape()), bs(b.getShape());
  if (transA)
    std::swap(as[as.size() - 1], as[as.size() - 2]);
  if (transB)
    std::swap(bs[bs.size() - 1], bs[bs.size() - 2]);
  bool aVec = as.size() == 1, bVec = bs.size() == 1;
  if (aVec)
    as.insert(as.begin(), 1);
  if (bVec)
    bs.push_back(1);
  int64_t m = as[as.size() - 2], k = as.back();
  int64_t k2 = bs[bs.size() - 2], n = bs.back();
  if (k != k2)
    return inferenceError(loc, "matmul contraction sizes differ: " + Twine(k) +
                                   " vs " + Twine(k2));
  SmallVector<int64_t> batch;
  if (failed(broadcastShapes(loc, ArrayRef<int64_t>(as).drop_back(2),
                             ArrayRef<int64_t>(bs).drop_back(2), batch)))
    return failure();
  if (!aVec)
    batch.push_back(m);
  if (!bVec)
    batch.push_back(n);
  inferred.push_back(RankedTensorType::get(batch, a.getElementType()));
  return success();
}

//===----------------------------------------------------------------------===//
// conv, conv_transpose
//===----------------------------------------------------------------------===//

LogicalResult ConvOp::inferReturnTypes(MLIRContext *context,
                                       std::optional<Location> loc,
                                       Adaptor adaptor,
                                       SmallVectorImpl<Type> &inferred) {
  if (failed(verifyAttributes(context, loc, adaptor)))
    return failure();
  auto in = cast<RankedTensorType>(adaptor.getInput().getType());
  auto w = cast<RankedTensorType>(adaptor.getWeight().getType());
  int64_t group = adaptor.getGroupAttr().getValue().getSExtValue();
  if (w.getRank() < 3)
    return inferenceError(loc, "conv weight must be [M, C/group, K1...]");
  int64_t outChannels = w.getDimSize(0);
  if (failed(checkConvOperands(loc, "conv", in, w, adaptor.getBias(), group,
                               outChannels, w.getDimSize(1) * group)))
    return failure();
  size_t k = in.getRank() - 2;
  ArrayRef<int64_t> strides = adaptor.getStrides(), pads = adaptor.getPads(),
                    dilations = adaptor.getDilations();
  if (failed(checkWindow(loc, "conv", k, strides, pads, dilations)))
    return failure();
  SmallVector<int64_t> shape{in.getDimSize(0), outChannels};
  for (size_t i = 0; i < k; ++i) {
    FailureOr<int64_t> o = windowOutput(
        loc, "conv", in.getDimSize(i + 2), w.getDimSize(i + 2), strides[i],
        pads[i], pads[i + k], dilations[i], /*ceilMode=*/false);
    if (failed(o))
      return failure();
    shape.push_back(*o);
  }
  inferred.push_back(RankedTensorType::get(shape, in.getElementType()));
  return success();
}

LogicalResult
ConvTransposeOp::inferReturnTypes(MLIRContext *context,
                                  std::optional<Location> loc, Adaptor adaptor,
                                  SmallVectorImpl<Type> &inferred) {
  if (failed(verifyAttributes(context, loc, adaptor)))
    return failure();
  auto in = cast<RankedTensorType>(adaptor.getInput().getType());
  auto w = cast<RankedTensorType>(adaptor.getWeight().getType());
  int64_t group = adaptor.getGroupAttr().getValue().getSExtValue();
  if (w.getRank() < 3)
    return inferenceError(loc,
                          "conv_transpose weight must be [C, M/group, K1...]");
  int64_t outChannels = w.getDimSize(1) * group;
  if (failed(checkConvOperands(loc, "conv_transpose", in, w, adaptor.getBias(),
                               group, outChannels, w.getDimSize(0))))
    return failure();
  size_t k = in.getRank() - 2;
  ArrayRef<int64_t> strides = adaptor.getStrides(), pads = adaptor.getPads(),
                    dilations = adaptor.getDilations(),
                    outputPadding = adaptor.getOutputPadding();
  if (failed(checkWindow(loc, "conv_transpose", k, strides, pads, dilations)))
    return failure();
  if (outputPadding.size() != k)
    return inferenceError(loc, "conv_transpose needs " + Twine(k) +
                                   " output_padding values");
  SmallVector<int64_t> shape{in.getDimSize(0), outChannels};
  for (size_t i = 0; i < k; ++i) {
    if (outputPadding[i] < 0)
      return inferenceError(loc, "conv_transpose output_padding must be >= 0");
    int64_t o = strides[i] * (in.getDimSize(i + 2) - 1) + outputPadding[i] +
                dilations[i] * (w.getDimSize(i + 2) - 1) + 1 - pads[i] -
                pads[i + k];
    if (o < 1)
      return inferenceError(loc, "conv_transpose pads leave no output along "
                                 "spatial dim " +
                                     Twine(i));
    shape.push_back(o);
  }
  inferred.push_back(RankedTensorType::get(shape, in.getElementType()));
  return success();
}

//===----------------------------------------------------------------------===//
// max_pool, avg_pool
//===----------------------------------------------------------------------===//

LogicalResult MaxPoolOp::inferReturnTypes(MLIRContext *context,
                                          std::optional<Location> loc,
                                          Adaptor adaptor,
                                          SmallVectorImpl<Type> &inferred) {
  if (failed(verifyAttributes(context, loc, adaptor)))
    return failure();
  return inferPool(context, loc, "max_pool", adaptor.getInput().getType(),
                   adaptor.getKernelShape(), adaptor.getStrides(),
                   adaptor.getPads(), adaptor.getDilations(),
                   flag(adaptor.getCeilModeAttr()), inferred);
}

LogicalResult AvgPoolOp::inferReturnTypes(MLIRContext *context,
                                          std::optional<Location> loc,
                                          Adaptor adaptor,
                                          SmallVectorImpl<Type> &inferred) {
  if (failed(verifyAttributes(context, loc, adaptor)))
    return failure();
  if (!isa<FloatType>(cast<RankedTensorType>(adaptor.getInput().getType())
                          .getElementType()))
    return inferenceError(loc, "avg_pool needs a floating-point input");
  return inferPool(context, loc, "avg_pool", adaptor.getInput().getType(),
                   adaptor.getKernelShape(), adaptor.getStrides(),
                   adaptor.getPads(), adaptor.getDilations(),
                   flag(adaptor.getCeilModeAttr()), inferred);
}

//===----------------------------------------------------------------------===//
// einsum
//===----------------------------------------------------------------------===//

namespace {

/// Letters are labels 0..51 ('A'..'Z' then 'a'..'z', the order numpy sorts
/// an implicit output in); the dims `...` expands to follow from 52 on.
constexpr unsigned kEllipsisBase = 52;

char labelLetter(unsigned label) {
  return label < 26 ? char('A' + label) : char('a' + label - 26);
}

std::optional<unsigned> letterLabel(char c) {
  if (c >= 'A' && c <= 'Z')
    return c - 'A';
  if (c >= 'a' && c <= 'z')
    return 26 + (c - 'a');
  return std::nullopt;
}

/// One operand or result term: its letters, and where `...` sits (the
/// number of letters before it) when present.
struct Term {
  SmallVector<unsigned> letters;
  std::optional<size_t> ellipsisAt;
};

FailureOr<Term> parseTerm(std::optional<Location> loc, StringRef text) {
  Term t;
  for (size_t i = 0; i < text.size();) {
    if (text.substr(i).starts_with("...")) {
      if (t.ellipsisAt)
        return inferenceError(loc, "einsum term '" + text +
                                       "' has more than one '...'");
      t.ellipsisAt = t.letters.size();
      i += 3;
      continue;
    }
    std::optional<unsigned> l = letterLabel(text[i]);
    if (!l)
      return inferenceError(loc, "einsum term '" + text +
                                     "' has an invalid character '" +
                                     Twine(text[i]) + "'");
    t.letters.push_back(*l);
    ++i;
  }
  return t;
}

} // namespace

FailureOr<EinsumOp::Equation>
EinsumOp::resolveEquation(std::optional<Location> loc, StringRef equation,
                          ArrayRef<ArrayRef<int64_t>> shapes) {
  std::string compact;
  for (char c : equation)
    if (!llvm::isSpace(c))
      compact += c;
  StringRef eq(compact);
  size_t arrow = eq.find("->");
  StringRef lhs = eq.substr(0, arrow);
  std::optional<StringRef> rhs;
  if (arrow != StringRef::npos)
    rhs = eq.substr(arrow + 2);

  SmallVector<StringRef> termTexts;
  lhs.split(termTexts, ',');
  if (termTexts.size() != shapes.size())
    return inferenceError(loc, "einsum equation '" + equation + "' has " +
                                   Twine(termTexts.size()) +
                                   " operand terms for " +
                                   Twine(shapes.size()) + " operands");

  Equation result;
  result.sizes.assign(kEllipsisBase, -1);
  SmallVector<Term> terms;
  size_t ellipsisRank = 0;
  for (auto [text, shape] : llvm::zip(termTexts, shapes)) {
    FailureOr<Term> t = parseTerm(loc, text);
    if (failed(t))
      return failure();
    size_t rank = shape.size();
    if (t->letters.size() > rank ||
        (!t->ellipsisAt && t->letters.size() != rank))
      return inferenceError(loc, "einsum term '" + text + "' does not match " +
                                     "an operand of rank " + Twine(rank));
    if (t->ellipsisAt)
      ellipsisRank = std::max(ellipsisRank, rank - t->letters.size());
    terms.push_back(*t);
  }
  result.sizes.resize(kEllipsisBase + ellipsisRank, 1);

  // Label every operand dim; `...` dims align to the right of the broadcast
  // dims and broadcast numpy-style, letters must agree exactly.
  for (auto [t, shape] : llvm::zip(terms, shapes)) {
    SmallVector<unsigned> labels;
    size_t e = shape.size() - t.letters.size();
    for (size_t i = 0, li = 0; i < shape.size();) {
      if (t.ellipsisAt && li == *t.ellipsisAt && e) {
        for (size_t j = 0; j < e; ++j)
          labels.push_back(kEllipsisBase + ellipsisRank - e + j);
        i += e;
        e = 0;
        continue;
      }
      labels.push_back(t.letters[li++]);
      ++i;
    }
    for (auto [label, dim] : llvm::zip(labels, shape)) {
      int64_t &size = result.sizes[label];
      if (label >= kEllipsisBase) {
        if (size != 1 && dim != 1 && size != dim)
          return inferenceError(loc, "einsum '...' dims do not broadcast: " +
                                         Twine(size) + " vs " + Twine(dim));
        if (dim != 1)
          size = dim;
      } else {
        if (size >= 0 && size != dim)
          return inferenceError(
              loc, "einsum label '" + Twine(labelLetter(label)) +
                       "' has sizes " + Twine(size) + " and " + Twine(dim));
        size = dim;
      }
    }
    result.operandLabels.push_back(std::move(labels));
  }

  auto ellipsisLabels = [&] {
    for (size_t j = 0; j < ellipsisRank; ++j)
      result.resultLabels.push_back(kEllipsisBase + j);
  };
  if (rhs) {
    FailureOr<Term> out = parseTerm(loc, *rhs);
    if (failed(out))
      return failure();
    if (!out->ellipsisAt && ellipsisRank > 0)
      return inferenceError(loc, "einsum output of '" + equation +
                                     "' must keep the '...' dims");
    for (size_t li = 0; li <= out->letters.size(); ++li) {
      if (out->ellipsisAt && li == *out->ellipsisAt)
        ellipsisLabels();
      if (li == out->letters.size())
        break;
      unsigned l = out->letters[li];
      if (result.sizes[l] < 0)
        return inferenceError(loc, "einsum output label '" +
                                       Twine(labelLetter(l)) + "' of '" +
                                       equation + "' is not in any operand");
      if (llvm::count(out->letters, l) > 1)
        return inferenceError(loc, "einsum output of '" + equation +
                                       "' repeats a label");
      result.resultLabels.push_back(l);
    }
  } else {
    // Implicit form: broadcast dims, then the letters used exactly once, in
    // alphabetical order.
    ellipsisLabels();
    SmallVector<unsigned> uses(kEllipsisBase, 0);
    for (const Term &t : terms)
      for (unsigned l : t.letters)
        ++uses[l];
    for (unsigned l = 0; l < kEllipsisBase; ++l)
      if (uses[l] == 1)
        result.resultLabels.push_back(l);
  }
  return result;
}

LogicalResult EinsumOp::inferReturnTypes(MLIRContext *context,
                                         std::optional<Location> loc,
                                         Adaptor adaptor,
                                         SmallVectorImpl<Type> &inferred) {
  if (failed(verifyAttributes(context, loc, adaptor)))
    return failure();
  if (adaptor.getInputs().empty())
    return inferenceError(loc, "einsum needs at least one operand");
  SmallVector<ArrayRef<int64_t>> shapes;
  Type elementType;
  for (Value v : adaptor.getInputs()) {
    auto t = cast<RankedTensorType>(v.getType());
    if (elementType && t.getElementType() != elementType)
      return inferenceError(loc, "einsum operand element types differ");
    elementType = t.getElementType();
    shapes.push_back(t.getShape());
  }
  FailureOr<Equation> eq = resolveEquation(loc, adaptor.getEquation(), shapes);
  if (failed(eq))
    return failure();
  SmallVector<int64_t> shape;
  for (unsigned l : eq->resultLabels)
    shape.push_back(eq->sizes[l]);
  inferred.push_back(RankedTensorType::get(shape, elementType));
  return success();
}
