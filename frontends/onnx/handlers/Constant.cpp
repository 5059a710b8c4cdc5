//===- Constant.cpp - Constant, Identity, Shape, ConstantOfShape, Dropout -===//
#include "frontends/onnx/NodeImport.h"

#include "codegen/reference/TensorAttr.h"
#include "dialects/nn/NNOps.h"

using namespace mlir;

namespace peft::onnx_import {
namespace {

LogicalResult importConstant(NodeContext &n) {
  for (const char *name :
       {"value", "value_float", "value_floats", "value_int", "value_ints"}) {
    const onnx::AttributeProto *a = n.attr(name);
    if (!a)
      continue;
    std::string kind = name;
    if (kind == "value") {
      FailureOr<Tensor> t = n.attrTensor("value");
      if (failed(t))
        return failure();
      n.setResult(0, n.constant(*t));
    } else if (kind == "value_float") {
      Tensor t(DType::F32, {});
      t.setDouble(0, a->f());
      n.setResult(0, n.constant(t));
    } else if (kind == "value_int") {
      Tensor t(DType::I64, {});
      t.setInt(0, a->i());
      n.setResult(0, n.constant(t));
    } else if (kind == "value_floats") {
      Tensor t(DType::F32, {(int64_t)a->floats_size()});
      for (int i = 0; i < a->floats_size(); ++i)
        t.setDouble(i, a->floats(i));
      n.setResult(0, n.constant(t));
    } else {
      Tensor t(DType::I64, {(int64_t)a->ints_size()});
      for (int i = 0; i < a->ints_size(); ++i)
        t.setInt(i, a->ints(i));
      n.setResult(0, n.constant(t));
    }
    return success();
  }
  return n.error() << "has no supported value attribute (value, value_float, "
                      "value_floats, value_int, value_ints)";
}

LogicalResult importIdentity(NodeContext &n) {
  if (failed(n.requireInputs(1)))
    return failure();
  n.setResult(0, n.input(0));
  return success();
}

/// Shape of a statically shaped tensor is a constant (opset 15 adds start/end).
LogicalResult importShape(NodeContext &n) {
  if (failed(n.requireInputs(1)))
    return failure();
  auto dims = n.inputType(0).getShape();
  int64_t rank = dims.size();
  int64_t start = n.attrInt("start", 0), end = n.attrInt("end", rank);
  auto clampAxis = [&](int64_t a) {
    if (a < 0)
      a += rank;
    return std::clamp<int64_t>(a, 0, rank);
  };
  start = clampAxis(start);
  end = clampAxis(end);
  Tensor t(DType::I64, {std::max<int64_t>(0, end - start)});
  for (int64_t i = start; i < end; ++i)
    t.setInt(i - start, dims[i]);
  n.setResult(0, n.constant(t));
  return success();
}

LogicalResult importSize(NodeContext &n) {
  if (failed(n.requireInputs(1)))
    return failure();
  Tensor t(DType::I64, {});
  t.setInt(0, n.inputType(0).getNumElements());
  n.setResult(0, n.constant(t));
  return success();
}

LogicalResult importConstantOfShape(NodeContext &n) {
  auto shape = n.constantInts(0, "shape");
  if (failed(shape))
    return failure();
  Tensor fill(DType::F32, {1});
  if (n.hasAttr("value")) {
    FailureOr<Tensor> v = n.attrTensor("value");
    if (failed(v))
      return failure();
    fill = *v;
  }
  Shape s(shape->begin(), shape->end());
  auto type = toTensorType(n.context(), fill.dtype(), s);
  // A splat: tiny in the IR whatever the shape.
  Tensor one = fill.reshaped({});
  auto splat = DenseElementsAttr::get(
      type, attrFromTensor(one, toTensorType(n.context(), fill.dtype(), {}))
                .getSplatValue<Attribute>());
  auto op = n.builder().create<nn::ConstantOp>(n.loc(), type, splat);
  n.setResult(0, op);
  return success();
}

/// Dropout in an exported (eval-mode) model is the identity; the mask output
/// is all true.
LogicalResult importDropout(NodeContext &n) {
  if (failed(n.requireInputs(1)))
    return failure();
  if (n.hasInput(2)) {
    auto training = n.constantInts(2, "training_mode");
    if (failed(training))
      return failure();
    if (!training->empty() && (*training)[0] != 0)
      return n.error() << "training-mode Dropout is not supported: the base "
                          "model runs as exported in eval mode (adapter "
                          "dropout comes from the PEFT spec)";
  }
  n.setResult(0, n.input(0));
  if (n.numOutputs() > 1) {
    auto type = n.inputType(0);
    Tensor one(DType::Bool, {});
    one.setInt(0, 1);
    auto boolType =
        RankedTensorType::get(type.getShape(), n.builder().getI1Type());
    auto splat = DenseElementsAttr::get(boolType, true);
    n.setResult(1,
                n.builder().create<nn::ConstantOp>(n.loc(), boolType, splat));
  }
  return success();
}

} // namespace

void registerConstantHandlers(HandlerRegistry &r) {
  r.add("", "Constant", 1, importConstant);
  r.add("", "Identity", 1, importIdentity);
  r.add("", "Shape", 1, importShape);
  r.add("", "Size", 1, importSize);
  r.add("", "ConstantOfShape", 9, importConstantOfShape);
  r.add("", "Dropout", 1, importDropout);
}

} // namespace peft::onnx_import
