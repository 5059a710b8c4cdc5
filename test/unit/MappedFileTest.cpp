#include "TestUtil.h"

#include "peft/MappedFile.h"

#include <cstring>
#include <filesystem>

using namespace peft;
using MappedFileTest = peft::test::TempDirTest;

TEST_F(MappedFileTest, MapsContents) {
  std::string p = path("data.bin");
  writeFile(p, std::string("hello\0world", 11));
  std::string err;
  auto f = MappedFile::open(p, err);
  ASSERT_TRUE(f) << err;
  EXPECT_EQ(f->size(), 11u);
  EXPECT_EQ(f->path(), p);
  EXPECT_EQ(std::memcmp(f->data(), "hello\0world", 11), 0);
}

TEST_F(MappedFileTest, EmptyFile) {
  std::string p = path("empty.bin");
  writeFile(p, "");
  std::string err;
  auto f = MappedFile::open(p, err);
  ASSERT_TRUE(f) << err;
  EXPECT_EQ(f->size(), 0u);
}

TEST_F(MappedFileTest, MissingFileNamesFileAndReason) {
  std::string p = path("does-not-exist.bin");
  std::string err;
  EXPECT_EQ(MappedFile::open(p, err), nullptr);
  EXPECT_NE(err.find(p), std::string::npos) << err;
  EXPECT_NE(err.find("No such file or directory"), std::string::npos) << err;
}

TEST_F(MappedFileTest, DirectoryIsRejected) {
  std::string err;
  EXPECT_EQ(MappedFile::open(dir_, err), nullptr);
  EXPECT_NE(err.find(dir_), std::string::npos) << err;
  EXPECT_NE(err.find("is not a regular file"), std::string::npos) << err;
}

TEST_F(MappedFileTest, OutlivesTheFileName) {
  // The mapping stays valid after the file is replaced or removed, which is
  // what lets tensors view weights while a checkpoint is rewritten.
  std::string p = path("w.bin");
  writeFile(p, "abcd");
  std::string err;
  auto f = MappedFile::open(p, err);
  ASSERT_TRUE(f) << err;
  std::filesystem::remove(p);
  EXPECT_EQ(std::memcmp(f->data(), "abcd", 4), 0);
}
