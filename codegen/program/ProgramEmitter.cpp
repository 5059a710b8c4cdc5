//===- ProgramEmitter.cpp - lowered module -> program::Program ------------===//
#include "codegen/program/ProgramEmitter.h"

#include "codegen/reference/Evaluator.h"
#include "codegen/reference/TensorAttr.h"
#include "dialects/kern/KernOps.h"
#include "dialects/nn/NNOps.h"
#include "dialects/peft/PeftOps.h"
#include "passes/AdapterInit.h"
#include "passes/analysis/ModuleNames.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "llvm/ADT/StringMap.h"
#include "llvm/ADT/StringSet.h"
#include "llvm/Support/MathExtras.h"

using namespace mlir;

namespace peft::codegen {
namespace {

using program::Buffer;
using program::Program;
using program::Step;

/// Attributes other passes set on params and function signatures.
constexpr llvm::StringLiteral kStateOf = "peft.state_of";
constexpr llvm::StringLiteral kStepArg = "peft.step";
constexpr llvm::StringLiteral kMetric = "peft.metric";
constexpr llvm::StringLiteral kName = "nn.name";
constexpr llvm::StringLiteral kIndexLimit = "peft.index_limit";
/// On a function of one result: the adapter saves that result under this
/// key (peft-insert-prefix-tuning's @prefix_prompt_embeddings).
constexpr llvm::StringLiteral kSavedKey = "peft.saved_key";

std::vector<int64_t> shapeOf(RankedTensorType type) {
  return std::vector<int64_t>(type.getShape().begin(), type.getShape().end());
}

class Emitter {
public:
  Emitter(ModuleOp module, const ProgramOptions &options)
      : module_(module), options_(options) {}

  FailureOr<Program> run() {
    p_.producer = options_.producer;
    p_.weightsPath = options_.weightsPath;
    p_.adapterConfigJson = options_.adapterConfigJson;
    p_.arenaAlignment = kern::kArenaAlignment;
    if (auto spec = module_->getAttrOfType<StringAttr>(analysis::attr::kSpec))
      p_.specJson = spec.str();
    auto arena = module_->getAttrOfType<IntegerAttr>(kern::attr::kArenaBytes);
    auto sum = module_->getAttrOfType<IntegerAttr>(kern::attr::kBufferBytesSum);
    if (!arena || !sum)
      return module_.emitError("program emission needs the memory plan (run "
                               "peft-plan-memory)");
    p_.arenaBytes = arena.getInt();
    p_.bufferBytesSum = sum.getInt();
    if (failed(collectDerivedParams()) || failed(emitParams()) ||
        failed(emitKernels()))
      return failure();
    for (auto fn : module_.getOps<func::FuncOp>())
      if (!fn.isExternal() && !fn->hasAttr(kern::attr::kKernel))
        if (failed(emitFunction(fn)))
          return failure();
    return std::move(p_);
  }

private:
  DType dtypeOf(Operation *at, Type type, bool &ok) {
    auto dtype = toDType(cast<ShapedType>(type).getElementType());
    if (!dtype) {
      at->emitError("program emission: unsupported element type in ") << type;
      ok = false;
      return DType::F32;
    }
    return *dtype;
  }

  uint32_t addBuffer(Buffer buffer) {
    p_.buffers.push_back(std::move(buffer));
    return p_.buffers.size() - 1;
  }

  /// A buffer of `v`'s type, kind and name; the caller fills the rest.
  FailureOr<Buffer> bufferFor(Operation *at, Value v, Buffer::Kind kind,
                              std::string name) {
    bool ok = true;
    auto type = cast<RankedTensorType>(v.getType());
    Buffer b;
    b.kind = kind;
    b.dtype = dtypeOf(at, type, ok);
    b.shape = shapeOf(type);
    b.bytes = kern::tensorBytes(type);
    b.name = std::move(name);
    if (!ok)
      return failure();
    return b;
  }

