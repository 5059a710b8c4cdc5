//===- KernDialect.cpp - kern.gemm and kern.launch ------------------------===//
#include "dialects/kern/KernOps.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "llvm/ADT/STLExtras.h"

using namespace mlir;
using namespace peft::kern;

#include "dialects/kern/KernDialect.cpp.inc"

void KernDialect::initialize() {
  addOperations<
#define GET_OP_LIST
#include "dialects/kern/KernOps.cpp.inc"
      >();
}

int64_t peft::kern::tensorBytes(RankedTensorType type) {
  int64_t bits = type.getElementTypeBitWidth();
  return type.getNumElements() * std::max<int64_t>(bits, 8) / 8;
}

//===----------------------------------------------------------------------===//
// kern.gemm
//===----------------------------------------------------------------------===//

namespace {
RankedTensorType rankedOf(Value v) {
  return cast<RankedTensorType>(v.getType());
}
/// The [rows, cols] of a GEMM operand as the product sees it (after the
/// transpose).
std::pair<int64_t, int64_t> matrixOf(RankedTensorType t, bool transposed) {
  int64_t r = t.getDimSize(t.getRank() - 2), c = t.getDimSize(t.getRank() - 1);
  return transposed ? std::make_pair(c, r) : std::make_pair(r, c);
}
} // namespace

int64_t GemmOp::getBatch() {
  auto type = rankedOf(getResult());
  return type.getRank() == 3 ? type.getDimSize(0) : 1;
}
int64_t GemmOp::getM() {
  auto type = rankedOf(getResult());
  return type.getDimSize(type.getRank() - 2);
}
int64_t GemmOp::getN() {
  auto type = rankedOf(getResult());
  return type.getDimSize(type.getRank() - 1);
}
int64_t GemmOp::getK() {
  return matrixOf(rankedOf(getA()), getTransA()).second;
}

LogicalResult GemmOp::verify() {
  RankedTensorType a = rankedOf(getA()), b = rankedOf(getB());
  RankedTensorType result = rankedOf(getResult());
  for (auto [name, t] : {std::make_pair("a", a), std::make_pair("b", b)})
    if (t.getRank() != 2 && t.getRank() != 3)
      return emitOpError("operand ")
             << name << " must be rank 2 or 3, got " << t;
  if (a.getElementType() != b.getElementType() ||
      a.getElementType() != result.getElementType())
    return emitOpError("operands and result must share an element type");
  int64_t rank = std::max(a.getRank(), b.getRank());
  int64_t batch =
      rank == 3 ? (a.getRank() == 3 ? a.getDimSize(0) : b.getDimSize(0)) : 1;
  if (a.getRank() == 3 && b.getRank() == 3 &&
      a.getDimSize(0) != b.getDimSize(0))
    return emitOpError("batch sizes differ: ")
           << a.getDimSize(0) << " vs " << b.getDimSize(0);
  auto [m, ka] = matrixOf(a, getTransA());
  auto [kb, n] = matrixOf(b, getTransB());
  if (ka != kb)
    return emitOpError("inner dimensions differ: op(a) is [")
           << m << ", " << ka << "] and op(b) is [" << kb << ", " << n << "]";
  SmallVector<int64_t> shape;
  if (rank == 3)
    shape.push_back(batch);
  shape.append({m, n});
  if (result.getShape() != ArrayRef<int64_t>(shape))
    return emitOpError("result must be ")
           << RankedTensorType::get(shape, a.getElementType()) << ", got "
           << result;
  if (getC() && getC().getType() != result)
    return emitOpError("accumulator c must have the result type ") << result;
  if (!getC() && getBeta().convertToDouble() != 0.0)
    return emitOpError("beta != 0 needs an accumulator operand");
  if (Value bias = getBias()) {
    RankedTensorType bt = rankedOf(bias);
    if (bt.getRank() != 1 || bt.getDimSize(0) != n ||
        bt.getElementType() != a.getElementType())
      return emitOpError("bias must be [n] = [")
             << n << "] of " << a.getElementType() << ", got " << bt;
  }
  StringRef epilogue = getEpilogue();
  if (epilogue != "none" && epilogue != "relu" && epilogue != "gelu_erf" &&
      epilogue != "gelu_tanh")
    return emitOpError("epilogue must be none, relu, gelu_erf or gelu_tanh, "
                       "got \"")
           << epilogue << "\"";
  return success();
}

//===----------------------------------------------------------------------===//
// kern.launch
//===----------------------------------------------------------------------===//

LogicalResult LaunchOp::verifySymbolUses(SymbolTableCollection &symbolTable) {
  auto callee =
      symbolTable.lookupNearestSymbolFrom<func::FuncOp>(*this, getCalleeAttr());
  if (!callee)
    return emitOpError("'") << getCallee() << "' is not a func.func";
  if (!callee->hasAttr(attr::kKernel))
    return emitOpError("callee @")
           << getCallee() << " is not a kernel function (no " << attr::kKernel
           << " attribute)";
  FunctionType type = callee.getFunctionType();
  if (!llvm::equal(type.getInputs(), getArgs().getTypes()) ||
      !llvm::equal(type.getResults(), getResults().getTypes()))
    return emitOpError("types do not match the signature of @")
           << getCallee() << ": " << type;
  return success();
}

#define GET_OP_CLASSES
#include "dialects/kern/KernOps.cpp.inc"
