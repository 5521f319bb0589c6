// gpu.hpp: is a CUDA device usable here, and what is it. Both functions are safe on a machine
// without a GPU or without a driver: they never throw and never abort.
#pragma once
#include <string>

namespace convncf {

// True when the CUDA runtime sees at least one device. Otherwise false, and *reason (if given)
// says why in one line, e.g. "no CUDA device: cudaGetDeviceCount returned 'CUDA driver version is
// insufficient for CUDA runtime version' (cudaErrorInsufficientDriver)".
bool cuda_device_available(std::string* reason);

// Several lines: per device its name, compute capability, SMs, memory and clocks; the driver and
// runtime versions; the cuDNN version (from libcudnn if the loader finds it). Without a device it
// still reports the versions it can and says why there is no device.
std::string cuda_device_summary();

}  // namespace convncf

namespace convncf {

// `convncf gpu-selftest`: runs each outer-product kernel variant on random inputs and compares
// every element with the CPU twin (bit-exact: one multiply), then trains one epoch of a small
// ConvNCF (recbole and paper settings) and of MF-BPR on the CUDA engine and the CPU engine and
// compares losses, parameters and optimizer state (engine_compare.hpp). Returns true when all
// agree; the report says what ran. Throws Error(kExitUnavailable) when no device is usable.
bool gpu_selftest(std::string* report);

}  // namespace convncf
