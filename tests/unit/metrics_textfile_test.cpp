// The textfile is replaced whole or not at all, and nothing planted beside
// it is followed.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>

#include "ebpfnet/error.hpp"
#include "ebpfnet/metrics/textfile.hpp"
#include "support.hpp"

namespace ebpfnet::metrics {
namespace {

namespace fs = std::filesystem;

class MetricsTextfile : public testing::Test {
 protected:
  fs::path dir() const { return dir_.path(); }
  fs::path file() const { return dir() / "ebpfnet.prom"; }
  fs::path tmp() const { return dir() / (".ebpfnet.prom." + std::to_string(::getpid()) + ".tmp"); }
  test::TempStateDir dir_;
};

TEST_F(MetricsTextfile, WritesAndReplacesWhole) {
  write_textfile(file(), "a 1\n");
  EXPECT_EQ(test::read_file(file()), "a 1\n");
  struct stat st {};
  ASSERT_EQ(::stat(file().c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0133, 0u) << "0644 at most: node_exporter reads it as another user, nobody writes it";
  const ino_t before = st.st_ino;
  write_textfile(file(), "a 2\n");
  EXPECT_EQ(test::read_file(file()), "a 2\n");
  ASSERT_EQ(::stat(file().c_str(), &st), 0);
  EXPECT_NE(st.st_ino, before) << "replaced by rename, not rewritten in place";
  EXPECT_EQ(test::entries(dir()), std::vector<std::string>{"ebpfnet.prom"});
}

TEST_F(MetricsTextfile, MissingDirectoryIsAnErrorNamingIt) {
  try {
    write_textfile(dir() / "nope" / "ebpfnet.prom", "a 1\n");
    FAIL() << "wrote into a directory that does not exist";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Errc::not_found);
    EXPECT_NE(std::string(e.what()).find((dir() / "nope").string()), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("No such file or directory"), std::string::npos) << e.what();
  }
  EXPECT_TRUE(test::entries(dir()).empty());
}

TEST_F(MetricsTextfile, NoFileNameIsUsage) {
  try {
    write_textfile(dir() / "", "a 1\n");
    FAIL() << "accepted a directory as the file";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Errc::usage) << e.what();
  }
}

TEST_F(MetricsTextfile, FailedRenameLeavesNothingBehind) {
  fs::create_directory(file());  // a directory where the file should go: rename fails
  EXPECT_THROW(write_textfile(file(), "a 1\n"), Error);
  EXPECT_EQ(test::entries(dir()), std::vector<std::string>{"ebpfnet.prom"});
  EXPECT_TRUE(fs::is_directory(file()));
}

TEST_F(MetricsTextfile, PlantedTempFileIsNotFollowed) {
  const fs::path target = dir() / "precious";
  std::ofstream(target) << "keep\n";
  fs::create_symlink(target, tmp());
  EXPECT_THROW(write_textfile(file(), "a 1\n"), Error);
  EXPECT_EQ(test::read_file(target), "keep\n");
  EXPECT_FALSE(fs::exists(file()));
}

TEST_F(MetricsTextfile, SymlinkAtThePathIsReplacedNotFollowed) {
  const fs::path target = dir() / "precious";
  std::ofstream(target) << "keep\n";
  fs::create_symlink(target, file());
  write_textfile(file(), "a 1\n");
  EXPECT_EQ(test::read_file(target), "keep\n");
  EXPECT_FALSE(fs::is_symlink(file()));
  EXPECT_EQ(test::read_file(file()), "a 1\n");
}

}  // namespace
}  // namespace ebpfnet::metrics
