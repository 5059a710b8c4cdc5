// safetensors: round trips of every dtype and every way a file can be broken.
// A broken file must give `false` and a message that names the file and the
// problem, never a crash.
#include "TestUtil.h"

#include "peft/SafeTensors.h"

#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <random>

using namespace peft;

namespace {

const DType kAllDTypes[] = {DType::Bool, DType::I8,  DType::U8,
                            DType::I32,  DType::I64, DType::F16,
                            DType::BF16, DType::F32, DType::F64};

/// A tensor whose elements differ from each other and from zero, with values
/// each dtype can hold (negative for signed types, fractions for floats).
Tensor patterned(DType dtype, Shape shape) {
  Tensor t(dtype, std::move(shape));
  for (int64_t i = 0; i < t.numel(); ++i) {
    if (dtype == DType::Bool)
      t.setInt(i, i % 3 != 1);
    else if (dtype == DType::U8)
      t.setInt(i, (i * 37 + 1) % 256);
    else if (isFloat(dtype))
      t.setDouble(i, (i - 3) * 0.375 + (i % 2 ? -1e-3 : 0));
    else if (dtype == DType::I8)
      t.setInt(i, (i % 200) - 100);
    else if (dtype == DType::I64)
      t.setInt(i, (i - 2) * 1234567890123LL);
    else
      t.setInt(i, (i - 2) * 123457);
  }
  return t;
}

/// A safetensors file from its parts: 8-byte little-endian header length
/// (or `lenOverride`), the header text, then the data bytes.
std::string rawFile(const std::string &header, const std::string &data = "",
                    int64_t lenOverride = -1) {
  uint64_t len = lenOverride >= 0 ? (uint64_t)lenOverride : header.size();
  std::string out;
  for (int i = 0; i < 8; ++i)
    out += (char)(uint8_t)(len >> (8 * i));
  return out + header + data;
}

class SafeTensorsTest : public peft::test::TempDirTest {
protected:
  /// Reads `bytes` from a file and expects failure with a message naming the
  /// file and containing `problem`.
  void expectError(const std::string &bytes, const std::string &problem) {
    std::string p = path("bad.safetensors");
    writeFile(p, bytes);
    expectErrorAt(p, problem);
  }
  void expectErrorAt(const std::string &p, const std::string &problem) {
    SafeTensorsFile f;
    f.metadata["untouched"] = "yes";
    std::string err;
    EXPECT_FALSE(readSafeTensors(p, f, err)) << problem;
    EXPECT_NE(err.find(p), std::string::npos)
        << "message must name the file: " << err;
    EXPECT_NE(err.find(problem), std::string::npos)
        << "expected \"" << problem << "\" in: " << err;
    EXPECT_TRUE(f.tensors.empty()) << "failed reads leave the output alone";
    EXPECT_EQ(f.metadata.size(), 1u) << "failed reads leave the output alone";
  }
  /// A well-formed one-tensor header with the given tensor description.
  static std::string oneTensor(const std::string &desc) {
    return "{\"t\":" + desc + "}";
  }
};

} // namespace

