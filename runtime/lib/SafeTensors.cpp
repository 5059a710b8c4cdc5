#include "peft/SafeTensors.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <unistd.h>

namespace peft {
namespace {

/// The small JSON subset a safetensors header uses: one object whose values
/// are objects of strings, integer arrays, or (for __metadata__) strings.
class HeaderParser {
public:
  HeaderParser(const char *p, size_t n) : p_(p), end_(p + n) {}

  bool parse(SafeTensorsFile &out, std::vector<std::pair<std::string, std::pair<uint64_t, uint64_t>>> &ranges,
             std::vector<std::pair<std::string, std::pair<DType, Shape>>> &types) {
    skipWs();
    if (!eat('{'))
      return fail("expected '{' at the start of the header");
    skipWs();
    if (eat('}'))
      return true;
    while (true) {
      std::string key;
      if (!parseString(key))
        return false;
      skipWs();
      if (!eat(':'))
        return fail("expected ':' after key \"" + key + "\"");
      skipWs();
      if (key == "__metadata__") {
        if (!parseMetadata(out.metadata))
          return false;
      } else {
        std::string dtype;
        Shape shape;
        uint64_t begin = 0, end = 0;
        bool haveDtype = false, haveShape = false, haveOffsets = false;
        if (!eat('{'))
          return fail("tensor \"" + key + "\": expected an object");
        skipWs();
        while (!eat('}')) {
          std::string field;
          if (!parseString(field))
            return false;
          skipWs();
          if (!eat(':'))
            return fail("expected ':'");
          skipWs();
          if (field == "dtype") {
            if (!parseString(dtype))
              return false;
            haveDtype = true;
          } else if (field == "shape") {
            std::vector<uint64_t> dims;
            if (!parseIntArray(dims))
              return false;
            for (uint64_t d : dims)
              shape.push_back((int64_t)d);
            haveShape = true;
          } else if (field == "data_offsets") {
            std::vector<uint64_t> offs;
            if (!parseIntArray(offs))
              return false;
            if (offs.size() != 2)
              return fail("tensor \"" + key + "\": data_offsets needs 2 numbers");
            begin = offs[0];
            end = offs[1];
            haveOffsets = true;
          } else {
            return fail("tensor \"" + key + "\": unknown field \"" + field + "\"");
          }
          skipWs();
          eat(',');
          skipWs();
        }
        if (!haveDtype || !haveShape || !haveOffsets)
          return fail("tensor \"" + key + "\": needs dtype, shape and data_offsets");
        auto dt = dtypeFromSafetensorsName(dtype);
        if (!dt)
          return fail("tensor \"" + key + "\": unsupported dtype \"" + dtype + "\"");
        types.push_back({key, {*dt, shape}});
        ranges.push_back({key, {begin, end}});
      }
      skipWs();
      if (eat('}'))
        return true;
      if (!eat(','))
        return fail("expected ',' or '}' in the header");
      skipWs();
    }
  }

  std::string error;

private:
  bool fail(const std::string &msg) {
    if (error.empty())
      error = msg;
    return false;
  }
  void skipWs() {
    while (p_ < end_ && (*p_ == ' ' || *p_ == '\n' || *p_ == '\t' || *p_ == '\r'))
      ++p_;
  }
  bool eat(char c) {
    if (p_ < end_ && *p_ == c) {
      ++p_;
      return true;
    }
    return false;
  }
  bool parseString(std::string &s) {
    if (!eat('"'))
      return fail("expected a string");
    while (p_ < end_ && *p_ != '"') {
      if (*p_ == '\\') {
        ++p_;
        if (p_ >= end_)
          break;
        switch (*p_) {
        case 'n': s += '\n'; break;
        case 't': s += '\t'; break;
        case 'u': { // keep \uXXXX escapes as ASCII where possible
          if (end_ - p_ < 5)
            return fail("truncated \\u escape");
          unsigned v = (unsigned)std::strtoul(std::string(p_ + 1, 4).c_str(), nullptr, 16);
          s += v < 0x80 ? (char)v : '?';
          p_ += 4;
          break;
        }
        default: s += *p_; break;
        }
        ++p_;
        continue;
      }
      s += *p_++;
    }
    if (!eat('"'))
      return fail("unterminated string");
    return true;
  }
  bool parseIntArray(std::vector<uint64_t> &v) {
    if (!eat('['))
      return fail("expected '['");
    skipWs();
    while (!eat(']')) {
      if (p_ >= end_ || *p_ < '0' || *p_ > '9')
        return fail("expected a non-negative integer");
      uint64_t x = 0;
      while (p_ < end_ && *p_ >= '0' && *p_ <= '9') {
        if (x > (UINT64_MAX - 9) / 10)
          return fail("integer too large");
        x = x * 10 + (uint64_t)(*p_++ - '0');
      }
      v.push_back(x);
      skipWs();
      eat(',');
      skipWs();
    }
    return true;
  }
  bool parseMetadata(std::map<std::string, std::string> &m) {
    if (!eat('{'))
      return fail("__metadata__ must be an object");
    skipWs();
    while (!eat('}')) {
      std::string k, v;
      if (!parseString(k))
        return false;
      skipWs();
      if (!eat(':'))
        return fail("expected ':'");
      skipWs();
      if (!parseString(v))
        return false;
      m[k] = v;
      skipWs();
      eat(',');
      skipWs();
    }
    return true;
  }

