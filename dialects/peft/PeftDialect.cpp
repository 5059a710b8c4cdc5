//===- PeftDialect.cpp - peft dialect, params and uses --------------------===//
#include "dialects/peft/PeftOps.h"

#include "mlir/IR/DialectImplementation.h"
#include "llvm/ADT/STLExtras.h"
#include "llvm/ADT/TypeSwitch.h"

#include <cmath>
#include <sstream>

using namespace mlir;
using namespace peft::pir;

#include "dialects/peft/PeftDialect.cpp.inc"

#define GET_ATTRDEF_CLASSES
#include "dialects/peft/PeftAttrs.cpp.inc"

void PeftDialect::initialize() {
  addAttributes<
#define GET_ATTRDEF_LIST
#include "dialects/peft/PeftAttrs.cpp.inc"
      >();
  addOperations<
#define GET_OP_LIST
#include "dialects/peft/PeftOps.cpp.inc"
      >();
}

LogicalResult ParamOp::verify() {
  RankedTensorType type = getTensorType();
  if (StorageAttr storage = getStorageAttr()) {
    int64_t bits = type.getElementTypeBitWidth();
    int64_t expect = type.getNumElements() * std::max<int64_t>(bits, 8) / 8;
    if (storage.getLength() != expect)
      return emitOpError("storage holds ")
             << storage.getLength() << " bytes but " << type << " needs "
             << expect;
    if (storage.getOffset() < 0)
      return emitOpError("storage offset is negative");
  }
  if (auto value = getValueAttr())
    if (value.getType() != type)
      return emitOpError("value type ")
             << value.getType() << " differs from the param type " << type;
  if (getStorageAttr() && getValueAttr())
    return emitOpError("has both storage and an inline value");
  return success();
}

LogicalResult UseOp::verifySymbolUses(SymbolTableCollection &symbolTable) {
  auto param =
      symbolTable.lookupNearestSymbolFrom<ParamOp>(*this, getParamAttr());
  if (!param)
    return emitOpError("'") << getParam() << "' is not a peft.param";
  if (param.getType() != getType())
    return emitOpError("type ") << getType() << " differs from param @"
                                << getParam() << " of type " << param.getType();
  return success();
}

LogicalResult AssignOp::verifySymbolUses(SymbolTableCollection &symbolTable) {
  auto param =
      symbolTable.lookupNearestSymbolFrom<ParamOp>(*this, getParamAttr());
  if (!param)
    return emitOpError("'") << getParam() << "' is not a peft.param";
  if (param.getType() != getValue().getType())
    return emitOpError("value of type ")
           << getValue().getType() << " cannot be assigned to param @"
           << getParam() << " of type " << param.getType();
  return success();
}

//===----------------------------------------------------------------------===//
// Shape inference and verifiers of the adapter, loss and optimizer ops.
//===----------------------------------------------------------------------===//

