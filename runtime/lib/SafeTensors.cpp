#include "peft/SafeTensors.h"
#include "peft/AtomicFile.h"

#include "Json.h"
#include "JsonLexer.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <limits>
#include <set>
#include <unistd.h>

namespace peft {
namespace {

/// One tensor entry of the header before it is checked against the data.
struct HeaderEntry {
  std::string name;
  DType dtype;
  std::vector<uint64_t> dims;
  uint64_t begin, end;
};

/// Strict parser for the JSON subset a safetensors header uses: one object
/// whose values are tensor descriptions ({"dtype", "shape", "data_offsets"})
/// or, under "__metadata__", an object of strings. Anything else is an error;
/// nothing here trusts the input (every read is bounds-checked).
class HeaderParser : public rt::json::Lexer {
public:
  HeaderParser(const char *p, size_t n) : Lexer(p, n, "header byte") {}

  bool parse(std::vector<HeaderEntry> &entries,
             std::map<std::string, std::string> &metadata) {
    std::set<std::string> seen;
    skipWs();
    if (!eat('{'))
      return fail("expected '{' at the start of the header");
    skipWs();
    if (!eat('}')) {
      while (true) {
        std::string key;
        if (!string(key))
          return false;
        if (!seen.insert(key).second)
          return fail("key \"" + key + "\" appears twice");
        skipWs();
        if (!eat(':'))
          return fail("expected ':' after key \"" + key + "\"");
        skipWs();
        if (key == "__metadata__") {
          if (!parseMetadata(metadata))
            return false;
        } else {
          HeaderEntry e;
          e.name = key;
          if (!parseTensor(e))
            return false;
          entries.push_back(std::move(e));
        }
        skipWs();
        if (eat('}'))
          break;
        if (!eat(','))
          return fail("expected ',' or '}' after the value of \"" + key + "\"");
        skipWs();
      }
    }
    // The format allows only space padding after the object.
    skipWs();
    if (p_ != end_)
      return fail("unexpected characters after the closing '}'");
    return true;
  }

private:
  bool parseUInt(uint64_t &x) {
    if (p_ >= end_ || *p_ < '0' || *p_ > '9')
      return fail("expected a non-negative integer");
    x = 0;
    while (p_ < end_ && *p_ >= '0' && *p_ <= '9') {
      uint64_t digit = (uint64_t)(*p_ - '0');
      if (x > (std::numeric_limits<uint64_t>::max() - digit) / 10)
        return fail("integer too large");
      x = x * 10 + digit;
      ++p_;
    }
    if (p_ < end_ && (*p_ == '.' || *p_ == 'e' || *p_ == 'E'))
      return fail("expected an integer, not a fraction");
    return true;
  }
  bool parseIntArray(std::vector<uint64_t> &v) {
    if (!eat('['))
      return fail("expected '['");
    skipWs();
    if (eat(']'))
      return true;
    while (true) {
      uint64_t x;
      if (!parseUInt(x))
        return false;
      v.push_back(x);
      skipWs();
      if (eat(']'))
        return true;
      if (!eat(','))
        return fail("expected ',' or ']' in an array");
      skipWs();
    }
  }
  bool parseTensor(HeaderEntry &e) {
    const std::string where = "tensor \"" + e.name + "\": ";
    if (!eat('{'))
      return fail(where + "expected an object");
    std::string dtype;
    std::vector<uint64_t> offsets;
    bool haveDtype = false, haveShape = false, haveOffsets = false;
    skipWs();
    if (!eat('}')) {
      while (true) {
        std::string field;
        if (!string(field))
          return false;
        skipWs();
        if (!eat(':'))
          return fail(where + "expected ':' after \"" + field + "\"");
        skipWs();
        bool dup = false;
        if (field == "dtype") {
          dup = haveDtype;
          haveDtype = true;
          if (!string(dtype))
            return false;
        } else if (field == "shape") {
          dup = haveShape;
          haveShape = true;
          if (!parseIntArray(e.dims))
            return false;
        } else if (field == "data_offsets") {
          dup = haveOffsets;
          haveOffsets = true;
          if (!parseIntArray(offsets))
            return false;
          if (offsets.size() != 2)
            return fail(where + "data_offsets needs 2 numbers");
        } else {
          return fail(where + "unknown field \"" + field + "\"");
        }
        if (dup)
          return fail(where + "field \"" + field + "\" appears twice");
        skipWs();
        if (eat('}'))
          break;
        if (!eat(','))
          return fail(where + "expected ',' or '}'");
        skipWs();
      }
    }
    if (!haveDtype || !haveShape || !haveOffsets)
      return fail(where + "needs dtype, shape and data_offsets");
    auto dt = dtypeFromSafetensorsName(dtype);
    if (!dt)
      return fail(where + "unsupported dtype \"" + dtype + "\"");
    e.dtype = *dt;
    e.begin = offsets[0];
    e.end = offsets[1];
    return true;
  }
  bool parseMetadata(std::map<std::string, std::string> &m) {
    if (!eat('{'))
      return fail("__metadata__ must be an object");
    skipWs();
    if (eat('}'))
      return true;
    while (true) {
      std::string k, v;
      if (!string(k))
        return false;
      skipWs();
      if (!eat(':'))
        return fail("__metadata__: expected ':' after \"" + k + "\"");
      skipWs();
      if (p_ < end_ && *p_ != '"')
        return fail("__metadata__: value of \"" + k + "\" must be a string");
      if (!string(v))
        return false;
      if (!m.emplace(k, v).second)
        return fail("__metadata__: key \"" + k + "\" appears twice");
      skipWs();
      if (eat('}'))
        return true;
      if (!eat(','))
        return fail("__metadata__: expected ',' or '}'");
      skipWs();
    }
  }
};

} // namespace

const Tensor *SafeTensorsFile::find(const std::string &name) const {
  for (auto &kv : tensors)
    if (kv.first == name)
      return &kv.second;
  return nullptr;
}

bool readSafeTensors(const std::string &path, SafeTensorsFile &out,
                     std::string &error) {
  std::string mapErr;
  auto file = MappedFile::open(path, mapErr);
  if (!file) {
    error = mapErr;
    return false;
  }
  auto bad = [&](const std::string &msg) {
    error = path + ": not a valid safetensors file: " + msg;
    return false;
  };
  if (file->size() < 8)
    return bad("the file is " + std::to_string(file->size()) +
               " bytes, shorter than the 8-byte header length");
  uint64_t headerLen = 0;
  for (int i = 7; i >= 0; --i) // little-endian, whatever the host
    headerLen = (headerLen << 8) | file->data()[i];
  if (headerLen > file->size() - 8)
    return bad("header length " + std::to_string(headerLen) +
               " runs past the end of the file (" +
               std::to_string(file->size()) +
               " bytes); the file is truncated or corrupt");
  HeaderParser parser(reinterpret_cast<const char *>(file->data() + 8),
                      headerLen);
  std::vector<HeaderEntry> entries;
  SafeTensorsFile result;
  if (!parser.parse(entries, result.metadata))
    return bad("header: " + parser.error);

  const uint8_t *base = file->data() + 8 + headerLen;
  uint64_t dataSize = file->size() - 8 - headerLen;
  struct Range {
    uint64_t begin, end;
    const std::string *name;
  };
  std::vector<Range> ranges;
  for (const HeaderEntry &e : entries) {
    const std::string where = "tensor \"" + e.name + "\": ";
    if (e.begin > e.end || e.end > dataSize)
      return bad(where + "data_offsets [" + std::to_string(e.begin) + ", " +
                 std::to_string(e.end) + ") lie outside the " +
                 std::to_string(dataSize) + " data bytes");
    // Every dimension must fit in int64 (Shape's element type), and so must
    // the element and byte counts even when another dimension is 0: code that
    // computes strides multiplies the other dimensions together.
    Shape shape;
    uint64_t elemSize = dtypeSize(e.dtype);
    uint64_t limit = (uint64_t)std::numeric_limits<int64_t>::max();
    uint64_t nonzeroBytes = elemSize;
    bool empty = false;
    for (uint64_t d : e.dims) {
      if (d == 0) {
        empty = true;
      } else {
        if (d > limit / nonzeroBytes)
          return bad(where + "shape dimensions overflow (dimension " +
                     std::to_string(d) + ")");
        nonzeroBytes *= d;
      }
      shape.push_back((int64_t)d);
    }
    uint64_t expect = empty ? 0 : nonzeroBytes;
    if (e.end - e.begin != expect)
      return bad(where + "shape " + shapeToString(shape) + " of " +
                 std::string(dtypeName(e.dtype)) + " needs " +
                 std::to_string(expect) + " bytes but data_offsets give " +
                 std::to_string(e.end - e.begin));
    if (e.end > e.begin)
      ranges.push_back({e.begin, e.end, &e.name});
    result.tensors.push_back(
        {e.name, Tensor::view(e.dtype, shape, file, base + e.begin)});
  }
  std::sort(ranges.begin(), ranges.end(), [](const Range &a, const Range &b) {
    return a.begin < b.begin || (a.begin == b.begin && a.end < b.end);
  });
  for (size_t i = 1; i < ranges.size(); ++i)
    if (ranges[i].begin < ranges[i - 1].end)
      return bad("tensors \"" + *ranges[i - 1].name + "\" and \"" +
                 *ranges[i].name + "\" overlap (data_offsets [" +
                 std::to_string(ranges[i - 1].begin) + ", " +
                 std::to_string(ranges[i - 1].end) + ") and [" +
                 std::to_string(ranges[i].begin) + ", " +
                 std::to_string(ranges[i].end) + "))");
  out = std::move(result);
  return true;
}

bool writeSafeTensors(
    const std::string &path,
    const std::vector<std::pair<std::string, Tensor>> &tensors,
    const std::map<std::string, std::string> &metadata, std::string &error) {
  std::set<std::string> names;
  for (auto &[name, t] : tensors) {
    const std::string where =
        "cannot write '" + path + "': tensor \"" + name + "\" ";
    if (name == "__metadata__") {
      error = where + "uses the reserved name __metadata__";
      return false;
    }
    if (!names.insert(name).second) {
      error = where + "appears twice";
      return false;
    }
    if (!t.valid()) {
      error = where + "has no data";
      return false;
    }
    for (int64_t d : t.shape())
      if (d < 0) {
        error = where + "has a negative dimension";
        return false;
      }
  }

  std::string header = "{";
  bool first = true;
  if (!metadata.empty()) {
    header += "\"__metadata__\":{";
    bool firstMeta = true;
    for (auto &kv : metadata) {
      header += (firstMeta ? "" : ",") + rt::json::quote(kv.first) + ":" +
                rt::json::quote(kv.second);
      firstMeta = false;
    }
    header += "}";
    first = false;
  }
  // Data is laid out by element size, largest first, with no gaps: every
  // tensor then starts aligned to its element size (the data section starts
  // 8-byte aligned), and the layout stays contiguous as the reference
  // safetensors reader requires. The header keeps the callers' order.
  std::vector<size_t> layout(tensors.size());
  for (size_t i = 0; i < layout.size(); ++i)
    layout[i] = i;
  std::stable_sort(layout.begin(), layout.end(), [&](size_t a, size_t b) {
    return dtypeSize(tensors[a].second.dtype()) >
           dtypeSize(tensors[b].second.dtype());
  });
  std::vector<uint64_t> offsets(tensors.size());
  uint64_t offset = 0;
  for (size_t i : layout) {
    offsets[i] = offset;
    offset += tensors[i].second.byteSize();
  }
  for (size_t i = 0; i < tensors.size(); ++i) {
    const auto &[name, t] = tensors[i];
    header += first ? "" : ",";
    first = false;
    header += rt::json::quote(name) + ":{\"dtype\":\"" +
              std::string(safetensorsName(t.dtype())) + "\",\"shape\":[";
    for (size_t d = 0; d < t.shape().size(); ++d)
      header += (d ? "," : "") + std::to_string(t.shape()[d]);
    header += "],\"data_offsets\":[" + std::to_string(offsets[i]) + "," +
              std::to_string(offsets[i] + t.byteSize()) + "]}";
  }
  header += "}";
  // Pad so the data starts 8-byte aligned, as the reference writer does.
  while (header.size() % 8)
    header += ' ';

  uint8_t len[8];
  for (int i = 0; i < 8; ++i) // little-endian, whatever the host
    len[i] = (uint8_t)((uint64_t)header.size() >> (8 * i));
  std::vector<ByteSpan> pieces = {{len, 8}, {header.data(), header.size()}};
  for (size_t i : layout)
    pieces.push_back(
        {tensors[i].second.bytes(), (size_t)tensors[i].second.byteSize()});
  // Readers see the old file or the new one, never a partial one.
  return writeFileAtomic(path, pieces, error);
}

} // namespace peft
