// The trainer binary end to end on a hand-built program (TinyProgram): it
// trains, logs, evaluates and writes the adapter; a run stopped at step 5
// and resumed to 12 matches an uninterrupted run bit for bit; a crash after
// every checkpoint operation resumes to the same adapter; a different thread
// count, a NaN loss and bad data stop with exit code 1 and a clear message.
#include "TestUtil.h"
#include "TinyProgram.h"

#include "peft/Checkpoint.h"
#include "peft/SafeTensors.h"

#include <cmath>
#include <fcntl.h>
#include <filesystem>
#include <sstream>
#include <sys/wait.h>
#include <unistd.h>

using namespace peft;
namespace fs = std::filesystem;

namespace {

class TrainerEndToEndTest : public peft::test::TempDirTest {
protected:
  void SetUp() override {
    TempDirTest::SetUp();
    // 7 examples of y = 3 x0 - 2 x1 + 0.5: 3 steps per epoch, one dropped.
    Tensor x(DType::F32, {7, 2}), y(DType::F32, {7});
    for (int64_t i = 0; i < 7; ++i) {
      double x0 = 0.3 * (double)i - 1.0, x1 = std::sin((double)i);
      x.setDouble(2 * i, x0);
      x.setDouble(2 * i + 1, x1);
      y.setDouble(i, 3 * x0 - 2 * x1 + 0.5);
    }
    data_ = path("train.safetensors");
    std::string error;
    ASSERT_TRUE(writeSafeTensors(data_, {{"x", x}, {"y", y}}, {}, error))
        << error;
  }

  /// Runs the tiny trainer with `args` (and an environment prefix); returns
  /// its exit code. stdout and stderr land in out_ and err_.
  int trainer(const std::string &args, const std::string &env = "") {
    std::string cmd = env + " " + PEFTRT_TINY_TRAINER + " " + args + " >" +
                      path("stdout") + " 2>" + path("stderr");
    int status = std::system(cmd.c_str());
    out_ = readFile(path("stdout"));
    err_ = readFile(path("stderr"));
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  }

  /// The "step"/"loss"/"lr"/"grad_norm" part of each logged step (the
  /// timings differ between runs).
  std::vector<std::string> losses(const std::string &log) {
    std::vector<std::string> lines;
    std::istringstream in(readFile(log));
    for (std::string line; std::getline(in, line);) {
      size_t cut = line.find(", \"tokens_per_s\"");
      if (line.find("\"loss\"") != std::string::npos &&
          cut != std::string::npos)
        lines.push_back(line.substr(0, cut));
    }
    return lines;
  }