TEST_F(SafeTensorsTest, RoundTripEveryDType) {
  std::vector<std::pair<std::string, Tensor>> in;
  for (DType dt : kAllDTypes) {
    std::string n(dtypeName(dt));
    in.push_back({n + ".matrix", patterned(dt, {3, 5})});
    in.push_back({n + ".scalar", patterned(dt, {})});
    in.push_back({n + ".empty", patterned(dt, {0})});
    in.push_back({n + ".empty3d", patterned(dt, {2, 0, 4})});
    in.push_back({n + ".odd", patterned(dt, {1, 3, 1})});
  }
  std::map<std::string, std::string> meta = {
      {"format", "pt"},
      {"quote\"back\\slash", "new\nline\ttab\rcr"},
      {"control", std::string("a\x01z\x1f", 4)},
      {"utf8", "\xc3\xa9t\xc3\xa9 \xe2\x82\xac"},
      {"empty", ""}};
  std::string p = path("all.safetensors");
  std::string err;
  ASSERT_TRUE(writeSafeTensors(p, in, meta, err)) << err;

  SafeTensorsFile f;
  ASSERT_TRUE(readSafeTensors(p, f, err)) << err;
  EXPECT_EQ(f.metadata, meta);
  ASSERT_EQ(f.tensors.size(), in.size());
  for (size_t i = 0; i < in.size(); ++i) {
    const auto &[name, want] = in[i];
    const auto &[gotName, got] = f.tensors[i];
    SCOPED_TRACE(name);
    EXPECT_EQ(gotName, name) << "file order is kept";
    EXPECT_EQ(got.dtype(), want.dtype());
    EXPECT_EQ(got.shape(), want.shape());
    ASSERT_EQ(got.byteSize(), want.byteSize());
    EXPECT_TRUE(got.valid());
    if (want.byteSize())
      EXPECT_EQ(std::memcmp(got.bytes(), want.bytes(), want.byteSize()), 0);
    for (int64_t e = 0; e < want.numel(); ++e)
      EXPECT_EQ(got.getDouble(e), want.getDouble(e));
    EXPECT_EQ((uintptr_t)got.bytes() % dtypeSize(got.dtype()), 0u)
        << "the writer aligns every tensor to its element size";
    ASSERT_NE(f.find(name), nullptr);
    EXPECT_EQ(f.find(name)->shape(), want.shape());
  }
  EXPECT_EQ(f.find("nope"), nullptr);
  // The header is padded so the data starts 8-byte aligned.
  std::string bytes = readFile(p);
  uint64_t headerLen;
  std::memcpy(&headerLen, bytes.data(), 8);
  EXPECT_EQ(headerLen % 8, 0u);
  // The data section is contiguous: no gaps (strict readers reject them).
  uint64_t total = 0;
  for (auto &kv : in)
    total += kv.second.byteSize();
  EXPECT_EQ(bytes.size(), 8 + headerLen + total);
  EXPECT_EQ(bytes.substr(8, headerLen).find('\x01'), std::string::npos)
      << "control characters in strings must be escaped";
}

TEST_F(SafeTensorsTest, RoundTripNoTensorsNoMetadata) {
  std::string p = path("empty.safetensors");
  std::string err;
  ASSERT_TRUE(writeSafeTensors(p, {}, {}, err)) << err;
  SafeTensorsFile f;
  ASSERT_TRUE(readSafeTensors(p, f, err)) << err;
  EXPECT_TRUE(f.tensors.empty());
  EXPECT_TRUE(f.metadata.empty());
}

TEST_F(SafeTensorsTest, ReadsTensorsAsViewsOfTheMapping) {
  std::string p = path("v.safetensors");
  std::string err;
  Tensor t = patterned(DType::F32, {4});
  ASSERT_TRUE(writeSafeTensors(p, {{"w", t}}, {}, err)) << err;
  std::string before = readFile(p);
  SafeTensorsFile f;
  ASSERT_TRUE(readSafeTensors(p, f, err)) << err;
  Tensor w = f.tensors[0].second;
  const uint8_t *mapped = w.bytes();
  EXPECT_EQ(std::memcmp(mapped, before.data() + before.size() - 16, 16), 0);
  w.setDouble(0, 99);
  EXPECT_NE(w.bytes(), mapped) << "writing a view copies it";
  EXPECT_EQ(w.getDouble(0), 99.0);
  EXPECT_EQ(f.tensors[0].second.getDouble(0), t.getDouble(0));
  EXPECT_EQ(readFile(p), before) << "the file is never written through a view";
  // The view keeps the mapping alive after the file object is gone.
  Tensor keep = f.tensors[0].second;
  f = SafeTensorsFile();
  EXPECT_EQ(keep.getDouble(3), t.getDouble(3));
}

