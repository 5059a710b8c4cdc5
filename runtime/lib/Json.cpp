#include "Json.h"
#include "JsonLexer.h"

#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <set>

namespace peft::rt::json {
namespace {

/// Nesting limit: data lines and trainer state are shallow; the limit keeps
/// a hostile file from exhausting the stack.
constexpr int kMaxDepth = 64;

class Parser : public Lexer {
public:
  explicit Parser(const std::string &text)
      : Lexer(text.data(), text.size(), "byte") {}

  bool document(Value &out) {
    skipWs();
    if (!value(out, 0))
      return false;
    skipWs();
    if (p_ != end_)
      return fail("unexpected characters after the JSON value");
    return true;
  }

private:
  bool literal(const char *word) {
    const char *q = p_;
    for (const char *w = word; *w; ++w, ++q)
      if (q >= end_ || *q != *w)
        return fail(std::string("invalid literal (expected '") + word + "')");
    p_ = q;
    return true;
  }

  bool value(Value &out, int depth) {
    if (depth > kMaxDepth)
      return fail("nesting deeper than " + std::to_string(kMaxDepth));
    if (p_ >= end_)
      return fail("unexpected end of input");
    switch (*p_) {
    case '{':
      return object(out, depth);
    case '[':
      return array(out, depth);
    case '"':
      out.kind = Value::Kind::String;
      return string(out.string);
    case 't':
      out.kind = Value::Kind::Bool;
      out.boolean = true;
      return literal("true");
    case 'f':
      out.kind = Value::Kind::Bool;
      out.boolean = false;
      return literal("false");
    case 'n':
      out.kind = Value::Kind::Null;
      return literal("null");
    default:
      return numberValue(out);
    }
  }

  bool object(Value &out, int depth) {
    out.kind = Value::Kind::Object;
    ++p_;
    skipWs();
    if (eat('}'))
      return true;
    std::set<std::string> seen;
    while (true) {
      std::string key;
      skipWs();
      if (!string(key))
        return false;
      if (!seen.insert(key).second)
        return fail("key \"" + key + "\" appears twice");
      skipWs();
      if (!eat(':'))
        return fail("expected ':' after key \"" + key + "\"");
      skipWs();
      Value v;
      if (!value(v, depth + 1))
        return false;
      out.object.emplace_back(std::move(key), std::move(v));
      skipWs();
      if (eat('}'))
        return true;
      if (!eat(','))
        return fail("expected ',' or '}' in an object");
    }
  }

  bool array(Value &out, int depth) {
    out.kind = Value::Kind::Array;
    ++p_;
    skipWs();
    if (eat(']'))
      return true;
    while (true) {
      skipWs();
      Value v;
      if (!value(v, depth + 1))
        return false;
      out.array.push_back(std::move(v));
      skipWs();
      if (eat(']'))
        return true;
      if (!eat(','))
        return fail("expected ',' or ']' in an array");
    }
  }

  bool numberValue(Value &out) {
    const char *start = p_;
    eat('-');
    if (p_ >= end_ || *p_ < '0' || *p_ > '9')
      return fail("expected a value");
    if (*p_ == '0' && p_ + 1 < end_ && p_[1] >= '0' && p_[1] <= '9')
      return fail("leading zeros are not allowed in numbers");
    while (p_ < end_ && *p_ >= '0' && *p_ <= '9')
      ++p_;
    bool integral = true;
    if (eat('.')) {
      integral = false;
      if (p_ >= end_ || *p_ < '0' || *p_ > '9')
        return fail("expected digits after '.'");
      while (p_ < end_ && *p_ >= '0' && *p_ <= '9')
        ++p_;
    }
    if (p_ < end_ && (*p_ == 'e' || *p_ == 'E')) {
      integral = false;
      ++p_;
      if (!eat('+'))
        eat('-');
      if (p_ >= end_ || *p_ < '0' || *p_ > '9')
        return fail("expected digits in the exponent");
      while (p_ < end_ && *p_ >= '0' && *p_ <= '9')
        ++p_;
    }
    std::string text(start, p_);
    errno = 0;
    if (integral) {
      long long v = std::strtoll(text.c_str(), nullptr, 10);
      if (errno == ERANGE)
        return fail("integer " + text + " does not fit in 64 bits");
      out.kind = Value::Kind::Int;
      out.integer = (int64_t)v;
      out.number = (double)v;
      return true;
    }
    out.kind = Value::Kind::Double;
    out.number = std::strtod(text.c_str(), nullptr);
    return true;
  }
};

} // namespace

const Value *Value::get(const std::string &key) const {
  if (kind != Kind::Object)
    return nullptr;
  for (auto &kv : object)
    if (kv.first == key)
      return &kv.second;
  return nullptr;
}

bool parse(const std::string &text, Value &out, std::string &error) {
  Parser parser(text);
  Value v;
  if (!parser.document(v)) {
    error = parser.error;
    return false;
  }
  out = std::move(v);
  return true;
}

std::string quote(const std::string &s) {
  static const char hex[] = "0123456789abcdef";
  std::string o = "\"";
  for (char ch : s) {
    unsigned char c = (unsigned char)ch;
    if (c == '"' || c == '\\') {
      o += '\\';
      o += ch;
    } else if (c == '\n') {
      o += "\\n";
    } else if (c == '\t') {
      o += "\\t";
    } else if (c == '\r') {
      o += "\\r";
    } else if (c < 0x20) {
      o += "\\u00";
      o += hex[c >> 4];
      o += hex[c & 0xf];
    } else {
      o += ch;
    }
  }
  return o + "\"";
}

std::string number(double v) {
  if (!std::isfinite(v))
    return "null";
  char buf[40];
  for (int precision = 1; precision <= 17; ++precision) {
    std::snprintf(buf, sizeof buf, "%.*g", precision, v);
    if (std::strtod(buf, nullptr) == v)
      break;
  }
  return buf;
}

} // namespace peft::rt::json
