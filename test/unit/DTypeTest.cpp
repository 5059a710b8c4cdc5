// f16 / bf16 conversions: exhaustive over all 16-bit patterns, and every
// rounding boundary between adjacent representable values.
#include "peft/DType.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>

using namespace peft;

namespace {

uint32_t floatBits(float f) {
  uint32_t b;
  std::memcpy(&b, &f, 4);
  return b;
}

bool isHalfNaN(uint16_t h) { return (h & 0x7c00) == 0x7c00 && (h & 0x3ff); }
bool isBf16NaN(uint16_t h) { return (h & 0x7f80) == 0x7f80 && (h & 0x7f); }

/// The value of a half bit pattern computed independently of halfToFloat.
double halfValue(uint16_t h) {
  int sign = (h & 0x8000) ? -1 : 1;
  int exp = (h >> 10) & 0x1f;
  int mant = h & 0x3ff;
  if (exp == 0x1f)
    return mant ? std::nan("") : sign * INFINITY;
  if (exp == 0)
    return sign * std::ldexp((double)mant, -24);
  return sign * std::ldexp((double)(1024 + mant), exp - 25);
}

} // namespace

TEST(DType, Sizes) {
  EXPECT_EQ(dtypeSize(DType::Bool), 1u);
  EXPECT_EQ(dtypeSize(DType::I8), 1u);
  EXPECT_EQ(dtypeSize(DType::U8), 1u);
  EXPECT_EQ(dtypeSize(DType::F16), 2u);
  EXPECT_EQ(dtypeSize(DType::BF16), 2u);
  EXPECT_EQ(dtypeSize(DType::I32), 4u);
  EXPECT_EQ(dtypeSize(DType::F32), 4u);
  EXPECT_EQ(dtypeSize(DType::I64), 8u);
  EXPECT_EQ(dtypeSize(DType::F64), 8u);
}

TEST(DType, SafetensorsNamesRoundTrip) {
  for (DType t : {DType::Bool, DType::I8, DType::U8, DType::I32, DType::I64,
                  DType::F16, DType::BF16, DType::F32, DType::F64}) {
    auto back = dtypeFromSafetensorsName(safetensorsName(t));
    ASSERT_TRUE(back.has_value()) << dtypeName(t);
    EXPECT_EQ(*back, t);
  }
  EXPECT_EQ(safetensorsName(DType::Bool), "BOOL");
  EXPECT_EQ(safetensorsName(DType::BF16), "BF16");
  EXPECT_FALSE(dtypeFromSafetensorsName("F8_E4M3").has_value());
  EXPECT_FALSE(dtypeFromSafetensorsName("f32").has_value());
  EXPECT_FALSE(dtypeFromSafetensorsName("").has_value());
}

TEST(Half, ExhaustiveRoundTripThroughFloat) {
  for (uint32_t i = 0; i < 65536; ++i) {
    uint16_t h = (uint16_t)i;
    float f = halfToFloat(h);
    double expect = halfValue(h);
    if (isHalfNaN(h)) {
      ASSERT_TRUE(std::isnan(f)) << std::hex << h;
      EXPECT_EQ(std::signbit(f), (h & 0x8000) != 0) << std::hex << h;
      uint16_t back = floatToHalf(f);
      ASSERT_TRUE(isHalfNaN(back)) << std::hex << h << " -> " << back;
      EXPECT_EQ(back & 0x8000, h & 0x8000);
      // Quiet NaNs keep their payload exactly.
      if (h & 0x200)
        EXPECT_EQ(back, h);
      continue;
    }
    ASSERT_EQ((double)f, expect) << std::hex << h;
    ASSERT_EQ(std::signbit(f), (h & 0x8000) != 0) << std::hex << h;
    ASSERT_EQ(floatToHalf(f), h) << std::hex << h;
    ASSERT_EQ(doubleToHalf((double)f), h) << std::hex << h;
  }
}

TEST(BF16, ExhaustiveRoundTripThroughFloat) {
  for (uint32_t i = 0; i < 65536; ++i) {
    uint16_t h = (uint16_t)i;
    float f = bf16ToFloat(h);
    EXPECT_EQ(floatBits(f), (uint32_t)h << 16);
    if (isBf16NaN(h)) {
      ASSERT_TRUE(std::isnan(f));
      uint16_t back = floatToBf16(f);
      ASSERT_TRUE(isBf16NaN(back)) << std::hex << h << " -> " << back;
      EXPECT_EQ(back & 0x8000, h & 0x8000);
      if (h & 0x40)
        EXPECT_EQ(back, h);
      continue;
    }
    ASSERT_EQ(floatToBf16(f), h) << std::hex << h;
    ASSERT_EQ(doubleToBf16((double)f), h) << std::hex << h;
  }
}

