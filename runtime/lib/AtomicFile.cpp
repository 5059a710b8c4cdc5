#include "peft/AtomicFile.h"

#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <unistd.h>

namespace peft {

bool writeFileAtomic(const std::string &path, const std::string &bytes,
                     std::string &error) {
  return writeFileAtomic(path, {{bytes.data(), bytes.size()}}, error);
}

bool writeFileAtomic(const std::string &path,
                     const std::vector<ByteSpan> &pieces, std::string &error) {
  std::string tmp = path + ".tmp";
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) {
    error = "cannot create '" + tmp + "': " + std::strerror(errno);
    return false;
  }
  bool ok = true;
  for (const ByteSpan &piece : pieces) {
    const char *p = static_cast<const char *>(piece.data);
    size_t left = piece.size;
    while (ok && left) {
      ssize_t w = ::write(fd, p, left);
      if (w < 0 && errno == EINTR)
        continue;
      ok = w > 0;
      if (ok) {
        p += w;
        left -= (size_t)w;
      }
    }
  }
  ok = ok && ::fsync(fd) == 0;
  int saved = errno;
  if (::close(fd) != 0 && ok) {
    ok = false;
    saved = errno;
  }
  if (!ok) {
    error = "cannot write '" + tmp + "': " + std::strerror(saved);
    ::unlink(tmp.c_str());
    return false;
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    error = "cannot rename '" + tmp + "' to '" + path +
            "': " + std::strerror(errno);
    ::unlink(tmp.c_str());
    return false;
  }
  // Make the rename durable. A failure here leaves a complete file in place,
  // so it is not reported.
  size_t slash = path.find_last_of('/');
  std::string dir = slash == std::string::npos ? "."
                    : slash == 0               ? "/"
                                               : path.substr(0, slash);
  int dirFd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dirFd >= 0) {
    ::fsync(dirFd);
    ::close(dirFd);
  }
  return true;
}

} // namespace peft
