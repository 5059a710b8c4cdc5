// The training binary's logic (`peftc model.onnx --spec s.yaml -o trainer`
// links peftrt_trainer_main, whose main() calls runTrainer with
// Program::linked()). Kept in peftrt so tests and applications can run the
// same trainer on any Program.
#pragma once

#include "peft/runtime.h"

#include <cstdint>
#include <memory>
#include <string>

namespace peft::rt {

struct TrainerOptions {
  std::string data;        // --data
  int64_t steps = 0;       // --steps: target global step (0: by epochs)
  int64_t epochs = 0;      // --epochs (0 with steps 0: 3, as HF)
  std::string out;         // --out (default with --resume: its folder)
  std::string resume;      // --resume
  std::string initAdapter; // --init-adapter
  std::string log;         // --log (JSON lines)
  std::string eval;        // --eval
  int64_t evalEvery = 0;   // --eval-every (0: only after the last step)
  int64_t saveEvery = 500; // --save-every (0: only after the last step)
  int threads = 0;         // --threads (0: OpenMP's default)
  bool haveSeed = false;   // --seed given
  int64_t seed = 0;        // --seed (shuffle seed; default: the spec's)
  int64_t logEvery = 1;    // --log-every
  std::string weights;     // --weights (default: the program's path)
  bool help = false;       // --help
};

/// The --help text.
std::string trainerUsage(const std::string &argv0);

/// Parses the command line (`--opt value` or `--opt=value`). Errors name
/// the option and the bad value.
bool parseTrainerArgs(int argc, const char *const *argv,
                      TrainerOptions &options, std::string &error);

/// Runs the trainer: parse, load data, train with checkpoints, write the
/// final adapter to --out. Returns the process exit code: 0 on success, 1 on
/// any error (reported on stderr as "trainer: error: ...").
int runTrainer(int argc, const char *const *argv,
               std::shared_ptr<const Program> program);

} // namespace peft::rt
