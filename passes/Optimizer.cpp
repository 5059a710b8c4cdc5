//===- Optimizer.cpp - clipping, schedule and the optimizer update --------===//
//
// Turns the gradients of @train_step into one optimizer step as Hugging
// Face's Trainer takes it: clip by global norm, step the schedule, AdamW or
// SGD per param, then write params and optimizer state back with
// peft.assign. The optimizer state is ordinary peft.params (zeros at the
// start), so the runtime allocates, checkpoints and restores it like any
// other param. docs/training-ir.md describes the IR this produces.
//
//===----------------------------------------------------------------------===//
#include "passes/Passes.h"
#include "passes/analysis/ModuleNames.h"

#include "llvm/ADT/DenseSet.h"
#include "llvm/ADT/StringExtras.h"
#include "llvm/Support/Regex.h"

#include <cmath>
#include <numeric>
#include <sstream>

namespace peft {
#define GEN_PASS_DEF_OPTIMIZER
#include "passes/Passes.h.inc"
} // namespace peft

using namespace mlir;
using namespace peft;

namespace {

constexpr StringLiteral kGradOf = "peft.grad_of";
constexpr StringLiteral kStateOf = "peft.state_of";
constexpr StringLiteral kStepArg = "peft.step";
constexpr StringLiteral kMetric = "peft.metric";
constexpr StringLiteral kAccumulation = "peft.gradient_accumulation_steps";
constexpr StringLiteral kApplyUpdate = "apply_update";
constexpr StringLiteral kPass = "peft-optimizer";

/// The settings one optimizer step needs, from the spec or the options.
struct Settings {
  bool sgd = false;
  double lr = 0, beta1 = 0, beta2 = 0, eps = 0, weightDecay = 0;
  double momentum = 0;
  bool nesterov = false;
  std::vector<std::string> noDecay;
  double maxGradNorm = 0;
  std::string schedule;
  int64_t warmup = 0;
  double warmupRatio = 0;
  int64_t totalSteps = 0; // 0: unknown
  double numCycles = 0.5;
  int64_t accumulation = 1;
};

/// A double as a person writes it: 0.9, 1e-08.
std::string num(double v) {
  std::ostringstream os;
  os << v;
  return os.str();
}

/// A trainable param and its gradient result in @train_step.
struct Trained {
  pir::ParamOp param;
  unsigned result = 0;
  bool decay = true;
  /// exp_avg, exp_avg_sq (AdamW) or momentum_buffer (SGD with momentum).
  SmallVector<pir::ParamOp, 2> state;
};

/// transformers' name patterns for norm weights (Trainer's
/// get_decay_parameter_names): "layernorm", "rmsnorm", a component "norm",
/// a component ending in "_norm"; `lower` is the lowercased name.
bool hasNormName(StringRef lower) {
  if (lower.contains("layernorm") || lower.contains("rmsnorm"))
    return true;
  SmallVector<StringRef> parts;
  lower.split(parts, '.');
  return llvm::any_of(parts, [](StringRef part) {
    return part == "norm" || part.ends_with("_norm");
  });
}

/// Params read (possibly through a cast or reshape) as the scale or bias of
/// an nn.layer_norm: the weights of LayerNorm modules, whatever their name
/// (GPT-2's `ln_1`).
llvm::DenseSet<StringAttr> layerNormParams(ModuleOp module) {
  llvm::DenseSet<StringAttr> params;
  module.walk([&](nn::LayerNormOp ln) {
    for (Value v : ln->getOperands().drop_front()) {
      Operation *def = v.getDefiningOp();
      while (def && isa<nn::CastOp, nn::ReshapeOp>(def))
        def = def->getOperand(0).getDefiningOp();
      if (auto use = dyn_cast_or_null<pir::UseOp>(def))
        params.insert(use.getParamAttr().getAttr());
    }
  });
  return params;
}

struct OptimizerPass : peft::impl::OptimizerBase<OptimizerPass> {
  using Base::Base;

  void runOnOperation() override;

private:
  /// The element type the global gradient norm is computed in.
  FloatType normType_;

