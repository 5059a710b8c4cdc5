//===- TargetResolution.cpp - Which modules each method touches -----------===//
//
// Mirrors Hugging Face PEFT's rules, including their quirks, so that a spec
// selects here exactly the modules it selects in PyTorch:
//  - a target_modules list entry matches a path equal to it (then
//    layers_to_transform is not consulted) or ending in "." + entry;
//  - a target_modules string is re.fullmatch'ed against the path;
//  - "all-linear" is every linear module but the output head;
//  - exclude_modules is checked first, then modules_to_save (adapters never go
//    on a module that is saved whole);
//  - the layer index is the first ".<name>.<digits>." in the path, <name>
//    being layers_pattern when given;
//  - rank_pattern/alpha_pattern keys are tried in order with
//    re.match(r"(.*\.)?(key)$", path);
//  - modules_to_save entries match a module, or a container of it, whose path
//    ends with the entry (plain string suffix);
//  - IA3 feedforward_modules list entries are plain string suffixes too.
// Where PEFT only warns that nothing matched, peftc requires every pattern to
// match, and reports the nearest module paths.
//
//===----------------------------------------------------------------------===//
#include "frontends/spec/TargetResolution.h"
#include "frontends/spec/JsonWriter.h"
#include "frontends/spec/PatternMatch.h"

#include "llvm/ADT/STLExtras.h"
#include "llvm/ADT/StringExtras.h"
#include "llvm/ADT/Twine.h"
#include "llvm/Support/JSON.h"
#include "llvm/Support/raw_ostream.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <set>

using namespace llvm;

namespace peft::spec {
namespace {

bool endsWithDotted(StringRef path, StringRef name) {
  return path.size() > name.size() && path.ends_with(name) &&
         path[path.size() - name.size() - 1] == '.';
}

/// PEFT's list rule: the path is the entry or ends with "." + entry.
bool matchesName(StringRef path, StringRef name) {
  return path == name || endsWithDotted(path, name);
}

/// The dotted suffixes of a path, longest first ("a.b.c", "b.c", "c").
std::vector<StringRef> dottedSuffixes(StringRef path) {
  std::vector<StringRef> suffixes;
  suffixes.push_back(path);
  for (size_t i = 0; i < path.size(); ++i)
    if (path[i] == '.')
      suffixes.push_back(path.drop_front(i + 1));
  return suffixes;
}

/// The dotted prefixes of a path, shortest first ("a", "a.b", "a.b.c"):
/// the containers a module sits in, and the module itself.
std::vector<StringRef> dottedPrefixes(StringRef path) {
  std::vector<StringRef> prefixes;
  for (size_t i = 0; i < path.size(); ++i)
    if (path[i] == '.')
      prefixes.push_back(path.take_front(i));
  prefixes.push_back(path);
  return prefixes;
}

size_t countComponents(StringRef text) { return text.count('.') + 1; }

/// A pattern that matched nothing: the closest suffix with as many
/// components as the pattern, and the closest module paths.
struct NearMiss {
  std::string suggestion;
  std::vector<std::string> paths;
};

NearMiss nearestModules(StringRef pattern,
                        const std::vector<ModuleInfo> &modules) {
  NearMiss result;
  std::vector<std::pair<unsigned, size_t>> scored;
  unsigned bestSuffix = ~0u;
  size_t components = countComponents(pattern);
  for (size_t i = 0; i < modules.size(); ++i) {
    unsigned best = ~0u;
    for (StringRef suffix : dottedSuffixes(modules[i].path)) {
      unsigned distance = pattern.edit_distance(suffix);
      best = std::min(best, distance);
      if (countComponents(suffix) == components && distance < bestSuffix) {
        bestSuffix = distance;
        result.suggestion = suffix.str();
      }
    }
    scored.push_back({best, i});
  }
  // A suggestion must look like a typo of the pattern, not any module.
  if (bestSuffix > std::max<size_t>(2, pattern.size() / 3))
    result.suggestion.clear();
  std::stable_sort(
      scored.begin(), scored.end(),
      [](const auto &a, const auto &b) { return a.first < b.first; });
  for (size_t i = 0; i < scored.size() && i < 5; ++i)
    result.paths.push_back(modules[scored[i].second].path);
  return result;
}

std::string joinPaths(ArrayRef<std::string> paths) {
  return llvm::join(paths.begin(), paths.end(), ", ");
}

class Resolver {
public:
  Resolver(const PeftSpec &spec, const std::vector<ModuleInfo> &modules,
           ResolvedTargets &resolved)
      : spec(spec), modules(modules), resolved(resolved) {}

