#include "codegen/reference/TensorAttr.h"

#include "mlir/IR/Builders.h"
#include "llvm/ADT/APFloat.h"

using namespace mlir;

namespace peft {

std::optional<DType> toDType(Type t) {
  if (t.isInteger(1))
    return DType::Bool;
  if (t.isSignlessInteger(8) || t.isSignedInteger(8))
    return DType::I8;
  if (t.isUnsignedInteger(8))
    return DType::U8;
  if (t.isSignlessInteger(32) || t.isSignedInteger(32))
    return DType::I32;
  if (t.isSignlessInteger(64) || t.isSignedInteger(64))
    return DType::I64;
  if (t.isF16())
    return DType::F16;
  if (t.isBF16())
    return DType::BF16;
  if (t.isF32())
    return DType::F32;
  if (t.isF64())
    return DType::F64;
  return std::nullopt;
}

Type toElementType(MLIRContext *ctx, DType d) {
  Builder b(ctx);
  switch (d) {
  case DType::Bool:
    return b.getI1Type();
  case DType::I8:
    return b.getIntegerType(8);
  case DType::U8:
    return b.getIntegerType(8, /*isSigned=*/false);
  case DType::I32:
    return b.getI32Type();
  case DType::I64:
    return b.getI64Type();
  case DType::F16:
    return b.getF16Type();
  case DType::BF16:
    return b.getBF16Type();
  case DType::F32:
    return b.getF32Type();
  case DType::F64:
    return b.getF64Type();
  }
  return {};
}

Shape toShape(RankedTensorType type) {
  return Shape(type.getShape().begin(), type.getShape().end());
}

RankedTensorType toTensorType(MLIRContext *ctx, DType dtype,
                              const Shape &shape) {
  return RankedTensorType::get(shape, toElementType(ctx, dtype));
}

std::optional<Tensor> tensorFromAttr(ElementsAttr attr) {
  auto type = cast<RankedTensorType>(attr.getType());
  auto dtype = toDType(type.getElementType());
  if (!dtype || !type.hasStaticShape())
    return std::nullopt;
  Tensor t(*dtype, toShape(type));
  int64_t i = 0;
  if (isFloat(*dtype)) {
    for (APFloat v : attr.getValues<APFloat>()) {
      bool lost;
      v.convert(APFloat::IEEEdouble(), APFloat::rmNearestTiesToEven, &lost);
      t.setDouble(i++, v.convertToDouble());
    }
  } else {
    bool isUnsigned = *dtype == DType::U8 || *dtype == DType::Bool;
    for (APInt v : attr.getValues<APInt>())
      t.setInt(i++, isUnsigned ? (int64_t)v.getZExtValue() : v.getSExtValue());
  }
  return t;
}

DenseElementsAttr attrFromTensor(const Tensor &t, RankedTensorType type) {
  int64_t n = t.numel();
  Type et = type.getElementType();
  if (auto ft = dyn_cast<FloatType>(et)) {
    SmallVector<APFloat> values;
    values.reserve(n);
    for (int64_t i = 0; i < n; ++i) {
      APFloat v(t.getDouble(i));
      bool lost;
      v.convert(ft.getFloatSemantics(), APFloat::rmNearestTiesToEven, &lost);
      values.push_back(v);
    }
    return DenseElementsAttr::get(type, values);
  }
  unsigned width = et.getIntOrFloatBitWidth();
  SmallVector<APInt> values;
  values.reserve(n);
  for (int64_t i = 0; i < n; ++i)
    values.push_back(APInt(width, (uint64_t)t.getInt(i), /*isSigned=*/true));
  return DenseElementsAttr::get(type, values);
}

} // namespace peft
