//===- NNElementwiseOps.td - constants, unary, binary, compare -*- tablegen -*-===//
//
// Elementwise ops: math and activations, numpy-broadcasting arithmetic,
// comparisons and logic (i1 results), where and cast. ONNX ops that are a
// short formula of these (HardSigmoid, Selu, Clip, Mean, PRelu, ...) are
// decomposed at import; activations that later passes fuse or differentiate
// as a unit (gelu, sigmoid, softplus, elu, ...) are ops of their own.
//
//===----------------------------------------------------------------------===//
#ifndef PEFT_NN_ELEMENTWISE_OPS
#define PEFT_NN_ELEMENTWISE_OPS

include "dialects/nn/NNBase.td"

// Integers of either signedness and floats; bool is not a number.
def NN_NumericTensor : StaticShapeTensorOf<[AnyFloat, I8, I16, I32, I64,
                                             UI8, UI16, UI32, UI64]>;
def NN_IntegerTensor : StaticShapeTensorOf<[I8, I16, I32, I64,
                                             UI8, UI16, UI32, UI64]>;

def NN_ConstantOp : NN_Op<"constant", [ConstantLike,
    AllTypesMatch<["value", "result"]>]> {
  let summary = "A small constant (shapes, scalars, folded shape subgraphs)";
  let description = [{
    Only tiny tensors live in IR attributes; weights are `peft.param`s.
  }];
  let arguments = (ins ElementsAttr:$value);
  let results = (outs NN_AnyTensor:$result);
  let assemblyFormat = "attr-dict $value";
  let hasFolder = 1;
}

//===----------------------------------------------------------------------===//
// Unary math and activations
//===----------------------------------------------------------------------===//

class NN_NumericUnaryOp<string mnemonic, string sum>
    : NN_UnaryOp<mnemonic> {
  let summary = sum;
  let arguments = (ins NN_NumericTensor:$input);
  let results = (outs NN_NumericTensor:$result);
}

class NN_FloatUnaryOp<string mnemonic, string sum> : NN_UnaryOp<mnemonic> {
  let summary = sum;
  let arguments = (ins NN_FloatTensor:$input);
  let results = (outs NN_FloatTensor:$result);
}

def NN_NegOp : NN_NumericUnaryOp<"neg", "-x">;
def NN_AbsOp : NN_NumericUnaryOp<"abs", "|x|">;
def NN_SignOp : NN_NumericUnaryOp<"sign", "-1, 0 or 1 by the sign of x">;
def NN_ReluOp : NN_NumericUnaryOp<"relu", "max(x, 0)">;

def NN_ExpOp : NN_FloatUnaryOp<"exp", "e^x">;
def NN_LogOp : NN_FloatUnaryOp<"log", "natural logarithm">;
def NN_SqrtOp : NN_FloatUnaryOp<"sqrt", "square root">;
def NN_ReciprocalOp : NN_FloatUnaryOp<"reciprocal", "1 / x">;
def NN_TanhOp : NN_FloatUnaryOp<"tanh", "hyperbolic tangent">;
def NN_SigmoidOp : NN_FloatUnaryOp<"sigmoid", "1 / (1 + e^-x)">;
def NN_ErfOp : NN_FloatUnaryOp<"erf", "Gauss error function">;
def NN_SoftplusOp : NN_FloatUnaryOp<"softplus", "log(1 + e^x)">;
def NN_SinOp : NN_FloatUnaryOp<"sin", "sine">;
def NN_CosOp : NN_FloatUnaryOp<"cos", "cosine">;
def NN_TanOp : NN_FloatUnaryOp<"tan", "tangent">;
def NN_AsinOp : NN_FloatUnaryOp<"asin", "arcsine">;
def NN_AcosOp : NN_FloatUnaryOp<"acos", "arccosine">;
def NN_AtanOp : NN_FloatUnaryOp<"atan", "arctangent">;
def NN_SinhOp : NN_FloatUnaryOp<"sinh", "hyperbolic sine">;
def NN_CoshOp : NN_FloatUnaryOp<"cosh", "hyperbolic cosine">;
def NN_AsinhOp : NN_FloatUnaryOp<"asinh", "inverse hyperbolic sine">;
def NN_AcoshOp : NN_FloatUnaryOp<"acosh", "inverse hyperbolic cosine">;
def NN_AtanhOp : NN_FloatUnaryOp<"atanh", "inverse hyperbolic tangent">;
def NN_FloorOp : NN_FloatUnaryOp<"floor", "round toward -inf">;
def NN_CeilOp : NN_FloatUnaryOp<"ceil", "round toward +inf">;
def NN_RoundOp : NN_FloatUnaryOp<"round", "round half to even">;