  bool run();
  std::string error;

private:
  bool fail(const SourceLoc &loc, const Twine &message) {
    if (error.empty())
      error = loc.str() + ": error: " + message.str();
    return false;
  }
  void note(const SourceLoc &loc, const Twine &message) {
    error += "\n" + (loc.isValid() ? loc.str() + ": " : std::string()) +
             "note: " + message.str();
  }
  bool noMatch(const SourceLoc &loc, StringRef key, StringRef pattern,
               StringRef what);

  bool compile(const std::string &pattern, const SourceLoc &loc,
               PathRegex &regex);
  bool checkSelectorMatches(StringRef key, const ModuleSelector &selector);
  bool selectorMatches(const ModuleSelector &selector, const PathRegex *regex,
                       StringRef path) const;

  bool resolveModulesToSave(const std::vector<Located<std::string>> &names,
                            ResolvedMethod &method);
  bool resolveAdapterMethod(const MethodSpec &method, ResolvedMethod &out);
  bool resolveBitFit(const MethodSpec &method, ResolvedMethod &out);
  bool resolveFreezeLayers(const MethodSpec &method, ResolvedMethod &out);
  bool checkReftLayers(const MethodSpec &method);
  bool checkConflicts();

  const PeftSpec &spec;
  const std::vector<ModuleInfo> &modules;
  ResolvedTargets &resolved;
};

bool Resolver::compile(const std::string &pattern, const SourceLoc &loc,
                       PathRegex &regex) {
  std::string why;
  if (!regex.compile(pattern, why))
    return fail(loc,
                "'" + pattern + "' is not a valid regular expression: " + why);
  return true;
}

bool Resolver::noMatch(const SourceLoc &loc, StringRef key, StringRef pattern,
                       StringRef what) {
  NearMiss near = nearestModules(pattern, modules);
  std::string message = "'" + key.str() + "' " + what.str() + " '" +
                        pattern.str() + "' matches no module of the model";
  if (!near.suggestion.empty() && near.suggestion != pattern)
    message += "; did you mean '" + near.suggestion + "'?";
  fail(loc, message);
  if (!near.paths.empty())
    note(SourceLoc(), "nearest module paths: " + joinPaths(near.paths));
  return false;
}

bool Resolver::selectorMatches(const ModuleSelector &selector,
                               const PathRegex *regex, StringRef path) const {
  switch (selector.kind) {
  case ModuleSelector::Kind::Names:
    return llvm::any_of(selector.names, [&](const Located<std::string> &name) {
      return matchesName(path, name.value);
    });
  case ModuleSelector::Kind::Regex:
    return regex->fullMatch(path);
  default:
    return false;
  }
}

/// Every entry of a selector must name at least one module: a typo otherwise
/// silently adapts less than meant.
bool Resolver::checkSelectorMatches(StringRef key,
                                    const ModuleSelector &selector) {
  if (selector.kind == ModuleSelector::Kind::Names) {
    for (const auto &name : selector.names) {
      bool matched = llvm::any_of(modules, [&](const ModuleInfo &module) {
        return matchesName(module.path, name.value);
      });
      if (matched)
        continue;
      // A container (self_attn, mlp) is a module in PyTorch but holds no
      // weights itself: say so rather than list near misses.
      for (const ModuleInfo &module : modules)
        for (StringRef prefix : dottedPrefixes(module.path))
          if (prefix != module.path && matchesName(prefix, name.value)) {
            std::set<std::string> inside;
            for (const ModuleInfo &other : modules)
              if (StringRef(other.path).starts_with(prefix.str() + "."))
                inside.insert(StringRef(other.path).rsplit('.').second.str());
            std::vector<std::string> children(inside.begin(), inside.end());
            return fail(name.loc,
                        "'" + key + "' entry '" + name.value +
                            "' names a container module (" + prefix +
                            "), not a layer; target the layers inside it: " +
                            joinPaths(children));
          }
      return noMatch(name.loc, key, name.value, "entry");
    }
    return true;
  }
  if (selector.kind == ModuleSelector::Kind::Regex) {
    PathRegex regex;
    if (!compile(selector.regex, selector.loc, regex))
      return false;
    bool matched = llvm::any_of(modules, [&](const ModuleInfo &module) {
      return regex.fullMatch(module.path);
    });
    if (!matched)
      return noMatch(selector.loc, key, selector.regex, "regular expression");
  }
  return true;
}

bool Resolver::resolveModulesToSave(
    const std::vector<Located<std::string>> &names, ResolvedMethod &method) {
  std::vector<bool> saved(modules.size(), false);
  for (const auto &name : names) {
    bool matched = false;
    for (size_t i = 0; i < modules.size(); ++i) {
      // PEFT wraps any module, container or not, whose name ends with the
      // entry; a wrapped container saves every module inside it.
      for (StringRef prefix : dottedPrefixes(modules[i].path))
        if (prefix.ends_with(name.value)) {
          saved[i] = true;
          matched = true;
          break;
        }
    }
    if (!matched)
      return noMatch(name.loc, "modules_to_save", name.value, "entry");
  }
  for (size_t i = 0; i < modules.size(); ++i)
    if (saved[i])
      method.trainableModules.push_back(modules[i].path);
  return true;
}

/// ReFT intervenes after whole decoder layers (peft-insert-interventions
/// finds their outputs); each listed layer must exist in the model.
bool Resolver::checkReftLayers(const MethodSpec &method) {
  const ReftConfig *reft = method.reft();
  int64_t layers = 0;
  for (const ModuleInfo &module : modules)
    if (module.layer)
      layers = std::max<int64_t>(layers, *module.layer + 1);
  if (layers == 0)
    return fail(reft->layersLoc.isValid() ? reft->layersLoc : method.loc,
                "the model has no numbered decoder layers to intervene on");
  for (const auto &layer : reft->layers)
    if (layer.value >= layers)
      return fail(layer.loc, "layer " + Twine(layer.value) +
                                 " does not exist: the model has " +
                                 Twine(layers) + " layers (0 to " +
                                 Twine(layers - 1) + ")");
  return true;
}

bool Resolver::resolveAdapterMethod(const MethodSpec &method,
                                    ResolvedMethod &out) {
  const LoraConfig *lora = method.lora();
  const IA3Config *ia3 = method.ia3();
  // SPARSE selects its weights as LoRA selects modules (no modules_to_save).
  const SparseConfig *sparse = method.sparse();
  const ModuleSelector &targets = lora  ? lora->targetModules
                                  : ia3 ? ia3->targetModules
                                        : sparse->targetModules;
  const ModuleSelector &excludes = lora  ? lora->excludeModules
                                   : ia3 ? ia3->excludeModules
                                         : sparse->excludeModules;
  static const std::vector<Located<std::string>> kNoModules;
  const std::vector<Located<std::string>> &saved = lora  ? lora->modulesToSave
                                                   : ia3 ? ia3->modulesToSave
                                                         : kNoModules;
  StringRef name = methodName(method.kind);

  if (!checkSelectorMatches("target_modules", targets))
    return false;
  PathRegex targetRegex, excludeRegex, feedforwardRegex;
  if (targets.kind == ModuleSelector::Kind::Regex &&
      !compile(targets.regex, targets.loc, targetRegex))
    return false;
  if (excludes.kind == ModuleSelector::Kind::Regex &&
      !compile(excludes.regex, excludes.loc, excludeRegex))
    return false;
  if (ia3 && ia3->feedforwardModules.kind == ModuleSelector::Kind::Regex &&
      !compile(ia3->feedforwardModules.regex, ia3->feedforwardModules.loc,
               feedforwardRegex))
    return false;

  // modules_to_save keeps adapters off the saved modules; PEFT splices each
  // name into (^|.*\.)NAME($|\..*).
  std::vector<PathRegex> savedRegexes(saved.size());
  for (size_t i = 0; i < saved.size(); ++i)
    if (!compile("(^|.*\\.)" + saved[i].value + "($|\\..*)", saved[i].loc,
                 savedRegexes[i]))
      return false;

  // The layer index as PEFT reads it from the path.
  std::vector<PathRegex> layerRegexes;
  if (lora && !lora->layersToTransform.empty()) {
    if (lora->layersPattern.empty()) {
      layerRegexes.emplace_back();
      if (!compile(".*?\\.[^.]*\\.(\\d+)\\.", SourceLoc(), layerRegexes.back()))
        return false;
    }
    for (const std::string &pattern : lora->layersPattern) {
      layerRegexes.emplace_back();
      if (!compile(".*?\\." + pattern + "\\.(\\d+)\\.", method.loc,
                   layerRegexes.back()))
        return false;
    }
  }

  std::vector<PathRegex> rankRegexes, alphaRegexes;
  if (lora) {
    for (const PatternEntry &entry : lora->rankPattern) {
      rankRegexes.emplace_back();
      if (!compile("(.*\\.)?(" + entry.pattern + ")", entry.loc,
                   rankRegexes.back()))
        return false;
    }
    for (const PatternEntry &entry : lora->alphaPattern) {
      alphaRegexes.emplace_back();
      if (!compile("(.*\\.)?(" + entry.pattern + ")", entry.loc,
                   alphaRegexes.back()))
        return false;
    }
  }
  std::vector<bool> rankUsed(rankRegexes.size()),
      alphaUsed(alphaRegexes.size());

  bool anyExcluded = false, anyTargeted = false;
  std::vector<std::string> filteredByLayer;
  for (size_t i = 0; i < modules.size(); ++i) {
    const ModuleInfo &module = modules[i];
    StringRef path = module.path;

    bool targeted = false, exactName = false;
    if (targets.kind == ModuleSelector::Kind::AllLinear) {
      targeted = module.kind == "linear" && !module.isOutputHead;
      // PEFT turns all-linear into the list of full module names.
      exactName = true;
    } else if (targets.kind == ModuleSelector::Kind::Regex) {
      targeted = targetRegex.fullMatch(path);
    } else {
      exactName = llvm::any_of(
          targets.names, [&](const auto &name) { return name.value == path; });
      targeted =
          exactName || llvm::any_of(targets.names, [&](const auto &name) {
            return endsWithDotted(path, name.value);
          });
    }
    if (!targeted)
      continue;
    anyTargeted = true;

    if (excludes.isSet() && selectorMatches(excludes, &excludeRegex, path)) {
      anyExcluded = true;
      continue;
    }
    if (llvm::any_of(savedRegexes, [&](const PathRegex &regex) {
          return regex.fullMatch(path);
        }))
      continue;

    // PEFT consults layers_to_transform only for suffix matches.
    std::optional<int> layer = module.layer;
    if (!layerRegexes.empty() && !exactName) {
      std::optional<int64_t> index;
      for (const PathRegex &regex : layerRegexes) {
        std::string digits;
        if (regex.matchPrefix(path, &digits)) {
          int64_t value;
          if (!StringRef(digits).getAsInteger(10, value))
            index = value;
          break;
        }
      }
      if (!index || !llvm::is_contained(lora->layersToTransform, *index)) {
        filteredByLayer.push_back(module.path);
        continue;
      }
      layer = static_cast<int>(*index);
    }

    // Only linear layers get adapters so far.
    if (module.kind != "linear") {
      SourceLoc loc = targets.loc;
      if (targets.kind == ModuleSelector::Kind::Names)
        for (const auto &name : targets.names)
          if (matchesName(path, name.value))
            loc = name.loc;
      if (module.kind == "embedding" || module.kind == "conv")
        return fail(loc, "'target_modules' selects " + module.path + " (" +
                             module.kind + "); " + name + " on " + module.kind +
                             " modules is not supported yet (linear layers "
                             "only)");
      return fail(loc, "'target_modules' selects " + module.path + " (" +
                           module.kind + "); " + name +
                           " adapts linear layers only");
    }

    AdapterTarget target;
    target.path = module.path;
    target.moduleIndex = i;
    target.layer = layer;
    if (lora) {
      target.rank = lora->r;
      target.alpha = lora->loraAlpha;
      for (size_t p = 0; p < rankRegexes.size(); ++p)
        if (rankRegexes[p].fullMatch(path)) {
          target.rank = static_cast<int64_t>(lora->rankPattern[p].value);
          rankUsed[p] = true;
          break;
        }
      for (size_t p = 0; p < alphaRegexes.size(); ++p)
        if (alphaRegexes[p].fullMatch(path)) {
          target.alpha = lora->alphaPattern[p].value;
          alphaUsed[p] = true;
          break;
        }
      target.scale = lora->useRslora
                         ? target.alpha / std::sqrt(double(target.rank))
                         : target.alpha / double(target.rank);
    } else if (ia3) {
      const ModuleSelector &feedforward = ia3->feedforwardModules;
      if (feedforward.kind == ModuleSelector::Kind::Regex)
        target.feedforward = feedforwardRegex.fullMatch(path);
      else if (feedforward.kind == ModuleSelector::Kind::Names)
        // PEFT's IA3 tests a plain string suffix here, no '.' boundary.
        target.feedforward = llvm::any_of(
            feedforward.names, [&](const Located<std::string> &name) {
              return path.ends_with(name.value);
            });
    }
    out.adapters.push_back(std::move(target));
  }

  if (!anyTargeted)
    return fail(targets.loc, "'target_modules' \"all-linear\" matches no "
                             "module: the model has no linear layer besides "
                             "the output head");
  if (out.adapters.empty()) {
    fail(targets.loc, "no module is left for " + name +
                          ": every module 'target_modules' selects is "
                          "excluded by 'exclude_modules', 'modules_to_save' "
                          "or 'layers_to_transform'");
    if (!filteredByLayer.empty())
      note(SourceLoc(), "outside 'layers_to_transform': " +
                            joinPaths(ArrayRef(filteredByLayer).take_front(5)));
    return false;
  }
  if (excludes.isSet() && !anyExcluded)
    resolved.warnings.push_back(
        excludes.loc.str() +
        ": warning: 'exclude_modules' excludes none of the modules "
        "'target_modules' selects");
  for (size_t p = 0; p < rankUsed.size(); ++p)
    if (!rankUsed[p])
      resolved.warnings.push_back(
          lora->rankPattern[p].loc.str() + ": warning: 'rank_pattern' key '" +
          lora->rankPattern[p].pattern + "' matches no adapted module");
  for (size_t p = 0; p < alphaUsed.size(); ++p)
    if (!alphaUsed[p])
      resolved.warnings.push_back(
          lora->alphaPattern[p].loc.str() + ": warning: 'alpha_pattern' key '" +
          lora->alphaPattern[p].pattern + "' matches no adapted module");

  if (lora && lora->bias != LoraBias::None) {
    std::set<std::string> adapted;
    for (const AdapterTarget &target : out.adapters)
      adapted.insert(target.path);
    for (const ModuleInfo &module : modules)
      if (module.hasBias &&
          (lora->bias == LoraBias::All || adapted.count(module.path)))
        out.trainableBiases.push_back(module.path);
  }
  return resolveModulesToSave(saved, out);
}

bool Resolver::resolveBitFit(const MethodSpec &method, ResolvedMethod &out) {
  const BitFitConfig &bitfit = *method.bitfit();
  if (bitfit.allBiases) {
    for (const ModuleInfo &module : modules)
      if (module.hasBias)
        out.trainableBiases.push_back(module.path);
    if (out.trainableBiases.empty())
      return fail(method.loc, "BITFIT trains biases, but the model has none");
    return resolveModulesToSave(bitfit.modulesToSave, out);
  }
  if (!checkSelectorMatches("biases", bitfit.biases))
    return false;
  PathRegex regex;
  if (bitfit.biases.kind == ModuleSelector::Kind::Regex &&
      !compile(bitfit.biases.regex, bitfit.biases.loc, regex))
    return false;
  for (const ModuleInfo &module : modules) {
    if (!selectorMatches(bitfit.biases, &regex, module.path))
      continue;
    if (!module.hasBias) {
      SourceLoc loc = bitfit.biases.loc;
      for (const auto &name : bitfit.biases.names)
        if (matchesName(module.path, name.value))
          loc = name.loc;
      return fail(loc,
                  "'biases' selects " + module.path + ", which has no bias");
    }
    out.trainableBiases.push_back(module.path);
  }
  return resolveModulesToSave(bitfit.modulesToSave, out);
}

bool Resolver::resolveFreezeLayers(const MethodSpec &method,
                                   ResolvedMethod &out) {
  const FreezeLayersConfig &config = *method.freezeLayers();
  int numLayers = 0;
  for (const ModuleInfo &module : modules)
    if (module.layer)
      numLayers = std::max(numLayers, *module.layer + 1);
  if (numLayers == 0)
    return fail(method.loc, "FREEZE_LAYERS needs layer indices, but no module "
                            "of the model belongs to a numbered layer");
  std::set<int64_t> trainable;
  if (config.lastNLayers) {
    const Located<int64_t> &count = *config.lastNLayers;
    if (count.value > numLayers)
      return fail(count.loc, "'last_n_layers' is " + Twine(count.value) +
                                 " but the model has " + Twine(numLayers) +
                                 " layers");
    for (int64_t layer = numLayers - count.value; layer < numLayers; ++layer)
      trainable.insert(layer);
  }
  for (const Located<int64_t> &layer : config.trainableLayers) {
    if (layer.value >= numLayers)
      return fail(layer.loc, "'trainable_layers' names layer " +
                                 Twine(layer.value) + " but the model has " +
                                 Twine(numLayers) + " layers (0.." +
                                 Twine(numLayers - 1) + ")");
    trainable.insert(layer.value);
  }
  for (const ModuleInfo &module : modules)
    if (module.layer && trainable.count(*module.layer))
      out.trainableModules.push_back(module.path);
  if (!resolveModulesToSave(config.modulesToSave, out))
    return false;
  // Saved modules may lie inside the trained layers already.
  std::vector<std::string> unique;
  std::set<std::string> seen;
  for (std::string &path : out.trainableModules)
    if (seen.insert(path).second)
      unique.push_back(std::move(path));
  out.trainableModules = std::move(unique);
  return true;
}

/// Two methods must not claim the same module in incompatible ways: one
/// adapter per module, and no adapter on a module another method trains in
/// full.
bool Resolver::checkConflicts() {
  struct Claim {
    size_t method;
    bool adapter;
  };
  std::map<std::string, Claim> claims;
  for (const ResolvedMethod &method : resolved.methods) {
    auto claim = [&](const std::string &path, bool adapter) {
      auto [it, inserted] =
          claims.insert({path, {method.methodIndex, adapter}});
      if (inserted || it->second.method == method.methodIndex)
        return true;
      if (!adapter && !it->second.adapter)
        return true; // trained in full twice is still trained in full
      const MethodSpec &earlier = spec.methods[it->second.method];
      const MethodSpec &later = spec.methods[method.methodIndex];
      fail(later.loc,
           "module " + path + " is " +
               (adapter ? "adapted" : "trained in full") + " by this " +
               methodName(later.kind) + " method and " +
               (it->second.adapter ? "adapted" : "trained in full") +
               " by the " + methodName(earlier.kind) +
               " method before it; a module takes one adapter, and none "
               "when it trains in full");
      note(earlier.loc, "the " + methodName(earlier.kind) + " method is here");
      return false;
    };
    for (const AdapterTarget &target : method.adapters)
      if (!claim(target.path, true))
        return false;
    for (const std::string &path : method.trainableModules)
      if (!claim(path, false))
        return false;
  }
  return true;
}

bool Resolver::run() {
  if (modules.empty())
    return fail(SourceLoc{spec.sourceFile, 0, 0},
                "the model has no modules to apply the spec to");
  for (size_t index = 0; index < spec.methods.size(); ++index) {
    const MethodSpec &method = spec.methods[index];
    ResolvedMethod out;
    out.methodIndex = index;
    out.kind = method.kind;
    bool ok = true;
    switch (method.kind) {
    case MethodKind::Lora:
    case MethodKind::IA3:
    case MethodKind::Sparse:
      ok = resolveAdapterMethod(method, out);
      break;
    case MethodKind::BitFit:
      ok = resolveBitFit(method, out);
      break;
    case MethodKind::FreezeLayers:
      ok = resolveFreezeLayers(method, out);
      break;
    case MethodKind::Full:
      for (const ModuleInfo &module : modules)
        out.trainableModules.push_back(module.path);
      break;
    case MethodKind::LoReFT:
    case MethodKind::DiReFT:
    case MethodKind::NoDiReFT:
      ok = checkReftLayers(method);
      break;
    case MethodKind::BottleneckAdapter:
    case MethodKind::PromptTuning:
    case MethodKind::PrefixTuning:
      // Placed by peft-insert-adapters on the model's layer structure (the
      // FFN/attention outputs, the embedding table), not on listed modules.
      break;
    default:
      ok = fail(method.loc, "peft_type '" + methodName(method.kind) +
                                "' is not supported yet");
      break;
    }
    if (!ok)
      return false;
    resolved.methods.push_back(std::move(out));
  }
  return checkConflicts();
}

} // namespace

bool resolveTargets(const PeftSpec &spec,
                    const std::vector<ModuleInfo> &modules,
                    ResolvedTargets &resolved, std::string &error) {
  resolved = ResolvedTargets();
  Resolver resolver(spec, modules, resolved);
  if (resolver.run())
    return true;
  error = resolver.error;
  return false;
}

std::string toJson(const ResolvedTargets &resolved) {
  std::string text;
  raw_string_ostream stream(text);
  {
    json::OStream out(stream, /*IndentSize=*/2);
    out.object([&] {
      out.attributeArray("methods", [&] {
        for (const ResolvedMethod &method : resolved.methods)
          out.object([&] {
            out.attribute("peft_type", methodName(method.kind));
            out.attribute("method_index", int64_t(method.methodIndex));
            out.attributeArray("adapters", [&] {
              for (const AdapterTarget &target : method.adapters)
                out.object([&] {
                  out.attribute("module", target.path);
                  if (target.layer)
                    out.attribute("layer", int64_t(*target.layer));
                  else
                    out.attribute("layer", nullptr);
                  if (method.kind == MethodKind::Lora) {
                    out.attribute("r", target.rank);
                    out.attributeBegin("lora_alpha");
                    writeNumber(out, target.alpha);
                    out.attributeEnd();
                    out.attributeBegin("scale");
                    writeNumber(out, target.scale);
                    out.attributeEnd();
                  } else if (method.kind == MethodKind::IA3) {
                    out.attribute("feedforward", target.feedforward);
                  }
                });
            });
            out.attributeArray("trainable_biases", [&] {
              for (const std::string &path : method.trainableBiases)
                out.value(path);
            });
            out.attributeArray("trainable_modules", [&] {
              for (const std::string &path : method.trainableModules)
                out.value(path);
            });
          });
      });
      out.attributeArray("warnings", [&] {
        for (const std::string &warning : resolved.warnings)
          out.value(warning);
      });
    });
  }
  stream << "\n";
  return text;
}

} // namespace peft::spec
