// Checkpoint folders: layout, trainer_state.json round trip, `latest`,
// keeping the newest two, and crash safety: a child process is killed (by the
// PEFTRT_CRASH_AFTER hook) after every single write, fsync, rename and
// removal of a checkpoint, and each time `latest` still loads a whole
// checkpoint and the next save completes.
#include "TestUtil.h"

#include "peft/Checkpoint.h"

#include <filesystem>
#include <sys/wait.h>
#include <unistd.h>

using namespace peft;
using namespace peft::rt;
namespace fs = std::filesystem;

namespace {

/// Values of a checkpoint written at `step`: every tensor element encodes the
/// step, so a mix of two checkpoints shows.
Tensor stepTensor(int64_t step, Shape shape, double scale) {
  Tensor t(DType::F32, std::move(shape));
  for (int64_t i = 0; i < t.numel(); ++i)
    t.setDouble(i, (double)step * scale + (double)i * 0.25);
  return t;
}

TrainerState stepState(int64_t step) {
  TrainerState s;
  s.globalStep = step;
  s.data = {step / 3, (step % 3) * 4};
  s.rngState = "rng " + std::to_string(step) + " \"quoted\"\n";
  s.seed = -7;
  s.threads = 3;
  s.numExamples = 13;
  s.rowsPerStep = 4;
  s.maxSteps = 100;
  return s;
}

CheckpointContent stepContent(int64_t step) {
  CheckpointContent c;
  c.state = stepState(step);
  c.tensors = {{"lora_A.exp_avg", stepTensor(step, {4, 8}, 1.0)},
               {"lora_A.exp_avg_sq", stepTensor(step, {4, 8}, 2.0)},
               {"classifier.bias", stepTensor(step, {3}, 3.0)}};
  c.writeAdapter = [step](const std::string &dir, std::string &error) {
    std::ofstream cfg(dir + "/adapter_config.json");
    cfg << "{\"peft_type\": \"LORA\", \"r\": 4}\n";
    if (!cfg.good()) {
      error = "cannot write adapter_config.json";
      return false;
    }
    return writeSafeTensors(
        dir + "/adapter_model.safetensors",
        {{"base_model.model.fc.lora_A.weight", stepTensor(step, {4, 8}, 5.0)}},
        {{"format", "pt"}}, error);
  };
  return c;
}

bool sameValues(const Tensor &a, const Tensor &b) {
  if (a.dtype() != b.dtype() || a.shape() != b.shape())
    return false;
  for (int64_t i = 0; i < a.numel(); ++i)
    if (a.getDouble(i) != b.getDouble(i))
      return false;
  return true;
}

class CheckpointTest : public peft::test::TempDirTest {
protected:
  /// `out/latest` resolves to a checkpoint whose every file holds the values
  /// of one step; returns that step (-1 with a failure otherwise).
  int64_t loadWhole(const std::string &out) {
    std::string dir, error;
    if (!resolveCheckpoint(out, dir, error)) {
      ADD_FAILURE() << error;
      return -1;
    }
    TrainerState state;
    SafeTensorsFile tensors;
    if (!readCheckpoint(dir, state, tensors, error)) {
      ADD_FAILURE() << error;
      return -1;
    }
    int64_t step = state.globalStep;
    EXPECT_EQ(fs::path(dir).filename(), "checkpoint-" + std::to_string(step));
    TrainerState expect = stepState(step);
    EXPECT_EQ(state.data, expect.data);
    EXPECT_EQ(state.rngState, expect.rngState);
    CheckpointContent content = stepContent(step);
    EXPECT_EQ(tensors.tensors.size(), content.tensors.size());
    for (auto &[name, value] : content.tensors) {
      const Tensor *t = tensors.find(name);
      EXPECT_TRUE(t && sameValues(*t, value)) << dir << " " << name;
    }
    SafeTensorsFile adapter;
    EXPECT_TRUE(
        readSafeTensors(dir + "/adapter_model.safetensors", adapter, error))
        << error;
    const Tensor *a = adapter.find("base_model.model.fc.lora_A.weight");
    EXPECT_TRUE(a && sameValues(*a, stepTensor(step, {4, 8}, 5.0))) << dir;
    EXPECT_TRUE(fs::exists(dir + "/adapter_config.json"));
    return step;
  }