  /// The params a saved function reads. PEFT saves what the function
  /// computes from them (a projected prefix's encoder output) and not the
  /// params themselves, so they get no peft_key: checkpoints keep them with
  /// the optimizer state.
  LogicalResult collectDerivedParams() {
    for (auto fn : module_.getOps<func::FuncOp>()) {
      if (!fn->hasAttr(kSavedKey))
        continue;
      auto key = fn->getAttrOfType<StringAttr>(kSavedKey);
      if (!key || key.getValue().empty() || fn.getNumResults() != 1 ||
          fn.getNumArguments() != 0)
        return fn.emitError("program emission: @")
               << fn.getSymName() << " has " << kSavedKey
               << ", which needs a non-empty key on a function of no "
                  "arguments and one result";
      fn.walk([&](pir::UseOp use) { derivedParams_.insert(use.getParam()); });
    }
    return success();
  }

  /// Params in module order, with a Param buffer each; initial values the
  /// compiler computes (adapter init) go to init_data.
  LogicalResult emitParams() {
    ref::Evaluator eval(module_);
    llvm::StringMap<Tensor> computed;
    if (failed(adapters::initializeParams(
            module_, options_.seed,
            [&](StringRef name) -> FailureOr<Tensor> {
              auto it = computed.find(name);
              if (it != computed.end())
                return it->second;
              return eval.paramValue(name);
            },
            [&](StringRef name, const Tensor &value) {
              computed[name] = value;
              return success();
            })))
      return failure();

    for (auto param : module_.getOps<pir::ParamOp>()) {
      bool ok = true;
      program::Param q;
      q.name = param.getSymName().str();
      RankedTensorType type = param.getTensorType();
      q.dtype = dtypeOf(param, type, ok);
      if (!ok)
        return failure();
      q.shape = shapeOf(type);
      q.trainable = param.getTrainable();
      std::optional<StringRef> init = param.getInit();
      if (auto storage = param.getStorageAttr()) {
        q.init = program::Param::Init::File;
        q.file = storage.getFile().str();
        q.fileOffset = storage.getOffset();
        q.fileLength = storage.getLength();
      } else if (init && *init == "zeros") {
        q.init = program::Param::Init::Zeros;
      } else if (init && *init == "ones") {
        q.init = program::Param::Init::Ones;
      } else {
        std::optional<Tensor> value;
        if (auto attr = param.getValueAttr())
          value = tensorFromAttr(attr);
        else if (auto it = computed.find(q.name); it != computed.end())
          value = it->second;
        if (!value)
          return param.emitError("param @")
                 << q.name << " has no storage, value or initial value";
        Tensor bytes = value->castTo(q.dtype);
        p_.initData.resize(llvm::alignTo(p_.initData.size(), 64), '\0');
        q.init = program::Param::Init::Data;
        q.dataOffset = p_.initData.size();
        q.dataLength = bytes.byteSize();
        p_.initData.append(reinterpret_cast<const char *>(bytes.bytes()),
                           bytes.byteSize());
      }
      if (auto key = param->getAttrOfType<StringAttr>(analysis::attr::kKey))
        if (!derivedParams_.contains(q.name))
          q.peftKey = key.str();
      q.keyTransposed = param->hasAttr(analysis::attr::kKeyTransposed);
      if (auto of = param->getAttrOfType<FlatSymbolRefAttr>(kStateOf)) {
        q.stateOf = of.getValue().str();
        // Optimizer state is named `<param>.<state>` (peft-optimizer).
        StringRef name = q.name;
        if (name.starts_with(q.stateOf + "."))
          q.stateName = name.drop_front(q.stateOf.size() + 1).str();
      }
      Buffer b;
      b.kind = Buffer::Kind::Param;
      b.dtype = q.dtype;
      b.shape = q.shape;
      b.bytes = kern::tensorBytes(type);
      b.param = p_.params.size();
      b.name = q.name;
      paramBuffer_[q.name] = addBuffer(std::move(b));
      p_.params.push_back(std::move(q));
    }
    return success();
  }

