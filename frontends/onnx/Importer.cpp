//===- Importer.cpp - ONNX graph -> func @forward ---------------------------===//
#include "frontends/onnx/Importer.h"
#include "frontends/onnx/ModelLoader.h"
#include "frontends/onnx/NodeImport.h"
#include "frontends/onnx/TensorProto.h"

#include "codegen/reference/Evaluator.h"
#include "codegen/reference/TensorAttr.h"
#include "dialects/nn/NNOps.h"
#include "dialects/peft/PeftOps.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/DialectRegistry.h"
#include "mlir/IR/SymbolTable.h"

#include "onnx/version_converter/convert.h"

#include <set>

using namespace mlir;

namespace peft::onnx_import {

void registerImportDialects(DialectRegistry &registry) {
  registry.insert<func::FuncDialect, nn::NNDialect, pir::PeftDialect>();
}

bool parseInputShapes(const std::string &text, std::map<std::string, Shape> &out,
                      std::string &error) {
  size_t pos = 0;
  while (pos < text.size()) {
    size_t comma = text.find(',', pos);
    // A comma inside "a=2x3,b=4" separates entries; dims use 'x'.
    std::string item = text.substr(pos, comma == std::string::npos ? std::string::npos : comma - pos);
    pos = comma == std::string::npos ? text.size() : comma + 1;
    size_t eq = item.find('=');
    if (eq == std::string::npos || eq == 0) {
      error = "--input-shape entry '" + item +
              "' should look like NAME=DIMxDIM (e.g. input_ids=8x128)";
      return false;
    }
    std::string name = item.substr(0, eq), dims = item.substr(eq + 1);
    Shape shape;
    size_t p = 0;
    while (p <= dims.size() && !dims.empty()) {
      size_t x = dims.find('x', p);
      std::string d = dims.substr(p, x == std::string::npos ? std::string::npos : x - p);
      char *end = nullptr;
      long long v = std::strtoll(d.c_str(), &end, 10);
      if (d.empty() || *end || v < 0) {
        error = "--input-shape '" + item + "': '" + d +
                "' is not a dimension (use non-negative integers joined by 'x')";
        return false;
      }
      shape.push_back(v);
      if (x == std::string::npos)
        break;
      p = x + 1;
    }
    out[name] = shape;
  }
  return true;
}

namespace {

std::string joinShape(const Shape &s) { return "[" + shapeToString(s) + "]"; }

class GraphImporter {
public:
  GraphImporter(MLIRContext &ctx, LoadedModel &model, const ImportOptions &options)
      : ctx_(ctx), model_(model), options_(options), builder_(&ctx) {
    fileLoc_ = FileLineColLoc::get(&ctx, model.path, 0, 0);
  }

  OwningOpRef<ModuleOp> run();

private:
  InFlightDiagnostic error() {
    InFlightDiagnostic d = emitError(fileLoc_);
    return d;
  }
  LogicalResult resolveOpsets();
  LogicalResult upgradeOldOpset();
  LogicalResult importInputs(SmallVectorImpl<Type> &argTypes,
                             SmallVectorImpl<std::string> &argNames);
  LogicalResult importInitializers();
  LogicalResult importNode(const onnx::NodeProto &node, int index);
  LogicalResult foldConstants(NodeContext &nctx);
  FailureOr<Value> lookup(const std::string &name, const onnx::NodeProto &node);
  Location nodeLoc(const onnx::NodeProto &node, int index);

