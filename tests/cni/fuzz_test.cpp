// ebpfnet-cni against hostile input: the inputs that once broke it (from
// fuzz_corpus.json), deep nesting, and a fixed-seed fuzz of the CNI_*
// environment and the config on stdin. Whatever the bytes, the plugin
// answers in the spec: no signal, exit 0 or 1, stdout one JSON reply (the
// verb's result or an error with a documented code), and nothing left on the
// node, in its state directory or under /run/netns.
//
// Safety: every CNI_NETNS a case names is either the one container the test
// made, for a config that names the test's sandbox node, or no namespace at
// all, so a mutated config can never reach the machine's own namespace; and
// stateDir and logFile always point into the test's state directory.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <linux/nsfs.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/stat.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <random>
#include <set>
#include <thread>

#include "cni_harness.hpp"
#include "ebpfnet/fd.hpp"

namespace ebpfnet {
namespace {

using namespace test;

// The codes docs/cni.md documents; 999 is documented too, but as a bug.
const std::set<int> kDocumentedCodes = {1, 2, 3, 4, 5, 6, 7, 50, 51, 103, 104, 105, 106, 110};

// The environment a case sets, in order; a variable not listed is unset.
using EnvVars = std::vector<std::pair<std::string, std::string>>;

struct Case {
  EnvVars env;
  std::string input;

  std::string* var(const std::string& key) {
    for (auto& [k, v] : env)
      if (k == key) return &v;
    return nullptr;
  }
  std::string command() const {
    for (const auto& [k, v] : env)
      if (k == "CNI_COMMAND") return v;
    return "";
  }
};

// Bytes as the corpus writes them: printable ASCII as is, the rest \xHH.
std::string escaped(std::string_view s, size_t limit = 400) {
  std::string out;
  for (unsigned char c : s.substr(0, limit)) {
    char hex[5];
    std::snprintf(hex, sizeof hex, "\\x%02x", c);
    out += c == '\\' ? "\\\\" : (c >= 0x20 && c < 0x7f) ? std::string(1, c) : hex;
  }
  return s.size() > limit ? out + "...(" + std::to_string(s.size()) + " bytes)" : out;
}

std::string unescaped(std::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\\' && i + 1 < s.size() && s[i + 1] == '\\') {
      out += '\\';
      ++i;
    } else if (s[i] == '\\' && i + 3 < s.size() && s[i + 1] == 'x') {
      out += static_cast<char>(std::stoi(std::string(s.substr(i + 2, 2)), nullptr, 16));
      i += 3;
    } else {
      out += s[i];
    }
  }
  return out;
}

std::string describe(const Case& k) {
  std::string s;
  for (const auto& [key, v] : k.env) s += key + "=" + escaped(v) + " ";
  return s + "stdin: " + escaped(k.input);
}

// Parsed as the plugin parses it, but bounded: anything deeper than 1000
// levels is refused by the plugin (its limit is far lower) before it reads
// a key, and would overflow this process's stack when dumped.
json parse_bounded(const std::string& text) {
  auto bound = [](int depth, json::parse_event_t, json&) {
    if (depth > 1000) throw std::length_error("deep");
    return true;
  };
  try {
    return json::parse(text, bound, false);
  } catch (const std::length_error&) {
    return json::value_t::discarded;
  }
}

