//===- SpecParser.cpp - YAML / adapter_config.json -> PeftSpec ------------===//
//
// Reads the tree YamlTree built, key by key, in PEFT's vocabulary. Every error
// names the key or value, what was expected, and where (file:line:col); an
// unknown key gets the closest valid one. The first error stops the reader.
//
//===----------------------------------------------------------------------===//
#include "frontends/spec/PatternMatch.h"
#include "frontends/spec/PeftSpec.h"
#include "frontends/spec/YamlTree.h"

#include "llvm/ADT/ArrayRef.h"
#include "llvm/ADT/STLExtras.h"
#include "llvm/ADT/StringExtras.h"
#include "llvm/ADT/Twine.h"
#include "llvm/Support/ErrorHandling.h"
#include "llvm/Support/MemoryBuffer.h"

#include <algorithm>
#include <cmath>

using namespace llvm;

namespace peft::spec {

std::string SourceLoc::str() const {
  if (!isValid())
    return file;
  return file + ":" + std::to_string(line) + ":" + std::to_string(column);
}

StringRef methodName(MethodKind kind) {
  switch (kind) {
  case MethodKind::Lora:
    return "LORA";
  case MethodKind::IA3:
    return "IA3";
  case MethodKind::BitFit:
    return "BITFIT";
  case MethodKind::FreezeLayers:
    return "FREEZE_LAYERS";
  case MethodKind::Full:
    return "FULL";
  case MethodKind::LoReFT:
    return "LOREFT";
  case MethodKind::DiReFT:
    return "DIREFT";
  case MethodKind::NoDiReFT:
    return "NODIREFT";
  case MethodKind::PromptTuning:
    return "PROMPT_TUNING";
  case MethodKind::PrefixTuning:
    return "PREFIX_TUNING";
  case MethodKind::BottleneckAdapter:
    return "BOTTLENECK";
  case MethodKind::Sparse:
    return "SPARSE";
  }
  return "UNKNOWN";
}

namespace {

//===----------------------------------------------------------------------===//
// Key tables
//===----------------------------------------------------------------------===//

const StringRef kImplementedMethods[] = {
    "LORA",   "IA3",           "BITFIT",   "FREEZE_LAYERS", "FULL",
    "LOREFT", "DIREFT",        "NODIREFT", "PROMPT_TUNING", "BOTTLENECK",
    "SEQ_BN", "DOUBLE_SEQ_BN", "PAR_BN",   "SPARSE",        "PREFIX_TUNING"};
const std::pair<StringRef, MethodKind> kImplementedMethodKinds[] = {
    {"LORA", MethodKind::Lora},
    {"IA3", MethodKind::IA3},
    {"BITFIT", MethodKind::BitFit},
    {"FREEZE_LAYERS", MethodKind::FreezeLayers},
    {"FULL", MethodKind::Full},
    {"LOREFT", MethodKind::LoReFT},
    {"DIREFT", MethodKind::DiReFT},
    {"NODIREFT", MethodKind::NoDiReFT},
    {"PROMPT_TUNING", MethodKind::PromptTuning},
    {"BOTTLENECK", MethodKind::BottleneckAdapter},
    {"SEQ_BN", MethodKind::BottleneckAdapter},
    {"DOUBLE_SEQ_BN", MethodKind::BottleneckAdapter},
    {"PAR_BN", MethodKind::BottleneckAdapter},
    {"SPARSE", MethodKind::Sparse},
    {"PREFIX_TUNING", MethodKind::PrefixTuning}};

/// Hugging Face PEFT's other peft_type values (utils/peft_types.py).
const StringRef kOtherPeftTypes[] = {"MULTITASK_PROMPT_TUNING",
                                     "P_TUNING",
                                     "ADALORA",
                                     "ADAMSS",
                                     "BOFT",
                                     "ADAPTION_PROMPT",
                                     "BEFT",
                                     "LILY",
                                     "LOHA",
                                     "LOKR",
                                     "OFT",
                                     "POLY",
                                     "LN_TUNING",
                                     "VERA",
                                     "FROD",
                                     "PVERA",
                                     "FOURIERFT",
                                     "GLORA",
                                     "XLORA",
                                     "HRA",
                                     "VBLORA",
                                     "UNILORA",
                                     "CPT",
                                     "MISS",
                                     "RANDLORA",
                                     "ROAD",
                                     "TRAINABLE_TOKENS",
                                     "HIRA",
                                     "SHIRA",
                                     "C3A",
                                     "WAVEFT",
                                     "OSF",
                                     "DELORA",
                                     "GRALORA",
                                     "CARTRIDGE",
                                     "TINYLORA",
                                     "PSOFT",
                                     "PEANUT",
                                     "SUPERTUNING",
                                     "DEFT"};

const StringRef kLoraKeys[] = {"r",
                               "lora_alpha",
                               "lora_dropout",
                               "target_modules",
                               "exclude_modules",
                               "layers_to_transform",
                               "layers_pattern",
                               "rank_pattern",
                               "alpha_pattern",
                               "bias",
                               "use_rslora",
                               "use_dora",
                               "init_lora_weights",
                               "fan_in_fan_out",
                               "modules_to_save"};
const StringRef kIa3Keys[] = {"target_modules",      "exclude_modules",
                              "feedforward_modules", "fan_in_fan_out",
                              "init_ia3_weights",    "modules_to_save"};
const StringRef kBitFitKeys[] = {"biases", "modules_to_save"};
const StringRef kFreezeLayersKeys[] = {"trainable_layers", "last_n_layers",
                                       "modules_to_save"};
/// pyreft's intervention options (examples/loreft/train.py), plus where the
/// data keeps each example's prompt length.
const StringRef kReftKeys[] = {
    "layers",         "positions",      "low_rank_dimension", "share_weights",
    "component",      "dropout",        "add_bias",           "act_fn",
    "prompt_lengths", "position_offset"};

/// The `adapters` library's BnConfig fields (configuration/adapter_config.py)
/// plus `config` (the preset a BOTTLENECK entry starts from) and the
/// adapter's name. The library's features peftc lacks are accepted only
/// switched off (checked in readBottleneckKey).
const StringRef kBottleneckKeys[] = {"config",
                                     "adapter_name",
                                     "mh_adapter",
                                     "output_adapter",
                                     "reduction_factor",
                                     "non_linearity",
                                     "scaling",
                                     "original_ln_before",
                                     "original_ln_after",
                                     "residual_before_ln",
                                     "adapter_residual_before_ln",
                                     "ln_before",
                                     "ln_after",
                                     "init_weights",
                                     "init_weights_seed",
                                     "is_parallel",
                                     "use_gating",
                                     "leave_out",
                                     "dropout",
                                     "phm_layer",
                                     "inv_adapter",
                                     "inv_adapter_reduction_factor",
                                     "cross_adapter",
                                     "stochastic_depth",
                                     "architecture"};
/// PEFT's PromptTuningConfig fields (tuners/prompt_tuning/config.py), plus
/// the token ids a TEXT init reads (peftc has no tokenizer).
const StringRef kPromptTuningKeys[] = {"num_virtual_tokens",
                                       "prompt_tuning_init",
                                       "prompt_tuning_init_text",
                                       "prompt_tuning_init_token_ids",
                                       "tokenizer_name_or_path",
                                       "tokenizer_kwargs",
                                       "token_dim",
                                       "num_transformer_submodules",
                                       "num_attention_heads",
                                       "num_layers",
                                       "modules_to_save"};

/// PEFT's PrefixTuningConfig fields (tuners/prefix_tuning/config.py and
/// PromptLearningConfig).
const StringRef kPrefixTuningKeys[] = {"num_virtual_tokens",
                                       "prefix_projection",
                                       "encoder_hidden_size",
                                       "token_dim",
                                       "num_transformer_submodules",
                                       "num_attention_heads",
                                       "num_layers",
                                       "modules_to_save"};

/// Sparse fine-tuning (spec::SparseConfig); target_modules and
/// exclude_modules match as LoRA's do.
const StringRef kSparseKeys[] = {"target_modules", "exclude_modules", "density",
                                 "selection", "seed"};

/// PEFT's bookkeeping in every adapter_config.json: accepted, not used.
const StringRef kIgnoredKeys[] = {
    "base_model_name_or_path", "revision",     "task_type",
    "inference_mode",          "auto_mapping", "peft_version"};
/// LoraConfig keys that only qualify another, unsupported feature; PEFT
/// writes them with their defaults into every adapter_config.json.
const StringRef kIgnoredLoraKeys[] = {"megatron_core", "qalora_group_size",
                                      "runtime_config"};
/// LoraConfig features peftc does not implement. An adapter_config.json
/// carries them switched off (null, false, {} or []), which is accepted.
const StringRef kLoraOffOnlyKeys[] = {
    "lora_bias", "use_qalora", "ensure_weight_tying", "megatron_config",
    "loftq_config", "eva_config", "corda_config", "lora_ga_config",
    "velora_config", "monteclora_config", "kasa_config", "arrow_config",
    "use_bdlora", "layer_replication", "trainable_token_indices",
    "target_parameters", "alora_invocation_tokens",
    // PEFT <= 0.3 wrote these two.
    "enable_lora", "merge_weights"};

const StringRef kTopLevelKeys[] = {"methods", "training", "peft_type"};
const StringRef kTrainingKeys[] = {
    "inputs",      "loss",          "optimizer",
    "schedule",    "max_grad_norm", "gradient_accumulation_steps",
    "seed",        "batch_size",    "shuffle",
    "pad_token_id"};

ArrayRef<StringRef> methodKeys(MethodKind kind) {
  switch (kind) {
  case MethodKind::Lora:
    return kLoraKeys;
  case MethodKind::IA3:
    return kIa3Keys;
  case MethodKind::BitFit:
    return kBitFitKeys;
  case MethodKind::FreezeLayers:
    return kFreezeLayersKeys;
  case MethodKind::LoReFT:
  case MethodKind::DiReFT:
  case MethodKind::NoDiReFT:
    return kReftKeys;
  case MethodKind::BottleneckAdapter:
    return kBottleneckKeys;
  case MethodKind::PromptTuning:
    return kPromptTuningKeys;
  case MethodKind::Sparse:
    return kSparseKeys;
  case MethodKind::PrefixTuning:
    return kPrefixTuningKeys;
  default:
    return {};
  }
}

bool contains(ArrayRef<StringRef> list, StringRef value) {
  return llvm::is_contained(list, value);
}

/// The candidate closest to `word` by edit distance, if it is close enough
/// to be a plausible typo; otherwise a candidate `word` is a fragment of
/// ("alpha" for "lora_alpha") or that is a fragment of `word`.
std::optional<StringRef> closest(StringRef word,
                                 ArrayRef<StringRef> candidates) {
  std::optional<StringRef> best;
  unsigned bestDistance = ~0u;
  for (StringRef candidate : candidates) {
    unsigned distance = word.edit_distance_insensitive(candidate);
    if (distance < bestDistance) {
      bestDistance = distance;
      best = candidate;
    }
  }
  if (best && bestDistance <= std::max<size_t>(2, word.size() / 3))
    return best;
  if (word.size() >= 3)
    for (StringRef candidate : candidates)
      if (candidate.contains_insensitive(word))
        return candidate;
  for (StringRef candidate : candidates)
    if (candidate.size() >= 4 && word.contains_insensitive(candidate))
      return candidate;
  return std::nullopt;
}

std::string joinQuoted(ArrayRef<StringRef> words) {
  std::string result;
  for (StringRef word : words) {
    if (!result.empty())
      result += ", ";
    result += "'" + word.str() + "'";
  }
  return result;
}

/// peft_type values compare as PEFT writes them: upper case, '_' between
/// words ("freeze-layers" reads as FREEZE_LAYERS).
std::string canonicalMethodName(StringRef text) {
  std::string name = text.upper();
  std::replace(name.begin(), name.end(), '-', '_');
  return name;
}

//===----------------------------------------------------------------------===//
// The reader
//===----------------------------------------------------------------------===//

class SpecReader {
public:
  std::string error;

