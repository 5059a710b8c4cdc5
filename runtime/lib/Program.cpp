// Loading a compiled program: from the executable it is linked into, from a
// shared object, or from parts. Every kernel the program names is resolved
// here, so a session never meets an unknown symbol.
#include "peft/runtime.h"

#include <dlfcn.h>
#include <unordered_map>

// What `peftc -o trainer` links into the executable. Weak, so that the
// runtime also links into applications without a program (they use
// loadShared or fromParts) and Program::linked reports that instead of the
// link failing.
extern "C" {
extern const uint8_t peftc_program_data[] __attribute__((weak));
extern const uint64_t peftc_program_size __attribute__((weak));
extern const peft_kernel_entry peftc_kernel_table[] __attribute__((weak));
extern const uint64_t peftc_kernel_count __attribute__((weak));
}

namespace peft::rt {

namespace {

/// Decodes `bytes` and resolves every kernel symbol in `table`.
bool build(const uint8_t *bytes, size_t size, const peft_kernel_entry *table,
           size_t count, program::Program &ir, std::vector<peft_kernel_fn> &fns,
           std::string &error) {
  if (!program::decodeProgram(bytes, size, ir, error))
    return false;
  std::unordered_map<std::string, peft_kernel_fn> bySymbol;
  for (size_t i = 0; i < count; ++i) {
    if (!table[i].name || !table[i].fn) {
      error = "kernel table entry " + std::to_string(i) +
              " has no name or no function";
      return false;
    }
    bySymbol.emplace(table[i].name, table[i].fn);
  }
  fns.clear();
  for (const program::Kernel &k : ir.kernels) {
    auto it = bySymbol.find(k.symbol);
    if (it == bySymbol.end()) {
      error = "kernel '" + k.symbol + "' is not in the kernel table";
      return false;
    }
    fns.push_back(it->second);
  }
  return true;
}

} // namespace

Program::~Program() {
  if (handle_)
    dlclose(handle_);
}

std::shared_ptr<const Program> Program::linked(std::string &error) {
  // Taking the address of a weak undefined symbol gives null; the
  // indirection keeps the compiler from folding the test away.
  const uint8_t *volatile data = peftc_program_data;
  const uint64_t *volatile size = &peftc_program_size;
  const peft_kernel_entry *volatile table = peftc_kernel_table;
  const uint64_t *volatile count = &peftc_kernel_count;
  if (!data || !size || !table || !count) {
    error = "no program is linked into this executable (" +
            std::string(PEFTC_PROGRAM_DATA_SYMBOL) + " is undefined)";
    return nullptr;
  }
  std::shared_ptr<Program> p(new Program());
  if (!build(data, *size, table, *count, p->ir_, p->fns_, error)) {
    error = "linked program: " + error;
    return nullptr;
  }
  return p;
}

std::shared_ptr<const Program> Program::loadShared(const std::string &path,
                                                   std::string &error) {
  void *handle = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (!handle) {
    const char *why = dlerror();
    error = "cannot load '" + path + "': " + (why ? why : "unknown error");
    return nullptr;
  }
  std::shared_ptr<Program> p(new Program());
  p->handle_ = handle; // closed by ~Program, also on the error paths
  auto symbol = [&](const char *name) -> const void * {
    const void *s = dlsym(handle, name);
    if (!s)
      error = "'" + path + "' defines no " + name;
    return s;
  };
  auto *data = static_cast<const uint8_t *>(symbol(PEFTC_PROGRAM_DATA_SYMBOL));
  if (!data)
    return nullptr;
  auto *size = static_cast<const uint64_t *>(symbol(PEFTC_PROGRAM_SIZE_SYMBOL));
  if (!size)
    return nullptr;
  auto *table =
      static_cast<const peft_kernel_entry *>(symbol(PEFTC_KERNEL_TABLE_SYMBOL));
  if (!table)
    return nullptr;
  auto *count =
      static_cast<const uint64_t *>(symbol(PEFTC_KERNEL_COUNT_SYMBOL));
  if (!count)
    return nullptr;
  if (!build(data, *size, table, *count, p->ir_, p->fns_, error)) {
    error = "'" + path + "': " + error;
    return nullptr;
  }
  return p;
}

std::shared_ptr<const Program>
Program::fromParts(std::string bytes, std::vector<peft_kernel_entry> kernels,
                   std::string &error) {
  std::shared_ptr<Program> p(new Program());
  if (!build(reinterpret_cast<const uint8_t *>(bytes.data()), bytes.size(),
             kernels.data(), kernels.size(), p->ir_, p->fns_, error))
    return nullptr;
  return p;
}

} // namespace peft::rt
