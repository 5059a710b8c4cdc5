// A small strict JSON reader and string quoting for the trainer: spec_json,
// JSONL data lines and trainer_state.json. Integers keep full int64
// precision (token ids, steps), which a double-only reader would lose.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace peft::rt::json {

struct Value {
  enum class Kind { Null, Bool, Int, Double, String, Array, Object };
  Kind kind = Kind::Null;
  bool boolean = false;
  int64_t integer = 0;
  double number = 0; // Int values also fill this
  std::string string;
  std::vector<Value> array;
  /// Object members in file order (duplicates are rejected by the parser).
  std::vector<std::pair<std::string, Value>> object;

  bool isNull() const { return kind == Kind::Null; }
  bool isInt() const { return kind == Kind::Int; }
  bool isNumber() const { return kind == Kind::Int || kind == Kind::Double; }
  /// The member `key` of an object, or null when absent / not an object.
  const Value *get(const std::string &key) const;
};

/// Parses one JSON document (surrounding whitespace allowed). On failure
/// returns false and sets `error` to a message with the byte offset.
bool parse(const std::string &text, Value &out, std::string &error);

/// `s` as a JSON string literal, quotes included.
std::string quote(const std::string &s);
/// A double as JSON: shortest text that reads back to the same value
/// (17 significant digits at most); NaN/Inf, which JSON lacks, as null.
std::string number(double v);

} // namespace peft::rt::json
