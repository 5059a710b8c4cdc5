//===- InsertInterventions.cpp - pyreft's interventions on the residual ---===//
//
// ReFT methods of the spec (LOREFT, NODIREFT, DIREFT) intervene on the
// residual stream after chosen decoder layers (pyvene's `block_output`), at
// positions computed per example from the prompt lengths the data carries.
// The residual stream is found structurally: the chain of same-shaped
// `nn.add`s that starts at the token embedding, each add owned by the layer
// of the module whose output it adds; a layer's block output is its last.
//
//===----------------------------------------------------------------------===//
#include "passes/AdapterInit.h"
#include "passes/MethodInserters.h"
#include "passes/Passes.h"
#include "passes/analysis/ModuleNames.h"

#include "mlir/IR/SymbolTable.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/JSON.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/Path.h"

#include <map>

namespace peft {
#define GEN_PASS_DEF_INSERTINTERVENTIONS
#include "passes/Passes.h.inc"
} // namespace peft

using namespace mlir;
using namespace peft;
using namespace peft::analysis;
namespace attr = peft::analysis::attr;

namespace {

constexpr StringLiteral kName = "nn.name";

/// The layer of the module that computes `value`: walks up first operands
/// (bias adds, casts, reshapes) to the op of a module.
std::optional<int>
layerOfProducer(Value value,
                const llvm::DenseMap<Operation *, const Module *> &modules) {
  for (int depth = 0; depth < 8 && value; ++depth) {
    Operation *def = value.getDefiningOp();
    if (!def)
      return std::nullopt;
    if (const Module *module = modules.lookup(def))
      return layerIndexOf(module->info.path);
    if (def->getNumOperands() == 0)
      return std::nullopt;
    value = def->getOperand(0);
  }
  return std::nullopt;
}

/// Block outputs by layer: the last residual add each layer owns.
FailureOr<std::map<int, Operation *>>
findBlockOutputs(func::FuncOp func, const ModuleTable &table) {
  // The token embedding starts the stream: the first embedding module whose
  // output is [batch, T, d].
  Value stream;
  for (const Module &module : table.modules)
    if (module.info.kind == "embedding") {
      auto type =
          dyn_cast<RankedTensorType>(module.anchor->getResult(0).getType());
      if (type && type.getRank() == 3) {
        stream = module.anchor->getResult(0);
        break;
      }
    }
  if (!stream)
    return func.emitError("peft-insert-interventions: found no token "
                          "embedding ([batch, T, d] gather of a table) to "
                          "follow the residual stream from");
  llvm::DenseMap<Operation *, const Module *> modules;
  for (const Module &module : table.modules)
    modules[module.anchor] = &module;
  std::map<int, Operation *> outputs;
  while (true) {
    Operation *next = nullptr;
    for (Operation *user : stream.getUsers())
      if (user->getName().getStringRef() == "nn.add" &&
          user->getResult(0).getType() == stream.getType() &&
          user->getOperand(0).getType() == user->getOperand(1).getType()) {
        if (!next || user->isBeforeInBlock(next))
          next = user;
      }
    if (!next)
      break;
    Value other = next->getOperand(0) == stream ? next->getOperand(1)
                                                : next->getOperand(0);
    if (std::optional<int> layer = layerOfProducer(other, modules))
      outputs[*layer] = next;
    stream = next->getResult(0);
  }
  if (outputs.empty())
    return func.emitError("peft-insert-interventions: the residual stream "
                          "from the token embedding passes no decoder layer's "
                          "residual add");
  return outputs;
}

/// Byte ranges of the tensors of a safetensors file.
struct FileTensor {
  std::string dtype;
  std::vector<int64_t> shape;
  int64_t offset = 0, length = 0;
};

LogicalResult readRanges(Location loc, StringRef path,
                         std::map<std::string, FileTensor> &out) {
  auto buffer = llvm::MemoryBuffer::getFile(path);
  if (!buffer)
    return emitError(loc) << "init-interventions: cannot read '" << path << "'";
  StringRef bytes = (*buffer)->getBuffer();
  if (bytes.size() < 8)
    return emitError(loc) << "init-interventions: '" << path
                          << "' is not a safetensors file";
  uint64_t headerSize = 0;
  for (int i = 7; i >= 0; --i)
    headerSize = (headerSize << 8) | uint8_t(bytes[i]);
  if (headerSize > bytes.size() - 8)
    return emitError(loc) << "init-interventions: '" << path
                          << "' has a truncated header";
  auto header = llvm::json::parse(bytes.substr(8, headerSize));
  if (!header || !header->getAsObject())
    return emitError(loc) << "init-interventions: '" << path
                          << "' has a header that is not a JSON object";
  for (auto &[key, value] : *header->getAsObject()) {
    const llvm::json::Object *info = value.getAsObject();
    if (key == "__metadata__" || !info)
      continue;
    FileTensor tensor;
    tensor.dtype = info->getString("dtype").value_or("").str();
    const llvm::json::Array *shape = info->getArray("shape");
    const llvm::json::Array *offsets = info->getArray("data_offsets");
    if (!shape || !offsets || offsets->size() != 2)
      return emitError(loc) << "init-interventions: tensor '" << key.str()
                            << "' of '" << path << "' lacks shape/offsets";
    for (const llvm::json::Value &d : *shape)
      tensor.shape.push_back(d.getAsInteger().value_or(-1));
    int64_t begin = (*offsets)[0].getAsInteger().value_or(-1);
    int64_t end = (*offsets)[1].getAsInteger().value_or(-1);
    if (begin < 0 || end < begin ||
        uint64_t(end) > bytes.size() - 8 - headerSize)
      return emitError(loc) << "init-interventions: tensor '" << key.str()
                            << "' of '" << path << "' lies outside the file";
    tensor.offset = 8 + int64_t(headerSize) + begin;
    tensor.length = end - begin;
    out[key.str()] = std::move(tensor);
  }
  return success();
}

class Inserter {
public:
  Inserter(ModuleOp module, func::FuncOp func, const spec::PeftSpec &spec)
      : module_(module), func_(func), spec_(spec),
        builder_(module.getContext()), symbols_(module),
        params_(module, symbols_, "peft-insert-interventions") {}

