// The trainer's JSON reader (spec_json, JSONL lines, trainer_state.json):
// exact 64-bit integers, strictness, and the writer helpers.
#include "Json.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>

using namespace peft::rt;

namespace {

json::Value parseOk(const std::string &text) {
  json::Value v;
  std::string error;
  EXPECT_TRUE(json::parse(text, v, error)) << text << ": " << error;
  return v;
}

std::string parseError(const std::string &text) {
  json::Value v;
  std::string error;
  EXPECT_FALSE(json::parse(text, v, error)) << text;
  return error;
}

TEST(JsonTest, IntegersKeepAll64Bits) {
  json::Value v = parseOk("[9223372036854775807, -9223372036854775808, "
                          "9007199254740993, -0, 1.5, 2e3]");
  ASSERT_EQ(v.array.size(), 6u);
  EXPECT_EQ(v.array[0].integer, std::numeric_limits<int64_t>::max());
  EXPECT_EQ(v.array[1].integer, std::numeric_limits<int64_t>::min());
  EXPECT_EQ(v.array[2].integer, 9007199254740993LL); // not a double
  EXPECT_TRUE(v.array[3].isInt());
  EXPECT_EQ(v.array[4].kind, json::Value::Kind::Double);
  EXPECT_EQ(v.array[4].number, 1.5);
  EXPECT_FALSE(v.array[5].isInt()); // an exponent makes a double
  EXPECT_EQ(v.array[5].number, 2000.0);
  EXPECT_NE(parseError("9223372036854775808").find("does not fit in 64 bits"),
            std::string::npos);
}

TEST(JsonTest, ObjectsStringsAndLiterals) {
  json::Value v = parseOk(
      " {\"a\": {\"b\": [true, false, null]}, \"s\": \"x\\\"\\\\\\n\\u00e9"
      "\\ud83d\\ude00\"} ");
  const json::Value *b = v.get("a") ? v.get("a")->get("b") : nullptr;
  ASSERT_TRUE(b);
  EXPECT_TRUE(b->array[0].boolean);
  EXPECT_FALSE(b->array[1].boolean);
  EXPECT_TRUE(b->array[2].isNull());
  EXPECT_EQ(v.get("s")->string, "x\"\\\n\xc3\xa9\xf0\x9f\x98\x80");
  EXPECT_EQ(v.get("missing"), nullptr);
  EXPECT_EQ(v.get("s")->get("x"), nullptr); // not an object
}

TEST(JsonTest, RejectsWhatJsonDoesNotAllow) {
  struct Case {
    const char *text, *problem;
  } cases[] = {
      {"{\"a\": 1, \"a\": 2}", "key \"a\" appears twice"},
      {"[1, 2] x", "unexpected characters after the JSON value"},
      {"[1, 2,]", "expected a value"},
      {"{\"a\" 1}", "expected ':'"},
      {"01", "leading zeros"},
      {"1.", "expected digits after '.'"},
      {"\"abc", "unterminated string"},
      {"\"\\ud800\"", "unpaired surrogate"},
      {"\"a\tb\"", "control character"},
      {"tru", "invalid literal"},
      {"", "unexpected end of input"},
      {"{'a': 1}", "expected a string"},
  };
  for (const Case &c : cases)
    EXPECT_NE(parseError(c.text).find(c.problem), std::string::npos)
        << c.text << " -> " << parseError(c.text);
  std::string deep(100, '[');
  EXPECT_NE(parseError(deep).find("nesting deeper than 64"), std::string::npos);
}

TEST(JsonTest, NumberAndQuote) {
  EXPECT_EQ(json::number(0.1), "0.1");
  EXPECT_EQ(json::number(1.0 / 3.0), "0.3333333333333333");
  EXPECT_EQ(json::number(6.407633304595947), "6.407633304595947");
  EXPECT_EQ(json::number(-2.5e-300), "-2.5e-300");
  EXPECT_EQ(json::number(std::nan("")), "null");
  EXPECT_EQ(json::number(INFINITY), "null");
  EXPECT_EQ(json::quote("a\"b\\c\n\x01"), "\"a\\\"b\\\\c\\n\\u0001\"");
  // What quote writes, parse reads back.
  std::string s = "tab\there \"q\" \x1f end";
  EXPECT_EQ(parseOk(json::quote(s)).string, s);
}

} // namespace
