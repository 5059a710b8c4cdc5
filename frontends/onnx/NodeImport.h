//===- NodeImport.h - what an op handler sees -------------------*- C++ -*-===//
//
// One handler per (domain, op type, since-version); the importer picks the
// handler with the greatest since-version not above the model's opset.
// Handlers live in handlers/<Family>.cpp and build nn ops through
// NodeContext, which infers result types and reports errors at the node.
//
//===----------------------------------------------------------------------===//
#pragma once

#include "peft/Tensor.h"

#include "mlir/IR/Builders.h"
#include "mlir/IR/BuiltinTypes.h"
#include "mlir/IR/Diagnostics.h"
#include "mlir/IR/Verifier.h"
#include "llvm/ADT/StringMap.h"

#include "onnx/onnx_pb.h"

#include <functional>
#include <optional>
#include <vector>

namespace peft::onnx_import {

struct LoadedModel;
class NodeContext;
using Handler = std::function<mlir::LogicalResult(NodeContext &)>;

class HandlerRegistry {
public:
  static HandlerRegistry &instance();
  /// `domain` is "" for the default ONNX domain.
  void add(llvm::StringRef domain, llvm::StringRef opType, int sinceVersion,
           Handler handler);
  /// The handler for `opType` at `opset`, or nullptr.
  const Handler *lookup(llvm::StringRef domain, llvm::StringRef opType,
                        int opset) const;
  struct Entry {
    std::string domain, opType;
    int sinceVersion;
  };
  std::vector<Entry> entries() const;

private:
  HandlerRegistry();
  std::map<std::pair<std::string, std::string>, std::map<int, Handler>>
      handlers_;
};

// One registration function per op family.
void registerElementwiseHandlers(HandlerRegistry &r);
void registerShapeHandlers(HandlerRegistry &r);
void registerReductionHandlers(HandlerRegistry &r);
void registerLinalgHandlers(HandlerRegistry &r);
void registerNormHandlers(HandlerRegistry &r);
void registerConstantHandlers(HandlerRegistry &r);

/// Thrown-free access to one ONNX node while it is imported.
class NodeContext {
public:
  NodeContext(mlir::OpBuilder &builder, mlir::Location loc,
              const onnx::NodeProto &node, int opset,
              llvm::SmallVector<mlir::Value> inputs, const LoadedModel &model);

  mlir::OpBuilder &builder() { return b_; }
  mlir::MLIRContext *context() { return b_.getContext(); }
  mlir::Location loc() const { return loc_; }
  const onnx::NodeProto &node() const { return node_; }
  int opset() const { return opset_; }

  // --- inputs -------------------------------------------------------------
  unsigned numInputs() const { return inputs_.size(); }
  /// False for an omitted optional input (empty name) or past the end.
  bool hasInput(unsigned i) const { return i < inputs_.size() && inputs_[i]; }
  mlir::Value input(unsigned i) const {
    return hasInput(i) ? inputs_[i] : nullptr;
  }
  mlir::RankedTensorType inputType(unsigned i) const;
  /// The value of input `i` when it is a constant (nn.constant).
  std::optional<Tensor> constantInput(unsigned i) const;
  /// Input `i` as integers; it must be a constant (shapes, axes, pads...).
  /// Errors name the input's role, e.g. "the 'shape' input".
  mlir::FailureOr<std::vector<int64_t>> constantInts(unsigned i,
                                                     llvm::StringRef role);
  /// Requires at least `n` inputs present.
  mlir::LogicalResult requireInputs(unsigned n);

  // --- attributes ---------------------------------------------------------
  const onnx::AttributeProto *attr(llvm::StringRef name) const;
  bool hasAttr(llvm::StringRef name) const { return attr(name) != nullptr; }
  int64_t attrInt(llvm::StringRef name, int64_t def) const;
  double attrFloat(llvm::StringRef name, double def) const;
  std::string attrString(llvm::StringRef name, llvm::StringRef def) const;
  std::vector<int64_t> attrInts(llvm::StringRef name) const;
  std::vector<float> attrFloats(llvm::StringRef name) const;
  /// A tensor attribute's value (Constant's `value`, ConstantOfShape's ...).
  mlir::FailureOr<Tensor> attrTensor(llvm::StringRef name);

