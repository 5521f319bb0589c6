// main.cpp: the convncf command. Subcommands: train, eval, recommend, export, info, gpu-selftest. Every failure prints one line
// "convncf: error: ..." and exits with a documented code (README.md, errors.hpp).
#include <algorithm>
#include <cstdio>
#include <exception>
#include <iostream>
#include <string>
#include <vector>

#include "convncf/commands.hpp"
#include "convncf/common.hpp"
#include "convncf/version.hpp"
#include "convncf/config.hpp"
#include "convncf/dist.hpp"
#include "convncf/errors.hpp"
#include "convncf/gpu.hpp"
#include "convncf/train.hpp"
#include "convncf/util.hpp"

using namespace convncf;

namespace {

const char* kUsage =
    "usage: convncf train [--config=FILE.yaml]... [--KEY=VALUE ...] [--quiet] [--verbose]\n"
    "       convncf train --resume=RUN_DIR [--epochs=N] [--threads=T] [--device=D] [--engine=E] [--precision=P] [--quiet]\n"
    "       convncf eval RUN_DIR [--KEY=VALUE ...]\n"
    "       convncf recommend RUN_DIR --users=ID[,ID...] [--topk=K] [--format=table|jsonl] [--exclude=train|all|none]\n"
    "       convncf export RUN_DIR --out=FOLDER\n"
    "       convncf info [--format=text|json]\n"
    "       convncf gpu-selftest\n"
    "       convncf --version | SUBCOMMAND --help\n"
    "\n"
    "Trains ConvNCF (outer-product neural collaborative filtering), MF-BPR or popularity on the\n"
    "built-in synthetic data (default) or your data (--dataset=PATH: RecBole atomic files, the\n"
    "NCF/ConvNCF .rating/.negative trio, NGCF train.txt/test.txt, MovieLens files, CSV/TSV),\n"
    "splits and evaluates it as RecBole or the paper does, and writes a run folder (--out, default\n"
    "runs/<model>-<time>): config.yaml, split.tsv, metrics.jsonl, model.bin, checkpoint.bin\n"
    "(pretrain.bin for after_pretrain without pre_model_path), and run.lock, held while a run,\n"
    "resume or export uses the folder.\n"
    "\n"
    "exit codes: 0 ok, 64 usage, 65 bad data or model/checkpoint file, 66 missing input,\n"
    "            69 no usable GPU for device: cuda, 70 internal error, non-finite training or out of\n"
    "            memory, 74 I/O error, 75 run folder in use by another process\n";

const char* kEvalHelp =
    "usage: convncf eval RUN_DIR [--KEY=VALUE ...]\n\n"
    "Evaluates RUN_DIR/model.bin on the run's data and split (its config.yaml), or on what the keys\n"
    "say instead: --dataset=OTHER, --eval_args.mode=full|uniN|popN|file, --topk=[5,10,20], ... Every\n"
    "user and item of that data must be known to the model. Prints the metrics, then one JSON line.\n"
    "Scores on the GPU when the run's device (or --device=auto|cpu|cuda) picks it.\n";
const char* kRecommendHelp =
    "usage: convncf recommend RUN_DIR --users=ID[,ID...] [--topk=K] [--format=table|jsonl]\n"
    "                         [--exclude=train|all|none] [--threads=T] [--device=auto|cpu|cuda]\n\n"
    "The top K items (default 10) for each user, in the data's own ids, best first. --exclude says\n"
    "which of the user's items are left out: train (default, as RecBole's full ranking), all, none.\n"
    "table: user<TAB>rank<TAB>item<TAB>score lines under a header; jsonl: one object per user.\n";
const char* kExportHelp =
    "usage: convncf export RUN_DIR --out=FOLDER\n\n"
    "Writes user_embeddings.npy, item_embeddings.npy (float32), network.npy, user_ids.npy and\n"
    "item_ids.npy (unicode) and index.json into FOLDER; refuses to overwrite any of them. In NumPy:\n"
    "  import numpy as np; P = np.load('FOLDER/user_embeddings.npy'); ids = np.load('FOLDER/user_ids.npy')\n";
const char* kInfoHelp =
    "usage: convncf info [--format=text|json]\n\nPrints the GPU, driver, CUDA and cuDNN versions, the NCCL library found (several\n"
    "ranks on GPUs), the CPU threads, the engine that device: auto picks, and under mpirun each rank's\n"
    "host, threads and GPU; --format=json prints one JSON object instead.\n";

void print_train_help() {
  std::cout << "usage: convncf train [--config=FILE.yaml]... [--KEY=VALUE ...] [--quiet] [--verbose]\n"
               "       convncf train --resume=RUN_DIR [--epochs=N] [--threads=T] [--device=D] [--engine=E]\n"
               "                     [--precision=P] [--quiet] [--verbose]\n\n"
               "--device=auto (default) trains on the GPU when one is usable, else on the CPU (it says which);\n"
               "--device=cuda requires a GPU (exit 69 without), --device=cpu never uses one.\n"
               "--engine=fused runs the CUDA tower in one kernel per pair; only it takes --precision=tf32|bf16\n"
               "(exit 64 otherwise). The CPU engine computes in FP32 and ignores both.\n"
               "Config files merge in order, then --KEY=VALUE overrides (RecBole's order); RecBole's\n"
               "--config_files=\"a.yaml b.yaml\" names several at once, as run_recbole.py does. Keys have\n"
               "RecBole's names and meanings; RecBole keys that mean nothing here are named in one warning.\n"
               "Lists as in YAML: --cnn_kernels=[4,4,2,2]; maps as YAML flow maps or dotted keys:\n"
               "--eval_args=\"{split: {LS: valid_and_test}, order: TO, mode: uni999}\" or --eval_args.mode=full.\n"
               "--resume continues a run from its checkpoint.bin, up to --epochs in all (default: its own).\n"
               "Preset defaults are shown as recbole | paper.\n\n";
  for (const KeyDoc& k : config_keys()) {
    std::string defaults = k.default_recbole;
    if (k.default_paper != k.default_recbole) defaults += " | " + k.default_paper;
    std::printf("  %-28s %s\n  %-28s default: %s\n", k.name.c_str(), k.meaning.c_str(), "",
                defaults.c_str());
  }
}

// "convncf: error: " on one process; "convncf: error: rank R: " when several ranks run.
std::string error_prefix(const char* kind = "error") {
  const World& w = World::get();
  return std::string("convncf: ") + kind + ": " + (w.distributed() ? "rank " + std::to_string(w.rank()) + ": " : "");
}

int run_command(const std::vector<std::string>& args);

}  // namespace

