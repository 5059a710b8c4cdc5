//===- OutlineKernels.cpp - ops into kernel functions ---------------------===//
//
// What stays in a step function after this pass is what the program runs
// directly: GEMM calls, launches, views (reshapes), param reads and writes
// and small constants. Every other op moves into a kernel function; chains
// of same-shaped elementwise ops move together so that their intermediates
// never reach memory.
//
//===----------------------------------------------------------------------===//
#include "passes/Passes.h"

#include "dialects/kern/Elementwise.h"

#include "mlir/Analysis/TopologicalSortUtils.h"
#include "mlir/IR/IRMapping.h"
#include "llvm/ADT/DenseSet.h"
#include "llvm/ADT/EquivalenceClasses.h"
#include "llvm/ADT/SetVector.h"

namespace peft {
#define GEN_PASS_DEF_OUTLINEKERNELS
#include "passes/Passes.h.inc"
} // namespace peft

using namespace mlir;
using namespace peft;

namespace {

ArrayRef<int64_t> resultShape(Operation *op) {
  return cast<ShapedType>(op->getResult(0).getType()).getShape();
}

/// Elementwise ops whose results all have one shape: the fusible ones.
bool isFusible(Operation *op) {
  if (!kern::isElementwise(op) || op->getNumResults() == 0)
    return false;
  ArrayRef<int64_t> shape = resultShape(op);
  return llvm::all_of(op->getResultTypes(), [&](Type t) {
    return cast<ShapedType>(t).getShape() == shape;
  });
}

struct OutlineKernelsPass
    : public peft::impl::OutlineKernelsBase<OutlineKernelsPass> {
  using OutlineKernelsBase::OutlineKernelsBase;

  void runOnOperation() override {
    ModuleOp module = getOperation();
    SymbolTable symbols(module);
    SmallVector<func::FuncOp> functions;
    for (auto fn : module.getOps<func::FuncOp>())
      if (!fn.isExternal() && !fn->hasAttr(kern::attr::kKernel))
        functions.push_back(fn);
    for (func::FuncOp fn : functions) {
      if (!fn.getBody().hasOneBlock()) {
        fn.emitError("peft-outline-kernels expects functions of one block");
        return signalPassFailure();
      }
      outline(fn, symbols);
    }
  }

  /// Ops that stay in the step function.
  bool staysInFunction(Operation *op) {
    if (isa<pir::UseOp, pir::AssignOp, kern::GemmOp, kern::LaunchOp,
            nn::ReshapeOp, func::ReturnOp>(op))
      return true;
    if (auto constant = dyn_cast<nn::ConstantOp>(op))
      return kern::tensorBytes(cast<RankedTensorType>(constant.getType())) <=
             smallConstantBytes;
    return false;
  }

  void outline(func::FuncOp fn, SymbolTable &symbols) {
    Block &block = fn.getBody().front();
    DenseMap<Operation *, int64_t> position;
    SmallVector<Operation *> ops;
    for (Operation &op : block) {
      position[&op] = ops.size();
      ops.push_back(&op);
    }

    // Groups of fusible ops, grown in op order: an op joins the group of
    // each same-shaped fusible producer unless that would create a cycle.
    llvm::EquivalenceClasses<Operation *> groups;
    for (Operation *op : ops) {
      if (staysInFunction(op))
        continue;
      groups.insert(op);
      if (!isFusible(op))
        continue;
      for (Value operand : op->getOperands()) {
        Operation *producer = operand.getDefiningOp();
        if (!producer || producer->getBlock() != &block ||
            staysInFunction(producer) || !isFusible(producer) ||
            resultShape(producer) != resultShape(op) ||
            groups.findLeader(producer) == groups.findLeader(op))
          continue;
        if (!wouldCycle(groups, producer, op, position))
          groups.unionSets(producer, op);
      }
    }

    // One kernel per group, in the order of the groups' first ops.
    SmallVector<SmallVector<Operation *>> kernels;
    DenseMap<Operation *, size_t> kernelOfLeader;
    for (Operation *op : ops) {
      if (groups.findValue(op) == groups.end())
        continue;
      Operation *leader = groups.getLeaderValue(op);
      auto [it, inserted] = kernelOfLeader.try_emplace(leader, kernels.size());
      if (inserted)
        kernels.emplace_back();
      kernels[it->second].push_back(op);
    }
    for (SmallVector<Operation *> &members : kernels)
      outlineGroup(fn, members, symbols);

    // The launches sit where their last op was; ops that read an earlier
    // op of a fused group move after them.
    if (!sortTopologically(&block)) {
      fn.emitError("outlining left a cycle between kernels");
      return signalPassFailure();
    }
    // Params change only when the step ends (peft.assign semantics).
    Operation *terminator = block.getTerminator();
    SmallVector<Operation *> assigns;
    for (Operation &op : block)
      if (isa<pir::AssignOp>(op))
        assigns.push_back(&op);
    for (Operation *op : assigns)
      op->moveBefore(terminator);
  }

  /// Whether merging the groups of `a` and `b` would make the merged group
  /// depend on itself through an op outside it.
  bool wouldCycle(const llvm::EquivalenceClasses<Operation *> &groups,
                  Operation *a, Operation *b,
                  const DenseMap<Operation *, int64_t> &position) {
    llvm::SmallPtrSet<Operation *, 16> members;
    int64_t first = INT64_MAX;
    for (Operation *x : {a, b})
      for (auto it = groups.findLeader(x); it != groups.member_end(); ++it) {
        members.insert(*it);
        first = std::min(first, position.lookup(*it));
      }
    // Walk back from the members' operands through outside ops; an op
    // before the group's first one cannot depend on it.
    SmallVector<Operation *> stack;
    llvm::SmallPtrSet<Operation *, 32> visited;
    auto pushProducers = [&](Operation *op, bool &hitsMember) {
      for (Value v : op->getOperands()) {
        Operation *def = v.getDefiningOp();
        if (!def || !position.count(def) || position.lookup(def) < first)
          continue;
        if (members.contains(def)) {
          hitsMember = true;
          continue;
        }
        if (visited.insert(def).second)
          stack.push_back(def);
      }
    };
    bool ignored = false;
    for (Operation *m : members)
      pushProducers(m, ignored);
    while (!stack.empty()) {
      bool hitsMember = false;
      pushProducers(stack.pop_back_val(), hitsMember);
      if (hitsMember)
        return true;
    }
    return false;
  }

  void outlineGroup(func::FuncOp fn, ArrayRef<Operation *> members,
                    SymbolTable &symbols) {
    llvm::SmallPtrSet<Operation *, 16> inGroup(members.begin(), members.end());
    llvm::SetVector<Value> inputs;
    SmallVector<Value> outputs;
    for (Operation *op : members) {
      for (Value v : op->getOperands())
        if (!inGroup.contains(v.getDefiningOp()))
          inputs.insert(v);
      for (Value r : op->getResults())
        if (llvm::any_of(r.getUsers(), [&](Operation *user) {
              return !inGroup.contains(user);
            }))
          outputs.push_back(r);
    }
    if (outputs.empty()) {
      // Nothing reads the group (its ops are pure): it is dead.
      for (Operation *op : llvm::reverse(members))
        op->erase();
      return;
    }

    MLIRContext *ctx = fn.getContext();
    OpBuilder moduleBuilder(ctx);
    moduleBuilder.setInsertionPointToEnd(
        fn->getParentOfType<ModuleOp>().getBody());
    SmallVector<Type> inputTypes, outputTypes;
    for (Value v : inputs)
      inputTypes.push_back(v.getType());
    for (Value v : outputs)
      outputTypes.push_back(v.getType());
    std::string name;
    do {
      name = "k" + std::to_string(nextKernel++);
    } while (symbols.lookup(name));
    auto kernel = moduleBuilder.create<func::FuncOp>(
        members.back()->getLoc(), name,
        FunctionType::get(ctx, inputTypes, outputTypes));
    kernel.setPrivate();
    kernel->setAttr(kern::attr::kKernel, UnitAttr::get(ctx));
    symbols.insert(kernel);
    Block *body = kernel.addEntryBlock();
    IRMapping map;
    for (auto [v, arg] : llvm::zip(inputs, body->getArguments()))
      map.map(v, arg);
    OpBuilder bodyBuilder = OpBuilder::atBlockEnd(body);
    for (Operation *op : members)
      bodyBuilder.clone(*op, map);
    SmallVector<Value> returned;
    for (Value v : outputs)
      returned.push_back(map.lookup(v));
    bodyBuilder.create<func::ReturnOp>(members.back()->getLoc(), returned);

    OpBuilder builder(members.back());
    auto launch = builder.create<kern::LaunchOp>(
        members.back()->getLoc(), outputTypes, kernel.getSymName(),
        inputs.getArrayRef());
    for (auto [v, r] : llvm::zip(outputs, launch.getResults()))
      v.replaceAllUsesWith(r);
    for (Operation *op : llvm::reverse(members)) {
      op->dropAllUses();
      op->erase();
    }
  }

  int64_t nextKernel = 0;
};

} // namespace
