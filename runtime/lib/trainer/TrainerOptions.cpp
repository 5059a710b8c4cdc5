// The trainer's command line: parsing and --help (apart from Trainer.cpp so
// tests of the options do not link the executor).
#include "peft/Trainer.h"

#include <cerrno>
#include <cstdlib>

namespace peft::rt {
namespace {

bool parseInt(const std::string &option, const std::string &text, int64_t min,
              int64_t &out, std::string &error) {
  char *end = nullptr;
  errno = 0;
  long long v = std::strtoll(text.c_str(), &end, 10);
  if (text.empty() || *end != '\0' || errno == ERANGE || v < min) {
    error = option + ": expected an integer >= " + std::to_string(min) +
            ", got '" + text + "'";
    return false;
  }
  out = (int64_t)v;
  return true;
}

} // namespace

std::string trainerUsage(const std::string &argv0) {
  return "usage: " + argv0 +
         " --data PATH [--steps N | --epochs E] --out DIR [options]\n"
         "\n"
         "Fine-tunes the adapter compiled into this program and writes it in\n"
         "Hugging Face PEFT's layout (adapter_config.json +\n"
         "adapter_model.safetensors) to --out.\n"
         "\n"
         "Data and length:\n"
         "  --data PATH         training data: a .safetensors file, a folder "
         "of\n"
         "                      them (concatenated along axis 0 in name "
         "order),\n"
         "                      or a .jsonl file of token-id arrays (padded "
         "to\n"
         "                      the compiled sequence length). Each step "
         "takes\n"
         "                      batch x gradient_accumulation_steps "
         "examples;\n"
         "                      the last partial step of every epoch is "
         "dropped\n"
         "  --steps N           train until global step N (with --resume: "
         "the\n"
         "                      total, not N more)\n"
         "  --epochs E          train for E epochs (default 3 when --steps "
         "is\n"
         "                      not given either)\n"
         "  --seed S            shuffle seed (default: the spec's "
         "training.seed)\n"
         "\n"
         "Output and checkpoints:\n"
         "  --out DIR           where the final adapter and the "
         "checkpoint-N/\n"
         "                      folders go (default with --resume: the "
         "output\n"
         "                      folder resumed from)\n"
         "  --save-every N      write DIR/checkpoint-N every N steps "
         "(default\n"
         "                      500; 0: only after the last step); the "
         "newest 2\n"
         "                      are kept and DIR/latest names the newest\n"
         "  --resume DIR        continue from DIR/latest (an output folder) "
         "or\n"
         "                      from a checkpoint folder, bit for bit; needs "
         "the\n"
         "                      same --threads as the run that wrote it\n"
         "  --init-adapter DIR  start from a PEFT-layout adapter\n"
         "\n"
         "Logging and evaluation:\n"
         "  --log FILE          one JSON line per logged step (step, epoch, "
         "loss,\n"
         "                      lr, grad_norm, tokens_per_s, elapsed_s) and "
         "per\n"
         "                      evaluation (eval_loss); appended to when "
         "resuming\n"
         "  --log-every N       log every N steps (default 1)\n"
         "  --eval PATH         evaluation data (same formats as --data)\n"
         "  --eval-every N      evaluate every N steps (default: after the "
         "last\n"
         "                      step only)\n"
         "\n"
         "Execution:\n"
         "  --threads T         OpenMP threads (default: all cores)\n"
         "  --weights PATH      base weights file (default: the path given to\n"
         "                      peftc)\n"
         "  --help              this text\n"
         "\n"
         "A NaN or infinite loss or gradient norm stops training with exit "
         "code 1,\n"
         "naming the step; the last checkpoint written stays the latest.\n";
}

bool parseTrainerArgs(int argc, const char *const *argv,
                      TrainerOptions &options, std::string &error) {
  TrainerOptions o;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "--help" || arg == "-h") {
      o.help = true;
      continue;
    }
    if (arg.compare(0, 2, "--") != 0) {
      error = "unexpected argument '" + arg + "' (see --help)";
      return false;
    }
    std::string name = arg, value;
    bool haveValue = false;
    if (size_t eq = arg.find('='); eq != std::string::npos) {
      name = arg.substr(0, eq);
      value = arg.substr(eq + 1);
      haveValue = true;
    }
    auto takeValue = [&]() {
      if (haveValue)
        return true;
      if (i + 1 >= argc) {
        error = name + " needs a value";
        return false;
      }
      value = argv[++i];
      return true;
    };
    auto str = [&](std::string &out) {
      if (!takeValue())
        return false;
      if (value.empty()) {
        error = name + " needs a non-empty value";
        return false;
      }
      out = value;
      return true;
    };
    auto num = [&](int64_t &out, int64_t min) {
      return takeValue() && parseInt(name, value, min, out, error);
    };
    bool ok;
    int64_t threads = 0;
    if (name == "--data")
      ok = str(o.data);
    else if (name == "--steps")
      ok = num(o.steps, 1);
    else if (name == "--epochs")
      ok = num(o.epochs, 1);
    else if (name == "--out")
      ok = str(o.out);
    else if (name == "--resume")
      ok = str(o.resume);
    else if (name == "--init-adapter")
      ok = str(o.initAdapter);
    else if (name == "--log")
      ok = str(o.log);
    else if (name == "--eval")
      ok = str(o.eval);
    else if (name == "--eval-every")
      ok = num(o.evalEvery, 0);
    else if (name == "--save-every")
      ok = num(o.saveEvery, 0);
    else if (name == "--log-every")
      ok = num(o.logEvery, 1);
    else if (name == "--weights")
      ok = str(o.weights);
    else if (name == "--seed") {
      ok = num(o.seed, INT64_MIN);
      o.haveSeed = true;
    } else if (name == "--threads") {
      ok = num(threads, 0);
      if (ok && threads > 4096) {
        error = "--threads: " + value + " is more than 4096";
        ok = false;
      }
      o.threads = (int)threads;
    } else {
      error = "unknown option '" + name + "' (see --help)";
      return false;
    }
    if (!ok)
      return false;
  }
  if (o.help) {
    options = o;
    return true;
  }
  if (o.data.empty()) {
    error = "--data is required (see --help)";
    return false;
  }
  if (o.out.empty() && o.resume.empty()) {
    error = "--out is required (see --help)";
    return false;
  }
  if (o.steps && o.epochs) {
    error = "give --steps or --epochs, not both";
    return false;
  }
  if (!o.resume.empty() && !o.initAdapter.empty()) {
    error = "--init-adapter and --resume both given: resuming restores the "
            "adapter of the checkpoint";
    return false;
  }
  if (o.evalEvery && o.eval.empty()) {
    error = "--eval-every needs --eval";
    return false;
  }
  options = o;
  return true;
}

} // namespace peft::rt
