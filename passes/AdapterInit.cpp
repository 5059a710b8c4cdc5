//===- AdapterInit.cpp - initial values of adapter params -----------------===//
#include "passes/AdapterInit.h"

#include "codegen/reference/TensorAttr.h"
#include "dialects/nn/NNOps.h"
#include "passes/analysis/ModuleNames.h"
#include "peft/SafeTensors.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/Builders.h"
#include "llvm/ADT/STLExtras.h"
#include "llvm/ADT/StringExtras.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/JSON.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/Path.h"

#include <cmath>
#include <map>
#include <set>

using namespace mlir;

namespace peft::adapters {

namespace {

uint64_t splitMix(uint64_t &state) {
  uint64_t z = (state += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

/// FNV-1a, 64 bit: the stream of a param name.
uint64_t fnv1a(StringRef text) {
  uint64_t hash = 0xcbf29ce484222325ull;
  for (unsigned char c : text) {
    hash ^= c;
    hash *= 0x100000001b3ull;
  }
  return hash;
}

std::string shapeText(ArrayRef<int64_t> shape) {
  std::string s = "[";
  llvm::interleave(
      shape, [&](int64_t d) { s += std::to_string(d); }, [&] { s += ", "; });
  return s + "]";
}

} // namespace

InitRandom::InitRandom(uint64_t seed, StringRef stream) {
  uint64_t mixed = fnv1a(stream);
  state_ = seed ^ splitMix(mixed);
}

uint64_t InitRandom::next() { return splitMix(state_); }

double InitRandom::uniform() { return double(next() >> 11) * 0x1.0p-53; }

double InitRandom::normal() {
  if (haveSpare_) {
    haveSpare_ = false;
    return spare_;
  }
  double u1 = 1.0 - uniform(); // (0, 1]: log stays finite
  double u2 = uniform();
  double radius = std::sqrt(-2.0 * std::log(u1));
  double angle = 2.0 * M_PI * u2;
  spare_ = radius * std::sin(angle);
  haveSpare_ = true;
  return radius * std::cos(angle);
}

FailureOr<Tensor> initialValue(pir::ParamOp param, uint64_t seed,
                               ParamReader read) {
  RankedTensorType type = param.getTensorType();
  std::optional<DType> dtype = toDType(type.getElementType());
  if (!dtype || !isFloat(*dtype))
    return param.emitError("param @")
           << param.getSymName() << ": init rules make float tensors, not "
           << type;
  std::optional<StringRef> rule = param.getInit();
  if (!rule)
    return param.emitError("param @")
           << param.getSymName() << " has no init rule";
  Tensor value(*dtype, toShape(type));
  int64_t numel = value.numel();
  InitRandom random(seed, param.getSymName());
  ArrayRef<int64_t> shape = type.getShape();

  if (*rule == "zeros")
    return value; // owned tensors start zeroed
  if (*rule == "ones") {
    for (int64_t i = 0; i < numel; ++i)
      value.setDouble(i, 1.0);
    return value;
  }
  if (*rule == "kaiming_uniform") {
    int64_t fanIn = shape.empty() ? 1 : shape.back();
    double bound = 1.0 / std::sqrt(double(std::max<int64_t>(fanIn, 1)));
    for (int64_t i = 0; i < numel; ++i)
      value.setDouble(i, bound * (2.0 * random.uniform() - 1.0));
    return value;
  }
  if (*rule == "gaussian" || *rule == "normal") {
    double std = 1.0;
    if (*rule == "gaussian")
      std = 1.0 / double(std::max<int64_t>(shape.empty() ? 1 : shape[0], 1));
    for (int64_t i = 0; i < numel; ++i)
      value.setDouble(i, std * random.normal());
    return value;
  }
  // The adapters library's "bert" init: weights normal(0, 0.02).
  if (*rule == "bert_normal") {
    for (int64_t i = 0; i < numel; ++i)
      value.setDouble(i, 0.02 * random.normal());
    return value;
  }
  // Prompt tuning's TEXT init: rows of the word embedding table, by the
  // token ids in peft.init_args {table, rows}.
  if (*rule == "embedding_rows") {
    auto args = param->getAttrOfType<DictionaryAttr>(analysis::attr::kInitArgs);
    auto tableName = args ? args.getAs<FlatSymbolRefAttr>("table") : nullptr;
    auto ids = args ? args.getAs<DenseI64ArrayAttr>("rows") : nullptr;
    if (!tableName || !ids || shape.size() != 2 ||
        (int64_t)ids.size() != shape[0])
      return param.emitError("param @")
             << param.getSymName()
             << ": init \"embedding_rows\" needs peft.init_args {table, "
                "rows} with one row id per param row";
    FailureOr<Tensor> table = read(tableName.getValue());
    if (failed(table))
      return failure();
    if (table->rank() != 2 || table->shape()[1] != shape[1])
      return param.emitError("embedding_rows: the table's rows are not ")
             << shape[1] << " wide";
    for (int64_t r = 0; r < shape[0]; ++r) {
      int64_t id = ids[r];
      if (id < 0 || id >= table->shape()[0])
        return param.emitError("embedding_rows: row id ")
               << id << " is outside the table";
      for (int64_t c = 0; c < shape[1]; ++c)
        value.setDouble(r * shape[1] + c, table->getDouble(id * shape[1] + c));
    }
    return value;
  }
  if (*rule == "dora_norm") {
    auto args = param->getAttrOfType<DictionaryAttr>(analysis::attr::kInitArgs);
    auto weightName = args ? args.getAs<FlatSymbolRefAttr>("weight") : nullptr;
    auto aName = args ? args.getAs<FlatSymbolRefAttr>("lora_a") : nullptr;
    auto bName = args ? args.getAs<FlatSymbolRefAttr>("lora_b") : nullptr;
    auto scaleAttr = args ? args.getAs<FloatAttr>("scale") : nullptr;
    auto layout = args ? args.getAs<StringAttr>("weight_layout") : nullptr;
    if (!weightName || !aName || !bName || !scaleAttr || !layout)
      return param.emitError("param @")
             << param.getSymName()
             << ": init \"dora_norm\" needs peft.init_args {weight, lora_a, "
                "lora_b, scale, weight_layout}";
    FailureOr<Tensor> w = read(weightName.getValue());
    FailureOr<Tensor> a = read(aName.getValue());
    FailureOr<Tensor> b = read(bName.getValue());
    if (failed(w) || failed(a) || failed(b))
      return failure();
    bool outIn = layout.getValue() == "out_in";
    if (a->rank() != 2 || b->rank() != 2 || w->rank() != 2)
      return param.emitError(
          "dora_norm: weight, lora_a and lora_b must be 2-D");
    int64_t r = a->shape()[0], in = a->shape()[1], out = b->shape()[0];
    if (b->shape()[1] != r || numel != out ||
        w->shape() != (outIn ? Shape{out, in} : Shape{in, out}))
      return param.emitError("dora_norm: shapes of weight ")
             << shapeText(w->shape()) << ", lora_a " << shapeText(a->shape())
             << ", lora_b " << shapeText(b->shape()) << " do not fit [" << numel
             << "]";
    double scale = scaleAttr.getValueAsDouble();
    // In f64, unrounded: the norm must equal the one peft.dora computes from
    // the same W, A and B, which an f64 evaluation does not round either
    // (then m/n is exactly 1 and DoRA starts as the identity); an f32 writer
    // rounds it once, as PEFT's f32 norm is.
    value = Tensor(DType::F64, toShape(type));
    for (int64_t o = 0; o < out; ++o) {
      double sum = 0;
      for (int64_t i = 0; i < in; ++i) {
        double low = 0;
        for (int64_t k = 0; k < r; ++k)
          low += b->getDouble(o * r + k) * a->getDouble(k * in + i);
        double merged =
            w->getDouble(outIn ? o * in + i : i * out + o) + scale * low;
        sum += merged * merged;
      }
      value.setDouble(o, std::sqrt(sum));
    }
    return value;
  }
  // ReFT (peft-insert-interventions). nn.Linear's bias: U(-b, b) with
  // b = 1/sqrt(fan_in) of its weight, named in peft.init_args.
  if (*rule == "uniform_fan_in") {
    auto args = param->getAttrOfType<DictionaryAttr>(analysis::attr::kInitArgs);
    auto fanIn = args ? args.getAs<IntegerAttr>("fan_in") : nullptr;
    if (!fanIn || fanIn.getInt() < 1)
      return param.emitError("param @")
             << param.getSymName()
             << ": init \"uniform_fan_in\" needs peft.init_args {fan_in}";
    double bound = 1.0 / std::sqrt(double(fanIn.getInt()));
    for (int64_t i = 0; i < numel; ++i)
      value.setDouble(i, bound * (2.0 * random.uniform() - 1.0));
    return value;
  }
  // torch's orthogonal parametrization starts its `original` at −I [n, k].
  if (*rule == "neg_identity") {
    if (shape.size() != 2)
      return param.emitError("neg_identity: the param must be 2-D");
    for (int64_t i = 0; i < std::min(shape[0], shape[1]); ++i)
      value.setDouble(i * shape[1] + i, -1.0);
    return value;
  }
  // A random orthogonal [n, n] matrix (its `base`): Gram-Schmidt, twice, of
  // a Gaussian matrix's columns, as torch's QR with a positive diagonal.
  if (*rule == "orthogonal") {
    if (shape.size() != 2 || shape[0] != shape[1])
      return param.emitError("orthogonal: the param must be square");
    int64_t n = shape[0];
    std::vector<double> q(n * n);
    for (double &v : q)
      v = random.normal();
    for (int64_t c = 0; c < n; ++c) {
      for (int pass = 0; pass < 2; ++pass)
        for (int64_t p = 0; p < c; ++p) {
          double dot = 0;
          for (int64_t i = 0; i < n; ++i)
            dot += q[i * n + p] * q[i * n + c];
          for (int64_t i = 0; i < n; ++i)
            q[i * n + c] -= dot * q[i * n + p];
        }
      double norm = 0;
      for (int64_t i = 0; i < n; ++i)
        norm += q[i * n + c] * q[i * n + c];
      norm = std::sqrt(norm);
      for (int64_t i = 0; i < n; ++i)
        q[i * n + c] /= norm;
    }
    for (int64_t i = 0; i < numel; ++i)
      value.setDouble(i, q[i]);
    return value;
  }
  return param.emitError("param @")
         << param.getSymName() << ": unknown init rule \"" << *rule
         << "\" (zeros, ones, kaiming_uniform, gaussian, normal, dora_norm, "
            "uniform_fan_in, neg_identity, orthogonal, bert_normal, "
            "embedding_rows)";
}

LogicalResult initializeParams(ModuleOp module, uint64_t seed, ParamReader read,
                               ParamWriter write) {
  SmallVector<pir::ParamOp> pending, dependent;
  for (auto param : module.getOps<pir::ParamOp>()) {
    if (!param.getInit() || param.getStorageAttr() || param.getValueAttr())
      continue;
    (*param.getInit() == "dora_norm" ? dependent : pending).push_back(param);
  }
  pending.append(dependent.begin(), dependent.end());
  for (pir::ParamOp param : pending) {
    FailureOr<Tensor> value = initialValue(param, seed, read);
    if (failed(value) || failed(write(param.getSymName(), *value)))
      return failure();
  }
  return success();
}

void rebindParam(pir::ParamOp param, RankedTensorType type,
                 pir::StorageAttr storage, bool transposed) {
  RankedTensorType oldType = param.getTensorType();
  param.setTypeAttr(TypeAttr::get(type));
  param.setStorageAttr(storage);
  param.removeInitAttr();
  param.removeValueAttr();
  param->removeAttr(analysis::attr::kInitArgs);
  if (transposed)
    param->removeAttr(analysis::attr::kKeyTransposed);
  ModuleOp module = param->getParentOfType<ModuleOp>();
  SmallVector<pir::UseOp> uses;
  module.walk([&](pir::UseOp use) {
    if (use.getParam() == param.getSymName())
      uses.push_back(use);
  });
  for (pir::UseOp use : uses) {
    Value result = use.getResult();
    SmallVector<OpOperand *> consumers;
    for (OpOperand &operand : result.getUses())
      consumers.push_back(&operand);
    result.setType(type);
    OpBuilder builder(use->getContext());
    builder.setInsertionPointAfter(use);
    Value value = result;
    if (transposed)
      value = builder.create<nn::TransposeOp>(
          use.getLoc(), value, builder.getDenseI64ArrayAttr({1, 0}));
    if (type.getElementType() != oldType.getElementType())
      value = builder.create<nn::CastOp>(use.getLoc(), oldType, value);
    for (OpOperand *operand : consumers)
      operand->set(value);
  }
}

namespace {

/// One tensor of a safetensors file: where its bytes are.
struct FileTensor {
  DType dtype;
  Shape shape;
  int64_t offset = 0, length = 0;
  bool claimed = false;
};

/// Reads the header of a safetensors file (already validated by
/// readSafeTensors) for the absolute byte range of each tensor.
LogicalResult readTensorRanges(Location loc, const std::string &path,
                               std::map<std::string, FileTensor> &tensors) {
  SafeTensorsFile file;
  std::string error;
  if (!readSafeTensors(path, file, error))
    return emitError(loc) << "--init-adapter: " << error;
  auto buffer = llvm::MemoryBuffer::getFile(path);
  if (!buffer)
    return emitError(loc) << "--init-adapter: cannot read '" << path << "'";
  StringRef bytes = (*buffer)->getBuffer();
  uint64_t headerSize = 0;
  for (int i = 7; i >= 0; --i)
    headerSize = (headerSize << 8) | uint8_t(bytes[i]);
  llvm::Expected<llvm::json::Value> header =
      llvm::json::parse(bytes.substr(8, headerSize));
  if (!header) {
    llvm::consumeError(header.takeError());
    return emitError(loc) << "--init-adapter: bad header in '" << path << "'";
  }
  for (auto &[name, tensor] : file.tensors) {
    const llvm::json::Object *entry = header->getAsObject()->getObject(name);
    const llvm::json::Array *offsets =
        entry ? entry->getArray("data_offsets") : nullptr;
    if (!offsets || offsets->size() != 2)
      return emitError(loc) << "--init-adapter: bad header in '" << path << "'";
    FileTensor info;
    info.dtype = tensor.dtype();
    info.shape = tensor.shape();
    info.offset = 8 + int64_t(headerSize) + *(*offsets)[0].getAsInteger();
    info.length = int64_t(tensor.byteSize());
    tensors[name] = std::move(info);
  }
  return success();
}

} // namespace

LogicalResult loadInitialAdapter(ModuleOp module, StringRef path) {
  Location loc = module.getLoc();
  MLIRContext *context = module.getContext();
  SmallString<256> file(path);
  if (llvm::sys::fs::is_directory(file)) {
    llvm::sys::path::append(file, "adapter_model.safetensors");
    // The adapters library (bottleneck adapters) saves adapter.safetensors.
    SmallString<256> library(path);
    llvm::sys::path::append(library, "adapter.safetensors");
    if (!llvm::sys::fs::exists(file) && llvm::sys::fs::exists(library))
      file = library;
  }
  if (!llvm::sys::fs::exists(file))
    return emitError(loc) << "--init-adapter: '" << file
                          << "' does not exist (expected a directory in PEFT's "
                             "save_pretrained layout, or its "
                             "adapter_model.safetensors)";
  llvm::sys::fs::make_absolute(file);
  std::map<std::string, FileTensor> tensors;
  if (failed(readTensorRanges(loc, file.str().str(), tensors)))
    return failure();

  std::vector<std::string> keys;
  for (auto param : llvm::make_early_inc_range(module.getOps<pir::ParamOp>())) {
    auto keyAttr = param->getAttrOfType<StringAttr>(analysis::attr::kKey);
    if (!keyAttr || !param.getTrainable())
      continue;
    StringRef key = keyAttr.getValue();
    keys.push_back(key.str());
    auto it = tensors.find(key.str());
    if (it == tensors.end()) {
      // PEFT saves a projected prefix as its encoder's output
      // (peft-insert-prefix-tuning's function with `peft.saved_key`), from
      // which the encoder's weights cannot be recovered.
      for (auto fn : module.getOps<func::FuncOp>()) {
        auto saved = fn->getAttrOfType<StringAttr>("peft.saved_key");
        if (saved && tensors.count(saved.str()))
          return emitError(loc)
                 << "--init-adapter: '" << file << "' holds '"
                 << saved.getValue() << "', the output of @" << fn.getSymName()
                 << " (PEFT saves a projected prefix as "
                 << "its encoder's output), not the trainable '" << key
                 << "' it is computed from; the encoder's weights cannot be "
                    "recovered from it: pass a safetensors file of the "
                    "encoder's weights (prompt_encoder.*) instead";
      }
      auto method = param->getAttrOfType<StringAttr>(analysis::attr::kMethod);
      if (method && method.getValue() != "modules_to_save")
        return emitError(loc)
               << "--init-adapter: '" << file << "' has no tensor '" << key
               << "', which the spec's " << method.getValue()
               << " adapter needs; is the "
               << "adapter for another model or configuration?";
      continue; // keeps its model value
    }
    FileTensor &tensor = it->second;
    tensor.claimed = true;
    RankedTensorType type = param.getTensorType();
    bool transposed = param->hasAttr(analysis::attr::kKeyTransposed);
    SmallVector<int64_t> expected(type.getShape());
    if (transposed)
      std::reverse(expected.begin(), expected.end());
    if (!isFloat(tensor.dtype) ||
        ArrayRef<int64_t>(tensor.shape) != ArrayRef<int64_t>(expected))
      return emitError(loc)
             << "--init-adapter: tensor '" << key << "' in '" << file << "' is "
             << dtypeName(tensor.dtype) << shapeText(tensor.shape)
             << " but the spec makes it a float tensor of shape "
             << shapeText(expected) << "; is the adapter for another model or "
             << "configuration (rank, target modules)?";
    RankedTensorType fileType =
        toTensorType(context, tensor.dtype, tensor.shape);
    rebindParam(param, fileType,
                pir::StorageAttr::get(context, file.str(), tensor.offset,
                                      tensor.length),
                transposed);
  }
  for (auto &[name, tensor] : tensors) {
    if (tensor.claimed)
      continue;
    std::sort(keys.begin(), keys.end());
    InFlightDiagnostic diag =
        emitError(loc) << "--init-adapter: tensor '" << name << "' in '" << file
                       << "' matches no trainable tensor of the spec; is the "
                          "adapter for another model or configuration?";
    diag.attachNote() << "the spec trains: "
                      << llvm::join(ArrayRef(keys).take_front(8), ", ")
                      << (keys.size() > 8 ? ", ..." : "");
    return diag;
  }
  return success();
}

} // namespace peft::adapters
