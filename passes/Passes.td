//===- Passes.td - peftc passes ------------------------------*- tablegen -*-===//
//
// Every pass of the training pipeline, each runnable alone in peft-opt and
// tested by test/lit/passes/<pass-name>.mlir. docs/training-ir.md describes
// the IR each one expects and produces.
//
//===----------------------------------------------------------------------===//
#ifndef PEFT_PASSES
#define PEFT_PASSES

include "mlir/Pass/PassBase.td"

def DifferentiateTrainable : Pass<"peft-differentiate", "::mlir::ModuleOp"> {
  let summary = "Reverse-mode gradient of the loss for the trainable params";
  let description = [{
    Adds `func.func @train_step`, with the arguments of the loss function
    (`func`, default `@loss`, whose first result is a one-element float
    loss), returning the loss and one gradient per trainable `peft.param`
    in declaration order; each gradient result carries
    `peft.grad_of = @param`.

    Activity analysis as ONNX Runtime's gradient builder does it: a value is
    active when it depends on a trainable param (through `peft.use`) and the
    loss depends on it. Only active values get cotangents, so a frozen weight
    gets no weight gradient while the input gradient still flows through it,
    and ops below the lowest trainable op get no backward ops at all.
    Cotangents of values with several users, and of a param read more than
    once (tied weights), are summed. Backward ops reuse the forward SSA
    values they need; the memory planner decides what is kept. The rules
    live in passes/autodiff/GradientRules.cpp.
  }];
  let options = [
    Option<"funcName", "func", "std::string", /*default=*/"\"loss\"",
           "The function whose first result is the scalar loss">,
  ];
  let dependentDialects = ["::peft::nn::NNDialect", "::peft::pir::PeftDialect",
                           "::mlir::func::FuncDialect"];
}

#endif // PEFT_PASSES