namespace {

/// Where shape inference reports an error: the op's location, when there is
/// one (inference also runs without, from builders that only ask whether
/// types are valid), and the op's name, so messages read like verifier ones.
struct InferSite {
  std::optional<Location> loc;
  StringRef opName;
};

LogicalResult inferenceError(const InferSite &site, const Twine &msg) {
  if (site.loc)
    emitError(*site.loc) << "'" << site.opName << "' op " << msg;
  return failure();
}

/// The adaptors of ops with required attributes index a sorted attribute
/// list by position, so attributes are checked before any getter runs.
template <typename Adaptor>
LogicalResult verifyAttributes(MLIRContext *context, const InferSite &site,
                               Adaptor &adaptor) {
  return adaptor.verify(site.loc ? *site.loc : UnknownLoc::get(context));
}

std::string shapeStr(ArrayRef<int64_t> shape) {
  std::string s = "[";
  llvm::interleave(
      shape, [&](int64_t d) { s += std::to_string(d); }, [&] { s += ", "; });
  return s + "]";
}

/// A double as a person writes it: 0.9, 1e-08, -1.
std::string num(double v) {
  std::ostringstream os;
  os << v;
  return os.str();
}

std::string typeStr(Type t) {
  std::string s;
  llvm::raw_string_ostream os(s);
  os << t;
  return s;
}

/// The operand types of an op, which ODS constrains to ranked tensors; the
/// parser may still hand inference other types before constraints are
/// checked, so this fails instead of asserting.
LogicalResult rankedTypes(const InferSite &loc,
                          ArrayRef<std::pair<StringRef, Value>> operands,
                          SmallVectorImpl<RankedTensorType> &types) {
  for (auto [name, value] : operands) {
    auto type = dyn_cast<RankedTensorType>(value.getType());
    if (!type)
      return inferenceError(loc, Twine(name) +
                                     " must be a ranked tensor, got " +
                                     typeStr(value.getType()));
    types.push_back(type);
  }
  return success();
}

/// All `types` share the element type of the first one.
LogicalResult sameElementType(const InferSite &loc,
                              ArrayRef<std::pair<StringRef, Value>> operands,
                              ArrayRef<RankedTensorType> types) {
  for (size_t i = 1; i < types.size(); ++i)
    if (types[i].getElementType() != types[0].getElementType())
      return inferenceError(loc, Twine(operands[i].first) +
                                     " has element type " +
                                     typeStr(types[i].getElementType()) +
                                     " but " + operands[0].first + " has " +
                                     typeStr(types[0].getElementType()));
  return success();
}

/// Checks the operands shared by peft.lora and peft.dora and infers
/// [..., out]. `magnitude` is null for LoRA.
LogicalResult inferLowRankResult(const InferSite &loc, Value input,
                                 Value weight, Value loraA, Value loraB,
                                 Value magnitude, Value adapterInput,
                                 StringRef layout, double scale,
                                 SmallVectorImpl<Type> &inferred) {
  SmallVector<std::pair<StringRef, Value>> operands = {{"input", input},
                                                       {"weight", weight},
                                                       {"lora_a", loraA},
                                                       {"lora_b", loraB}};
  if (magnitude)
    operands.push_back({"magnitude", magnitude});
  if (adapterInput)
    operands.push_back({"adapter_input", adapterInput});
  SmallVector<RankedTensorType> types;
  if (failed(rankedTypes(loc, operands, types)) ||
      failed(sameElementType(loc, operands, types)))
    return failure();
  RankedTensorType x = types[0], w = types[1], a = types[2], b = types[3];
  if (layout != "in_out" && layout != "out_in")
    return inferenceError(loc, "weight_layout must be \"in_out\" or "
                               "\"out_in\", got \"" +
                                   layout + "\"");
  if (!std::isfinite(scale))
    return inferenceError(loc, "scale must be finite");
  if (x.getRank() < 1)
    return inferenceError(loc, "input must have rank >= 1 (its last axis "
                               "holds the features)");
  if (w.getRank() != 2)
    return inferenceError(loc,
                          "weight must be 2-D, got " + shapeStr(w.getShape()));
  bool outIn = layout == "out_in";
  int64_t in = w.getDimSize(outIn ? 1 : 0);
  int64_t out = w.getDimSize(outIn ? 0 : 1);
  int64_t features = x.getShape().back();
  if (features != in)
    return inferenceError(loc, "input has " + Twine(features) +
                                   " features but weight " +
                                   shapeStr(w.getShape()) + " (" + layout +
                                   ") takes " + Twine(in));
  if (a.getRank() != 2 || a.getDimSize(1) != in || a.getDimSize(0) < 1)
    return inferenceError(loc, "lora_a must be [r, in] = [r, " + Twine(in) +
                                   "] with r >= 1, got " +
                                   shapeStr(a.getShape()));
  int64_t r = a.getDimSize(0);
  if (b.getRank() != 2 || b.getDimSize(0) != out || b.getDimSize(1) != r)
    return inferenceError(loc, "lora_b must be [out, r] = [" + Twine(out) +
                                   ", " + Twine(r) + "], got " +
                                   shapeStr(b.getShape()));
  if (magnitude) {
    RankedTensorType m = types[4];
    if (m.getRank() != 1 || m.getDimSize(0) != out)
      return inferenceError(loc, "magnitude must be [out] = [" + Twine(out) +
                                     "], got " + shapeStr(m.getShape()));
  }
  if (adapterInput && adapterInput.getType() != input.getType())
    return inferenceError(loc, "adapter_input must have the input's type " +
                                   typeStr(x) + ", got " +
                                   typeStr(adapterInput.getType()));
  SmallVector<int64_t> shape(x.getShape().drop_back());
  shape.push_back(out);
  inferred.push_back(RankedTensorType::get(shape, x.getElementType()));
  return success();
}

RankedTensorType scalarOf(Type elementType) {
  return RankedTensorType::get({}, elementType);
}

} // namespace

