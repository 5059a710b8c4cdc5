//===- PeftBase.td - peft dialect -------------------------*- tablegen -*-===//
#ifndef PEFT_PEFT_BASE
#define PEFT_PEFT_BASE

include "mlir/IR/OpBase.td"
include "mlir/IR/AttrTypeBase.td"
include "mlir/IR/SymbolInterfaces.td"
include "mlir/Interfaces/InferTypeOpInterface.td"
include "mlir/Interfaces/SideEffectInterfaces.td"

def Peft_Dialect : Dialect {
  let name = "peft";
  let cppNamespace = "::peft::pir";
  let summary = "Parameters, adapters, losses and optimizer updates";
  let description = [{
    `peft.param` declares every tensor the training step reads from storage or
    trains: its name, type, whether it is frozen or trainable, and where its
    bytes live. Adapter, loss and optimizer ops are added by the passes.
  }];
  let usePropertiesForAttributes = 0;
  let useDefaultAttributePrinterParser = 1;
}

class Peft_Op<string mnemonic, list<Trait> traits = []>
    : Op<Peft_Dialect, mnemonic, traits>;

class Peft_Attr<string name, string attrMnemonic, list<Trait> traits = []>
    : AttrDef<Peft_Dialect, name, traits> {
  let mnemonic = attrMnemonic;
}

#endif // PEFT_PEFT_BASE