// Other writers need not align tensors; reads must not assume alignment.
TEST_F(SafeTensorsTest, ReadsUnalignedTensors) {
  std::string header =
      "{\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]},"
      "\"b\":{\"dtype\":\"F64\",\"shape\":[2],\"data_offsets\":[1,17]},"
      "\"c\":{\"dtype\":\"I32\",\"shape\":[],\"data_offsets\":[17,21]}}";
  double vals[2] = {1.5, -2.25};
  int32_t c = -123456;
  std::string data(1, '\x07');
  data.append(reinterpret_cast<const char *>(vals), 16);
  data.append(reinterpret_cast<const char *>(&c), 4);
  std::string p = path("unaligned.safetensors");
  writeFile(p, rawFile(header + "  ", data));
  SafeTensorsFile f;
  std::string err;
  ASSERT_TRUE(readSafeTensors(p, f, err)) << err;
  EXPECT_EQ(f.find("a")->getInt(0), 7);
  EXPECT_EQ(f.find("b")->getDouble(0), 1.5);
  EXPECT_EQ(f.find("b")->getDouble(1), -2.25);
  EXPECT_EQ(f.find("c")->getInt(0), -123456);
  EXPECT_EQ(f.find("c")->rank(), 0);
}

TEST_F(SafeTensorsTest, AcceptsJSONItCanMeetInTheWild) {
  // Whitespace, escapes, an empty tensor sharing an offset with another,
  // gaps between tensors, and metadata after the tensors.
  std::string header =
      "\n{ \"e\" : { \"shape\" : [ 0 ] , \"dtype\" : \"F32\", \"data_offsets\" "
      ": [4, 4] },\r\n"
      "  \"x\\u00e9\\/\\\"\" : "
      "{\"dtype\":\"I32\",\"shape\":[1],\"data_offsets\":[0,4]},\t"
      "  \"__metadata__\" : {\"k\\ud83d\\ude00\":\"v\"} }   ";
  std::string p = path("wild.safetensors");
  writeFile(p, rawFile(header, std::string("\x01\0\0\0", 4) + "gap!"));
  SafeTensorsFile f;
  std::string err;
  ASSERT_TRUE(readSafeTensors(p, f, err)) << err;
  ASSERT_EQ(f.tensors.size(), 2u);
  EXPECT_EQ(f.tensors[0].second.numel(), 0);
  EXPECT_EQ(f.tensors[1].first, "x\xc3\xa9/\"");
  EXPECT_EQ(f.tensors[1].second.getInt(0), 1);
  EXPECT_EQ(f.metadata.at("k\xf0\x9f\x98\x80"), "v");
}

TEST_F(SafeTensorsTest, WriteReplacesAtomically) {
  std::string p = path("out.safetensors");
  // An existing, larger file must be replaced whole, not overwritten in place.
  writeFile(p, std::string(100000, 'x'));
  std::string err;
  Tensor t = patterned(DType::I64, {3});
  ASSERT_TRUE(writeSafeTensors(p, {{"t", t}}, {}, err)) << err;
  EXPECT_FALSE(std::filesystem::exists(p + ".tmp"));
  std::string bytes = readFile(p);
  EXPECT_LT(bytes.size(), 200u);
  EXPECT_EQ(bytes.find('x'), std::string::npos);
  SafeTensorsFile f;
  ASSERT_TRUE(readSafeTensors(p, f, err)) << err;
  EXPECT_EQ(f.tensors[0].second.getInt(2), t.getInt(2));

  // A reader that mapped the old file keeps seeing the old contents.
  SafeTensorsFile old;
  ASSERT_TRUE(readSafeTensors(p, old, err)) << err;
  Tensor t2 = patterned(DType::I64, {5});
  t2.setInt(2, 777);
  ASSERT_TRUE(writeSafeTensors(p, {{"t", t2}}, {}, err)) << err;
  EXPECT_EQ(old.tensors[0].second.getInt(2), t.getInt(2));
  SafeTensorsFile now;
  ASSERT_TRUE(readSafeTensors(p, now, err)) << err;
  EXPECT_EQ(now.tensors[0].second.getInt(2), 777);
  EXPECT_EQ(std::distance(std::filesystem::directory_iterator(dir_),
                          std::filesystem::directory_iterator()),
            1)
      << "only the output file remains in the directory";
}