  bool fail(const SourceLoc &loc, const Twine &message) {
    if (error.empty())
      error = loc.str() + ": error: " + message.str();
    return false;
  }
  bool failWithNote(const SourceLoc &loc, const Twine &message,
                    const SourceLoc &noteLoc, const Twine &note) {
    fail(loc, message);
    error += "\n" + noteLoc.str() + ": note: " + note.str();
    return false;
  }

  bool readSpec(const YamlNode &root, PeftSpec &spec);

private:
  // Scalars.
  bool readInt(const YamlEntry &entry, int64_t &out);
  bool readInt(const YamlEntry &entry, const YamlNode &node, int64_t &out);
  bool readDouble(const YamlEntry &entry, double &out);
  bool readDouble(const YamlEntry &entry, const YamlNode &node, double &out);
  bool readBool(const YamlEntry &entry, bool &out);
  bool readString(const YamlEntry &entry, std::string &out);
  bool readString(const YamlEntry &entry, const YamlNode &node,
                  std::string &out);
  bool readPositiveInt(const YamlEntry &entry, int64_t &out);
  bool readNonNegativeInt(const YamlEntry &entry, int64_t &out);
  bool readStringList(const YamlEntry &entry,
                      std::vector<Located<std::string>> &out);
  bool readChoice(const YamlEntry &entry, ArrayRef<StringRef> choices,
                  std::string &out);
  bool checkRegex(const YamlEntry &entry, const YamlNode &node,
                  StringRef pattern);

  // Shared PEFT fields.
  bool readSelector(const YamlEntry &entry, ModuleSelector &out,
                    bool allowAllLinear);
  bool readModulesToSave(const YamlEntry &entry,
                         std::vector<Located<std::string>> &out);
  bool readPatternMap(const YamlEntry &entry, std::vector<PatternEntry> &out,
                      bool isRank);

  // Keys.
  bool unknownKey(const YamlEntry &entry, StringRef where,
                  ArrayRef<StringRef> validKeys,
                  std::optional<MethodKind> method = std::nullopt);
  bool isIgnoredMethodKey(const YamlEntry &entry, MethodKind kind,
                          bool &ignored);

  // Methods.
  bool readMethod(const YamlNode &node, bool flat, PeftSpec &spec);
  bool readMethodKind(const YamlEntry &entry, MethodKind &kind);
  bool readLoraKey(const YamlEntry &entry, LoraConfig &config);
  bool readIa3Key(const YamlEntry &entry, IA3Config &config);
  bool readBitFitKey(const YamlEntry &entry, BitFitConfig &config);
  bool readFreezeLayersKey(const YamlEntry &entry, FreezeLayersConfig &config);
  bool readReftKey(const YamlEntry &entry, ReftConfig &config);
  bool readReftLayers(const YamlEntry &entry, ReftConfig &config);
  bool readBottleneckKey(const YamlEntry &entry, BottleneckConfig &config);
  bool readPromptTuningKey(const YamlEntry &entry, PromptTuningConfig &config,
                           std::string &initText);
  bool readSparseKey(const YamlEntry &entry, SparseConfig &config);
  bool readPrefixTuningKey(const YamlEntry &entry, PrefixTuningConfig &config);
  /// PEFT's prompt-learning keys that peftc accepts only at their
  /// single-stack values: num_transformer_submodules 1 (`stack` says what
  /// the method prefixes) and an empty modules_to_save (`why` says why).
  bool readSingleStack(const YamlEntry &entry, StringRef method,
                       StringRef stack, StringRef why);
  bool checkLora(const YamlNode &node, const LoraConfig &config);
  bool checkIa3(const YamlNode &node, const IA3Config &config);
  bool checkFreezeLayers(const YamlNode &node,
                         const FreezeLayersConfig &config);
  bool checkComposition(const PeftSpec &spec);

  // Training.
  bool readTraining(const YamlEntry &entry, TrainingSpec &training);
  bool readInputs(const YamlEntry &entry, std::vector<InputShape> &inputs);
  bool readLoss(const YamlEntry &entry, LossSpec &loss);
  bool readOptimizer(const YamlEntry &entry, OptimizerSpec &optimizer);
  bool readSchedule(const YamlEntry &entry, ScheduleSpec &schedule);