  const char *p_;
  const char *end_;
};

std::string jsonEscape(const std::string &s) {
  std::string o;
  for (char c : s) {
    if (c == '"' || c == '\\') {
      o += '\\';
      o += c;
    } else if (c == '\n') {
      o += "\\n";
    } else {
      o += c;
    }
  }
  return o;
}

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
  std::memcpy(&headerLen, file->data(), 8);
  if (headerLen > file->size() - 8)
    return bad("header length " + std::to_string(headerLen) +
               " runs past the end of the file (" + std::to_string(file->size()) +
               " bytes); the file is truncated or corrupt");
  HeaderParser parser(reinterpret_cast<const char *>(file->data() + 8), headerLen);
  std::vector<std::pair<std::string, std::pair<uint64_t, uint64_t>>> ranges;
  std::vector<std::pair<std::string, std::pair<DType, Shape>>> types;
  if (!parser.parse(out, ranges, types))
    return bad("header: " + parser.error);
  const uint8_t *base = file->data() + 8 + headerLen;
  uint64_t dataSize = file->size() - 8 - headerLen;
  std::vector<std::pair<uint64_t, uint64_t>> sorted;
  for (size_t i = 0; i < ranges.size(); ++i) {
    const std::string &name = ranges[i].first;
    auto [begin, end] = ranges[i].second;
    auto [dtype, shape] = types[i].second;
    if (begin > end || end > dataSize)
      return bad("tensor \"" + name + "\": data_offsets [" + std::to_string(begin) +
                 ", " + std::to_string(end) + ") lie outside the " +
                 std::to_string(dataSize) + " data bytes");
    uint64_t expect = dtypeSize(dtype);
    for (int64_t d : shape) {
      if (d != 0 && expect > UINT64_MAX / (uint64_t)d)
        return bad("tensor \"" + name + "\": shape overflows");
      expect *= (uint64_t)d;
    }
    if (end - begin != expect)
      return bad("tensor \"" + name + "\": shape " + shapeToString(shape) + " of " +
                 std::string(dtypeName(dtype)) + " needs " + std::to_string(expect) +
                 " bytes but data_offsets give " + std::to_string(end - begin));
    sorted.push_back({begin, end});
    out.tensors.push_back({name, Tensor::view(dtype, shape, file, base + begin)});
  }
  std::sort(sorted.begin(), sorted.end());
  for (size_t i = 1; i < sorted.size(); ++i)
    if (sorted[i].first < sorted[i - 1].second)
      return bad("two tensors' data_offsets overlap");
  return true;
}

bool writeSafeTensors(const std::string &path,
                      const std::vector<std::pair<std::string, Tensor>> &tensors,
                      const std::map<std::string, std::string> &metadata,
                      std::string &error) {
  std::string header = "{";
  bool first = true;
  if (!metadata.empty()) {
    header += "\"__metadata__\":{";
    bool f2 = true;
    for (auto &kv : metadata) {
      header += (f2 ? "" : ",") + std::string("\"") + jsonEscape(kv.first) + "\":\"" +
                jsonEscape(kv.second) + "\"";
      f2 = false;
    }
    header += "}";
    first = false;
  }
  uint64_t offset = 0;
  for (auto &[name, t] : tensors) {
    header += first ? "" : ",";
    first = false;
    header += "\"" + jsonEscape(name) + "\":{\"dtype\":\"" +
              std::string(safetensorsName(t.dtype())) + "\",\"shape\":[";
    for (size_t i = 0; i < t.shape().size(); ++i)
      header += (i ? "," : "") + std::to_string(t.shape()[i]);
    header += "],\"data_offsets\":[" + std::to_string(offset) + "," +
              std::to_string(offset + t.byteSize()) + "]}";
    offset += t.byteSize();
  }
  header += "}";
  while (header.size() % 8)
    header += ' ';

  std::string tmp = path + ".tmp";
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) {
    error = "cannot create '" + tmp + "': " + std::strerror(errno);
    return false;
  }
  auto writeAll = [&](const void *p, size_t n) {
    const uint8_t *b = static_cast<const uint8_t *>(p);
    while (n) {
      ssize_t w = ::write(fd, b, n);
      if (w < 0) {
        if (errno == EINTR)
          continue;
        return false;
      }
      b += w;
      n -= (size_t)w;
    }
    return true;
  };
  uint64_t len = header.size();
  bool ok = writeAll(&len, 8) && writeAll(header.data(), header.size());
  for (auto &kv : tensors)
    ok = ok && writeAll(kv.second.bytes(), kv.second.byteSize());
  ok = ok && ::fsync(fd) == 0;
  int saved = errno;
  ::close(fd);
  if (!ok) {
    error = "cannot write '" + tmp + "': " + std::strerror(saved);
    ::unlink(tmp.c_str());
    return false;
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    error = "cannot rename '" + tmp + "' to '" + path + "': " + std::strerror(errno);
    ::unlink(tmp.c_str());
    return false;
  }
  return true;
}

} // namespace peft