TEST_F(SafeTensorsTest, WriteFailuresLeaveNoTempFile) {
  std::string err;
  Tensor t = patterned(DType::F32, {2});
  std::string missingDir = path("no/such/dir/out.safetensors");
  EXPECT_FALSE(writeSafeTensors(missingDir, {{"t", t}}, {}, err));
  EXPECT_NE(err.find(missingDir), std::string::npos) << err;
  EXPECT_NE(err.find("No such file or directory"), std::string::npos) << err;

  // The target is a non-empty directory: the rename fails, the temp file goes.
  std::string target = path("occupied");
  std::filesystem::create_directories(target + "/child");
  err.clear();
  EXPECT_FALSE(writeSafeTensors(target, {{"t", t}}, {}, err));
  EXPECT_NE(err.find(target), std::string::npos) << err;
  EXPECT_NE(err.find("cannot rename"), std::string::npos) << err;
  EXPECT_FALSE(std::filesystem::exists(target + ".tmp"));
  EXPECT_TRUE(std::filesystem::is_directory(target + "/child"));
}

TEST_F(SafeTensorsTest, WriteRejectsBadInput) {
  std::string p = path("bad-input.safetensors");
  std::string err;
  Tensor t = patterned(DType::F32, {2});
  EXPECT_FALSE(writeSafeTensors(p, {{"a", t}, {"a", t}}, {}, err));
  EXPECT_NE(err.find("\"a\" appears twice"), std::string::npos) << err;
  EXPECT_FALSE(writeSafeTensors(p, {{"__metadata__", t}}, {}, err));
  EXPECT_NE(err.find("reserved name"), std::string::npos) << err;
  EXPECT_FALSE(writeSafeTensors(p, {{"nodata", Tensor()}}, {}, err));
  EXPECT_NE(err.find("has no data"), std::string::npos) << err;
  EXPECT_NE(err.find(p), std::string::npos) << err;
  EXPECT_FALSE(std::filesystem::exists(p));
  EXPECT_FALSE(std::filesystem::exists(p + ".tmp"));
}

TEST_F(SafeTensorsTest, MissingFileAndDirectory) {
  std::string p = path("missing.safetensors");
  SafeTensorsFile f;
  std::string err;
  EXPECT_FALSE(readSafeTensors(p, f, err));
  EXPECT_NE(err.find(p), std::string::npos) << err;
  EXPECT_NE(err.find("No such file or directory"), std::string::npos) << err;
  EXPECT_FALSE(readSafeTensors(dir_, f, err));
  EXPECT_NE(err.find(dir_), std::string::npos) << err;
  EXPECT_NE(err.find("is not a regular file"), std::string::npos) << err;
}

TEST_F(SafeTensorsTest, EmptyFile) {
  expectError("", "the file is 0 bytes, shorter than the 8-byte header length");
}

TEST_F(SafeTensorsTest, ShorterThanEightBytes) {
  expectError(std::string("\x10\0\0\0\0", 5),
              "the file is 5 bytes, shorter than the 8-byte header length");
  expectError(std::string(7, '\0'), "the file is 7 bytes");
}

TEST_F(SafeTensorsTest, HeaderLengthPastEndOfFile) {
  expectError(rawFile("{}", "", 3),
              "header length 3 runs past the end of the file (10 bytes)");
  expectError(rawFile("{}", "", 1LL << 40),
              "header length 1099511627776 runs past the end");
  // All ones: 8 + length would wrap around in unsigned arithmetic.
  expectError(std::string(8, '\xff') + "{}",
              "header length 18446744073709551615 runs past");
}