// Between every pair of adjacent non-negative finite halves a < b: the exact
// midpoint rounds to the one with an even mantissa, and anything on either
// side of it to the nearer one. The same mirrored for negative values.
TEST(Half, RoundsToNearestEvenAtEveryTie) {
  for (uint16_t a = 0; a < 0x7bff; ++a) {
    uint16_t b = a + 1;
    float fa = halfToFloat(a), fb = halfToFloat(b);
    float mid = fa + (fb - fa) / 2; // exact: 12 significant bits
    ASSERT_EQ((double)mid, (halfValue(a) + halfValue(b)) / 2);
    uint16_t even = (a & 1) ? b : a;
    ASSERT_EQ(floatToHalf(mid), even) << std::hex << a;
    ASSERT_EQ(floatToHalf(-mid), even | 0x8000) << std::hex << a;
    ASSERT_EQ(floatToHalf(std::nextafter(mid, 0.0f)), a) << std::hex << a;
    ASSERT_EQ(floatToHalf(std::nextafter(mid, INFINITY)), b) << std::hex << a;
    ASSERT_EQ(floatToHalf(-std::nextafter(mid, INFINITY)), b | 0x8000);
    ASSERT_EQ(doubleToHalf(mid), even);
    ASSERT_EQ(doubleToHalf(std::nextafter((double)mid, 0.0)), a);
    ASSERT_EQ(doubleToHalf(std::nextafter((double)mid, (double)INFINITY)), b);
  }
}

TEST(BF16, RoundsToNearestEvenAtEveryTie) {
  for (uint16_t a = 0; a < 0x7f7f; ++a) {
    uint16_t b = a + 1;
    // a + (b - a) / 2 is exact (9 significant bits); (a + b) / 2 would
    // overflow to infinity at the top of the range.
    float fa = bf16ToFloat(a), fb = bf16ToFloat(b);
    float mid = fa + (fb - fa) / 2;
    uint16_t even = (a & 1) ? b : a;
    ASSERT_EQ(floatToBf16(mid), even) << std::hex << a;
    ASSERT_EQ(floatToBf16(-mid), even | 0x8000) << std::hex << a;
    ASSERT_EQ(floatToBf16(std::nextafter(mid, 0.0f)), a) << std::hex << a;
    ASSERT_EQ(floatToBf16(std::nextafter(mid, INFINITY)), b) << std::hex << a;
    ASSERT_EQ(doubleToBf16(std::nextafter((double)mid, 0.0)), a);
    ASSERT_EQ(doubleToBf16(std::nextafter((double)mid, (double)INFINITY)), b);
  }
}

TEST(Half, OverflowToInfinity) {
  EXPECT_EQ(floatToHalf(65504.0f), 0x7bff);   // largest half
  EXPECT_EQ(floatToHalf(65519.996f), 0x7bff); // below the tie
  EXPECT_EQ(floatToHalf(65520.0f), 0x7c00);   // tie rounds to even: inf
  EXPECT_EQ(floatToHalf(1e6f), 0x7c00);
  EXPECT_EQ(floatToHalf(-1e6f), 0xfc00);
  EXPECT_EQ(floatToHalf(std::numeric_limits<float>::max()), 0x7c00);
  EXPECT_EQ(floatToHalf(INFINITY), 0x7c00);
  EXPECT_EQ(floatToHalf(-INFINITY), 0xfc00);
  EXPECT_EQ(doubleToHalf(1e300), 0x7c00);
  EXPECT_EQ(doubleToHalf(-1e300), 0xfc00);
  EXPECT_EQ(doubleToHalf(65520.0), 0x7c00);
  EXPECT_EQ(doubleToHalf(std::nextafter(65520.0, 0.0)), 0x7bff);
  EXPECT_TRUE(std::isinf(halfToFloat(0x7c00)));
}

TEST(BF16, OverflowToInfinity) {
  EXPECT_EQ(floatToBf16(std::numeric_limits<float>::max()), 0x7f80);
  EXPECT_EQ(floatToBf16(-std::numeric_limits<float>::max()), 0xff80);
  EXPECT_EQ(floatToBf16(INFINITY), 0x7f80);
  EXPECT_EQ(doubleToBf16(1e300), 0x7f80);
  EXPECT_EQ(doubleToBf16(-1e300), 0xff80);
}

