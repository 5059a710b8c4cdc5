//===- PeftReftOps.cpp - shape inference of the ReFT ops ------------------===//
#include "dialects/peft/PeftOps.h"

#include "llvm/ADT/STLExtras.h"

using namespace mlir;
using namespace peft::pir;

namespace {

/// Where inference reports: the op's location when there is one (builders
/// may infer without), prefixed like verifier messages.
struct Site {
  std::optional<Location> loc;
  StringRef opName;

  LogicalResult error(const Twine &msg) const {
    if (loc)
      emitError(*loc) << "'" << opName << "' op " << msg;
    return failure();
  }
};

std::string shapeStr(ArrayRef<int64_t> shape) {
  std::string s = "[";
  llvm::interleave(
      shape, [&](int64_t d) { s += std::to_string(d); }, [&] { s += ", "; });
  return s + "]";
}

/// The ranked tensor type of `value`, or an error naming the operand (the
/// parser may hand inference other types before ODS constraints run).
FailureOr<RankedTensorType> ranked(const Site &site, StringRef name,
                                   Value value) {
  auto type = dyn_cast<RankedTensorType>(value.getType());
  if (!type)
    return site.error(Twine(name) + " must be a ranked tensor");
  return type;
}

/// Checks `h: [batch, T, d]` and `positions: [batch, P]` (integers).
LogicalResult checkRows(const Site &site, RankedTensorType h,
                        RankedTensorType positions) {
  if (h.getRank() != 3)
    return site.error("input must be [batch, T, d], got " +
                      shapeStr(h.getShape()));
  if (!positions.getElementType().isSignlessInteger())
    return site.error("positions must hold integers");
  if (positions.getRank() != 2 || positions.getDimSize(0) != h.getDimSize(0))
    return site.error("positions must be [batch, P] = [" +
                      Twine(h.getDimSize(0)) + ", P], got " +
                      shapeStr(positions.getShape()));
  return success();
}

/// Checks a learned_source Linear: `weight: [r, d]`, `bias: [r]`, both of
/// the input's element type; returns r.
FailureOr<int64_t> checkSource(const Site &site, RankedTensorType h,
                               RankedTensorType w, RankedTensorType b) {
  int64_t d = h.getDimSize(2);
  if (w.getRank() != 2 || w.getDimSize(1) != d || w.getDimSize(0) < 1)
    return site.error("weight must be [r, d] = [r, " + Twine(d) +
                      "] with r >= 1, got " + shapeStr(w.getShape()));
  int64_t r = w.getDimSize(0);
  if (b.getRank() != 1 || b.getDimSize(0) != r)
    return site.error("bias must be [r] = [" + Twine(r) + "], got " +
                      shapeStr(b.getShape()));
  for (RankedTensorType t : {w, b})
    if (t.getElementType() != h.getElementType())
      return site.error("weight and bias must have the input's element type");
  return r;
}

/// Checks X: [n, k] with n >= k >= 1 and base: [n, n] of X's element type.
LogicalResult checkHouseholder(const Site &site, RankedTensorType x,
                               RankedTensorType base) {
  if (x.getRank() != 2 || x.getDimSize(0) < x.getDimSize(1) ||
      x.getDimSize(1) < 1)
    return site.error("input must be a tall matrix [n, k] with n >= k >= 1, "
                      "got " +
                      shapeStr(x.getShape()));
  int64_t n = x.getDimSize(0);
  if (base.getShape() != ArrayRef<int64_t>{n, n})
    return site.error("base must be [n, n] = [" + Twine(n) + ", " + Twine(n) +
                      "], got " + shapeStr(base.getShape()));
  if (base.getElementType() != x.getElementType())
    return site.error("base must have the input's element type");
  return success();
}

} // namespace

LogicalResult HouseholderOrthogonalOp::inferReturnTypes(
    MLIRContext *, std::optional<Location> location, Adaptor adaptor,
    SmallVectorImpl<Type> &inferred) {
  Site site{location, getOperationName()};
  auto x = ranked(site, "input", adaptor.getInput());
  auto base = ranked(site, "base", adaptor.getBase());
  if (failed(x) || failed(base) || failed(checkHouseholder(site, *x, *base)))
    return failure();
  inferred.push_back(*x);
  return success();
}

LogicalResult HouseholderOrthogonalGradOp::inferReturnTypes(
    MLIRContext *, std::optional<Location> location, Adaptor adaptor,
    SmallVectorImpl<Type> &inferred) {
  Site site{location, getOperationName()};
  auto x = ranked(site, "input", adaptor.getInput());
  auto base = ranked(site, "base", adaptor.getBase());
  auto dq = ranked(site, "result_grad", adaptor.getResultGrad());
  if (failed(x) || failed(base) || failed(dq) ||
      failed(checkHouseholder(site, *x, *base)))
    return failure();
  if (*dq != *x)
    return site.error("result_grad must have the input's type");
  inferred.push_back(*x);
  return success();
}

