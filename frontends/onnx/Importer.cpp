//===- Importer.cpp - ONNX graph -> func @forward ------------------------===//
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

#include "onnx/shape_inference/implementation.h"
#include "onnx/version_converter/convert.h"

#include <set>

using namespace mlir;

namespace peft::onnx_import {

void registerImportDialects(DialectRegistry &registry) {
  registry.insert<func::FuncDialect, nn::NNDialect, pir::PeftDialect>();
}

bool parseInputShapes(const std::string &text,
                      std::map<std::string, Shape> &out, std::string &error) {
  size_t pos = 0;
  while (pos < text.size()) {
    size_t comma = text.find(',', pos);
    // A comma inside "a=2x3,b=4" separates entries; dims use 'x'.
    std::string item = text.substr(
        pos, comma == std::string::npos ? std::string::npos : comma - pos);
    pos = comma == std::string::npos ? text.size() : comma + 1;
    size_t eq = item.find('=');
    if (eq == std::string::npos || eq == 0) {
      error = "--input-shape entry '" + item +
              "' should look like NAME=DIMxDIM (e.g. input_ids=8x128)";
      return false;
    }
    std::string name = item.substr(0, eq), dims = item.substr(eq + 1);
    Shape shape;
    int64_t elements = 1;
    size_t p = 0;
    while (p <= dims.size() && !dims.empty()) {
      size_t x = dims.find('x', p);
      std::string d =
          dims.substr(p, x == std::string::npos ? std::string::npos : x - p);
      char *end = nullptr;
      long long v = std::strtoll(d.c_str(), &end, 10);
      if (d.empty() || *end || v < 0 || d[0] == '+' || d[0] == '-') {
        error =
            "--input-shape '" + item + "': '" + d +
            "' is not a dimension (use non-negative integers joined by 'x')";
        return false;
      }
      if (v != 0 && elements > (int64_t(1) << 48) / v) {
        error = "--input-shape '" + item + "' has too many elements";
        return false;
      }
      elements *= v;
      shape.push_back(v);
      if (x == std::string::npos)
        break;
      p = x + 1;
    }
    if (out.count(name)) {
      error = "--input-shape gives '" + name + "' twice";
      return false;
    }
    out[name] = shape;
  }
  if (out.empty()) {
    error = "--input-shape needs NAME=DIMxDIM (e.g. input_ids=8x128)";
    return false;
  }
  return true;
}

namespace {

/// "FLOAT8E4M3FN (17)" for messages about element types peftc lacks.
std::string onnxTypeName(int32_t type) {
  std::string name =
      onnx::TensorProto::DataType_IsValid(type)
          ? onnx::TensorProto::DataType_Name((onnx::TensorProto::DataType)type)
          : std::string("unknown");
  return name + " (" + std::to_string(type) + ")";
}

class GraphImporter {
public:
  GraphImporter(MLIRContext &ctx, LoadedModel &model,
                const ImportOptions &options)
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
  std::string domainOf(const onnx::NodeProto &node) const {
    return node.domain() == "ai.onnx" ? "" : node.domain();
  }
  int opsetOf(const std::string &domain) const {
    auto it = opsets_.find(domain);
    return it == opsets_.end() ? 1 : it->second;
  }
  /// Whether peftc can import `node` once the default domain is at
  /// `defaultOpset`.
  bool hasHandler(const onnx::NodeProto &node, int defaultOpset) const;
  LogicalResult reportUnsupported(const onnx::NodeProto &node, int index);
  FailureOr<bool> importLargeConstant(const onnx::NodeProto &node,
                                      Location loc);
  LogicalResult foldConstants(NodeContext &nctx);
  /// The value `name` refers to, materialising an initializer on first use.
  /// A null value when nothing defines `name`; failure once an error about
  /// it has been reported.
  FailureOr<Value> lookup(const std::string &name);
  FailureOr<Value> materialize(const std::string &name,
                               const onnx::TensorProto &t, Location loc);
  Location nodeLoc(const onnx::NodeProto &node, int index);
  /// The node's name, or "OpType #index" for an unnamed one.
  static std::string labelOf(const onnx::NodeProto &node, int index) {
    return node.name().empty() ? node.op_type() + " #" + std::to_string(index)
                               : node.name();
  }
  /// The static shape chosen for graph input `name` (--input-shape, else the
  /// shape of a tensor handed in), and in `source` where it came from.
  const Shape *givenShape(const std::string &name,
                          std::string *source = nullptr) const;

