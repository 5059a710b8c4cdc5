//===- StepStats.cpp - GEMMs, FLOPs and kept activations of a step --------===//
//
// `@train_step` is one block in three parts, in this order, as
// peft-differentiate and peft-optimizer build it: the forward ops (exactly
// the ops the loss, result 0, depends on), the backward sweep (everything
// up to the update), and, after peft-optimizer with accumulation 1, the
// update, which starts with `peft.lr_schedule`. The statistics follow from
// that split plus dataflow; no op is marked.
//
//===----------------------------------------------------------------------===//
#include "passes/StepStats.h"
#include "passes/Passes.h"
#include "passes/analysis/ModuleNames.h"

#include "llvm/ADT/DenseMap.h"
#include "llvm/ADT/DenseSet.h"
#include "llvm/ADT/SetVector.h"

#include <optional>
#include <set>

namespace peft {
#define GEN_PASS_DEF_STEPSTATS
#include "passes/Passes.h.inc"
} // namespace peft

using namespace mlir;
using namespace peft;
using namespace peft::stats;

namespace {

constexpr StringLiteral kPass = "peft-step-stats";
constexpr StringLiteral kGradOf = "peft.grad_of";

int64_t numel(Value v) {
  return cast<RankedTensorType>(v.getType()).getNumElements();
}
ArrayRef<int64_t> shapeOf(Value v) {
  return cast<RankedTensorType>(v.getType()).getShape();
}
int64_t product(ArrayRef<int64_t> dims) {
  int64_t p = 1;
  for (int64_t d : dims)
    p *= d;
  return p;
}

/// Bytes of one element (i1 and other sub-byte types take a byte).
int64_t elementBytes(Value v) {
  Type et = getElementTypeOrSelf(v.getType());
  if (!et.isIntOrFloat())
    return 0;
  return std::max<int64_t>(1, (et.getIntOrFloatBitWidth() + 7) / 8);
}

/// 2·|result|·K summed over the einsum's contracted labels (those of the
/// inputs missing from the output); none (elementwise) is not a GEMM.
GemmCount einsumGemms(nn::EinsumOp op) {
  GemmCount count;
  if (op.getInputs().size() < 2)
    return count;
  StringRef equation = op.getEquation();
  auto [lhs, rhs] = equation.split("->");
  bool explicitOutput = equation.contains("->");
  SmallVector<StringRef> terms;
  lhs.split(terms, ',');
  if (terms.size() != op.getInputs().size())
    return count;
  std::map<char, int64_t> sizes, uses;
  for (auto [term, input] : llvm::zip(terms, op.getInputs())) {
    term = term.trim();
    ArrayRef<int64_t> shape = shapeOf(input);
    size_t ellipsis = term.find("...");
    StringRef head = term.substr(0, ellipsis);
    StringRef tail =
        ellipsis == StringRef::npos ? StringRef() : term.substr(ellipsis + 3);
    if (head.size() + tail.size() > shape.size())
      return count;
    for (size_t i = 0; i < head.size(); ++i)
      sizes[head[i]] = shape[i], ++uses[head[i]];
    for (size_t i = 0; i < tail.size(); ++i)
      sizes[tail[i]] = shape[shape.size() - tail.size() + i], ++uses[tail[i]];
  }
  std::set<char> output;
  if (explicitOutput) {
    for (char c : rhs)
      output.insert(c);
  } else {
    for (auto [label, n] : uses)
      if (n == 1)
        output.insert(label);
  }
  int64_t contracted = 1;
  bool any = false;
  for (auto [label, size] : sizes)
    if (!output.count(label)) {
      contracted *= size;
      any = true;
    }
  if (any)
    count.add(1, 2 * numel(op.getResult()) * contracted);
  return count;
}

/// peft.lora/peft.dora as their component GEMMs (the reference kernel's and
/// peft-decompose's): x·W [rows, in]·[in, out], x̃·Aᵀ [rows, in]·[in, r],
/// (x̃·Aᵀ)·Bᵀ [rows, r]·[r, out]; DoRA adds x̃·W when adapter_input differs
/// from x, and its norm as peft-decompose expands it (B·A never formed):
/// A·W [r, in]·[in, out], A·Aᵀ [r, in]·[in, r], B·(A·Aᵀ) [out, r]·[r, r].
GemmCount lowRankGemms(Operation *op, Value x, Value a, Value b,
                       bool separateAdapterInput, bool dora) {
  GemmCount count;
  int64_t r = shapeOf(a)[0], in = shapeOf(a)[1], out = shapeOf(b)[0];
  int64_t rows = numel(x) / in;
  count.add(1, 2 * rows * in * out);
  if (separateAdapterInput)
    count.add(1, 2 * rows * in * out);
  count.add(1, 2 * rows * in * r);
  count.add(1, 2 * rows * r * out);
  if (dora) {
    count.add(1, 2 * r * in * out);
    count.add(1, 2 * r * in * r);
    count.add(1, 2 * out * r * r);
  }
  return count;
}

/// The module path an op belongs to: its `peft.module`, else the TorchScript
/// node scope of its location (`/model/layers.0/self_attn/MatMul` ->
/// `model.layers.0.self_attn`). Backward ops carry the location of the
/// forward op they differentiate.
std::string pathOf(Operation *op) {
  if (auto path = op->getAttrOfType<StringAttr>(analysis::attr::kModule))
    return path.str();
  SmallVector<Location> pending{op->getLoc()};
  while (!pending.empty()) {
    Location loc = pending.pop_back_val();
    if (auto fused = dyn_cast<FusedLoc>(loc)) {
      for (Location inner : llvm::reverse(fused.getLocations()))
        pending.push_back(inner);
    } else if (auto site = dyn_cast<CallSiteLoc>(loc)) {
      pending.push_back(site.getCallee());
    } else if (auto named = dyn_cast<NameLoc>(loc)) {
      StringRef scope = named.getName().strref();
      if (scope.starts_with("/") && scope.count('/') >= 2) {
        // Drop the node's own name; the rest is the module path.
        std::string path = scope.drop_front().rsplit('/').first.str();
        std::replace(path.begin(), path.end(), '/', '.');
        return path;
      }
      pending.push_back(named.getChildLoc());
    }
  }
  return "";
}

int layerOf(Operation *op) {
  std::optional<int> layer = analysis::layerIndexOf(pathOf(op));
  return layer ? *layer : -1;
}

bool isUpdateStart(Operation &op) {
  return isa<pir::LrScheduleOp, pir::ClipGradNormOp, pir::AdamWOp, pir::SgdOp,
             pir::AssignOp>(op);
}

/// Ops a weight gradient passes through on its way from its GEMM to the
/// param: cotangent sums, layout and type changes, the sum over broadcast
/// batch dims.
bool isGradientPlumbing(Operation *op) {
  return isa<nn::AddOp, nn::ReshapeOp, nn::TransposeOp, nn::CastOp,
             nn::ReduceSumOp>(op);
}

/// Ops that change a tensor's layout or type but not what it holds.
bool isLayoutOnly(Operation *op) {
  return isa<nn::ReshapeOp, nn::TransposeOp, nn::CastOp>(op);
}

/// The param `v` reads, through layout changes; empty when none.
StringRef paramRead(Value v) {
  while (Operation *def = v.getDefiningOp()) {
    if (auto use = dyn_cast<pir::UseOp>(def))
      return use.getParam();
    if (!isLayoutOnly(def))
      return "";
    v = def->getOperand(0);
  }
  return "";
}

/// `v` with its layout changes peeled off.
Value throughLayout(Value v) {
  while (Operation *def = v.getDefiningOp()) {
    if (!isLayoutOnly(def))
      break;
    v = def->getOperand(0);
  }
  return v;
}

class Counter {
public:
  Counter(ModuleOp module, func::FuncOp fn) : module_(module), fn_(fn) {}
  FailureOr<StepStats> run();

private:
  enum class Phase { Forward, Backward, Update };
  Phase phaseOf(Operation *op) const { return phase_.lookup(op); }
  LogicalResult findGradients();
  std::optional<std::string> weightGradientParam(Operation *gemm);
  std::optional<std::string> frozenWeightGradient(Operation *gemm);

