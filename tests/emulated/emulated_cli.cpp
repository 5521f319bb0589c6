// emulated_cli.cpp: what the emulated command (convncf_emulated, CMakeLists.txt) lacks of the real
// one: the self-test compares real kernels with their twins, and here the kernels are the twins.
#include <string>

#include "convncf/errors.hpp"
#include "convncf/gpu.hpp"

namespace convncf {

bool gpu_selftest(std::string*) {
  throw Error(kExitUnavailable,
              "gpu-selftest needs a GPU: on the emulated device the kernels are their CPU twins");
}

}  // namespace convncf
