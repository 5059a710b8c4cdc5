// Tensor: element access, castTo semantics, reshaped() sharing and
// copy-on-write through mutableBytes().
#include "peft/Tensor.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <stdexcept>
#include <vector>

using namespace peft;

namespace {

Tensor fromDoubles(DType dtype, const std::vector<double> &values) {
  Tensor t(dtype, {(int64_t)values.size()});
  for (size_t i = 0; i < values.size(); ++i)
    t.setDouble((int64_t)i, values[i]);
  return t;
}

std::vector<int64_t> ints(const Tensor &t) {
  std::vector<int64_t> v;
  for (int64_t i = 0; i < t.numel(); ++i)
    v.push_back(t.getInt(i));
  return v;
}

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

} // namespace

TEST(Shape, NumElementsAndString) {
  EXPECT_EQ(numElements({}), 1);
  EXPECT_EQ(numElements({0}), 0);
  EXPECT_EQ(numElements({2, 0, 3}), 0);
  EXPECT_EQ(numElements({2, 3, 4}), 24);
  EXPECT_EQ(shapeToString({}), "scalar");
  EXPECT_EQ(shapeToString({2, 16, 32}), "2x16x32");
  EXPECT_EQ(shapeToString({0}), "0");
}

TEST(Tensor, OwnedIsZeroInitialised) {
  Tensor t(DType::F32, {2, 3});
  EXPECT_EQ(t.rank(), 2);
  EXPECT_EQ(t.numel(), 6);
  EXPECT_EQ(t.byteSize(), 24u);
  ASSERT_TRUE(t.valid());
  for (int64_t i = 0; i < 6; ++i)
    EXPECT_EQ(t.getDouble(i), 0.0);
}

TEST(Tensor, ScalarAndEmpty) {
  Tensor s(DType::I64, {});
  EXPECT_EQ(s.numel(), 1);
  s.setInt(0, -7);
  EXPECT_EQ(s.getInt(0), -7);
  Tensor e(DType::F16, {3, 0});
  EXPECT_EQ(e.numel(), 0);
  EXPECT_EQ(e.byteSize(), 0u);
  EXPECT_TRUE(e.valid());
  Tensor c = e.castTo(DType::F32);
  EXPECT_EQ(c.shape(), Shape({3, 0}));
  EXPECT_FALSE(Tensor().valid());
}

TEST(Tensor, ElementAccessEveryDType) {
  struct Case {
    DType dtype;
    double in, out;
  };
  for (Case c :
       {Case{DType::Bool, 3.0, 1.0}, Case{DType::I8, -5.0, -5.0},
        Case{DType::U8, 200.0, 200.0}, Case{DType::I32, -70000, -70000},
        Case{DType::I64, 1e15, 1e15}, Case{DType::F16, 0.1, 0.0999755859375},
        Case{DType::BF16, 0.1, 0.10009765625},
        Case{DType::F32, 0.1, (double)0.1f}, Case{DType::F64, 0.1, 0.1}}) {
    Tensor t(c.dtype, {2});
    t.setDouble(1, c.in);
    EXPECT_EQ(t.getDouble(0), 0.0) << dtypeName(c.dtype);
    EXPECT_EQ(t.getDouble(1), c.out) << dtypeName(c.dtype);
  }
  Tensor big(DType::I64, {1});
  big.setInt(0, (int64_t(1) << 62) + 1); // not exact in double
  EXPECT_EQ(big.getInt(0), (int64_t(1) << 62) + 1);
}

TEST(Tensor, SetIntWrapsNarrowIntegers) {
  Tensor t(DType::I32, {1});
  t.setInt(0, (int64_t(1) << 32) + 5);
  EXPECT_EQ(t.getInt(0), 5);
  Tensor u(DType::U8, {1});
  u.setInt(0, -1);
  EXPECT_EQ(u.getInt(0), 255);
  Tensor i8(DType::I8, {1});
  i8.setInt(0, 200);
  EXPECT_EQ(i8.getInt(0), -56);
}

TEST(Tensor, CastFloatToIntTruncatesTowardZero) {
  Tensor f =
      fromDoubles(DType::F32, {-2.7, -2.5, -0.5, -0.0, 0.5, 1.5, 2.5, 2.7});
  for (DType to : {DType::I8, DType::I32, DType::I64}) {
    Tensor t = f.castTo(to);
    EXPECT_EQ(t.dtype(), to);
    EXPECT_EQ(ints(t), std::vector<int64_t>({-2, -2, 0, 0, 0, 1, 2, 2}))
        << dtypeName(to);
  }
  Tensor d = fromDoubles(DType::F64, {-2.7, 2.7, 1e10 + 0.75});
  EXPECT_EQ(ints(d.castTo(DType::I64)),
            std::vector<int64_t>({-2, 2, 10000000000}));
  Tensor h = fromDoubles(DType::F16, {-3.5, 3.75});
  EXPECT_EQ(ints(h.castTo(DType::I32)), std::vector<int64_t>({-3, 3}));
}