TEST_F(SafeTensorsTest, BadJSON) {
  struct Case {
    std::string header, problem;
  };
  std::string good = "{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}";
  const Case cases[] = {
      {"", "expected '{' at the start of the header"},
      {"   ", "expected '{' at the start of the header"},
      {"[]", "expected '{' at the start of the header"},
      {"{", "expected a string"},
      {"{\"t\"", "expected ':' after key \"t\""},
      {"{\"t\":" + good, "expected ',' or '}' after the value of \"t\""},
      {"{\"t\":" + good + "}}", "unexpected characters after the closing '}'"},
      {"{\"t\":" + good + "} x", "unexpected characters after the closing '}'"},
      {"{\"t\":" + good + " \"u\":" + good + "}",
       "expected ',' or '}' after the value of \"t\""},
      {"{\"t\":" + good + ",}", "expected a string"},
      {"{\"t\":" + good + ",\"t\":" + good + "}", "key \"t\" appears twice"},
      {"{\"t\":1}", "tensor \"t\": expected an object"},
      {"{\"t\":{\"dtype\":\"F32\" \"shape\":[1]}}",
       "tensor \"t\": expected ',' or '}'"},
      {"{\"t\":{\"dtype\":\"F32\",\"shape\":[1 1],\"data_offsets\":[0,4]}}",
       "expected ',' or ']' in an array"},
      {"{\"t\":{\"dtype\":\"F32\",\"shape\":[1,],\"data_offsets\":[0,4]}}",
       "expected a non-negative integer"},
      {"{\"t\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,4]}}",
       "expected a non-negative integer"},
      {"{\"t\":{\"dtype\":\"F32\",\"shape\":[1.5],\"data_offsets\":[0,4]}}",
       "expected an integer, not a fraction"},
      {"{\"t\":{\"dtype\":\"F32\",\"shape\":[1e3],\"data_offsets\":[0,4]}}",
       "expected an integer, not a fraction"},
      {"{\"t\":{\"dtype\":\"F32\",\"shape\":1,\"data_offsets\":[0,4]}}",
       "expected '['"},
      {"{\"t\":{\"dtype\":F32,\"shape\":[1],\"data_offsets\":[0,4]}}",
       "expected a string"},
      {"{\"t\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4],\"x\":1}"
       "}",
       "tensor \"t\": unknown field \"x\""},
      {"{\"t\":{\"dtype\":\"F32\",\"dtype\":\"F32\",\"shape\":[1],\"data_"
       "offsets\":[0,4]}}",
       "tensor \"t\": field \"dtype\" appears twice"},
      {"{\"t\":{\"dtype\":\"F32\",\"shape\":[1]}}",
       "tensor \"t\": needs dtype, shape and data_offsets"},
      {"{\"t\":{}}", "tensor \"t\": needs dtype, shape and data_offsets"},
      {"{\"t\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4,8]}}",
       "tensor \"t\": data_offsets needs 2 numbers"},
      {"{\"t\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0]}}",
       "tensor \"t\": data_offsets needs 2 numbers"},
      {"{\"t", "unterminated string"},
      {"{\"t\\", "unterminated string"},
      {"{\"a\nb\":" + good + "}", "control character in a string"},
      {"{\"\\q\":" + good + "}", "unknown escape in a string"},
      {"{\"\\u12\"", "truncated \\u escape"},
      {"{\"\\u12zz\":" + good + "}", "bad hex digit in \\u escape"},
      {"{\"\\ud800\":" + good + "}", "unpaired surrogate"},
      {"{\"\\udc00\":" + good + "}", "unpaired surrogate"},
      {"{\"__metadata__\":[]}", "__metadata__ must be an object"},
      {"{\"__metadata__\":{\"k\":1}}",
       "__metadata__: value of \"k\" must be a string"},
      {"{\"__metadata__\":{\"k\":\"v\",\"k\":\"w\"}}",
       "__metadata__: key \"k\" appears twice"},
      {"{\"__metadata__\":{\"k\" \"v\"}}",
       "__metadata__: expected ':' after \"k\""},
      {"{\"__metadata__\":{\"k\":\"v\"", "__metadata__: expected ',' or '}'"},
      {"{\"t\":{\"dtype\":\"F32\",\"shape\":[99999999999999999999999],\"data_"
       "offsets\":[0,4]}}",
       "integer too large"},
      {std::string("{\"t\0\":1}", 8), "control character in a string"},
  };
  for (const Case &c : cases) {
    SCOPED_TRACE(c.header);
    expectError(rawFile(c.header, std::string(8, '\0')),
                "header: " + c.problem);
  }
}