  LogicalResult emitKernels() {
    for (auto fn : module_.getOps<func::FuncOp>()) {
      if (!fn->hasAttr(kern::attr::kKernel))
        continue;
      auto extent = fn->getAttrOfType<IntegerAttr>(kern::attr::kExtent);
      if (!extent)
        return fn.emitError("kernel @")
               << fn.getSymName() << " has no " << kern::attr::kExtent
               << " (run the loop emitter before program emission)";
      program::Kernel k;
      k.symbol = fn.getSymName().str();
      k.numArgs = fn.getNumArguments() + fn.getNumResults();
      kernelIndex_[k.symbol] = {(uint32_t)p_.kernels.size(), extent.getInt()};
      p_.kernels.push_back(std::move(k));
    }
    return success();
  }

  /// The arena byte a buffer starts at, if it lives in the arena.
  std::optional<uint64_t> arenaAddress(uint32_t id) const {
    const Buffer &b = p_.buffers[id];
    if (b.kind == Buffer::Kind::Arena)
      return b.offset;
    if (b.kind == Buffer::Kind::View &&
        p_.buffers[b.base].kind == Buffer::Kind::Arena)
      return p_.buffers[b.base].offset + b.offset;
    return std::nullopt;
  }

  LogicalResult emitFunction(func::FuncOp fn) {
    program::Function f;
    f.name = fn.getSymName().str();
    auto argOffsets =
        fn->getAttrOfType<DenseI64ArrayAttr>(kern::attr::kArgOffsets);
    if (!argOffsets || (size_t)argOffsets.size() != fn.getNumArguments())
      return fn.emitError("function @")
             << f.name << " has no memory plan (run peft-plan-memory)";
    DenseMap<Value, uint32_t> bufferOf;
    auto arenaBuffer = [&](Operation *at, Value v, int64_t offset,
                           std::string name) -> FailureOr<uint32_t> {
      FailureOr<Buffer> b = bufferFor(at, v, Buffer::Kind::Arena, name);
      if (failed(b))
        return failure();
      b->offset = offset;
      return bufferOf[v] = addBuffer(std::move(*b));
    };
    for (auto [i, arg] : llvm::enumerate(fn.getArguments())) {
      auto name = fn.getArgAttrOfType<StringAttr>(i, kName);
      std::string label =
          name ? name.str() : f.name + ".arg" + std::to_string(i);
      FailureOr<uint32_t> id = arenaBuffer(fn, arg, argOffsets[i], label);
      if (failed(id))
        return failure();
      program::Arg a;
      a.buffer = *id;
      a.name = name ? name.str() : "";
      a.isStep = fn.getArgAttr(i, kStepArg) != nullptr;
      if (auto limit = fn.getArgAttrOfType<IntegerAttr>(i, kIndexLimit))
        a.indexLimit = limit.getInt();
      f.args.push_back(std::move(a));
    }

    for (Operation &op : fn.getBody().front()) {
      auto offsets = op.getAttrOfType<DenseI64ArrayAttr>(kern::attr::kOffsets);
      if (isa<kern::GemmOp, kern::LaunchOp>(op) &&
          (!offsets || (size_t)offsets.size() != op.getNumResults()))
        return op.emitError("has no memory plan (run peft-plan-memory)");
      LogicalResult ok = success();
      if (auto use = dyn_cast<pir::UseOp>(op)) {
        bufferOf[use.getResult()] = paramBuffer_.lookup(use.getParam());
      } else if (auto constant = dyn_cast<nn::ConstantOp>(op)) {
        std::optional<Tensor> value = tensorFromAttr(constant.getValue());
        FailureOr<Buffer> b = bufferFor(&op, constant.getResult(),
                                        Buffer::Kind::Constant, "constant");
        if (!value || failed(b))
          return op.emitError("program emission: unsupported constant");
        b->constant.assign(reinterpret_cast<const char *>(value->bytes()),
                           value->byteSize());
        bufferOf[constant.getResult()] = addBuffer(std::move(*b));
      } else if (auto reshape = dyn_cast<nn::ReshapeOp>(op)) {
        uint32_t source = bufferOf.lookup(reshape.getInput());
        FailureOr<Buffer> b =
            bufferFor(&op, reshape.getResult(), Buffer::Kind::View,
                      p_.buffers[source].name + ".view");
        if (failed(b))
          return failure();
        // Views point at the storage itself, never at another view.
        const Buffer &s = p_.buffers[source];
        b->base = s.kind == Buffer::Kind::View ? s.base : source;
        b->offset = s.kind == Buffer::Kind::View ? s.offset : 0;
        bufferOf[reshape.getResult()] = addBuffer(std::move(*b));
      } else if (auto gemm = dyn_cast<kern::GemmOp>(op)) {
        ok = emitGemm(gemm, offsets[0], bufferOf, arenaBuffer, f);
      } else if (auto launch = dyn_cast<kern::LaunchOp>(op)) {
        auto kernel = kernelIndex_.find(launch.getCallee());
        if (kernel == kernelIndex_.end())
          return op.emitError("launches @")
                 << launch.getCallee() << ", which is not a kernel function";
        Step s;
        s.kind = Step::Kind::Launch;
        s.launch.kernel = kernel->second.first;
        s.launch.extent = kernel->second.second;
        for (Value v : launch.getArgs())
          s.launch.args.push_back(bufferOf.lookup(v));
        for (auto [i, r] : llvm::enumerate(launch.getResults())) {
          FailureOr<uint32_t> id =
              arenaBuffer(&op, r, offsets[i],
                          launch.getCallee().str() + "#" + std::to_string(i));
          if (failed(id))
            return failure();
          s.launch.args.push_back(*id);
        }
        f.steps.push_back(std::move(s));
      } else if (auto assign = dyn_cast<pir::AssignOp>(op)) {
        Step s;
        s.kind = Step::Kind::Copy;
        s.copy.src = bufferOf.lookup(assign.getValue());
        s.copy.dst = paramBuffer_.lookup(assign.getParam());
        f.steps.push_back(std::move(s));
      } else if (auto ret = dyn_cast<func::ReturnOp>(op)) {
        for (auto [i, v] : llvm::enumerate(ret.getOperands())) {
          program::Result r;
          r.buffer = bufferOf.lookup(v);
          if (auto metric = fn.getResultAttrOfType<StringAttr>(i, kMetric))
            r.metric = metric.str();
          // The training functions return the loss first (see
          // docs/training-ir.md); the optimizer marks only the others.
          else if (i == 0 && (fn.getSymName() == "train_step" ||
                              fn.getSymName() == "loss"))
            r.metric = "loss";
          if (auto name = fn.getResultAttrOfType<StringAttr>(i, kName))
            r.name = name.str();
          if (auto key = fn->getAttrOfType<StringAttr>(kSavedKey))
            r.peftKey = key.str();
          f.results.push_back(std::move(r));
        }
      } else {
        return op.emitError("program emission: '")
               << op.getName()
               << "' is not lowered (run peft-outline-kernels first)";
      }
      if (failed(ok))
        return failure();
    }
    p_.functions.push_back(std::move(f));
    return success();
  }

