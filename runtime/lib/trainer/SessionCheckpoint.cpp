// Checkpoints of a Session (kept apart from Checkpoint.cpp so code that
// only writes or reads checkpoint folders does not link the executor).
#include "peft/Checkpoint.h"

namespace peft::rt {

bool saveCheckpoint(const Session &session, const std::string &outDir,
                    const TrainerState &state, int keep, std::string &error) {
  CheckpointContent content;
  content.state = state;
  for (const ParamInfo &p : session.params()) {
    bool optimizerState = !p.stateOf.empty();
    bool notInAdapter = p.trainable && p.peftKey.empty();
    if (!optimizerState && !notInAdapter)
      continue;
    Tensor value;
    if (!session.getParam(p.name, value, error))
      return false;
    content.tensors.emplace_back(p.name, std::move(value));
  }
  content.writeAdapter = [&session](const std::string &dir, std::string &err) {
    return session.saveAdapter(dir, err);
  };
  return writeCheckpoint(outDir, content, keep, error);
}

bool restoreCheckpoint(Session &session, const std::string &checkpointDir,
                       TrainerState &state, std::string &error) {
  TrainerState s;
  SafeTensorsFile tensors;
  if (!readCheckpoint(checkpointDir, s, tensors, error))
    return false;
  if (s.threads != session.threads()) {
    error = checkpointDir + " was written by a run with " +
            std::to_string(s.threads) + " threads; this run has " +
            std::to_string(session.threads()) +
            ". Resuming bit for bit needs the same count: pass --threads " +
            std::to_string(s.threads);
    return false;
  }
  // A computed adapter tensor (a projected prefix's prompt_embeddings) is
  // derived state: the params it comes from are in optimizer.safetensors.
  if (!session.loadAdapter(checkpointDir, error,
                           Session::ComputedTensors::Skip))
    return false;
  for (auto &[name, value] : tensors.tensors)
    if (!session.setParam(name, value, error)) {
      error = checkpointDir + "/optimizer.safetensors: " + error;
      return false;
    }
  state = std::move(s);
  return true;
}

} // namespace peft::rt