LogicalResult HouseholderSweepOp::inferReturnTypes(
    MLIRContext *, std::optional<Location> location, Adaptor adaptor,
    SmallVectorImpl<Type> &inferred) {
  Site site{location, getOperationName()};
  auto x = ranked(site, "input", adaptor.getInput());
  if (failed(x))
    return failure();
  if (x->getRank() != 2 || x->getDimSize(0) < x->getDimSize(1) ||
      x->getDimSize(1) < 1)
    return site.error("input must be a tall matrix [n, k] with n >= k >= 1, "
                      "got " +
                      shapeStr(x->getShape()));
  int64_t n = x->getDimSize(0), k = x->getDimSize(1), m = k;
  if (Value start = adaptor.getStart()) {
    auto s = ranked(site, "start", start);
    if (failed(s))
      return failure();
    if (s->getRank() != 2 || s->getDimSize(0) != n)
      return site.error("start must be [n, m] = [" + Twine(n) + ", m], got " +
                        shapeStr(s->getShape()));
    if (s->getElementType() != x->getElementType())
      return site.error("start must have the input's element type");
    m = s->getDimSize(1);
  }
  inferred.push_back(RankedTensorType::get({k + 1, n, m}, x->getElementType()));
  return success();
}

LogicalResult ReftPositionsOp::inferReturnTypes(
    MLIRContext *context, std::optional<Location> location, Adaptor adaptor,
    SmallVectorImpl<Type> &inferred) {
  Site site{location, getOperationName()};
  if (failed(adaptor.verify(location ? *location : UnknownLoc::get(context))))
    return failure();
  auto lengths = ranked(site, "prompt_lengths", adaptor.getPromptLengths());
  if (failed(lengths))
    return failure();
  if (lengths->getRank() != 1)
    return site.error("prompt_lengths must be [batch], got " +
                      shapeStr(lengths->getShape()));
  int64_t first = static_cast<int64_t>(adaptor.getFirstN());
  int64_t last = static_cast<int64_t>(adaptor.getLastN());
  if (first < 0 || last < 0 || first + last < 1)
    return site.error("first_n and last_n must be >= 0, not both 0");
  StringRef group = adaptor.getGroup();
  int64_t count;
  if (group == "all")
    count = first + last;
  else if (group == "first" || group == "last")
    count = std::max(first, last);
  else
    return site.error("group must be \"all\", \"first\" or \"last\", got \"" +
                      group + "\"");
  inferred.push_back(RankedTensorType::get({lengths->getDimSize(0), count},
                                           IntegerType::get(context, 64)));
  return success();
}

LogicalResult InterventionMaskOp::verify() {
  auto positions = cast<RankedTensorType>(getPositions().getType());
  auto mask = cast<RankedTensorType>(getType());
  if (positions.getRank() != 2)
    return emitOpError("positions must be [batch, P], got ")
           << shapeStr(positions.getShape());
  if (mask.getRank() != 3 || mask.getDimSize(0) != positions.getDimSize(0) ||
      mask.getDimSize(2) != 1)
    return emitOpError("result must be [batch, T, 1] = [")
           << positions.getDimSize(0) << ", T, 1], got "
           << shapeStr(mask.getShape());
  return success();
}

LogicalResult LoreftOp::inferReturnTypes(MLIRContext *,
                                         std::optional<Location> location,
                                         Adaptor adaptor,
                                         SmallVectorImpl<Type> &inferred) {
  Site site{location, getOperationName()};
  auto h = ranked(site, "input", adaptor.getInput());
  auto rot = ranked(site, "rotation", adaptor.getRotation());
  auto w = ranked(site, "weight", adaptor.getWeight());
  auto b = ranked(site, "bias", adaptor.getBias());
  auto pos = ranked(site, "positions", adaptor.getPositions());
  if (failed(h) || failed(rot) || failed(w) || failed(b) || failed(pos) ||
      failed(checkRows(site, *h, *pos)))
    return failure();
  FailureOr<int64_t> r = checkSource(site, *h, *w, *b);
  if (failed(r))
    return failure();
  int64_t d = h->getDimSize(2);
  if (rot->getShape() != ArrayRef<int64_t>{d, *r} ||
      rot->getElementType() != h->getElementType())
    return site.error("rotation must be [d, r] = [" + Twine(d) + ", " +
                      Twine(*r) + "] of the input's element type, got " +
                      shapeStr(rot->getShape()));
  inferred.push_back(*h);
  return success();
}

LogicalResult NodireftOp::inferReturnTypes(MLIRContext *,
                                           std::optional<Location> location,
                                           Adaptor adaptor,
                                           SmallVectorImpl<Type> &inferred) {
  Site site{location, getOperationName()};
  auto h = ranked(site, "input", adaptor.getInput());
  auto w = ranked(site, "weight", adaptor.getWeight());
  auto b = ranked(site, "bias", adaptor.getBias());
  auto proj = ranked(site, "projection", adaptor.getProjection());
  auto pos = ranked(site, "positions", adaptor.getPositions());
  if (failed(h) || failed(w) || failed(b) || failed(proj) || failed(pos) ||
      failed(checkRows(site, *h, *pos)))
    return failure();
  FailureOr<int64_t> r = checkSource(site, *h, *w, *b);
  if (failed(r))
    return failure();
  int64_t d = h->getDimSize(2);
  if (proj->getShape() != ArrayRef<int64_t>{*r, d} ||
      proj->getElementType() != h->getElementType())
    return site.error("projection must be [r, d] = [" + Twine(*r) + ", " +
                      Twine(d) + "] of the input's element type, got " +
                      shapeStr(proj->getShape()));
  inferred.push_back(*h);
  return success();
}
