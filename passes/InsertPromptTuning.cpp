//===- InsertPromptTuning.cpp - PEFT prompt tuning on an imported graph ---===//
//
// PEFT prepends P trainable embeddings to every example's input embeddings
// (and ones to its attention mask, -100 to its labels). On an ONNX graph
// the same computation is: the embedding lookup reads concat(table,
// prompt_embeddings) and every example's ids are prefixed with the virtual
// ids V..V+P-1, so the graph's own mask, position and causal logic see
// T + P positions (the model was imported at T + P: spec::importShape).
//
//===----------------------------------------------------------------------===//
#include "passes/MethodInserters.h"

#include "dialects/nn/NNOps.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/Builders.h"
#include "mlir/IR/BuiltinTypes.h"

using namespace mlir;
using namespace peft;
using namespace peft::analysis;

namespace {

constexpr StringLiteral kName = "nn.name";

/// The block argument `value` is, through casts and reshapes.
BlockArgument argumentBehind(Value value) {
  while (Operation *def = value.getDefiningOp()) {
    if (!isa<nn::CastOp, nn::ReshapeOp>(def))
      return nullptr;
    value = def->getOperand(0);
  }
  return dyn_cast<BlockArgument>(value);
}

StringRef argName(func::FuncOp func, unsigned index) {
  auto name = func.getArgAttrOfType<StringAttr>(index, kName);
  return name ? name.getValue() : StringRef();
}

/// Replaces argument `index` ([B, T + P]) of `func` with a [B, T] one that
/// is prefixed inside with `prefix` ([B, P] per row, as int64 values).
LogicalResult prefixArgument(func::FuncOp func, unsigned index,
                             ArrayRef<int64_t> prefixRow, StringRef what) {
  BlockArgument old = func.getArgument(index);
  auto type = cast<RankedTensorType>(old.getType());
  int64_t p = prefixRow.size();
  if (type.getRank() != 2 || type.getShape()[1] <= p)
    return func.emitError("peft-insert-adapters: prompt tuning prefixes '")
           << what << "' with " << p
           << " virtual tokens along axis 1, but it is " << type
           << " (import it at the data's sequence length + " << p << ")";
  int64_t batch = type.getShape()[0], length = type.getShape()[1] - p;
  Type element = type.getElementType();
  auto newType = RankedTensorType::get({batch, length}, element);
  func.insertArgument(index + 1, newType, func.getArgAttrDict(index),
                      old.getLoc());
  BlockArgument replacement = func.getArgument(index + 1);

  OpBuilder b(func.getContext());
  b.setInsertionPointToStart(&func.getBody().front());
  Location loc = NameLoc::get(b.getStringAttr("prompt_tuning"), old.getLoc());
  auto prefixType = RankedTensorType::get({batch, p}, element);
  SmallVector<Attribute> values;
  for (int64_t row = 0; row < batch; ++row)
    for (int64_t v : prefixRow) {
      if (auto floatType = dyn_cast<FloatType>(element))
        values.push_back(b.getFloatAttr(floatType, double(v)));
      else if (auto intType = dyn_cast<IntegerType>(element))
        values.push_back(b.getIntegerAttr(intType, v));
      else
        return func.emitError("peft-insert-adapters: '")
               << what << "' is " << type << "; expected ints or floats";
    }
  Value prefix = b.create<nn::ConstantOp>(
      loc, prefixType, DenseElementsAttr::get(prefixType, values));
  Value joined = b.create<nn::ConcatOp>(loc, ValueRange{prefix, replacement},
                                        b.getI64IntegerAttr(1));
  old.replaceAllUsesWith(joined);
  func.eraseArgument(index);
  return success();
}

} // namespace

LogicalResult peft::insertPromptTuning(ModuleOp module,
                                       const ModuleTable &table,
                                       const spec::PromptTuningConfig &config,
                                       CreateParamFn createParam) {
  // The word embedding: the table module whose lookup reads `input_ids`.
  nn::GatherOp lookup;
  const Module *embedding = nullptr;
  for (const Module &candidate : table.modules) {
    const ParamSlot *slot = candidate.slot("weight");
    auto gather = slot ? dyn_cast<nn::GatherOp>(slot->user) : nullptr;
    if (!gather || candidate.opName != "nn.gather")
      continue;
    BlockArgument ids = argumentBehind(gather.getIndices());
    auto func =
        ids ? dyn_cast<func::FuncOp>(ids.getOwner()->getParentOp()) : nullptr;
    if (func && argName(func, ids.getArgNumber()) == "input_ids") {
      lookup = gather;
      embedding = &candidate;
      break;
    }
  }
  if (!lookup)
    return module.emitError("peft-insert-adapters: prompt tuning needs the "
                            "word embedding (an nn.gather on a param table "
                            "indexed by the input 'input_ids'); the model "
                            "has none");
  auto tableType = cast<RankedTensorType>(lookup.getData().getType());
  int64_t vocab = tableType.getShape()[0], dim = tableType.getShape()[1];
  int64_t p = config.numVirtualTokens;
  if (config.tokenDim && config.tokenDim != dim)
    return module.emitError("peft-insert-adapters: 'token_dim' is ")
           << config.tokenDim << " but the word embedding "
           << embedding->info.path << " has " << dim << " features";
  for (int64_t id : config.initTokenIds)
    if (id >= vocab)
      return module.emitError("peft-insert-adapters: "
                              "'prompt_tuning_init_token_ids' has id ")
             << id << ", outside the vocabulary of " << vocab;

  pir::ParamOp prompt = createParam(
      lookup.getLoc(), "prompt_embeddings", {p, dim},
      tableType.getElementType(),
      config.initFromText ? "embedding_rows" : "normal", "prompt_tuning");
  if (!prompt)
    return failure();
  OpBuilder b(lookup);
  if (config.initFromText) {
    // PEFT repeats the init text's ids to cover P tokens, then cuts to P.
    SmallVector<int64_t> rows;
    while ((int64_t)rows.size() < p)
      rows.append(config.initTokenIds.begin(), config.initTokenIds.end());
    rows.resize(p);
    const ParamSlot *slot = embedding->slot("weight");
    prompt->setAttr(
        attr::kInitArgs,
        b.getDictionaryAttr(
            {b.getNamedAttr(
                 "table", FlatSymbolRefAttr::get(b.getContext(), slot->param)),
             b.getNamedAttr("rows", b.getDenseI64ArrayAttr(rows))}));
  }

  // The lookup reads the table with the P prompt rows appended.
  Location loc = lookup.getLoc();
  Value rows =
      b.create<pir::UseOp>(loc, prompt.getTensorType(), prompt.getSymName());
  Value extended = b.create<nn::ConcatOp>(
      loc, ValueRange{lookup.getData(), rows}, b.getI64IntegerAttr(0));
  lookup->setOperand(0, extended);

  // Each example starts with the virtual tokens, all attended to.
  auto func = cast<func::FuncOp>(
      argumentBehind(lookup.getIndices()).getOwner()->getParentOp());
  SmallVector<int64_t> virtualIds, ones(p, 1);
  for (int64_t i = 0; i < p; ++i)
    virtualIds.push_back(vocab + i);
  for (StringRef name : {"input_ids", "attention_mask"})
    for (unsigned i = 0; i < func.getNumArguments(); ++i)
      if (argName(func, i) == name) {
        if (failed(prefixArgument(func, i,
                                  name == "input_ids" ? ArrayRef(virtualIds)
                                                      : ArrayRef(ones),
                                  name)))
          return failure();
        break;
      }
  func->setAttr("peft.virtual_tokens", b.getI64IntegerAttr(p));
  return success();
}
