// errors.hpp: the project's exceptions and documented exit codes.
// Library code throws convncf::Error with an exit code; main() catches, prints one line, exits.
#pragma once
#include <stdexcept>
#include <string>

namespace convncf {

// Exit codes (sysexits.h values), documented in README.md.
enum ExitCode : int {
  kExitOk = 0,
  kExitUsage = 64,        // bad flag, bad key, impossible model shape
  kExitData = 65,         // malformed input data, bad model/checkpoint file
  kExitNoInput = 66,      // a named input file or folder does not exist
  kExitUnavailable = 69,  // device: cuda but no usable GPU
  kExitSoftware = 70,     // internal error, non-finite training state
  kExitIo = 74,           // cannot write output
  kExitBusy = 75,         // the run folder is in use: another process holds its lock (EX_TEMPFAIL)
};

class Error : public std::runtime_error {
 public:
  Error(int code, const std::string& what) : std::runtime_error(what), m_code(code) {}
  int code() const { return m_code; }

 private:
  int m_code;
};

[[noreturn]] inline void throw_usage(const std::string& m) { throw Error(kExitUsage, m); }
[[noreturn]] inline void throw_data(const std::string& m) { throw Error(kExitData, m); }
[[noreturn]] inline void throw_no_input(const std::string& m) { throw Error(kExitNoInput, m); }
[[noreturn]] inline void throw_io(const std::string& m) { throw Error(kExitIo, m); }
[[noreturn]] inline void throw_internal(const std::string& m) { throw Error(kExitSoftware, m); }

}  // namespace convncf
