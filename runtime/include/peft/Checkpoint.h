// Trainer checkpoints: OUT/checkpoint-N/ folders in Hugging Face PEFT's
// adapter layout (adapter_config.json + adapter_model.safetensors) plus
// optimizer.safetensors (optimizer state and any trainable param the adapter
// does not hold, by param name) and trainer_state.json (step, data position,
// shuffle RNG state, seed, thread count).
//
// Atomicity: everything is written into OUT/checkpoint-N.tmp/, each file
// fsynced, the folder fsynced and renamed to OUT/checkpoint-N, OUT fsynced,
// then OUT/latest (one line, "checkpoint-N") is written to latest.tmp,
// fsynced and renamed over `latest` last. A crash at any point leaves
// `latest` naming a whole checkpoint (or no `latest` before the first one).
// Only the newest `keep` checkpoints (2 in the trainer) are kept.
#pragma once

#include "peft/Data.h"
#include "peft/SafeTensors.h"
#include "peft/runtime.h"

#include <functional>
#include <string>
#include <utility>
#include <vector>

namespace peft::rt {

/// Where training stands; trainer_state.json.
struct TrainerState {
  int64_t globalStep = 0;  // optimizer steps done
  DataPosition data;       // the next example to read
  std::string rngState;    // DataLoader::rngState() of data.epoch
  int64_t seed = 0;        // shuffle seed
  int threads = 0;         // Session::threads(); resume needs the same
  int64_t numExamples = 0; // of the training data, checked on resume
  int64_t rowsPerStep = 0; // batch x accumulation, checked on resume
  int64_t maxSteps = 0;    // the run's target step (informational)
};

std::string trainerStateToJson(const TrainerState &state);
/// Parses trainer_state.json text; errors name `where`.
bool trainerStateFromJson(const std::string &text, const std::string &where,
                          TrainerState &state, std::string &error);

/// One checkpoint's content, independent of a Session (tests build it by
/// hand; saveCheckpoint builds it from a Session).
struct CheckpointContent {
  TrainerState state;
  /// optimizer.safetensors, by param name.
  std::vector<std::pair<std::string, Tensor>> tensors;
  /// Writes the PEFT adapter files into the given (existing) folder.
  std::function<bool(const std::string &dir, std::string &error)> writeAdapter;
};

/// Writes OUT/checkpoint-<state.globalStep> as described above, then removes
/// all but the newest `keep` checkpoints and stale *.tmp folders. Creates
/// `outDir` when needed.
bool writeCheckpoint(const std::string &outDir,
                     const CheckpointContent &content, int keep,
                     std::string &error);

/// --resume DIR: DIR/latest names the checkpoint when DIR is an output
/// folder; otherwise DIR must itself be a checkpoint (trainer_state.json).
bool resolveCheckpoint(const std::string &dir, std::string &checkpointDir,
                       std::string &error);

/// Reads and validates trainer_state.json and optimizer.safetensors.
bool readCheckpoint(const std::string &checkpointDir, TrainerState &state,
                    SafeTensorsFile &tensors, std::string &error);

/// The checkpoint of a Session: adapter via Session::saveAdapter, params
/// with stateOf and trainable params without a peftKey into
/// optimizer.safetensors.
bool saveCheckpoint(const Session &session, const std::string &outDir,
                    const TrainerState &state, int keep, std::string &error);

/// Loads a checkpoint folder into `session` (adapter, then every tensor of
/// optimizer.safetensors) and returns its trainer state. Refuses a thread
/// count other than session.threads(): only the same count resumes bit for
/// bit.
bool restoreCheckpoint(Session &session, const std::string &checkpointDir,
                       TrainerState &state, std::string &error);

/// Crash injection for tests: with PEFTRT_CRASH_AFTER=n in the environment,
/// the process calls _exit(86) right after its n-th checkpoint file-system
/// operation (each write, fsync, mkdir, rename and removal counts once).
constexpr int kCrashExitCode = 86;
/// Restarts the operation count (a forked test child counts from zero).
void resetCheckpointOpCount();

} // namespace peft::rt
