// Logging: stdout belongs to the result, so everything goes to a file.
#include <spdlog/sinks/basic_file_sink.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include "cni.hpp"

namespace ebpfnet::cni {

void start_log(const NetConf& conf) {
  std::shared_ptr<spdlog::logger> logger;
  try {
    logger = spdlog::basic_logger_mt("ebpfnet-cni", conf.log_file.string());
  } catch (const spdlog::spdlog_ex& e) {
    // A log that cannot be written must not fail the runtime's operation;
    // stderr is the runtime's to show.
    logger = spdlog::stderr_logger_mt("ebpfnet-cni");
    logger->warn("cannot log to {}: {}", conf.log_file.string(), e.what());
  }
  // The pid tells apart the lines of runtimes' parallel invocations.
  logger->set_pattern("%Y-%m-%dT%H:%M:%S.%e %P %l: %v");
  logger->set_level(spdlog::level::from_str(conf.log_level));
  // Every line is one append, so parallel invocations never interleave a line.
  logger->flush_on(spdlog::level::trace);
  spdlog::set_default_logger(logger);
}

}  // namespace ebpfnet::cni