TEST_F(SafeTensorsTest, ParseErrorsGiveTheHeaderPosition) {
  expectError(rawFile("{\"t\":[]}"),
              "tensor \"t\": expected an object (at header byte 5)");
}

TEST_F(SafeTensorsTest, UnknownDType) {
  for (std::string dt : {"F8_E4M3", "U16", "f32", ""}) {
    SCOPED_TRACE(dt);
    expectError(rawFile(oneTensor("{\"dtype\":\"" + dt +
                                  "\",\"shape\":[1],\"data_offsets\":[0,1]}"),
                        "x"),
                "tensor \"t\": unsupported dtype \"" + dt + "\"");
  }
}

TEST_F(SafeTensorsTest, OffsetsPastTheEnd) {
  expectError(
      rawFile(
          oneTensor("{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}"),
          std::string(7, '\0')),
      "tensor \"t\": data_offsets [0, 8) lie outside the 7 data bytes");
  expectError(
      rawFile(
          oneTensor("{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[9,9]}"),
          std::string(8, '\0')),
      "data_offsets [9, 9) lie outside the 8 data bytes");
  expectError(rawFile(oneTensor("{\"dtype\":\"U8\",\"shape\":[1],"
                                "\"data_offsets\":[18446744073709551615,0]}"),
                      std::string(8, '\0')),
              "lie outside the 8 data bytes");
  // begin > end
  expectError(
      rawFile(
          oneTensor("{\"dtype\":\"U8\",\"shape\":[0],\"data_offsets\":[4,2]}"),
          std::string(8, '\0')),
      "data_offsets [4, 2) lie outside");
}

TEST_F(SafeTensorsTest, OverlappingTensors) {
  std::string h =
      "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
      "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}";
  expectError(
      rawFile(h, std::string(12, '\0')),
      "tensors \"a\" and \"b\" overlap (data_offsets [0, 8) and [4, 12))");
  // Declared in the other order, and one nested inside the other.
  std::string h2 =
      "{\"big\":{\"dtype\":\"U8\",\"shape\":[16],\"data_offsets\":[0,16]},"
      "\"small\":{\"dtype\":\"I32\",\"shape\":[],\"data_offsets\":[8,12]},"
      "\"last\":{\"dtype\":\"U8\",\"shape\":[],\"data_offsets\":[16,17]}}";
  expectError(rawFile(h2, std::string(17, '\0')),
              "tensors \"big\" and \"small\" overlap");
  // Identical ranges.
  std::string h3 =
      "{\"x\":{\"dtype\":\"I64\",\"shape\":[],\"data_offsets\":[0,8]},"
      "\"y\":{\"dtype\":\"F64\",\"shape\":[],\"data_offsets\":[0,8]}}";
  expectError(rawFile(h3, std::string(8, '\0')), "overlap");
}

