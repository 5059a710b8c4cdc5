//===- NNBase.td - nn dialect and op base classes ---------*- tablegen -*-===//
//
// Tensor ops with ONNX semantics on statically shaped tensors. Families of ops
// live in their own .td files (NNElementwiseOps.td, NNShapeOps.td, ...) and
// share the base classes below.
//
//===----------------------------------------------------------------------===//
#ifndef PEFT_NN_BASE
#define PEFT_NN_BASE

include "mlir/IR/OpBase.td"
include "mlir/IR/AttrTypeBase.td"
include "mlir/IR/CommonAttrConstraints.td"
include "mlir/Interfaces/InferTypeOpInterface.td"
include "mlir/Interfaces/SideEffectInterfaces.td"

def NN_Dialect : Dialect {
  let name = "nn";
  let cppNamespace = "::peft::nn";
  let summary = "Statically shaped tensor ops with ONNX semantics";
  let description = [{
    The ops torch.onnx exports for transformer, ViT and speech encoders, with
    ONNX semantics (numpy broadcasting, negative axes normalised at import)
    on tensors whose shapes are fixed at compile time.
  }];
  let usePropertiesForAttributes = 0;
  let hasConstantMaterializer = 1;
}

// Every nn op is side-effect free.
class NN_Op<string mnemonic, list<Trait> traits = []>
    : Op<NN_Dialect, mnemonic, !listconcat(traits, [Pure])>;

def NN_AnyTensor : StaticShapeTensorOf<[AnyType]>;
def NN_FloatTensor : StaticShapeTensorOf<[AnyFloat]>;
def NN_IntTensor : StaticShapeTensorOf<[AnySignlessInteger]>;
def NN_BoolTensor : StaticShapeTensorOf<[I1]>;

// y = f(x), same type in and out.
class NN_UnaryOp<string mnemonic, list<Trait> traits = []>
    : NN_Op<mnemonic, !listconcat(traits,
          [SameOperandsAndResultType, InferTypeOpInterface])> {
  let arguments = (ins NN_AnyTensor:$input);
  let results = (outs NN_AnyTensor:$result);
  let assemblyFormat = "$input attr-dict `:` type($result)";
}

// z = f(x, y) with numpy broadcasting; operands share an element type and
// the result has it too (`NN_CompareOp` gives i1 results).
class NN_BinaryOp<string mnemonic, list<Trait> traits = []>
    : NN_Op<mnemonic, !listconcat(traits, [InferTypeOpAdaptor])> {
  let arguments = (ins NN_AnyTensor:$lhs, NN_AnyTensor:$rhs);
  let results = (outs NN_AnyTensor:$result);
  let assemblyFormat =
      "$lhs `,` $rhs attr-dict `:` type($lhs) `,` type($rhs) `->` type($result)";
  let extraClassDefinition = [{
    ::mlir::LogicalResult $cppClass::inferReturnTypes(
        ::mlir::MLIRContext *context, std::optional<::mlir::Location> location,
        Adaptor adaptor, ::llvm::SmallVectorImpl<::mlir::Type> &inferred) {
      return ::peft::nn::inferBroadcastResult(location, adaptor.getLhs().getType(),
          adaptor.getRhs().getType(), /*resultElementType=*/nullptr, inferred);
    }
  }];
}

class NN_CompareOp<string mnemonic, list<Trait> traits = []>
    : NN_BinaryOp<mnemonic, traits> {
  let results = (outs NN_BoolTensor:$result);
  let extraClassDefinition = [{
    ::mlir::LogicalResult $cppClass::inferReturnTypes(
        ::mlir::MLIRContext *context, std::optional<::mlir::Location> location,
        Adaptor adaptor, ::llvm::SmallVectorImpl<::mlir::Type> &inferred) {
      return ::peft::nn::inferBroadcastResult(location, adaptor.getLhs().getType(),
          adaptor.getRhs().getType(), ::mlir::IntegerType::get(context, 1), inferred);
    }
  }];
}

#endif // PEFT_NN_BASE
