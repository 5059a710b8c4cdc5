#include "peft/Checkpoint.h"

#include "Json.h"

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <filesystem>
#include <fstream>
#include <sys/stat.h>
#include <unistd.h>

namespace fs = std::filesystem;

namespace peft::rt {
namespace {

//===----------------------------------------------------------------------===//
// Counted file-system operations (the crash-injection hook)
//===----------------------------------------------------------------------===//

int64_t opCount = 0;

/// Every mutating checkpoint operation ends here, so PEFTRT_CRASH_AFTER=n
/// can stop the process after exactly the n-th one.
void opDone() {
  ++opCount;
  const char *env = std::getenv("PEFTRT_CRASH_AFTER");
  if (env && *env && std::strtoll(env, nullptr, 10) == opCount)
    ::_exit(kCrashExitCode);
}

bool sysError(const std::string &what, const std::string &path,
              std::string &error) {
  error = "cannot " + what + " '" + path + "': " + std::strerror(errno);
  return false;
}

bool fsyncPath(const std::string &path, bool directory, std::string &error) {
  int fd = ::open(path.c_str(),
                  (directory ? O_RDONLY | O_DIRECTORY : O_RDONLY) | O_CLOEXEC);
  if (fd < 0)
    return sysError("open", path, error);
  int rc = ::fsync(fd);
  int saved = errno;
  ::close(fd);
  if (rc != 0) {
    errno = saved;
    return sysError("fsync", path, error);
  }
  opDone();
  return true;
}

/// Writes `bytes` to `path` (write, then fsync: two operations).
bool writeFileDurable(const std::string &path, const std::string &bytes,
                      std::string &error) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0)
    return sysError("create", path, error);
  const char *p = bytes.data();
  size_t n = bytes.size();
  while (n) {
    ssize_t w = ::write(fd, p, n);
    if (w < 0) {
      if (errno == EINTR)
        continue;
      int saved = errno;
      ::close(fd);
      errno = saved;
      return sysError("write", path, error);
    }
    p += w;
    n -= (size_t)w;
  }
  opDone();
  if (::fsync(fd) != 0) {
    int saved = errno;
    ::close(fd);
    errno = saved;
    return sysError("fsync", path, error);
  }
  opDone();
  if (::close(fd) != 0)
    return sysError("close", path, error);
  return true;
}

bool renamePath(const std::string &from, const std::string &to,
                std::string &error) {
  if (::rename(from.c_str(), to.c_str()) != 0) {
    error =
        "cannot rename '" + from + "' to '" + to + "': " + std::strerror(errno);
    return false;
  }
  opDone();
  return true;
}

bool removeTree(const std::string &path, std::string &error) {
  std::error_code ec;
  fs::remove_all(path, ec);
  if (ec) {
    error = "cannot remove '" + path + "': " + ec.message();
    return false;
  }
  opDone();
  return true;
}

/// Creates `path` and any missing parents.
bool makeDir(const std::string &path, std::string &error) {
  std::error_code ec;
  if (fs::is_directory(path, ec))
    return true;
  if (!fs::create_directories(path, ec) || ec) {
    error = "cannot create folder '" + path + "': " +
            (ec ? ec.message() : std::string("it exists and is no folder"));
    return false;
  }
  opDone();
  return true;
}

bool readText(const std::string &path, std::string &text, std::string &error) {
  std::ifstream in(path, std::ios::binary);
  if (!in)
    return sysError("open", path, error);
  text.assign(std::istreambuf_iterator<char>(in), {});
  if (in.bad())
    return sysError("read", path, error);
  return true;
}

/// N of a folder name "checkpoint-N" (digits only), or -1.
int64_t checkpointStep(const std::string &name) {
  const std::string prefix = "checkpoint-";
  if (name.size() <= prefix.size() || name.compare(0, prefix.size(), prefix))
    return -1;
  int64_t n = 0;
  for (size_t i = prefix.size(); i < name.size(); ++i) {
    if (name[i] < '0' || name[i] > '9' || n > (INT64_MAX - 9) / 10)
      return -1;
    n = n * 10 + (name[i] - '0');
  }
  return n;
}

