// Fixture for runtime-no-llvm-includes-selftest: the check must reject this.
#include "llvm/ADT/StringRef.h"
