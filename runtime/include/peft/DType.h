// Element types shared by the runtime, the reference evaluator and the
// safetensors reader/writer. No LLVM/MLIR here: the runtime stays embeddable.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace peft {

enum class DType : uint8_t { Bool, I8, U8, I32, I64, F16, BF16, F32, F64 };

/// Bytes per element.
size_t dtypeSize(DType t);
/// True for F16, BF16, F32, F64.
bool isFloat(DType t);
/// Name as safetensors writes it ("F32", "I64", "BOOL", ...).
std::string_view safetensorsName(DType t);
std::optional<DType> dtypeFromSafetensorsName(std::string_view name);
/// Lower-case name for messages ("f32", "i64", "bool").
std::string_view dtypeName(DType t);

/// IEEE half and bfloat16 conversions (round to nearest even; overflow gives
/// infinity; NaN stays NaN and keeps as much payload as fits).
float halfToFloat(uint16_t h);
uint16_t floatToHalf(float f);
float bf16ToFloat(uint16_t h);
uint16_t floatToBf16(float f);
/// Rounded once from the double: going through float first would round twice
/// and can pick the wrong neighbour when the float lands exactly on a tie.
uint16_t doubleToHalf(double d);
uint16_t doubleToBf16(double d);

} // namespace peft
