//===- Evaluator.cpp - the reference interpreter --------------------------===//
#include "codegen/reference/Evaluator.h"
#include "codegen/reference/Kernels.h"
#include "dialects/kern/KernOps.h"
#include "dialects/nn/NNOps.h"
#include "dialects/peft/PeftOps.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/SymbolTable.h"
#include "llvm/ADT/DenseMap.h"

using namespace mlir;

namespace peft::ref {

DType EvalContext::storageType(Type t) const {
  if (auto shaped = dyn_cast<ShapedType>(t))
    t = shaped.getElementType();
  DType d = toDType(t).value_or(DType::F32);
  if (options.promoteToF64 && isFloat(d))
    return DType::F64;
  return d;
}

DType EvalContext::storageType(Value v) const {
  return storageType(v.getType());
}

KernelRegistry &KernelRegistry::instance() {
  static KernelRegistry registry;
  return registry;
}

KernelRegistry::KernelRegistry() {
  registerElementwiseKernels(*this);
  registerShapeKernels(*this);
  registerReductionKernels(*this);
  registerLinalgKernels(*this);
  registerNormKernels(*this);
  registerPeftKernels(*this);
  registerDropoutKernels(*this);
  registerReftKernels(*this);
  registerSparseKernels(*this);
  registerGradKernels(*this);
  registerKernKernels(*this);
  registerAttentionKernels(*this);
}

void KernelRegistry::add(StringRef opName, Kernel kernel) {
  kernels_[opName] = std::move(kernel);
}

const Kernel *KernelRegistry::lookup(StringRef opName) const {
  auto it = kernels_.find(opName);
  return it == kernels_.end() ? nullptr : &it->second;
}

Evaluator::Evaluator(ModuleOp module, EvalOptions options)
    : module_(module), options_(options) {}

static std::string describe(const Tensor &t) {
  return std::string(dtypeName(t.dtype())) + "[" + shapeToString(t.shape()) +
         "]";
}

FailureOr<Tensor> Evaluator::paramValue(Operation *op) {
  auto param = dyn_cast<pir::ParamOp>(op);
  if (auto use = dyn_cast<pir::UseOp>(op))
    param = SymbolTable::lookupNearestSymbolFrom<pir::ParamOp>(
        use, use.getParamAttr());
  if (!param)
    return op->emitError("reference evaluator: no peft.param for this use");
  if (const Tensor *assigned = paramOverride(param.getSymName()))
    return *assigned;
  RankedTensorType type = param.getTensorType();
  auto dtype = toDType(type.getElementType());
  if (!dtype)
    return param.emitError("reference evaluator: unsupported element type ")
           << type.getElementType();
  Tensor value;
  if (auto storage = param.getStorageAttr()) {
    std::string file = storage.getFile().str();
    auto it = mapped_.find(file);
    if (it == mapped_.end()) {
      std::string err;
      auto mapped = MappedFile::open(file, err);
      if (!mapped)
        return param.emitError("param @") << param.getSymName() << ": " << err;
      it = mapped_.emplace(file, std::move(mapped)).first;
    }
    const MappedFile &f = *it->second;
    uint64_t end =
        (uint64_t)storage.getOffset() + (uint64_t)storage.getLength();
    if (end > f.size())
      return param.emitError("param @")
             << param.getSymName() << ": bytes [" << storage.getOffset() << ", "
             << end << ") lie past the end of '" << file << "' (" << f.size()
             << " bytes); the file is truncated or not the one imported";
    value = Tensor::view(*dtype, toShape(type), it->second,
                         f.data() + storage.getOffset());
  } else if (auto attr = param.getValueAttr()) {
    value = *tensorFromAttr(attr);
  } else {
    return param.emitError("param @")
           << param.getSymName() << " has no storage or value to read";
  }
  if (options_.promoteToF64 && isFloat(value.dtype()))
    value = value.castTo(DType::F64);
  return value;
}

FailureOr<Tensor> Evaluator::paramValue(StringRef name) {
  auto param = module_.lookupSymbol<pir::ParamOp>(name);
  if (!param)
    return module_.emitError("reference evaluator: no peft.param @") << name;
  return paramValue(param);
}

const Tensor *Evaluator::paramOverride(StringRef name) const {
  auto it = overrides_.find(name);
  return it == overrides_.end() ? nullptr : &it->second;
}

LogicalResult Evaluator::setParam(StringRef name, const Tensor &value) {
  auto param = module_.lookupSymbol<pir::ParamOp>(name);
  if (!param)
    return module_.emitError("setParam: no peft.param @") << name;
  RankedTensorType type = param.getTensorType();
  auto want = toDType(type.getElementType());
  if (!want || value.shape() != toShape(type) ||
      (value.dtype() != *want && !(isFloat(value.dtype()) && isFloat(*want))))
    return param.emitError("setParam: a ")
           << describe(value) << " value does not fit param @" << name
           << " of type " << type;
  // A copy, so the caller's tensor and the override never share bytes.
  Tensor stored(EvalContext{options_}.storageType(type), value.shape());
  Tensor converted = value.castTo(stored.dtype());
  std::copy(converted.bytes(), converted.bytes() + converted.byteSize(),
            stored.mutableBytes());
  overrides_[name] = std::move(stored);
  return success();
}

FailureOr<SmallVector<Tensor>>
Evaluator::evaluateOp(Operation *op, ArrayRef<Tensor> operands,
                      const EvalOptions &options) {
  EvalContext ctx{options};
  SmallVector<Tensor> results;
  if (auto constant = dyn_cast<nn::ConstantOp>(op)) {
    auto t = tensorFromAttr(constant.getValue());
    if (!t)
      return op->emitError("reference evaluator: unsupported constant");
    results.push_back(t->castTo(ctx.storageType(constant.getType())));
    return results;
  }
  const Kernel *kernel =
      KernelRegistry::instance().lookup(op->getName().getStringRef());
  if (!kernel)
    return op->emitError("reference evaluator has no kernel for '")
           << op->getName() << "'";
  if (failed((*kernel)(op, operands, results, ctx)))
    return failure();
  if (results.size() != op->getNumResults())
    return op->emitError("reference kernel produced ")
           << results.size() << " results, expected " << op->getNumResults();
  for (auto [value, t] : llvm::zip(op->getResults(), results)) {
    auto type = cast<RankedTensorType>(value.getType());
    if (t.shape() != toShape(type) || t.dtype() != ctx.storageType(type))
      return op->emitError("reference kernel produced ")
             << describe(t) << " for a result of type " << type;
  }
  return results;
}

FailureOr<std::vector<Tensor>> Evaluator::run(ArrayRef<Tensor> inputs,
                                              StringRef name) {
  func::FuncOp func;
  if (name.empty()) {
    for (auto f : module_.getOps<func::FuncOp>()) {
      func = f;
      break;
    }
  } else {
    func = module_.lookupSymbol<func::FuncOp>(name);
  }
  if (!func)
    return module_.emitError("reference evaluator: no function ")
           << (name.empty() ? StringRef("in the module") : name);
  Block &body = func.getBody().front();
  if (inputs.size() != body.getNumArguments())
    return func.emitError("expects ")
           << body.getNumArguments() << " inputs, got " << inputs.size();
  EvalContext ctx{options_};
  DenseMap<Value, Tensor> env;
  // peft.assign values, committed when the function returns.
  llvm::StringMap<Tensor> assigned;
  for (auto [i, arg] : llvm::enumerate(body.getArguments())) {
    auto type = cast<RankedTensorType>(arg.getType());
    Tensor in = inputs[i];
    auto argName = func.getArgAttrOfType<StringAttr>(i, "nn.name");
    std::string label = argName ? argName.str() : "#" + std::to_string(i);
    auto want = toDType(type.getElementType());
    if (in.shape() != toShape(type) || !want ||
        (in.dtype() != *want && !(isFloat(in.dtype()) && isFloat(*want))))
      return func.emitError("input '") << label << "' is " << describe(in)
                                       << " but the function expects " << type;
    env[arg] = in.castTo(ctx.storageType(type));
  }
  for (Operation &op : body) {
    if (auto ret = dyn_cast<func::ReturnOp>(op)) {
      std::vector<Tensor> outputs;
      for (Value v : ret.getOperands())
        outputs.push_back(env.lookup(v));
      for (auto &entry : assigned)
        overrides_[entry.getKey()] = std::move(entry.getValue());
      return outputs;
    }
    if (auto assign = dyn_cast<pir::AssignOp>(op)) {
      if (!assigned
               .try_emplace(assign.getParam(), env.lookup(assign.getValue()))
               .second)
        return assign.emitError("param @")
               << assign.getParam() << " is assigned twice in one call";
      continue;
    }
    if (isa<pir::UseOp>(op)) {
      FailureOr<Tensor> value = paramValue(&op);
      if (failed(value))
        return failure();
      env[op.getResult(0)] = std::move(*value);
      continue;
    }
    SmallVector<Tensor> operands;
    for (Value v : op.getOperands())
      operands.push_back(env.lookup(v));
    if (auto launch = dyn_cast<kern::LaunchOp>(op)) {
      // A kernel function: tensors in, tensors out, no assigns.
      auto outputs = run(operands, launch.getCallee());
      if (failed(outputs))
        return failure();
      for (auto [v, t] : llvm::zip(launch.getResults(), *outputs))
        env[v] = std::move(t);
      continue;
    }
    auto results = evaluateOp(&op, operands, options_);
    if (failed(results))
      return failure();
    for (auto [v, t] : llvm::zip(op.getResults(), *results))
      env[v] = std::move(t);
  }
  return func.emitError("function has no return");
}

//===----------------------------------------------------------------------===//
// Helpers shared by the kernels.
//===----------------------------------------------------------------------===//

std::vector<int64_t> stridesOf(const Shape &shape) {
  std::vector<int64_t> s(shape.size(), 1);
  for (int64_t i = (int64_t)shape.size() - 2; i >= 0; --i)
    s[i] = s[i + 1] * shape[i + 1];
  return s;
}

void unravel(int64_t linear, const Shape &shape, std::vector<int64_t> &idx) {
  idx.resize(shape.size());
  for (int64_t i = (int64_t)shape.size() - 1; i >= 0; --i) {
    idx[i] = shape[i] ? linear % shape[i] : 0;
    linear = shape[i] ? linear / shape[i] : 0;
  }
}

BroadcastMap::BroadcastMap(const Shape &operand, const Shape &result)
    : result_(result), strides_(result.size(), 0) {
  std::vector<int64_t> os = stridesOf(operand);
  size_t off = result.size() - operand.size();
  for (size_t i = 0; i < operand.size(); ++i)
    strides_[off + i] = operand[i] == 1 ? 0 : os[i];
}

int64_t BroadcastMap::operator()(int64_t linear) const {
  int64_t out = 0;
  for (int64_t i = (int64_t)result_.size() - 1; i >= 0; --i) {
    int64_t d = result_[i];
    out += (linear % d) * strides_[i];
    linear /= d;
  }
  return out;
}

Tensor mapUnaryFloat(const Tensor &x, DType out,
                     const std::function<double(double)> &f) {
  Tensor y(out, x.shape());
  for (int64_t i = 0, n = x.numel(); i < n; ++i)
    y.setDouble(i, f(x.getDouble(i)));
  return y;
}

Tensor mapUnaryInt(const Tensor &x, DType out,
                   const std::function<int64_t(int64_t)> &f) {
  Tensor y(out, x.shape());
  for (int64_t i = 0, n = x.numel(); i < n; ++i)
    y.setInt(i, f(x.getInt(i)));
  return y;
}

Tensor mapBinaryFloat(const Tensor &x, const Tensor &y, const Shape &shape,
                      DType out,
                      const std::function<double(double, double)> &f) {
  Tensor z(out, shape);
  BroadcastMap mx(x.shape(), shape), my(y.shape(), shape);
  for (int64_t i = 0, n = z.numel(); i < n; ++i)
    z.setDouble(i, f(x.getDouble(mx(i)), y.getDouble(my(i))));
  return z;
}

Tensor mapBinaryInt(const Tensor &x, const Tensor &y, const Shape &shape,
                    DType out,
                    const std::function<int64_t(int64_t, int64_t)> &f) {
  Tensor z(out, shape);
  BroadcastMap mx(x.shape(), shape), my(y.shape(), shape);
  for (int64_t i = 0, n = z.numel(); i < n; ++i)
    z.setInt(i, f(x.getInt(mx(i)), y.getInt(my(i))));
  return z;
}

} // namespace peft::ref
