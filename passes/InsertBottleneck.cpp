//===- InsertBottleneck.cpp - the adapters library's bottleneck adapters --===//
//
// A bottleneck adapter is plain nn ops on trainable params, so autodiff and
// code generation need nothing new: down-projection (x·Wdᵀ + bd), the
// non-linearity, up-projection (·Wuᵀ + bu), the scaling, and the residual
// adds the library's BottleneckLayer makes around a pre-norm sublayer
// (spec::BottleneckConfig). The sublayer's output m is the output
// projection's result; its one user is the residual add m + r.
//
//===----------------------------------------------------------------------===//
#include "passes/MethodInserters.h"

#include "dialects/nn/NNOps.h"

#include "mlir/IR/Builders.h"
#include "mlir/IR/BuiltinTypes.h"
#include "llvm/ADT/SmallPtrSet.h"

#include <cmath>

using namespace mlir;
using namespace peft;
using namespace peft::analysis;

namespace {

/// Output projections of the sublayers the library wraps, by module path
/// suffix: LLaMA-family (o_proj, down_proj) and GPT-2 (attn/mlp c_proj).
const StringRef kAttentionOutputs[] = {"self_attn.o_proj", "attn.c_proj"};
const StringRef kFfnOutputs[] = {"mlp.down_proj", "mlp.c_proj"};

/// The path with `suffix` (a dotted tail) removed, or "" if it has none.
std::string layerPrefix(StringRef path, StringRef suffix) {
  if (!path.ends_with(suffix) || path.size() <= suffix.size() ||
      path[path.size() - suffix.size() - 1] != '.')
    return "";
  return path.drop_back(suffix.size() + 1).str();
}

class BottleneckBuilder {
public:
  BottleneckBuilder(const spec::BottleneckConfig &config,
                    CreateParamFn createParam)
      : config_(config), createParam_(createParam) {}

  LogicalResult insertAt(const Module &module, StringRef layer,
                         StringRef where);

private:
  Value activation(OpBuilder &b, Location loc, Value x);