LogicalResult LoraOp::inferReturnTypes(MLIRContext *context,
                                       std::optional<Location> location,
                                       Adaptor adaptor,
                                       SmallVectorImpl<Type> &inferred) {
  InferSite loc{location, getOperationName()};
  if (failed(verifyAttributes(context, loc, adaptor)))
    return failure();
  return inferLowRankResult(loc, adaptor.getInput(), adaptor.getWeight(),
                            adaptor.getLoraA(), adaptor.getLoraB(), Value(),
                            adaptor.getAdapterInput(),
                            adaptor.getWeightLayout(),
                            adaptor.getScale().convertToDouble(), inferred);
}

LogicalResult DoraOp::inferReturnTypes(MLIRContext *context,
                                       std::optional<Location> location,
                                       Adaptor adaptor,
                                       SmallVectorImpl<Type> &inferred) {
  InferSite loc{location, getOperationName()};
  if (failed(verifyAttributes(context, loc, adaptor)))
    return failure();
  return inferLowRankResult(loc, adaptor.getInput(), adaptor.getWeight(),
                            adaptor.getLoraA(), adaptor.getLoraB(),
                            adaptor.getMagnitude(), adaptor.getAdapterInput(),
                            adaptor.getWeightLayout(),
                            adaptor.getScale().convertToDouble(), inferred);
}

LogicalResult Ia3Op::inferReturnTypes(MLIRContext *context,
                                      std::optional<Location> location,
                                      Adaptor adaptor,
                                      SmallVectorImpl<Type> &inferred) {
  InferSite loc{location, getOperationName()};
  SmallVector<std::pair<StringRef, Value>> operands = {
      {"input", adaptor.getInput()}, {"factors", adaptor.getFactors()}};
  SmallVector<RankedTensorType> types;
  if (failed(rankedTypes(loc, operands, types)) ||
      failed(sameElementType(loc, operands, types)))
    return failure();
  RankedTensorType h = types[0], l = types[1];
  if (h.getRank() < 1)
    return inferenceError(loc, "input must have rank >= 1");
  if (l.getRank() != 1 || l.getDimSize(0) != h.getShape().back())
    return inferenceError(loc, "factors must be [features] = [" +
                                   Twine(h.getShape().back()) + "], got " +
                                   shapeStr(l.getShape()));
  inferred.push_back(h);
  return success();
}

LogicalResult CrossEntropyOp::inferReturnTypes(
    MLIRContext *context, std::optional<Location> location, Adaptor adaptor,
    SmallVectorImpl<Type> &inferred) {
  InferSite loc{location, getOperationName()};
  if (failed(verifyAttributes(context, loc, adaptor)))
    return failure();
  SmallVector<std::pair<StringRef, Value>> operands = {
      {"logits", adaptor.getLogits()}, {"labels", adaptor.getLabels()}};
  SmallVector<RankedTensorType> types;
  if (failed(rankedTypes(loc, operands, types)))
    return failure();
  RankedTensorType logits = types[0], labels = types[1];
  StringRef shift = adaptor.getShift();
  if (shift != "none" && shift != "causal")
    return inferenceError(loc, "shift must be \"none\" or \"causal\", got \"" +
                                   shift + "\"");
  if (logits.getRank() < 1 || logits.getShape().back() < 1)
    return inferenceError(loc, "logits must be [..., V] with V >= 1, got " +
                                   shapeStr(logits.getShape()));
  if (labels.getShape() != logits.getShape().drop_back())
    return inferenceError(loc, "labels " + shapeStr(labels.getShape()) +
                                   " must have the shape of logits " +
                                   shapeStr(logits.getShape()) +
                                   " without its last axis");
  if (shift == "causal" && labels.getRank() < 1)
    return inferenceError(loc, "a causal shift needs labels with a sequence "
                               "axis (rank >= 1)");
  inferred.push_back(scalarOf(logits.getElementType()));
  return success();
}

LogicalResult MseOp::inferReturnTypes(MLIRContext *context,
                                      std::optional<Location> location,
                                      Adaptor adaptor,
                                      SmallVectorImpl<Type> &inferred) {
  InferSite loc{location, getOperationName()};
  auto type = dyn_cast<RankedTensorType>(adaptor.getPrediction().getType());
  if (!type)
    return inferenceError(loc, "prediction must be a ranked tensor");
  inferred.push_back(scalarOf(type.getElementType()));
  return success();
}