def NN_LeakyReluOp : NN_FloatUnaryOp<"leaky_relu", "x if x >= 0 else alpha * x"> {
  let arguments = (ins NN_FloatTensor:$input, F64Attr:$alpha);
}

def NN_EluOp : NN_FloatUnaryOp<"elu", "x if x >= 0 else alpha * (e^x - 1)"> {
  let arguments = (ins NN_FloatTensor:$input, F64Attr:$alpha);
}

def NN_GeluOp : NN_FloatUnaryOp<"gelu", "Gaussian error linear unit"> {
  let description = [{
    `approximate = "none"`: 0.5 x (1 + erf(x / sqrt(2))).
    `approximate = "tanh"`: 0.5 x (1 + tanh(sqrt(2 / pi) (x + 0.044715 x^3))).
  }];
  let arguments = (ins NN_FloatTensor:$input, StrAttr:$approximate);
  let hasVerifier = 1;
}

def NN_NotOp : NN_UnaryOp<"not"> {
  let summary = "logical not";
  let arguments = (ins NN_BoolTensor:$input);
  let results = (outs NN_BoolTensor:$result);
}

// Float tests with an i1 result of the same shape.
class NN_FloatPredicateOp<string mnemonic, string sum>
    : NN_Op<mnemonic, [InferTypeOpAdaptor]> {
  let summary = sum;
  let arguments = (ins NN_FloatTensor:$input);
  let results = (outs NN_BoolTensor:$result);
  let assemblyFormat = "$input attr-dict `:` type($input) `->` type($result)";
}

def NN_IsNanOp : NN_FloatPredicateOp<"is_nan", "x is NaN">;
def NN_IsInfOp : NN_FloatPredicateOp<"is_inf", "x is an infinity"> {
  let description = [{
    True for -inf when `detect_negative` and for +inf when `detect_positive`.
  }];
  let arguments = (ins NN_FloatTensor:$input, BoolAttr:$detect_negative,
                   BoolAttr:$detect_positive);
}

//===----------------------------------------------------------------------===//
// Binary arithmetic (numpy broadcasting)
//===----------------------------------------------------------------------===//

class NN_NumericBinaryOp<string mnemonic, string sum, list<Trait> traits = []>
    : NN_BinaryOp<mnemonic, traits> {
  let summary = sum;
  let arguments = (ins NN_NumericTensor:$lhs, NN_NumericTensor:$rhs);
  let results = (outs NN_NumericTensor:$result);
}

def NN_AddOp : NN_NumericBinaryOp<"add", "x + y", [Commutative]>;
def NN_SubOp : NN_NumericBinaryOp<"sub", "x - y">;
def NN_MulOp : NN_NumericBinaryOp<"mul", "x * y", [Commutative]>;
def NN_DivOp
    : NN_NumericBinaryOp<"div", "x / y (integer division truncates toward zero)">;
def NN_PowOp : NN_NumericBinaryOp<"pow", "x ^ y"> {
  let description = [{
    Operands share one element type (the importer casts ONNX's mixed-type
    exponents). Integer powers are exact; negative integer exponents give
    1 / x^-y truncated toward zero.
  }];
}
def NN_MaxOp : NN_NumericBinaryOp<"max", "elementwise maximum (NaN wins)",
                                  [Commutative]>;
