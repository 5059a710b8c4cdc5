//===- YamlTree.cpp - A YAML document as a plain tree ---------------------===//
#include "frontends/spec/YamlTree.h"

#include "llvm/ADT/SmallString.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/SourceMgr.h"
#include "llvm/Support/YAMLParser.h"
#include "llvm/Support/raw_ostream.h"

using namespace llvm;

namespace peft::spec {

bool YamlNode::isNull() const {
  if (kind == Kind::Null)
    return true;
  if (kind != Kind::Scalar || quoted)
    return false;
  return scalar == "null" || scalar == "Null" || scalar == "NULL" ||
         scalar == "~";
}

std::string YamlNode::describe() const {
  if (isNull())
    return "null";
  switch (kind) {
  case Kind::Mapping:
    return "a mapping";
  case Kind::Sequence:
    return "a list";
  default:
    break;
  }
  if (quoted)
    return "the string \"" + scalar + "\"";
  return "'" + scalar + "'";
}

namespace {

/// Nesting beyond this is no spec; the limit keeps hostile input from
/// exhausting the stack.
constexpr unsigned kMaxDepth = 64;

class TreeBuilder {
public:
  TreeBuilder(SourceMgr &sourceMgr, StringRef bufferName)
      : sourceMgr(sourceMgr), bufferName(bufferName) {}

  SourceLoc locOf(SMLoc loc) const {
    SourceLoc result;
    result.file = bufferName.str();
    if (!loc.isValid())
      return result;
    auto [line, column] = sourceMgr.getLineAndColumn(loc);
    result.line = line;
    result.column = column;
    return result;
  }

  /// LLVM places a flow collection at its first element and a block
  /// sequence at its first item; errors about the whole value read better
  /// at the '[', '{' or '-' that opens it.
  SMLoc openingBracket(SMLoc loc, StringRef openers) const {
    StringRef before = textBefore(loc);
    if (!before.empty() && openers.contains(before.back()))
      return SMLoc::getFromPointer(before.end() - 1);
    return loc;
  }

  /// The buffer up to `loc`, trailing whitespace dropped.
  StringRef textBefore(SMLoc loc) const {
    if (!loc.isValid())
      return {};
    unsigned id = sourceMgr.FindBufferContainingLoc(loc);
    if (id == 0)
      return {};
    const char *begin = sourceMgr.getMemoryBuffer(id)->getBufferStart();
    return StringRef(begin, loc.getPointer() - begin).rtrim(" \t\r\n");
  }

  void fail(const SourceLoc &loc, const Twine &message) {
    if (!error.empty())
      return;
    error = loc.str() + ": error: " + message.str();
  }

