// The state store against a local user who can write into the state
// directory: planted symlinks are not followed, files and directories are
// private, and anything another user could have written is refused.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>
#include <functional>
#include <initializer_list>

#include "ebpfnet/error.hpp"
#include "ebpfnet/state.hpp"
#include "support.hpp"

namespace ebpfnet {
namespace {

namespace fs = std::filesystem;

NodeState minimal(const std::string& name) {
  NodeState s;
  s.name = name;
  s.cidr = *Ipv4Cidr::parse("10.240.0.0/24");
  return s;
}

// A node "lab" with saved state in a private root, and a second private
// directory standing for whatever an attacker would like us to overwrite.
class StateSafety : public testing::Test {
 protected:
  void SetUp() override {
    EBPFNET_REQUIRE_ROOT();  // chown, and ownership checks against uid 0
    auto lock = store_.lock(true);
    store_.save(minimal("lab"));
    std::ofstream(target()) << "precious\n";
  }
  fs::path target() const { return elsewhere_.path() / "target"; }
  fs::path in_node(const char* name) const { return store_.dir() / name; }

  test::TempStateDir root_, elsewhere_;
  StateStore store_{root_.path(), "lab"};
};

// step must throw Error(Errc::failed) whose message holds every one of words.
void expect_refused(const std::function<void()>& step, std::initializer_list<std::string> words) {
  try {
    step();
    ADD_FAILURE() << "not refused";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Errc::failed) << e.what();
    for (const auto& w : words) EXPECT_NE(std::string(e.what()).find(w), std::string::npos) << e.what();
  }
}

mode_t mode_of(const fs::path& p) {
  struct stat st {};
  EXPECT_EQ(::lstat(p.c_str(), &st), 0) << p;
  return st.st_mode & 07777;
}

TEST_F(StateSafety, TempFileSymlinkIsReplacedNotFollowed) {
  fs::create_symlink(target(), in_node("state.json.tmp"));
  {
    auto lock = store_.lock();
    NodeState s = minimal("lab");
    s.last_allocated = *Ipv4::parse("10.240.0.9");
    store_.save(s);
  }
  EXPECT_EQ(test::read_file(target()), "precious\n");
  EXPECT_FALSE(fs::exists(fs::symlink_status(in_node("state.json.tmp"))));
  EXPECT_TRUE(fs::is_regular_file(fs::symlink_status(in_node("state.json"))));
  EXPECT_EQ(store_.load().last_allocated.str(), "10.240.0.9");
}

TEST_F(StateSafety, DanglingLockSymlinkIsRefusedAndItsTargetNotMade) {
  fs::remove(in_node("lock"));
  fs::path missing = elsewhere_.path() / "made-by-us";
  fs::create_symlink(missing, in_node("lock"));
  expect_refused([&] { store_.lock(); }, {in_node("lock").string(), "symbolic link"});
  expect_refused([&] { store_.lock(true); }, {in_node("lock").string(), "symbolic link"});
  EXPECT_FALSE(fs::exists(missing));
}

TEST_F(StateSafety, StateFileSymlinkIsRefused) {
  fs::path planted = elsewhere_.path() / "state.json";
  fs::copy_file(in_node("state.json"), planted);
  fs::remove(in_node("state.json"));
  fs::create_symlink(planted, in_node("state.json"));
  expect_refused([&] { store_.load(); }, {in_node("state.json").string(), "symbolic link"});
}

TEST_F(StateSafety, NodeDirectorySymlinkIsRefused) {
  // Another node's directory, reached through a symlink planted as "ghost".
  fs::create_directory_symlink(store_.dir(), root_.path() / "ghost");
  StateStore ghost(root_.path(), "ghost");
  const std::string named = (root_.path() / "ghost").string();
  expect_refused([&] { ghost.lock(); }, {named, "symbolic link"});
  expect_refused([&] { ghost.lock(true); }, {named, "symbolic link"});
  expect_refused([&] { ghost.load(); }, {named, "symbolic link"});
  expect_refused([&] { ghost.save(minimal("ghost")); }, {named, "symbolic link"});
  expect_refused([&] { ghost.remove(); }, {named, "symbolic link"});
  EXPECT_TRUE(fs::exists(in_node("state.json"))) << "removed through the symlink";

  // A dangling one is not created through either.
  fs::path missing = elsewhere_.path() / "made-by-us";
  fs::create_directory_symlink(missing, root_.path() / "dangling");
  expect_refused([&] { StateStore(root_.path(), "dangling").lock(true); }, {"dangling", "symbolic link"});
  EXPECT_FALSE(fs::exists(missing));
}

TEST_F(StateSafety, DirectoriesAre0700AndFiles0600) {
  fs::path root = root_.path() / "new" / "root";
  StateStore store(root, "lab");
  {
    auto lock = store.lock(true);
    store.save(minimal("lab"));
  }
  EXPECT_EQ(mode_of(root_.path() / "new"), 0700u);
  EXPECT_EQ(mode_of(root), 0700u);
  EXPECT_EQ(mode_of(store.dir()), 0700u);
  EXPECT_EQ(mode_of(store.dir() / "lock"), 0600u);
  EXPECT_EQ(mode_of(store.dir() / "state.json"), 0600u);
}

TEST_F(StateSafety, GroupOrOtherWritableStateIsRefused) {
  fs::permissions(in_node("state.json"), fs::perms::group_write, fs::perm_options::add);
  expect_refused([&] { store_.load(); }, {in_node("state.json").string(), "writable by group or others"});
  fs::permissions(in_node("state.json"), fs::perms::group_write, fs::perm_options::remove);
  EXPECT_NO_THROW(store_.load());

  fs::permissions(in_node("lock"), fs::perms::others_write, fs::perm_options::add);
  expect_refused([&] { store_.lock(); }, {in_node("lock").string(), "writable by group or others"});
  fs::permissions(in_node("lock"), fs::perms::others_write, fs::perm_options::remove);

  fs::permissions(store_.dir(), fs::perms::group_write, fs::perm_options::add);
  expect_refused([&] { store_.load(); }, {store_.dir().string(), "writable by group or others"});
}

TEST_F(StateSafety, StateOwnedBySomeoneElseIsRefused) {
  ASSERT_EQ(::chown(in_node("state.json").c_str(), 65534, 65534), 0);
  expect_refused([&] { store_.load(); }, {in_node("state.json").string(), "owned by uid 65534"});
  ASSERT_EQ(::chown(store_.dir().c_str(), 65534, 65534), 0);
  expect_refused([&] { store_.lock(); }, {store_.dir().string(), "owned by uid 65534"});
  expect_refused([&] { store_.exists(); }, {store_.dir().string(), "owned by uid 65534"});
}

// A FIFO planted as state.json would block a plain open for reading.
TEST_F(StateSafety, StateThatIsNotAFileIsRefusedWithoutHanging) {
  fs::remove(in_node("state.json"));
  ASSERT_EQ(::mkfifo(in_node("state.json").c_str(), 0600), 0);
  expect_refused([&] { store_.load(); }, {in_node("state.json").string(), "not a regular file"});
}

TEST_F(StateSafety, RemoveTakesSymlinksNotTheirTargets) {
  fs::create_symlink(target(), in_node("state.json.tmp"));
  fs::create_directory_symlink(elsewhere_.path(), in_node("dir-link"));
  store_.remove();
  EXPECT_FALSE(fs::exists(fs::symlink_status(store_.dir())));
  EXPECT_EQ(test::read_file(target()), "precious\n");
  EXPECT_FALSE(store_.exists());
  EXPECT_NO_THROW(store_.remove()) << "removing what is gone is not an error";
}

TEST_F(StateSafety, JournalRoundTripAndRemoval) {
  EXPECT_FALSE(store_.load_journal());
  Journal j{.op = "endpoint add", .pid = 42};
  EndpointRecord e;
  e.name = "web";
  e.netns = "web";
  e.netns_path = "/run/netns/web";
  e.netns_owned = true;
  e.host_ifname = "ep-web";
  e.ip = *Ipv4::parse("10.240.0.2");
  j.adding.push_back(e);
  j.removing = {"db"};
  j.unpublishing.push_back({"db", "tcp", 80, 8080});
  j.netns = {"lab-out"};
  store_.save_journal(j);
  EXPECT_EQ(mode_of(in_node("journal.json")), 0600u);
  auto back = store_.load_journal();
  ASSERT_TRUE(back);
  EXPECT_EQ(back->op, "endpoint add");
  EXPECT_EQ(back->pid, 42);
  ASSERT_EQ(back->adding.size(), 1u);
  EXPECT_EQ(back->adding[0].host_ifname, "ep-web");
  EXPECT_EQ(back->adding[0].ip.str(), "10.240.0.2");
  EXPECT_TRUE(back->adding[0].netns_owned);
  EXPECT_EQ(back->removing, std::vector<std::string>{"db"});
  ASSERT_EQ(back->unpublishing.size(), 1u);
  EXPECT_EQ(back->unpublishing[0].port, 8080);
  EXPECT_EQ(back->netns, std::vector<std::string>{"lab-out"});
  store_.remove_journal();
  EXPECT_FALSE(store_.load_journal());
  EXPECT_FALSE(fs::exists(in_node("journal.json")));
}

// Journals carry no version: one an ebpfnet before namespace cookies wrote
// (killed mid-operation, then upgraded) still loads, its cookies unknown.
TEST_F(StateSafety, JournalWithoutNetnsCookiesLoads) {
  Journal j{.op = "endpoint add", .pid = 42};
  EndpointRecord e;
  e.name = "web";
  e.netns = "web";
  e.netns_path = "/run/netns/web";
  e.host_ifname = "ep-web";
  e.ip = *Ipv4::parse("10.240.0.2");
  e.netns_cookie = 77;
  j.adding.push_back(e);
  store_.save_journal(j);
  auto doc = nlohmann::json::parse(test::read_file(in_node("journal.json")));
  ASSERT_EQ(doc["adding"][0]["netns_cookie"], 77);
  doc["adding"][0].erase("netns_cookie");
  std::ofstream(in_node("journal.json"), std::ios::trunc) << doc.dump();
  auto back = store_.load_journal();
  ASSERT_TRUE(back);
  ASSERT_EQ(back->adding.size(), 1u);
  EXPECT_EQ(back->adding[0].netns_cookie, 0u);
}

TEST_F(StateSafety, JournalIsValidatedLikeState) {
  const std::pair<const char*, const char*> bad[] = {
      {R"({"op":"x","pid":1,"adding":[],"removing":["../../tmp/x"],"unpublishing":[],"netns":[]})", "removing[0]"},
      {R"({"op":"x","pid":1,"adding":[],"removing":[],"unpublishing":[],"netns":["a/b"]})", "netns[0]"},
      {R"({"op":"x","pid":1,"adding":[],"removing":[],"unpublishing":[{"endpoint":"a","proto":"sctp",)"
       R"("target_port":1,"port":1}],"netns":[]})",
       "unpublishing[0].proto"},
      {R"({"op":"x","pid":1,"removing":[],"unpublishing":[],"netns":[]})", "adding"},
  };
  for (const auto& [text, field] : bad) {
    std::ofstream(in_node("journal.json"), std::ios::trunc) << text;
    fs::permissions(in_node("journal.json"), fs::perms::owner_read | fs::perms::owner_write);
    expect_refused([&] { store_.load_journal(); }, {"journal.json", field});
  }
}

TEST_F(StateSafety, JournalSymlinkIsRefused) {
  std::ofstream(target(), std::ios::trunc) << R"({"op":"x","pid":1,"adding":[],"removing":[],"unpublishing":[],"netns":[]})";
  fs::create_symlink(target(), in_node("journal.json"));
  expect_refused([&] { store_.load_journal(); }, {in_node("journal.json").string(), "symbolic link"});
  fs::create_symlink(target(), in_node("journal.json.tmp"));
  store_.save_journal({.op = "expose"});  // replaces the planted temp file, never writes through it
  EXPECT_TRUE(fs::is_regular_file(fs::symlink_status(in_node("journal.json"))));
  EXPECT_NE(test::read_file(target()).find("\"op\":\"x\""), std::string::npos);
}

}  // namespace
}  // namespace ebpfnet