  template <typename ArenaBuffer>
  LogicalResult emitGemm(kern::GemmOp gemm, int64_t offset,
                         DenseMap<Value, uint32_t> &bufferOf,
                         ArenaBuffer &arenaBuffer, program::Function &f) {
    FailureOr<uint32_t> out =
        arenaBuffer(gemm, gemm.getResult(), offset, f.name + ".gemm");
    if (failed(out))
      return failure();
    bool ok = true;
    Step s;
    s.kind = Step::Kind::Gemm;
    program::Gemm &g = s.gemm;
    g.a = bufferOf.lookup(gemm.getA());
    g.b = bufferOf.lookup(gemm.getB());
    g.c = *out;
    if (Value c = gemm.getC()) {
      // The library accumulates into C in place: start from the
      // accumulator unless the plan already put the result on it.
      uint32_t acc = bufferOf.lookup(c);
      std::optional<uint64_t> from = arenaAddress(acc);
      if (!from || *from != (uint64_t)offset) {
        Step copy;
        copy.kind = Step::Kind::Copy;
        copy.copy.src = acc;
        copy.copy.dst = *out;
        f.steps.push_back(copy);
      }
    }
    g.batch = gemm.getBatch();
    g.m = gemm.getM();
    g.n = gemm.getN();
    g.k = gemm.getK();
    g.transA = gemm.getTransA();
    g.transB = gemm.getTransB();
    g.alpha = gemm.getAlpha().convertToDouble();
    g.beta = gemm.getBeta().convertToDouble();
    auto matrixStride = [](Value v) -> int64_t {
      auto t = cast<RankedTensorType>(v.getType());
      return t.getRank() == 3 ? t.getDimSize(1) * t.getDimSize(2) : 0;
    };
    g.strideA = matrixStride(gemm.getA());
    g.strideB = matrixStride(gemm.getB());
    g.strideC = g.batch > 1 ? g.m * g.n : 0;
    if (Value bias = gemm.getBias()) {
      g.hasBias = true;
      g.bias = bufferOf.lookup(bias);
    }
    StringRef epilogue = gemm.getEpilogue();
    g.epilogue = epilogue == "relu"        ? program::Gemm::Epilogue::Relu
                 : epilogue == "gelu_erf"  ? program::Gemm::Epilogue::GeluErf
                 : epilogue == "gelu_tanh" ? program::Gemm::Epilogue::GeluTanh
                                           : program::Gemm::Epilogue::None;
    g.dtype = dtypeOf(gemm, gemm.getType(), ok);
    if (!ok)
      return failure();
    f.steps.push_back(std::move(s));
    return success();
  }