  std::string data_, out_, err_;
};

TEST_F(TrainerEndToEndTest, HelpAndBadUsage) {
  EXPECT_EQ(trainer("--help"), 0);
  EXPECT_NE(out_.find("--resume DIR"), std::string::npos) << out_;
  EXPECT_EQ(trainer("--steps 3"), 1);
  EXPECT_NE(err_.find("trainer: error: --data is required"), std::string::npos)
      << err_;
}

TEST_F(TrainerEndToEndTest, TrainsLogsEvaluatesAndWritesTheAdapter) {
  std::string out = path("full"), log = path("full.jsonl");
  ASSERT_EQ(trainer("--data " + data_ + " --steps 12 --save-every 4 --out " +
                    out + " --log " + log + " --threads 1 --eval " + data_ +
                    " --eval-every 6"),
            0)
      << err_;
  auto lines = losses(log);
  ASSERT_EQ(lines.size(), 12u);
  EXPECT_EQ(lines[0].rfind("{\"step\": 1, \"epoch\": 0.333333", 0), 0)
      << lines[0];
  std::string logText = readFile(log);
  EXPECT_NE(logText.find("{\"step\": 6, \"eval_loss\": "), std::string::npos);
  EXPECT_NE(logText.find("{\"step\": 12, \"eval_loss\": "), std::string::npos);
  // The loss falls: mean over the first epoch vs the last.
  auto lossOf = [](const std::string &line) {
    return std::stod(line.substr(line.find("\"loss\": ") + 8));
  };
  double first = 0, last = 0;
  for (int i = 0; i < 3; ++i) {
    first += lossOf(lines[(size_t)i]);
    last += lossOf(lines[(size_t)(9 + i)]);
  }
  EXPECT_LT(last, 0.5 * first);
  // Not a terminal: one line per step on stdout.
  EXPECT_NE(out_.find("step 12/12 loss"), std::string::npos) << out_;
  EXPECT_NE(err_.find("12 steps in"), std::string::npos) << err_;

  EXPECT_TRUE(fs::exists(out + "/adapter_config.json"));
  SafeTensorsFile adapter;
  std::string error;
  ASSERT_TRUE(
      readSafeTensors(out + "/adapter_model.safetensors", adapter, error))
      << error;
  EXPECT_TRUE(adapter.find("base_model.model.fc.lora_A.weight"));
  EXPECT_EQ(readFile(out + "/latest"), "checkpoint-12\n");
  EXPECT_TRUE(fs::exists(out + "/checkpoint-8"));
  EXPECT_FALSE(fs::exists(out + "/checkpoint-4"));
  // The final adapter is checkpoint-12's.
  EXPECT_EQ(readFile(out + "/adapter_model.safetensors"),
            readFile(out + "/checkpoint-12/adapter_model.safetensors"));
  SafeTensorsFile optimizer;
  ASSERT_TRUE(readSafeTensors(out + "/checkpoint-12/optimizer.safetensors",
                              optimizer, error))
      << error;
  EXPECT_TRUE(optimizer.find("w.momentum") && optimizer.find("b.momentum") &&
              optimizer.find("b"));
  EXPECT_FALSE(optimizer.find("w")); // in the adapter
}

TEST_F(TrainerEndToEndTest, ProgressBarOnlyOnATerminal) {
  // stderr on a pseudo-terminal: a progress bar there, no per-step lines on
  // stdout.
  int master = ::posix_openpt(O_RDWR | O_NOCTTY);
  ASSERT_GE(master, 0);
  ASSERT_EQ(::grantpt(master), 0);
  ASSERT_EQ(::unlockpt(master), 0);
  std::string slaveName = ::ptsname(master);
  std::string cmd = std::string(PEFTRT_TINY_TRAINER) + " --data " + data_ +
                    " --steps 6 --threads 1 --out " + path("out") + " >" +
                    path("stdout");
  pid_t pid = ::fork();
  if (pid == 0) {
    int slave = ::open(slaveName.c_str(), O_RDWR);
    if (slave < 0)
      ::_exit(120);
    ::dup2(slave, 2);
    ::close(master);
    ::execl("/bin/sh", "sh", "-c", cmd.c_str(), (char *)nullptr);
    ::_exit(121);
  }
  std::string terminal;
  char buf[4096];
  while (true) {
    ssize_t n = ::read(master, buf, sizeof buf);
    if (n <= 0)
      break; // EIO once the child's side is closed
    terminal.append(buf, (size_t)n);
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  ::close(master);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0) << terminal;
  EXPECT_NE(terminal.find("\r\033[K6/6 [##############################] "
                          "loss "),
            std::string::npos)
      << terminal;
  EXPECT_NE(terminal.find("\r\033[K3/6 [###############"), std::string::npos)
      << terminal;
  EXPECT_EQ(readFile(path("stdout")), "");
}

TEST_F(TrainerEndToEndTest, EpochsAndInitAdapter) {
  // 2 epochs of 7 examples in steps of 2: 3 steps each, the 7th dropped.
  std::string a = path("a");
  ASSERT_EQ(trainer("--data " + data_ + " --epochs 2 --threads 1 --out " + a +
                    " --log " + path("a.jsonl")),
            0)
      << err_;
  auto trained = losses(path("a.jsonl"));
  ASSERT_EQ(trained.size(), 6u);
  EXPECT_EQ(trained[5].rfind("{\"step\": 6, \"epoch\": 2, ", 0), 0);
  // Starting from that adapter changes the first step's loss.
  ASSERT_EQ(trainer("--data " + data_ + " --steps 1 --threads 1 --out " +
                    path("b") + " --init-adapter " + a + " --log " +
                    path("b.jsonl")),
            0)
      << err_;
  auto fromAdapter = losses(path("b.jsonl"));
  ASSERT_EQ(fromAdapter.size(), 1u);
  EXPECT_NE(fromAdapter[0], trained[0]);
  EXPECT_EQ(trainer("--data " + data_ + " --steps 1 --out " + path("c") +
                    " --init-adapter " + path("nowhere")),
            1);
  EXPECT_NE(err_.find("nowhere"), std::string::npos) << err_;
}

TEST_F(TrainerEndToEndTest, ResumeIsBitExact) {
  std::string full = path("full"), split = path("split");
  ASSERT_EQ(trainer("--data " + data_ + " --steps 12 --threads 1 --out " +
                    full + " --log " + path("full.jsonl")),
            0)
      << err_;
  ASSERT_EQ(trainer("--data " + data_ + " --steps 5 --threads 1 --out " +
                    split + " --log " + path("split.jsonl")),
            0)
      << err_;
  // The second part appends to the log; --out defaults to the resumed folder.
  ASSERT_EQ(trainer("--data " + data_ + " --steps 12 --threads 1 --resume " +
                    split + " --log " + path("split.jsonl")),
            0)
      << err_;
  EXPECT_EQ(losses(path("split.jsonl")), losses(path("full.jsonl")));
  EXPECT_EQ(readFile(split + "/adapter_model.safetensors"),
            readFile(full + "/adapter_model.safetensors"));
  EXPECT_EQ(readFile(split + "/checkpoint-12/optimizer.safetensors"),
            readFile(full + "/checkpoint-12/optimizer.safetensors"));

  // A checkpoint folder resumes as well; another thread count does not.
  EXPECT_EQ(trainer("--data " + data_ + " --steps 12 --threads 2 --resume " +
                    split + "/checkpoint-5 --out " + path("other")),
            1);
  EXPECT_NE(err_.find("written by a run with 1 threads; this run has 2"),
            std::string::npos)
      << err_;
  EXPECT_NE(err_.find("pass --threads 1"), std::string::npos) << err_;
  EXPECT_EQ(trainer("--data " + data_ + " --steps 12 --threads 1 --seed 9 " +
                    "--resume " + split + "/checkpoint-5 --out " +
                    path("other")),
            1);
  EXPECT_NE(err_.find("was written with --seed 3, not 9"), std::string::npos)
      << err_;
}

TEST_F(TrainerEndToEndTest, ResumeIsBitExactWithGradientAccumulation) {
  // 2 micro-batches of 2 per step: 7 examples give 1 step per epoch.
  const std::string env = "PEFTRT_TINY_ACCUMULATE=1";
  std::string full = path("full"), split = path("split");
  ASSERT_EQ(trainer("--data " + data_ + " --steps 6 --threads 1 --out " + full +
                        " --log " + path("full.jsonl"),
                    env),
            0)
      << err_;
  auto lines = losses(path("full.jsonl"));
  ASSERT_EQ(lines.size(), 6u);
  EXPECT_EQ(lines[1].rfind("{\"step\": 2, \"epoch\": 2, ", 0), 0) << lines[1];
  ASSERT_EQ(trainer("--data " + data_ + " --steps 3 --threads 1 --out " +
                        split + " --log " + path("split.jsonl"),
                    env),
            0)
      << err_;
  ASSERT_EQ(trainer("--data " + data_ + " --steps 6 --threads 1 --resume " +
                        split + " --log " + path("split.jsonl"),
                    env),
            0)
      << err_;
  EXPECT_EQ(losses(path("split.jsonl")), lines);
  EXPECT_EQ(readFile(split + "/checkpoint-6/optimizer.safetensors"),
            readFile(full + "/checkpoint-6/optimizer.safetensors"));
  // The plain program's checkpoint has another step size.
  EXPECT_EQ(trainer("--data " + data_ + " --steps 8 --threads 1 --resume " +
                    split + " --out " + path("other")),
            1);
  EXPECT_NE(err_.find("was written for 7 examples, 4 per step; --data " +
                      data_ + " has 7, 2 per step"),
            std::string::npos)
      << err_;
}

TEST_F(TrainerEndToEndTest, CrashAfterEveryCheckpointOperationResumesExactly) {
  std::string reference = path("reference");
  ASSERT_EQ(trainer("--data " + data_ +
                    " --steps 6 --save-every 2 "
                    "--threads 1 --out " +
                    reference),
            0)
      << err_;
  const std::string want = readFile(reference + "/adapter_model.safetensors");
  int crashes = 0;
  for (int n = 1; n < 200; ++n) {
    SCOPED_TRACE("crash after operation " + std::to_string(n));
    std::string out = path("run" + std::to_string(n));
    int rc = trainer("--data " + data_ +
                         " --steps 6 --save-every 2 "
                         "--threads 1 --out " +
                         out,
                     "PEFTRT_CRASH_AFTER=" + std::to_string(n));
    if (rc == 0)
      break;
    ASSERT_EQ(rc, rt::kCrashExitCode) << err_;
    ++crashes;
    // Resume from whatever `latest` names (start over before the first).
    std::string resume =
        fs::exists(out + "/latest") ? "--resume " + out : "--out " + out;
    ASSERT_EQ(trainer("--data " + data_ +
                      " --steps 6 --save-every 2 "
                      "--threads 1 " +
                      resume),
              0)
        << err_;
    EXPECT_EQ(readFile(out + "/adapter_model.safetensors"), want);
    fs::remove_all(out);
  }
  // Three checkpoints (steps 2, 4, 6) of at least 15 operations each.
  EXPECT_GE(crashes, 45);
}

TEST_F(TrainerEndToEndTest, NanLossStopsAndKeepsTheLastCheckpoint) {
  Tensor x(DType::F32, {8, 2}), y(DType::F32, {8});
  for (int64_t i = 0; i < 8; ++i) {
    x.setDouble(2 * i, 1.0);
    y.setDouble(i, i == 5 ? 1e30 : 1.0); // its residual squared overflows
  }
  std::string bad = path("bad.safetensors"), error;
  ASSERT_TRUE(writeSafeTensors(bad, {{"x", x}, {"y", y}}, {}, error)) << error;
  std::string out = path("out");
  ASSERT_EQ(trainer("--data " + bad +
                    " --steps 20 --save-every 1 "
                    "--threads 1 --out " +
                    out),
            1);
  size_t at = err_.find("trainer: error: step ");
  ASSERT_NE(at, std::string::npos) << err_;
  int64_t step = std::stoll(err_.substr(at + 21));
  EXPECT_NE(err_.find("loss is inf"), std::string::npos) << err_;
  EXPECT_FALSE(fs::exists(out + "/adapter_model.safetensors"));
  if (step > 1) {
    EXPECT_NE(err_.find("The latest checkpoint is " + out + "/checkpoint-" +
                        std::to_string(step - 1)),
              std::string::npos)
        << err_;
    EXPECT_EQ(readFile(out + "/latest"),
              "checkpoint-" + std::to_string(step - 1) + "\n");
  }
}

TEST_F(TrainerEndToEndTest, BadDataStopsBeforeTraining) {
  std::string bad = path("bad.safetensors"), error;
  ASSERT_TRUE(writeSafeTensors(
      bad, {{"x", Tensor(DType::F64, {4, 2})}, {"y", Tensor(DType::F32, {4})}},
      {}, error));
  EXPECT_EQ(trainer("--data " + bad + " --steps 2 --out " + path("o")), 1);
  EXPECT_NE(err_.find(bad + ": key \"x\" is f64 but the program needs f32"),
            std::string::npos)
      << err_;
  ASSERT_TRUE(writeSafeTensors(
      bad, {{"x", Tensor(DType::F32, {1, 2})}, {"y", Tensor(DType::F32, {1})}},
      {}, error));
  EXPECT_EQ(trainer("--data " + bad + " --steps 2 --out " + path("o")), 1);
  EXPECT_NE(err_.find("holds 1 examples, fewer than one step needs (batch 2 "
                      "x accumulation 1)"),
            std::string::npos)
      << err_;
  writeFile(path("d.jsonl"), "[1, 2]\n");
  EXPECT_EQ(
      trainer("--data " + path("d.jsonl") + " --steps 2 --out " + path("o")),
      1);
  EXPECT_NE(err_.find("d.jsonl:1: missing key \"x\""), std::string::npos)
      << err_;
  // JSONL of other inputs than token ids: one number or array per input.
  writeFile(path("d.jsonl"), "{\"x\": [1, 2], \"y\": 3}\n{\"x\": [0.5], "
                             "\"y\": -1.5}\n{\"x\": [1, 2]}\n");
  EXPECT_EQ(
      trainer("--data " + path("d.jsonl") + " --steps 2 --out " + path("o")),
      1);
  EXPECT_NE(err_.find("d.jsonl:3: missing key \"y\""), std::string::npos)
      << err_;
}

} // namespace
