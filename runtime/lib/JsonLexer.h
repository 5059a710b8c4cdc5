// The lexical layer both JSON readers of the runtime share: the general
// reader (Json.h: spec_json, JSONL data, trainer state) and the strict
// safetensors header parser (SafeTensors.cpp), which walks its fixed schema
// directly so it can reject a bad header without building a tree. Nothing
// here trusts the input: every read is bounds-checked.
#pragma once

#include <cstdint>
#include <string>

namespace peft::rt::json {

class Lexer {
public:
  /// The first error, with " (at <where> N)" giving its byte offset.
  std::string error;

protected:
  Lexer(const char *p, size_t n, const char *where)
      : begin_(p), p_(p), end_(p + n), where_(where) {}

  bool fail(const std::string &msg) {
    if (error.empty())
      error = msg + " (at " + where_ + " " + std::to_string(p_ - begin_) + ")";
    return false;
  }
  void skipWs() {
    while (p_ < end_ &&
           (*p_ == ' ' || *p_ == '\n' || *p_ == '\t' || *p_ == '\r'))
      ++p_;
  }
  bool eat(char c) {
    if (p_ < end_ && *p_ == c) {
      ++p_;
      return true;
    }
    return false;
  }
  /// A string literal: escapes decoded, \u escapes (surrogate pairs
  /// included) as UTF-8; raw control characters are an error.
  bool string(std::string &s) {
    if (!eat('"'))
      return fail("expected a string");
    while (p_ < end_ && *p_ != '"') {
      unsigned char c = (unsigned char)*p_++;
      if (c < 0x20)
        return fail("control character in a string");
      if (c != '\\') {
        s += (char)c;
        continue;
      }
      if (p_ >= end_)
        break;
      char e = *p_++;
      switch (e) {
      case '"':
      case '\\':
      case '/':
        s += e;
        break;
      case 'b':
        s += '\b';
        break;
      case 'f':
        s += '\f';
        break;
      case 'n':
        s += '\n';
        break;
      case 'r':
        s += '\r';
        break;
      case 't':
        s += '\t';
        break;
      case 'u': {
        uint32_t cp;
        if (!hex4(cp))
          return false;
        if (cp >= 0xd800 && cp < 0xdc00) { // high surrogate: needs its pair
          uint32_t lo;
          if (!eat('\\') || !eat('u') || !hex4(lo) || lo < 0xdc00 ||
              lo >= 0xe000)
            return fail("unpaired surrogate in \\u escape");
          cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
        } else if (cp >= 0xdc00 && cp < 0xe000) {
          return fail("unpaired surrogate in \\u escape");
        }
        appendUtf8(s, cp);
        break;
      }
      default:
        --p_;
        return fail("unknown escape in a string");
      }
    }
    if (!eat('"'))
      return fail("unterminated string");
    return true;
  }

  const char *begin_;
  const char *p_;
  const char *end_;

private:
  bool hex4(uint32_t &v) {
    if (end_ - p_ < 4)
      return fail("truncated \\u escape");
    v = 0;
    for (int i = 0; i < 4; ++i) {
      char c = *p_++;
      v <<= 4;
      if (c >= '0' && c <= '9')
        v |= (uint32_t)(c - '0');
      else if (c >= 'a' && c <= 'f')
        v |= (uint32_t)(c - 'a' + 10);
      else if (c >= 'A' && c <= 'F')
        v |= (uint32_t)(c - 'A' + 10);
      else
        return fail("bad hex digit in \\u escape");
    }
    return true;
  }
  static void appendUtf8(std::string &s, uint32_t cp) {
    if (cp < 0x80) {
      s += (char)cp;
    } else if (cp < 0x800) {
      s += (char)(0xc0 | (cp >> 6));
      s += (char)(0x80 | (cp & 0x3f));
    } else if (cp < 0x10000) {
      s += (char)(0xe0 | (cp >> 12));
      s += (char)(0x80 | ((cp >> 6) & 0x3f));
      s += (char)(0x80 | (cp & 0x3f));
    } else {
      s += (char)(0xf0 | (cp >> 18));
      s += (char)(0x80 | ((cp >> 12) & 0x3f));
      s += (char)(0x80 | ((cp >> 6) & 0x3f));
      s += (char)(0x80 | (cp & 0x3f));
    }
  }

  const char *where_;
};

} // namespace peft::rt::json