  MLIRContext &ctx_;
  LoadedModel &model_;
  const ImportOptions &options_;
  OpBuilder builder_;
  Location fileLoc_ = UnknownLoc::get(&ctx_);
  ModuleOp module_;
  std::map<std::string, int> opsets_;
  /// The model's own ai.onnx opset, before any upgrade.
  int modelOpset_ = 0;
  std::map<std::string, Value> values_;
  // Initializers not yet materialised as values (created on first use).
  std::map<std::string, const onnx::TensorProto *> pendingInitializers_;
  Block *entry_ = nullptr;
  std::set<std::string> sparseInitializers_;
};

LogicalResult GraphImporter::resolveOpsets() {
  for (const auto &imp : model_.proto.opset_import()) {
    std::string d = imp.domain() == "ai.onnx" ? "" : imp.domain();
    opsets_[d] = (int)imp.version();
  }
  if (!opsets_.count("")) {
    for (const auto &node : model_.proto.graph().node())
      if (node.domain().empty() || node.domain() == "ai.onnx")
        return error() << "the model's opset_import has no entry for the "
                          "default ONNX domain, so its ops have no version "
                          "(a truncated or hand-built model?)";
    // No node depends on the default opset; any supported one will do.
    opsets_[""] = 21;
  }
  int opset = opsets_[""];
  modelOpset_ = opset;
  if (opset < 6 || opset > 21)
    return error() << "the model uses ONNX opset " << opset
                   << "; peftc supports opsets 6 to 21 (re-export with "
                      "torch.onnx.export(..., opset_version=17))";
  return success();
}

static bool isSelfReference(const onnx::TensorProto &t) {
  if (t.data_location() != onnx::TensorProto::EXTERNAL)
    return false;
  for (const auto &kv : t.external_data())
    if (kv.key() == "location")
      return kv.value() == kSelfLocation;
  return false;
}

/// libonnx's converter rebuilds attribute tensors from their values and so
/// drops external-data references: put the bytes back into the tensors of
/// `graph`'s node attributes (small ones: big Constant values were hoisted).
static LogicalResult inlineAttributeData(onnx::GraphProto &graph,
                                         const LoadedModel &model,
                                         std::string &err) {
  auto fix = [&](onnx::TensorProto &t) {
    if (!isSelfReference(t))
      return true;
    Tensor value;
    if (!decodeTensor(t, model, value, err))
      return false;
    t.clear_external_data();
    t.clear_data_location();
    t.set_raw_data(std::string(reinterpret_cast<const char *>(value.bytes()),
                               value.byteSize()));
    return true;
  };
  for (auto &node : *graph.mutable_node())
    for (auto &a : *node.mutable_attribute()) {
      if (a.has_t() && !fix(*a.mutable_t()))
        return failure();
      for (auto &t : *a.mutable_tensors())
        if (!fix(t))
          return failure();
      if (a.has_g() && failed(inlineAttributeData(*a.mutable_g(), model, err)))
        return failure();
      for (auto &g : *a.mutable_graphs())
        if (failed(inlineAttributeData(g, model, err)))
          return failure();
    }
  return success();
}

/// Old opsets are upgraded to 13 with libonnx's version converter, so
/// handlers only need opset 13+ semantics. Initializers are set aside during
/// conversion (their bytes are external references the converter must not
/// touch); so are the values of top-level Constant nodes, which come back as
/// initializers of the same name (the same value to every reader).
LogicalResult GraphImporter::upgradeOldOpset() {
  int opset = opsets_[""];
  if (opset >= 13)
    return success();
  onnx::ModelProto copy = model_.proto;
  onnx::GraphProto *graph = copy.mutable_graph();
  auto initializers = graph->initializer();
  graph->clear_initializer();
  google::protobuf::RepeatedPtrField<onnx::NodeProto> keptNodes;
  for (auto &node : *graph->mutable_node()) {
    const onnx::TensorProto *value = nullptr;
    bool defaultDomain = node.domain().empty() || node.domain() == "ai.onnx";
    if (defaultDomain && node.op_type() == "Constant" &&
        node.output_size() == 1 && !node.output(0).empty())
      for (const auto &a : node.attribute())
        if (a.name() == "value" && a.has_t() && isSelfReference(a.t()))
          value = &a.t();
    if (!value) {
      keptNodes.Add()->Swap(&node);
      continue;
    }
    onnx::TensorProto *hoisted = initializers.Add();
    *hoisted = *value;
    hoisted->set_name(node.output(0));
  }
  graph->mutable_node()->Swap(&keptNodes);
  std::string err;
  if (failed(inlineAttributeData(*graph, model_, err)))
    return error() << err;
  // libonnx's converter dereferences whatever a name refers to without
  // checking: a dangling name must be reported here, not crash there.
  std::set<std::string> defined;
  for (const auto &in : graph->input())
    defined.insert(in.name());
  for (const auto &init : initializers)
    defined.insert(init.name());
  for (int i = 0; i < graph->node_size(); ++i) {
    const onnx::NodeProto &node = graph->node(i);
    for (const std::string &name : node.input())
      if (!name.empty() && !defined.count(name))
        return emitError(nodeLoc(node, i))
               << "node '" << labelOf(node, i) << "' (" << node.op_type()
               << ") reads '" << name
               << "', which no graph input, initializer or earlier node "
                  "defines";
    for (const std::string &name : node.output())
      defined.insert(name);
  }
  for (const auto &out : graph->output())
    if (!defined.count(out.name()))
      return error() << "graph output '" << out.name()
                     << "' is not produced by any node, input or initializer";
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
    auto *shape = tt->mutable_shape(); // present even for scalars (rank 0)
    for (int64_t d : init.dims())
      shape->add_dim()->set_dim_value(d);
  }
  // Adapters such as Add-6 -> Add-7 (broadcast) need the shapes of
  // intermediate values: give the converter static input shapes where the
  // user chose them, and ONNX's shape inference for the rest.
  for (auto &in : *graph->mutable_input()) {
    const Shape *given = givenShape(in.name());
    if (!given || !in.type().has_tensor_type())
      continue;
    auto *shape = in.mutable_type()->mutable_tensor_type()->mutable_shape();
    if (shape->dim_size() != (int)given->size())
      continue; // importInputs reports the mismatch
    for (int i = 0; i < shape->dim_size(); ++i)
      shape->mutable_dim(i)->set_dim_value((*given)[i]);
  }
  try {
    onnx::shape_inference::InferShapes(copy);
  } catch (const std::exception &) {
    // Best effort: the converter names what it still lacks.
  }
  onnx::ModelProto converted;
  try {
    converted = onnx::version_conversion::ConvertVersion(copy, 13);
  } catch (const std::exception &e) {
    // The converter fails on ops it does not know (custom domains, names
    // that are no ONNX op): name the op rather than the converter's error.
    const onnx::GraphProto &original = model_.proto.graph();
    for (int i = 0; i < original.node_size(); ++i)
      if (!hasHandler(original.node(i), 13))
        return reportUnsupported(original.node(i), i);
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
  // Shape inference filled value_info in the copy; the importer computes its
  // own types, and stale entries would only mislead later readers.
  out->clear_value_info();
  model_.proto = std::move(converted);
  opsets_[""] = 13;
  return success();
}

bool GraphImporter::hasHandler(const onnx::NodeProto &node,
                               int defaultOpset) const {
  std::string domain = domainOf(node);
  return HandlerRegistry::instance().lookup(
             domain, node.op_type(),
             domain.empty() ? defaultOpset : opsetOf(domain)) != nullptr;
}

LogicalResult GraphImporter::reportUnsupported(const onnx::NodeProto &node,
                                               int index) {
  std::string domain = domainOf(node);
  int opset = opsetOf(domain);
  std::string label = labelOf(node, index);
  InFlightDiagnostic d = emitError(nodeLoc(node, index));
  d << "unsupported op " << (domain.empty() ? "ai.onnx" : domain)
    << "::" << node.op_type() << " (opset "
    << (domain.empty() ? modelOpset_ : opset) << ") at node '" << label
    << "'; docs/ops.md lists the supported ops and opsets";
  return d;
}

Location GraphImporter::nodeLoc(const onnx::NodeProto &node, int index) {
  std::string name = node.name().empty()
                         ? node.op_type() + "_" + std::to_string(index)
                         : node.name();
  return NameLoc::get(StringAttr::get(&ctx_, name), fileLoc_);
}

namespace {
/// A graph input's declared shape: static sizes, -1 where symbolic.
struct DeclaredShape {
  Shape dims;
  std::vector<std::string> params; ///< dim_param names ("" when none)
  std::string text;                ///< "[batch, 8]" for messages
  bool dynamic = false;
};

DeclaredShape declaredShape(const onnx::TensorShapeProto &shape) {
  DeclaredShape out;
  out.text = "[";
  for (const auto &d : shape.dim()) {
    bool fixed = d.has_dim_value() && d.dim_value() >= 0;
    out.dims.push_back(fixed ? d.dim_value() : -1);
    out.params.push_back(fixed ? "" : d.dim_param());
    out.dynamic |= !fixed;
    out.text += (out.dims.size() > 1 ? ", " : "") +
                (fixed                   ? std::to_string(d.dim_value())
                 : d.dim_param().empty() ? std::string("?")
                                         : d.dim_param());
  }
  out.text += "]";
  return out;
}
} // namespace

LogicalResult
GraphImporter::importInputs(SmallVectorImpl<Type> &argTypes,
                            SmallVectorImpl<std::string> &argNames) {
  const onnx::GraphProto &graph = model_.proto.graph();
  std::set<std::string> initNames;
  for (const auto &init : graph.initializer())
    initNames.insert(init.name());
  // IR < 4 lists initializers as inputs too; they are not arguments.
  std::set<std::string> known;
  for (const auto &in : graph.input())
    if (!initNames.count(in.name()))
      known.insert(in.name());
  for (auto &[name, shape] : options_.inputShapes)
    if (!known.count(name)) {
      std::string list;
      for (auto &k : known)
        list += (list.empty() ? "" : ", ") + k;
      return error() << "--input-shape names '" << name
                     << "', which is not a graph input (inputs: " << list
                     << ")";
    }
  auto isArgument = [&](const onnx::ValueInfoProto &in) {
    return known.count(in.name()) && !options_.constantInputs.count(in.name());
  };

  // Inputs that share a symbolic dimension name share its size (ONNX's
  // rule), so `--input-shape input_ids=2x16` also fixes an attention_mask
  // declared [batch, sequence]. Bind the names from the shapes given first.
  std::map<std::string, std::pair<int64_t, std::string>> bound;
  for (const auto &in : graph.input()) {
    if (!isArgument(in) || !in.type().tensor_type().has_shape())
      continue;
    std::string source;
    const Shape *given = givenShape(in.name(), &source);
    DeclaredShape declared = declaredShape(in.type().tensor_type().shape());
    if (!given || given->size() != declared.dims.size())
      continue; // the rank mismatch is reported below
    for (size_t i = 0; i < declared.dims.size(); ++i) {
      const std::string &param = declared.params[i];
      if (param.empty())
        continue;
      auto [it, added] = bound.try_emplace(param, (*given)[i], source);
      if (!added && it->second.first != (*given)[i])
        return error() << source << " makes dimension '" << param
                       << "' of input '" << in.name() << "' " << (*given)[i]
                       << ", but " << it->second.second << " makes it "
                       << it->second.first;
    }
  }

  for (const auto &in : graph.input()) {
    if (!isArgument(in))
      continue;
    if (!in.type().has_tensor_type())
      return error() << "graph input '" << in.name()
                     << "' is not a tensor; peftc imports tensor inputs only";
    const auto &tt = in.type().tensor_type();
    Type et = elementTypeFromOnnx(&ctx_, tt.elem_type());
    if (!et)
      return error() << "graph input '" << in.name()
                     << "' has unsupported element type "
                     << onnxTypeName(tt.elem_type());
    std::string source;
    const Shape *given = givenShape(in.name(), &source);
    if (!tt.has_shape()) {
      // Not even the rank is declared: only --input-shape can say.
      if (!given)
        return error() << "graph input '" << in.name()
                       << "' declares no shape; give one with --input-shape "
                       << in.name() << "=DxD...";
      argTypes.push_back(RankedTensorType::get(*given, et));
      argNames.push_back(in.name());
      continue;
    }
    DeclaredShape declared = declaredShape(tt.shape());
    Shape shape = declared.dims;
    if (given) {
      if (given->size() != declared.dims.size())
        return error() << source << " has rank " << given->size()
                       << " but the model declares input '" << in.name()
                       << "' as " << declared.text << " (rank "
                       << declared.dims.size() << ")";
      for (size_t i = 0; i < declared.dims.size(); ++i)
        if (declared.dims[i] >= 0 && declared.dims[i] != (*given)[i])
          return error() << source << " conflicts with the model's static "
                         << "dimension " << i << " = " << declared.dims[i]
                         << " of input '" << in.name() << "' (declared "
                         << declared.text << ")";
      shape = *given;
    } else if (declared.dynamic) {
      std::string hint;
      bool resolved = true;
      for (size_t i = 0; i < shape.size(); ++i) {
        auto b = bound.find(declared.params[i]);
        if (shape[i] < 0 && b != bound.end())
          shape[i] = b->second.first;
        resolved &= shape[i] >= 0;
        hint += (i ? "x" : "") +
                (shape[i] >= 0 ? std::to_string(shape[i]) : std::string("N"));
      }
      if (!resolved)
        return error() << "graph input '" << in.name() << "' has dynamic shape "
                       << declared.text
                       << "; give a static shape with --input-shape "
                       << in.name() << "=" << hint;
    }
    argTypes.push_back(RankedTensorType::get(shape, et));
    argNames.push_back(in.name());
  }
  return success();
}

const Shape *GraphImporter::givenShape(const std::string &name,
                                       std::string *source) const {
  auto it = options_.inputShapes.find(name);
  if (it != options_.inputShapes.end()) {
    if (source) {
      std::string dims;
      for (size_t i = 0; i < it->second.size(); ++i)
        dims += (i ? "x" : "") + std::to_string(it->second[i]);
      *source = "--input-shape " + name + "=" + dims;
    }
    return &it->second;
  }
  it = options_.dataShapes.find(name);
  if (it != options_.dataShapes.end()) {
    if (source)
      *source = "the given tensor '" + name + "' of shape [" +
                shapeToString(it->second) + "]";
    return &it->second;
  }
  return nullptr;
}

LogicalResult GraphImporter::importInitializers() {
  for (const auto &init : model_.proto.graph().initializer())
    pendingInitializers_[init.name()] = &init;
  return success();
}

/// Initializers (and Constant values) become constants only when tiny
/// integer data (shapes, axes, indices) or scalars, so shape computations
/// fold; everything else is a frozen param referencing its bytes.
static bool inlineAsConstant(const onnx::TensorProto &t) {
  bool isInt = t.data_type() == onnx::TensorProto::INT64 ||
               t.data_type() == onnx::TensorProto::INT32;
  int64_t limit = isInt ? 64 : 1, n = 1;
  for (int64_t d : t.dims()) {
    if (d < 0 || (d > 0 && n > limit / d))
      return false; // larger than the limit (or invalid: reported later)
    n *= d;
  }
  return n <= limit;
}

FailureOr<Value> GraphImporter::lookup(const std::string &name) {
  auto it = values_.find(name);
  if (it != values_.end())
    return it->second;
  auto pending = pendingInitializers_.find(name);
  if (pending == pendingInitializers_.end()) {
    if (sparseInitializers_.count(name))
      return (error() << "initializer '" << name
                      << "' is sparse (sparse_initializer); peftc reads dense "
                         "initializers only"),
             failure();
    return Value();
  }
  const onnx::TensorProto *t = pending->second;
  pendingInitializers_.erase(pending);
  FailureOr<Value> v = materialize(
      name, *t, NameLoc::get(StringAttr::get(&ctx_, name), fileLoc_));
  if (succeeded(v))
    values_[name] = *v;
  return v;
}

/// Turns a tensor held by the model (an initializer, or a Constant node's
/// value) into a value: an nn.constant when it is tiny enough to fold, else a
/// frozen peft.param named `name` whose storage points at the bytes.
FailureOr<Value> GraphImporter::materialize(const std::string &name,
                                            const onnx::TensorProto &t,
                                            Location loc) {
  OpBuilder::InsertionGuard guard(builder_);
  auto dtype = dtypeFromOnnx(t.data_type());
  if (!dtype)
    return (error() << "tensor '" << name << "' has unsupported data type "
                    << onnxTypeName(t.data_type())),
           failure();
  std::string err;
  uint64_t bytes = 0;
  if (!tensorByteSize(t, *dtype, bytes, err))
    return (error() << err), failure();
  auto type = toTensorType(&ctx_, *dtype, tensorShape(t));
  if (inlineAsConstant(t)) {
    Tensor value;
    if (!decodeTensor(t, model_, value, err))
      return (error() << err), failure();
    builder_.setInsertionPointToStart(entry_);
    return builder_
        .create<nn::ConstantOp>(loc, type, attrFromTensor(value, type))
        .getResult();
  }
  if (SymbolTable::lookupSymbolIn(module_, name))
    return (error() << "two tensors of the model are both named '" << name
                    << "'"),
           failure();
  builder_.setInsertionPoint(module_.getBody(),
                             std::prev(module_.getBody()->end()));
  auto param = builder_.create<pir::ParamOp>(loc, name, type);
  if (t.data_location() == onnx::TensorProto::EXTERNAL) {
    ByteRange range;
    if (!externalRange(t, model_, range, err))
      return (error() << err), failure();
    param.setStorageAttr(pir::StorageAttr::get(
        &ctx_, range.file, (int64_t)range.offset, (int64_t)range.length));
  } else {
    // Only varint-encoded data (int64_data, int32_data) gets here: every
    // other payload was turned into a byte range of the model file.
    Tensor value;
    if (!decodeTensor(t, model_, value, err))
      return (error() << err), failure();
    param.setValueAttr(attrFromTensor(value, type));
  }
  builder_.setInsertionPointToStart(entry_);
  return builder_.create<pir::UseOp>(loc, type, name).getResult();
}

/// A Constant node whose value is weight-sized is an initializer in
/// disguise (exporters emit them for folded weights): import it as a param
/// rather than letting its bytes into an attribute. Returns true when it
/// handled the node.
/// A Constant node is the exporter's own literal (rotary frequencies, masks,
/// GELU coefficients): it stays a foldable constant up to 1024 elements;
/// anything larger is weight-sized and becomes a param like an initializer.
static bool inlineConstantNode(const onnx::TensorProto &t) {
  int64_t n = 1;
  for (int64_t d : t.dims()) {
    if (d < 0 || (d > 0 && n > 1024 / d))
      return false;
    n *= d;
  }
  return n <= 1024;
}

FailureOr<bool> GraphImporter::importLargeConstant(const onnx::NodeProto &node,
                                                   Location loc) {
  if (node.op_type() != "Constant" || node.output_size() != 1 ||
      node.output(0).empty())
    return false;
  const onnx::TensorProto *value = nullptr;
  for (const auto &a : node.attribute())
    if (a.name() == "value" && a.has_t())
      value = &a.t();
  if (!value || inlineConstantNode(*value))
    return false;
  FailureOr<Value> v = materialize(node.output(0), *value, loc);
  if (failed(v))
    return failure();
  values_[node.output(0)] = *v;
  return true;
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
    // Only integer and bool results fold (shapes, indices, masks): folding
    // float math here would round it to the declared type at import, while
    // the evaluator's f64 mode and later backends must see the computation
    // itself (e.g. rotary tables, attention scales).
    int64_t size = 0;
    bool floatResult = false;
    for (Value r : op->getResults()) {
      auto type = cast<RankedTensorType>(r.getType());
      size += type.getNumElements();
      floatResult |= isa<FloatType>(type.getElementType());
    }
    if (size > options_.foldElementLimit ||
        (floatResult && !options_.foldFloat))
      continue;
    auto results = ref::Evaluator::evaluateOp(op, operands);
    if (failed(results))
      return failure();
    OpBuilder b(op);
    for (auto [r, t] : llvm::zip(op->getResults(), *results)) {
      auto type = cast<RankedTensorType>(r.getType());
      Value c =
          b.create<nn::ConstantOp>(op->getLoc(), type, attrFromTensor(t, type));
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

LogicalResult GraphImporter::importNode(const onnx::NodeProto &node,
                                        int index) {
  Location loc = nodeLoc(node, index);
  std::string domain = domainOf(node);
  int opset = opsetOf(domain);
  std::string label = labelOf(node, index);
  if (domain.empty()) {
    FailureOr<bool> done = importLargeConstant(node, loc);
    if (failed(done))
      return failure();
    if (*done)
      return success();
  }
  const Handler *handler =
      HandlerRegistry::instance().lookup(domain, node.op_type(), opset);
  if (!handler)
    return reportUnsupported(node, index);
  SmallVector<Value> inputs;
  for (const std::string &name : node.input()) {
    if (name.empty()) {
      inputs.push_back(nullptr);
      continue;
    }
    FailureOr<Value> v = lookup(name);
    if (failed(v))
      return failure();
    if (!*v)
      return emitError(loc)
             << "node '" << label << "' (" << node.op_type() << ") reads '"
             << name
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
  module_->setAttr("nn.ir_version",
                   builder_.getI64IntegerAttr(model_.proto.ir_version()));

  SmallVector<Type> argTypes;
  SmallVector<std::string> argNames;
  if (failed(importInputs(argTypes, argNames)))
    return nullptr;
  builder_.setInsertionPointToEnd(module_.getBody());
  auto func = builder_.create<func::FuncOp>(
      fileLoc_, options_.functionName, builder_.getFunctionType(argTypes, {}));
  entry_ = func.addEntryBlock();
  for (auto [i, name] : llvm::enumerate(argNames)) {
    func.setArgAttr(i, "nn.name", builder_.getStringAttr(name));
    values_[name] = entry_->getArgument(i);
  }
  builder_.setInsertionPointToEnd(entry_);
  for (auto &[name, t] : options_.constantInputs) {
    auto type = toTensorType(&ctx_, t.dtype(), t.shape());
    values_[name] = builder_.create<nn::ConstantOp>(fileLoc_, type,
                                                    attrFromTensor(t, type));
  }
  if (failed(importInitializers()))
    return nullptr;
  for (const auto &sparse : model_.proto.graph().sparse_initializer())
    sparseInitializers_.insert(sparse.values().name());
  const onnx::GraphProto &graph = model_.proto.graph();
  for (int i = 0; i < graph.node_size(); ++i) {
    builder_.setInsertionPointToEnd(entry_);
    if (failed(importNode(graph.node(i), i)))
      return nullptr;
  }
  SmallVector<Value> results;
  SmallVector<Type> resultTypes;
  for (const auto &out : graph.output()) {
    FailureOr<Value> found = lookup(out.name());
    if (failed(found))
      return nullptr;
    Value v = *found;
    if (!v) {
      error() << "graph output '" << out.name()
              << "' is not produced by any node, input or initializer";
      return nullptr;
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

OwningOpRef<ModuleOp> importOnnxModel(MLIRContext &context,
                                      const std::string &path,
                                      const ImportOptions &options) {
  context.loadDialect<func::FuncDialect, nn::NNDialect, pir::PeftDialect>();
  LoadedModel model;
  std::string error;
  // protobuf, libonnx's converter and the allocator report by throwing;
  // whatever a malformed model provokes becomes one error, never an abort.
  try {
    if (!loadModel(path, model, error)) {
      // The message names the file already.
      emitError(UnknownLoc::get(&context)) << error;
      return nullptr;
    }
    GraphImporter importer(context, model, options);
    return importer.run();
  } catch (const std::bad_alloc &) {
    emitError(UnknownLoc::get(&context))
        << path << ": out of memory while importing the model";
  } catch (const std::exception &e) {
    emitError(UnknownLoc::get(&context))
        << path << ": cannot import the model: " << e.what();
  }
  return nullptr;
}

} // namespace peft::onnx_import