  MLIRContext &ctx_;
  LoadedModel &model_;
  const ImportOptions &options_;
  OpBuilder builder_;
  Location fileLoc_ = UnknownLoc::get(&ctx_);
  ModuleOp module_;
  std::map<std::string, int> opsets_;
  std::map<std::string, Value> values_;
  // Initializers not yet materialised as values (created on first use).
  std::map<std::string, const onnx::TensorProto *> pendingInitializers_;
  Block *entry_ = nullptr;
  std::set<std::string> paramNames_;
};

LogicalResult GraphImporter::resolveOpsets() {
  for (const auto &imp : model_.proto.opset_import()) {
    std::string d = imp.domain() == "ai.onnx" ? "" : imp.domain();
    opsets_[d] = (int)imp.version();
  }
  if (!opsets_.count(""))
    opsets_[""] = model_.proto.ir_version() <= 3 ? 6 : 1;
  int opset = opsets_[""];
  if (opset < 6 || opset > 21)
    return error() << "the model uses ONNX opset " << opset
                   << "; peftc supports opsets 6 to 21 (re-export with "
                      "torch.onnx.export(..., opset_version=17))";
  return success();
}

/// Old opsets are upgraded to 13 with libonnx's version converter, so
/// handlers only need opset 13+ semantics. Initializers are set aside during
/// conversion (their bytes are external references the converter must not touch).
LogicalResult GraphImporter::upgradeOldOpset() {
  int opset = opsets_[""];
  if (opset >= 13)
    return success();
  onnx::ModelProto copy = model_.proto;
  onnx::GraphProto *graph = copy.mutable_graph();
  auto initializers = graph->initializer();
  graph->clear_initializer();
  std::set<std::string> inputNames;
  for (const auto &in : graph->input())
    inputNames.insert(in.name());
  for (const auto &init : initializers) {
    if (inputNames.count(init.name()))
      continue;
    onnx::ValueInfoProto *vi = graph->add_input();
    vi->set_name(init.name());
    auto *tt = vi->mutable_type()->mutable_tensor_type();
    tt->set_elem_type(init.data_type());
    for (int64_t d : init.dims())
      tt->mutable_shape()->add_dim()->set_dim_value(d);
  }
  onnx::ModelProto converted;
  try {
    converted = onnx::version_conversion::ConvertVersion(copy, 13);
  } catch (const std::exception &e) {
    return error() << "cannot upgrade the model from opset " << opset
                   << " to 13 with ONNX's version converter: " << e.what()
                   << " (re-export with opset_version=17)";
  }
  onnx::GraphProto *out = converted.mutable_graph();
  // Drop the inputs added above and restore the initializers.
  google::protobuf::RepeatedPtrField<onnx::ValueInfoProto> keptInputs;
  for (const auto &in : out->input())
    if (inputNames.count(in.name()))
      *keptInputs.Add() = in;
  out->mutable_input()->Swap(&keptInputs);
  for (const auto &init : initializers)
    *out->add_initializer() = init;
  model_.proto = std::move(converted);
  opsets_[""] = 13;
  return success();
}

Location GraphImporter::nodeLoc(const onnx::NodeProto &node, int index) {
  std::string name = node.name().empty()
                         ? node.op_type() + "_" + std::to_string(index)
                         : node.name();
  return NameLoc::get(StringAttr::get(&ctx_, name), fileLoc_);
}

LogicalResult GraphImporter::importInputs(SmallVectorImpl<Type> &argTypes,
                                          SmallVectorImpl<std::string> &argNames) {
  const onnx::GraphProto &graph = model_.proto.graph();
  std::set<std::string> initNames;
  for (const auto &init : graph.initializer())
    initNames.insert(init.name());
  std::set<std::string> known;
  for (const auto &in : graph.input()) {
    if (initNames.count(in.name()))
      continue; // IR < 4 lists initializers as inputs too
    known.insert(in.name());
    if (options_.constantInputs.count(in.name()))
      continue;
    if (!in.type().has_tensor_type())
      return error() << "graph input '" << in.name()
                     << "' is not a tensor; peftc imports tensor inputs only";
    const auto &tt = in.type().tensor_type();
    Type et = elementTypeFromOnnx(&ctx_, tt.elem_type());
    if (!et)
      return error() << "graph input '" << in.name()
                     << "' has unsupported element type " << tt.elem_type();
    Shape declared;
    std::vector<std::string> dimNames;
    bool dynamic = false;
    for (const auto &d : tt.shape().dim()) {
      if (d.has_dim_value() && d.dim_value() >= 0) {
        declared.push_back(d.dim_value());
        dimNames.push_back(std::to_string(d.dim_value()));
      } else {
        declared.push_back(-1);
        dimNames.push_back(d.has_dim_param() && !d.dim_param().empty() ? d.dim_param() : "?");
        dynamic = true;
      }
    }
    std::string declaredText = "[";
    for (size_t i = 0; i < dimNames.size(); ++i)
      declaredText += (i ? ", " : "") + dimNames[i];
    declaredText += "]";
    Shape shape = declared;
    auto given = options_.inputShapes.find(in.name());
    if (given != options_.inputShapes.end()) {
      if (given->second.size() != declared.size())
        return error() << "--input-shape " << in.name() << "="
                       << shapeToString(given->second) << " has rank "
                       << given->second.size() << " but the model declares "
                       << declaredText << " (rank " << declared.size() << ")";
      for (size_t i = 0; i < declared.size(); ++i)
        if (declared[i] >= 0 && declared[i] != given->second[i])
          return error() << "--input-shape " << in.name() << "="
                         << shapeToString(given->second) << " conflicts with the "
                         << "model's static dimension " << i << " = "
                         << declared[i] << " (declared " << declaredText << ")";
      shape = given->second;
    } else if (dynamic) {
      return error() << "graph input '" << in.name() << "' has dynamic shape "
                     << declaredText << "; give a static shape with --input-shape "
                     << in.name() << "=" << [&] {
                          std::string s;
                          for (size_t i = 0; i < declared.size(); ++i)
                            s += (i ? "x" : "") + (declared[i] >= 0 ? std::to_string(declared[i]) : std::string("N"));
                          return s;
                        }();
    }
    argTypes.push_back(RankedTensorType::get(shape, et));
    argNames.push_back(in.name());
  }
  for (auto &[name, shape] : options_.inputShapes)
    if (!known.count(name)) {
      std::string list;
      for (auto &k : known)
        list += (list.empty() ? "" : ", ") + k;
      return error() << "--input-shape names '" << name
                     << "', which is not a graph input (inputs: " << list << ")";
    }
  return success();
}

LogicalResult GraphImporter::importInitializers() {
  for (const auto &init : model_.proto.graph().initializer())
    pendingInitializers_[init.name()] = &init;
  return success();
}

/// Initializers become constants only when tiny integer data (shapes, axes,
/// indices) or scalars; everything else is a frozen param referencing its bytes.
static bool inlineAsConstant(const onnx::TensorProto &t) {
  int64_t n = numElements(tensorShape(t));
  bool isInt = t.data_type() == onnx::TensorProto::INT64 ||
               t.data_type() == onnx::TensorProto::INT32;
  return (isInt && n <= 64) || n <= 1;
}

FailureOr<Value> GraphImporter::lookup(const std::string &name,
                                       const onnx::NodeProto &node) {
  auto it = values_.find(name);
  if (it != values_.end())
    return it->second;
  auto pending = pendingInitializers_.find(name);
  if (pending == pendingInitializers_.end())
    return failure();
  const onnx::TensorProto &t = *pending->second;
  OpBuilder::InsertionGuard guard(builder_);
  auto dtype = dtypeFromOnnx(t.data_type());
  if (!dtype)
    return (error() << "initializer '" << name << "' has unsupported data type "
                    << t.data_type()),
           failure();
  auto type = toTensorType(&ctx_, *dtype, tensorShape(t));
  std::string err;
  Value v;
  if (inlineAsConstant(t)) {
    Tensor value;
    if (!decodeTensor(t, model_, value, err))
      return (error() << err), failure();
    builder_.setInsertionPointToStart(entry_);
    v = builder_.create<nn::ConstantOp>(fileLoc_, type, attrFromTensor(value, type));
  } else {
    builder_.setInsertionPoint(module_.getBody(), std::prev(module_.getBody()->end()));
    auto param = builder_.create<pir::ParamOp>(
        NameLoc::get(StringAttr::get(&ctx_, name), fileLoc_), name, type);
    if (t.data_location() == onnx::TensorProto::EXTERNAL) {
      ByteRange range;
      if (!externalRange(t, model_, range, err))
        return (error() << err), failure();
      param.setStorageAttr(pir::StorageAttr::get(&ctx_, range.file,
                                                 (int64_t)range.offset,
                                                 (int64_t)range.length));
    } else {
      // Small or varint-encoded payloads protobuf already holds.
      Tensor value;
      if (!decodeTensor(t, model_, value, err))
        return (error() << err), failure();
      param.setValueAttr(attrFromTensor(value, type));
    }
    builder_.setInsertionPointToStart(entry_);
    v = builder_.create<pir::UseOp>(fileLoc_, type, name);
  }
  pendingInitializers_.erase(pending);
  values_[name] = v;
  return v;
}

LogicalResult GraphImporter::foldConstants(NodeContext &nctx) {
  SmallVector<Operation *> folded;
  for (Operation *op : nctx.createdOps()) {
    if (isa<nn::ConstantOp>(op) || op->getNumResults() == 0)
      continue;
    SmallVector<Tensor> operands;
    bool allConstant = true;
    for (Value v : op->getOperands()) {
      auto c = v.getDefiningOp<nn::ConstantOp>();
      if (!c) {
        allConstant = false;
        break;
      }
      operands.push_back(*tensorFromAttr(c.getValue()));
    }
    if (!allConstant)
      continue;
    int64_t size = 0;
    for (Value r : op->getResults())
      size += cast<RankedTensorType>(r.getType()).getNumElements();
    if (size > options_.foldElementLimit)
      continue;
    auto results = ref::Evaluator::evaluateOp(op, operands);
    if (failed(results))
      return failure();
    OpBuilder b(op);
    for (auto [r, t] : llvm::zip(op->getResults(), *results)) {
      auto type = cast<RankedTensorType>(r.getType());
      Value c = b.create<nn::ConstantOp>(op->getLoc(), type, attrFromTensor(t, type));
      r.replaceAllUsesWith(c);
      nctx.replaceResult(r, c);
    }
    folded.push_back(op);
  }
  // Erase folded ops (now unused), newest first.
  for (Operation *op : llvm::reverse(folded))
    op->erase();
  return success();
}

LogicalResult GraphImporter::importNode(const onnx::NodeProto &node, int index) {
  Location loc = nodeLoc(node, index);
  std::string domain = node.domain() == "ai.onnx" ? "" : node.domain();
  int opset = opsets_.count(domain) ? opsets_[domain] : 1;
  std::string label = node.name().empty() ? node.op_type() + " #" + std::to_string(index) : node.name();
  const Handler *handler = HandlerRegistry::instance().lookup(domain, node.op_type(), opset);
  if (!handler)
    return emitError(loc) << "unsupported op " << (domain.empty() ? "ai.onnx" : domain)
                          << "::" << node.op_type() << " (opset " << opset
                          << ") at node '" << label
                          << "'; docs/ops.md lists the supported ops and opsets";
  SmallVector<Value> inputs;
  for (const std::string &name : node.input()) {
    if (name.empty()) {
      inputs.push_back(nullptr);
      continue;
    }
    FailureOr<Value> v = lookup(name, node);
    if (failed(v))
      return emitError(loc) << "node '" << label << "' (" << node.op_type()
                            << ") reads '" << name
                            << "', which no graph input, initializer or earlier "
                               "node defines";
    inputs.push_back(*v);
  }
  NodeContext nctx(builder_, loc, node, opset, std::move(inputs), model_);
  if (failed((*handler)(nctx)))
    return failure();
  for (int i = 0; i < node.output_size(); ++i) {
    if (node.output(i).empty())
      continue;
    if (!nctx.results()[i]) {
      if (i == 0)
        return emitError(loc) << "node '" << label << "' (" << node.op_type()
                              << "): the importer produced no value";
      continue; // optional output not supported; using it fails at lookup
    }
  }
  if (failed(foldConstants(nctx)))
    return failure();
  // Folding replaced uses; re-read results through their current values.
  for (int i = 0; i < node.output_size(); ++i) {
    if (node.output(i).empty() || !nctx.results()[i])
      continue;
    values_[node.output(i)] = nctx.results()[i];
  }
  return success();
}

OwningOpRef<ModuleOp> GraphImporter::run() {
  if (failed(resolveOpsets()) || failed(upgradeOldOpset()))
    return nullptr;
  module_ = ModuleOp::create(fileLoc_);
  OwningOpRef<ModuleOp> owned(module_);
  module_->setAttr("nn.source", StringAttr::get(&ctx_, model_.path));
  module_->setAttr("nn.opset", builder_.getI64IntegerAttr(opsets_[""]));
  module_->setAttr("nn.ir_version", builder_.getI64IntegerAttr(model_.proto.ir_version()));

  SmallVector<Type> argTypes;
  SmallVector<std::string> argNames;
  if (failed(importInputs(argTypes, argNames)))
    return nullptr;
  builder_.setInsertionPointToEnd(module_.getBody());
  auto func = builder_.create<func::FuncOp>(fileLoc_, options_.functionName,
                                            builder_.getFunctionType(argTypes, {}));
  entry_ = func.addEntryBlock();
  for (auto [i, name] : llvm::enumerate(argNames)) {
    func.setArgAttr(i, "nn.name", builder_.getStringAttr(name));
    values_[name] = entry_->getArgument(i);
  }
  builder_.setInsertionPointToEnd(entry_);
  for (auto &[name, t] : options_.constantInputs) {
    auto type = toTensorType(&ctx_, t.dtype(), t.shape());
    values_[name] = builder_.create<nn::ConstantOp>(fileLoc_, type, attrFromTensor(t, type));
  }
  if (failed(importInitializers()))
    return nullptr;
  const onnx::GraphProto &graph = model_.proto.graph();
  for (int i = 0; i < graph.node_size(); ++i) {
    builder_.setInsertionPointToEnd(entry_);
    if (failed(importNode(graph.node(i), i)))
      return nullptr;
  }
  SmallVector<Value> results;
  SmallVector<Type> resultTypes;
  for (const auto &out : graph.output()) {
    auto it = values_.find(out.name());
    Value v;
    if (it != values_.end()) {
      v = it->second;
    } else {
      onnx::NodeProto dummy;
      auto init = lookup(out.name(), dummy);
      if (failed(init)) {
        error() << "graph output '" << out.name() << "' is not produced by any node";
        return nullptr;
      }
      v = *init;
    }
    results.push_back(v);
    resultTypes.push_back(v.getType());
  }
  builder_.setInsertionPointToEnd(entry_);
  builder_.create<func::ReturnOp>(fileLoc_, results);
  func.setType(builder_.getFunctionType(argTypes, resultTypes));
  for (auto [i, out] : llvm::enumerate(graph.output()))
    func.setResultAttr(i, "nn.name", builder_.getStringAttr(out.name()));
  if (failed(mlir::verify(module_)))
    return nullptr;
  return owned;
}

} // namespace

OwningOpRef<ModuleOp> importOnnxModel(MLIRContext &context, const std::string &path,
                                      const ImportOptions &options) {
  context.loadDialect<func::FuncDialect, nn::NNDialect, pir::PeftDialect>();
  LoadedModel model;
  std::string error;
  if (!loadModel(path, model, error)) {
    emitError(FileLineColLoc::get(&context, path, 0, 0)) << error;
    return nullptr;
  }
  GraphImporter importer(context, model, options);
  return importer.run();
}

} // namespace peft::onnx_import
