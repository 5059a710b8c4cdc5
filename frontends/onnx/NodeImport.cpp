//===- NodeImport.cpp - handler registry and NodeContext ------------------===//
#include "frontends/onnx/NodeImport.h"
#include "frontends/onnx/TensorProto.h"

#include "codegen/reference/TensorAttr.h"
#include "dialects/nn/NNOps.h"

#include "mlir/IR/OperationSupport.h"

using namespace mlir;

namespace peft::onnx_import {

HandlerRegistry &HandlerRegistry::instance() {
  static HandlerRegistry registry;
  return registry;
}

HandlerRegistry::HandlerRegistry() {
  registerConstantHandlers(*this);
  registerElementwiseHandlers(*this);
  registerShapeHandlers(*this);
  registerReductionHandlers(*this);
  registerLinalgHandlers(*this);
  registerNormHandlers(*this);
}

void HandlerRegistry::add(StringRef domain, StringRef opType, int sinceVersion,
                          Handler handler) {
  std::string d = domain == "ai.onnx" ? "" : domain.str();
  handlers_[{d, opType.str()}][sinceVersion] = std::move(handler);
}

const Handler *HandlerRegistry::lookup(StringRef domain, StringRef opType,
                                       int opset) const {
  std::string d = domain == "ai.onnx" ? "" : domain.str();
  auto it = handlers_.find({d, opType.str()});
  if (it == handlers_.end())
    return nullptr;
  auto v = it->second.upper_bound(opset);
  if (v == it->second.begin())
    return nullptr;
  return &std::prev(v)->second;
}

std::vector<HandlerRegistry::Entry> HandlerRegistry::entries() const {
  std::vector<Entry> out;
  for (auto &[key, versions] : handlers_)
    for (auto &[since, h] : versions)
      out.push_back({key.first, key.second, since});
  return out;
}

std::optional<DType> dtypeFromOnnx(int32_t t) {
  switch (t) {
  case onnx::TensorProto::FLOAT:
    return DType::F32;
  case onnx::TensorProto::DOUBLE:
    return DType::F64;
  case onnx::TensorProto::FLOAT16:
    return DType::F16;
  case onnx::TensorProto::BFLOAT16:
    return DType::BF16;
  case onnx::TensorProto::INT64:
    return DType::I64;
  case onnx::TensorProto::INT32:
    return DType::I32;
  case onnx::TensorProto::INT8:
    return DType::I8;
  case onnx::TensorProto::UINT8:
    return DType::U8;
  case onnx::TensorProto::BOOL:
    return DType::Bool;
  default:
    return std::nullopt;
  }
}

Type elementTypeFromOnnx(MLIRContext *ctx, int32_t t) {
  auto d = dtypeFromOnnx(t);
  return d ? toElementType(ctx, *d) : Type();
}

NodeContext::NodeContext(OpBuilder &builder, Location loc,
                         const onnx::NodeProto &node, int opset,
                         SmallVector<Value> inputs, const LoadedModel &model)
    : b_(builder), loc_(loc), node_(node), opset_(opset), model_(model),
      inputs_(std::move(inputs)), results_(node.output_size()) {}

RankedTensorType NodeContext::inputType(unsigned i) const {
  return hasInput(i) ? cast<RankedTensorType>(inputs_[i].getType())
                     : RankedTensorType();
}

std::optional<Tensor> NodeContext::constantInput(unsigned i) const {
  if (!hasInput(i))
    return std::nullopt;
  if (auto c = inputs_[i].getDefiningOp<nn::ConstantOp>())
    return tensorFromAttr(c.getValue());
  return std::nullopt;
}

FailureOr<std::vector<int64_t>> NodeContext::constantInts(unsigned i,
                                                          StringRef role) {
  if (!hasInput(i))
    return error() << "the '" << role << "' input is missing";
  auto t = constantInput(i);
  if (!t)
    return error() << "the '" << role
                   << "' input must be known at compile time (a constant or "
                      "a shape computation peftc can fold); give static input "
                      "shapes with --input-shape";
  std::vector<int64_t> v;
  for (int64_t k = 0; k < t->numel(); ++k)
    v.push_back(t->getInt(k));
  return v;
}

LogicalResult NodeContext::requireInputs(unsigned n) {
  for (unsigned i = 0; i < n; ++i)
    if (!hasInput(i))
      return error() << "expects at least " << n << " inputs, input " << i
                     << " is missing";
  return success();
}

const onnx::AttributeProto *NodeContext::attr(StringRef name) const {
  for (const auto &a : node_.attribute())
    if (a.name() == name)
      return &a;
  return nullptr;
}

int64_t NodeContext::attrInt(StringRef name, int64_t def) const {
  auto *a = attr(name);
  return a ? a->i() : def;
}
double NodeContext::attrFloat(StringRef name, double def) const {
  auto *a = attr(name);
  return a ? a->f() : def;
}
std::string NodeContext::attrString(StringRef name, StringRef def) const {
  auto *a = attr(name);
  return a ? a->s() : def.str();
}
std::vector<int64_t> NodeContext::attrInts(StringRef name) const {
  auto *a = attr(name);
  return a ? std::vector<int64_t>(a->ints().begin(), a->ints().end())
           : std::vector<int64_t>();
}
std::vector<float> NodeContext::attrFloats(StringRef name) const {
  auto *a = attr(name);
  return a ? std::vector<float>(a->floats().begin(), a->floats().end())
           : std::vector<float>();
}

FailureOr<Tensor> NodeContext::attrTensor(StringRef name) {
  const onnx::AttributeProto *a = attr(name);
  if (!a || !a->has_t())
    return error() << "attribute '" << name << "' is missing or not a tensor";
  Tensor t;
  std::string err;
  if (!decodeTensor(a->t(), model_, t, err))
    return error() << err;
  return t;
}

InFlightDiagnostic NodeContext::error() {
  InFlightDiagnostic d = emitError(loc_);
  d << "node '" << node_.name() << "' (" << node_.op_type() << "): ";
  return d;
}

FailureOr<Operation *> NodeContext::createOperation(
    StringRef name, ValueRange operands, ArrayRef<NamedAttribute> attrs,
    std::optional<TypeRange> resultTypes, InferFn infer) {
  OperationState state(loc_, name);
  state.addOperands(operands);
  state.addAttributes(attrs);
  if (resultTypes) {
    state.addTypes(*resultTypes);
  } else {
    SmallVector<Type> types;
    // Inference reports to a scoped handler so the message can be prefixed
    // with the node, like every other import error.
    std::string message;
    LogicalResult inferred = success();
    {
      ScopedDiagnosticHandler capture(context(), [&](Diagnostic &diag) {
        if (message.empty())
          message = diag.str();
        return success();
      });
      inferred = infer(context(), loc_, state.operands,
                       state.attributes.getDictionary(context()),
                       state.getRawProperties(), state.regions, types);
    }
    // Reported after the capture is gone, or the handler would swallow it.
    if (failed(inferred))
      return error() << (message.empty() ? "invalid operands" : message);
    state.addTypes(types);
  }
  Operation *op = b_.create(state);
  std::string message;
  LogicalResult verified = success();
  {
    ScopedDiagnosticHandler capture(context(), [&](Diagnostic &diag) {
      if (message.empty())
        message = diag.str();
      return success();
    });
    verified = mlir::verify(op, /*verifyRecursively=*/false);
  }
  if (failed(verified)) {
    op->erase();
    return error() << message;
  }
  created_.push_back(op);
  return op;
}

FailureOr<Value> NodeContext::createOp(StringRef name, ValueRange operands,
                                       ArrayRef<NamedAttribute> attrs,
                                       std::optional<TypeRange> resultTypes,
                                       InferFn infer) {
  FailureOr<Operation *> op =
      createOperation(name, operands, attrs, resultTypes, infer);
  if (failed(op))
    return failure();
  return (*op)->getResult(0);
}

Value NodeContext::constant(const Tensor &t) {
  auto type = toTensorType(context(), t.dtype(), t.shape());
  auto op = b_.create<nn::ConstantOp>(loc_, type, attrFromTensor(t, type));
  created_.push_back(op);
  return op;
}

Value NodeContext::scalarLike(Value like, double v, const Shape &shape) {
  auto et = cast<RankedTensorType>(like.getType()).getElementType();
  DType d = toDType(et).value_or(DType::F32);
  Tensor t(d, shape);
  for (int64_t i = 0; i < t.numel(); ++i)
    t.setDouble(i, v);
  return constant(t);
}

void NodeContext::setResult(unsigned i, Value v) {
  if (i < results_.size())
    results_[i] = v;
}

void NodeContext::setResults(ValueRange values) {
  for (auto [i, v] : llvm::enumerate(values))
    setResult(i, v);
}

} // namespace peft::onnx_import