  ModuleOp module_;
  func::FuncOp fn_;
  DenseMap<Operation *, Phase> phase_;
  /// Gradient value -> the param it is the gradient of.
  DenseMap<Value, std::string> gradients_;
};

/// The gradient of each trainable param: the results marked peft.grad_of,
/// or, once peft-optimizer consumed them, the `grad` operand of each
/// peft.adamw/peft.sgd traced back through the update's clipping and casts.
LogicalResult Counter::findGradients() {
  for (unsigned i = 0; i < fn_.getNumResults(); ++i)
    if (auto of = fn_.getResultAttrOfType<FlatSymbolRefAttr>(i, kGradOf))
      gradients_[fn_.front().getTerminator()->getOperand(i)] =
          of.getValue().str();
  if (!gradients_.empty())
    return success();
  for (Operation &op : fn_.front()) {
    if (!isa<pir::AdamWOp, pir::SgdOp>(op))
      continue;
    auto use = op.getOperand(0).getDefiningOp<pir::UseOp>();
    if (!use)
      return op.emitError(kPass) << ": the updated param is not a peft.use";
    Value grad = op.getOperand(1);
    while (Operation *def = grad.getDefiningOp()) {
      if (phaseOf(def) != Phase::Update)
        break;
      if (auto clip = dyn_cast<pir::ClipGradNormOp>(def)) {
        unsigned index = cast<OpResult>(grad).getResultNumber();
        if (index >= clip.getGrads().size())
          break;
        grad = clip.getGrads()[index];
      } else if (isa<nn::CastOp>(def)) {
        grad = def->getOperand(0);
      } else {
        break;
      }
    }
    gradients_[grad] = use.getParam().str();
  }
  if (gradients_.empty())
    return fn_.emitError(kPass)
           << ": @" << fn_.getSymName()
           << " returns no gradient and updates no param; run "
              "peft-differentiate first";
  return success();
}

/// The param whose gradient `gemm`'s result is: every path from the result
/// runs through gradient plumbing only and ends at that param's gradient.
std::optional<std::string> Counter::weightGradientParam(Operation *gemm) {
  std::optional<std::string> param;
  SmallVector<Value> pending(gemm->getResults());
  DenseSet<Value> seen;
  while (!pending.empty()) {
    Value v = pending.pop_back_val();
    if (!seen.insert(v).second)
      continue;
    auto grad = gradients_.find(v);
    if (grad != gradients_.end()) {
      if (param && *param != grad->second)
        return std::nullopt;
      param = grad->second;
      continue;
    }
    for (Operation *user : v.getUsers()) {
      if (phaseOf(user) != Phase::Backward || !isGradientPlumbing(user))
        return std::nullopt;
      pending.append(user->result_begin(), user->result_end());
    }
  }
  return param;
}

/// The frozen param whose gradient `gemm` computes, if any: it reads
/// the activation X of a forward product X·W (nn.matmul, or peft.lora/dora's
/// frozen weight) whose W is a frozen param, and its result has W's shape
/// (or its transpose), as dW = Xᵀ·dY does.
std::optional<std::string> Counter::frozenWeightGradient(Operation *gemm) {
  if (!isa<nn::MatMulOp>(gemm))
    return std::nullopt;
  ArrayRef<int64_t> produced = shapeOf(gemm->getResult(0));
  for (Value operand : gemm->getOperands()) {
    Value x = throughLayout(operand);
    if (!paramRead(x).empty())
      continue;
    for (Operation *user : x.getUsers()) {
      if (phaseOf(user) != Phase::Forward)
        continue;
      Value weight;
      if (auto matmul = dyn_cast<nn::MatMulOp>(user)) {
        weight = matmul.getLhs() == x ? matmul.getRhs() : matmul.getLhs();
      } else if (auto lora = dyn_cast<pir::LoraOp>(user)) {
        if (lora.getInput() == x || lora.getAdapterInput() == x)
          weight = lora.getWeight();
      } else if (auto dora = dyn_cast<pir::DoraOp>(user)) {
        if (dora.getInput() == x || dora.getAdapterInput() == x)
          weight = dora.getWeight();
      }
      if (!weight || weight == x)
        continue;
      StringRef name = paramRead(weight);
      auto param = name.empty() ? pir::ParamOp()
                                : module_.lookupSymbol<pir::ParamOp>(name);
      ArrayRef<int64_t> w = shapeOf(weight);
      bool sameShape =
          produced == w || (w.size() == 2 && produced.size() == 2 &&
                            produced[0] == w[1] && produced[1] == w[0]);
      if (param && param.isFrozen() && sameShape)
        return name.str();
    }
  }
  return std::nullopt;
}

FailureOr<StepStats> Counter::run() {
  Block &body = fn_.front();
  Operation *ret = body.getTerminator();
  if (ret->getNumOperands() == 0)
    return fn_.emitError(kPass) << ": @" << fn_.getSymName()
                                << " returns nothing; its first result must "
                                   "be the loss";

  // Forward: the loss's dependencies.
  DenseSet<Operation *> forward;
  SmallVector<Value> pending{ret->getOperand(0)};
  while (!pending.empty()) {
    Operation *def = pending.pop_back_val().getDefiningOp();
    if (!def || def->getBlock() != &body || !forward.insert(def).second)
      continue;
    pending.append(def->operand_begin(), def->operand_end());
  }
  bool update = false;
  for (Operation &op : body.without_terminator()) {
    update = update || (!forward.contains(&op) && isUpdateStart(op));
    phase_[&op] = forward.contains(&op) ? Phase::Forward
                  : update              ? Phase::Update
                                        : Phase::Backward;
  }
  phase_[ret] = Phase::Update;
  if (failed(findGradients()))
    return failure();

  // Values computed from the step's inputs (not from params and constants
  // alone): what an activation is.
  DenseSet<Value> dataDependent(body.args_begin(), body.args_end());
  for (Operation &op : body.without_terminator())
    if (phaseOf(&op) == Phase::Forward &&
        llvm::any_of(op.getOperands(),
                     [&](Value v) { return dataDependent.contains(v); }))
      dataDependent.insert(op.result_begin(), op.result_end());

  StepStats stats;
  stats.function = fn_.getSymName().str();
  std::set<std::string> frozen;
  DenseSet<Value> kept;
  for (Operation &op : body.without_terminator()) {
    int layer = layerOf(&op);
    LayerStats &perLayer = stats.layers[layer];
    GemmCount gemms = gemmsOf(&op);
    switch (phaseOf(&op)) {
    case Phase::Forward:
      ++stats.forwardOps;
      ++perLayer.forwardOps;
      stats.forward.add(gemms.gemms, gemms.flops);
      perLayer.forward.add(gemms.gemms, gemms.flops);
      break;
    case Phase::Backward:
      ++stats.backwardOps;
      ++perLayer.backwardOps;
      stats.backward.add(gemms.gemms, gemms.flops);
      perLayer.backward.add(gemms.gemms, gemms.flops);
      if (gemms.gemms) {
        if (std::optional<std::string> param = weightGradientParam(&op)) {
          stats.weightGradient.add(gemms.gemms, gemms.flops);
          stats.weightGradientByParam[*param].add(gemms.gemms, gemms.flops);
          auto decl = module_.lookupSymbol<pir::ParamOp>(*param);
          if (decl && decl.isFrozen())
            frozen.insert(*param);
        } else if (std::optional<std::string> param =
                       frozenWeightGradient(&op)) {
          frozen.insert(*param);
        }
      }
      for (Value operand : op.getOperands()) {
        Operation *def = operand.getDefiningOp();
        if (!def || phaseOf(def) != Phase::Forward ||
            !dataDependent.contains(operand) || !kept.insert(operand).second)
          continue;
        int64_t bytes = numel(operand) * elementBytes(operand);
        ++stats.keptValues;
        stats.keptBytes += bytes;
        LayerStats &owner = stats.layers[layerOf(def)];
        ++owner.keptValues;
        owner.keptBytes += bytes;
      }
      break;
    case Phase::Update:
      ++stats.updateOps;
      break;
    }
  }
  stats.frozenWithWeightGradient.assign(frozen.begin(), frozen.end());
  for (auto param : module_.getOps<pir::ParamOp>()) {
    RankedTensorType type = param.getTensorType();
    int64_t values = type.getNumElements();
    int64_t bytes =
        values * std::max<int64_t>(1, (type.getElementTypeBitWidth() + 7) / 8);
    // peft-optimizer marks its state params with `peft.state_of`.
    if (param->hasAttr("peft.state_of")) {
      stats.stateValues += values;
      stats.stateBytes += bytes;
    } else if (param.getTrainable()) {
      stats.trainableValues += values;
      stats.trainableBytes += bytes;
    }
  }
  return stats;
}

struct StepStatsPass : peft::impl::StepStatsBase<StepStatsPass> {
  using Base::Base;

