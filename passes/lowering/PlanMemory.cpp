//===- PlanMemory.cpp - static arena plan with reuse ----------------------===//
//
// One pass over each step function in op order, with the liveness of every
// arena tensor known in advance: results are placed when their op runs
// (best fit among the freed ranges, else on top), operands are released
// after it, so an op never writes over its own inputs. A GEMM that
// accumulates into a tensor it reads last takes over that tensor's range
// (the GEMM library updates C in place).
//
//===----------------------------------------------------------------------===//
#include "passes/Passes.h"
#include "passes/lowering/MemoryPlan.h"

#include "llvm/ADT/TypeSwitch.h"
#include "llvm/Support/Format.h"
#include "llvm/Support/MathExtras.h"

#include <map>

namespace peft {
#define GEN_PASS_DEF_PLANMEMORY
#include "passes/Passes.h.inc"
} // namespace peft

using namespace mlir;
using namespace peft;

namespace {

/// Free ranges of the arena; `top` only grows, so it is the peak.
class Arena {
public:
  int64_t allocate(int64_t bytes) {
    if (bytes == 0)
      return 0;
    bytes = llvm::alignTo(bytes, kern::kArenaAlignment);
    auto best = free_.end();
    for (auto it = free_.begin(); it != free_.end(); ++it)
      if (it->second >= bytes &&
          (best == free_.end() || it->second < best->second))
        best = it;
    if (best != free_.end()) {
      int64_t offset = best->first, size = best->second;
      free_.erase(best);
      if (size > bytes)
        free_[offset + bytes] = size - bytes;
      return offset;
    }
    // Grow: a free range that ends at the top is extended.
    int64_t offset = top_;
    if (!free_.empty()) {
      auto last = std::prev(free_.end());
      if (last->first + last->second == top_) {
        offset = last->first;
        free_.erase(last);
      }
    }
    top_ = offset + bytes;
    return offset;
  }

  void release(int64_t offset, int64_t bytes) {
    if (bytes == 0)
      return;
    bytes = llvm::alignTo(bytes, kern::kArenaAlignment);
    auto next = free_.lower_bound(offset);
    if (next != free_.end() && offset + bytes == next->first) {
      bytes += next->second;
      next = free_.erase(next);
    }
    if (next != free_.begin()) {
      auto prev = std::prev(next);
      if (prev->first + prev->second == offset) {
        prev->second += bytes;
        return;
      }
    }
    free_[offset] = bytes;
  }

  int64_t peak() const { return top_; }

private:
  std::map<int64_t, int64_t> free_;
  int64_t top_ = 0;
};

int64_t bytesOf(Value v) {
  return kern::tensorBytes(cast<RankedTensorType>(v.getType()));
}

struct PlanMemoryPass : public peft::impl::PlanMemoryBase<PlanMemoryPass> {
  using PlanMemoryBase::PlanMemoryBase;

  void runOnOperation() override {
    ModuleOp module = getOperation();
    int64_t peak = 0, sum = 0;
    for (auto fn : module.getOps<func::FuncOp>()) {
      if (fn.isExternal() || fn->hasAttr(kern::attr::kKernel))
        continue;
      FailureOr<std::pair<int64_t, int64_t>> plan = planFunction(fn);
      if (failed(plan))
        return signalPassFailure();
      peak = std::max(peak, plan->first);
      sum += plan->second;
    }
    Builder b(module.getContext());
    module->setAttr(kern::attr::kArenaBytes, b.getI64IntegerAttr(peak));
    module->setAttr(kern::attr::kBufferBytesSum, b.getI64IntegerAttr(sum));
    if (print && failed(lowering::printMemoryPlan(module, llvm::outs())))
      return signalPassFailure();
  }

