//===- InsertPrefixTuning.cpp - PEFT prefix tuning on raised attention ----===//
//
// PEFT's PREFIX_TUNING hands the model a past_key_values cache of P
// positions per layer (PeftModel.get_prompt) and prefixes the attention
// mask with P ones. Hugging Face models then (1) put those keys and values
// in front of each layer's own, unrotated (the cache is never rotated),
// always visible, and (2) start the real tokens' positions at P
// (cache_position = arange(P, P + T): LLaMA's rotary angles, GPT-2's
// position-embedding rows). On the imported graph, with attention raised to
// nn.attention (peft-raise-attention), that is: the prefix operands of
// each layer's nn.attention, sliced from one [P, L*2*token_dim] table, and
// every position-id constant (0..T-1 feeding rotary cos/sin or a
// position-embedding lookup) replaced by P..P+T-1.
//
// The table's layout is PEFT's view(P, 2L, Hkv, D).permute(2, 0, 3, 1, 4):
// row p, column ((2l + kv) * Hkv + h) * D + d is layer l's key (kv = 0) or
// value (kv = 1) of head h at prefix position p.
//
//===----------------------------------------------------------------------===//
#include "passes/MethodInserters.h"
#include "passes/Passes.h"
#include "passes/analysis/ModuleNames.h"

#include "mlir/IR/Builders.h"
#include "mlir/IR/BuiltinTypes.h"
#include "mlir/IR/SymbolTable.h"
#include "mlir/Pass/PassManager.h"

namespace peft {
#define GEN_PASS_DEF_INSERTPREFIXTUNING
#include "passes/Passes.h.inc"
} // namespace peft

using namespace mlir;
using namespace peft;
using namespace peft::analysis;
namespace attr = peft::analysis::attr;

namespace {

constexpr StringLiteral kPassName = "peft-insert-prefix-tuning";
constexpr StringLiteral kMethodName = "prefix_tuning";

/// The values 0..n-1 of an integer constant whose dims are all 1 but the
/// last (a position-id row, [T], [1, T], [1, 1, T]); n, or 0 when `value`
/// is not one.
int64_t iotaLength(Value value) {
  auto constant = value.getDefiningOp<nn::ConstantOp>();
  if (!constant)
    return 0;
  auto elements = dyn_cast<DenseIntElementsAttr>(constant.getValue());
  auto type = dyn_cast<RankedTensorType>(value.getType());
  if (!elements || !type || type.getRank() == 0 ||
      !isa<IntegerType>(type.getElementType()) ||
      type.getElementType().getIntOrFloatBitWidth() < 8)
    return 0;
  if (llvm::any_of(type.getShape().drop_back(),
                   [](int64_t d) { return d != 1; }))
    return 0;
  int64_t expected = 0;
  for (const APInt &v : elements.getValues<APInt>())
    if (v.getSExtValue() != expected++)
      return 0;
  return expected;
}

/// Whether `cast` (an int -> float cast of position ids) feeds a rotary
/// embedding: its result reaches nn.cos or nn.sin through the ops that
/// build the angle table (inv_freq x positions, transposed, concatenated).
bool feedsRotary(Operation *cast) {
  SmallVector<Operation *> work{cast};
  llvm::SmallPtrSet<Operation *, 16> seen;
  while (!work.empty()) {
    Operation *op = work.pop_back_val();
    if (!seen.insert(op).second || seen.size() > 64)
      continue;
    for (Operation *user : op->getUsers()) {
      if (isa<nn::CosOp, nn::SinOp>(user))
        return true;
      if (isa<nn::CastOp, nn::ReshapeOp, nn::TransposeOp, nn::BroadcastToOp,
              nn::MatMulOp, nn::ConcatOp, nn::MulOp>(user))
        work.push_back(user);
    }
  }
  return false;
}

/// A position-id use: operand `operand` of `user` reads the constant
/// 0..length-1.
struct PositionUse {
  Operation *user;
  unsigned operand;
  int64_t length;
  /// The position-embedding lookup, for learned positions.
  nn::GatherOp lookup;
};

/// The position ids of the model: integer 0..T-1 constants cast to float
/// for rotary angles, and those indexing a param table other than the
/// word embedding (learned position embeddings). Found by use, not by
/// constant, because the importer shares one 0..T-1 constant between the
/// positions and the causal mask, which must stay as it is.
SmallVector<PositionUse> findPositionUses(func::FuncOp func) {
  SmallVector<PositionUse> uses;
  func.walk([&](Operation *op) {
    if (auto cast = dyn_cast<nn::CastOp>(op)) {
      int64_t n = iotaLength(cast.getInput());
      if (n && isa<FloatType>(getElementTypeOrSelf(cast.getType())) &&
          feedsRotary(cast))
        uses.push_back({op, 0, n, nullptr});
      return;
    }
    if (auto gather = dyn_cast<nn::GatherOp>(op)) {
      if (!gather.getData().getDefiningOp<pir::UseOp>())
        return;
      // Through the reshapes the importer makes of Unsqueeze.
      Value indices = gather.getIndices();
      Operation *through = op;
      unsigned operand = 1;
      // A reshape others read too would change for them as well.
      while (auto reshape = indices.getDefiningOp<nn::ReshapeOp>()) {
        if (!reshape->hasOneUse())
          return;
        through = reshape;
        operand = 0;
        indices = reshape.getInput();
      }
      if (int64_t n = iotaLength(indices))
        uses.push_back({through, operand, n, gather});
    }
  });
  return uses;
}

class PrefixInserter {
public:
  PrefixInserter(ModuleOp module, func::FuncOp func,
                 const spec::PrefixTuningConfig &config)
      : module_(module), func_(func), config_(config), filled_(config),
        builder_(module.getContext()), symbols_(module),
        factory_(module, symbols_, kPassName,
                 "was the pass run twice, or is prefix tuning combined with "
                 "prompt tuning?") {}