TEST(Half, Subnormals) {
  EXPECT_EQ(floatToHalf(std::ldexp(1.0f, -24)), 0x0001); // smallest subnormal
  EXPECT_EQ(floatToHalf(std::ldexp(1023.0f, -24)), 0x03ff); // largest
  EXPECT_EQ(floatToHalf(std::ldexp(1.0f, -14)), 0x0400);    // smallest normal
  EXPECT_EQ(floatToHalf(std::ldexp(1.0f, -25)), 0x0000);    // tie -> even 0
  EXPECT_EQ(floatToHalf(std::ldexp(3.0f, -25)), 0x0002);    // tie -> even 2
  EXPECT_EQ(floatToHalf(std::ldexp(5.0f, -25)), 0x0002);    // tie -> even 2
  EXPECT_EQ(floatToHalf(std::nextafter(std::ldexp(1.0f, -25), 1.0f)), 0x0001);
  EXPECT_EQ(floatToHalf(std::ldexp(2047.0f, -25)), 0x0400); // carries to normal
  EXPECT_EQ(floatToHalf(-std::ldexp(1.0f, -24)), 0x8001);
  EXPECT_EQ(floatToHalf(std::ldexp(1.0f, -30)), 0x0000);
  EXPECT_EQ(floatToHalf(std::numeric_limits<float>::denorm_min()), 0x0000);
  EXPECT_EQ(floatToHalf(-0.0f), 0x8000);
  EXPECT_EQ(halfToFloat(0x0001), std::ldexp(1.0f, -24));
  EXPECT_EQ(halfToFloat(0x03ff), std::ldexp(1023.0f, -24));
  EXPECT_EQ(halfToFloat(0x8000), -0.0f);
  EXPECT_TRUE(std::signbit(halfToFloat(0x8000)));
  EXPECT_EQ(doubleToHalf(1e-300), 0x0000);
  EXPECT_EQ(doubleToHalf(-1e-300), 0x8000);
  EXPECT_EQ(doubleToHalf(std::nextafter(std::ldexp(1.0, -25), 1.0)), 0x0001);
}

TEST(BF16, Subnormals) {
  float tiny = std::ldexp(1.0f, -133); // smallest bf16 subnormal
  EXPECT_EQ(floatToBf16(tiny), 0x0001);
  EXPECT_EQ(bf16ToFloat(0x0001), tiny);
  EXPECT_EQ(floatToBf16(std::ldexp(1.0f, -134)), 0x0000); // tie -> even 0
  EXPECT_EQ(floatToBf16(std::ldexp(3.0f, -134)), 0x0002); // tie -> even 2
  EXPECT_EQ(floatToBf16(std::numeric_limits<float>::denorm_min()), 0x0000);
  EXPECT_EQ(doubleToBf16(std::ldexp(1.0, -140)), 0x0000);
  EXPECT_EQ(doubleToBf16(std::nextafter(std::ldexp(1.0, -134), 1.0)), 0x0001);
}

TEST(Half, NaNStaysNaN) {
  float qnan = std::numeric_limits<float>::quiet_NaN();
  float snan = std::numeric_limits<float>::signaling_NaN();
  EXPECT_TRUE(isHalfNaN(floatToHalf(qnan)));
  EXPECT_TRUE(isHalfNaN(floatToHalf(-qnan)));
  EXPECT_TRUE(isHalfNaN(floatToHalf(snan)));
  // A NaN whose payload lives only in the low float bits must not become inf.
  uint32_t lowPayload = 0x7f800001u;
  float f;
  std::memcpy(&f, &lowPayload, 4);
  EXPECT_TRUE(isHalfNaN(floatToHalf(f)));
  EXPECT_TRUE(isBf16NaN(floatToBf16(f)));
  EXPECT_TRUE(isHalfNaN(doubleToHalf(std::nan(""))));
  EXPECT_TRUE(isBf16NaN(doubleToBf16(std::nan(""))));
}

// Rounding a double to float first and then to half rounds twice; when the
// float lands exactly on a half tie, ties-to-even then picks the wrong side.
TEST(Half, DoubleRoundsOnce) {
  double justAboveTie = 1.0 + std::ldexp(1.0, -11) + std::ldexp(1.0, -40);
  EXPECT_EQ(floatToHalf((float)justAboveTie), 0x3c00); // the double rounding
  EXPECT_EQ(doubleToHalf(justAboveTie), 0x3c01);
  EXPECT_EQ(doubleToHalf(-justAboveTie), 0xbc01);
  double justBelowTie = 1.0 + 3 * std::ldexp(1.0, -11) - std::ldexp(1.0, -40);
  EXPECT_EQ(floatToHalf((float)justBelowTie), 0x3c02);
  EXPECT_EQ(doubleToHalf(justBelowTie), 0x3c01);
  EXPECT_EQ(doubleToHalf(1.0 + std::ldexp(1.0, -11)), 0x3c00); // exact tie
}

TEST(BF16, DoubleRoundsOnce) {
  double justAboveTie = 1.0 + std::ldexp(1.0, -8) + std::ldexp(1.0, -40);
  EXPECT_EQ(floatToBf16((float)justAboveTie), 0x3f80);
  EXPECT_EQ(doubleToBf16(justAboveTie), 0x3f81);
  EXPECT_EQ(doubleToBf16(1.0 + std::ldexp(1.0, -8)), 0x3f80);
}