  /// Plans one function; returns its peak and the sum of its buffers.
  FailureOr<std::pair<int64_t, int64_t>> planFunction(func::FuncOp fn) {
    Block &block = fn.getBody().front();
    // The tensor whose storage a value is: itself, or what a view (or an
    // in-place accumulation) shares.
    DenseMap<Value, Value> storage;
    auto rootOf = [&](Value v) {
      auto it = storage.find(v);
      return it == storage.end() ? v : it->second;
    };
    SmallVector<Operation *> ops;
    DenseMap<Operation *, int64_t> index;
    for (Operation &op : block) {
      index[&op] = ops.size();
      ops.push_back(&op);
    }
    const int64_t end = ops.size();
    // The value a chain of reshapes views, and the last op reading a value
    // directly or through such views (`end` when it is returned).
    auto baseOf = [](Value v) {
      while (auto reshape = v.getDefiningOp<nn::ReshapeOp>())
        v = reshape.getInput();
      return v;
    };
    DenseMap<Value, int64_t> finalUse;
    for (Operation *op : ops)
      for (Value v : op->getOperands())
        finalUse[baseOf(v)] = isa<func::ReturnOp>(op) ? end : index[op];

    // Last use of each arena tensor, views and returns included.
    DenseMap<Value, int64_t> lastUse;
    SmallVector<Value> arenaValues;
    auto defineArena = [&](Value v, int64_t at) {
      arenaValues.push_back(v);
      lastUse[v] = at;
    };
    for (BlockArgument arg : block.getArguments())
      defineArena(arg, -1);
    for (Operation *op : ops) {
      int64_t at = index[op];
      for (Value v : op->getOperands()) {
        Value root = rootOf(v);
        if (lastUse.count(root))
          lastUse[root] =
              isa<func::ReturnOp>(op) ? end : std::max(lastUse[root], at);
      }
      LogicalResult ok =
          llvm::TypeSwitch<Operation *, LogicalResult>(op)
              .Case([&](nn::ReshapeOp reshape) {
                storage[reshape.getResult()] = rootOf(reshape.getInput());
                return success();
              })
              .Case([&](kern::GemmOp gemm) {
                // In place when this GEMM is the last reader of the
                // accumulator (and of every view of it).
                Value c = gemm.getC() ? rootOf(gemm.getC()) : Value();
                if (c && lastUse.count(c) &&
                    finalUse.lookup(baseOf(gemm.getC())) == at &&
                    llvm::count(gemm->getOperands(), gemm.getC()) == 1 &&
                    bytesOf(c) == bytesOf(gemm.getResult())) {
                  storage[gemm.getResult()] = c;
                  return success();
                }
                defineArena(gemm.getResult(), at);
                return success();
              })
              .Case([&](kern::LaunchOp launch) {
                for (Value r : launch.getResults())
                  defineArena(r, at);
                return success();
              })
              .Case<pir::UseOp, pir::AssignOp, nn::ConstantOp, func::ReturnOp>(
                  [](Operation *) { return success(); })
              .Default([&](Operation *other) {
                return other->emitError("peft-plan-memory: '")
                       << other->getName()
                       << "' is not lowered (run peft-lower-gemms and "
                          "peft-outline-kernels first)";
              });
      if (failed(ok))
        return failure();
    }
    // Values shared in place extend their storage's life.
    for (auto [v, root] : storage)
      if (lastUse.count(root))
        for (OpOperand &use : v.getUses())
          lastUse[root] = isa<func::ReturnOp>(use.getOwner())
                              ? end
                              : std::max(lastUse[root], index[use.getOwner()]);

    // Allocation in op order: arguments first, results at their op,
    // releases after the op.
    Arena arena;
    DenseMap<Value, int64_t> offset;
    std::map<int64_t, SmallVector<Value>> releaseAfter;
    int64_t sum = 0;
    auto place = [&](Value v) {
      offset[v] = arena.allocate(bytesOf(v));
      sum += llvm::alignTo(bytesOf(v), kern::kArenaAlignment);
      releaseAfter[lastUse[v]].push_back(v);
    };
    auto releaseAt = [&](int64_t at) {
      auto it = releaseAfter.find(at);
      if (it == releaseAfter.end())
        return;
      for (Value v : it->second)
        if (lastUse[v] < end)
          arena.release(offset[v], bytesOf(v));
    };
    for (BlockArgument arg : block.getArguments())
      place(arg);
    releaseAt(-1);
    Builder b(fn.getContext());
    for (Operation *op : ops) {
      int64_t at = index[op];
      if (isa<kern::GemmOp, kern::LaunchOp>(op)) {
        SmallVector<int64_t> offsets;
        for (Value r : op->getResults()) {
          if (!offset.count(rootOf(r)))
            place(r);
          offsets.push_back(offset[rootOf(r)]);
        }
        op->setAttr(kern::attr::kOffsets, b.getDenseI64ArrayAttr(offsets));
      }
      releaseAt(at);
    }
    SmallVector<int64_t> argOffsets;
    for (BlockArgument arg : block.getArguments())
      argOffsets.push_back(offset[arg]);
    fn->setAttr(kern::attr::kArgOffsets, b.getDenseI64ArrayAttr(argOffsets));
    return std::make_pair(arena.peak(), sum);
  }
};

} // namespace

LogicalResult peft::lowering::printMemoryPlan(ModuleOp module,
                                              llvm::raw_ostream &os) {
  auto peak = module->getAttrOfType<IntegerAttr>(kern::attr::kArenaBytes);
  auto sum = module->getAttrOfType<IntegerAttr>(kern::attr::kBufferBytesSum);
  if (!peak || !sum)
    return module.emitError("the module has no memory plan (run "
                            "peft-plan-memory)");
  os << "memory plan: arena peak " << peak.getInt() << " bytes, sum of buffers "
     << sum.getInt() << " bytes";
  if (sum.getInt() > 0)
    os << llvm::format(" (peak/sum %.3f)",
                       (double)peak.getInt() / (double)sum.getInt());
  os << "\n";
  for (auto fn : module.getOps<func::FuncOp>()) {
    auto argOffsets =
        fn->getAttrOfType<DenseI64ArrayAttr>(kern::attr::kArgOffsets);
    if (!argOffsets)
      continue;
    os << "  @" << fn.getSymName() << ":\n";
    for (auto [i, arg] : llvm::enumerate(fn.getArguments()))
      os << "    arg " << i << " offset " << argOffsets[i] << " bytes "
         << bytesOf(arg) << "\n";
    fn.walk([&](Operation *op) {
      auto offsets = op->getAttrOfType<DenseI64ArrayAttr>(kern::attr::kOffsets);
      if (!offsets)
        return;
      std::string what = op->getName().getStringRef().str();
      if (auto launch = dyn_cast<kern::LaunchOp>(op))
        what += " @" + launch.getCallee().str();
      for (auto [i, r] : llvm::enumerate(op->getResults()))
        os << "    " << what << " #" << i << " offset " << offsets[i]
           << " bytes " << bytesOf(r) << "\n";
    });
  }
  return success();
}
