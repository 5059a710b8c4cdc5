//===- PatternMatch.h - PEFT's module-path matching rules -------*- C++ -*-===//
//
// PEFT matches module paths with Python's `re`. peftc uses std::regex in its
// ECMAScript grammar, which agrees with Python for what target patterns use
// (., *, +, ?, {m,n}, |, groups, (?:...), classes, \d \w \s, lazy
// quantifiers, lookahead). Python-only syntax is rejected with a message
// rather than misread.
//
//===----------------------------------------------------------------------===//
#pragma once

#include "llvm/ADT/StringRef.h"

#include <regex>
#include <string>

namespace peft::spec {

class PathRegex {
public:
  /// Compiles `pattern`; on failure returns false and says why.
  bool compile(llvm::StringRef pattern, std::string &why);

  /// Python's re.fullmatch(pattern, text).
  bool fullMatch(llvm::StringRef text) const;
  /// Python's re.match(pattern, text): anchored at the start only. Fills
  /// `firstGroup` with group 1 when the pattern has one.
  bool matchPrefix(llvm::StringRef text,
                   std::string *firstGroup = nullptr) const;
  /// Python's re.search(pattern, text).
  bool search(llvm::StringRef text) const;

  const std::string &pattern() const { return source; }

private:
  std::string source;
  std::regex regex;
};

/// Checks that `pattern` compiles; `why` says what is wrong otherwise.
bool isValidPathRegex(llvm::StringRef pattern, std::string &why);

/// Python's re.escape for the characters that matter in module paths.
std::string escapeRegex(llvm::StringRef text);

} // namespace peft::spec
