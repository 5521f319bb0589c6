// gpu.hpp: is a CUDA device usable here, and what is it. Both functions are safe on a machine
// without a GPU or without a driver: they never throw and never abort.
#pragma once
#include <string>
#include <vector>

namespace convncf {

// True when the CUDA runtime sees at least one device. Otherwise false, and *reason (if given)
// says why in one line, e.g. "no CUDA device: cudaGetDeviceCount returned 'CUDA driver version is
// insufficient for CUDA runtime version' (cudaErrorInsufficientDriver)".
bool cuda_device_available(std::string* reason);

// What the runtime says about the machine, for `convncf info` (text and JSON).
struct GpuDevice {
  int index = 0;
  std::string name;          // empty when its properties could not be read (error says why)
  int cc_major = 0, cc_minor = 0, sms = 0;
  double memory_gib = 0;
  int l2_mib = 0, sm_clock_mhz = 0, memory_clock_mhz = 0;
  std::string error;
};
struct CudaInfo {
  std::string driver = "none", runtime = "none", cudnn = "none";  // versions, or why not
  std::string nccl = "none";  // "2.28.9 (/path/libnccl.so.2)", or why not (nccl.hpp: several ranks on GPUs)
  bool usable = false;
  std::string reason;        // why not usable
  std::vector<GpuDevice> devices;
};
CudaInfo cuda_info();

// Several lines: per device its name, compute capability, SMs, memory and clocks; the driver and
// runtime versions; the cuDNN version (from libcudnn if the loader finds it). Without a device it
// still reports the versions it can and says why there is no device.
std::string cuda_device_summary();

// A rank's GPU (several ranks, dist.hpp): device local_rank modulo the devices this process sees
// (one rank per GPU; with CUDA_VISIBLE_DEVICES or Slurm's --gpus-per-task each rank sees its own).
inline int rank_device(int local_rank, int devices) { return local_rank % devices; }
// rank_device made current for the rest of the process. Returns the device's index.
int use_rank_device(int local_rank);

}  // namespace convncf

namespace convncf {

// `convncf gpu-selftest`: runs each outer-product kernel variant on random inputs and compares
// every element with the CPU twin (bit-exact: one multiply), then trains one epoch of a small
// ConvNCF (recbole and paper settings) and of MF-BPR on the CUDA engine and the CPU engine and
// compares losses, parameters and optimizer state (engine_compare.hpp). Returns true when all
// agree; the report says what ran. Throws Error(kExitUnavailable) when no device is usable.
bool gpu_selftest(std::string* report);

}  // namespace convncf