def NN_MinOp : NN_NumericBinaryOp<"min", "elementwise minimum (NaN wins)",
                                  [Commutative]>;

def NN_ModOp : NN_NumericBinaryOp<"mod", "remainder of x / y"> {
  let description = [{
    Without `fmod` the remainder takes the sign of the divisor (Python's
    `%`); with `fmod` it takes the sign of the dividend (C's `fmod`).
  }];
  let arguments = (ins NN_NumericTensor:$lhs, NN_NumericTensor:$rhs,
                   UnitAttr:$fmod);
  let assemblyFormat = "$lhs `,` $rhs (`fmod` $fmod^)? attr-dict `:` "
                       "type($lhs) `,` type($rhs) `->` type($result)";
}

def NN_BitShiftOp : NN_BinaryOp<"bit_shift"> {
  let summary = "x << y or x >> y on unsigned integers";
  let arguments = (ins NN_IntegerTensor:$lhs, NN_IntegerTensor:$rhs,
                   StrAttr:$direction);
  let results = (outs NN_IntegerTensor:$result);
  let assemblyFormat = "$direction $lhs `,` $rhs attr-dict `:` "
                       "type($lhs) `,` type($rhs) `->` type($result)";
  let hasVerifier = 1;
}

//===----------------------------------------------------------------------===//
// Comparisons and logic (i1 results)
//===----------------------------------------------------------------------===//

def NN_EqualOp : NN_CompareOp<"equal", [Commutative]> { let summary = "x == y"; }
def NN_LessOp : NN_CompareOp<"less"> { let summary = "x < y"; }
def NN_LessEqualOp : NN_CompareOp<"less_equal"> { let summary = "x <= y"; }
def NN_GreaterOp : NN_CompareOp<"greater"> { let summary = "x > y"; }
def NN_GreaterEqualOp : NN_CompareOp<"greater_equal"> { let summary = "x >= y"; }

class NN_LogicalOp<string mnemonic, string sum>
    : NN_BinaryOp<mnemonic, [Commutative]> {
  let summary = sum;
  let arguments = (ins NN_BoolTensor:$lhs, NN_BoolTensor:$rhs);
  let results = (outs NN_BoolTensor:$result);
}

def NN_AndOp : NN_LogicalOp<"and", "logical and">;
def NN_OrOp : NN_LogicalOp<"or", "logical or">;
def NN_XorOp : NN_LogicalOp<"xor", "logical exclusive or">;

//===----------------------------------------------------------------------===//
// Selection and conversion
//===----------------------------------------------------------------------===//

def NN_WhereOp : NN_Op<"where", [InferTypeOpAdaptor]> {
  let summary = "cond ? x : y, broadcasting all three";
  let arguments = (ins NN_BoolTensor:$condition, NN_AnyTensor:$lhs,
                   NN_AnyTensor:$rhs);
  let results = (outs NN_AnyTensor:$result);
  let assemblyFormat = "$condition `,` $lhs `,` $rhs attr-dict `:` "
                       "type($condition) `,` type($lhs) `,` type($rhs) `->` "
                       "type($result)";
}

def NN_CastOp : NN_Op<"cast"> {
  let summary = "Element type conversion (ONNX Cast/CastLike)";
  let description = [{
    The target element type is the result's. Float to integer truncates
    toward zero (NaN gives 0), anything to i1 is `x != 0`, and narrowing
    float conversions round to nearest even.
  }];
  let arguments = (ins NN_AnyTensor:$input);
  let results = (outs NN_AnyTensor:$result);
  let assemblyFormat = "$input attr-dict `:` type($input) `->` type($result)";
  let hasVerifier = 1;
}

#endif // PEFT_NN_ELEMENTWISE_OPS