  ModuleOp module_;
  const ProgramOptions &options_;
  Program p_;
  llvm::StringMap<uint32_t> paramBuffer_;
  llvm::StringSet<> derivedParams_;
  /// Kernel symbol -> (index in the kernel table, extent).
  llvm::StringMap<std::pair<uint32_t, int64_t>> kernelIndex_;
};

} // namespace

FailureOr<program::Program> emitProgram(ModuleOp module,
                                        const ProgramOptions &options) {
  return Emitter(module, options).run();
}

void recordIndexLimits(ModuleOp module) {
  MLIRContext *context = module.getContext();
  module.walk([&](func::FuncOp fn) {
    for (BlockArgument arg : fn.getArguments()) {
      auto type = dyn_cast<RankedTensorType>(arg.getType());
      if (!type || !type.getElementType().isInteger())
        continue;
      int64_t limit = 0;
      SmallVector<Value> work{arg};
      while (!work.empty()) {
        Value v = work.pop_back_val();
        for (OpOperand &use : v.getUses()) {
          Operation *user = use.getOwner();
          if (auto gather = dyn_cast<nn::GatherOp>(user)) {
            auto data = dyn_cast<RankedTensorType>(gather.getData().getType());
            if (use.getOperandNumber() != 1 || !data)
              continue;
            int64_t axis = gather.getAxis();
            if (axis < 0)
              axis += data.getRank();
            if (axis < 0 || axis >= data.getRank() || data.isDynamicDim(axis))
              continue;
            int64_t size = data.getDimSize(axis);
            limit = limit ? std::min(limit, size) : size;
            continue;
          }
          bool preservesValues =
              isa<nn::ReshapeOp, nn::TransposeOp, nn::SliceOp>(user);
          if (auto cast = dyn_cast<nn::CastOp>(user))
            preservesValues = getElementTypeOrSelf(cast.getType()).isInteger();
          if (preservesValues && use.getOperandNumber() == 0)
            for (Value result : user->getResults())
              work.push_back(result);
        }
      }
      if (limit > 0)
        fn.setArgAttr(arg.getArgNumber(), kIndexLimit,
                      IntegerAttr::get(IntegerType::get(context, 64), limit));
    }
  });
}

} // namespace peft::codegen
