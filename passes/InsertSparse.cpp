//===- InsertSparse.cpp - sparse fine-tuning of chosen weight entries -----===//
//
// Each SPARSE target's weight W is read at compile time, k of its entries
// are chosen (by magnitude or at random), and the module's read of W becomes
// peft.sparse_delta(W, indices, delta): the indices a frozen i64 param held
// in the IR, the delta a trainable k-vector starting at zero. Nothing else
// about the module changes, so its GEMM, the autodiff (which gives the
// frozen W no gradient) and the optimizer (k-sized state) work as for any
// param.
//
//===----------------------------------------------------------------------===//
#include "passes/InsertSparse.h"

#include "codegen/reference/Evaluator.h"
#include "codegen/reference/TensorAttr.h"
#include "frontends/spec/TargetResolution.h"
#include "passes/MethodInserters.h"
#include "passes/Passes.h"
#include "passes/analysis/ModuleNames.h"
#include "peft/Dropout.h"

#include "mlir/IR/SymbolTable.h"

#include <algorithm>
#include <cmath>
#include <numeric>

namespace peft {
#define GEN_PASS_DEF_INSERTSPARSE
#include "passes/Passes.h.inc"
} // namespace peft

using namespace mlir;
using namespace peft;
using namespace peft::analysis;
namespace attr = peft::analysis::attr;

//===----------------------------------------------------------------------===//
// Selection
//===----------------------------------------------------------------------===//

int64_t sparse::selectedCount(double density, int64_t numel) {
  double k = std::ceil(density * static_cast<double>(numel));
  return std::clamp<int64_t>(static_cast<int64_t>(k), 1, numel);
}

int64_t sparse::storedIndex(int64_t p, ArrayRef<int64_t> stored,
                            bool transposed) {
  if (!transposed)
    return p;
  int64_t a = stored[0], b = stored[1];
  return (p % a) * b + p / a;
}

/// The first k of `order` (positions) under `before`, sorted increasingly.
template <typename Before>
static std::vector<int64_t> firstK(int64_t numel, int64_t k, Before before) {
  std::vector<int64_t> order(numel);
  std::iota(order.begin(), order.end(), 0);
  std::nth_element(order.begin(), order.begin() + (k - 1), order.end(), before);
  order.resize(k);
  std::sort(order.begin(), order.end());
  return order;
}

std::optional<std::vector<int64_t>>
sparse::selectByMagnitude(const Tensor &weight, bool transposed, int64_t k) {
  int64_t numel = weight.numel();
  std::vector<double> magnitude(numel);
  for (int64_t p = 0; p < numel; ++p) {
    double w = weight.getDouble(storedIndex(p, weight.shape(), transposed));
    if (std::isnan(w))
      return std::nullopt;
    magnitude[p] = std::abs(w);
  }
  return firstK(numel, k, [&](int64_t x, int64_t y) {
    return magnitude[x] != magnitude[y] ? magnitude[x] > magnitude[y] : x < y;
  });
}

uint32_t sparse::randomStream(StringRef modulePath) {
  uint32_t hash = 2166136261u;
  for (unsigned char c : modulePath) {
    hash ^= c;
    hash *= 16777619u;
  }
  return hash;
}

std::vector<int64_t> sparse::selectAtRandom(int64_t numel, int64_t k,
                                            uint64_t seed, uint32_t stream) {
  std::vector<uint32_t> draws(numel);
  for (int64_t p = 0; p < numel; ++p)
    draws[p] =
        dropout::draw(seed, /*step=*/0, stream, static_cast<uint64_t>(p));
  return firstK(numel, k, [&](int64_t x, int64_t y) {
    return draws[x] != draws[y] ? draws[x] < draws[y] : x < y;
  });
}

//===----------------------------------------------------------------------===//
// The pass
//===----------------------------------------------------------------------===//

namespace {

constexpr StringLiteral kPass = "peft-insert-sparse";

class Inserter {
public:
  Inserter(ModuleOp module, const ModuleTable &table)
      : module_(module), table_(table), builder_(module.getContext()),
        symbols_(module), params_(module, symbols_, kPass), weights_(module) {}