/// The checkpoint folder name `OUT/latest` points at ("" when none).
std::string latestName(const std::string &outDir) {
  std::string text, ignored;
  if (!readText(outDir + "/latest", text, ignored))
    return "";
  while (!text.empty() &&
         (text.back() == '\n' || text.back() == '\r' || text.back() == ' '))
    text.pop_back();
  return text;
}

/// Keeps the newest `keep` checkpoints (`current` among them) and drops the
/// folders of interrupted writes.
bool pruneCheckpoints(const std::string &outDir, const std::string &current,
                      int keep, std::string &error) {
  std::error_code ec;
  std::vector<std::pair<int64_t, std::string>> found;
  std::vector<std::string> stale;
  for (auto &entry : fs::directory_iterator(outDir, ec)) {
    if (!entry.is_directory())
      continue;
    std::string base = entry.path().filename().string();
    if (base.size() > 4 && base.compare(base.size() - 4, 4, ".tmp") == 0 &&
        checkpointStep(base.substr(0, base.size() - 4)) >= 0)
      stale.push_back(entry.path().string());
    else if (int64_t step = checkpointStep(base); step >= 0)
      found.push_back({step, entry.path().string()});
  }
  std::sort(found.rbegin(), found.rend());
  for (size_t i = (size_t)std::max(keep, 1); i < found.size(); ++i)
    if (found[i].second != current && !removeTree(found[i].second, error))
      return false;
  for (const std::string &dir : stale)
    if (!removeTree(dir, error))
      return false;
  return true;
}

} // namespace

void resetCheckpointOpCount() { opCount = 0; }

//===----------------------------------------------------------------------===//
// trainer_state.json
//===----------------------------------------------------------------------===//

std::string trainerStateToJson(const TrainerState &s) {
  std::string o = "{\n";
  o += "  \"format\": \"peftrt-trainer-state\",\n";
  o += "  \"version\": 1,\n";
  o += "  \"global_step\": " + std::to_string(s.globalStep) + ",\n";
  o += "  \"epoch\": " + std::to_string(s.data.epoch) + ",\n";
  o += "  \"epoch_index\": " + std::to_string(s.data.index) + ",\n";
  o += "  \"rng_state\": " + json::quote(s.rngState) + ",\n";
  o += "  \"seed\": " + std::to_string(s.seed) + ",\n";
  o += "  \"threads\": " + std::to_string(s.threads) + ",\n";
  o += "  \"num_examples\": " + std::to_string(s.numExamples) + ",\n";
  o += "  \"rows_per_step\": " + std::to_string(s.rowsPerStep) + ",\n";
  o += "  \"max_steps\": " + std::to_string(s.maxSteps) + "\n";
  o += "}\n";
  return o;
}

bool trainerStateFromJson(const std::string &text, const std::string &where,
                          TrainerState &state, std::string &error) {
  json::Value v;
  std::string jsonError;
  if (!json::parse(text, v, jsonError)) {
    error = where + ": invalid JSON: " + jsonError;
    return false;
  }
  const json::Value *format = v.get("format");
  if (!format || format->string != "peftrt-trainer-state") {
    error = where + ": not a peftrt trainer state (\"format\" is not "
                    "\"peftrt-trainer-state\")";
    return false;
  }
  TrainerState s;
  auto intField = [&](const char *key, int64_t &out, int64_t min) {
    const json::Value *f = v.get(key);
    if (!f || !f->isInt()) {
      error = where + ": \"" + key + "\" is missing or not an integer";
      return false;
    }
    if (f->integer < min) {
      error = where + ": \"" + key + "\" is " + std::to_string(f->integer) +
              ", below " + std::to_string(min);
      return false;
    }
    out = f->integer;
    return true;
  };
  int64_t threads = 0;
  if (!intField("global_step", s.globalStep, 0) ||
      !intField("epoch", s.data.epoch, 0) ||
      !intField("epoch_index", s.data.index, 0) ||
      !intField("seed", s.seed, INT64_MIN) ||
      !intField("threads", threads, 1) ||
      !intField("num_examples", s.numExamples, 1) ||
      !intField("rows_per_step", s.rowsPerStep, 1) ||
      !intField("max_steps", s.maxSteps, 0))
    return false;
  if (threads > 1 << 20) {
    error = where + ": \"threads\" is implausibly large";
    return false;
  }
  s.threads = (int)threads;
  const json::Value *rng = v.get("rng_state");
  if (!rng || rng->kind != json::Value::Kind::String) {
    error = where + ": \"rng_state\" is missing or not a string";
    return false;
  }
  s.rngState = rng->string;
  state = std::move(s);
  return true;
}