  LogicalResult run(const std::map<int, Operation *> &outputs,
                    StringRef initFile);

private:
  pir::ParamOp createParam(StringRef name, ArrayRef<int64_t> shape,
                           Type element, StringRef init, bool trainable,
                           StringRef method, DictionaryAttr initArgs = {});
  FailureOr<Value> promptLengths(StringRef name, int64_t batch);
  Value dropRows(const spec::ReftConfig &config, Location loc, Value output,
                 Value positions);
  LogicalResult intervene(const spec::ReftConfig &config, StringRef method,
                          int layer, Operation *output, StringRef group);
  LogicalResult loadInitialValues(StringRef file);

  ModuleOp module_;
  func::FuncOp func_;
  const spec::PeftSpec &spec_;
  OpBuilder builder_;
  SymbolTable symbols_;
  ParamFactory params_;
  std::vector<pir::ParamOp> created_;
  /// Interventions inserted so far, per layer.
  std::map<int, int64_t> perLayer_;
  /// The pyvene key of the intervention being inserted.
  std::string currentKey_;
  /// The positions of each (prompt-length input, group), computed once.
  std::map<std::string, Value> positions_;
  /// peft.dropout's `stream` of the next intervention dropout: after those
  /// the module has already (peft-insert-adapters numbers LoRA's from 0).
  int64_t nextStream_ = -1;
};

pir::ParamOp Inserter::createParam(StringRef name, ArrayRef<int64_t> shape,
                                   Type element, StringRef init, bool trainable,
                                   StringRef method, DictionaryAttr initArgs) {
  pir::ParamOp param = params_.create(module_.getLoc(), name,
                                      RankedTensorType::get(shape, element),
                                      trainable, init, method, initArgs);
  if (!param)
    return nullptr;
  param->setAttr(attr::kIntervention, builder_.getStringAttr(currentKey_));
  created_.push_back(param);
  return param;
}

/// The `prompt_lengths` argument ([batch] i64) of the model function, added
/// when the model does not have it.
FailureOr<Value> Inserter::promptLengths(StringRef name, int64_t batch) {
  auto type = RankedTensorType::get({batch}, builder_.getI64Type());
  for (unsigned i = 0; i < func_.getNumArguments(); ++i)
    if (auto attrName = func_.getArgAttrOfType<StringAttr>(i, kName);
        attrName && attrName.getValue() == name) {
      auto argType = dyn_cast<RankedTensorType>(func_.getArgument(i).getType());
      if (!argType || argType.getShape() != ArrayRef<int64_t>{batch} ||
          !argType.getElementType().isSignlessInteger())
        return func_.emitError("peft-insert-interventions: input '")
               << name << "' must be [" << batch << "] integers (each "
               << "example's prompt length), got "
               << func_.getArgument(i).getType();
      return func_.getArgument(i);
    }
  unsigned index = func_.getNumArguments();
  func_.insertArgument(index, type, {}, func_.getLoc());
  func_.setArgAttr(index, kName, builder_.getStringAttr(name));
  return func_.getArgument(index);
}

/// pyreft's `self.dropout(output)`: the interventions drop out their whole
/// output h + delta (base included), on the rows they intervene on; pyvene
/// scatters only those rows back, so every other row stays h. The mask is
/// peft.dropout's (seeded Philox, the spec's training.seed), not PyTorch's.
Value Inserter::dropRows(const spec::ReftConfig &config, Location loc,
                         Value output, Value positions) {
  if (nextStream_ < 0) {
    nextStream_ = 0;
    module_.walk([&](pir::DropoutOp dropout) {
      nextStream_ = std::max(nextStream_, int64_t(dropout.getStreamBits()) + 1);
    });
  }
  auto type = cast<RankedTensorType>(output.getType());
  Value dropped = builder_.create<pir::DropoutOp>(
      loc, output, stepArgument(func_),
      builder_.getF64FloatAttr(config.dropout),
      builder_.getI64IntegerAttr(spec_.training.seed),
      builder_.getI64IntegerAttr(nextStream_++));
  auto maskType = RankedTensorType::get(
      {type.getDimSize(0), type.getDimSize(1), 1}, type.getElementType());
  Value mask =
      builder_.create<pir::InterventionMaskOp>(loc, maskType, positions);
  Value selected = builder_.create<nn::CastOp>(
      loc, RankedTensorType::get(maskType.getShape(), builder_.getI1Type()),
      mask);
  return builder_.create<nn::WhereOp>(loc, type, selected, dropped, output);
}

LogicalResult Inserter::intervene(const spec::ReftConfig &config,
                                  StringRef method, int layer,
                                  Operation *output, StringRef group) {
  Value h = output->getResult(0);
  auto type = cast<RankedTensorType>(h.getType());
  int64_t batch = type.getDimSize(0), d = type.getDimSize(2);
  int64_t r = config.lowRankDimension;
  Type element = type.getElementType();
  Location loc = output->getLoc();
  // pyvene's representation key; `#k` counts the interventions on the same
  // layer in the order of pyreft's representation list.
  std::string key = "layer_" + std::to_string(layer) +
                    "_comp_block_output_unit_pos_nunit_1#" +
                    std::to_string(perLayer_[layer]++);
  currentKey_ = key;

  builder_.setInsertionPointAfter(output);
  std::string positionsKey = config.promptLengths + "/" + group.str() + "/" +
                             std::to_string(config.firstN) + "+" +
                             std::to_string(config.lastN) + "/" +
                             std::to_string(config.positionOffset);
  Value positions = positions_[positionsKey];
  if (!positions) {
    FailureOr<Value> lengths = promptLengths(config.promptLengths, batch);
    if (failed(lengths))
      return failure();
    OpBuilder::InsertionGuard guard(builder_);
    builder_.setInsertionPointToStart(&func_.getBody().front());
    positions = builder_.create<pir::ReftPositionsOp>(
        func_.getLoc(), *lengths, builder_.getI64IntegerAttr(config.firstN),
        builder_.getI64IntegerAttr(config.lastN), builder_.getStringAttr(group),
        builder_.getI64IntegerAttr(config.positionOffset));
    positions_[positionsKey] = positions;
  }

  auto fanIn = builder_.getDictionaryAttr(
      {builder_.getNamedAttr("fan_in", builder_.getI64IntegerAttr(d))});
  pir::ParamOp weight = createParam(key + ".learned_source.weight", {r, d},
                                    element, "kaiming_uniform", true, method);
  pir::ParamOp bias =
      weight ? createParam(key + ".learned_source.bias", {r}, element,
                           "uniform_fan_in", true, method, fanIn)
             : nullptr;
  if (!bias)
    return failure();
  Value useW = useParam(builder_, loc, weight),
        useB = useParam(builder_, loc, bias);
  Operation *intervention;
  if (config.intervention == spec::ReftIntervention::NoDiReFT) {
    pir::ParamOp proj = createParam(key + ".proj_layer.weight", {r, d}, element,
                                    "kaiming_uniform", true, method);
    if (!proj)
      return failure();
    // pyreft creates proj_layer's bias with add_bias and never reads it: it
    // is counted and saved, and gets no gradient.
    if (config.addBias && !createParam(key + ".proj_layer.bias", {r}, element,
                                       "uniform_fan_in", true, method, fanIn))
      return failure();
    intervention = builder_.create<pir::NodireftOp>(
        loc, h, useW, useB, useParam(builder_, loc, proj), positions);
  } else {
    // torch's orthogonal(): the trainable `original` starts at −I and the
    // buffer `base` holds an orthogonal completion of the initial weight.
    std::string prefix = key + ".rotate_layer.parametrizations.weight";
    pir::ParamOp original = createParam(prefix + ".original", {d, r}, element,
                                        "neg_identity", true, method);
    pir::ParamOp base = original
                            ? createParam(prefix + ".0.base", {d, d}, element,
                                          "orthogonal", false, method)
                            : nullptr;
    if (!base)
      return failure();
    Value rotation = builder_.create<pir::HouseholderOrthogonalOp>(
        loc, useParam(builder_, loc, original), useParam(builder_, loc, base));
    if (config.intervention == spec::ReftIntervention::LoReFT) {
      intervention = builder_.create<pir::LoreftOp>(loc, h, rotation, useW,
                                                    useB, positions);
    } else {
      Value projection = builder_.create<nn::TransposeOp>(
          loc, rotation, builder_.getDenseI64ArrayAttr({1, 0}));
      intervention = builder_.create<pir::NodireftOp>(loc, h, useW, useB,
                                                      projection, positions);
    }
  }
  intervention->setAttr(attr::kIntervention, builder_.getStringAttr(key));
  Value result = intervention->getResult(0);
  if (config.dropout > 0) {
    builder_.setInsertionPointAfter(intervention);
    result = dropRows(config, loc, result, positions);
  }
  h.replaceAllUsesExcept(result, intervention);
  return success();
}

LogicalResult Inserter::loadInitialValues(StringRef path) {
  SmallString<256> file(path);
  if (llvm::sys::fs::is_directory(file))
    llvm::sys::path::append(file, "interventions.safetensors");
  llvm::sys::fs::make_absolute(file);
  std::map<std::string, FileTensor> tensors;
  if (failed(readRanges(module_.getLoc(), file, tensors)))
    return failure();
  MLIRContext *context = module_.getContext();
  for (pir::ParamOp param : created_) {
    auto it = tensors.find(param.getSymName().str());
    if (it == tensors.end())
      return module_.emitError("init-interventions: '")
             << file << "' has no tensor '" << param.getSymName() << "'";
    const FileTensor &tensor = it->second;
    Type element = tensor.dtype == "F64"   ? Type(Float64Type::get(context))
                   : tensor.dtype == "F32" ? Type(Float32Type::get(context))
                                           : Type();
    RankedTensorType type = param.getTensorType();
    if (!element || ArrayRef<int64_t>(tensor.shape) != type.getShape())
      return module_.emitError("init-interventions: tensor '")
             << param.getSymName() << "' of '" << file << "' is "
             << tensor.dtype << " of another shape than " << type;
    auto fileType = RankedTensorType::get(type.getShape(), element);
    param->removeAttr("init");
    adapters::rebindParam(param, fileType,
                          pir::StorageAttr::get(context, file.str(),
                                                tensor.offset, tensor.length),
                          /*transposed=*/false);
  }
  return success();
}

LogicalResult Inserter::run(const std::map<int, Operation *> &outputs,
                            StringRef initFile) {
  for (const spec::MethodSpec &method : spec_.methods) {
    const spec::ReftConfig *config = method.reft();
    if (!config)
      continue;
    std::vector<int> layers;
    if (config->allLayers)
      for (const auto &[layer, op] : outputs)
        layers.push_back(layer);
    for (const auto &layer : config->layers) {
      if (!outputs.count(layer.value))
        return module_.emitError("peft-insert-interventions: found no block "
                                 "output of layer ")
               << layer.value << " (" << layer.loc.str() << ")";
      layers.push_back(int(layer.value));
    }
    std::string name = spec::methodName(method.kind).lower();
    // pyreft (examples/loreft/train.py) doubles the layer list when first and
    // last positions have their own weights: the first copy takes the first
    // positions (key #0), the second the last ones (#1).
    bool shared =
        config->shareWeights || config->firstN == 0 || config->lastN == 0;
    for (int layer : layers)
      if (failed(intervene(*config, name, layer, outputs.at(layer),
                           shared ? "all" : "first")))
        return failure();
    if (!shared)
      for (int layer : layers)
        if (failed(intervene(*config, name, layer, outputs.at(layer), "last")))
          return failure();
  }
  if (!initFile.empty())
    return loadInitialValues(initFile);
  return success();
}

/// Adds the ReFT interventions of the spec attached to `module` to its
/// function `funcName` (nothing without a ReFT method), started from the
/// pyreft interventions in `initFile` if given.
LogicalResult insertInterventions(ModuleOp module, StringRef funcName,
                                  StringRef initFile) {
  FailureOr<spec::PeftSpec> spec =
      readSpecAttr(module, "peft-insert-interventions");
  if (failed(spec))
    return failure();
  if (llvm::none_of(spec->methods, [](const spec::MethodSpec &m) {
        return m.reft() != nullptr;
      }))
    return success();
  auto func = module.lookupSymbol<func::FuncOp>(funcName);
  if (!func)
    return module.emitError("peft-insert-interventions: no function @")
           << funcName;
  FailureOr<ModuleTable> table = ModuleTable::build(module, funcName);
  if (failed(table))
    return failure();
  FailureOr<std::map<int, Operation *>> outputs =
      findBlockOutputs(func, *table);
  if (failed(outputs))
    return failure();
  return Inserter(module, func, *spec).run(*outputs, initFile);
}

struct InsertInterventionsPass
    : public peft::impl::InsertInterventionsBase<InsertInterventionsPass> {
  using InsertInterventionsBase::InsertInterventionsBase;

  void runOnOperation() override {
    if (failed(
            insertInterventions(getOperation(), funcName, initInterventions)))
      signalPassFailure();
  }
};

} // namespace