  /// Runs writeCheckpoint(step) in a child with PEFTRT_CRASH_AFTER=n (0: no
  /// crash); returns the child's exit code.
  int writeInChild(const std::string &out, int64_t step, int64_t crashAfter) {
    pid_t pid = ::fork();
    if (pid == 0) {
      resetCheckpointOpCount();
      if (crashAfter > 0)
        ::setenv("PEFTRT_CRASH_AFTER", std::to_string(crashAfter).c_str(), 1);
      std::string error;
      bool ok = writeCheckpoint(out, stepContent(step), 2, error);
      ::_exit(ok ? 0 : 1);
    }
    int status = 0;
    ::waitpid(pid, &status, 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  }

  std::vector<std::string> entries(const std::string &dir) {
    std::vector<std::string> names;
    for (auto &e : fs::directory_iterator(dir))
      names.push_back(e.path().filename().string());
    std::sort(names.begin(), names.end());
    return names;
  }
};

TEST_F(CheckpointTest, TrainerStateRoundTrips) {
  TrainerState s = stepState(12345);
  s.seed = INT64_MIN;
  std::string text = trainerStateToJson(s);
  TrainerState back;
  std::string error;
  ASSERT_TRUE(trainerStateFromJson(text, "ts.json", back, error)) << error;
  EXPECT_EQ(back.globalStep, 12345);
  EXPECT_EQ(back.data, s.data);
  EXPECT_EQ(back.rngState, s.rngState);
  EXPECT_EQ(back.seed, INT64_MIN);
  EXPECT_EQ(back.threads, 3);
  EXPECT_EQ(back.numExamples, 13);
  EXPECT_EQ(back.rowsPerStep, 4);
  EXPECT_EQ(back.maxSteps, 100);

  EXPECT_FALSE(
      trainerStateFromJson("{\"format\": \"x\"}", "ts.json", back, error));
  EXPECT_NE(error.find("ts.json: not a peftrt trainer state"),
            std::string::npos);
  std::string noThreads = text;
  noThreads.replace(noThreads.find("\"threads\""), 9, "\"thread\"");
  EXPECT_FALSE(trainerStateFromJson(noThreads, "ts.json", back, error));
  EXPECT_NE(error.find("\"threads\" is missing"), std::string::npos) << error;
  EXPECT_FALSE(
      trainerStateFromJson(text.substr(0, 40), "ts.json", back, error));
  EXPECT_NE(error.find("ts.json: invalid JSON"), std::string::npos) << error;
}

TEST_F(CheckpointTest, LayoutLatestAndKeepingTwo) {
  std::string out = path("out"), error;
  for (int64_t step : {10, 20, 30}) {
    ASSERT_TRUE(writeCheckpoint(out, stepContent(step), 2, error)) << error;
    EXPECT_EQ(loadWhole(out), step);
  }
  EXPECT_EQ(entries(out), (std::vector<std::string>{
                              "checkpoint-20", "checkpoint-30", "latest"}));
  EXPECT_EQ(readFile(out + "/latest"), "checkpoint-30\n");
  EXPECT_EQ(entries(out + "/checkpoint-30"),
            (std::vector<std::string>{
                "adapter_config.json", "adapter_model.safetensors",
                "optimizer.safetensors", "trainer_state.json"}));
  // A checkpoint folder resumes directly too.
  std::string dir;
  ASSERT_TRUE(resolveCheckpoint(out + "/checkpoint-20", dir, error)) << error;
  EXPECT_EQ(dir, out + "/checkpoint-20");
  // Saving the step `latest` already names changes nothing.
  ASSERT_TRUE(writeCheckpoint(out, stepContent(30), 2, error)) << error;
  EXPECT_EQ(loadWhole(out), 30);
}

TEST_F(CheckpointTest, CreatesMissingParentsAndReportsAFileInTheWay) {
  std::string error;
  ASSERT_TRUE(writeCheckpoint(path("a/b/out"), stepContent(1), 2, error))
      << error;
  EXPECT_EQ(loadWhole(path("a/b/out")), 1);
  writeFile(path("file"), "x");
  EXPECT_FALSE(writeCheckpoint(path("file"), stepContent(1), 2, error));
  EXPECT_NE(error.find("cannot create folder '" + path("file") + "'"),
            std::string::npos)
      << error;
}

TEST_F(CheckpointTest, ResolveErrors) {
  std::string dir, error;
  EXPECT_FALSE(resolveCheckpoint(path("nope"), dir, error));
  EXPECT_NE(error.find("no such folder"), std::string::npos);
  fs::create_directory(path("out"));
  EXPECT_FALSE(resolveCheckpoint(path("out"), dir, error));
  EXPECT_NE(error.find("neither an output folder"), std::string::npos);
  writeFile(path("out/latest"), "../etc\n");
  EXPECT_FALSE(resolveCheckpoint(path("out"), dir, error));
  EXPECT_NE(error.find("expected one line \"checkpoint-N\""),
            std::string::npos);
  writeFile(path("out/latest"), "checkpoint-4\n");
  EXPECT_FALSE(resolveCheckpoint(path("out"), dir, error));
  EXPECT_NE(error.find("names checkpoint-4, which does not exist"),
            std::string::npos);
}

TEST_F(CheckpointTest, CrashAfterEveryOperationKeepsTheLastCheckpointWhole) {
  // Save 3 over checkpoints 1 and 2 (so the pruning of checkpoint-1 is among
  // the operations), crashing after operation n = 1, 2, ... until a run
  // completes.
  int crashes = 0;
  for (int64_t n = 1;; ++n) {
    SCOPED_TRACE("crash after operation " + std::to_string(n));
    std::string out = path("out" + std::to_string(n));
    ASSERT_EQ(writeInChild(out, 1, 0), 0);
    ASSERT_EQ(writeInChild(out, 2, 0), 0);
    int rc = writeInChild(out, 3, n);
    if (rc == 0)
      break;
    ASSERT_EQ(rc, kCrashExitCode);
    ++crashes;
    int64_t step = loadWhole(out);
    EXPECT_TRUE(step == 2 || step == 3) << step;
    // The next save (a resumed run reaching step 3 again) completes and
    // leaves no debris.
    ASSERT_EQ(writeInChild(out, 3, 0), 0);
    EXPECT_EQ(loadWhole(out), 3);
    EXPECT_EQ(entries(out), (std::vector<std::string>{
                                "checkpoint-2", "checkpoint-3", "latest"}));
    fs::remove_all(out);
    ASSERT_LT(n, 100) << "the crash hook never stopped firing";
  }
  // mkdir, adapter, optimizer, state write+fsync, 4 file fsyncs, dir fsync,
  // rename, out fsync, latest write+fsync+rename, out fsync, pruning.
  EXPECT_EQ(crashes, 17);
}

TEST_F(CheckpointTest, CrashBeforeTheFirstLatestLeavesNothingToResume) {
  std::string out = path("out");
  // Crash right after renaming checkpoint-1 into place, before `latest`.
  int64_t n = 1;
  for (; n < 50; ++n) {
    fs::remove_all(out);
    ASSERT_EQ(writeInChild(out, 1, n), kCrashExitCode);
    if (fs::exists(out + "/checkpoint-1"))
      break;
  }
  std::string dir, error;
  EXPECT_FALSE(resolveCheckpoint(out, dir, error));
  EXPECT_NE(error.find("neither an output folder"), std::string::npos);
  // The next save replaces the orphan.
  ASSERT_EQ(writeInChild(out, 1, 0), 0);
  EXPECT_EQ(loadWhole(out), 1);
}

} // namespace