  LogicalResult run();
  /// The config with the fields PEFT fills from the model (token_dim,
  /// num_layers, num_attention_heads, encoder_hidden_size) set, after run().
  const spec::PrefixTuningConfig &filled() const { return filled_; }

private:
  pir::ParamOp createParam(StringRef name, ArrayRef<int64_t> shape,
                           Type element, StringRef init,
                           DictionaryAttr initArgs = nullptr);
  Value use(OpBuilder &b, pir::ParamOp param);
  /// Emits PEFT's PrefixEncoder at the builder's point: the [P, 2L*td]
  /// table (the embedding itself without projection).
  Value encoder(OpBuilder &b, Location loc);
  LogicalResult checkAgainstModel(int64_t layers, int64_t kvHeads,
                                  int64_t tokenDim);
  /// The position ids to renumber, checked before anything changes.
  FailureOr<SmallVector<PositionUse>> positionUses(int64_t p, int64_t t);
  void offsetPositions(ArrayRef<PositionUse> uses, int64_t p);
  void addSavedFunction(Location loc, RankedTensorType tableType);

  ModuleOp module_;
  func::FuncOp func_;
  const spec::PrefixTuningConfig &config_;
  spec::PrefixTuningConfig filled_;
  OpBuilder builder_;
  SymbolTable symbols_;
  ParamFactory factory_;
  // The encoder's params, in PEFT's order.
  SmallVector<pir::ParamOp> params_;
};

pir::ParamOp PrefixInserter::createParam(StringRef name,
                                         ArrayRef<int64_t> shape, Type element,
                                         StringRef init,
                                         DictionaryAttr initArgs) {
  pir::ParamOp param = factory_.create(
      module_.getLoc(), name, RankedTensorType::get(shape, element),
      /*trainable=*/true, init, kMethodName, initArgs);
  if (param)
    params_.push_back(param);
  return param;
}

Value PrefixInserter::use(OpBuilder &b, pir::ParamOp param) {
  return b.create<pir::UseOp>(param.getLoc(), param.getTensorType(),
                              param.getSymName());
}

Value PrefixInserter::encoder(OpBuilder &b, Location loc) {
  if (!config_.prefixProjection)
    return use(b, params_[0]);
  // Embedding(P, td) -> Linear(td, enc) -> Tanh -> Linear(enc, 2L*td);
  // nn.Linear's weight is [out, in], read transposed.
  auto linear = [&](Value x, pir::ParamOp weight, pir::ParamOp bias) {
    Value product = b.create<nn::MatMulOp>(
        loc, x, use(b, weight), b.getBoolAttr(false), b.getBoolAttr(true));
    return b.create<nn::AddOp>(loc, product, use(b, bias)).getResult();
  };
  Value hidden = linear(use(b, params_[0]), params_[1], params_[2]);
  Value squashed = b.create<nn::TanhOp>(loc, hidden);
  return linear(squashed, params_[3], params_[4]);
}

LogicalResult PrefixInserter::checkAgainstModel(int64_t layers, int64_t kvHeads,
                                                int64_t tokenDim) {
  // PEFT fills these from the model config (token_dim and heads by its
  // grouped-query rule: KV heads x head size); a written value must agree.
  auto check = [&](int64_t written, int64_t model, StringRef key,
                   StringRef what) -> LogicalResult {
    if (!written || written == model)
      return success();
    return func_.emitError() << kPassName << ": '" << key << "' is " << written
                             << " but the model has " << model << " " << what;
  };
  if (failed(check(config_.numLayers, layers, "num_layers",
                   "attention layers (nn.attention ops)")) ||
      failed(check(config_.numAttentionHeads, kvHeads, "num_attention_heads",
                   "key/value heads (PEFT uses num_key_value_heads under "
                   "grouped-query attention)")) ||
      failed(check(config_.tokenDim, tokenDim, "token_dim",
                   "key/value features per position (KV heads x head size)")))
    return failure();
  return success();
}

FailureOr<SmallVector<PositionUse>> PrefixInserter::positionUses(int64_t p,
                                                                 int64_t t) {
  // Position ids number the T tokens the attention sees; other 0..n-1
  // constants are something else.
  SmallVector<PositionUse> uses;
  for (const PositionUse &use : findPositionUses(func_))
    if (use.length == t)
      uses.push_back(use);
  if (uses.empty())
    return func_.emitError()
           << kPassName << ": found no position ids to start at " << p
           << " (an integer 0..T-1 constant cast to float for rotary "
              "cos/sin, or indexing a position-embedding table); Hugging "
              "Face models number the real tokens from P after a prefix, "
              "and without them peftc cannot match that";
  for (const PositionUse &position : uses) {
    // A learned table must have rows for positions P..P+T-1.
    if (nn::GatherOp gather = position.lookup) {
      int64_t rows =
          cast<RankedTensorType>(gather.getData().getType()).getShape()[0];
      if (rows < p + position.length)
        return gather.emitError()
               << kPassName << ": the position-embedding table has " << rows
               << " rows; " << p << " prefix positions and " << position.length
               << " tokens need " << p + position.length;
    }
  }
  return uses;
}

void PrefixInserter::offsetPositions(ArrayRef<PositionUse> uses, int64_t p) {
  for (const PositionUse &position : uses) {
    Value old = position.user->getOperand(position.operand);
    auto type = cast<RankedTensorType>(old.getType());
    OpBuilder b(position.user);
    SmallVector<APInt> values;
    unsigned width = type.getElementType().getIntOrFloatBitWidth();
    for (int64_t i = 0; i < position.length; ++i)
      values.push_back(APInt(width, p + i, /*isSigned=*/true));
    Value shifted = b.create<nn::ConstantOp>(
        NameLoc::get(b.getStringAttr("prefix_tuning.positions"), old.getLoc()),
        type, DenseIntElementsAttr::get(type, values));
    position.user->setOperand(position.operand, shifted);
  }
}

/// `@prefix_prompt_embeddings`: the encoder's output, what PEFT's
/// save_pretrained writes as `prompt_embeddings` when the prefix is
/// projected (the encoder's weights are the trained state, not the saved
/// adapter).
void PrefixInserter::addSavedFunction(Location loc,
                                      RankedTensorType tableType) {
  OpBuilder b(module_.getContext());
  b.setInsertionPointAfter(func_);
  auto type = b.getFunctionType({}, {tableType});
  auto saved = b.create<func::FuncOp>(loc, "prefix_prompt_embeddings", type);
  saved->setAttr("peft.saved_key", b.getStringAttr("prompt_embeddings"));
  b.setInsertionPointToStart(saved.addEntryBlock());
  Value table = encoder(b, loc);
  b.create<func::ReturnOp>(loc, table);
}

LogicalResult PrefixInserter::run() {
  SmallVector<nn::AttentionOp> layers;
  func_.walk([&](nn::AttentionOp op) { layers.push_back(op); });
  if (layers.empty())
    return func_.emitError()
           << kPassName << ": @" << func_.getSymName()
           << " has no attention that peft-raise-attention recognises "
              "(QK^T * scale + mask -> softmax -> * V); prefix tuning "
              "concatenates its keys and values inside nn.attention";
  auto keyType = layers.front().getKey().getType();
  int64_t kvHeads = keyType.getShape()[1], headDim = keyType.getShape()[3];
  Type element = keyType.getElementType();
  for (nn::AttentionOp op : layers) {
    if (op.getPrefixKey())
      return op.emitError() << kPassName
                            << ": this attention has a prefix already (was "
                               "the pass run twice?)";
    auto type = op.getKey().getType();
    if (type.getShape()[1] != kvHeads || type.getShape()[3] != headDim ||
        type.getElementType() != element)
      return op.emitError()
             << kPassName << ": attention layers differ in key/value shape ("
             << type << " here, " << keyType
             << " in the first); PEFT's prefix table has one width";
  }
  int64_t l = layers.size(), p = config_.numVirtualTokens;
  int64_t tokenDim = kvHeads * headDim, width = l * 2 * tokenDim;
  if (failed(checkAgainstModel(l, kvHeads, tokenDim)))
    return failure();
  filled_.tokenDim = tokenDim;
  filled_.numLayers = l;
  filled_.numAttentionHeads = kvHeads;
  if (!filled_.encoderHiddenSize)
    filled_.encoderHiddenSize = tokenDim;
  FailureOr<SmallVector<PositionUse>> positions =
      positionUses(p, layers.front().getQuery().getType().getShape()[2]);
  if (failed(positions))
    return failure();

  // PEFT's PrefixEncoder, its params named as PEFT's state dict names them
  // less the adapter name; without projection the table is what PEFT saves.
  MLIRContext *ctx = module_.getContext();
  auto fanIn = [&](int64_t n) {
    return DictionaryAttr::get(
        ctx, {NamedAttribute(StringAttr::get(ctx, "fan_in"),
                             IntegerAttr::get(IntegerType::get(ctx, 64), n))});
  };
  if (!config_.prefixProjection) {
    if (!createParam("prompt_embeddings", {p, width}, element, "normal"))
      return failure();
  } else {
    int64_t hidden =
        config_.encoderHiddenSize ? config_.encoderHiddenSize : tokenDim;
    if (!createParam("prompt_encoder.embedding.weight", {p, tokenDim}, element,
                     "normal") ||
        !createParam("prompt_encoder.transform.0.weight", {hidden, tokenDim},
                     element, "kaiming_uniform") ||
        !createParam("prompt_encoder.transform.0.bias", {hidden}, element,
                     "uniform_fan_in", fanIn(tokenDim)) ||
        !createParam("prompt_encoder.transform.2.weight", {width, hidden},
                     element, "kaiming_uniform") ||
        !createParam("prompt_encoder.transform.2.bias", {width}, element,
                     "uniform_fan_in", fanIn(hidden)))
      return failure();
  }

  // Once per step, at the top of the model function: the table as
  // [2L, Hkv, P, D], then each layer's key and value planes.
  OpBuilder b(ctx);
  b.setInsertionPointToStart(&func_.getBody().front());
  Location loc = NameLoc::get(b.getStringAttr("prefix_tuning"), func_.getLoc());
  Value table = encoder(b, loc);
  Value split = b.create<nn::ReshapeOp>(
      loc, RankedTensorType::get({p, 2 * l, kvHeads, headDim}, element), table);
  Value planes = b.create<nn::TransposeOp>(
      loc, split, b.getDenseI64ArrayAttr({1, 2, 0, 3}));
  auto planeType = RankedTensorType::get({kvHeads, p, headDim}, element);
  auto plane = [&](int64_t index) -> Value {
    Value slice = b.create<nn::SliceOp>(
        loc, planes, b.getDenseI64ArrayAttr({index, 0, 0, 0}),
        b.getDenseI64ArrayAttr({1, kvHeads, p, headDim}),
        b.getDenseI64ArrayAttr({1, 1, 1, 1}));
    return b.create<nn::ReshapeOp>(loc, planeType, slice);
  };
  SmallVector<Value> keys, values;
  for (int64_t layer = 0; layer < l; ++layer) {
    keys.push_back(plane(2 * layer));
    values.push_back(plane(2 * layer + 1));
  }
  for (auto [layer, op] : llvm::enumerate(layers)) {
    op.getPrefixKeyMutable().assign(keys[layer]);
    op.getPrefixValueMutable().assign(values[layer]);
  }

  offsetPositions(*positions, p);
  if (config_.prefixProjection)
    addSavedFunction(loc, cast<RankedTensorType>(table.getType()));
  func_->setAttr("peft.prefix_tokens", b.getI64IntegerAttr(p));
  return success();
}

struct InsertPrefixTuningPass
    : public peft::impl::InsertPrefixTuningBase<InsertPrefixTuningPass> {
  using InsertPrefixTuningBase::InsertPrefixTuningBase;

  void runOnOperation() override {
    ModuleOp module = getOperation();
    FailureOr<spec::PeftSpec> spec = readSpecAttr(module, kPassName);
    if (failed(spec))
      return signalPassFailure();
    spec::PrefixTuningConfig *config = nullptr;
    for (spec::MethodSpec &method : spec->methods)
      if (auto *prefix = std::get_if<spec::PrefixTuningConfig>(&method.config))
        config = prefix;
    if (!config)
      return;
    auto func = module.lookupSymbol<func::FuncOp>(funcName);
    if (!func) {
      module.emitError() << kPassName << ": no function @" << funcName;
      return signalPassFailure();
    }
    // The prefixes live inside nn.attention: raise the imported pattern
    // first when nothing has.
    bool raised = false;
    func.walk([&](nn::AttentionOp) { raised = true; });
    if (!raised) {
      OpPassManager raise(ModuleOp::getOperationName());
      raise.addPass(createRaiseAttention());
      if (failed(runPipeline(raise, module)))
        return signalPassFailure();
    }
    PrefixInserter inserter(module, func, *config);
    if (failed(inserter.run()))
      return signalPassFailure();
    // As PEFT's _prepare_prompt_learning_config: the spec now says what the
    // model gave, for the saved adapter_config.json.
    *config = inserter.filled();
    writeSpecAttr(module, *spec);
  }
};

} // namespace
