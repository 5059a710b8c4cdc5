#include "peft/DType.h"

#include <cmath>
#include <cstring>
#include <limits>

namespace peft {

size_t dtypeSize(DType t) {
  switch (t) {
  case DType::Bool:
  case DType::I8:
  case DType::U8:
    return 1;
  case DType::F16:
  case DType::BF16:
    return 2;
  case DType::I32:
  case DType::F32:
    return 4;
  case DType::I64:
  case DType::F64:
    return 8;
  }
  return 0;
}

bool isFloat(DType t) {
  return t == DType::F16 || t == DType::BF16 || t == DType::F32 ||
         t == DType::F64;
}

std::string_view safetensorsName(DType t) {
  switch (t) {
  case DType::Bool:
    return "BOOL";
  case DType::I8:
    return "I8";
  case DType::U8:
    return "U8";
  case DType::I32:
    return "I32";
  case DType::I64:
    return "I64";
  case DType::F16:
    return "F16";
  case DType::BF16:
    return "BF16";
  case DType::F32:
    return "F32";
  case DType::F64:
    return "F64";
  }
  return "?";
}

std::optional<DType> dtypeFromSafetensorsName(std::string_view n) {
  for (DType t : {DType::Bool, DType::I8, DType::U8, DType::I32, DType::I64,
                  DType::F16, DType::BF16, DType::F32, DType::F64})
    if (safetensorsName(t) == n)
      return t;
  return std::nullopt;
}

std::string_view dtypeName(DType t) {
  switch (t) {
  case DType::Bool:
    return "bool";
  case DType::I8:
    return "i8";
  case DType::U8:
    return "u8";
  case DType::I32:
    return "i32";
  case DType::I64:
    return "i64";
  case DType::F16:
    return "f16";
  case DType::BF16:
    return "bf16";
  case DType::F32:
    return "f32";
  case DType::F64:
    return "f64";
  }
  return "?";
}

float halfToFloat(uint16_t h) {
  uint32_t sign = (uint32_t)(h & 0x8000) << 16;
  uint32_t exp = (h >> 10) & 0x1f;
  uint32_t mant = h & 0x3ff;
  uint32_t bits;
  if (exp == 0) {
    if (mant == 0) {
      bits = sign;
    } else { // subnormal: normalise
      int e = -1;
      do {
        e++;
        mant <<= 1;
      } while ((mant & 0x400) == 0);
      mant &= 0x3ff;
      bits = sign | ((uint32_t)(127 - 15 - e) << 23) | (mant << 13);
    }
  } else if (exp == 0x1f) {
    bits = sign | 0x7f800000u | (mant << 13);
  } else {
    bits = sign | ((exp + 127 - 15) << 23) | (mant << 13);
  }
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

uint16_t floatToHalf(float f) {
  uint32_t x;
  std::memcpy(&x, &f, 4);
  uint32_t sign = (x >> 16) & 0x8000;
  uint32_t absx = x & 0x7fffffffu;
  if (absx > 0x7f800000u) // NaN: quiet it and keep the top payload bits
    return (uint16_t)(sign | 0x7e00 | ((absx >> 13) & 0x3ff));
  if (absx == 0x7f800000u)
    return (uint16_t)(sign | 0x7c00);
  if (absx >= 0x477ff000u) // rounds to >= 65520: overflow to inf
    return (uint16_t)(sign | 0x7c00);
  if (absx < 0x38800000u) { // subnormal half or zero
    if (absx < 0x33000000u)
      return (uint16_t)sign;
    uint32_t e = absx >> 23;
    uint32_t mant = (absx & 0x7fffff) | 0x800000;
    uint32_t shift = 126 - e; // 14..24
    uint32_t half = mant >> shift;
    uint32_t rem = mant & ((1u << shift) - 1);
    uint32_t mid = 1u << (shift - 1);
    if (rem > mid || (rem == mid && (half & 1)))
      half++;
    return (uint16_t)(sign | half);
  }
  uint32_t h = ((absx >> 13) - ((127 - 15) << 10));
  uint32_t rem = absx & 0x1fff;
  if (rem > 0x1000 || (rem == 0x1000 && (h & 1)))
    h++;
  return (uint16_t)(sign | h);
}

float bf16ToFloat(uint16_t h) {
  uint32_t bits = (uint32_t)h << 16;
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

uint16_t floatToBf16(float f) {
  uint32_t x;
  std::memcpy(&x, &f, 4);
  if ((x & 0x7fffffffu) > 0x7f800000u)
    return (uint16_t)((x >> 16) | 0x40);
  uint32_t lsb = (x >> 16) & 1;
  x += 0x7fff + lsb;
  return (uint16_t)(x >> 16);
}

namespace {
/// Rounds `d` to float with round-to-odd: an inexact result gets an odd last
/// bit, which records "not exactly on a tie" for the second rounding. Float
/// carries more than two extra bits over half and bfloat16, so rounding that
/// result to nearest-even gives the correctly rounded value of `d`.
float roundToOddFloat(double d) {
  float f = (float)d;
  if (std::isnan(d) || (double)f == d)
    return f;
  uint32_t bits;
  std::memcpy(&bits, &f, 4);
  if (bits & 1)
    return f;
  // f is the even neighbour; the odd one lies on the other side of d.
  const float inf = std::numeric_limits<float>::infinity();
  return std::nextafterf(f, (double)f < d ? inf : -inf);
}
} // namespace

uint16_t doubleToHalf(double d) { return floatToHalf(roundToOddFloat(d)); }

uint16_t doubleToBf16(double d) { return floatToBf16(roundToOddFloat(d)); }

} // namespace peft
