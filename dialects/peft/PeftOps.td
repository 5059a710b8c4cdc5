//===- PeftOps.td - peft ops and attributes ---------------*- tablegen -*-===//
#ifndef PEFT_PEFT_OPS
#define PEFT_PEFT_OPS

include "dialects/peft/PeftBase.td"

def Peft_StorageAttr : Peft_Attr<"Storage", "storage"> {
  let summary = "Where a parameter's bytes live: a byte range of a file";
  let description = [{
    Little-endian, row-major bytes of the parameter's element type at
    `offset` in `file` (an `.onnx` file's raw_data, its external data file,
    or a safetensors file). The runtime and the reference evaluator map the
    file; weights are never copied into the IR.
  }];
  let parameters = (ins StringRefParameter<"path of the file">:$file,
                        "int64_t":$offset, "int64_t":$length);
  let assemblyFormat = "`<` $file `,` `offset` `=` $offset `,` `length` `=` $length `>`";
}

def Peft_ParamOp : Peft_Op<"param", [Symbol]> {
  let summary = "A named model parameter: frozen or trainable, with its storage";
  let description = [{
    Declared at module level. `storage` points at the bytes of a frozen or
    pre-initialised parameter; `init` names how a new parameter (an adapter)
    is initialised; `value` holds the rare initializer that has no raw byte
    range (integer data stored as varints). Functions read a parameter with
    `peft.use`.

    ```mlir
    peft.param @"bert.pooler.dense.weight" : tensor<32x32xf32> frozen
        storage #peft.storage<"/m/bert.onnx", offset = 1234, length = 4096>
    ```
  }];
  let arguments = (ins SymbolNameAttr:$sym_name,
                       TypeAttrOf<AnyStaticShapeTensor>:$type,
                       UnitAttr:$trainable,
                       OptionalAttr<Peft_StorageAttr>:$storage,
                       OptionalAttr<StrAttr>:$init,
                       OptionalAttr<ElementsAttr>:$value);
  let assemblyFormat = [{
    $sym_name `:` $type ($trainable^ `trainable`) : (`frozen`)?
    (`storage` $storage^)? (`init` $init^)? (`value` $value^)? attr-dict
  }];
  let hasVerifier = 1;
  let builders = [
    OpBuilder<(ins "::llvm::StringRef":$name, "::mlir::RankedTensorType":$type), [{
      $_state.addAttribute(getSymNameAttrName($_state.name), $_builder.getStringAttr(name));
      $_state.addAttribute(getTypeAttrName($_state.name), ::mlir::TypeAttr::get(type));
    }]>
  ];
  let extraClassDeclaration = [{
    ::mlir::RankedTensorType getTensorType() {
      return ::llvm::cast<::mlir::RankedTensorType>(getType());
    }
    bool isFrozen() { return !getTrainable(); }
  }];
}

def Peft_UseOp : Peft_Op<"use", [Pure,
    DeclareOpInterfaceMethods<SymbolUserOpInterface>]> {
  let summary = "Reads a parameter as a tensor value";
  let arguments = (ins FlatSymbolRefAttr:$param);
  let results = (outs AnyStaticShapeTensor:$result);
  let assemblyFormat = "$param attr-dict `:` type($result)";
}

#endif // PEFT_PEFT_OPS
