//===- ModuleNames.cpp - PyTorch module paths of an imported model --------===//
#include "passes/analysis/ModuleNames.h"

#include "dialects/nn/NNOps.h"
#include "dialects/peft/PeftOps.h"
#include "peft/MappedFile.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/SymbolTable.h"
#include "llvm/ADT/DenseMap.h"
#include "llvm/ADT/STLExtras.h"
#include "llvm/ADT/StringExtras.h"
#include "llvm/Support/Format.h"
#include "llvm/Support/raw_ostream.h"

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory>
#include <set>

using namespace mlir;

namespace peft::analysis {

namespace {

bool isFloatTensor(Type t) {
  auto tensor = dyn_cast<RankedTensorType>(t);
  return tensor && isa<FloatType>(tensor.getElementType());
}

/// A PyTorch state-dict name (`model.layers.0.mlp.up_proj.weight`) rather
/// than one an exporter generated (`onnx::MatMul_454`, `_to_copy_4`).
bool isStateDictName(StringRef name) {
  if (!name.contains('.') || name.contains("::") || name.starts_with("_") ||
      name.starts_with("/"))
    return false;
  SmallVector<StringRef> parts;
  name.split(parts, '.');
  for (StringRef part : parts) {
    if (part.empty())
      return false;
    for (char c : part)
      if (!llvm::isAlnum(c) && c != '_')
        return false;
  }
  return !llvm::isDigit(parts.front().front());
}

/// The TorchScript node scope of `loc` as a module path:
/// "/model/layers.0/self_attn/q_proj/MatMul" ->
/// "model.layers.0.self_attn.q_proj".
std::string scopePath(Location loc) {
  if (auto fused = dyn_cast<FusedLoc>(loc)) {
    for (Location inner : fused.getLocations())
      if (std::string path = scopePath(inner); !path.empty())
        return path;
    return "";
  }
  if (auto callSite = dyn_cast<CallSiteLoc>(loc))
    return scopePath(callSite.getCallee());
  auto named = dyn_cast<NameLoc>(loc);
  if (!named)
    return "";
  StringRef name = named.getName().getValue();
  if (!name.starts_with("/"))
    return scopePath(named.getChildLoc());
  SmallVector<StringRef> parts;
  name.split(parts, '/', -1, /*KeepEmpty=*/false);
  if (parts.size() < 2)
    return "";
  parts.pop_back(); // the node's own name (MatMul, Gemm, Mul_1)
  return llvm::join(parts, ".");
}

/// The param a value reads, looking through the layout and type changes an
/// exporter or a PEFT pass puts between a weight and its consumer.
struct TracedParam {
  pir::UseOp use;
  bool transposed = false; // an odd number of 2-D transposes on the way
};

TracedParam traceParam(Value value, bool throughTranspose) {
  TracedParam traced;
  while (Operation *def = value.getDefiningOp()) {
    if (auto use = dyn_cast<pir::UseOp>(def)) {
      traced.use = use;
      return traced;
    }
    if (auto cast = dyn_cast<nn::CastOp>(def)) {
      if (!isFloatTensor(cast.getInput().getType()) ||
          !isFloatTensor(cast.getType()))
        return {};
      value = cast.getInput();
      continue;
    }
    // Sparse fine-tuning's delta (peft-insert-sparse) sits on the weight the
    // module still reads.
    if (auto sparse = dyn_cast<pir::SparseDeltaOp>(def)) {
      value = sparse.getWeight();
      continue;
    }
    if (auto transpose = dyn_cast<nn::TransposeOp>(def);
        transpose && throughTranspose) {
      ArrayRef<int64_t> perm = transpose.getPerm();
      if (perm.size() != 2 || perm[0] != 1 || perm[1] != 0)
        return {};
      traced.transposed = !traced.transposed;
      value = transpose.getInput();
      continue;
    }
    return {};
  }
  return {};
}

/// Reads parameter bytes from their storage (for tied-weight detection).
class ParamBytes {
public:
  const uint8_t *get(pir::ParamOp param) {
    pir::StorageAttr storage = param.getStorageAttr();
    if (!storage)
      return nullptr;
    std::string file = storage.getFile().str();
    auto it = files_.find(file);
    if (it == files_.end()) {
      std::string error;
      it = files_.emplace(file, MappedFile::open(file, error)).first;
    }
    const std::shared_ptr<MappedFile> &mapped = it->second;
    if (!mapped || storage.getOffset() < 0 ||
        uint64_t(storage.getOffset()) + uint64_t(storage.getLength()) >
            mapped->size())
      return nullptr;
    return mapped->data() + storage.getOffset();
  }

private:
  std::map<std::string, std::shared_ptr<MappedFile>> files_;
};

/// Whether `a` [rows, cols] holds the same elements as `b`, or as the
/// transpose of `b` [cols, rows].
bool sameElements(const uint8_t *a, const uint8_t *b, int64_t rows,
                  int64_t cols, size_t elementSize, bool transposed) {
  if (!transposed)
    return std::memcmp(a, b, size_t(rows * cols) * elementSize) == 0;
  for (int64_t i = 0; i < rows; ++i)
    for (int64_t j = 0; j < cols; ++j)
      if (std::memcmp(a + size_t(i * cols + j) * elementSize,
                      b + size_t(j * rows + i) * elementSize, elementSize) != 0)
        return false;
  return true;
}

/// True when `path` looks like a normalisation module's name.
bool isNormName(StringRef path) {
  StringRef leaf =
      path.rsplit('.').second.empty() ? path : path.rsplit('.').second;
  std::string lower = leaf.lower();
  return StringRef(lower).contains("norm") ||
         StringRef(lower).starts_with("ln");
}

class Builder {
public:
  Builder(ModuleOp module, func::FuncOp func) : module_(module), func_(func) {}