//===----------------------------------------------------------------------===//
// Writing
//===----------------------------------------------------------------------===//

bool writeCheckpoint(const std::string &outDir,
                     const CheckpointContent &content, int keep,
                     std::string &error) {
  const std::string name =
      "checkpoint-" + std::to_string(content.state.globalStep);
  const std::string finalDir = outDir + "/" + name;
  const std::string tmpDir = finalDir + ".tmp";
  if (!makeDir(outDir, error))
    return false;
  // Resuming from checkpoint-N and saving at N again would write the same
  // bytes; replacing the folder `latest` names would open a window in which
  // no whole checkpoint exists.
  if (latestName(outDir) == name && fs::is_directory(finalDir))
    return pruneCheckpoints(outDir, finalDir, keep, error);

  std::error_code ec;
  if (fs::exists(tmpDir, ec) && !removeTree(tmpDir, error))
    return false;
  if (!makeDir(tmpDir, error))
    return false;
  if (!content.writeAdapter(tmpDir, error))
    return false;
  opDone();
  if (!writeSafeTensors(tmpDir + "/optimizer.safetensors", content.tensors,
                        {{"format", "peftrt-optimizer"}}, error))
    return false;
  opDone();
  if (!writeFileDurable(tmpDir + "/trainer_state.json",
                        trainerStateToJson(content.state), error))
    return false;
  // The adapter writer and the safetensors writer make their own durability
  // promises; fsync every file again so the checkpoint does not depend on
  // them.
  std::vector<std::string> files;
  for (auto &entry : fs::directory_iterator(tmpDir, ec))
    if (entry.is_regular_file())
      files.push_back(entry.path().string());
  if (ec) {
    error = "cannot list '" + tmpDir + "': " + ec.message();
    return false;
  }
  std::sort(files.begin(), files.end());
  for (const std::string &file : files)
    if (!fsyncPath(file, false, error))
      return false;
  if (!fsyncPath(tmpDir, true, error))
    return false;
  // A checkpoint-N left by a run that crashed before moving `latest` to it
  // is not the latest one, so it may go.
  if (fs::exists(finalDir, ec) && !removeTree(finalDir, error))
    return false;
  if (!renamePath(tmpDir, finalDir, error) || !fsyncPath(outDir, true, error))
    return false;
  const std::string latestTmp = outDir + "/latest.tmp";
  if (!writeFileDurable(latestTmp, name + "\n", error) ||
      !renamePath(latestTmp, outDir + "/latest", error) ||
      !fsyncPath(outDir, true, error))
    return false;

  return pruneCheckpoints(outDir, finalDir, keep, error);
}

//===----------------------------------------------------------------------===//
// Reading
//===----------------------------------------------------------------------===//

bool resolveCheckpoint(const std::string &dir, std::string &checkpointDir,
                       std::string &error) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) {
    error = "--resume " + dir + ": no such folder";
    return false;
  }
  if (fs::exists(dir + "/latest", ec)) {
    std::string name = latestName(dir);
    if (checkpointStep(name) < 0) {
      error = dir + "/latest: expected one line \"checkpoint-N\", found \"" +
              name + "\"";
      return false;
    }
    checkpointDir = dir + "/" + name;
    if (!fs::is_directory(checkpointDir, ec)) {
      error = dir + "/latest names " + name + ", which does not exist";
      return false;
    }
    return true;
  }
  if (fs::exists(dir + "/trainer_state.json", ec)) {
    checkpointDir = dir;
    return true;
  }
  error = "--resume " + dir +
          ": neither an output folder with a 'latest' checkpoint nor a "
          "checkpoint folder (no trainer_state.json)";
  return false;
}

bool readCheckpoint(const std::string &checkpointDir, TrainerState &state,
                    SafeTensorsFile &tensors, std::string &error) {
  std::string text;
  const std::string statePath = checkpointDir + "/trainer_state.json";
  if (!readText(statePath, text, error) ||
      !trainerStateFromJson(text, statePath, state, error))
    return false;
  return readSafeTensors(checkpointDir + "/optimizer.safetensors", tensors,
                         error);
}

} // namespace peft::rt
