// main.cpp: the convncf command. Subcommands: train. Every failure prints one line
// "convncf: error: ..." and exits with a documented code (README.md, errors.hpp).
#include <cstdio>
#include <exception>
#include <iostream>
#include <string>
#include <vector>

#include "convncf/config.hpp"
#include "convncf/errors.hpp"
#include "convncf/gpu.hpp"
#include "convncf/train.hpp"

using namespace convncf;

namespace {

const char* kUsage =
    "usage: convncf train [--config=FILE.yaml]... [--KEY=VALUE ...] [--quiet]\n"
    "       convncf train --help     list every key with its defaults\n"
    "       convncf gpu-selftest     run the CUDA kernels against their CPU twins (needs a GPU)\n"
    "       convncf --version\n"
    "\n"
    "Trains ConvNCF (outer-product neural collaborative filtering), MF-BPR or popularity on the\n"
    "built-in synthetic data (default) or a RecBole .inter file (--dataset=PATH), evaluates it\n"
    "with leave-one-out and sampled negatives, and writes a run folder (--out, default\n"
    "runs/<model>-<time>) with config.yaml, metrics.jsonl and model.bin.\n"
    "\n"
    "exit codes: 0 ok, 64 usage, 65 bad data, 66 missing input, 69 no usable GPU for device: cuda,\n"
    "            70 internal error or non-finite training, 74 I/O error\n";

void print_train_help() {
  std::cout << "usage: convncf train [--config=FILE.yaml]... [--KEY=VALUE ...] [--quiet]\n\n"
               "Keys (RecBole's names where RecBole has one). Lists as in YAML: --cnn_kernels=[4,4,2,2].\n"
               "Preset defaults are shown as recbole | paper.\n\n";
  for (const KeyDoc& k : config_keys()) {
    std::string defaults = k.default_recbole;
    if (k.default_paper != k.default_recbole) defaults += " | " + k.default_paper;
    std::printf("  %-28s %s\n  %-28s default: %s\n", k.name.c_str(), k.meaning.c_str(), "",
                defaults.c_str());
  }
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  try {
    if (args.empty()) {
      std::cerr << kUsage;
      return kExitUsage;
    }
    const std::string cmd = args[0];
    if (cmd == "--help" || cmd == "-h" || cmd == "help") {
      std::cout << kUsage;
      return kExitOk;
    }
    if (cmd == "--version") {
      std::cout << "convncf 0.1.0\n";
      return kExitOk;
    }
    if (cmd == "gpu-selftest") {
      std::string report;
      const bool ok = gpu_selftest(&report);
      std::cout << cuda_device_summary() << "\n" << report << (ok ? "all kernels match\n" : "MISMATCH\n");
      return ok ? kExitOk : kExitSoftware;
    }
    if (cmd != "train")
      throw_usage("unknown subcommand '" + cmd + "'; expected 'train' or 'gpu-selftest' (see convncf --help)");
    std::vector<std::string> rest(args.begin() + 1, args.end());
    for (const std::string& a : rest)
      if (a == "--help" || a == "-h") {
        print_train_help();
        return kExitOk;
      }
    const Config cfg = Config::from_args(rest);
    run_train(cfg, std::cout);
    return kExitOk;
  } catch (const Error& e) {
    std::cerr << "convncf: error: " << e.what() << "\n";
    return e.code();
  } catch (const std::bad_alloc&) {
    std::cerr << "convncf: error: out of memory\n";
    return kExitSoftware;
  } catch (const std::exception& e) {
    std::cerr << "convncf: internal error: " << e.what() << "\n";
    return kExitSoftware;
  }
}
