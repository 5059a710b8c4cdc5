#include "peft/Trainer.h"

#include "Json.h"
#include "peft/Checkpoint.h"
#include "peft/Data.h"

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <unistd.h>

namespace fs = std::filesystem;

namespace peft::rt {
namespace {

/// Checkpoints kept in --out (older ones are removed after each save).
constexpr int kKeepCheckpoints = 2;
/// Epochs when neither --steps nor --epochs is given (HF's default).
constexpr int64_t kDefaultEpochs = 3;

std::string formatDuration(double seconds) {
  if (!(seconds >= 0) || seconds > 1e7)
    return "?";
  int64_t s = (int64_t)seconds;
  char buf[32];
  if (s >= 3600)
    std::snprintf(buf, sizeof buf, "%lld:%02lld:%02lld", (long long)(s / 3600),
                  (long long)(s / 60 % 60), (long long)(s % 60));
  else
    std::snprintf(buf, sizeof buf, "%lld:%02lld", (long long)(s / 60),
                  (long long)(s % 60));
  return buf;
}

class Clock {
public:
  double seconds() const {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() -
                                         start_)
        .count();
  }

private:
  std::chrono::steady_clock::time_point start_ =
      std::chrono::steady_clock::now();
};

/// Mean loss over the eval data in consecutive micro-batches (file order;
/// a partial last micro-batch is dropped, as in training).
bool evaluate(Session &session, const Dataset &data, int64_t batchSize,
              double &meanLoss, int64_t &batches, std::string &error) {
  double sum = 0;
  batches = 0;
  std::vector<int64_t> rows((size_t)batchSize);
  for (int64_t start = 0; start + batchSize <= data.size();
       start += batchSize) {
    for (int64_t i = 0; i < batchSize; ++i)
      rows[(size_t)i] = start + i;
    double loss = 0;
    if (!session.evalLoss(data.gather(rows), loss, error)) {
      error = "evaluating " + data.path() + ": " + error;
      return false;
    }
    sum += loss;
    ++batches;
  }
  meanLoss = batches ? sum / (double)batches : 0;
  return true;
}

int fail(const std::string &message) {
  std::fprintf(stderr, "trainer: error: %s\n", message.c_str());
  return 1;
}

} // namespace