  void runOnOperation() override {
    FailureOr<StepStats> stats = computeStepStats(getOperation(), funcName);
    if (failed(stats))
      return signalPassFailure();
    printStepStats(*stats, llvm::outs());
    markAllAnalysesPreserved();
  }
};

} // namespace

GemmCount peft::stats::gemmsOf(Operation *op) {
  GemmCount count;
  if (auto matmul = dyn_cast<nn::MatMulOp>(op)) {
    ArrayRef<int64_t> lhs = shapeOf(matmul.getLhs());
    int64_t k = lhs.size() == 1            ? lhs[0]
                : matmul.getTransposeLhs() ? lhs[lhs.size() - 2]
                                           : lhs.back();
    count.add(1, 2 * numel(matmul.getResult()) * k);
  } else if (auto conv = dyn_cast<nn::ConvOp>(op)) {
    // Weight [C_out, C_in/group, k...]: each output element sums
    // C_in/group·∏k products.
    count.add(1, 2 * numel(conv.getResult()) *
                     product(shapeOf(conv.getWeight()).drop_front()));
  } else if (auto convT = dyn_cast<nn::ConvTransposeOp>(op)) {
    // Weight [C_in, C_out/group, k...]: each input element feeds
    // C_out/group·∏k outputs.
    count.add(1, 2 * numel(convT.getInput()) *
                     product(shapeOf(convT.getWeight()).drop_front()));
  } else if (auto grad = dyn_cast<nn::ConvWeightGradOp>(op)) {
    // dW [C_out, C_in/group, k...] = Σ over every output element.
    count.add(1, 2 * numel(grad.getGradOutput()) *
                     product(shapeOf(grad.getResult()).drop_front()));
  } else if (auto einsum = dyn_cast<nn::EinsumOp>(op)) {
    count = einsumGemms(einsum);
  } else if (auto attention = dyn_cast<nn::AttentionOp>(op)) {
    // Q·Kᵀ and P·V over the P + S keys: [B, H, T, D]·[D, P + S] and
    // [B, H, T, P + S]·[P + S, D].
    int64_t keys = shapeOf(attention.getKey())[2] + attention.getPrefixLength();
    for (int i = 0; i < 2; ++i)
      count.add(1, 2 * numel(attention.getResult()) * keys);
  } else if (auto lora = dyn_cast<pir::LoraOp>(op)) {
    count = lowRankGemms(op, lora.getInput(), lora.getLoraA(), lora.getLoraB(),
                         false, false);
  } else if (auto dora = dyn_cast<pir::DoraOp>(op)) {
    count = lowRankGemms(op, dora.getInput(), dora.getLoraA(), dora.getLoraB(),
                         bool(dora.getAdapterInput()), true);
  } else if (auto loreft = dyn_cast<pir::LoreftOp>(op)) {
    // On the P rows per example `positions` names: h·R, h·Wᵀ [rows, d]·[d,
    // r] and (…)·Rᵀ [rows, r]·[r, d].
    ArrayRef<int64_t> w = shapeOf(loreft.getWeight());
    int64_t rows = numel(loreft.getPositions());
    for (int i = 0; i < 3; ++i)
      count.add(1, 2 * rows * w[0] * w[1]);
  } else if (auto nodireft = dyn_cast<pir::NodireftOp>(op)) {
    // h·Wᵀ [rows, d]·[d, r] and (…)·P [rows, r]·[r, d].
    ArrayRef<int64_t> w = shapeOf(nodireft.getWeight());
    int64_t rows = numel(nodireft.getPositions());
    for (int i = 0; i < 2; ++i)
      count.add(1, 2 * rows * w[0] * w[1]);
  }
  return count;
}

