//===- LoopKernel.cpp - kernel functions -> loop kernels ------------------===//
//
// A kernel function's body is either a group of elementwise ops (fused: one
// parallel iteration per element of the broadcast shape, every op's scalar
// formula evaluated in SSA order, every returned value stored) or a single
// op with a loop emitter. nn.constant operands become scalar constants
// (splats) or constant memref.globals.
//
//===----------------------------------------------------------------------===//
#include "codegen/cpu/LoopEmitter.h"

#include "dialects/nn/NNOps.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/IR/SymbolTable.h"
#include "llvm/ADT/SetVector.h"

using namespace mlir;

namespace peft::codegen {
namespace {

/// Compute-type scalar of element `i` of a splat or dense constant.
Value constantScalar(OpBuilder &b, Location loc, DenseElementsAttr attr,
                     int64_t i) {
  Type elem = attr.getElementType();
  Type ct = computeType(elem);
  if (isa<FloatType>(elem)) {
    APFloat v = attr.getValues<APFloat>()[i];
    bool lost;
    v.convert(cast<FloatType>(ct).getFloatSemantics(),
              APFloat::rmNearestTiesToEven, &lost);
    return b.create<arith::ConstantOp>(loc, b.getFloatAttr(ct, v));
  }
  APInt v = attr.getValues<APInt>()[i];
  if (elem.isInteger(1))
    return intConst(b, loc, ct, v.getBoolValue());
  int64_t wide =
      isUnsignedInteger(elem) ? (int64_t)v.getZExtValue() : v.getSExtValue();
  return intConst(b, loc, ct, wide);
}

/// The constant as a flat attribute of its storage type (i1 -> i8 and
/// unsigned -> signless, bit patterns kept).
DenseElementsAttr storageAttr(DenseElementsAttr attr) {
  Type elem = attr.getElementType();
  Type st = storageType(elem);
  int64_t n = std::max<int64_t>(attr.getNumElements(), 1);
  auto flat = RankedTensorType::get({n}, st);
  if (isa<FloatType>(elem)) {
    SmallVector<APFloat> vals;
    for (int64_t i = 0; i < n; ++i)
      vals.push_back(
          attr.getNumElements()
              ? attr.getValues<APFloat>()[i]
              : APFloat::getZero(cast<FloatType>(elem).getFloatSemantics()));
    return DenseElementsAttr::get(flat, vals);
  }
  unsigned width = st.getIntOrFloatBitWidth();
  SmallVector<APInt> vals;
  for (int64_t i = 0; i < n; ++i) {
    APInt v =
        attr.getNumElements() ? attr.getValues<APInt>()[i] : APInt(width, 0);
    vals.push_back(v.zextOrTrunc(width));
  }
  return DenseElementsAttr::get(flat, vals);
}

class KernelEmitter : public LoopEmitContext {
public:
  KernelEmitter(func::FuncOp kernel, StringRef name,
                const LoopEmitOptions &options)
      : kernel_(kernel), builder_(kernel.getContext()), name_(name.str()),
        options_(options) {}

  FailureOr<func::FuncOp> run();

  Operation *op() const override { return op_; }
  OpBuilder &builder() override { return builder_; }
  Value buffer(Value v) override;
  LogicalResult parallel(int64_t extent, BodyFn body) override;

private:
  LogicalResult emitFused();
  LogicalResult emitElement(OpBuilder &b, Location loc, Value j,
                            const IRMapping &bases,
                            llvm::function_ref<bool(Value)> spansRun);
  LogicalResult emitSingle(Operation *op, const LoopEmitterFn &emitter);
  Value globalFor(nn::ConstantOp c);