// Out-of-range floats and NaN are undefined behaviour for a C++ cast; the
// runtime saturates them (NaN -> 0) instead.
TEST(Tensor, CastFloatToIntSaturatesAndNaNIsZero) {
  Tensor f = fromDoubles(DType::F64, {1e30, -1e30, kNaN, INFINITY, -INFINITY,
                                      9.3e18, 300.0, -300.0});
  EXPECT_EQ(ints(f.castTo(DType::I64)),
            std::vector<int64_t>({INT64_MAX, INT64_MIN, 0, INT64_MAX, INT64_MIN,
                                  INT64_MAX, 300, -300}));
  EXPECT_EQ(ints(f.castTo(DType::I32)),
            std::vector<int64_t>({INT32_MAX, INT32_MIN, 0, INT32_MAX, INT32_MIN,
                                  INT32_MAX, 300, -300}));
  EXPECT_EQ(ints(f.castTo(DType::I8)),
            std::vector<int64_t>({127, -128, 0, 127, -128, 127, 127, -128}));
  EXPECT_EQ(ints(f.castTo(DType::U8)),
            std::vector<int64_t>({255, 0, 0, 255, 0, 255, 255, 0}));
  Tensor t(DType::I64, {1});
  t.setDouble(0, kNaN);
  EXPECT_EQ(t.getInt(0), 0);
  Tensor g = fromDoubles(DType::F32, {1e30});
  EXPECT_EQ(g.getInt(0), INT64_MAX);
}

TEST(Tensor, CastFloatToBoolIsNonzero) {
  Tensor f =
      fromDoubles(DType::F32, {0.0, -0.0, 0.1, -3.0, 1e-40, kNaN, INFINITY});
  Tensor b = f.castTo(DType::Bool);
  EXPECT_EQ(b.dtype(), DType::Bool);
  EXPECT_EQ(ints(b), std::vector<int64_t>({0, 0, 1, 1, 1, 1, 1}));
  for (int64_t i = 0; i < b.numel(); ++i)
    EXPECT_LE(b.bytes()[i], 1) << "bool bytes must be 0 or 1";
  Tensor h = fromDoubles(DType::BF16, {0.0, 0.5}).castTo(DType::Bool);
  EXPECT_EQ(ints(h), std::vector<int64_t>({0, 1}));
}

TEST(Tensor, CastIntegers) {
  Tensor i(DType::I64, {4});
  i.setInt(0, 0);
  i.setInt(1, 2);
  i.setInt(2, -1);
  i.setInt(3, (int64_t(1) << 32) + 7);
  EXPECT_EQ(ints(i.castTo(DType::Bool)), std::vector<int64_t>({0, 1, 1, 1}));
  EXPECT_EQ(ints(i.castTo(DType::I32)), std::vector<int64_t>({0, 2, -1, 7}));
  EXPECT_EQ(ints(i.castTo(DType::U8)), std::vector<int64_t>({0, 2, 255, 7}));
  Tensor f = i.castTo(DType::F32);
  EXPECT_EQ(f.getDouble(2), -1.0);
  // i64 -> i64 through another integer type keeps values above 2^53 exact.
  Tensor big(DType::I32, {1});
  big.setInt(0, INT32_MIN);
  EXPECT_EQ(big.castTo(DType::I64).getInt(0), INT32_MIN);
  Tensor b = i.castTo(DType::Bool).castTo(DType::F64);
  EXPECT_EQ(b.getDouble(1), 1.0);
}

TEST(Tensor, CastBetweenFloats) {
  Tensor f =
      fromDoubles(DType::F32, {1.0f + std::ldexp(1.0f, -11), 65520.0f, 0.1f});
  Tensor h = f.castTo(DType::F16);
  EXPECT_EQ(h.data<uint16_t>()[0], 0x3c00); // tie -> even
  EXPECT_TRUE(std::isinf(h.getDouble(1)));
  EXPECT_EQ(h.getDouble(2), 0.0999755859375);
  // f64 -> f16 rounds once, not through f32.
  Tensor d = fromDoubles(DType::F64,
                         {1.0 + std::ldexp(1.0, -11) + std::ldexp(1.0, -40)});
  EXPECT_EQ(d.castTo(DType::F16).data<uint16_t>()[0], 0x3c01);
  EXPECT_EQ(d.castTo(DType::BF16).getDouble(0), 1.0);
  Tensor n = fromDoubles(DType::F64, {kNaN}).castTo(DType::F16);
  EXPECT_TRUE(std::isnan(n.getDouble(0)));
  EXPECT_EQ(f.castTo(DType::F32).bytes(), f.bytes()) << "same dtype shares";
}

TEST(Tensor, ReshapedSharesStorage) {
  Tensor t = fromDoubles(DType::F32, {1, 2, 3, 4, 5, 6});
  Tensor r = t.reshaped({2, 3});
  EXPECT_EQ(r.shape(), Shape({2, 3}));
  EXPECT_EQ(r.bytes(), t.bytes());
  EXPECT_EQ(r.getDouble(5), 6.0);
  EXPECT_EQ(t.reshaped({6, 1}).bytes(), t.bytes());
  EXPECT_THROW(t.reshaped({4}), std::logic_error);
  Tensor one = fromDoubles(DType::I64, {9});
  EXPECT_EQ(one.reshaped({}).getInt(0), 9);
  EXPECT_EQ(one.reshaped({1, 1, 1}).rank(), 3);
}

TEST(Tensor, CopyOnWriteThroughMutableBytes) {
  Tensor t = fromDoubles(DType::F32, {1, 2, 3, 4});
  Tensor r = t.reshaped({2, 2});
  const uint8_t *shared = t.bytes();
  r.setDouble(0, 42);
  EXPECT_NE(r.bytes(), shared) << "writing a shared tensor must copy";
  EXPECT_EQ(r.getDouble(0), 42.0);
  EXPECT_EQ(r.getDouble(3), 4.0);
  EXPECT_EQ(t.getDouble(0), 1.0) << "the original must not change";
  EXPECT_EQ(t.bytes(), shared);
  // Now t is the only owner of its storage: writing needs no copy.
  t.mutableBytes();
  EXPECT_EQ(t.bytes(), shared);
  // Plain copies behave the same way.
  Tensor c = t;
  c.mutableData<float>()[1] = -1;
  EXPECT_EQ(t.getDouble(1), 2.0);
  EXPECT_EQ(c.getDouble(1), -1.0);
}