LogicalResult AdamWOp::inferReturnTypes(MLIRContext *context,
                                        std::optional<Location> location,
                                        Adaptor adaptor,
                                        SmallVectorImpl<Type> &inferred) {
  inferred.append(3, adaptor.getParam().getType());
  return success();
}

LogicalResult AdamWOp::verify() {
  for (auto [name, beta] :
       {std::pair<StringRef, double>{"beta1", getBeta1().convertToDouble()},
        {"beta2", getBeta2().convertToDouble()}})
    if (!(beta >= 0.0 && beta < 1.0))
      return emitOpError() << name << " must be in [0, 1), got " << num(beta);
  double eps = getEps().convertToDouble();
  if (!(eps >= 0.0) || !std::isfinite(eps))
    return emitOpError() << "eps must be finite and >= 0, got " << num(eps);
  double wd = getWeightDecay().convertToDouble();
  if (!(wd >= 0.0) || !std::isfinite(wd))
    return emitOpError() << "weight_decay must be finite and >= 0, got "
                         << num(wd);
  return success();
}

LogicalResult SgdOp::inferReturnTypes(MLIRContext *context,
                                      std::optional<Location> location,
                                      Adaptor adaptor,
                                      SmallVectorImpl<Type> &inferred) {
  inferred.append(2, adaptor.getParam().getType());
  return success();
}

LogicalResult SgdOp::verify() {
  double momentum = getMomentum().convertToDouble();
  double dampening = getDampening().convertToDouble();
  double wd = getWeightDecay().convertToDouble();
  if (!(momentum >= 0.0) || !std::isfinite(momentum))
    return emitOpError() << "momentum must be finite and >= 0, got "
                         << num(momentum);
  if (!std::isfinite(dampening))
    return emitOpError() << "dampening must be finite, got " << num(dampening);
  if (!(wd >= 0.0) || !std::isfinite(wd))
    return emitOpError() << "weight_decay must be finite and >= 0, got "
                         << num(wd);
  if (getNesterov() && (momentum <= 0.0 || dampening != 0.0))
    return emitOpError("nesterov needs a positive momentum and zero "
                       "dampening (as torch.optim.SGD)");
  return success();
}

LogicalResult ClipGradNormOp::inferReturnTypes(
    MLIRContext *context, std::optional<Location> location, Adaptor adaptor,
    SmallVectorImpl<Type> &inferred) {
  InferSite loc{location, getOperationName()};
  if (failed(verifyAttributes(context, loc, adaptor)))
    return failure();
  ValueRange grads = adaptor.getGrads();
  if (grads.empty())
    return inferenceError(loc, "needs at least one gradient");
  double maxNorm = adaptor.getMaxNorm().convertToDouble();
  if (!(maxNorm > 0.0) || !std::isfinite(maxNorm))
    return inferenceError(loc, "max_norm must be finite and > 0, got " +
                                   num(maxNorm));
  Type element;
  for (auto [i, g] : llvm::enumerate(grads)) {
    auto type = dyn_cast<RankedTensorType>(g.getType());
    if (!type)
      return inferenceError(loc, "gradient #" + Twine(i) +
                                     " must be a ranked tensor");
    if (element && type.getElementType() != element)
      return inferenceError(loc,
                            "gradient #" + Twine(i) + " has element type " +
                                typeStr(type.getElementType()) +
                                " but gradient #0 has " + typeStr(element));
    element = type.getElementType();
    inferred.push_back(type);
  }
  inferred.push_back(scalarOf(element));
  return success();
}

LogicalResult LrScheduleOp::verify() {
  StringRef kind = getKind();
  if (kind != "constant" && kind != "linear" && kind != "cosine")
    return emitOpError("kind must be \"constant\", \"linear\" or \"cosine\", "
                       "got \"")
           << kind << "\"";
  double baseLr = getBaseLr().convertToDouble();
  if (!(baseLr >= 0.0) || !std::isfinite(baseLr))
    return emitOpError() << "base_lr must be finite and >= 0, got "
                         << num(baseLr);
  if (getWarmup() < 0)
    return emitOpError() << "warmup_steps must be >= 0, got " << getWarmup();
  if (kind != "constant" && getTotal() < 1)
    return emitOpError() << "a " << kind
                         << " schedule needs total_steps >= 1, got "
                         << getTotal();
  if (!std::isfinite(getNumCycles().convertToDouble()))
    return emitOpError("num_cycles must be finite");
  return success();
}

#define GET_OP_CLASSES
#include "dialects/peft/PeftOps.cpp.inc"