  func::FuncOp kernel_;
  func::FuncOp loops_;
  OpBuilder builder_;
  std::string name_;
  LoopEmitOptions options_;
  Operation *op_ = nullptr;
  IRMapping buffers_;
  Value begin_, end_;
  std::optional<int64_t> extent_;
  SmallVector<Operation *> globals_;
};

Value KernelEmitter::globalFor(nn::ConstantOp c) {
  if (Value v = buffers_.lookupOrNull(c.getResult()))
    return v;
  auto dense = dyn_cast<DenseElementsAttr>(c.getValue());
  if (!dense) {
    c.emitError("loop emission: only dense constants are supported");
    return nullptr;
  }
  DenseElementsAttr flat = storageAttr(dense);
  auto type = MemRefType::get(flat.getType().getShape(),
                              flat.getType().getElementType());
  OpBuilder mb(kernel_.getContext());
  auto global = mb.create<memref::GlobalOp>(
      c.getLoc(), kernel_.getSymName().str() + "_const",
      mb.getStringAttr("private"), type, flat, /*constant=*/true,
      /*alignment=*/IntegerAttr());
  // Inserting through the symbol table makes the name unique.
  SymbolTable(kernel_->getParentOfType<ModuleOp>())
      .insert(global, Block::iterator(loops_));
  globals_.push_back(global);
  Value g = builder_.create<memref::GetGlobalOp>(c.getLoc(), type,
                                                 global.getSymName());
  buffers_.map(c.getResult(), g);
  return g;
}

Value KernelEmitter::buffer(Value v) {
  if (Value mapped = buffers_.lookupOrNull(v))
    return mapped;
  if (auto c = v.getDefiningOp<nn::ConstantOp>())
    return globalFor(c);
  return nullptr;
}

LogicalResult KernelEmitter::parallel(int64_t extent, BodyFn body) {
  if (extent_)
    return kernel_.emitError("loop emission: an emitter built two parallel "
                             "loops in kernel '")
           << kernel_.getSymName() << "'";
  extent_ = extent;
  Location loc = op_ ? op_->getLoc() : kernel_.getLoc();
  auto loop = builder_.create<scf::ForOp>(loc, begin_, end_,
                                          indexConst(builder_, loc, 1));
  loop->setAttr(kParallelAttr, builder_.getUnitAttr());
  OpBuilder::InsertionGuard guard(builder_);
  builder_.setInsertionPoint(loop.getBody()->getTerminator());
  return body(builder_, loc, loop.getInductionVar());
}

/// How a value of a fused kernel is indexed over the inner run of the
/// iteration space: it either spans the run (contiguous) or is constant
/// along it (broadcast).
struct RunAccess {
  Value value;
  ArrayRef<int64_t> outerShape; // its dims that fall in the outer dims
  bool spansRun = true;
};

LogicalResult KernelEmitter::emitFused() {
  auto ret = cast<func::ReturnOp>(kernel_.getBody().front().getTerminator());
  Block &body = kernel_.getBody().front();
  // The iteration space: the broadcast of every value the kernel computes
  // or returns.
  SmallVector<int64_t> shape;
  auto widen = [&](Value v) -> LogicalResult {
    SmallVector<int64_t> next;
    if (failed(nn::broadcastShapes(v.getLoc(), shape, shapeOf(v), next)))
      return failure();
    shape = next;
    return success();
  };
  for (Value v : ret.getOperands())
    if (failed(widen(v)))
      return failure();
  for (Operation &op : body.without_terminator())
    for (Value r : op.getResults())
      if (failed(widen(r)))
        return failure();

  // The values read from or written to memory: arguments, non-splat
  // constants and returned values.
  SetVector<Value> accessed;
  auto isSplat = [](Value v) {
    auto c = v.getDefiningOp<nn::ConstantOp>();
    auto dense = c ? dyn_cast<DenseElementsAttr>(c.getValue()) : nullptr;
    return dense && dense.isSplat();
  };
  for (Operation &op : body.without_terminator())
    for (Value v : op.getOperands())
      if (!v.getDefiningOp() || !isSplat(v))
        if (!v.getDefiningOp() || isa<nn::ConstantOp>(v.getDefiningOp()))
          accessed.insert(v);
  for (Value v : ret.getOperands())
    accessed.insert(v);

  // The longest run of trailing dims along which every accessed value is
  // either contiguous or constant: the inner loop, so that it vectorises
  // (no per-element div/rem for broadcast operands).
  int64_t rank = shape.size(), runStart = rank;
  SmallVector<std::optional<bool>> spans(accessed.size());
  // With one element per iteration, every dim is outer: each value is
  // indexed straight from the iteration's linear index.
  for (int64_t d = rank - 1; d >= 0 && options_.chunk > 1; --d) {
    if (shape[d] == 1) {
      runStart = d;
      continue;
    }
    SmallVector<std::optional<bool>> next = spans;
    bool uniform = true;
    for (auto [i, v] : llvm::enumerate(accessed)) {
      ArrayRef<int64_t> vs = shapeOf(v);
      int64_t vd = d - (rank - (int64_t)vs.size());
      bool full = vd >= 0 && vs[vd] != 1;
      if (next[i] && *next[i] != full)
        uniform = false;
      next[i] = full;
    }
    if (!uniform)
      break;
    spans = next;
    runStart = d;
  }
  ArrayRef<int64_t> outerShape = ArrayRef<int64_t>(shape).take_front(runStart);
  int64_t inner = numElementsOf(ArrayRef<int64_t>(shape).drop_front(runStart));
  int64_t chunk = std::max<int64_t>(1, std::min(inner, options_.chunk));
  int64_t chunks = inner ? (inner + chunk - 1) / chunk : 0;
  SmallVector<RunAccess> access;
  for (auto [i, v] : llvm::enumerate(accessed)) {
    ArrayRef<int64_t> vs = shapeOf(v);
    int64_t inOuter = std::max<int64_t>(
        0,
        std::min<int64_t>(vs.size(), runStart - (rank - (int64_t)vs.size())));
    access.push_back({v, vs.take_front(inOuter), spans[i].value_or(true)});
  }

  return parallel(
      numElementsOf(outerShape) * chunks,
      [&](OpBuilder &b, Location loc, Value iv) -> LogicalResult {
        Value outer = iv, start = indexConst(b, loc, 0);
        if (chunks != 1) {
          outer = b.create<arith::DivUIOp>(loc, iv, indexConst(b, loc, chunks));
          start = b.create<arith::MulIOp>(
              loc,
              b.create<arith::RemUIOp>(loc, iv, indexConst(b, loc, chunks)),
              indexConst(b, loc, chunk));
        }
        Value len = indexConst(b, loc, chunk);
        if (inner % chunk != 0)
          len = b.create<arith::MinUIOp>(
              loc, len,
              b.create<arith::SubIOp>(loc, indexConst(b, loc, inner), start));
        // Each accessed value's offset at the start of this chunk.
        IRMapping bases;
        for (const RunAccess &a : access) {
          Value base = broadcastIndex(b, loc, outer, outerShape, a.outerShape);
          if (a.spansRun && inner != 1)
            base =
                b.create<arith::MulIOp>(loc, base, indexConst(b, loc, inner));
          if (a.spansRun && chunks != 1)
            base = b.create<arith::AddIOp>(loc, base, start);
          bases.map(a.value, base);
        }
        auto spansRun = [&](Value v) {
          for (const RunAccess &a : access)
            if (a.value == v)
              return a.spansRun;
          return true;
        };
        LogicalResult status = success();
        forLoop(b, loc, indexConst(b, loc, 0), len, {},
                [&](OpBuilder &ib, Location il, Value j, ValueRange) {
                  status = emitElement(ib, il, j, bases, spansRun);
                  return SmallVector<Value>{};
                });
        return status;
      });
}

LogicalResult
KernelEmitter::emitElement(OpBuilder &b, Location loc, Value j,
                           const IRMapping &bases,
                           llvm::function_ref<bool(Value)> spansRun) {
  auto ret = cast<func::ReturnOp>(kernel_.getBody().front().getTerminator());
  auto indexOf = [&](Value v) -> Value {
    Value base = bases.lookup(v);
    return spansRun(v) ? b.create<arith::AddIOp>(loc, base, j).getResult()
                       : base;
  };
  IRMapping scalars;
  auto scalarOf = [&](Value v) -> Value {
    if (Value s = scalars.lookupOrNull(v))
      return s;
    Value s;
    auto c = v.getDefiningOp<nn::ConstantOp>();
    auto dense = c ? dyn_cast<DenseElementsAttr>(c.getValue()) : nullptr;
    if (dense && dense.isSplat())
      s = constantScalar(b, loc, dense, 0);
    else if (Value buf = buffer(v))
      s = loadElement(b, loc, buf, indexOf(v), elementTypeOf(v));
    if (s)
      scalars.map(v, s);
    return s;
  };
  for (Operation &op : kernel_.getBody().front().without_terminator()) {
    if (isa<nn::ConstantOp>(op))
      continue;
    SmallVector<Value> operands;
    for (Value v : op.getOperands()) {
      Value s = scalarOf(v);
      if (!s)
        return op.emitError("loop emission: operand has no value");
      operands.push_back(s);
    }
    SmallVector<Value> results;
    if (failed(emitScalarOp(b, loc, &op, operands, results)))
      return failure();
    for (auto [r, s] : llvm::zip(op.getResults(), results))
      scalars.map(r, s);
  }
  for (auto [i, v] : llvm::enumerate(ret.getOperands())) {
    Value s = scalarOf(v);
    if (!s)
      return ret.emitError("loop emission: returned value has no value");
    Value out = loops_.getArgument(kernel_.getNumArguments() + i);
    // A returned value of a smaller shape than the iteration space is
    // written by several iterations, all with the same value.
    storeElement(b, loc, s, out, indexOf(v), elementTypeOf(v));
  }
  return success();
}

LogicalResult KernelEmitter::emitSingle(Operation *op,
                                        const LoopEmitterFn &emitter) {
  op_ = op;
  auto ret = cast<func::ReturnOp>(kernel_.getBody().front().getTerminator());
  for (auto [i, v] : llvm::enumerate(ret.getOperands())) {
    if (v.getDefiningOp() != op || buffers_.contains(v))
      return ret.emitError("loop emission: kernel '")
             << kernel_.getSymName()
             << "' must return distinct results of its one op";
    buffers_.map(v, loops_.getArgument(kernel_.getNumArguments() + i));
  }
  if (failed(emitter(*this)))
    return failure();
  if (!extent_)
    return op->emitError("loop emission: the emitter of '")
           << op->getName() << "' built no parallel loop";
  return success();
}

FailureOr<func::FuncOp> KernelEmitter::run() {
  if (!kernel_.getBody().hasOneBlock())
    return kernel_.emitError("loop emission: kernel '")
           << kernel_.getSymName() << "' must have one block";
  FunctionType ft = kernel_.getFunctionType();
  SmallVector<Type> argTypes;
  for (Type t : llvm::concat<const Type>(ft.getInputs(), ft.getResults())) {
    auto tt = dyn_cast<RankedTensorType>(t);
    if (!tt || !tt.hasStaticShape())
      return kernel_.emitError("loop emission: kernel '")
             << kernel_.getSymName()
             << "' has a value that is not a static tensor: " << t;
    argTypes.push_back(bufferType(tt));
  }
  Type index = builder_.getIndexType();
  argTypes.push_back(index);
  argTypes.push_back(index);

  // Which kind of kernel: all elementwise, or one op with a loop emitter.
  const EmitterRegistry &registry = EmitterRegistry::instance();
  Operation *single = nullptr;
  bool allElementwise = true;
  for (Operation &op : kernel_.getBody().front().without_terminator()) {
    if (isa<nn::ConstantOp>(op))
      continue;
    StringRef name = op.getName().getStringRef();
    if (registry.lookupScalar(name))
      continue;
    allElementwise = false;
    if (single)
      return op.emitError("loop emission: kernel '")
             << kernel_.getSymName()
             << "' mixes non-elementwise ops; outline one per kernel";
    if (!registry.lookupLoop(name))
      return op.emitError("loop emission: no loop emitter for '")
             << op.getName() << "'";
    single = &op;
  }
  if (!allElementwise) {
    // The elementwise ops beside a loop op have nowhere to run.
    for (Operation &op : kernel_.getBody().front().without_terminator())
      if (&op != single && !isa<nn::ConstantOp>(op))
        return op.emitError("loop emission: kernel '")
               << kernel_.getSymName() << "' mixes elementwise ops with '"
               << single->getName() << "'";
  }

  OpBuilder mb(kernel_);
  mb.setInsertionPointAfter(kernel_);
  loops_ = mb.create<func::FuncOp>(kernel_.getLoc(), name_,
                                   mb.getFunctionType(argTypes, {}));
  loops_.setPrivate();
  loops_->setAttr(kLoopsAttr, mb.getUnitAttr());
  Block *entry = loops_.addEntryBlock();
  builder_.setInsertionPointToStart(entry);
  for (auto [arg, buf] :
       llvm::zip(kernel_.getArguments(), entry->getArguments()))
    buffers_.map(arg, buf);
  begin_ = entry->getArgument(argTypes.size() - 2);
  end_ = entry->getArgument(argTypes.size() - 1);

  LogicalResult ok =
      single
          ? emitSingle(single,
                       *registry.lookupLoop(single->getName().getStringRef()))
          : emitFused();
  if (failed(ok)) {
    // Leave the module as it was: drop the half-built kernel and globals.
    for (Operation *g : globals_)
      g->erase();
    loops_.erase();
    return failure();
  }
  builder_.create<func::ReturnOp>(kernel_.getLoc());
  auto extentAttr = builder_.getI64IntegerAttr(*extent_);
  loops_->setAttr(kExtentAttr, extentAttr);
  kernel_->setAttr(kExtentAttr, extentAttr);
  return loops_;
}

} // namespace

FailureOr<func::FuncOp> emitLoopKernel(func::FuncOp kernel, StringRef name,
                                       const LoopEmitOptions &options) {
  // Already loaded when called from peft-emit-loops (its dependent
  // dialects); loaded here for direct callers.
  kernel.getContext()
      ->loadDialect<arith::ArithDialect, math::MathDialect,
                    memref::MemRefDialect, scf::SCFDialect>();
  return KernelEmitter(kernel, name, options).run();
}

LogicalResult emitLoopKernels(ModuleOp module, const LoopEmitOptions &options) {
  SmallVector<func::FuncOp> kernels;
  for (auto f : module.getOps<func::FuncOp>())
    if (f->hasAttr(kKernelAttr))
      kernels.push_back(f);
  SymbolTable table(module);
  for (func::FuncOp kernel : kernels) {
    std::string name = kernel.getSymName().str();
    FailureOr<func::FuncOp> loops =
        emitLoopKernel(kernel, name + "_loops_tmp", options);
    if (failed(loops))
      return failure();
    table.erase(kernel);
    if (failed(table.rename(*loops, name)))
      return failure();
  }
  return success();
}

} // namespace peft::codegen