TEST_F(SafeTensorsTest, ShapeByteLengthMismatch) {
  expectError(
      rawFile(
          oneTensor(
              "{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[0,12]}"),
          std::string(16, '\0')),
      "tensor \"t\": shape 2x2 of f32 needs 16 bytes but data_offsets give 12");
  expectError(
      rawFile(
          oneTensor("{\"dtype\":\"BF16\",\"shape\":[],\"data_offsets\":[0,4]}"),
          std::string(4, '\0')),
      "shape scalar of bf16 needs 2 bytes but data_offsets give 4");
  expectError(
      rawFile(oneTensor(
                  "{\"dtype\":\"I64\",\"shape\":[3,0],\"data_offsets\":[0,8]}"),
              std::string(8, '\0')),
      "shape 3x0 of i64 needs 0 bytes but data_offsets give 8");
}

TEST_F(SafeTensorsTest, HugeDimensionsOverflow) {
  std::string data(16, '\0');
  // 2^32 * 2^32 elements: the byte count wraps in 64 bits.
  expectError(
      rawFile(oneTensor("{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296],"
                        "\"data_offsets\":[0,16]}"),
              data),
      "tensor \"t\": shape dimensions overflow");
  // Elements times 8 bytes wraps to exactly 16: must not be accepted.
  expectError(
      rawFile(oneTensor("{\"dtype\":\"F64\",\"shape\":[2305843009213693954],"
                        "\"data_offsets\":[0,16]}"),
              data),
      "shape dimensions overflow");
  // A dimension that does not fit int64 at all.
  expectError(
      rawFile(oneTensor("{\"dtype\":\"U8\",\"shape\":[18446744073709551615],"
                        "\"data_offsets\":[0,16]}"),
              data),
      "shape dimensions overflow");
  // Zero elements, but the other dimensions still overflow int64 when code
  // computes strides.
  expectError(
      rawFile(oneTensor("{\"dtype\":\"U8\",\"shape\":[0,9223372036854775808],"
                        "\"data_offsets\":[0,0]}"),
              data),
      "shape dimensions overflow");
  expectError(
      rawFile(
          oneTensor("{\"dtype\":\"F32\",\"shape\":[4294967296,0,4294967296],"
                    "\"data_offsets\":[0,0]}"),
          data),
      "shape dimensions overflow");
}

// Truncating or flipping bytes of a valid file anywhere must give a clean
// result (accepted or an error naming the file), never a crash.
TEST_F(SafeTensorsTest, CorruptedFilesNeverCrash) {
  std::string good = path("good.safetensors");
  std::string err;
  std::vector<std::pair<std::string, Tensor>> in;
  for (DType dt : kAllDTypes)
    in.push_back({std::string(dtypeName(dt)), patterned(dt, {2, 3})});
  ASSERT_TRUE(writeSafeTensors(good, in, {{"a", "b"}}, err)) << err;
  const std::string bytes = readFile(good);
  std::string p = path("fuzz.safetensors");
  std::mt19937 rng(1234);
  int rejected = 0;
  for (size_t cut = 0; cut < bytes.size(); cut += 7) {
    writeFile(p, bytes.substr(0, cut));
    SafeTensorsFile f;
    if (!readSafeTensors(p, f, err)) {
      ++rejected;
      EXPECT_NE(err.find(p), std::string::npos) << err;
    }
  }
  EXPECT_GT(rejected, 0);
  for (int iter = 0; iter < 3000; ++iter) {
    std::string mutated = bytes;
    int flips = 1 + (int)(rng() % 4);
    for (int k = 0; k < flips; ++k) {
      size_t pos = rng() % std::min<size_t>(mutated.size(), 8 + 700);
      mutated[pos] = (char)(rng() % 256);
    }
    writeFile(p, mutated);
    SafeTensorsFile f;
    err.clear();
    if (readSafeTensors(p, f, err)) {
      for (auto &[name, t] : f.tensors)
        for (int64_t i = 0; i < t.numel(); ++i)
          (void)t.getDouble(i);
    } else {
      EXPECT_NE(err.find(p), std::string::npos) << err;
    }
  }
}
