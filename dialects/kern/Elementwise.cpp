//===- Elementwise.cpp - which ops are elementwise ------------------------===//
#include "dialects/kern/Elementwise.h"

#include "dialects/nn/NNOps.h"
#include "dialects/peft/PeftOps.h"

using namespace mlir;

bool peft::kern::isElementwise(Operation *op) {
  using namespace peft::nn;
  return isa<
      // Unary math and activations.
      NegOp, AbsOp, SignOp, ReluOp, ExpOp, LogOp, SqrtOp, ReciprocalOp, TanhOp,
      SigmoidOp, ErfOp, SoftplusOp, SinOp, CosOp, TanOp, AsinOp, AcosOp, AtanOp,
      SinhOp, CoshOp, AsinhOp, AcoshOp, AtanhOp, FloorOp, CeilOp, RoundOp,
      LeakyReluOp, EluOp, GeluOp, NotOp, IsNanOp, IsInfOp,
      // Binary arithmetic, comparisons and logic.
      AddOp, SubOp, MulOp, DivOp, PowOp, MaxOp, MinOp, ModOp, BitShiftOp,
      EqualOp, LessOp, LessEqualOp, GreaterOp, GreaterEqualOp, AndOp, OrOp,
      XorOp,
      // Selection and conversion.
      WhereOp, CastOp,
      // Optimizer updates.
      pir::AdamWOp, pir::SgdOp>(op);
}
