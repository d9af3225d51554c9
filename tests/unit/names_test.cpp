#include <gtest/gtest.h>

#include <set>

#include "ebpfnet/error.hpp"
#include "ebpfnet/names.hpp"

namespace ebpfnet {
namespace {

bool valid(std::string_view n) {
  try {
    validate_name("endpoint", n);
    return true;
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Errc::usage);
    EXPECT_NE(std::string(e.what()).find("endpoint name"), std::string::npos) << e.what();
    return false;
  }
}

TEST(Names, AcceptsOrdinaryNames) {
  for (const char* n : {"web", "db-1", "a", "pod_x.y", "A9"}) EXPECT_TRUE(valid(n)) << n;
  EXPECT_TRUE(valid(std::string(kMaxNameLen, 'a')));
}

TEST(Names, RefusesNamesThatCouldEscapeRunNetns) {
  for (const char* n : {"", "..", ".", "../etc", "a/b", "/abs", "-rf", ".hidden", "sp ace", "tab\t",
                        "star*", "new\nline"})
    EXPECT_FALSE(valid(n)) << n;
  EXPECT_FALSE(valid(std::string("a\0b", 3)));
  EXPECT_FALSE(valid(std::string(kMaxNameLen + 1, 'a')));
}

TEST(Names, HostIfnameFitsAndIsStable) {
  EXPECT_EQ(host_ifname("web"), "ep-web");
  EXPECT_EQ(host_ifname("abcdefghijkl"), "ep-abcdefghijkl");  // exactly 15
  std::string long_name = host_ifname("abcdefghijklm");
  EXPECT_EQ(long_name.size(), kMaxIfnameLen);
  EXPECT_EQ(long_name.rfind("ep-abcdefg-", 0), 0u);
  EXPECT_EQ(host_ifname("abcdefghijklm"), long_name);
  EXPECT_NE(host_ifname("abcdefghijklm"), host_ifname("abcdefghijkln"));
  EXPECT_NE(host_ifname("web", 1), host_ifname("web"));
  EXPECT_LE(host_ifname("web", 1).size(), kMaxIfnameLen);
}

TEST(Names, HostIfnamesOfSharedPrefixesRarelyCollide) {
  std::set<std::string> seen;
  for (int i = 0; i < 200; ++i) seen.insert(host_ifname("container-" + std::to_string(i)));
  EXPECT_GE(seen.size(), 199u);
}

TEST(Names, IfnameValidation) {
  validate_ifname("eth0");
  for (const char* bad : {"", "a/b", "has space", "a:b", "sixteen-chars-xx"})
    EXPECT_THROW(validate_ifname(bad), Error) << bad;
}

}  // namespace
}  // namespace ebpfnet