  ModuleTable run();

private:
  std::string pathOf(Operation *op, StringRef weightParam);
  Module &moduleFor(const std::string &path, StringRef kind, StringRef opName,
                    bool unique);
  void addSlot(Module &module, StringRef role, pir::UseOp use, Operation *user,
               unsigned operand);
  void recognizeLinear(Operation *op);
  void recognizeEmbedding(nn::GatherOp gather);
  void recognizeLayerNorm(nn::LayerNormOp norm);
  void recognizeConv(nn::ConvOp conv);
  void recognizeLoose(Operation *op);
  void findOutputHeads();
  void classifyParams();
  void findTiedWeights();

  ModuleOp module_;
  func::FuncOp func_;
  ModuleTable table_;
  std::map<std::string, size_t> index_;
  /// Params some module reads, with the first (module, role) reading them.
  std::map<std::string, std::pair<std::string, std::string>> claimed_;
  std::map<std::string, bool> weightOutIn_;
  /// Params a PEFT pass created (attr::kMethod): never a module of their own.
  std::set<std::string> adapterParams_;
};

std::string Builder::pathOf(Operation *op, StringRef weightParam) {
  if (auto stamped = op->getAttrOfType<StringAttr>(attr::kModule))
    return stamped.str();
  if (std::string scope = scopePath(op->getLoc()); !scope.empty())
    return scope;
  if (isStateDictName(weightParam))
    return weightParam.rsplit('.').first.str();
  return weightParam.str();
}

Module &Builder::moduleFor(const std::string &path, StringRef kind,
                           StringRef opName, bool unique) {
  auto it = index_.find(path);
  if (it != index_.end()) {
    Module &existing = table_.modules[it->second];
    if (!unique && existing.info.kind == kind)
      return existing;
    // Two modules claim one path (an export quirk): keep paths unique.
    for (int n = 1;; ++n) {
      std::string alternative = path + "_" + std::to_string(n);
      if (!index_.count(alternative))
        return moduleFor(alternative, kind, opName, unique);
    }
  }
  index_[path] = table_.modules.size();
  Module &module = table_.modules.emplace_back();
  module.info.path = path;
  module.info.kind = kind.str();
  module.info.layer = layerIndexOf(path);
  module.opName = opName.str();
  return module;
}

void Builder::addSlot(Module &module, StringRef role, pir::UseOp use,
                      Operation *user, unsigned operand) {
  std::string param = use.getParam().str();
  for (const ParamSlot &slot : module.params)
    if (slot.param == param && slot.role == role && slot.user == user)
      return;
  module.params.push_back({role.str(), param, user, operand});
  claimed_.try_emplace(param, module.info.path, role.str());
  if (role == "bias")
    module.info.hasBias = true;
}

void Builder::recognizeLinear(Operation *op) {
  Value input, weight;
  bool outIn = false;
  if (auto matmul = dyn_cast<nn::MatMulOp>(op)) {
    if (matmul.getTransposeLhs())
      return;
    input = matmul.getLhs();
    weight = matmul.getRhs();
    outIn = matmul.getTransposeRhs();
  } else if (auto lora = dyn_cast<pir::LoraOp>(op)) {
    input = lora.getInput();
    weight = lora.getWeight();
    outIn = lora.isWeightOutIn();
  } else if (auto dora = dyn_cast<pir::DoraOp>(op)) {
    input = dora.getInput();
    weight = dora.getWeight();
    outIn = dora.isWeightOutIn();
  } else {
    return;
  }
  TracedParam traced = traceParam(weight, /*throughTranspose=*/true);
  if (!traced.use)
    return;
  auto stored = cast<RankedTensorType>(traced.use.getType());
  auto inputType = dyn_cast<RankedTensorType>(input.getType());
  if (stored.getRank() != 2 || !isFloatTensor(stored) || !inputType ||
      inputType.getRank() < 1)
    return;
  if (traced.transposed)
    outIn = !outIn;
  int64_t in = stored.getDimSize(outIn ? 1 : 0);
  int64_t out = stored.getDimSize(outIn ? 0 : 1);
  if (inputType.getShape().back() != in)
    return;

  std::string param = traced.use.getParam().str();
  Module &module = moduleFor(pathOf(op, param), "linear",
                             op->getName().getStringRef(), /*unique=*/true);
  module.anchor = op;
  module.weightOutIn = outIn;
  module.info.inFeatures = in;
  module.info.outFeatures = out;
  addSlot(module, "weight", traced.use, op, 1);
  weightOutIn_.try_emplace(param, outIn);
  // An adapter made of the linear reads its own params too.
  auto addAdapterSlot = [&](StringRef role, Value value, unsigned operand) {
    if (TracedParam traced = traceParam(value, false); traced.use)
      addSlot(module, role, traced.use, op, operand);
  };
  if (auto lora = dyn_cast<pir::LoraOp>(op)) {
    addAdapterSlot("lora_A", lora.getLoraA(), 2);
    addAdapterSlot("lora_B", lora.getLoraB(), 3);
  } else if (auto dora = dyn_cast<pir::DoraOp>(op)) {
    addAdapterSlot("lora_A", dora.getLoraA(), 2);
    addAdapterSlot("lora_B", dora.getLoraB(), 3);
    addAdapterSlot("lora_magnitude_vector", dora.getMagnitude(), 4);
  }

  // The bias: an add of a 1-D [out] param right after the product.
  Value product = op->getResult(0);
  if (!product.hasOneUse())
    return;
  auto add = dyn_cast<nn::AddOp>(*product.getUsers().begin());
  if (!add)
    return;
  for (unsigned i = 0; i < 2; ++i) {
    if (add->getOperand(i) == product)
      continue;
    TracedParam bias = traceParam(add->getOperand(i), false);
    if (!bias.use)
      continue;
    auto type = cast<RankedTensorType>(bias.use.getType());
    if (type.getRank() == 1 && type.getDimSize(0) == out &&
        isFloatTensor(type)) {
      module.biasAdd = add;
      addSlot(module, "bias", bias.use, add, i);
    }
  }
}

void Builder::recognizeEmbedding(nn::GatherOp gather) {
  if (gather.getAxis() != 0)
    return;
  TracedParam table = traceParam(gather.getData(), false);
  if (!table.use)
    return;
  auto type = cast<RankedTensorType>(table.use.getType());
  if (type.getRank() != 2 || !isFloatTensor(type))
    return;
  std::string param = table.use.getParam().str();
  Module &module =
      moduleFor(pathOf(gather, param), "embedding", "nn.gather", true);
  module.anchor = gather;
  module.info.inFeatures = type.getDimSize(0);
  module.info.outFeatures = type.getDimSize(1);
  addSlot(module, "weight", table.use, gather, 0);
}

void Builder::recognizeLayerNorm(nn::LayerNormOp norm) {
  TracedParam scale = traceParam(norm.getScale(), false);
  TracedParam bias;
  if (norm.getBias())
    bias = traceParam(norm.getBias(), false);
  if (!scale.use && !bias.use)
    return;
  std::string param = (scale.use ? scale.use : bias.use).getParam().str();
  Module &module =
      moduleFor(pathOf(norm, param), "norm", "nn.layer_norm", true);
  module.anchor = norm;
  int64_t features =
      cast<RankedTensorType>(norm.getInput().getType()).getShape().back();
  module.info.inFeatures = module.info.outFeatures = features;
  if (scale.use)
    addSlot(module, "weight", scale.use, norm, 1);
  if (bias.use)
    addSlot(module, "bias", bias.use, norm, 2);
}

void Builder::recognizeConv(nn::ConvOp conv) {
  TracedParam weight = traceParam(conv.getWeight(), false);
  if (!weight.use || !isFloatTensor(weight.use.getType()))
    return;
  auto type = cast<RankedTensorType>(weight.use.getType());
  std::string param = weight.use.getParam().str();
  Module &module = moduleFor(pathOf(conv, param), "conv", "nn.conv", true);
  module.anchor = conv;
  module.info.outFeatures = type.getDimSize(0);
  module.info.inFeatures = type.getDimSize(1) * int64_t(conv.getGroup());
  addSlot(module, "weight", weight.use, conv, 1);
  if (conv.getBias())
    if (TracedParam bias = traceParam(conv.getBias(), false); bias.use)
      addSlot(module, "bias", bias.use, conv, 2);
}

/// Params read outside the recognised modules: decomposed norms (a 1-D
/// weight multiplied in, a bias added), and any other state-dict parameter.
void Builder::recognizeLoose(Operation *op) {
  for (OpOperand &operand : op->getOpOperands()) {
    TracedParam traced = traceParam(operand.get(), false);
    if (!traced.use || !isFloatTensor(traced.use.getType()))
      continue;
    std::string param = traced.use.getParam().str();
    if (claimed_.count(param) || adapterParams_.count(param))
      continue;
    auto type = cast<RankedTensorType>(traced.use.getType());
    bool elementwise = isa<nn::MulOp, nn::AddOp>(op) && type.getRank() == 1;
    bool named = isStateDictName(param);
    if (!elementwise && !named)
      continue; // a folded buffer (rotary frequencies, masks)
    std::string path = pathOf(op, param);
    std::string role = named ? StringRef(param).rsplit('.').second.str()
                       : isa<nn::MulOp>(op) ? "weight"
                                            : "bias";
    if (named && !op->getAttr(attr::kModule) && scopePath(op->getLoc()).empty())
      path = StringRef(param).rsplit('.').first.str();
    Module &module = moduleFor(path, isNormName(path) ? "norm" : "other",
                               op->getName().getStringRef(), false);
    if (!module.anchor)
      module.anchor = op;
    int64_t features = type.getRank() ? type.getShape().back() : 1;
    if (!module.info.inFeatures)
      module.info.inFeatures = module.info.outFeatures = features;
    addSlot(module, role, traced.use, op, operand.getOperandNumber());
  }
}

/// The linear whose output is a function result, up to layout changes and
/// constant scaling: the output head (lm_head, a classifier), which PEFT's
/// "all-linear" leaves out.
void Builder::findOutputHeads() {
  std::function<bool(Value, int)> reachesResult = [&](Value value,
                                                      int depth) -> bool {
    if (depth > 8)
      return false;
    for (Operation *user : value.getUsers()) {
      if (isa<func::ReturnOp>(user))
        return true;
      if (user->getNumResults() != 1)
        continue;
      // Layout changes, and arithmetic with constants (a logit scale); not
      // activations: BERT's pooler (dense + tanh) is no output head for PEFT.
      bool passthrough =
          isa<nn::ReshapeOp, nn::TransposeOp, nn::CastOp, nn::SliceOp>(user) ||
          (isa<nn::MulOp, nn::DivOp, nn::AddOp, nn::SubOp>(user) &&
           llvm::all_of(user->getOperands(), [&](Value v) {
             return v == value || v.getDefiningOp<nn::ConstantOp>();
           }));
      if ((passthrough || isa<pir::Ia3Op>(user)) &&
          reachesResult(user->getResult(0), depth + 1))
        return true;
    }
    return false;
  };
  for (Module &module : table_.modules) {
    if (module.info.kind != "linear")
      continue;
    Value output = module.biasAdd ? module.biasAdd->getResult(0)
                                  : module.anchor->getResult(0);
    module.info.isOutputHead = reachesResult(output, 0);
  }
}

void Builder::classifyParams() {
  for (auto param : module_.getOps<pir::ParamOp>()) {
    ParamInfo info;
    info.name = param.getSymName().str();
    info.numel = param.getTensorType().getNumElements();
    info.shape.assign(param.getTensorType().getShape().begin(),
                      param.getTensorType().getShape().end());
    info.isAdapter = param->hasAttr(attr::kMethod);
    info.torchTransposed = param->hasAttr(attr::kKeyTransposed);
    bool isFloat = isFloatTensor(param.getTensorType());
    if (auto it = claimed_.find(info.name); it != claimed_.end()) {
      info.module = it->second.first;
      info.role = it->second.second;
      info.isParameter = isFloat;
    } else if (isFloat && isStateDictName(info.name) && !info.isAdapter) {
      // Read by no op we know (or by none at all): still a parameter.
      info.module = StringRef(info.name).rsplit('.').first.str();
      info.role = StringRef(info.name).rsplit('.').second.str();
      info.isParameter = true;
    }
    if (!info.isAdapter && !isStateDictName(info.name) && info.role == "weight")
      if (auto it = weightOutIn_.find(info.name);
          it != weightOutIn_.end() && !it->second)
        info.torchTransposed = true;
    table_.params[info.name] = std::move(info);
  }
  // A modules_to_save copy replaced its original in the graph; the original
  // is still a base parameter, in the copy's module.
  for (auto param : module_.getOps<pir::ParamOp>()) {
    auto original = param->getAttrOfType<FlatSymbolRefAttr>(attr::kCopyOf);
    if (!original)
      continue;
    auto it = table_.params.find(original.getValue().str());
    const ParamInfo &copy = table_.params[param.getSymName().str()];
    if (it == table_.params.end() || it->second.isParameter)
      continue;
    it->second.module = copy.module;
    it->second.role = copy.role;
    it->second.isParameter = true;
    it->second.torchTransposed = copy.torchTransposed;
  }
}

/// TorchScript's constant folding stores a tied output head as a transposed
/// copy of the embedding table under a generated name; the bytes show it.
void Builder::findTiedWeights() {
  SymbolTable symbols(module_);
  std::vector<pir::ParamOp> tables;
  for (const Module &module : table_.modules)
    if (module.info.kind == "embedding")
      if (const ParamSlot *slot = module.slot("weight"))
        if (auto param = symbols.lookup<pir::ParamOp>(slot->param))
          tables.push_back(param);
  if (tables.empty())
    return;
  ParamBytes bytes;
  for (auto &[name, info] : table_.params) {
    if (!info.isParameter || info.isAdapter || info.role != "weight" ||
        isStateDictName(name))
      continue;
    auto param = symbols.lookup<pir::ParamOp>(name);
    RankedTensorType type = param.getTensorType();
    if (type.getRank() != 2)
      continue;
    for (pir::ParamOp table : tables) {
      RankedTensorType tableType = table.getTensorType();
      if (table == param || tableType.getElementType() != type.getElementType())
        continue;
      bool same = tableType.getShape() == type.getShape();
      bool transposed = tableType.getDimSize(0) == type.getDimSize(1) &&
                        tableType.getDimSize(1) == type.getDimSize(0);
      if (!same && !transposed)
        continue;
      const uint8_t *a = bytes.get(param), *b = bytes.get(table);
      if (!a || !b)
        continue;
      size_t elementSize =
          std::max<size_t>(type.getElementTypeBitWidth() / 8, 1);
      if ((same && sameElements(a, b, type.getDimSize(0), type.getDimSize(1),
                                elementSize, false)) ||
          (transposed && sameElements(a, b, type.getDimSize(0),
                                      type.getDimSize(1), elementSize, true))) {
        info.tiedTo = table.getSymName().str();
        break;
      }
    }
  }
}

ModuleTable Builder::run() {
  for (auto param : module_.getOps<pir::ParamOp>())
    if (param->hasAttr(attr::kMethod))
      adapterParams_.insert(param.getSymName().str());
  func_.walk([&](Operation *op) {
    if (isa<nn::MatMulOp, pir::LoraOp, pir::DoraOp>(op))
      recognizeLinear(op);
    else if (auto gather = dyn_cast<nn::GatherOp>(op))
      recognizeEmbedding(gather);
    else if (auto norm = dyn_cast<nn::LayerNormOp>(op))
      recognizeLayerNorm(norm);
    else if (auto conv = dyn_cast<nn::ConvOp>(op))
      recognizeConv(conv);
  });
  func_.walk([&](Operation *op) {
    if (!isa<pir::UseOp, nn::CastOp, nn::TransposeOp>(op))
      recognizeLoose(op);
  });
  // List modules in the order the model computes them.
  llvm::DenseMap<Operation *, unsigned> position;
  func_.walk([&](Operation *op) { position[op] = position.size(); });
  std::stable_sort(table_.modules.begin(), table_.modules.end(),
                   [&](const Module &a, const Module &b) {
                     return position.lookup(a.anchor) <
                            position.lookup(b.anchor);
                   });
  index_.clear();
  findOutputHeads();
  classifyParams();
  findTiedWeights();
  return std::move(table_);
}

} // namespace

const ParamSlot *Module::slot(StringRef role) const {
  for (const ParamSlot &slot : params)
    if (slot.role == role)
      return &slot;
  return nullptr;
}

std::optional<int> layerIndexOf(StringRef path) {
  SmallVector<StringRef> parts;
  path.split(parts, '.');
  for (size_t i = 1; i < parts.size(); ++i) {
    int index;
    if (!parts[i].empty() &&
        llvm::all_of(parts[i], [](char c) { return llvm::isDigit(c); }) &&
        !parts[i].getAsInteger(10, index))
      return index;
  }
  return std::nullopt;
}

FailureOr<ModuleTable> ModuleTable::build(ModuleOp module, StringRef funcName) {
  auto func = module.lookupSymbol<func::FuncOp>(funcName);
  if (!func || func.isExternal())
    return module.emitError("the module has no function @")
           << funcName << " to find PyTorch modules in";
  return Builder(module, func).run();
}

std::vector<spec::ModuleInfo> ModuleTable::moduleInfos() const {
  std::vector<spec::ModuleInfo> infos;
  for (const Module &module : modules)
    infos.push_back(module.info);
  return infos;
}

const Module *ModuleTable::find(StringRef path) const {
  for (const Module &module : modules)
    if (module.info.path == path)
      return &module;
  return nullptr;
}

int64_t ModuleTable::countBaseParameters() const {
  int64_t count = 0;
  for (const auto &[name, info] : params)
    if (info.isParameter && !info.isAdapter && info.tiedTo.empty())
      count += info.numel;
  return count;
}

LogicalResult annotateModules(ModuleOp module, StringRef funcName) {
  FailureOr<ModuleTable> table = ModuleTable::build(module, funcName);
  if (failed(table))
    return failure();
  for (const Module &m : table->modules) {
    auto path = StringAttr::get(module.getContext(), m.info.path);
    if (m.anchor)
      m.anchor->setAttr(attr::kModule, path);
    for (const ParamSlot &slot : m.params)
      slot.user->setAttr(attr::kModule, path);
  }
  return success();
}

FailureOr<spec::PeftSpec> readSpecAttr(ModuleOp module, StringRef who) {
  auto text = module->getAttrOfType<StringAttr>(attr::kSpec);
  if (!text)
    return module.emitError(who)
           << ": the module carries no `peft.spec` attribute (the resolved "
              "PEFT spec as JSON); `peftc model.onnx --spec spec.yaml "
              "--emit=mlir` attaches one";
  spec::PeftSpec spec;
  std::string error;
  if (!spec::parseSpecString(text.getValue(), "peft.spec", spec, error))
    return module.emitError(who)
           << ": invalid `peft.spec` attribute: " << error;
  return spec;
}

void writeSpecAttr(ModuleOp module, const spec::PeftSpec &spec) {
  // toJson indents for people; on one line the attribute stays readable in
  // printed IR. Only whitespace outside strings goes.
  std::string json = spec::toJson(spec), compact;
  bool inString = false, escaped = false;
  for (char c : json) {
    if (inString) {
      compact += c;
      if (escaped)
        escaped = false;
      else if (c == '\\')
        escaped = true;
      else if (c == '"')
        inString = false;
      continue;
    }
    if (c == '"')
      inString = true;
    if (c == ' ' || c == '\n' || c == '\t' || c == '\r')
      continue;
    compact += c;
    if (c == ',' || c == ':')
      compact += ' ';
  }
  module->setAttr(attr::kSpec, StringAttr::get(module.getContext(), compact));
}

LogicalResult attachSpec(ModuleOp module, const spec::PeftSpec &spec,
                         spec::ResolvedTargets &resolved, std::string &error,
                         StringRef funcName) {
  if (failed(annotateModules(module, funcName)))
    return failure();
  FailureOr<ModuleTable> table = ModuleTable::build(module, funcName);
  if (failed(table))
    return failure();
  if (!spec::resolveTargets(spec, table->moduleInfos(), resolved, error))
    return failure();
  writeSpecAttr(module, spec);
  return success();
}

std::string TrainableCount::line() const {
  auto grouped = [](int64_t n) {
    std::string digits = std::to_string(n), out;
    for (size_t i = 0; i < digits.size(); ++i) {
      if (i && (digits.size() - i) % 3 == 0)
        out += ',';
      out += digits[i];
    }
    return out;
  };
  std::string text;
  llvm::raw_string_ostream os(text);
  if (interventions) {
    double share =
        all ? 100.0 * double(interventions + trainable) / double(all) : 0.0;
    // Python's repr of a float: the shortest text that reads back the same.
    char repr[40];
    for (int precision = 1; precision <= 17; ++precision) {
      std::snprintf(repr, sizeof(repr), "%.*g", precision, share);
      if (std::strtod(repr, nullptr) == share)
        break;
    }
    std::string shareText = repr;
    if (shareText.find_first_of(".e") == std::string::npos)
      shareText += ".0";
    os << "trainable intervention params: " << grouped(interventions)
       << " || trainable model params: " << grouped(trainable)
       << "\nmodel params: " << grouped(all) << " || trainable%: " << shareText;
    return text;
  }
  double percent = all ? 100.0 * double(trainable) / double(all) : 0.0;
  os << "trainable params: " << grouped(trainable)
     << " || all params: " << grouped(all)
     << " || trainable%: " << llvm::format("%.4f", percent);
  return text;
}

FailureOr<TrainableCount> countTrainable(ModuleOp module, StringRef funcName) {
  FailureOr<ModuleTable> table = ModuleTable::build(module, funcName);
  if (failed(table))
    return failure();
  TrainableCount count;
  count.all = table->countBaseParameters();
  for (auto param : module.getOps<pir::ParamOp>()) {
    int64_t numel = param.getTensorType().getNumElements();
    // pyreft counts an intervention's trainable tensors apart from the
    // model's, and neither them nor its buffers among the model params.
    if (param->hasAttr(attr::kIntervention)) {
      if (param.getTrainable())
        count.interventions += numel;
      continue;
    }
    if (param->hasAttr(attr::kMethod))
      count.all += numel;
    if (param.getTrainable())
      count.trainable += numel;
  }
  return count;
}

void printModuleTable(const ModuleTable &table, raw_ostream &os) {
  size_t width = 0;
  std::vector<std::string> heads;
  for (const Module &module : table.modules) {
    const spec::ModuleInfo &info = module.info;
    std::string head = info.path + " " + info.kind + " " +
                       std::to_string(info.inFeatures) + " " +
                       std::to_string(info.outFeatures);
    if (info.layer)
      head += " layer=" + std::to_string(*info.layer);
    if (info.isOutputHead)
      head += " head";
    if (info.hasBias)
      head += " bias";
    width = std::max(width, head.size());
    heads.push_back(std::move(head));
  }
  os << "# path kind in out [layer=N] [head] [bias]  # op: param [shape] ...\n";
  for (size_t i = 0; i < table.modules.size(); ++i) {
    const Module &module = table.modules[i];
    os << heads[i] << std::string(width - heads[i].size() + 2, ' ') << "# "
       << module.opName;
    if (module.info.kind == "linear")
      os << (module.weightOutIn ? " (x·Wᵀ)" : " (x·W)");
    os << ":";
    for (const ParamSlot &slot : module.params) {
      auto it = table.params.find(slot.param);
      os << " " << slot.role << "=" << slot.param;
      if (it == table.params.end())
        continue;
      os << "[";
      llvm::interleave(it->second.shape, os, "x");
      os << "]";
      if (!it->second.tiedTo.empty())
        os << " (tied to " << it->second.tiedTo << ")";
    }
    os << "\n";
  }
  os << "# " << table.countBaseParameters()
     << " parameters (tied weights counted once)\n";
}

} // namespace peft::analysis