int runTrainer(int argc, const char *const *argv,
               std::shared_ptr<const Program> program) {
  Clock clock;
  TrainerOptions opt;
  std::string error;
  if (!parseTrainerArgs(argc, argv, opt, error))
    return fail(error);
  if (opt.help) {
    std::fputs(trainerUsage(argc > 0 ? argv[0] : "trainer").c_str(), stdout);
    return 0;
  }
  if (!program)
    return fail("no program to train");

  // Data.
  DataConfig config;
  if (!dataConfigFromProgram(program->ir(), "train_step", config, error))
    return fail(error);
  if (opt.haveSeed)
    config.seed = (uint64_t)opt.seed;
  std::shared_ptr<const Dataset> data = Dataset::open(opt.data, config, error);
  if (!data)
    return fail(error);
  DataLoader loader(data, config);
  if (loader.stepsPerEpoch() == 0)
    return fail(opt.data + ": holds " + std::to_string(data->size()) +
                " examples, fewer than one step needs (batch " +
                std::to_string(config.batchSize) + " x accumulation " +
                std::to_string(config.microBatches) + ")");
  std::shared_ptr<const Dataset> evalData;
  DataConfig evalConfig;
  if (!opt.eval.empty()) {
    if (!program->ir().function("loss"))
      return fail("--eval: the program has no 'loss' function to evaluate");
    if (!dataConfigFromProgram(program->ir(), "loss", evalConfig, error))
      return fail(error);
    evalData = Dataset::open(opt.eval, evalConfig, error);
    if (!evalData)
      return fail(error);
    if (evalData->size() < evalConfig.batchSize)
      return fail(opt.eval + ": holds " + std::to_string(evalData->size()) +
                  " examples, fewer than one batch (" +
                  std::to_string(evalConfig.batchSize) + ")");
  }

  // Session and starting point.
  Options sessionOptions;
  sessionOptions.threads = opt.threads;
  sessionOptions.weightsPath = opt.weights;
  std::unique_ptr<Session> session =
      Session::create(program, sessionOptions, error);
  if (!session)
    return fail(error);

  int64_t startStep = 0;
  std::string out = opt.out;
  // The checkpoint a failure leaves as the one to resume from.
  std::string lastCheckpoint;
  if (!opt.resume.empty()) {
    std::string checkpointDir;
    if (!resolveCheckpoint(opt.resume, checkpointDir, error))
      return fail(error);
    TrainerState state;
    if (!restoreCheckpoint(*session, checkpointDir, state, error))
      return fail(error);
    if (state.numExamples != data->size() ||
        state.rowsPerStep != loader.rowsPerStep())
      return fail(checkpointDir + " was written for " +
                  std::to_string(state.numExamples) + " examples, " +
                  std::to_string(state.rowsPerStep) + " per step; --data " +
                  opt.data + " has " + std::to_string(data->size()) + ", " +
                  std::to_string(loader.rowsPerStep()) + " per step");
    if (opt.haveSeed && state.seed != opt.seed)
      return fail(checkpointDir + " was written with --seed " +
                  std::to_string(state.seed) + ", not " +
                  std::to_string(opt.seed));
    config.seed = (uint64_t)state.seed;
    loader = DataLoader(data, config);
    if (!loader.seek(state.data, error))
      return fail(checkpointDir + ": " + error);
    if (loader.rngState() != state.rngState)
      return fail(checkpointDir + ": the shuffle generator state differs "
                                  "from the checkpoint's (different data "
                                  "order); cannot resume exactly");
    startStep = state.globalStep;
    lastCheckpoint = checkpointDir;
    if (out.empty())
      out = fs::exists(opt.resume + "/latest")
                ? opt.resume
                : fs::path(checkpointDir).parent_path().string();
  } else if (!opt.initAdapter.empty()) {
    if (!session->loadAdapter(opt.initAdapter, error))
      return fail(error);
  }
  int64_t targetStep = opt.steps ? opt.steps
                                 : (opt.epochs ? opt.epochs : kDefaultEpochs) *
                                       loader.stepsPerEpoch();

  std::FILE *log = nullptr;
  if (!opt.log.empty()) {
    log = std::fopen(opt.log.c_str(), opt.resume.empty() ? "w" : "a");
    if (!log)
      return fail("cannot open --log " + opt.log + ": " + std::strerror(errno));
  }
  struct LogCloser {
    std::FILE *f;
    ~LogCloser() {
      if (f)
        std::fclose(f);
    }
  } closer{log};
  bool tty = ::isatty(2);

  int64_t lastSaved = opt.resume.empty() ? -1 : startStep;
  auto state = [&](int64_t step) {
    TrainerState s;
    s.globalStep = step;
    s.data = loader.position();
    s.rngState = loader.rngState();
    s.seed = (int64_t)config.seed;
    s.threads = session->threads();
    s.numExamples = data->size();
    s.rowsPerStep = loader.rowsPerStep();
    s.maxSteps = targetStep;
    return s;
  };
  auto save = [&](int64_t step) {
    if (!saveCheckpoint(*session, out, state(step), kKeepCheckpoints, error))
      return false;
    lastSaved = step;
    lastCheckpoint = out + "/checkpoint-" + std::to_string(step);
    return true;
  };
  auto lastGood = [&]() {
    return lastCheckpoint.empty()
               ? std::string(" No checkpoint was written.")
               : " The latest checkpoint is " + lastCheckpoint + ".";
  };
  auto runEval = [&](int64_t step) {
    double loss = 0;
    int64_t batches = 0;
    if (!evaluate(*session, *evalData, evalConfig.batchSize, loss, batches,
                  error))
      return false;
    if (log) {
      std::fprintf(
          log,
          "{\"step\": %lld, \"eval_loss\": %s, \"eval_batches\": "
          "%lld, \"elapsed_s\": %s}\n",
          (long long)step, json::number(loss).c_str(), (long long)batches,
          json::number(std::round(clock.seconds() * 1000) / 1000).c_str());
      std::fflush(log);
    }
    std::fprintf(tty ? stderr : stdout, "%sstep %lld eval_loss %.6f\n",
                 tty ? "\r\033[K" : "", (long long)step, loss);
    return true;
  };

  const double loopStart = clock.seconds();
  double intervalStart = loopStart;
  int64_t intervalTokens = 0;
  for (int64_t step = startStep + 1; step <= targetStep; ++step) {
    Batch batch = loader.next();
    intervalTokens += countTokens(batch);
    StepMetrics metrics;
    if (!session->trainStep(batch, step, metrics, error)) {
      if (tty)
        std::fputs("\n", stderr);
      // Session errors name the step already.
      return fail(error + "; training stopped." + lastGood());
    }
    if (!std::isfinite(metrics.loss) || !std::isfinite(metrics.gradNorm)) {
      if (tty)
        std::fputs("\n", stderr);
      return fail("step " + std::to_string(step) + ": the " +
                  (std::isfinite(metrics.loss) ? "gradient norm" : "loss") +
                  " is " +
                  std::to_string(std::isfinite(metrics.loss) ? metrics.gradNorm
                                                             : metrics.loss) +
                  "; training stopped." + lastGood());
    }
    double now = clock.seconds();
    if (step % opt.logEvery == 0 || step == targetStep) {
      double tokensPerS = now > intervalStart
                              ? (double)intervalTokens / (now - intervalStart)
                              : 0.0;
      double epoch = (double)step / (double)loader.stepsPerEpoch();
      if (log) {
        std::fprintf(
            log,
            "{\"step\": %lld, \"epoch\": %s, \"loss\": %s, \"lr\": %s, "
            "\"grad_norm\": %s, \"tokens_per_s\": %s, \"elapsed_s\": %s}\n",
            (long long)step, json::number(epoch).c_str(),
            json::number(metrics.loss).c_str(),
            json::number(metrics.lr).c_str(),
            json::number(metrics.gradNorm).c_str(),
            json::number(std::round(tokensPerS * 10) / 10).c_str(),
            json::number(std::round(now * 1000) / 1000).c_str());
        std::fflush(log);
      }
      if (!tty)
        std::printf("step %lld/%lld loss %.6f lr %.6g grad_norm %.6g "
                    "tokens/s %.1f\n",
                    (long long)step, (long long)targetStep, metrics.loss,
                    metrics.lr, metrics.gradNorm, tokensPerS);
      std::fflush(stdout);
      intervalStart = now;
      intervalTokens = 0;
    }
    if (tty) {
      constexpr int width = 30;
      int64_t done = step - startStep, total = targetStep - startStep;
      int filled = (int)(width * step / targetStep);
      double eta = (now - loopStart) / (double)done * (double)(total - done);
      std::fprintf(stderr, "\r\033[K%lld/%lld [%.*s%*s] loss %.4f eta %s",
                   (long long)step, (long long)targetStep, filled,
                   "##############################", width - filled, "",
                   metrics.loss, formatDuration(eta).c_str());
      std::fflush(stderr);
    }
    if (opt.saveEvery && step % opt.saveEvery == 0 && step != targetStep &&
        !save(step))
      return fail(error);
    if (evalData && opt.evalEvery && step % opt.evalEvery == 0 &&
        step != targetStep && !runEval(step))
      return fail(error);
    // tokens/s measures training only, not checkpoints or evaluation.
    intervalStart += clock.seconds() - now;
  }
  if (tty)
    std::fputs("\n", stderr);
  if (evalData && !runEval(std::max(targetStep, startStep)))
    return fail(error);
  int64_t finalStep = std::max(targetStep, startStep);
  if (lastSaved != finalStep && !save(finalStep))
    return fail(error);
  if (!session->saveAdapter(out, error))
    return fail(error);
  std::fprintf(stderr, "trainer: %lld steps in %.1f s; adapter written to %s\n",
               (long long)(finalStep - startStep), clock.seconds(),
               out.c_str());
  MemoryUse memory = session->memoryUse();
  if (memory.peakRss)
    std::fprintf(
        stderr,
        "trainer: memory plan %llu bytes (arena %llu, params and "
        "state %llu, mapped weights %llu); peak RSS grew by %llu "
        "bytes besides %llu bytes of library code (%.3f of the "
        "plan)\n",
        (unsigned long long)memory.planned(), (unsigned long long)memory.arena,
        (unsigned long long)memory.owned, (unsigned long long)memory.mapped,
        (unsigned long long)memory.grown(),
        (unsigned long long)memory.libraryPages(),
        (double)memory.grown() / (double)memory.planned());
  return 0;
}

} // namespace peft::rt
