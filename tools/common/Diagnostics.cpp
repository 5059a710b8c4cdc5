#include "tools/common/Diagnostics.h"

#include "mlir/IR/BuiltinAttributes.h"
#include "mlir/IR/Location.h"

using namespace mlir;

namespace peft::tools {

static void describe(Location loc, std::string &file, unsigned &line,
                     unsigned &col, std::string &name) {
  if (auto f = dyn_cast<FileLineColLoc>(loc)) {
    file = f.getFilename().str();
    line = f.getLine();
    col = f.getColumn();
  } else if (auto n = dyn_cast<NameLoc>(loc)) {
    if (name.empty())
      name = n.getName().str();
    describe(n.getChildLoc(), file, line, col, name);
  } else if (auto c = dyn_cast<CallSiteLoc>(loc)) {
    describe(c.getCallee(), file, line, col, name);
  } else if (auto fused = dyn_cast<FusedLoc>(loc)) {
    for (Location l : fused.getLocations()) {
      describe(l, file, line, col, name);
      if (!file.empty())
        break;
    }
  }
}

UserDiagnosticHandler::UserDiagnosticHandler(MLIRContext *ctx, StringRef tool,
                                             raw_ostream &os)
    : ScopedDiagnosticHandler(ctx), tool_(tool.str()), os_(os) {
  setHandler([this](Diagnostic &diag) {
    std::string file, name;
    unsigned line = 0, col = 0;
    describe(diag.getLocation(), file, line, col, name);
    const char *sev = "error";
    switch (diag.getSeverity()) {
    case DiagnosticSeverity::Error:
      sev = "error";
      hadError_ = true;
      break;
    case DiagnosticSeverity::Warning:
      sev = "warning";
      break;
    case DiagnosticSeverity::Note:
      sev = "note";
      break;
    case DiagnosticSeverity::Remark:
      sev = "remark";
      break;
    }
    std::string msg = diag.str();
    if (!file.empty() && line > 0)
      os_ << file << ":" << line << ":" << col << ": " << sev << ": " << msg
          << "\n";
    else if (!file.empty())
      os_ << tool_ << ": " << sev << ": " << file << ": " << msg << "\n";
    else
      os_ << tool_ << ": " << sev << ": " << msg << "\n";
    for (Diagnostic &note : diag.getNotes())
      os_ << "  note: " << note.str() << "\n";
    os_.flush();
    return success();
  });
}

} // namespace peft::tools
