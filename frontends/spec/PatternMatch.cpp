//===- PatternMatch.cpp - PEFT's module-path matching rules ---------------===//
#include "frontends/spec/PatternMatch.h"

#include "llvm/ADT/ArrayRef.h"

using namespace llvm;

namespace peft::spec {

bool PathRegex::compile(StringRef pattern, std::string &why) {
  // Python syntax ECMAScript lacks or reads differently; refusing it is
  // better than matching other modules than PEFT would.
  static const StringRef pythonOnly[] = {"(?P", "(?<", "(?i", "(?a",
                                         "(?L", "(?m", "(?s", "(?u",
                                         "(?x", "(?#", "\\A", "\\Z"};
  for (StringRef construct : pythonOnly)
    if (pattern.contains(construct)) {
      why = "'" + construct.str() +
            "' is Python regex syntax peftc does not support (named groups, "
            "lookbehind, inline flags and \\A/\\Z are not available)";
      return false;
    }
  try {
    regex = std::regex(pattern.str(), std::regex::ECMAScript);
  } catch (const std::regex_error &e) {
    why = e.what();
    return false;
  }
  source = pattern.str();
  return true;
}

bool PathRegex::fullMatch(StringRef text) const {
  return std::regex_match(text.begin(), text.end(), regex);
}

bool PathRegex::matchPrefix(StringRef text, std::string *firstGroup) const {
  std::match_results<StringRef::iterator> match;
  if (!std::regex_search(text.begin(), text.end(), match, regex,
                         std::regex_constants::match_continuous))
    return false;
  if (firstGroup && match.size() > 1)
    *firstGroup = match[1].str();
  return true;
}

bool PathRegex::search(StringRef text) const {
  return std::regex_search(text.begin(), text.end(), regex);
}

bool isValidPathRegex(StringRef pattern, std::string &why) {
  PathRegex regex;
  return regex.compile(pattern, why);
}

std::string escapeRegex(StringRef text) {
  std::string result;
  for (char c : text) {
    if (StringRef("\\^$.|?*+()[]{}").contains(c))
      result.push_back('\\');
    result.push_back(c);
  }
  return result;
}

} // namespace peft::spec
