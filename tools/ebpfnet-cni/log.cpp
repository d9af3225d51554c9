// Logging: stdout belongs to the result, so everything goes to a file.
#include <spdlog/sinks/base_sink.h>
#include <spdlog/sinks/basic_file_sink.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include <mutex>

#include "cni.hpp"

namespace ebpfnet::cni {
namespace {

// Messages quote what the runtime passed (CNI_ARGS, CNI_NETNS, a config
// value). Invalid UTF-8 is replaced so the file stays text, and control
// characters so one message stays one line.
class CleanSink : public spdlog::sinks::base_sink<std::mutex> {
 public:
  explicit CleanSink(spdlog::sink_ptr inner) : inner_(std::move(inner)) {}

 protected:
  void sink_it_(const spdlog::details::log_msg& msg) override {
    std::string text = valid_utf8({msg.payload.data(), msg.payload.size()});
    for (char& c : text)
      if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) c = '?';
    spdlog::details::log_msg clean = msg;
    clean.payload = text;
    inner_->log(clean);
  }
  void flush_() override { inner_->flush(); }
  void set_pattern_(const std::string& pattern) override { inner_->set_pattern(pattern); }
  void set_formatter_(std::unique_ptr<spdlog::formatter> f) override {
    inner_->set_formatter(std::move(f));
  }

 private:
  spdlog::sink_ptr inner_;
};

}  // namespace

void start_log(const NetConf& conf) {
  spdlog::sink_ptr file;
  std::string failure;
  try {
    file = std::make_shared<spdlog::sinks::basic_file_sink_mt>(conf.log_file.string());
  } catch (const spdlog::spdlog_ex& e) {
    // A log that cannot be written must not fail the runtime's operation;
    // stderr is the runtime's to show.
    file = std::make_shared<spdlog::sinks::stderr_sink_mt>();
    failure = e.what();
  }
  auto logger =
      std::make_shared<spdlog::logger>("ebpfnet-cni", std::make_shared<CleanSink>(file));
  // The pid tells apart the lines of runtimes' parallel invocations.
  logger->set_pattern("%Y-%m-%dT%H:%M:%S.%e %P %l: %v");
  logger->set_level(spdlog::level::from_str(conf.log_level));
  // Every line is one append, so parallel invocations never interleave a line.
  logger->flush_on(spdlog::level::trace);
  spdlog::set_default_logger(logger);
  if (!failure.empty()) logger->warn("cannot log to {}: {}", conf.log_file.string(), failure);
}

}  // namespace ebpfnet::cni