  /// Copies `node` into a tree node; `fallback` is used where the node has no
  /// position of its own (an empty value).
  std::unique_ptr<YamlNode> build(yaml::Node *node, const SourceLoc &fallback,
                                  unsigned depth) {
    auto result = std::make_unique<YamlNode>();
    result->loc = fallback;
    if (!node)
      return result;
    SMLoc start = node->getSourceRange().Start;
    if (isa<yaml::SequenceNode>(node))
      start = openingBracket(start, "[-");
    else if (isa<yaml::MappingNode>(node))
      start = openingBracket(start, "{");
    SourceLoc loc = locOf(start);
    if (loc.isValid())
      result->loc = loc;
    if (depth > kMaxDepth) {
      fail(result->loc,
           "the spec nests deeper than " + Twine(kMaxDepth) + " levels");
      return result;
    }
    if (auto *scalar = dyn_cast<yaml::ScalarNode>(node)) {
      SmallString<64> storage;
      result->kind = YamlNode::Kind::Scalar;
      result->scalar = scalar->getValue(storage).str();
      StringRef raw = scalar->getRawValue();
      result->quoted = raw.starts_with("\"") || raw.starts_with("'") ||
                       node->getRawTag() == "!!str";
      return result;
    }
    if (auto *block = dyn_cast<yaml::BlockScalarNode>(node)) {
      result->kind = YamlNode::Kind::Scalar;
      result->scalar = block->getValue().str();
      result->quoted = true;
      return result;
    }
    if (auto *sequence = dyn_cast<yaml::SequenceNode>(node)) {
      result->kind = YamlNode::Kind::Sequence;
      for (yaml::Node &item : *sequence) {
        result->items.push_back(build(&item, result->loc, depth + 1));
        if (!error.empty())
          return result;
      }
      return result;
    }
    if (auto *mapping = dyn_cast<yaml::MappingNode>(node)) {
      result->kind = YamlNode::Kind::Mapping;
      for (yaml::KeyValueNode &entry : *mapping) {
        yaml::Node *keyNode = entry.getKey();
        SourceLoc keyLoc =
            keyNode ? locOf(keyNode->getSourceRange().Start) : result->loc;
        if (!keyLoc.isValid())
          keyLoc = result->loc;
        auto *keyScalar = dyn_cast_or_null<yaml::ScalarNode>(keyNode);
        if (!keyScalar) {
          fail(keyLoc, "a mapping key must be a plain string");
          return result;
        }
        SmallString<64> storage;
        std::string key = keyScalar->getValue(storage).str();
        for (const YamlEntry &seen : result->entries)
          if (seen.key == key) {
            fail(keyLoc, "duplicate key '" + key + "' (first given at " +
                             Twine(seen.keyLoc.line) + ":" +
                             Twine(seen.keyLoc.column) + ")");
            return result;
          }
        YamlEntry copied;
        copied.key = std::move(key);
        copied.keyLoc = keyLoc;
        copied.value = build(entry.getValue(), keyLoc, depth + 1);
        result->entries.push_back(std::move(copied));
        if (!error.empty())
          return result;
      }
      return result;
    }
    if (auto *alias = dyn_cast<yaml::AliasNode>(node)) {
      // LLVM places an alias after its token; point at the '*name'.
      StringRef before = textBefore(start);
      std::string token = ("*" + alias->getName()).str();
      if (before.ends_with(token))
        result->loc = locOf(SMLoc::getFromPointer(before.end() - token.size()));
      fail(result->loc, "YAML aliases (*name) are not supported in a spec; "
                        "write the value out");
      return result;
    }
    // yaml::NullNode: an empty value.
    return result;
  }

  SourceMgr &sourceMgr;
  StringRef bufferName;
  std::string error;
};

} // namespace

bool parseYamlTree(StringRef text, StringRef bufferName,
                   std::unique_ptr<YamlNode> &root, std::string &error) {
  SourceMgr sourceMgr;
  std::string syntaxError;
  // LLVM reports syntax errors through the SourceMgr; keep the first one in
  // the file:line:col form the rest of the spec errors use.
  sourceMgr.setDiagHandler(
      [](const SMDiagnostic &diag, void *context) {
        auto *message = static_cast<std::string *>(context);
        if (!message->empty())
          return;
        *message = (diag.getFilename() + ":" + Twine(diag.getLineNo()) + ":" +
                    Twine(diag.getColumnNo() + 1) +
                    ": error: invalid YAML: " + diag.getMessage())
                       .str();
      },
      &syntaxError);

  yaml::Stream stream(MemoryBufferRef(text, bufferName), sourceMgr,
                      /*ShowColors=*/false);
  TreeBuilder builder(sourceMgr, bufferName);
  SourceLoc start;
  start.file = bufferName.str();
  start.line = 1;
  start.column = 1;

  yaml::document_iterator doc = stream.begin();
  if (doc == stream.end()) {
    root = std::make_unique<YamlNode>();
    root->loc = start;
  } else {
    root = builder.build(doc->getRoot(), start, 0);
    // An empty document ends where the file ends; the file's start is the
    // better place to say it is empty.
    if (root->kind == YamlNode::Kind::Null)
      root->loc = start;
    if (builder.error.empty() && syntaxError.empty()) {
      ++doc;
      if (doc != stream.end() && syntaxError.empty()) {
        yaml::Node *second = doc->getRoot();
        SourceLoc loc =
            second ? builder.locOf(second->getSourceRange().Start) : start;
        builder.fail(loc, "a spec is one YAML document; found a second one");
      }
    }
  }
  if (!syntaxError.empty()) {
    error = syntaxError;
    return false;
  }
  if (!builder.error.empty()) {
    error = builder.error;
    return false;
  }
  return true;
}

} // namespace peft::spec