bool is_netns(const std::string& path) {
  struct stat st{};
  // Only regular files are opened: a device could act on open, a FIFO block.
  if (::stat(path.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) return false;
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  return fd.valid() && ::ioctl(fd.get(), NS_GET_NSTYPE) == CLONE_NEWNET;
}

// A sandbox node, a network on it and one container; every other path a
// case gives as CNI_NETNS is no namespace.
class Scene {
 public:
  Scene() {
    std::ofstream(plain_file_) << "not a namespace\n";
    state_before_ = entries(sb_.env().state_root);
  }

  const CniNet& net() const { return net_; }
  const Container& container() const { return c_; }
  std::string gone() const { return netns::path_of(prefix_ + "-gone"); }
  std::string plain_file() const { return plain_file_.string(); }

  // Keeps a case inside the sandbox (see the top of this file).
  void make_safe(Case& k) const {
    std::string* ns = k.var("CNI_NETNS");
    bool real = ns && *ns == c_.path();
    if (ns && !real && is_netns(*ns)) *ns = gone();
    json j = parse_bounded(k.input);
    if (!j.is_object()) return;
    json safe = net_.conf();
    bool changed = false;
    // A value of a wrong type is refused before the plugin acts on it; null
    // or absent means the default, which is the machine's, not the test's.
    auto pin = [&](const char* key) {
      auto it = j.find(key);
      bool wrong_type = it != j.end() && !it->is_null() && !it->is_string();
      if (!wrong_type && (it == j.end() || *it != safe[key])) {
        j[key] = safe[key];
        changed = true;
      }
    };
    pin("stateDir");
    pin("logFile");
    if (real) pin("node");
    if (changed) k.input = j.dump();
  }

  // An ADD that succeeded is taken back at once, so the next case finds
  // the container as the runtime made it.
  void undo_add(const Case& k) {
    Case del = k;
    *del.var("CNI_COMMAND") = "DEL";
    del.input = net_.conf().dump();
    CniReply r = exec(del);
    EXPECT_EQ(r.code, 0) << "DEL after a successful ADD: " << r.out << r.err << "\n" << describe(k);
  }

  static CniReply exec(const Case& k) {
    std::vector<std::string> env;
    for (const auto& [key, v] : k.env) env.push_back(key + "=" + v);
    return cni_exec(env, k.input);
  }

  void expect_nothing_left() {
    expect_node_empty(sb_);
    EXPECT_TRUE(links_besides_lo(c_.netns()).empty());
    std::vector<std::string> made;
    for (const auto& e : entries(sb_.env().state_root))
      if (!std::binary_search(state_before_.begin(), state_before_.end(), e) &&
          e != net_.name() + ".log")
        made.push_back(e);
    EXPECT_TRUE(made.empty()) << "left in the state directory: " << joined(made);
    for (const auto& e : entries("/run/netns"))
      EXPECT_NE(e.rfind(prefix_, 0), 0u) << "namespace left: " << e;
  }

 private:
  SandboxNode sb_;
  CniNet net_{sb_};
  Container c_;
  std::string prefix_ = unique("fz");
  std::filesystem::path plain_file_ = sb_.env().state_root / "plain-file";
  std::vector<std::string> state_before_;
};

// What every reply must be, whatever the input: "" when it is, else why not.
std::string judge(const Case& k, const CniReply& r) {
  if (r.code != 0 && r.code != 1)
    return "exit " + std::to_string(r.code) + (r.code > 128 ? " (a signal)" : "");
  std::string cmd = k.command();
  if (r.code == 0 && r.out.empty())
    return cmd == "ADD" || cmd == "VERSION" ? "no reply on stdout" : "";
  json j = json::parse(r.out, nullptr, false);
  if (!j.is_object()) return "stdout is not a JSON object";
  static const std::set<json> versions = {"0.4.0", "1.0.0", "1.1.0"};
  if (!versions.count(j.value("cniVersion", json()))) return "no cniVersion the plugin speaks";
  if (r.code == 0 && cmd == "VERSION")
    return j.contains("supportedVersions") ? "" : "no supportedVersions";
  if (r.code == 0 && cmd == "ADD")
    return j["interfaces"].is_array() && j["ips"].is_array() ? "" : "not an ADD result";
  if (r.code == 0) return cmd + " printed something";
  auto code = j.find("code");
  if (code == j.end() || !code->is_number_integer()) return "an error without a code";
  if (!kDocumentedCodes.count(code->get<int>()))
    return "code " + std::to_string(code->get<int>()) + " is not a documented one";
  auto msg = j.find("msg");
  if (msg == j.end() || !msg->is_string() || msg->get<std::string>().empty())
    return "an error without a msg";
  if (j.contains("details") && !j["details"].is_string()) return "details is not a string";
  return "";
}

// "ok ADD", "code 4", "exit 134": what the summary counts.
std::string outcome(const Case& k, const CniReply& r) {
  if (r.code == 0) return "ok " + k.command();
  if (r.code != 1) return "exit " + std::to_string(r.code);
  json j = json::parse(r.out, nullptr, false);
  return "code " + (j.is_object() ? j.value("code", json()).dump() : "?");
}

TEST(CniFuzz, InputsThatOnceBrokeThePlugin) {
  EBPFNET_REQUIRE_ROOT();
  Scene s;
  json corpus = json::parse(std::ifstream(CNI_FUZZ_CORPUS));
  ASSERT_FALSE(corpus["cases"].empty());
  for (const auto& c : corpus["cases"]) {
    SCOPED_TRACE(c["what"].get<std::string>());
    Case k;
    for (const auto& [key, v] : c["env"].items()) {
      std::string value = unescaped(v.get<std::string>());
      if (value == "{id}") value = container_id();
      if (value == "{gone}") value = s.gone();
      k.env.emplace_back(key, value);
    }
    if (c.contains("stdin")) {
      k.input = unescaped(c["stdin"].get<std::string>());
    } else {
      json conf = s.net().conf();
      conf.merge_patch(c["conf"]);
      k.input = conf.dump();
    }
    s.make_safe(k);
    CniReply r = Scene::exec(k);
    EXPECT_EQ(judge(k, r), "") << r.out << r.err << "\n" << describe(k);
    expect_cni_error(r, c["code"].get<int>(), c["msg"].get<std::string>());
  }
  s.expect_nothing_left();
}

TEST(CniFuzz, DeepNestingIsADecodeError) {
  EBPFNET_REQUIRE_ROOT();
  Scene s;
  // Deep enough that copying the value recursively overflowed the stack.
  const size_t depth = 200000;
  std::string conf = s.net().conf().dump();
  conf.pop_back();
  conf += ",\"dns\":{\"search\":" + std::string(depth, '[') + std::string(depth, ']') + "}}";
  Attachment a = s.container().attachment();
  a.netns = s.gone();
  for (const char* verb : {"ADD", "DEL", "CHECK", "STATUS", "GC"}) {
    SCOPED_TRACE(verb);
    expect_cni_error(cni_exec({std::string("CNI_COMMAND=") + verb, "CNI_CONTAINERID=" + a.id,
                               "CNI_IFNAME=eth0", "CNI_NETNS=" + a.netns},
                              conf),
                     6, "nests deeper than");
  }
  // VERSION answers whatever the config: with the newest version here.
  CniReply v = cni_exec({"CNI_COMMAND=VERSION"}, conf);
  ASSERT_EQ(v.code, 0) << v.out << v.err;
  EXPECT_EQ(v.result()["cniVersion"], "1.1.0");
  s.expect_nothing_left();
}

// The case generator: valid shapes from the other tests, then mutations.
class Gen {
 public:
  Gen(uint32_t seed, const Scene& s) : rng_(seed), s_(s) {}

  Case next() {
    Case k;
    set(k, "CNI_COMMAND", command());
    set(k, "CNI_CONTAINERID", chance(85) ? container_id() : garbage(container_id()));
    set(k, "CNI_IFNAME", chance(85) ? pick({"eth0", "net1"}) : garbage("eth0"));
    set(k, "CNI_NETNS", netns());
    if (chance(50)) set(k, "CNI_ARGS", args());
    set(k, "CNI_PATH", chance(90) ? "/opt/cni/bin:/usr/lib/cni" : garbage("/opt/cni/bin"));
    k.env.erase(std::remove_if(k.env.begin(), k.env.end(),
                               [](const auto& kv) { return kv.second == kUnset; }),
                k.env.end());
    k.input = config();
    return k;
  }

 private:
  static constexpr const char* kUnset = "\x01unset";

  size_t below(size_t n) { return rng_() % n; }
  bool chance(unsigned percent) { return below(100) < percent; }
  std::string pick(std::initializer_list<const char*> v) { return *(v.begin() + below(v.size())); }
  void set(Case& k, const char* key, const std::string& v) { k.env.emplace_back(key, v); }

  std::string command() {
    if (chance(85))
      return pick({"ADD", "ADD", "ADD", "DEL", "DEL", "CHECK", "CHECK", "VERSION", "STATUS", "GC"});
    return garbage(pick({"ADD", "DEL", "add", "VERSION"}));
  }

  std::string netns() {
    size_t r = below(100);
    if (r < 3) return s_.container().path();
    if (r < 65) return s_.gone();
    if (r < 80)
      return pick({"/proc/999999999/ns/net", "relative/netns", "", kUnset, "/run/netns/", "/",
                   "/dev/null"});
    if (r < 85) return s_.plain_file();
    return garbage(s_.gone());
  }

  std::string args() {
    std::string a = pick({"IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=web",
                          "K8S_POD_NAME=web", "FOO=bar", "IgnoreUnknown=1;FOO=bar", "garbage",
                          "IgnoreUnknown=maybe", ";;;", "=x", "K8S_POD_NAME=a=b=c"});
    return chance(70) ? a : garbage(a);
  }

  // Invalid UTF-8 of each kind, control characters, nothing, a lot.
  std::string garbage(std::string s) {
    switch (below(8)) {
      case 0: return "";
      case 1: return kUnset;
      case 2: return s + std::string(below(60000) + 1, 'a' + below(26));
      case 3: return s.substr(0, below(s.size() + 1));
      default: return mutate(std::move(s));
    }
  }

  std::string mutate(std::string s) {
    static const char* odd[] = {"\xff", "\xc3", "\xc3\x28", "\xed\xa0\x80", "\xc0\xaf",
                                "\xf8\x88\x80\x80\x80", "\xf4\x90\x80\x80", "\n", "\r\n", "\x01",
                                "\x7f", "\\", "\"", "\xe2\x82\xac"};
    size_t n = below(3) + 1;
    for (size_t i = 0; i < n; ++i) {
      size_t at = below(s.size() + 1);
      if (chance(50) && at < s.size())
        s[at] = static_cast<char>(rng_() & 0xff);
      else
        s.insert(at, odd[below(std::size(odd))]);
    }
    return s;
  }

  // A value of a type the key does not take, or too big, or deep.
  json odd_value() {
    switch (below(12)) {
      case 0: return 5;
      case 1: return -1;
      case 2: return 1e308;
      case 3: return true;
      case 4: return nullptr;
      case 5: return json::array();
      case 6: return json::object();
      case 7: return "";
      case 8: return std::string(below(100000) + 1, 'x');
      case 9: return json::parse(R"([1, "a", {"b": [null]}])");
      case 10: return json::parse(R"({"portMappings": [{"hostPort": "80"}, 7, []]})");
      default: return "@deep@";
    }
  }

  std::string config() {
    json c = s_.net().conf();
    switch (below(8)) {
      case 0: c["subnet"] = "10.240.0.0/24"; break;
      case 1: c["dns"] = {{"nameservers", {"10.240.0.53"}}, {"search", {"svc.test"}}}; break;
      case 2:
        c["runtimeConfig"]["portMappings"] = json::parse(
            pick({R"([{"hostPort": 8080, "containerPort": 80, "protocol": "tcp"}])",
                  R"([{"hostPort": 8080, "containerPort": 80, "protocol": "sctp"}])",
                  R"([{"hostPort": 8080, "containerPort": 80, "protocol": 6}])",
                  R"([{"hostPort": 70000, "containerPort": 80}])",
                  R"([{"hostPort": 8080, "containerPort": 80, "hostIP": 1}])", "[5]", "[]"}));
        break;
      case 3:
        c["prevResult"] = {{"cniVersion", "1.0.0"},
                           {"interfaces", {{{"name", "eth0"}}}},
                           {"ips", {{{"address", "10.240.0.2/32"}, {"interface", 0}}}}};
        break;
      case 4: c["cni.dev/valid-attachments"] = {{{"containerID", "x"}, {"ifname", "eth0"}}}; break;
      case 5: c["cniVersion"] = pick({"0.4.0", "1.1.0", "0.3.1", "2.0.0"}); break;
      default: break;
    }
    static const char* keys[] = {"cniVersion", "name",    "node",          "subnet",
                                 "logLevel",   "dns",     "prevResult",    "runtimeConfig",
                                 "stateDir",   "logFile", "type",          "cni.dev/valid-attachments"};
    if (chance(30)) c[keys[below(std::size(keys))]] = odd_value();
    if (chance(10)) c.erase(keys[below(std::size(keys))]);
    std::string text = c.dump();
    auto deep = text.find("\"@deep@\"");
    if (deep != std::string::npos) {
      static const size_t depths[] = {65, 1000, 200000};
      size_t depth = depths[below(std::size(depths))];
      text.replace(deep, 8, std::string(depth, '[') + std::string(depth, ']'));
    }
    if (chance(35)) text = garbage(std::move(text));
    return text;
  }

  std::mt19937 rng_;
  const Scene& s_;
};

size_t env_or(const char* key, size_t dflt) {
  const char* v = std::getenv(key);
  return v ? std::strtoul(v, nullptr, 0) : dflt;
}

// EBPFNET_CNI_FUZZ_SEED and EBPFNET_CNI_FUZZ_CASES run it longer, or anew.
TEST(CniFuzz, RandomInputsAreAnsweredInTheSpec) {
  EBPFNET_REQUIRE_ROOT();
  Scene s;
  const auto seed = static_cast<uint32_t>(env_or("EBPFNET_CNI_FUZZ_SEED", 0xeb9f));
  const size_t n = env_or("EBPFNET_CNI_FUZZ_CASES", 3000);
  Gen gen(seed, s);
  std::vector<Case> cases(n);
  std::vector<CniReply> replies(n);
  // Cases without the container can change nothing on the node (no ADD
  // can succeed), so they run in parallel and still give the same replies
  // every run; the container's cases then run in order.
  std::vector<size_t> shared, with_container;
  for (size_t i = 0; i < n; ++i) {
    cases[i] = gen.next();
    s.make_safe(cases[i]);
    std::string* ns = cases[i].var("CNI_NETNS");
    (ns && *ns == s.container().path() ? with_container : shared).push_back(i);
  }
  auto t0 = std::chrono::steady_clock::now();
  std::atomic<size_t> next{0};
  std::vector<std::thread> workers;
  for (unsigned w = 0; w < std::max(2u, std::thread::hardware_concurrency()); ++w)
    workers.emplace_back([&] {
      for (size_t j = next++; j < shared.size(); j = next++)
        replies[shared[j]] = Scene::exec(cases[shared[j]]);
    });
  for (auto& w : workers) w.join();
  for (size_t i : with_container) {
    replies[i] = Scene::exec(cases[i]);
    if (replies[i].code == 0 && cases[i].command() == "ADD") s.undo_add(cases[i]);
  }
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();

  std::map<std::string, size_t> outcomes;
  size_t failures = 0;
  for (size_t i = 0; i < n; ++i) {
    const CniReply& r = replies[i];
    ++outcomes[outcome(cases[i], r)];
    std::string problem = judge(cases[i], r);
    if (!problem.empty() && ++failures <= 20)
      ADD_FAILURE() << "case " << i << ": " << problem << "\nstdout: " << escaped(r.out)
                    << "\nstderr: " << escaped(r.err) << "\n" << describe(cases[i]);
  }
  std::string summary;
  for (const auto& [what, count] : outcomes) summary += ", " + what + ": " + std::to_string(count);
  std::printf("ebpfnet-cni fuzz: %zu cases (%zu with the container), seed %u, %.1f s%s\n", n,
              with_container.size(), seed, secs, summary.c_str());
  EXPECT_EQ(failures, 0u);
  s.expect_nothing_left();
}

}  // namespace
}  // namespace ebpfnet
