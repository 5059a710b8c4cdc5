// Helpers shared by the runtime unit tests.
#pragma once

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

namespace peft::test {

/// A fresh directory per test, removed afterwards.
class TempDirTest : public ::testing::Test {
protected:
  void SetUp() override {
    std::string pattern =
        (std::filesystem::temp_directory_path() / "peftrt-test-XXXXXX")
            .string();
    ASSERT_NE(mkdtemp(pattern.data()), nullptr);
    dir_ = pattern;
  }
  void TearDown() override {
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
  std::string path(const std::string &name) const {
    return (std::filesystem::path(dir_) / name).string();
  }
  static void writeFile(const std::string &p, const std::string &bytes) {
    // Unlink first: ext4 flushes a file truncated and rewritten in place on
    // close (auto_da_alloc), which costs milliseconds per file.
    std::error_code ec;
    std::filesystem::remove(p, ec);
    std::ofstream f(p, std::ios::binary | std::ios::trunc);
    f.write(bytes.data(), (std::streamsize)bytes.size());
    ASSERT_TRUE(f.good()) << p;
  }
  static std::string readFile(const std::string &p) {
    std::ifstream f(p, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(f), {});
  }

  std::string dir_;
};

} // namespace peft::test
