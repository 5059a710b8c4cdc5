//===- YamlTree.h - A YAML document as a plain tree -------------*- C++ -*-===//
//
// LLVM's YAML parser hands out nodes that can be walked once only. The spec
// reader looks keys up, checks for duplicates and reports errors against any
// node, so the document is first copied into this tree, each node keeping its
// line and column.
//
//===----------------------------------------------------------------------===//
#pragma once

#include "frontends/spec/PeftSpec.h"

#include "llvm/ADT/StringRef.h"

#include <memory>
#include <string>
#include <vector>

namespace peft::spec {

struct YamlNode;

struct YamlEntry {
  std::string key;
  SourceLoc keyLoc;
  std::unique_ptr<YamlNode> value;
};

struct YamlNode {
  enum class Kind { Null, Scalar, Sequence, Mapping };
  Kind kind = Kind::Null;
  /// Scalar text with escapes resolved; `quoted` tells "8" from 8 and
  /// "null" from null.
  std::string scalar;
  bool quoted = false;
  std::vector<std::unique_ptr<YamlNode>> items; // Sequence
  std::vector<YamlEntry> entries;               // Mapping, in file order
  SourceLoc loc;

  bool isNull() const;
  bool isScalar() const { return kind == Kind::Scalar; }
  bool isSequence() const { return kind == Kind::Sequence; }
  bool isMapping() const { return kind == Kind::Mapping; }
  /// "a mapping", "a list", "the number 3", "the string \"x\"", "null".
  std::string describe() const;
};

/// Parses `text` (one YAML document) into `root`. YAML syntax errors,
/// aliases, several documents and duplicate keys fail with
/// "name:line:col: error: ..." in `error`.
bool parseYamlTree(llvm::StringRef text, llvm::StringRef bufferName,
                   std::unique_ptr<YamlNode> &root, std::string &error);

} // namespace peft::spec