  LogicalResult readSettings(ModuleOp module, Settings &s);
  LogicalResult checkSettings(Operation *at, Settings &s);
  FailureOr<bool> decays(pir::ParamOp param, const Settings &s,
                         const llvm::DenseSet<StringAttr> &normParams);
  /// Appends the update at `b`'s insertion point; returns the global
  /// gradient norm and the lr.
  std::pair<Value, Value> buildUpdate(OpBuilder &b, Location loc, Value step,
                                      ArrayRef<Value> grads,
                                      MutableArrayRef<Trained> trained,
                                      const Settings &s);
};

LogicalResult OptimizerPass::readSettings(ModuleOp module, Settings &s) {
  if (!module->hasAttr(analysis::attr::kSpec)) {
    s.sgd = optimizer == "sgd";
    if (optimizer != "sgd" && optimizer != "adamw")
      return module.emitError(kPass)
             << ": optimizer must be 'adamw' or 'sgd', got '" << optimizer
             << "'";
    s.lr = lr;
    s.beta1 = beta1;
    s.beta2 = beta2;
    s.eps = eps;
    s.weightDecay = weightDecay;
    s.momentum = momentum;
    s.nesterov = nesterov;
    s.noDecay.assign(noDecay.begin(), noDecay.end());
    if (s.noDecay.empty())
      s.noDecay = {"bias", "norm"};
    s.maxGradNorm = maxGradNorm;
    s.schedule = schedule;
    s.warmup = warmup;
    s.warmupRatio = warmupRatio;
    s.totalSteps = totalSteps;
    s.numCycles = numCycles;
    s.accumulation = accumulation;
    return success();
  }
  FailureOr<spec::PeftSpec> spec = analysis::readSpecAttr(module, kPass);
  if (failed(spec))
    return failure();
  const spec::TrainingSpec &t = spec->training;
  const spec::OptimizerSpec &o = t.optimizer;
  s.sgd = o.kind == spec::OptimizerKind::Sgd;
  s.lr = o.lr;
  s.beta1 = o.beta1;
  s.beta2 = o.beta2;
  s.eps = o.eps;
  s.weightDecay = o.weightDecay;
  s.momentum = o.momentum;
  s.nesterov = o.nesterov;
  s.noDecay = o.noDecay;
  s.maxGradNorm = t.maxGradNorm;
  switch (t.schedule.kind) {
  case spec::ScheduleKind::Constant:
    s.schedule = "constant";
    break;
  case spec::ScheduleKind::Linear:
    s.schedule = "linear";
    break;
  case spec::ScheduleKind::Cosine:
    s.schedule = "cosine";
    break;
  }
  s.warmup = t.schedule.warmupSteps.value_or(0);
  s.warmupRatio = t.schedule.warmupRatio.value_or(0.0);
  // The run's length is the trainer's when the spec leaves it open.
  s.totalSteps = t.schedule.totalSteps.value_or(totalSteps);
  s.numCycles = t.schedule.numCycles;
  s.accumulation = t.gradientAccumulationSteps;
  return success();
}

LogicalResult OptimizerPass::checkSettings(Operation *at, Settings &s) {
  auto bad = [&]() { return at->emitError(kPass) << ": "; };
  auto finiteNonNegative = [](double v) { return v >= 0 && std::isfinite(v); };
  if (!finiteNonNegative(s.lr))
    return bad() << "lr must be finite and >= 0, got " << num(s.lr);
  if (!s.sgd) {
    for (auto [name, beta] : {std::pair<const char *, double>{"beta1", s.beta1},
                              {"beta2", s.beta2}})
      if (!(beta >= 0 && beta < 1))
        return bad() << name << " must be in [0, 1), got " << num(beta);
    if (!finiteNonNegative(s.eps))
      return bad() << "eps must be finite and >= 0, got " << num(s.eps);
  }
  if (!finiteNonNegative(s.weightDecay))
    return bad() << "weight_decay must be finite and >= 0, got "
                 << num(s.weightDecay);
  if (!finiteNonNegative(s.momentum))
    return bad() << "momentum must be finite and >= 0, got " << num(s.momentum);
  if (s.sgd && s.nesterov && s.momentum == 0)
    return bad() << "nesterov needs a positive momentum";
  if (!finiteNonNegative(s.maxGradNorm))
    return bad() << "max_grad_norm must be finite and >= 0 (0: no clipping), "
                    "got "
                 << num(s.maxGradNorm);
  if (s.accumulation < 1)
    return bad() << "gradient_accumulation_steps must be >= 1, got "
                 << s.accumulation;
  if (s.schedule != "constant" && s.schedule != "linear" &&
      s.schedule != "cosine")
    return bad() << "schedule must be 'constant', 'linear' or 'cosine', got '"
                 << s.schedule << "'";
  if (s.totalSteps < 0)
    return bad() << "total_steps must be >= 0, got " << s.totalSteps;
  if (s.warmup < 0)
    return bad() << "warmup_steps must be >= 0, got " << s.warmup;
  if (!(s.warmupRatio >= 0 && s.warmupRatio <= 1))
    return bad() << "warmup_ratio must be in [0, 1], got "
                 << num(s.warmupRatio);
  if (!std::isfinite(s.numCycles))
    return bad() << "num_cycles must be finite";
  // transformers: warmup_steps if > 0, else ceil(total * warmup_ratio).
  if (s.warmup == 0 && s.warmupRatio > 0) {
    if (s.totalSteps == 0)
      return bad() << "warmup_ratio needs the run's length: set "
                      "training.schedule.total_steps or the option "
                      "total-steps";
    s.warmup = (int64_t)std::ceil((double)s.totalSteps * s.warmupRatio);
  }
  if (s.schedule != "constant" && s.totalSteps == 0)
    return bad() << "a " << s.schedule
                 << " schedule needs the run's length: set "
                    "training.schedule.total_steps or the option total-steps";
  return success();
}

/// Hugging Face Trainer's decay rule on PEFT's param names: `bias` skips
/// every name containing "bias", `norm` the weights of norm modules, other
/// entries are regular expressions searched in the name.
FailureOr<bool>
OptimizerPass::decays(pir::ParamOp param, const Settings &s,
                      const llvm::DenseSet<StringAttr> &normParams) {
  auto key = param->getAttrOfType<StringAttr>(analysis::attr::kKey);
  StringRef name = key ? key.getValue() : param.getSymName();
  std::string lower = name.lower();
  for (const std::string &entry : s.noDecay) {
    if (entry == "bias") {
      if (StringRef(lower).contains("bias"))
        return false;
    } else if (entry == "norm") {
      if (normParams.contains(param.getSymNameAttr()) || hasNormName(lower))
        return false;
    } else {
      llvm::Regex re(entry);
      std::string error;
      if (!re.isValid(error))
        return param.emitError(kPass)
               << ": no_decay entry '" << entry
               << "' is not a valid regular expression: " << error;
      if (re.match(name))
        return false;
    }
  }
  return true;
}

RankedTensorType scalarType(Type elementType) {
  return RankedTensorType::get({}, elementType);
}

/// A float scalar of `elementType`. A value the type cannot hold exactly
/// (1/3) is made in f64 and cast, so a step evaluated in f64 uses it exactly
/// while compiled code folds the cast to the type's rounding.
Value scalarConstant(OpBuilder &b, Location loc, Type elementType,
                     double value) {
  Type storage = elementType;
  if (auto ft = dyn_cast<FloatType>(elementType); ft && ft.getWidth() < 64) {
    bool lost = false;
    APFloat v(value);
    v.convert(ft.getFloatSemantics(), APFloat::rmNearestTiesToEven, &lost);
    if (lost)
      storage = b.getF64Type();
  }
  RankedTensorType type = scalarType(storage);
  Value c = b.create<nn::ConstantOp>(
      loc, type, DenseElementsAttr::get(type, b.getFloatAttr(storage, value)));
  if (storage != elementType)
    c = b.create<nn::CastOp>(loc, scalarType(elementType), c);
  return c;
}

/// ‖(‖g₁‖, …, ‖gₖ‖)‖₂, in clip_grad_norm_'s order, for when nothing is
/// clipped but the norm is still reported.
Value globalNorm(OpBuilder &b, Location loc, ArrayRef<Value> grads) {
  Value sumOfSquares;
  for (Value g : grads) {
    auto type = cast<RankedTensorType>(g.getType());
    SmallVector<int64_t> all(type.getRank());
    std::iota(all.begin(), all.end(), 0);
    Value sq = b.create<nn::ReduceSumOp>(
        loc, b.create<nn::MulOp>(loc, g, g).getResult(),
        b.getDenseI64ArrayAttr(all), UnitAttr());
    Value norm = b.create<nn::SqrtOp>(loc, sq);
    Value term = b.create<nn::MulOp>(loc, norm, norm);
    sumOfSquares =
        sumOfSquares ? b.create<nn::AddOp>(loc, sumOfSquares, term).getResult()
                     : term;
  }
  return b.create<nn::SqrtOp>(loc, sumOfSquares);
}

std::pair<Value, Value> OptimizerPass::buildUpdate(
    OpBuilder &b, Location loc, Value step, ArrayRef<Value> grads,
    MutableArrayRef<Trained> trained, const Settings &s) {
  MLIRContext *ctx = b.getContext();
  Type f64 = b.getF64Type();
  // Python floats: the lr is a double whatever the params' dtype.
  Value lr = b.create<pir::LrScheduleOp>(
      loc, scalarType(f64), step, b.getStringAttr(s.schedule),
      b.getF64FloatAttr(s.lr), b.getI64IntegerAttr(s.warmup),
      b.getI64IntegerAttr(s.totalSteps), b.getF64FloatAttr(s.numCycles));
  auto castTo = [&](Value v, Type elementType) -> Value {
    auto type = cast<RankedTensorType>(v.getType());
    if (type.getElementType() == elementType)
      return v;
    return b.create<nn::CastOp>(loc, type.clone(elementType), v);
  };
  SmallVector<Value> normed;
  for (Value g : grads)
    normed.push_back(castTo(g, normType_));
  SmallVector<Value> updated(grads);
  Value norm;
  if (s.maxGradNorm > 0) {
    auto clip = b.create<pir::ClipGradNormOp>(loc, ValueRange(normed),
                                              b.getF64FloatAttr(s.maxGradNorm));
    for (auto [i, clipped] : llvm::enumerate(clip.getClipped()))
      updated[i] = castTo(
          clipped, cast<RankedTensorType>(grads[i].getType()).getElementType());
    norm = clip.getTotalNorm();
  } else {
    norm = globalNorm(b, loc, normed);
  }
  for (auto [t, grad] : llvm::zip(trained, updated)) {
    pir::ParamOp param = t.param;
    Location ploc = param.getLoc();
    RankedTensorType type = param.getTensorType();
    auto use = [&](pir::ParamOp p) -> Value {
      return b.create<pir::UseOp>(ploc, type,
                                  FlatSymbolRefAttr::get(p.getSymNameAttr()));
    };
    auto assign = [&](pir::ParamOp p, Value v) {
      b.create<pir::AssignOp>(ploc, FlatSymbolRefAttr::get(p.getSymNameAttr()),
                              v);
    };
    double wd = t.decay ? s.weightDecay : 0.0;
    if (!s.sgd) {
      auto adam = b.create<pir::AdamWOp>(
          ploc, use(param), grad, use(t.state[0]), use(t.state[1]), lr, step,
          b.getF64FloatAttr(s.beta1), b.getF64FloatAttr(s.beta2),
          b.getF64FloatAttr(s.eps), b.getF64FloatAttr(wd));
      assign(param, adam.getNewParam());
      assign(t.state[0], adam.getNewExpAvg());
      assign(t.state[1], adam.getNewExpAvgSq());
    } else {
      // Without momentum PyTorch keeps no buffer; the op passes its buffer
      // operand through, so the gradient stands in for it.
      Value buffer = t.state.empty() ? grad : use(t.state[0]);
      auto sgd = b.create<pir::SgdOp>(
          ploc, use(param), grad, buffer, lr, step,
          b.getF64FloatAttr(s.momentum), b.getF64FloatAttr(0.0),
          BoolAttr::get(ctx, s.nesterov), b.getF64FloatAttr(wd));
      assign(param, sgd.getNewParam());
      if (!t.state.empty())
        assign(t.state[0], sgd.getNewMomentumBuffer());
    }
  }
  return {norm, lr};
}

void OptimizerPass::runOnOperation() {
  ModuleOp module = getOperation();
  MLIRContext *ctx = module.getContext();
  // Takes the diagnostic so it is reported (when the temporary dies) as the
  // pass fails.
  auto fail = [&](InFlightDiagnostic &&) { signalPassFailure(); };

  auto step = module.lookupSymbol<func::FuncOp>(funcName);
  if (!step || step.isExternal() || !llvm::hasSingleElement(step.getBody()))
    return fail(module.emitError(kPass)
                << ": the module has no function @" << funcName
                << " with a body (run peft-differentiate first)");
  for (Operation &op : module.getOps())
    if (op.hasAttr(kStateOf) ||
        (isa<func::FuncOp>(op) &&
         cast<func::FuncOp>(op).getSymName() == kApplyUpdate))
      return fail(op.emitError(kPass)
                  << ": the module already has an optimizer update");
  if (module->hasAttr(kAccumulation))
    return fail(module.emitError(kPass)
                << ": the module already has an optimizer update");
  // A step counter the forward already reads (peft.dropout's masks): the
  // optimizer step when each call is one optimizer step.
  std::optional<unsigned> counterArg;
  for (BlockArgument a : step.getArguments())
    if (step.getArgAttr(a.getArgNumber(), kStepArg))
      counterArg = a.getArgNumber();

  // The gradients peft-differentiate returned, in result order.
  SmallVector<Trained> trained;
  for (unsigned i = 0; i < step.getNumResults(); ++i) {
    auto of = step.getResultAttrOfType<FlatSymbolRefAttr>(i, kGradOf);
    if (!of)
      continue;
    auto param = module.lookupSymbol<pir::ParamOp>(of.getAttr());
    if (!param || !param.getTrainable() ||
        param.getType() != step.getResultTypes()[i])
      return fail(step.emitError(kPass)
                  << ": result " << i << " is the gradient of " << of
                  << ", which is not a trainable peft.param of type "
                  << step.getResultTypes()[i]);
    trained.push_back({param, i, true, {}});
  }
  if (trained.empty())
    return fail(step.emitError(kPass)
                << ": @" << funcName
                << " returns no gradient (no result with peft.grad_of)");
  // The global norm is taken in the widest element type of the params (all
  // of one type, normally; an adapter loaded in f64 onto an f32 model mixes).
  FloatType normType;
  for (Trained &t : trained) {
    auto ft = dyn_cast<FloatType>(t.param.getTensorType().getElementType());
    if (!ft)
      return fail(t.param.emitError(kPass)
                  << ": trainable param @" << t.param.getSymName()
                  << " is not a float tensor");
    if (!normType || ft.getWidth() > normType.getWidth())
      normType = ft;
  }
  normType_ = normType;

  Settings s;
  if (failed(readSettings(module, s)) || failed(checkSettings(step, s)))
    return signalPassFailure();

  // Weight decay per param, and the optimizer state next to each param.
  llvm::DenseSet<StringAttr> normParams = layerNormParams(module);
  OpBuilder mb(ctx);
  for (Trained &t : trained) {
    FailureOr<bool> decay = decays(t.param, s, normParams);
    if (failed(decay))
      return signalPassFailure();
    t.decay = *decay;
    SmallVector<StringRef, 2> names;
    if (!s.sgd)
      names = {"exp_avg", "exp_avg_sq"};
    else if (s.momentum != 0)
      names = {"momentum_buffer"};
    mb.setInsertionPointAfter(t.param);
    for (StringRef suffix : names) {
      std::string name = (t.param.getSymName() + "." + suffix).str();
      if (module.lookupSymbol(name))
        return fail(t.param.emitError(kPass)
                    << ": the optimizer state @\"" << name
                    << "\" would shadow an existing symbol");
      auto state = mb.create<pir::ParamOp>(t.param.getLoc(), name,
                                           t.param.getTensorType());
      state.setInitAttr(mb.getStringAttr("zeros"));
      state->setAttr(kStateOf,
                     FlatSymbolRefAttr::get(t.param.getSymNameAttr()));
      t.state.push_back(state);
    }
  }

  module->setAttr(kAccumulation,
                  IntegerAttr::get(IntegerType::get(ctx, 64), s.accumulation));
  auto stepType = RankedTensorType::get({}, IntegerType::get(ctx, 64));
  auto stepAttrs = DictionaryAttr::get(
      ctx,
      {NamedAttribute(StringAttr::get(ctx, kStepArg), UnitAttr::get(ctx))});
  auto metric = [&](StringRef name) {
    return DictionaryAttr::get(ctx,
                               {NamedAttribute(StringAttr::get(ctx, kMetric),
                                               StringAttr::get(ctx, name))});
  };
  Location loc = step.getLoc();

  if (s.accumulation == 1) {
    // One call per optimizer step: the update goes at the end of the step.
    if (!counterArg) {
      step.insertArgument(0, stepType, stepAttrs, loc);
      counterArg = 0;
    }
    auto ret = cast<func::ReturnOp>(step.front().getTerminator());
    OpBuilder b(ret);
    SmallVector<Value> grads;
    for (Trained &t : trained)
      grads.push_back(ret.getOperand(t.result));
    auto [norm, lr] =
        buildUpdate(b, loc, step.getArgument(*counterArg), grads, trained, s);
    // The loss and any other non-gradient result stay; gradients go.
    llvm::DenseSet<unsigned> gradResults;
    for (Trained &t : trained)
      gradResults.insert(t.result);
    SmallVector<Value> results;
    SmallVector<DictionaryAttr> resultAttrs;
    for (unsigned i = 0; i < ret.getNumOperands(); ++i) {
      if (gradResults.contains(i))
        continue;
      results.push_back(ret.getOperand(i));
      DictionaryAttr attrs = step.getResultAttrDict(i);
      resultAttrs.push_back(attrs ? attrs : DictionaryAttr::get(ctx));
    }
    results.append({norm, lr});
    resultAttrs.append({metric("grad_norm"), metric("lr")});
    b.create<func::ReturnOp>(ret.getLoc(), results);
    ret.erase();
    step.setType(FunctionType::get(ctx, step.getArgumentTypes(),
                                   ValueRange(results).getTypes()));
    step.setAllResultAttrs(resultAttrs);
    return;
  }

  // Gradient accumulation: @train_step stays a micro-batch step (a step
  // counter it has counts micro-batches); the update takes the sums of K
  // micro-batch gradients and the optimizer step.
  SmallVector<Type> argTypes{stepType};
  SmallVector<DictionaryAttr> argAttrs{stepAttrs};
  for (Trained &t : trained) {
    argTypes.push_back(t.param.getTensorType());
    argAttrs.push_back(DictionaryAttr::get(
        ctx,
        {NamedAttribute(StringAttr::get(ctx, kGradOf),
                        FlatSymbolRefAttr::get(t.param.getSymNameAttr()))}));
  }
  mb.setInsertionPointAfter(step);
  auto update = mb.create<func::FuncOp>(loc, kApplyUpdate,
                                        FunctionType::get(ctx, argTypes, {}));
  update.setAllArgAttrs(argAttrs);
  OpBuilder b = OpBuilder::atBlockBegin(update.addEntryBlock());
  // Trainer divides each micro-batch loss by K before backward; the sum of
  // those gradients is the sum of these, times 1/K.
  SmallVector<Value> grads;
  llvm::DenseMap<Type, Value> invK;
  for (BlockArgument arg : update.getArguments().drop_front()) {
    Type et = cast<RankedTensorType>(arg.getType()).getElementType();
    Value &scale = invK[et];
    if (!scale)
      scale = scalarConstant(b, loc, et, 1.0 / s.accumulation);
    grads.push_back(b.create<nn::MulOp>(loc, arg, scale));
  }
  auto [norm, lr] =
      buildUpdate(b, loc, update.getArgument(0), grads, trained, s);
  b.create<func::ReturnOp>(loc, ValueRange{norm, lr});
  update.setType(FunctionType::get(ctx, argTypes,
                                   TypeRange{norm.getType(), lr.getType()}));
  update.setAllResultAttrs(
      ArrayRef<DictionaryAttr>{metric("grad_norm"), metric("lr")});
}

} // namespace