  /// Where the value is: the value's own position, or its key's when the
  /// value is empty.
  static const SourceLoc &valueLoc(const YamlEntry &entry) {
    return entry.value->loc.isValid() ? entry.value->loc : entry.keyLoc;
  }
  bool expected(const YamlEntry &entry, const YamlNode &node,
                const Twine &what) {
    return fail(node.loc.isValid() ? node.loc : entry.keyLoc,
                "'" + entry.key + "' expects " + what + ", got " +
                    node.describe());
  }
};

//===----------------------------------------------------------------------===//
// Scalars
//===----------------------------------------------------------------------===//

bool SpecReader::readInt(const YamlEntry &entry, const YamlNode &node,
                         int64_t &out) {
  if (!node.isScalar() || node.quoted || node.isNull() ||
      StringRef(node.scalar).getAsInteger(10, out))
    return expected(entry, node, "an integer");
  return true;
}

bool SpecReader::readInt(const YamlEntry &entry, int64_t &out) {
  return readInt(entry, *entry.value, out);
}

bool SpecReader::readPositiveInt(const YamlEntry &entry, int64_t &out) {
  if (!readInt(entry, out))
    return false;
  if (out <= 0)
    return fail(valueLoc(entry), "'" + entry.key +
                                     "' must be a positive integer, got " +
                                     Twine(out));
  return true;
}

bool SpecReader::readNonNegativeInt(const YamlEntry &entry, int64_t &out) {
  if (!readInt(entry, out))
    return false;
  if (out < 0)
    return fail(valueLoc(entry),
                "'" + entry.key + "' must be >= 0, got " + Twine(out));
  return true;
}

bool SpecReader::readDouble(const YamlEntry &entry, const YamlNode &node,
                            double &out) {
  if (!node.isScalar() || node.quoted || node.isNull() ||
      StringRef(node.scalar).getAsDouble(out) || !std::isfinite(out))
    return expected(entry, node, "a number");
  return true;
}

bool SpecReader::readDouble(const YamlEntry &entry, double &out) {
  return readDouble(entry, *entry.value, out);
}

bool SpecReader::readBool(const YamlEntry &entry, bool &out) {
  const YamlNode &node = *entry.value;
  if (node.isScalar() && !node.quoted) {
    StringRef text = node.scalar;
    if (text == "true" || text == "True" || text == "TRUE") {
      out = true;
      return true;
    }
    if (text == "false" || text == "False" || text == "FALSE") {
      out = false;
      return true;
    }
  }
  return expected(entry, node, "true or false");
}

bool SpecReader::readString(const YamlEntry &entry, const YamlNode &node,
                            std::string &out) {
  if (!node.isScalar() || node.isNull())
    return expected(entry, node, "a string");
  out = node.scalar;
  return true;
}

bool SpecReader::readString(const YamlEntry &entry, std::string &out) {
  return readString(entry, *entry.value, out);
}

bool SpecReader::readChoice(const YamlEntry &entry, ArrayRef<StringRef> choices,
                            std::string &out) {
  const YamlNode &node = *entry.value;
  if (!node.isScalar() || node.isNull())
    return expected(entry, node, "one of " + joinQuoted(choices));
  if (contains(choices, node.scalar)) {
    out = node.scalar;
    return true;
  }
  std::string message = "'" + entry.key + "' expects one of " +
                        joinQuoted(choices) + ", got '" + node.scalar + "'";
  if (auto suggestion = closest(node.scalar, choices))
    message += "; did you mean '" + suggestion->str() + "'?";
  return fail(valueLoc(entry), message);
}

bool SpecReader::readStringList(const YamlEntry &entry,
                                std::vector<Located<std::string>> &out) {
  const YamlNode &node = *entry.value;
  if (!node.isSequence())
    return expected(entry, node, "a list of strings");
  for (const auto &item : node.items) {
    Located<std::string> value;
    if (!readString(entry, *item, value.value))
      return false;
    if (value.value.empty())
      return fail(item->loc, "'" + entry.key + "' has an empty name");
    value.loc = item->loc;
    out.push_back(std::move(value));
  }
  return true;
}

bool SpecReader::checkRegex(const YamlEntry &entry, const YamlNode &node,
                            StringRef pattern) {
  std::string why;
  if (!isValidPathRegex(pattern, why))
    return fail(node.loc.isValid() ? node.loc : entry.keyLoc,
                "'" + entry.key + "': '" + pattern +
                    "' is not a valid regular expression: " + why);
  return true;
}

//===----------------------------------------------------------------------===//
// Shared PEFT fields
//===----------------------------------------------------------------------===//

bool SpecReader::readSelector(const YamlEntry &entry, ModuleSelector &out,
                              bool allowAllLinear) {
  const YamlNode &node = *entry.value;
  out = ModuleSelector();
  out.loc = valueLoc(entry);
  if (node.isNull())
    return true;
  if (node.isScalar()) {
    if (allowAllLinear &&
        StringRef(node.scalar).equals_insensitive("all-linear")) {
      out.kind = ModuleSelector::Kind::AllLinear;
      return true;
    }
    if (node.scalar.empty())
      return fail(out.loc, "'" + entry.key + "' is an empty string");
    if (!checkRegex(entry, node, node.scalar))
      return false;
    out.kind = ModuleSelector::Kind::Regex;
    out.regex = node.scalar;
    return true;
  }
  if (!node.isSequence())
    return expected(entry, node,
                    "a list of module names or a regular expression string");
  if (!readStringList(entry, out.names))
    return false;
  if (out.names.empty()) {
    if (entry.key != "target_modules")
      return true; // an empty exclusion list excludes nothing
    return fail(out.loc, "'target_modules' is an empty list; name the "
                         "modules to adapt (e.g. [q_proj, v_proj]) or use "
                         "\"all-linear\"");
  }
  out.kind = ModuleSelector::Kind::Names;
  return true;
}

bool SpecReader::readModulesToSave(const YamlEntry &entry,
                                   std::vector<Located<std::string>> &out) {
  out.clear();
  if (entry.value->isNull())
    return true;
  if (!readStringList(entry, out))
    return false;
  // PEFT splices these names into a regular expression to keep adapters off
  // the saved modules, so they must be valid patterns.
  for (const auto &name : out) {
    std::string why;
    if (!isValidPathRegex(name.value, why))
      return fail(name.loc, "'modules_to_save': '" + name.value +
                                "' is not a valid module name pattern: " + why);
  }
  return true;
}

bool SpecReader::readPatternMap(const YamlEntry &entry,
                                std::vector<PatternEntry> &out, bool isRank) {
  const YamlNode &node = *entry.value;
  out.clear();
  if (node.isNull())
    return true;
  if (!node.isMapping())
    return expected(entry, node,
                    "a mapping from module-name pattern to " +
                        Twine(isRank ? "rank" : "alpha"));
  for (const YamlEntry &item : node.entries) {
    PatternEntry pattern;
    pattern.pattern = item.key;
    pattern.loc = item.keyLoc;
    std::string why;
    if (!isValidPathRegex(item.key, why))
      return fail(item.keyLoc,
                  "'" + entry.key + "' key '" + item.key +
                      "' is not a valid regular expression: " + why);
    if (isRank) {
      int64_t rank;
      if (!readInt(item, rank))
        return false;
      if (rank <= 0)
        return fail(valueLoc(item),
                    "'" + entry.key + "' rank for '" + item.key +
                        "' must be a positive integer, got " + Twine(rank));
      pattern.value = static_cast<double>(rank);
    } else {
      if (!readDouble(item, pattern.value))
        return false;
      if (pattern.value <= 0)
        return fail(valueLoc(item), "'" + entry.key + "' alpha for '" +
                                        item.key + "' must be positive");
    }
    out.push_back(std::move(pattern));
  }
  return true;
}

//===----------------------------------------------------------------------===//
// Keys
//===----------------------------------------------------------------------===//

bool SpecReader::unknownKey(const YamlEntry &entry, StringRef where,
                            ArrayRef<StringRef> validKeys,
                            std::optional<MethodKind> method) {
  // A key of another method is the likeliest mistake: say whose it is.
  if (method) {
    // Methods whose options have plain names (dropout, layers, positions).
    auto isPlainNamed = [](MethodKind kind) {
      return kind == MethodKind::LoReFT || kind == MethodKind::DiReFT ||
             kind == MethodKind::NoDiReFT ||
             kind == MethodKind::BottleneckAdapter;
    };
    for (const auto &[other, otherKind] : kImplementedMethodKinds) {
      if (otherKind == *method || !contains(methodKeys(otherKind), entry.key))
        continue;
      // Plain names (ReFT's or a bottleneck adapter's dropout, layers,
      // positions) are more likely a typo of this method's own key than an
      // option of those methods.
      if (isPlainNamed(otherKind) && !isPlainNamed(*method))
        continue;
      std::string message = "'" + entry.key + "' is not an option of " +
                            methodName(*method).str() +
                            " methods (it belongs to " + other.str() + ")";
      if (entry.key == "bias" && *method == MethodKind::BitFit)
        message += "; a BITFIT method selects biases with 'biases' (all, or "
                   "module names)";
      else if (entry.key == "bias")
        message += "; to train biases without LoRA add a BITFIT method "
                   "(peft_type: BITFIT)";
      return fail(entry.keyLoc, message);
    }
  }
  std::string message = "unknown key '" + entry.key + "' in " + where.str();
  if (auto suggestion = closest(entry.key, validKeys))
    message += "; did you mean '" + suggestion->str() + "'?";
  else if (validKeys.empty())
    message += "; it takes no keys";
  else
    message += "; expected one of " + joinQuoted(validKeys);
  return fail(entry.keyLoc, message);
}

/// A node PEFT writes for a feature that is switched off.
bool isOffValue(const YamlNode &node) {
  if (node.isNull())
    return true;
  if (node.isScalar() && !node.quoted &&
      (node.scalar == "false" || node.scalar == "False"))
    return true;
  if (node.isMapping())
    return node.entries.empty();
  if (node.isSequence())
    return node.items.empty();
  return false;
}

bool SpecReader::isIgnoredMethodKey(const YamlEntry &entry, MethodKind kind,
                                    bool &ignored) {
  ignored = true;
  if (contains(kIgnoredKeys, entry.key))
    return true;
  if (kind == MethodKind::Lora) {
    if (contains(kIgnoredLoraKeys, entry.key))
      return true;
    if (contains(kLoraOffOnlyKeys, entry.key)) {
      if (isOffValue(*entry.value))
        return true;
      return fail(valueLoc(entry),
                  "'" + entry.key +
                      "' is a PEFT LoRA feature peftc does not "
                      "support yet; remove it or set it to " +
                      (entry.value->isScalar() ? "false" : "null"));
    }
  }
  ignored = false;
  return true;
}

//===----------------------------------------------------------------------===//
// Methods
//===----------------------------------------------------------------------===//

bool SpecReader::readMethodKind(const YamlEntry &entry, MethodKind &kind) {
  std::string text;
  if (!readString(entry, text))
    return false;
  std::string name = canonicalMethodName(text);
  for (const auto &[known, knownKind] : kImplementedMethodKinds)
    if (name == known) {
      kind = knownKind;
      return true;
    }
  std::string supported = "supported: " + joinQuoted(kImplementedMethods);
  if (contains(kOtherPeftTypes, name))
    return fail(valueLoc(entry), "peft_type '" + text +
                                     "' is a PEFT method peftc does not "
                                     "support yet; " +
                                     supported);
  if (name == "DORA")
    return fail(valueLoc(entry), "peft_type 'DORA' is not a PEFT type: DoRA is "
                                 "'peft_type: LORA' with 'use_dora: true'");
  std::vector<StringRef> all(std::begin(kImplementedMethods),
                             std::end(kImplementedMethods));
  std::string message =
      "peft_type '" + text + "' is not supported (unknown method)";
  if (auto suggestion = closest(name, all))
    message += "; did you mean '" + suggestion->str() + "'?";
  return fail(valueLoc(entry), message + "; " + supported);
}

bool SpecReader::readLoraKey(const YamlEntry &entry, LoraConfig &config) {
  const YamlNode &value = *entry.value;
  StringRef key = entry.key;
  if (key == "r")
    return readPositiveInt(entry, config.r);
  if (key == "lora_alpha") {
    if (!readDouble(entry, config.loraAlpha))
      return false;
    if (config.loraAlpha <= 0)
      return fail(valueLoc(entry),
                  "'lora_alpha' must be positive, got " + value.scalar);
    return true;
  }
  if (key == "lora_dropout") {
    if (!readDouble(entry, config.loraDropout))
      return false;
    if (config.loraDropout < 0 || config.loraDropout >= 1)
      return fail(valueLoc(entry),
                  "'lora_dropout' is a probability in [0, 1), got " +
                      value.scalar);
    return true;
  }
  if (key == "target_modules")
    return readSelector(entry, config.targetModules, /*allowAllLinear=*/true);
  if (key == "exclude_modules")
    return readSelector(entry, config.excludeModules, false);
  if (key == "layers_to_transform") {
    config.layersToTransform.clear();
    if (value.isNull())
      return true;
    if (value.isScalar()) {
      int64_t layer;
      if (!readNonNegativeInt(entry, layer))
        return false;
      config.layersToTransform.push_back(layer);
      return true;
    }
    if (!value.isSequence())
      return expected(entry, value, "a layer index or a list of them");
    for (const auto &item : value.items) {
      int64_t layer;
      if (!readInt(entry, *item, layer))
        return false;
      if (layer < 0)
        return fail(item->loc, "'layers_to_transform' has a negative layer "
                               "index " +
                                   Twine(layer));
      config.layersToTransform.push_back(layer);
    }
    return true;
  }
  if (key == "layers_pattern") {
    config.layersPattern.clear();
    if (value.isNull())
      return true;
    std::vector<const YamlNode *> items;
    if (value.isScalar())
      items.push_back(&value);
    else if (value.isSequence())
      for (const auto &item : value.items)
        items.push_back(item.get());
    else
      return expected(entry, value, "a string or a list of strings");
    for (const YamlNode *item : items) {
      std::string pattern;
      if (!readString(entry, *item, pattern))
        return false;
      if (!checkRegex(entry, *item, pattern))
        return false;
      config.layersPattern.push_back(pattern);
    }
    return true;
  }
  if (key == "rank_pattern")
    return readPatternMap(entry, config.rankPattern, /*isRank=*/true);
  if (key == "alpha_pattern")
    return readPatternMap(entry, config.alphaPattern, /*isRank=*/false);
  if (key == "bias") {
    std::string bias;
    if (!readChoice(entry, {"none", "all", "lora_only"}, bias))
      return false;
    config.bias = bias == "none"  ? LoraBias::None
                  : bias == "all" ? LoraBias::All
                                  : LoraBias::LoraOnly;
    return true;
  }
  if (key == "use_rslora")
    return readBool(entry, config.useRslora);
  if (key == "use_dora")
    return readBool(entry, config.useDora);
  if (key == "fan_in_fan_out")
    return readBool(entry, config.fanInFanOut);
  if (key == "init_lora_weights") {
    if (value.isScalar() && !value.quoted &&
        (value.scalar == "true" || value.scalar == "True" ||
         value.scalar == "false" || value.scalar == "False")) {
      bool init;
      readBool(entry, init);
      config.initLoraWeights = init ? LoraInit::Default : LoraInit::Random;
      return true;
    }
    if (value.isScalar() && value.scalar == "gaussian") {
      config.initLoraWeights = LoraInit::Gaussian;
      return true;
    }
    static const StringRef laterInits[] = {"eva",   "olora",  "pissa",
                                           "corda", "loftq",  "orthogonal",
                                           "mica",  "lora_ga"};
    if (value.isScalar() &&
        (contains(laterInits, value.scalar) ||
         StringRef(value.scalar).starts_with("pissa_niter_")))
      return fail(valueLoc(entry), "init_lora_weights '" + value.scalar +
                                       "' is not supported yet; use true, "
                                       "false or \"gaussian\"");
    return expected(entry, value, "true, false or \"gaussian\"");
  }
  if (key == "modules_to_save")
    return readModulesToSave(entry, config.modulesToSave);
  llvm_unreachable("readMethod passes only keys listed in kLoraKeys");
}

bool SpecReader::readIa3Key(const YamlEntry &entry, IA3Config &config) {
  StringRef key = entry.key;
  if (key == "target_modules")
    return readSelector(entry, config.targetModules, /*allowAllLinear=*/true);
  if (key == "exclude_modules")
    return readSelector(entry, config.excludeModules, false);
  if (key == "feedforward_modules")
    return readSelector(entry, config.feedforwardModules, false);
  if (key == "fan_in_fan_out")
    return readBool(entry, config.fanInFanOut);
  if (key == "init_ia3_weights")
    return readBool(entry, config.initIa3Weights);
  if (key == "modules_to_save")
    return readModulesToSave(entry, config.modulesToSave);
  llvm_unreachable("readMethod passes only keys listed in kIa3Keys");
}

bool SpecReader::readSparseKey(const YamlEntry &entry, SparseConfig &config) {
  StringRef key = entry.key;
  if (key == "target_modules")
    return readSelector(entry, config.targetModules, /*allowAllLinear=*/true);
  if (key == "exclude_modules")
    return readSelector(entry, config.excludeModules, false);
  if (key == "density") {
    if (!readDouble(entry, config.density))
      return false;
    if (!(config.density > 0 && config.density <= 1))
      return fail(valueLoc(entry),
                  "'density' is the share of each weight's entries that "
                  "train and must lie in (0, 1], got " +
                      Twine(entry.value->scalar) +
                      "; e.g. 0.05 trains 5% of the entries");
    return true;
  }
  if (key == "selection") {
    std::string selection;
    if (!readChoice(entry, {"magnitude", "random"}, selection))
      return false;
    config.selection = selection == "magnitude" ? SparseSelection::Magnitude
                                                : SparseSelection::Random;
    return true;
  }
  if (key == "seed")
    return readNonNegativeInt(entry, config.seed);
  llvm_unreachable("readMethod passes only keys listed in kSparseKeys");
}

bool SpecReader::readBitFitKey(const YamlEntry &entry, BitFitConfig &config) {
  if (entry.key == "modules_to_save")
    return readModulesToSave(entry, config.modulesToSave);
  // biases: all | [module names] | "regex". JSON quotes every string, and
  // toJson writes "all": a quoted "all" is all biases too (as a regex it
  // could only name a module called "all").
  const YamlNode &value = *entry.value;
  if (value.isNull() || (value.isScalar() && value.scalar == "all")) {
    config.allBiases = true;
    config.biases = ModuleSelector();
    return true;
  }
  config.allBiases = false;
  if (!readSelector(entry, config.biases, /*allowAllLinear=*/false))
    return false;
  if (!config.biases.isSet())
    return fail(valueLoc(entry), "'biases' is an empty list; use 'all' or "
                                 "name the modules whose bias trains");
  return true;
}

bool SpecReader::readFreezeLayersKey(const YamlEntry &entry,
                                     FreezeLayersConfig &config) {
  const YamlNode &value = *entry.value;
  if (entry.key == "modules_to_save")
    return readModulesToSave(entry, config.modulesToSave);
  if (entry.key == "last_n_layers") {
    if (value.isNull()) {
      config.lastNLayers.reset();
      return true;
    }
    Located<int64_t> count;
    if (!readPositiveInt(entry, count.value))
      return false;
    count.loc = valueLoc(entry);
    config.lastNLayers = count;
    return true;
  }
  // trainable_layers: an index or a list of indices.
  config.trainableLayers.clear();
  if (value.isNull())
    return true;
  std::vector<const YamlNode *> items;
  if (value.isScalar())
    items.push_back(&value);
  else if (value.isSequence())
    for (const auto &item : value.items)
      items.push_back(item.get());
  else
    return expected(entry, value, "a layer index or a list of them");
  for (const YamlNode *item : items) {
    Located<int64_t> layer;
    if (!readInt(entry, *item, layer.value))
      return false;
    if (layer.value < 0)
      return fail(item->loc, "'trainable_layers' has a negative layer index " +
                                 Twine(layer.value));
    layer.loc = item->loc;
    config.trainableLayers.push_back(layer);
  }
  if (config.trainableLayers.empty())
    return fail(valueLoc(entry), "'trainable_layers' is an empty list");
  return true;
}

bool SpecReader::readReftLayers(const YamlEntry &entry, ReftConfig &config) {
  const YamlNode &value = *entry.value;
  config.layers.clear();
  config.allLayers = false;
  config.layersLoc = valueLoc(entry);
  if (value.isScalar() && value.scalar == "all") {
    config.allLayers = true;
    return true;
  }
  // A list, one index, or pyreft's command-line form "2;10;18".
  std::vector<std::pair<std::string, SourceLoc>> items;
  if (value.isSequence()) {
    for (const auto &item : value.items) {
      if (!item->isScalar() || item->isNull())
        return expected(entry, *item, "a layer index");
      items.push_back({item->scalar, item->loc});
    }
  } else if (value.isScalar() && !value.isNull()) {
    SmallVector<StringRef> parts;
    StringRef(value.scalar).split(parts, ';');
    for (StringRef part : parts)
      items.push_back({part.trim().str(), value.loc});
  } else {
    return expected(entry, value,
                    "'all', a layer index or a list of layer indices");
  }
  for (const auto &[text, loc] : items) {
    Located<int64_t> layer;
    if (StringRef(text).getAsInteger(10, layer.value))
      return fail(loc, "'layers' expects 'all' or layer indices, got '" + text +
                           "'");
    if (layer.value < 0)
      return fail(loc,
                  "'layers' has a negative layer index " + Twine(layer.value));
    for (const auto &seen : config.layers)
      if (seen.value == layer.value)
        return failWithNote(
            loc, "layer " + Twine(layer.value) + " is listed twice in 'layers'",
            seen.loc, "first listed here");
    layer.loc = loc;
    config.layers.push_back(layer);
  }
  if (config.layers.empty())
    return fail(valueLoc(entry), "'layers' is an empty list");
  return true;
}

bool SpecReader::readReftKey(const YamlEntry &entry, ReftConfig &config) {
  const YamlNode &value = *entry.value;
  StringRef key = entry.key;
  if (key == "layers")
    return readReftLayers(entry, config);
  if (key == "positions") {
    // pyreft's parse_positions: "f<n>+l<m>", "f<n>" or "l<m>".
    std::string text;
    if (!readString(entry, text))
      return false;
    StringRef rest = StringRef(text).trim();
    int64_t first = 0, last = 0;
    auto count = [&](char prefix, int64_t &out) {
      if (!rest.consume_front(StringRef(&prefix, 1)))
        return false;
      size_t digits = rest.find_first_not_of("0123456789");
      StringRef number = rest.take_front(digits);
      rest = rest.drop_front(number.size());
      return !number.empty() && !number.getAsInteger(10, out);
    };
    bool ok;
    if (rest.starts_with("f")) {
      ok = count('f', first);
      if (ok && rest.consume_front("+"))
        ok = count('l', last);
    } else {
      ok = count('l', last);
    }
    if (!ok || !rest.empty())
      return fail(valueLoc(entry),
                  "'positions' expects pyreft's form \"f<n>+l<m>\", "
                  "\"f<n>\" or \"l<m>\" (first/last prompt tokens), got '" +
                      text + "'");
    if (first + last < 1)
      return fail(valueLoc(entry),
                  "'positions' selects no token: '" + text + "'");
    config.firstN = first;
    config.lastN = last;
    return true;
  }
  if (key == "low_rank_dimension")
    return readPositiveInt(entry, config.lowRankDimension);
  if (key == "share_weights")
    return readBool(entry, config.shareWeights);
  if (key == "component") {
    std::string component;
    const StringRef components[] = {"block_output"};
    return readChoice(entry, components, component);
  }
  if (key == "dropout") {
    if (!readDouble(entry, config.dropout))
      return false;
    if (config.dropout < 0 || config.dropout >= 1)
      return fail(valueLoc(entry), "'dropout' must be in [0, 1), got " +
                                       std::to_string(config.dropout));
    return true;
  }
  if (key == "add_bias")
    return readBool(entry, config.addBias);
  if (key == "act_fn") {
    // pyreft's default (None) is the identity, ACT2FN["linear"].
    if (value.isNull() || (value.isScalar() && value.scalar == "linear"))
      return true;
    return fail(valueLoc(entry),
                "'act_fn' other than linear (null) is not supported yet; "
                "pyreft's default is linear");
  }
  if (key == "prompt_lengths") {
    if (!readString(entry, config.promptLengths))
      return false;
    if (config.promptLengths.empty())
      return fail(valueLoc(entry), "'prompt_lengths' is an empty name");
    return true;
  }
  if (key == "position_offset")
    return readNonNegativeInt(entry, config.positionOffset);
  llvm_unreachable("readMethod passes only keys listed in kReftKeys");
}

/// The `adapters` library's presets (SeqBnConfig, DoubleSeqBnConfig,
/// ParBnConfig), by the config names `adapters` uses.
BottleneckConfig bottleneckPreset(StringRef name) {
  BottleneckConfig config;
  config.preset = name.str();
  if (name == "double_seq_bn") {
    config.mhAdapter = true;
    config.nonLinearity = "swish";
    config.originalLnBefore = false;
  } else if (name == "par_bn") {
    config.reductionFactor = 2;
    config.originalLnBefore = false;
    config.initWeights = "mam_adapter";
    config.isParallel = true;
    config.scaling = 4.0;
  }
  return config;
}

bool SpecReader::readBottleneckKey(const YamlEntry &entry,
                                   BottleneckConfig &config) {
  const YamlNode &value = *entry.value;
  StringRef key = entry.key;
  // Features of the library peftc does not implement: accepted switched off.
  auto offOnly = [&](StringRef what) {
    if (isOffValue(value) || (value.isScalar() && !value.quoted &&
                              (value.scalar == "0" || value.scalar == "0.0")))
      return true;
    return fail(valueLoc(entry), "'" + key + "' (" + what +
                                     ") is an adapters feature peftc does "
                                     "not support; remove it or switch it "
                                     "off");
  };
  if (key == "config") // read by readMethod before the other keys
    return true;
  if (key == "architecture") {
    std::string architecture;
    const StringRef choices[] = {"bottleneck"};
    return readChoice(entry, choices, architecture);
  }
  if (key == "adapter_name") {
    if (!readString(entry, config.adapterName))
      return false;
    if (config.adapterName.empty() ||
        StringRef(config.adapterName).contains('.'))
      return fail(valueLoc(entry), "'adapter_name' must be a non-empty name "
                                   "without '.' (it is a key component)");
    return true;
  }
  if (key == "mh_adapter")
    return readBool(entry, config.mhAdapter);
  if (key == "output_adapter")
    return readBool(entry, config.outputAdapter);
  if (key == "is_parallel")
    return readBool(entry, config.isParallel);
  if (key == "original_ln_before")
    return readBool(entry, config.originalLnBefore);
  if (key == "original_ln_after")
    return readBool(entry, config.originalLnAfter);
  if (key == "adapter_residual_before_ln") {
    // Orders the adapter's residual and its own output norm (ln_after),
    // which peftc does not support; without that norm both orders agree.
    bool unused;
    return readBool(entry, unused);
  }
  if (key == "reduction_factor") {
    if (value.isMapping())
      return fail(valueLoc(entry), "a per-layer 'reduction_factor' mapping is "
                                   "not supported yet; give one number");
    if (!readDouble(entry, config.reductionFactor))
      return false;
    if (config.reductionFactor <= 0)
      return fail(valueLoc(entry),
                  "'reduction_factor' must be positive, got " + value.scalar);
    return true;
  }
  if (key == "non_linearity") {
    std::string text;
    if (!readString(entry, text))
      return false;
    // The library lower-cases the name and looks it up in transformers'
    // ACT2FN (leakyrelu is its own special case).
    static const StringRef choices[] = {"relu",    "gelu",      "gelu_new",
                                        "swish",   "silu",      "tanh",
                                        "sigmoid", "leakyrelu", "linear"};
    std::string name = StringRef(text).lower();
    if (!contains(choices, name)) {
      std::string message = "'non_linearity' expects one of " +
                            joinQuoted(choices) + ", got '" + text + "'";
      if (auto suggestion = closest(name, choices))
        message += "; did you mean '" + suggestion->str() + "'?";
      return fail(valueLoc(entry), message);
    }
    config.nonLinearity = name;
    return true;
  }
  if (key == "scaling") {
    if (value.isScalar() &&
        (value.scalar == "learned" || value.scalar == "channel"))
      return fail(valueLoc(entry), "a learned scaling ('" + value.scalar +
                                       "') is not supported yet; give a "
                                       "number");
    return readDouble(entry, config.scaling);
  }
  if (key == "residual_before_ln") {
    if (value.isScalar() && value.scalar == "post_add")
      return fail(valueLoc(entry),
                  "residual_before_ln 'post_add' takes the residual after "
                  "the model's own LayerNorm input, which the library passes "
                  "only for post-norm layers; pre-norm decoders (LLaMA, "
                  "GPT-2) fail in the library with it. Use true or false");
    bool flag;
    if (!readBool(entry, flag))
      return expected(entry, value, "true, false or \"post_add\"");
    config.residualBeforeLn = flag ? "true" : "false";
    return true;
  }
  if (key == "init_weights") {
    if (value.isScalar() && value.scalar == "houlsby")
      return fail(valueLoc(entry), "init_weights 'houlsby' (truncated normal) "
                                   "is not supported yet; use 'bert' or "
                                   "'mam_adapter'");
    const StringRef choices[] = {"bert", "mam_adapter"};
    return readChoice(entry, choices, config.initWeights);
  }
  if (key == "leave_out") {
    config.leaveOut.clear();
    if (value.isNull())
      return true;
    if (!value.isSequence())
      return expected(entry, value, "a list of layer indices");
    for (const auto &item : value.items) {
      int64_t layer;
      if (!readInt(entry, *item, layer))
        return false;
      if (layer < 0)
        return fail(item->loc,
                    "'leave_out' has a negative layer index " + Twine(layer));
      config.leaveOut.push_back(layer);
    }
    return true;
  }
  if (key == "init_weights_seed")
    return offOnly("a seed for torch's RNG; start from --init-adapter");
  if (key == "ln_before" || key == "ln_after")
    return offOnly("the adapter's own LayerNorm");
  if (key == "use_gating")
    return offOnly("UniPELT gating");
  if (key == "phm_layer")
    return offOnly("Compacter's PHM layers");
  if (key == "inv_adapter")
    return offOnly("invertible adapters");
  if (key == "cross_adapter")
    return offOnly("cross-attention adapters");
  if (key == "stochastic_depth")
    return offOnly("stochastic depth");
  if (key == "dropout")
    return offOnly("dropout inside the adapter");
  if (key == "inv_adapter_reduction_factor")
    return true; // read only with inv_adapter, which is off
  llvm_unreachable("readMethod passes only keys listed in kBottleneckKeys");
}

bool SpecReader::readPromptTuningKey(const YamlEntry &entry,
                                     PromptTuningConfig &config,
                                     std::string &initText) {
  const YamlNode &value = *entry.value;
  StringRef key = entry.key;
  if (key == "num_virtual_tokens")
    return readPositiveInt(entry, config.numVirtualTokens);
  if (key == "prompt_tuning_init") {
    std::string init;
    if (value.isScalar() && value.scalar == "SAMPLE_VOCAB")
      return fail(valueLoc(entry), "prompt_tuning_init 'SAMPLE_VOCAB' is not "
                                   "supported yet; use RANDOM or TEXT");
    const StringRef choices[] = {"RANDOM", "TEXT"};
    if (!readChoice(entry, choices, init))
      return false;
    config.initFromText = init == "TEXT";
    return true;
  }
  if (key == "prompt_tuning_init_text") {
    if (value.isNull())
      return true;
    return readString(entry, initText);
  }
  if (key == "prompt_tuning_init_token_ids") {
    config.initTokenIds.clear();
    if (value.isNull())
      return true;
    if (!value.isSequence() || value.items.empty())
      return expected(entry, value, "a non-empty list of token ids");
    for (const auto &item : value.items) {
      int64_t id;
      if (!readInt(entry, *item, id))
        return false;
      if (id < 0)
        return fail(item->loc, "'prompt_tuning_init_token_ids' has a "
                               "negative token id " +
                                   Twine(id));
      config.initTokenIds.push_back(id);
    }
    return true;
  }
  if (key == "token_dim") {
    if (value.isNull())
      return true;
    return readPositiveInt(entry, config.tokenDim);
  }
  if (key == "num_transformer_submodules" || key == "modules_to_save")
    return readSingleStack(entry, "PROMPT_TUNING",
                           "peftc's prompt tuning prefixes one input",
                           "add a method that trains them");
  // tokenizer_name_or_path, tokenizer_kwargs, num_attention_heads,
  // num_layers: PEFT fills them from the model and tokenizer; peftc reads
  // the model itself and takes token ids instead of text.
  return true;
}

bool SpecReader::readPrefixTuningKey(const YamlEntry &entry,
                                     PrefixTuningConfig &config) {
  const YamlNode &value = *entry.value;
  StringRef key = entry.key;
  if (key == "num_virtual_tokens")
    return readPositiveInt(entry, config.numVirtualTokens);
  if (key == "prefix_projection")
    return readBool(entry, config.prefixProjection);
  // PEFT fills these from the model when they are null; peftc checks the
  // written ones against the model (peft-insert-prefix-tuning).
  if (key == "encoder_hidden_size")
    return value.isNull() || readPositiveInt(entry, config.encoderHiddenSize);
  if (key == "token_dim")
    return value.isNull() || readPositiveInt(entry, config.tokenDim);
  if (key == "num_layers")
    return value.isNull() || readPositiveInt(entry, config.numLayers);
  if (key == "num_attention_heads")
    return value.isNull() || readPositiveInt(entry, config.numAttentionHeads);
  if (key == "num_transformer_submodules" || key == "modules_to_save")
    return readSingleStack(
        entry, "PREFIX_TUNING",
        "peftc's prefix tuning prefixes the self-attention of one stack",
        "PEFT's prefix-tuning model trains the prefix encoder only");
  llvm_unreachable("readMethod passes only keys listed in kPrefixTuningKeys");
}

bool SpecReader::readSingleStack(const YamlEntry &entry, StringRef method,
                                 StringRef stack, StringRef why) {
  const YamlNode &value = *entry.value;
  if (entry.key == "modules_to_save") {
    if (isOffValue(value))
      return true;
    return fail(valueLoc(entry), "'modules_to_save' with " + method +
                                     " is not supported; " + why);
  }
  int64_t count = 1;
  if (!value.isNull() && !readInt(entry, count))
    return false;
  if (count != 1)
    return fail(valueLoc(entry),
                "'num_transformer_submodules' " + Twine(count) +
                    " is for encoder-decoder models; " + stack + " (1)");
  return true;
}

const YamlEntry *findEntry(const YamlNode &node, StringRef key) {
  for (const YamlEntry &entry : node.entries)
    if (entry.key == key)
      return &entry;
  return nullptr;
}

bool SpecReader::checkLora(const YamlNode &node, const LoraConfig &config) {
  const YamlEntry *targets = findEntry(node, "target_modules");
  if (!config.targetModules.isSet())
    return fail(targets ? valueLoc(*targets) : node.loc,
                "a LORA method needs 'target_modules' (module names such as "
                "[q_proj, v_proj], a regular expression, or \"all-linear\"); "
                "PEFT's per-architecture defaults are not available for an "
                "ONNX model");
  // PEFT's own LoraConfig restrictions (tuners/lora/config.py).
  bool targetIsString =
      config.targetModules.kind != ModuleSelector::Kind::Names;
  if (const YamlEntry *layers = findEntry(node, "layers_to_transform");
      layers && targetIsString && !config.layersToTransform.empty())
    return failWithNote(layers->keyLoc,
                        "'layers_to_transform' cannot be used when "
                        "'target_modules' is a string (a regular expression "
                        "or \"all-linear\"); write the layer into the "
                        "expression or list the module names",
                        targets->keyLoc, "'target_modules' given here");
  if (const YamlEntry *pattern = findEntry(node, "layers_pattern");
      pattern && !config.layersPattern.empty()) {
    if (targetIsString)
      return failWithNote(pattern->keyLoc,
                          "'layers_pattern' cannot be used when "
                          "'target_modules' is a string (a regular expression "
                          "or \"all-linear\")",
                          targets->keyLoc, "'target_modules' given here");
    if (config.layersToTransform.empty())
      return fail(pattern->keyLoc, "'layers_pattern' only selects where the "
                                   "layer index is read; it needs "
                                   "'layers_to_transform'");
  }
  return true;
}

bool SpecReader::checkIa3(const YamlNode &node, const IA3Config &config) {
  const YamlEntry *targets = findEntry(node, "target_modules");
  if (!config.targetModules.isSet())
    return fail(targets ? valueLoc(*targets) : node.loc,
                "an IA3 method needs 'target_modules' (module names such as "
                "[k_proj, v_proj, down_proj], or a regular expression); "
                "PEFT's per-architecture defaults are not available for an "
                "ONNX model");
  // PEFT: feedforward_modules must be a subset of target_modules when both
  // are lists.
  if (config.feedforwardModules.kind == ModuleSelector::Kind::Names &&
      config.targetModules.kind == ModuleSelector::Kind::Names) {
    for (const auto &name : config.feedforwardModules.names) {
      bool listed = llvm::any_of(config.targetModules.names,
                                 [&](const Located<std::string> &target) {
                                   return target.value == name.value;
                                 });
      if (!listed)
        return failWithNote(name.loc,
                            "'feedforward_modules' entry '" + name.value +
                                "' is not in 'target_modules'; IA3 scales "
                                "only the modules it targets",
                            targets->keyLoc, "'target_modules' given here");
    }
  }
  return true;
}

bool SpecReader::checkFreezeLayers(const YamlNode &node,
                                   const FreezeLayersConfig &config) {
  const YamlEntry *layers = findEntry(node, "trainable_layers");
  const YamlEntry *lastN = findEntry(node, "last_n_layers");
  if (!config.trainableLayers.empty() && config.lastNLayers)
    return failWithNote(lastN->keyLoc,
                        "'last_n_layers' and 'trainable_layers' both given; "
                        "name the layers or count them from the top, not both",
                        layers->keyLoc, "'trainable_layers' given here");
  if (config.trainableLayers.empty() && !config.lastNLayers)
    return fail(node.loc, "a FREEZE_LAYERS method needs 'trainable_layers' "
                          "(layer indices) or 'last_n_layers' (a count)");
  return true;
}

bool SpecReader::readMethod(const YamlNode &node, bool flat, PeftSpec &spec) {
  if (!node.isMapping())
    return fail(node.loc, "a method entry must be a mapping with 'peft_type', "
                          "got " +
                              node.describe());
  const YamlEntry *typeEntry = findEntry(node, "peft_type");
  if (!typeEntry)
    return fail(node.loc, "this method entry has no 'peft_type' (one of " +
                              joinQuoted(kImplementedMethods) + ")");
  MethodSpec method;
  method.loc = node.loc;
  if (!readMethodKind(*typeEntry, method.kind))
    return false;

  switch (method.kind) {
  case MethodKind::Lora:
    method.config = LoraConfig();
    break;
  case MethodKind::IA3:
    method.config = IA3Config();
    break;
  case MethodKind::BitFit:
    method.config = BitFitConfig();
    break;
  case MethodKind::FreezeLayers:
    method.config = FreezeLayersConfig();
    break;
  case MethodKind::LoReFT:
  case MethodKind::DiReFT:
  case MethodKind::NoDiReFT: {
    ReftConfig reft;
    reft.intervention =
        method.kind == MethodKind::LoReFT   ? ReftIntervention::LoReFT
        : method.kind == MethodKind::DiReFT ? ReftIntervention::DiReFT
                                            : ReftIntervention::NoDiReFT;
    reft.loc = node.loc;
    method.config = reft;
    break;
  }
  case MethodKind::BottleneckAdapter: {
    // SEQ_BN, DOUBLE_SEQ_BN and PAR_BN name a preset; BOTTLENECK takes it
    // from `config` (seq_bn when absent).
    std::string preset =
        StringRef(canonicalMethodName(typeEntry->value->scalar)).lower();
    if (preset == "bottleneck") {
      preset = "seq_bn";
      if (const YamlEntry *configEntry = findEntry(node, "config")) {
        const StringRef presets[] = {"seq_bn", "double_seq_bn", "par_bn"};
        if (!readChoice(*configEntry, presets, preset))
          return false;
      }
    } else if (const YamlEntry *configEntry = findEntry(node, "config")) {
      return fail(configEntry->keyLoc,
                  "'config' names the preset of a BOTTLENECK entry; peft_type "
                  "'" +
                      typeEntry->value->scalar + "' is one already");
    }
    BottleneckConfig bottleneck = bottleneckPreset(preset);
    bottleneck.loc = node.loc;
    method.config = bottleneck;
    break;
  }
  case MethodKind::PromptTuning: {
    PromptTuningConfig prompt;
    prompt.loc = node.loc;
    method.config = prompt;
    break;
  }
  case MethodKind::Sparse: {
    SparseConfig sparse;
    sparse.loc = node.loc;
    method.config = sparse;
    break;
  }
  case MethodKind::PrefixTuning: {
    PrefixTuningConfig prefix;
    prefix.loc = node.loc;
    method.config = prefix;
    break;
  }
  default:
    method.config = FullConfig();
    break;
  }

  std::vector<StringRef> validKeys = {"peft_type"};
  if (flat)
    validKeys.push_back("training");
  llvm::append_range(validKeys, methodKeys(method.kind));
  llvm::append_range(validKeys, kIgnoredKeys);
  StringRef kindName = methodName(method.kind);
  std::string where =
      (kindName.starts_with("I") ? "an " : "a ") + kindName.str() + " method";
  std::string promptInitText;

  for (const YamlEntry &entry : node.entries) {
    if (entry.key == "peft_type")
      continue;
    if (flat && entry.key == "training") {
      if (!readTraining(entry, spec.training))
        return false;
      continue;
    }
    bool ignored;
    if (!isIgnoredMethodKey(entry, method.kind, ignored))
      return false;
    if (ignored)
      continue;
    if (!contains(methodKeys(method.kind), entry.key)) {
      if (!flat && entry.key == "training")
        return fail(entry.keyLoc, "'training' belongs at the top level of "
                                  "the spec, next to 'methods'");
      if (!flat && entry.key == "methods")
        return fail(entry.keyLoc, "'methods' cannot nest inside a method");
      return unknownKey(entry, where, validKeys, method.kind);
    }
    bool ok = true;
    switch (method.kind) {
    case MethodKind::Lora:
      ok = readLoraKey(entry, std::get<LoraConfig>(method.config));
      break;
    case MethodKind::IA3:
      ok = readIa3Key(entry, std::get<IA3Config>(method.config));
      break;
    case MethodKind::BitFit:
      ok = readBitFitKey(entry, std::get<BitFitConfig>(method.config));
      break;
    case MethodKind::FreezeLayers:
      ok = readFreezeLayersKey(entry,
                               std::get<FreezeLayersConfig>(method.config));
      break;
    case MethodKind::LoReFT:
    case MethodKind::DiReFT:
    case MethodKind::NoDiReFT:
      ok = readReftKey(entry, std::get<ReftConfig>(method.config));
      break;
    case MethodKind::BottleneckAdapter:
      ok = readBottleneckKey(entry, std::get<BottleneckConfig>(method.config));
      break;
    case MethodKind::PromptTuning:
      ok = readPromptTuningKey(
          entry, std::get<PromptTuningConfig>(method.config), promptInitText);
      break;
    case MethodKind::Sparse:
      ok = readSparseKey(entry, std::get<SparseConfig>(method.config));
      break;
    case MethodKind::PrefixTuning:
      ok = readPrefixTuningKey(entry,
                               std::get<PrefixTuningConfig>(method.config));
      break;
    default:
      break;
    }
    if (!ok)
      return false;
  }

  if (auto *lora = std::get_if<LoraConfig>(&method.config);
      lora && !checkLora(node, *lora))
    return false;
  if (auto *ia3 = std::get_if<IA3Config>(&method.config);
      ia3 && !checkIa3(node, *ia3))
    return false;
  if (auto *layers = std::get_if<FreezeLayersConfig>(&method.config);
      layers && !checkFreezeLayers(node, *layers))
    return false;
  if (auto *reft = std::get_if<ReftConfig>(&method.config);
      reft && reft->layers.empty() && !reft->allLayers)
    return fail(node.loc, "a " + methodName(method.kind) +
                              " method needs 'layers': 'all' or the indices "
                              "of the decoder layers to intervene on");
  if (auto *bottleneck = std::get_if<BottleneckConfig>(&method.config);
      bottleneck && !bottleneck->mhAdapter && !bottleneck->outputAdapter)
    return fail(node.loc, "this bottleneck adapter has neither 'mh_adapter' "
                          "nor 'output_adapter': it adds nothing");
  if (auto *prompt = std::get_if<PromptTuningConfig>(&method.config)) {
    if (prompt->numVirtualTokens == 0)
      return fail(node.loc, "a PROMPT_TUNING method needs "
                            "'num_virtual_tokens'");
    if (prompt->initFromText && prompt->initTokenIds.empty())
      return fail(findEntry(node, "prompt_tuning_init")->keyLoc,
                  "prompt_tuning_init TEXT needs "
                  "'prompt_tuning_init_token_ids': peftc has no tokenizer, so "
                  "give the ids the model's tokenizer makes of "
                  "prompt_tuning_init_text" +
                      (promptInitText.empty() ? std::string()
                                              : " ('" + promptInitText + "')"));
    if (!prompt->initFromText && !prompt->initTokenIds.empty())
      return fail(findEntry(node, "prompt_tuning_init_token_ids")->keyLoc,
                  "'prompt_tuning_init_token_ids' is read only with "
                  "prompt_tuning_init TEXT");
  }
  if (auto *sparse = std::get_if<SparseConfig>(&method.config)) {
    if (!sparse->targetModules.isSet()) {
      const YamlEntry *targets = findEntry(node, "target_modules");
      return fail(targets ? valueLoc(*targets) : node.loc,
                  "a SPARSE method needs 'target_modules' (module names such "
                  "as [q_proj, v_proj], a regular expression, or "
                  "all-linear)");
    }
    if (sparse->density == 0)
      return fail(node.loc, "a SPARSE method needs 'density', the share of "
                            "each targeted weight's entries that train "
                            "(0 < density <= 1, e.g. 0.05)");
  }
  if (auto *prefix = std::get_if<PrefixTuningConfig>(&method.config)) {
    if (prefix->numVirtualTokens == 0)
      return fail(node.loc, "a PREFIX_TUNING method needs "
                            "'num_virtual_tokens'");
    const YamlEntry *hidden = findEntry(node, "encoder_hidden_size");
    if (!prefix->prefixProjection && hidden && !hidden->value->isNull() &&
        prefix->encoderHiddenSize != prefix->tokenDim)
      return fail(hidden->keyLoc,
                  "'encoder_hidden_size' is the width of the prefix "
                  "encoder's MLP, which exists only with "
                  "'prefix_projection: true'");
  }
  spec.methods.push_back(std::move(method));
  return true;
}

bool SpecReader::checkComposition(const PeftSpec &spec) {
  const MethodSpec *prompt = nullptr, *bottleneck = nullptr;
  for (const MethodSpec &method : spec.methods) {
    // PEFT's prompt-learning methods (prompt and prefix tuning) are one
    // kind: a model holds one of them.
    bool promptLearning = method.kind == MethodKind::PromptTuning ||
                          method.kind == MethodKind::PrefixTuning;
    const MethodSpec *&first = promptLearning ? prompt
                               : method.kind == MethodKind::BottleneckAdapter
                                   ? bottleneck
                                   : prompt;
    if (!promptLearning && method.kind != MethodKind::BottleneckAdapter)
      continue;
    if (first)
      return failWithNote(method.loc,
                          "a second " + methodName(method.kind) +
                              " method; one adapter of this kind per model "
                              "(merge the entries)",
                          first->loc, "the first is here");
    first = &method;
  }
  // PEFT's prompt-learning model holds no other adapter; the adapters
  // library's bottleneck keys and counting do not mix with PEFT's.
  for (const MethodSpec *alone : {prompt, bottleneck})
    if (alone && spec.methods.size() > 1) {
      const MethodSpec &other =
          &spec.methods.front() == alone ? spec.methods[1] : spec.methods[0];
      return failWithNote(alone->loc,
                          methodName(alone->kind) +
                              " cannot be combined with another method "
                              "(neither PEFT nor the adapters library "
                              "composes it with " +
                              methodName(other.kind) + " in one model)",
                          other.loc, "the other method is here");
    }
  for (const MethodSpec &method : spec.methods) {
    if (method.kind != MethodKind::Full || spec.methods.size() == 1)
      continue;
    const MethodSpec &other =
        &spec.methods.front() == &method ? spec.methods[1] : spec.methods[0];
    return failWithNote(
        method.loc,
        "FULL fine-tuning trains every parameter; it cannot "
        "be combined with another method",
        other.loc, "the other method (" + methodName(other.kind) + ") is here");
  }
  return true;
}

//===----------------------------------------------------------------------===//
// Training
//===----------------------------------------------------------------------===//

bool SpecReader::readInputs(const YamlEntry &entry,
                            std::vector<InputShape> &inputs) {
  const YamlNode &node = *entry.value;
  inputs.clear();
  if (node.isNull())
    return true;
  if (!node.isMapping())
    return expected(entry, node,
                    "a mapping from input name to shape, e.g. "
                    "{input_ids: [2, 16]}");
  for (const YamlEntry &item : node.entries) {
    InputShape shape;
    shape.name = item.key;
    shape.loc = item.keyLoc;
    const YamlNode &dims = *item.value;
    if (!dims.isSequence())
      return expected(item, dims, "a shape, a list of dimensions like [2, 16]");
    for (const auto &dim : dims.items) {
      int64_t size;
      if (!readInt(item, *dim, size))
        return false;
      if (size <= 0)
        return fail(dim->loc, "input '" + item.key + "' has dimension " +
                                  Twine(size) +
                                  "; dimensions are positive (shapes are "
                                  "static)");
      shape.dims.push_back(size);
    }
    inputs.push_back(std::move(shape));
  }
  return true;
}

bool SpecReader::readLoss(const YamlEntry &entry, LossSpec &loss) {
  const YamlNode &node = *entry.value;
  loss = LossSpec();
  loss.loc = valueLoc(entry);
  if (node.isScalar() && !node.isNull()) {
    // A bare name: the model computes its own loss in that output.
    loss.kind = LossKind::ModelOutput;
    loss.output = node.scalar;
    return true;
  }
  if (!node.isMapping())
    return expected(entry, node,
                    "a model output name, or a mapping with 'type: "
                    "cross_entropy', 'type: mse' or 'type: output'");
  const YamlEntry *typeEntry = findEntry(node, "type");
  if (!typeEntry)
    return fail(node.loc, "'loss' needs 'type': one of 'cross_entropy', "
                          "'mse', 'output'");
  std::string type;
  if (!readChoice(*typeEntry, {"cross_entropy", "mse", "output"}, type))
    return false;
  std::vector<StringRef> keys = {"type"};
  if (type == "cross_entropy") {
    loss.kind = LossKind::CrossEntropy;
    keys.insert(keys.end(), {"logits", "labels", "shift", "ignore_index"});
  } else if (type == "mse") {
    loss.kind = LossKind::Mse;
    keys.insert(keys.end(), {"prediction", "target"});
  } else {
    loss.kind = LossKind::ModelOutput;
    keys.push_back("name");
  }
  for (const YamlEntry &item : node.entries) {
    StringRef key = item.key;
    if (key == "type")
      continue;
    if (!contains(keys, key))
      return unknownKey(item, "a " + type + " loss", keys);
    bool ok = true;
    if (key == "logits")
      ok = readString(item, loss.logits);
    else if (key == "labels")
      ok = readString(item, loss.labels);
    else if (key == "shift") {
      std::string shift;
      ok = readChoice(item, {"none", "causal"}, shift);
      loss.shift = shift == "causal" ? LossShift::Causal : LossShift::None;
    } else if (key == "ignore_index")
      ok = readInt(item, loss.ignoreIndex);
    else if (key == "prediction")
      ok = readString(item, loss.prediction);
    else if (key == "target")
      ok = readString(item, loss.target);
    else if (key == "name")
      ok = readString(item, loss.output);
    if (!ok)
      return false;
  }
  auto require = [&](StringRef key, const std::string &value) {
    if (!value.empty())
      return true;
    return fail(node.loc, "a " + type + " loss needs '" + key + "'");
  };
  if (loss.kind == LossKind::Mse)
    return require("prediction", loss.prediction) &&
           require("target", loss.target);
  if (loss.kind == LossKind::ModelOutput)
    return require("name", loss.output);
  return true;
}

bool SpecReader::readOptimizer(const YamlEntry &entry,
                               OptimizerSpec &optimizer) {
  const YamlNode &node = *entry.value;
  optimizer = OptimizerSpec();
  optimizer.loc = valueLoc(entry);
  if (node.isNull())
    return true;
  if (node.isScalar()) {
    std::string type;
    if (!readChoice(entry, {"adamw", "sgd"}, type))
      return false;
    optimizer.kind = type == "sgd" ? OptimizerKind::Sgd : OptimizerKind::AdamW;
    return true;
  }
  if (!node.isMapping())
    return expected(entry, node, "'adamw', 'sgd' or a mapping with 'type'");
  std::string type = "adamw";
  if (const YamlEntry *typeEntry = findEntry(node, "type"))
    if (!readChoice(*typeEntry, {"adamw", "sgd"}, type))
      return false;
  optimizer.kind = type == "sgd" ? OptimizerKind::Sgd : OptimizerKind::AdamW;
  std::vector<StringRef> keys = {"type", "lr", "weight_decay", "no_decay"};
  if (optimizer.kind == OptimizerKind::AdamW)
    keys.insert(keys.end(), {"betas", "eps"});
  else
    keys.insert(keys.end(), {"momentum", "nesterov"});

  for (const YamlEntry &item : node.entries) {
    StringRef key = item.key;
    if (key == "type")
      continue;
    if (!contains(keys, key))
      return unknownKey(item, "the " + type + " optimizer", keys);
    if (key == "lr") {
      if (!readDouble(item, optimizer.lr))
        return false;
      if (optimizer.lr <= 0)
        return fail(valueLoc(item),
                    "'lr' must be positive, got " + item.value->scalar);
    } else if (key == "weight_decay") {
      if (!readDouble(item, optimizer.weightDecay))
        return false;
      if (optimizer.weightDecay < 0)
        return fail(valueLoc(item),
                    "'weight_decay' must be >= 0, got " + item.value->scalar);
    } else if (key == "no_decay") {
      std::vector<Located<std::string>> names;
      optimizer.noDecay.clear();
      if (item.value->isNull())
        continue;
      if (!readStringList(item, names))
        return false;
      for (const auto &name : names) {
        if (name.value != "bias" && name.value != "norm") {
          std::string why;
          if (!isValidPathRegex(name.value, why))
            return fail(name.loc, "'no_decay' entry '" + name.value +
                                      "' is neither 'bias', 'norm' nor a "
                                      "valid regular expression: " +
                                      why);
        }
        optimizer.noDecay.push_back(name.value);
      }
    } else if (key == "betas") {
      const YamlNode &betas = *item.value;
      if (!betas.isSequence() || betas.items.size() != 2)
        return expected(item, betas, "a list of two numbers [beta1, beta2]");
      if (!readDouble(item, *betas.items[0], optimizer.beta1) ||
          !readDouble(item, *betas.items[1], optimizer.beta2))
        return false;
      for (const auto &beta : betas.items) {
        double value;
        StringRef(beta->scalar).getAsDouble(value);
        if (value < 0 || value >= 1)
          return fail(beta->loc,
                      "'betas' entries must be in [0, 1), got " + beta->scalar);
      }
    } else if (key == "eps") {
      if (!readDouble(item, optimizer.eps))
        return false;
      if (optimizer.eps <= 0)
        return fail(valueLoc(item),
                    "'eps' must be positive, got " + item.value->scalar);
    } else if (key == "momentum") {
      if (!readDouble(item, optimizer.momentum))
        return false;
      if (optimizer.momentum < 0)
        return fail(valueLoc(item),
                    "'momentum' must be >= 0, got " + item.value->scalar);
    } else if (key == "nesterov") {
      if (!readBool(item, optimizer.nesterov))
        return false;
    }
  }
  if (optimizer.nesterov && optimizer.momentum <= 0) {
    const YamlEntry *nesterov = findEntry(node, "nesterov");
    return fail(nesterov->keyLoc, "'nesterov: true' needs a positive "
                                  "'momentum' (as in torch.optim.SGD)");
  }
  return true;
}

bool SpecReader::readSchedule(const YamlEntry &entry, ScheduleSpec &schedule) {
  const YamlNode &node = *entry.value;
  schedule = ScheduleSpec();
  schedule.loc = valueLoc(entry);
  static const StringRef kinds[] = {"constant", "linear", "cosine"};
  auto setKind = [&](const std::string &type) {
    schedule.kind = type == "constant" ? ScheduleKind::Constant
                    : type == "cosine" ? ScheduleKind::Cosine
                                       : ScheduleKind::Linear;
  };
  if (node.isNull())
    return true;
  if (node.isScalar()) {
    std::string type;
    if (!readChoice(entry, kinds, type))
      return false;
    setKind(type);
    return true;
  }
  if (!node.isMapping())
    return expected(entry, node,
                    "'constant', 'linear', 'cosine' or a mapping with 'type'");
  std::string type = "linear";
  if (const YamlEntry *typeEntry = findEntry(node, "type"))
    if (!readChoice(*typeEntry, kinds, type))
      return false;
  setKind(type);
  static const StringRef keys[] = {"type", "warmup_steps", "warmup_ratio",
                                   "total_steps", "num_cycles"};
  const YamlEntry *warmupSteps = nullptr, *warmupRatio = nullptr;
  for (const YamlEntry &item : node.entries) {
    StringRef key = item.key;
    if (key == "type")
      continue;
    if (!contains(keys, key))
      return unknownKey(item, "'schedule'", keys);
    if (item.value->isNull())
      continue;
    if (key == "warmup_steps") {
      int64_t steps;
      if (!readNonNegativeInt(item, steps))
        return false;
      schedule.warmupSteps = steps;
      warmupSteps = &item;
    } else if (key == "warmup_ratio") {
      double ratio;
      if (!readDouble(item, ratio))
        return false;
      if (ratio < 0 || ratio > 1)
        return fail(valueLoc(item), "'warmup_ratio' is a fraction of the "
                                    "total steps in [0, 1], got " +
                                        item.value->scalar);
      schedule.warmupRatio = ratio;
      warmupRatio = &item;
    } else if (key == "total_steps") {
      int64_t steps;
      if (!readPositiveInt(item, steps))
        return false;
      schedule.totalSteps = steps;
    } else if (key == "num_cycles") {
      if (schedule.kind != ScheduleKind::Cosine)
        return fail(item.keyLoc, "'num_cycles' applies to the cosine "
                                 "schedule only (this one is '" +
                                     type + "')");
      if (!readDouble(item, schedule.numCycles))
        return false;
      if (schedule.numCycles <= 0)
        return fail(valueLoc(item),
                    "'num_cycles' must be positive, got " + item.value->scalar);
    }
  }
  if (warmupSteps && warmupRatio) {
    const YamlEntry *later =
        warmupSteps->keyLoc.line > warmupRatio->keyLoc.line ||
                (warmupSteps->keyLoc.line == warmupRatio->keyLoc.line &&
                 warmupSteps->keyLoc.column > warmupRatio->keyLoc.column)
            ? warmupSteps
            : warmupRatio;
    const YamlEntry *earlier = later == warmupSteps ? warmupRatio : warmupSteps;
    return failWithNote(later->keyLoc,
                        "'warmup_steps' and 'warmup_ratio' both given; use "
                        "one (transformers would silently ignore "
                        "'warmup_ratio')",
                        earlier->keyLoc, "'" + earlier->key + "' given here");
  }
  if (schedule.warmupSteps && schedule.totalSteps &&
      *schedule.warmupSteps > *schedule.totalSteps)
    return fail(warmupSteps->keyLoc, "'warmup_steps' (" +
                                         Twine(*schedule.warmupSteps) +
                                         ") exceeds 'total_steps' (" +
                                         Twine(*schedule.totalSteps) + ")");
  return true;
}

bool SpecReader::readTraining(const YamlEntry &entry, TrainingSpec &training) {
  const YamlNode &node = *entry.value;
  if (node.isNull())
    return true;
  if (!node.isMapping())
    return expected(entry, node, "a mapping");
  const YamlEntry *batchEntry = nullptr;
  for (const YamlEntry &item : node.entries) {
    StringRef key = item.key;
    if (!contains(kTrainingKeys, key)) {
      // transformers' TrainingArguments names, where they live here.
      static const std::pair<StringRef, StringRef> trainerNames[] = {
          {"learning_rate", "'lr' under 'optimizer'"},
          {"lr", "'lr' under 'optimizer'"},
          {"weight_decay", "'weight_decay' under 'optimizer'"},
          {"adam_beta1", "'betas' under 'optimizer'"},
          {"adam_beta2", "'betas' under 'optimizer'"},
          {"adam_epsilon", "'eps' under 'optimizer'"},
          {"optim", "'type' under 'optimizer'"},
          {"lr_scheduler_type", "'type' under 'schedule'"},
          {"warmup_steps", "'warmup_steps' under 'schedule'"},
          {"warmup_ratio", "'warmup_ratio' under 'schedule'"},
          {"max_steps", "'total_steps' under 'schedule'"},
          {"per_device_train_batch_size", "'batch_size'"}};
      for (const auto &[trainerName, here] : trainerNames)
        if (key == trainerName)
          return fail(item.keyLoc, "unknown key '" + key +
                                       "' in 'training'; transformers' '" +
                                       trainerName + "' is " + here + " here");
      return unknownKey(item, "'training'", kTrainingKeys);
    }
    bool ok = true;
    if (key == "inputs")
      ok = readInputs(item, training.inputs);
    else if (key == "loss")
      ok = readLoss(item, training.loss);
    else if (key == "optimizer")
      ok = readOptimizer(item, training.optimizer);
    else if (key == "schedule")
      ok = readSchedule(item, training.schedule);
    else if (key == "max_grad_norm") {
      ok = readDouble(item, training.maxGradNorm);
      if (ok && training.maxGradNorm < 0)
        return fail(valueLoc(item), "'max_grad_norm' must be >= 0 (0 "
                                    "disables clipping), got " +
                                        item.value->scalar);
    } else if (key == "gradient_accumulation_steps")
      ok = readPositiveInt(item, training.gradientAccumulationSteps);
    else if (key == "seed")
      ok = readNonNegativeInt(item, training.seed);
    else if (key == "batch_size") {
      if (item.value->isNull()) {
        training.batchSize.reset();
        continue;
      }
      int64_t size;
      ok = readPositiveInt(item, size);
      training.batchSize = size;
      batchEntry = &item;
    } else if (key == "shuffle")
      ok = readBool(item, training.shuffle);
    else if (key == "pad_token_id") {
      if (item.value->isNull()) {
        training.padTokenId.reset();
        continue;
      }
      int64_t id;
      ok = readNonNegativeInt(item, id);
      training.padTokenId = id;
    }
    if (!ok)
      return false;
  }
  // Shapes are static: every input carries the batch along axis 0.
  if (training.batchSize) {
    for (const InputShape &input : training.inputs)
      if (input.dims.empty() || input.dims[0] != *training.batchSize)
        return failWithNote(
            input.loc,
            "input '" + input.name + "' has leading (batch) dimension " +
                (input.dims.empty() ? std::string("none (a scalar)")
                                    : std::to_string(input.dims[0])) +
                " but 'batch_size' is " + Twine(*training.batchSize),
            batchEntry->keyLoc, "'batch_size' given here");
  } else if (!training.inputs.empty() && !training.inputs[0].dims.empty()) {
    training.batchSize = training.inputs[0].dims[0];
  }
  return true;
}

//===----------------------------------------------------------------------===//
// The spec
//===----------------------------------------------------------------------===//

bool SpecReader::readSpec(const YamlNode &root, PeftSpec &spec) {
  if (root.isNull())
    return fail(root.loc, "the spec is empty; it needs 'peft_type' (one "
                          "method, as in adapter_config.json) or 'methods' "
                          "(a list of methods)");
  if (!root.isMapping())
    return fail(root.loc, "the spec must be a mapping, got " + root.describe());
  const YamlEntry *typeEntry = findEntry(root, "peft_type");
  const YamlEntry *methodsEntry = findEntry(root, "methods");
  if (typeEntry && methodsEntry)
    return failWithNote(methodsEntry->keyLoc,
                        "'methods' and a top-level 'peft_type' both given; "
                        "use 'peft_type' for one method or 'methods' for a "
                        "list, not both",
                        typeEntry->keyLoc, "'peft_type' given here");
  if (typeEntry) {
    if (!readMethod(root, /*flat=*/true, spec))
      return false;
  } else {
    for (const YamlEntry &entry : root.entries) {
      if (entry.key == "methods" || entry.key == "training")
        continue;
      bool knownElsewhere = contains(kLoraKeys, entry.key) ||
                            contains(kIa3Keys, entry.key) ||
                            contains(kBitFitKeys, entry.key) ||
                            contains(kFreezeLayersKeys, entry.key);
      if (knownElsewhere && !methodsEntry)
        return fail(
            entry.keyLoc,
            "'" + entry.key +
                "' is a method option but the spec "
                "names no method; add 'peft_type' (e.g. peft_type: LORA)");
      if (knownElsewhere)
        return fail(entry.keyLoc, "'" + entry.key +
                                      "' is a method option; move it into a "
                                      "'methods' entry");
      return unknownKey(entry, "the spec", kTopLevelKeys);
    }
    if (!methodsEntry)
      return fail(root.loc, "the spec names no method; give 'peft_type' "
                            "(one method, as in adapter_config.json) or "
                            "'methods' (a list of methods)");
    const YamlNode &list = *methodsEntry->value;
    if (!list.isSequence())
      return expected(*methodsEntry, list, "a list of method entries");
    if (list.items.empty())
      return fail(valueLoc(*methodsEntry), "'methods' is an empty list");
    for (const auto &item : list.items)
      if (!readMethod(*item, /*flat=*/false, spec))
        return false;
    if (const YamlEntry *training = findEntry(root, "training"))
      if (!readTraining(*training, spec.training))
        return false;
  }
  if (!spec.training.schedule.warmupSteps &&
      !spec.training.schedule.warmupRatio)
    spec.training.schedule.warmupSteps = 0;
  return checkComposition(spec);
}

} // namespace

bool parseSpecString(StringRef text, StringRef bufferName, PeftSpec &spec,
                     std::string &error) {
  spec = PeftSpec();
  spec.sourceFile = bufferName.str();
  std::unique_ptr<YamlNode> root;
  if (!parseYamlTree(text, bufferName, root, error))
    return false;
  SpecReader reader;
  if (!reader.readSpec(*root, spec)) {
    error = reader.error;
    return false;
  }
  return true;
}

int64_t virtualTokenCount(const PeftSpec &spec) {
  for (const MethodSpec &method : spec.methods)
    if (const PromptTuningConfig *prompt = method.promptTuning())
      return prompt->numVirtualTokens;
  return 0;
}

std::vector<int64_t> importShape(const PeftSpec &spec,
                                 const InputShape &input) {
  std::vector<int64_t> dims = input.dims;
  if ((input.name == "input_ids" || input.name == "attention_mask") &&
      dims.size() == 2)
    dims[1] += virtualTokenCount(spec);
  return dims;
}

bool parseSpecFile(const std::string &path, PeftSpec &spec,
                   std::string &error) {
  auto buffer = MemoryBuffer::getFile(path, /*IsText=*/true);
  if (!buffer) {
    error =
        path + ": error: cannot read the spec: " + buffer.getError().message();
    return false;
  }
  return parseSpecString((*buffer)->getBuffer(), path, spec, error);
}

} // namespace peft::spec