  // --- building -------------------------------------------------------------
  /// Creates `OpTy` with result types inferred by the op. On a type error the
  /// op's message is reported at this node and failure returned.
  template <typename OpTy>
  mlir::FailureOr<mlir::Value>
  create(mlir::ValueRange operands,
         llvm::ArrayRef<mlir::NamedAttribute> attrs = {}) {
    return createOp(OpTy::getOperationName(), operands, attrs, std::nullopt,
                    &inferTypesOf<OpTy>);
  }
  /// Creates `OpTy` with explicit result types (ops like reshape).
  template <typename OpTy>
  mlir::FailureOr<mlir::Value>
  createTyped(mlir::TypeRange resultTypes, mlir::ValueRange operands,
              llvm::ArrayRef<mlir::NamedAttribute> attrs = {}) {
    return createOp(OpTy::getOperationName(), operands, attrs, resultTypes,
                    nullptr);
  }
  /// Multi-result variant of create; returns the op.
  template <typename OpTy>
  mlir::FailureOr<mlir::Operation *>
  createMulti(mlir::ValueRange operands,
              llvm::ArrayRef<mlir::NamedAttribute> attrs = {},
              std::optional<mlir::TypeRange> resultTypes = std::nullopt) {
    return createOperation(OpTy::getOperationName(), operands, attrs,
                           resultTypes,
                           resultTypes ? nullptr : &inferTypesOf<OpTy>);
  }

  /// An nn.constant holding `t`.
  mlir::Value constant(const Tensor &t);
  /// A rank-0 (or `shape`) constant of `like`'s element type holding `v`.
  mlir::Value scalarLike(mlir::Value like, double v, const Shape &shape = {});

  // --- results --------------------------------------------------------------
  /// The handler sets one value per node output (null for an unused
  /// optional output).
  void setResult(unsigned i, mlir::Value v);
  void setResults(mlir::ValueRange values);
  llvm::ArrayRef<mlir::Value> results() const { return results_; }
  /// Points results that were `from` at `to` (after folding).
  void replaceResult(mlir::Value from, mlir::Value to) {
    for (mlir::Value &r : results_)
      if (r == from)
        r = to;
  }
  unsigned numOutputs() const { return node_.output_size(); }

  // --- errors ---------------------------------------------------------------
  /// An error at this node: "node 'name' (OpType): ..."
  mlir::InFlightDiagnostic error();

  /// Ops created for this node, in creation order (used for folding).
  llvm::ArrayRef<mlir::Operation *> createdOps() const { return created_; }

private:
  using InferFn = mlir::LogicalResult (*)(
      mlir::MLIRContext *, std::optional<mlir::Location>, mlir::ValueRange,
      mlir::DictionaryAttr, mlir::OpaqueProperties, mlir::RegionRange,
      llvm::SmallVectorImpl<mlir::Type> &);
  template <typename OpTy>
  static mlir::LogicalResult
  inferTypesOf(mlir::MLIRContext *ctx, std::optional<mlir::Location> loc,
               mlir::ValueRange operands, mlir::DictionaryAttr attrs,
               mlir::OpaqueProperties props, mlir::RegionRange regions,
               llvm::SmallVectorImpl<mlir::Type> &types) {
    return OpTy::inferReturnTypes(ctx, loc, operands, attrs, props, regions,
                                  types);
  }
  mlir::FailureOr<mlir::Value>
  createOp(llvm::StringRef name, mlir::ValueRange operands,
           llvm::ArrayRef<mlir::NamedAttribute> attrs,
           std::optional<mlir::TypeRange> resultTypes, InferFn infer);
  mlir::FailureOr<mlir::Operation *>
  createOperation(llvm::StringRef name, mlir::ValueRange operands,
                  llvm::ArrayRef<mlir::NamedAttribute> attrs,
                  std::optional<mlir::TypeRange> resultTypes, InferFn infer);

  mlir::OpBuilder &b_;
  mlir::Location loc_;
  const onnx::NodeProto &node_;
  int opset_;
  const LoadedModel &model_;
  llvm::SmallVector<mlir::Value> inputs_;
  llvm::SmallVector<mlir::Value> results_;
  llvm::SmallVector<mlir::Operation *> created_;
};

/// The MLIR element type of an ONNX TensorProto data type, or null.
mlir::Type elementTypeFromOnnx(mlir::MLIRContext *ctx, int32_t onnxType);
std::optional<DType> dtypeFromOnnx(int32_t onnxType);

} // namespace peft::onnx_import