// Under mpirun or srun with several ranks, World::init joins MPI's world first (dist.hpp); a rank
// that fails prints its error naming itself and ends the whole job (MPI_Abort with its exit code),
// so that no rank waits forever in a collective for it.
int main(int argc, char** argv) {
  try {
    World::init(&argc, &argv);
  } catch (const Error& e) {
    std::cerr << error_prefix() << e.what() << "\n";
    return e.code();
  }
  std::vector<std::string> args(argv + 1, argv + argc);
  const int code = run_command(args);
  const World& world = World::get();
  if (code != kExitOk && world.distributed()) {
    std::cerr << "convncf: rank " << world.rank() << " of " << world.size() << " failed (exit code " << code
              << "): ending every rank of the job\n";
    std::cerr.flush();
    world.abort(code);
  }
  World::finalize();
  return code;
}

namespace {

int run_command(const std::vector<std::string>& args) {
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
      std::cout << "convncf " << kVersionString << "\n";
      return kExitOk;
    }
    if (cmd == "gpu-selftest") {
      std::string report;
      const bool ok = gpu_selftest(&report);
      std::cout << cuda_device_summary() << "\n" << report << (ok ? "all kernels and the engine match the CPU\n" : "MISMATCH\n");
      return ok ? kExitOk : kExitSoftware;
    }
    std::vector<std::string> rest(args.begin() + 1, args.end());
    const bool help = std::any_of(rest.begin(), rest.end(), [](const std::string& a) { return a == "--help" || a == "-h"; });
    if (cmd == "info") {
      if (help) std::cout << kInfoHelp;
      else run_info(rest, std::cout);
      return kExitOk;
    }
    if (cmd == "eval" || cmd == "recommend" || cmd == "export") {
      if (World::get().distributed() && !help)
        throw_usage(cmd + " runs as one process; only train and info run on several ranks (launched as " +
                    std::to_string(World::get().size()) + " ranks)");
      if (help) {
        std::cout << (cmd == "eval" ? kEvalHelp : cmd == "recommend" ? kRecommendHelp : kExportHelp);
        return kExitOk;
      }
      if (rest.empty() || rest[0].compare(0, 2, "--") == 0)
        throw_usage(cmd + " needs a run folder first: convncf " + cmd + " RUN_DIR ... (see convncf " + cmd + " --help)");
      const std::string dir = rest[0];
      const std::vector<std::string> opts(rest.begin() + 1, rest.end());
      if (cmd == "eval") run_eval(dir, opts, std::cout);
      else if (cmd == "recommend") run_recommend(dir, opts, std::cout);
      else run_export(dir, opts, std::cout);
      return kExitOk;
    }
    if (cmd != "train")
      throw_usage("unknown subcommand '" + cmd + "'; expected train, eval, recommend, export, info or gpu-selftest (see convncf --help)");
    if (help) {
      print_train_help();
      return kExitOk;
    }
    std::string resume;
    std::vector<std::string> keys;
    for (const std::string& a : rest) {
      if (a.compare(0, 9, "--resume=") == 0) resume = a.substr(9);
      else keys.push_back(a);
    }
    if (std::find(rest.begin(), rest.end(), std::string("--resume=")) != rest.end() || (resume.empty() &&
        std::any_of(rest.begin(), rest.end(), [](const std::string& a) { return a.compare(0, 8, "--resume") == 0; })))
      throw_usage("--resume needs a run folder: --resume=RUN_DIR");
    if (!resume.empty()) {
      const Config cfg = resume_config(resume, keys);
      run_train(cfg, std::cout, resume);
      return kExitOk;
    }
    const Config cfg = Config::from_args(keys);
    run_train(cfg, std::cout);
    return kExitOk;
  } catch (const Error& e) {
    std::cerr << error_prefix() << e.what() << "\n";
    return e.code();
  } catch (const std::bad_alloc&) {  // the large allocations are sized in advance and named; this is another
    const int64_t avail = available_memory_bytes();
    std::cerr << error_prefix() << "out of memory (an allocation not sized in advance failed; "
              << (avail >= 0 ? bytes_text(double(avail)) + " is available" : std::string("the memory available is unknown"))
              << ")\n";
    return kExitSoftware;
  } catch (const std::exception& e) {
    std::cerr << error_prefix("internal error") << e.what() << "\n";
    return kExitSoftware;
  }
}

}  // namespace