FailureOr<StepStats> peft::stats::computeStepStats(ModuleOp module,
                                                   StringRef funcName) {
  auto fn = module.lookupSymbol<func::FuncOp>(funcName);
  if (!fn || fn.isExternal() || !llvm::hasSingleElement(fn.getBody()))
    return module.emitError(kPass)
           << ": the module has no function @" << funcName
           << " with a body of one block (run peft-differentiate first)";
  return Counter(module, fn).run();
}

void peft::stats::printStepStats(const StepStats &s, llvm::raw_ostream &os) {
  auto gemms = [&](const GemmCount &c) {
    os << c.gemms << " GEMMs, " << c.flops << " FLOPs";
  };
  os << "step statistics of @" << s.function << "\n";
  os << "forward: " << s.forwardOps << " ops, ";
  gemms(s.forward);
  os << "\nbackward: " << s.backwardOps << " ops, ";
  gemms(s.backward);
  os << "\nupdate: " << s.updateOps << " ops\n";
  os << "weight-gradient: ";
  gemms(s.weightGradient);
  os << "\n";
  for (const auto &[param, count] : s.weightGradientByParam) {
    os << "weight-gradient @\"" << param << "\": ";
    gemms(count);
    os << "\n";
  }
  os << "frozen params with a weight gradient: "
     << s.frozenWithWeightGradient.size();
  for (const std::string &name : s.frozenWithWeightGradient)
    os << " @\"" << name << "\"";
  os << "\nkept activations: " << s.keptValues << " values, " << s.keptBytes
     << " bytes\n";
  for (const auto &[layer, l] : s.layers) {
    os << "layer ";
    if (layer < 0)
      os << "-";
    else
      os << layer;
    os << ": forward " << l.forwardOps << " ops, ";
    gemms(l.forward);
    os << "; backward " << l.backwardOps << " ops, ";
    gemms(l.backward);
    os << "; kept " << l.keptValues << " values, " << l.keptBytes << " bytes\n";
  }
  os << "params: trainable " << s.trainableValues << " values, "
     << s.trainableBytes << " bytes; optimizer state " << s.stateValues
     << " values, " << s.stateBytes << " bytes\n";
}