  LogicalResult insert(const spec::SparseConfig &config,
                       const spec::AdapterTarget &target);

private:
  ModuleOp module_;
  const ModuleTable &table_;
  OpBuilder builder_;
  SymbolTable symbols_;
  ParamFactory params_;
  /// Reads the frozen weights (mapped from their files, not copied).
  ref::Evaluator weights_;
};

LogicalResult Inserter::insert(const spec::SparseConfig &config,
                               const spec::AdapterTarget &target) {
  const Module *module = table_.find(target.path);
  const ParamSlot *slot = module ? module->slot("weight") : nullptr;
  if (!module || !slot)
    return module_.emitError(kPass)
           << ": " << target.path << " has no weight to train sparsely";
  Location loc = slot->user->getLoc();
  const ParamInfo &info = table_.params.at(slot->param);
  if (!info.tiedTo.empty())
    return emitError(loc) << kPass << ": the weight of " << target.path
                          << " is tied to " << info.tiedTo
                          << "; SPARSE on tied weights is not supported "
                             "(target another module)";
  auto weightParam = symbols_.lookup<pir::ParamOp>(slot->param);
  if (!weightParam)
    return emitError(loc) << kPass << ": the weight of " << target.path << " (@"
                          << slot->param
                          << ") is no longer a param of the module";
  RankedTensorType weightType = weightParam.getTensorType();
  if (weightType.getRank() != 2)
    return emitError(loc) << kPass << ": the weight of " << target.path
                          << " is " << weightType << ", not a matrix";
  // PyTorch's layout is [out, in]; an export's x·W stores [in, out].
  bool transposed = !module->weightOutIn;
  int64_t numel = weightType.getNumElements();
  int64_t k = sparse::selectedCount(config.density, numel);

  std::vector<int64_t> indices;
  if (config.selection == spec::SparseSelection::Magnitude) {
    FailureOr<Tensor> weight = weights_.paramValue(weightParam.getOperation());
    if (failed(weight))
      return failure();
    std::optional<std::vector<int64_t>> chosen =
        sparse::selectByMagnitude(*weight, transposed, k);
    if (!chosen)
      return emitError(loc) << kPass << ": the weight of " << target.path
                            << " holds NaN; its entries have no magnitude "
                               "order (use selection: random)";
    indices = std::move(*chosen);
  } else {
    indices = sparse::selectAtRandom(numel, k, config.seed,
                                     sparse::randomStream(target.path));
  }

  MLIRContext *ctx = module_.getContext();
  auto indexType = RankedTensorType::get({k}, IntegerType::get(ctx, 64));
  pir::ParamOp indexParam =
      params_.create(loc, target.path + ".sparse_indices", indexType,
                     /*trainable=*/false, /*init=*/"", /*method=*/"");
  pir::ParamOp delta =
      indexParam ? params_.create(
                       loc, target.path + ".sparse_delta",
                       RankedTensorType::get({k}, weightType.getElementType()),
                       /*trainable=*/true, "zeros", "sparse")
                 : nullptr;
  if (!delta)
    return failure();
  indexParam.setValueAttr(DenseElementsAttr::get(indexType, ArrayRef(indices)));

  // The module reads W through a chain of layout ops; the delta applies to
  // W as stored, below that chain.
  builder_.setInsertionPoint(slot->user);
  Value read = slot->user->getOperand(slot->operand);
  auto use = [&](pir::ParamOp param) { return useParam(builder_, loc, param); };
  auto sum = builder_.create<pir::SparseDeltaOp>(
      loc, use(weightParam), use(indexParam), use(delta), transposed);
  sum->setAttr(attr::kModule, builder_.getStringAttr(target.path));
  slot->user->setOperand(slot->operand,
                         replicateChain(builder_, read, sum.getResult()));
  // The old chain, down to its peft.use, is dead unless something else
  // reads it.
  for (Operation *def = read.getDefiningOp(); def && def->use_empty();) {
    Operation *next =
        def->getNumOperands() ? def->getOperand(0).getDefiningOp() : nullptr;
    def->erase();
    def = next;
  }
  return success();
}

/// Adds the SPARSE deltas of the spec attached to `module` to its function
/// `funcName` (nothing without a SPARSE method).
LogicalResult insertSparse(ModuleOp module, StringRef funcName) {
  FailureOr<spec::PeftSpec> spec = readSpecAttr(module, kPass);
  if (failed(spec))
    return failure();
  if (llvm::none_of(spec->methods, [](const spec::MethodSpec &m) {
        return m.sparse() != nullptr;
      }))
    return success();
  FailureOr<MethodTargets> targets =
      resolveMethodTargets(module, funcName, *spec, kPass);
  if (failed(targets))
    return failure();
  Inserter inserter(module, targets->table);
  for (const spec::ResolvedMethod &method : targets->resolved.methods) {
    const spec::SparseConfig *config =
        spec->methods[method.methodIndex].sparse();
    if (!config)
      continue;
    for (const spec::AdapterTarget &target : method.adapters)
      if (failed(inserter.insert(*config, target)))
        return failure();
  }
  return success();
}

struct InsertSparsePass
    : public peft::impl::InsertSparseBase<InsertSparsePass> {
  using InsertSparseBase::InsertSparseBase;

  void runOnOperation() override {
    if (failed(insertSparse(getOperation(), funcName)))
      signalPassFailure();
  }
};

} // namespace