  const spec::BottleneckConfig &config_;
  CreateParamFn createParam_;
};

Value BottleneckBuilder::activation(OpBuilder &b, Location loc, Value x) {
  StringRef name = config_.nonLinearity;
  if (name == "relu")
    return b.create<nn::ReluOp>(loc, x);
  if (name == "gelu")
    return b.create<nn::GeluOp>(loc, x.getType(), x, b.getStringAttr("none"));
  if (name == "gelu_new")
    return b.create<nn::GeluOp>(loc, x.getType(), x, b.getStringAttr("tanh"));
  if (name == "tanh")
    return b.create<nn::TanhOp>(loc, x);
  if (name == "sigmoid")
    return b.create<nn::SigmoidOp>(loc, x);
  if (name == "leakyrelu") // torch.nn.functional.leaky_relu's slope
    return b.create<nn::LeakyReluOp>(loc, x.getType(), x,
                                     b.getF32FloatAttr(0.01f));
  if (name == "swish" || name == "silu")
    return b.create<nn::MulOp>(loc, x, b.create<nn::SigmoidOp>(loc, x));
  return x; // linear
}

LogicalResult BottleneckBuilder::insertAt(const Module &module, StringRef layer,
                                          StringRef where) {
  if (!isa_and_nonnull<nn::MatMulOp>(module.anchor))
    return emitError(module.anchor->getLoc())
           << "peft-insert-adapters: the bottleneck adapter needs "
           << module.info.path << " to be a plain linear layer";
  Operation *last = module.biasAdd ? module.biasAdd : module.anchor;
  Location loc = last->getLoc();
  Value m = last->getResult(0);
  auto residualAdd =
      m.hasOneUse() ? dyn_cast<nn::AddOp>(*m.getUsers().begin()) : nullptr;
  if (!residualAdd)
    return emitError(loc) << "peft-insert-adapters: a bottleneck adapter "
                             "goes where the output of "
                          << module.info.path
                          << " is added to the residual stream, but its "
                             "output is not used by one nn.add (a pre-norm "
                             "decoder layer is expected)";
  Value r =
      residualAdd.getLhs() == m ? residualAdd.getRhs() : residualAdd.getLhs();
  auto type = cast<RankedTensorType>(m.getType());
  if (r.getType() != type)
    return emitError(loc) << "peft-insert-adapters: the residual add after "
                          << module.info.path << " broadcasts (" << r.getType()
                          << " + " << type << "); expected the residual "
                          << "stream of the sublayer's shape";
  Type elementType = type.getElementType();
  int64_t hidden = type.getShape().back();
  // The library: int(hidden_size // reduction_factor), at least 1.
  int64_t down = std::max<int64_t>(
      1, (int64_t)std::floor(double(hidden) / config_.reductionFactor));

  std::string base = layer.str() + "." + where.str() + ".adapters." +
                     config_.adapterName + ".";
  bool bert = config_.initWeights == "bert";
  pir::ParamOp downW = createParam_(
      loc, base + "adapter_down.0.weight", {down, hidden}, elementType,
      bert ? "bert_normal" : "kaiming_uniform", "bottleneck");
  pir::ParamOp downB =
      downW ? createParam_(loc, base + "adapter_down.0.bias", {down},
                           elementType, "zeros", "bottleneck")
            : nullptr;
  pir::ParamOp upW =
      downB ? createParam_(loc, base + "adapter_up.weight", {hidden, down},
                           elementType, bert ? "bert_normal" : "zeros",
                           "bottleneck")
            : nullptr;
  pir::ParamOp upB = upW ? createParam_(loc, base + "adapter_up.bias", {hidden},
                                        elementType, "zeros", "bottleneck")
                         : nullptr;
  if (!upB)
    return failure();

  OpBuilder b(residualAdd->getContext());
  b.setInsertionPointAfter(residualAdd);
  Operation *firstNew = nullptr;
  auto use = [&](pir::ParamOp param) {
    auto op =
        b.create<pir::UseOp>(loc, param.getTensorType(), param.getSymName());
    if (!firstNew)
      firstNew = op;
    return op.getResult();
  };
  auto linear = [&](Value x, pir::ParamOp weight, pir::ParamOp bias,
                    StringRef name) {
    Value w = use(weight), bv = use(bias);
    auto product = b.create<nn::MatMulOp>(loc, x, w, b.getBoolAttr(false),
                                          b.getBoolAttr(true));
    product->setAttr(attr::kModule, b.getStringAttr(base + name));
    return b.create<nn::AddOp>(loc, product, bv).getResult();
  };

  Value sum = residualAdd.getResult(); // m + r
  Value x = config_.isParallel ? r : config_.originalLnBefore ? sum : m;
  Value residual =
      config_.isParallel || config_.residualBeforeLn == "true" ? m : x;
  Value up =
      linear(activation(b, loc, linear(x, downW, downB, "adapter_down.0")), upW,
             upB, "adapter_up");
  if (config_.scaling != 1.0) {
    auto scalarType = RankedTensorType::get({}, elementType);
    Value scale = b.create<nn::ConstantOp>(
        loc, scalarType,
        DenseElementsAttr::get(scalarType,
                               b.getFloatAttr(elementType, config_.scaling)));
    up = b.create<nn::MulOp>(loc, up, scale);
  }
  // The library's order: (s·up + residual) + r.
  Value out = b.create<nn::AddOp>(loc, up, residual);
  if (config_.originalLnAfter)
    out = b.create<nn::AddOp>(loc, out, r);

  // Every later reader of m + r reads the adapted stream instead.
  SmallPtrSet<Operation *, 16> added;
  for (Operation *op = firstNew; op; op = op->getNextNode()) {
    added.insert(op);
    if (op == out.getDefiningOp())
      break;
  }
  sum.replaceUsesWithIf(out, [&](OpOperand &operand) {
    return !added.contains(operand.getOwner());
  });
  return success();
}

} // namespace

LogicalResult
peft::insertBottleneckAdapters(ModuleOp module, const ModuleTable &table,
                               const spec::BottleneckConfig &config,
                               CreateParamFn createParam) {
  BottleneckBuilder builder(config, createParam);
  auto place = [&](ArrayRef<StringRef> suffixes, StringRef where,
                   StringRef what) -> LogicalResult {
    int placed = 0;
    for (const Module &candidate : table.modules) {
      for (StringRef suffix : suffixes) {
        std::string layer = layerPrefix(candidate.info.path, suffix);
        if (layer.empty())
          continue;
        std::optional<int> index = layerIndexOf(candidate.info.path);
        if (index && llvm::is_contained(config.leaveOut, int64_t(*index))) {
          ++placed; // left out on purpose
          break;
        }
        if (failed(builder.insertAt(candidate, layer, where)))
          return failure();
        ++placed;
        break;
      }
    }
    if (placed == 0) {
      std::string names;
      for (StringRef suffix : suffixes)
        names += (names.empty() ? "" : ", ") + suffix.str();
      return module.emitError("peft-insert-adapters: the bottleneck "
                              "adapter (")
             << where << ") goes after the " << what
             << " output projections (modules ending in " << names
             << "), and the model has none";
    }
    return success();
  };
  if (config.mhAdapter &&
      failed(place(kAttentionOutputs, "attention_adapters", "attention")))
    return failure();
  if (config.outputAdapter &&
      failed(place(kFfnOutputs, "output_adapters", "FFN")))
    return failure();
  return success();
}
