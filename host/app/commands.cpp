// commands.cpp: the subcommands that work on a finished or running run folder (eval, recommend,
// export), `info`, and the configuration of a resumed run (see commands.hpp).
#include "convncf/commands.hpp"

#include <omp.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <memory>
#include <sstream>

#include "convncf/dist.hpp"
#include "convncf/engine.hpp"
#include "convncf/errors.hpp"
#include "convncf/evaluate.hpp"
#include "convncf/gpu.hpp"
#include "convncf/model_io.hpp"
#include "convncf/options.hpp"
#include "convncf/rng.hpp"
#include "convncf/run_data.hpp"
#include "convncf/run_folder.hpp"
#include "convncf/util.hpp"
#include "convncf/version.hpp"
#include "json_util.hpp"
#include "npy.hpp"

namespace convncf {

namespace {

std::string fmt(const char* f, double v) {
  char b[64];
  std::snprintf(b, sizeof b, f, v);
  return b;
}

std::string run_config_path(const std::string& dir) {
  if (!is_dir(dir)) throw_no_input("run folder " + dir + " does not exist");
  const std::string p = dir + "/config.yaml";
  if (!path_exists(p)) throw_no_input(dir + " is not a run folder: it has no config.yaml");
  return p;
}

// --NAME=VALUE options of a subcommand (not configuration keys), removed from args.
std::string take_option(std::vector<std::string>& args, const std::string& name, const std::string& def) {
  std::string v = def;
  for (auto it = args.begin(); it != args.end();) {
    if (it->compare(0, name.size() + 3, "--" + name + "=") == 0) {
      v = it->substr(name.size() + 3);
      it = args.erase(it);
    } else {
      ++it;
    }
  }
  return v;
}

// The run's configuration; quiet only when asked for now, not because the run was quiet.
Config run_config(const std::string& dir, const std::vector<std::string>& overrides) {
  std::vector<std::string> a{"--config=" + run_config_path(dir), "--quiet=false"};
  a.insert(a.end(), overrides.begin(), overrides.end());
  return Config::from_args(a);
}

// A saved model on the data of `cfg`, and the engine that scores it: the one the configuration's
// device picks (as train does), with the model file's own tower.
struct ScoringSetup {
  RunData data;
  Params<float> params;
  std::unique_ptr<Engine> engine;
};

ScoringSetup scoring_setup(const std::string& dir, const Config& run_cfg) {
  Config cfg = run_cfg;  // the training negatives mean nothing to scoring (dynamic ones run on any device)
  cfg.neg_distribution = "uniform";
  cfg.neg_sample_num = 1;
  cfg.neg_dynamic = false;
  check_run_config(cfg, /*training=*/false);
  if (cfg.threads > 0) omp_set_num_threads(cfg.threads);
  const std::string model_path = dir + "/model.bin";
  const ModelFile m = load_model(model_path);
  ScoringSetup s;
  s.data = load_run_data(data_options(cfg));
  s.params = params_for_data(m, s.data.data.inter, model_path);
  EngineOptions opts = engine_options(cfg, /*training=*/false);
  opts.model = s.params.model;
  opts.E = s.params.E;
  if (s.params.model == ModelKind::ConvNCF) {
    opts.tower = TowerSpec::make(s.params.E, m.channels, m.kernels, m.kernels);
    if (int64_t(s.params.net.size()) != opts.tower.n_params)
      throw_data(model_path + ": network size does not match its tower");
  }
  EngineNotes notes;
  s.engine = make_engine(opts, s.data.split, &notes);
  if (!notes.fallback.empty()) std::cerr << notes.fallback << "\n";
  s.engine->set_params(s.params);
  return s;
}

}  // namespace

Config resume_config(const std::string& dir, const std::vector<std::string>& overrides) {
  for (const std::string& o : overrides) {
    const std::string key = o.substr(0, o.find('='));
    const std::vector<std::string>& ok = resumable_keys();
    if (key.compare(0, 2, "--") != 0 || std::find(ok.begin(), ok.end(), key.substr(2)) == ok.end())
      throw_usage("cannot change '" + key.substr(std::min<size_t>(2, key.size())) +
                  "' when resuming: only --epochs, --threads, --device, --engine, --precision, --quiet, --verbose "
                  "and --show_progress (start a new run for others)");
  }
  Config cfg = run_config(dir, overrides);
  cfg.out = dir;
  return cfg;
}

namespace {

// A run still going on in `dir`: its model.bin is the best so far (replaced whole, never torn).
void note_live_run(const std::string& dir) {
  long pid = 0;
  if (folder_in_use(dir, &pid))
    std::cerr << "note: the run in " << dir << " is still going on"
              << (pid > 0 ? " (pid " + std::to_string(pid) + ")" : std::string()) << ": using its best model so far\n";
}

}  // namespace

void run_eval(const std::string& dir, const std::vector<std::string>& overrides, std::ostream& out) {
  const Config cfg = run_config(dir, overrides);
  note_live_run(dir);
  ScoringSetup s = scoring_setup(dir, cfg);
  if (!cfg.quiet) out << s.data.summary << "\n";
  if (!cfg.quiet) out << "scoring on the " << s.engine->name() << " engine\n";
  const FileNegatives* file_neg = s.data.data.negatives.empty() ? nullptr : &s.data.data.negatives;
  Json line = Json::object();
  line["event"] = "eval";
  line["model"] = model_name(s.params.model);
  EvalSet sets[2];
  for (bool is_test : {false, true})
    sets[is_test] = make_eval_set(s.data.split, is_test, is_test ? cfg.eval_mode_test : cfg.eval_mode_valid, cfg.seed,
                                  is_test ? kStreamEvalTest : kStreamEvalValid, file_neg);
  if (sets[1].size() == 0)
    throw_data("no test queries, so there is nothing to evaluate: " + why_no_held_out(s.data, data_options(cfg).split, true));
  for (bool is_test : {false, true}) {
    const std::string& mode = is_test ? cfg.eval_mode_test : cfg.eval_mode_valid;
    const EvalSet& set = sets[is_test];
    if (set.size() == 0) continue;
    const auto t0 = std::chrono::steady_clock::now();
    const Metrics mt = s.engine->evaluate(set, cfg.topk);
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    const char* name = is_test ? "test" : "valid";
    if (!cfg.quiet)
      out << name << " (" << mode << ", " << set.size() << " queries, " << fmt("%.1f", secs)
          << " s): " << metrics_brief(mt, shown_metrics(cfg)) << "\n";
    line[name] = metrics_object(mt);
    line[std::string(name) + "_mode"] = mode;
  }
  out << line.dump() << "\n";
}

void run_recommend(const std::string& dir, const std::vector<std::string>& args_in, std::ostream& out) {
  std::vector<std::string> args = args_in;
  const std::string users_arg = take_option(args, "users", "");
  const std::string topk_arg = take_option(args, "topk", "10");
  const std::string format = take_option(args, "format", "table");
  const std::string exclude = take_option(args, "exclude", "train");
  if (users_arg.empty()) throw_usage("recommend needs --users=ID[,ID...] (raw user ids)");
  if (format != "table" && format != "jsonl") throw_usage("--format must be table or jsonl, not '" + format + "'");
  if (exclude != "train" && exclude != "all" && exclude != "none")
    throw_usage("--exclude must be train (the user's training items), all (every item of the user) or none");
  char* end = nullptr;
  const long k = std::strtol(topk_arg.c_str(), &end, 10);
  if (topk_arg.empty() || *end != '\0' || k < 1 || k > 1000000)
    throw_usage("--topk must be an integer >= 1, not '" + topk_arg + "'");
  for (const std::string& a : args)
    if (a.compare(0, 10, "--threads=") != 0 && a.compare(0, 9, "--device=") != 0 && a != "--quiet")
      throw_usage("recommend takes --users, --topk, --format, --exclude, --threads and --device, not '" + a + "'");
  const Config cfg = run_config(dir, args);
  note_live_run(dir);
  ScoringSetup s = scoring_setup(dir, cfg);
  const Interactions& inter = s.data.data.inter;
  std::vector<int32_t> users;
  std::stringstream ss(users_arg);
  std::string id;
  while (std::getline(ss, id, ',')) {
    const int32_t u = inter.users.find(id);
    if (u < 0) throw_data("user '" + id + "' is not in the run's data");
    users.push_back(u);
  }
  std::vector<const Csr*> ex;
  if (exclude == "train") ex.push_back(&s.data.split.train);
  if (exclude == "all") ex.push_back(&s.data.split.all);
  const TopKLists top = s.engine->top_k(users, ex, int32_t(k));
  if (format == "table") out << "user\trank\titem\tscore\n";
  for (size_t j = 0; j < users.size(); ++j) {
    const std::string& u = inter.users.raw(users[j]);
    if (format == "table") {
      for (size_t r = 0; r < top[j].size(); ++r)
        out << u << "\t" << r + 1 << "\t" << inter.items.raw(top[j][r].first) << "\t" << fmt("%.6g", top[j][r].second)
            << "\n";
    } else {
      Json line = Json::object();
      line["user"] = u;
      line["items"] = Json::array();
      line["scores"] = Json::array();
      for (const auto& [item, score] : top[j]) {
        line["items"].push_back(inter.items.raw(item));
        line["scores"].push_back(json_number(score, 9));
      }
      out << line.dump() << "\n";
    }
  }
}

void run_export(const std::string& dir, const std::vector<std::string>& args_in, std::ostream& out) {
  std::vector<std::string> args = args_in;
  const std::string to = take_option(args, "out", "");
  if (to.empty()) throw_usage("export needs --out=FOLDER");
  if (!args.empty()) throw_usage("export takes only --out=FOLDER, not '" + args[0] + "'");
  run_config_path(dir);
  // Into a run's folder only while no run holds it, and holding it meanwhile (run_folder.hpp).
  struct Held {
    int fd;
    ~Held() {
      if (fd >= 0) close(fd);
    }
  } held{path_exists(to) ? hold_run_lock(to) : -1};
  const ModelFile m = load_model(dir + "/model.bin");
  const Params<float>& p = m.params;
  std::vector<std::pair<std::string, std::string>> files;
  if (p.model != ModelKind::Pop) {
    files.emplace_back("user_embeddings.npy", npy_floats(p.P, {p.n_users, p.E}));
    files.emplace_back("item_embeddings.npy", npy_floats(p.Q, {p.n_items, p.E}));
  }
  if (!p.net.empty())
    files.emplace_back(p.model == ModelKind::Pop ? "item_popularity.npy" : "network.npy",
                       npy_floats(p.net, {int64_t(p.net.size())}));
  files.emplace_back("user_ids.npy", npy_strings(m.user_ids));
  files.emplace_back("item_ids.npy", npy_strings(m.item_ids));
  Json index = Json::object();
  index["model"] = model_name(p.model);
  index["embedding_size"] = p.E;
  index["n_users"] = p.n_users;
  index["n_items"] = p.n_items;
  if (p.model == ModelKind::ConvNCF) {  // network.npy's layout: model.hpp, as tools/convncf_numpy.py reads it
    index["cnn_channels"] = m.channels;
    index["cnn_kernels"] = m.kernels;
    index["cnn_strides"] = m.kernels;  // stride = kernel
  }
  index["source"] = dir + "/model.bin";
  index["files"] = Json::object();
  for (const auto& f : files) index["files"][f.first.substr(0, f.first.size() - 4)] = f.first;
  index["note"] = "row i of user_embeddings is user_ids[i]; row j of item_embeddings is item_ids[j]";
  files.emplace_back("index.json", index.dump() + "\n");
  for (const auto& f : files)  // nothing already there is overwritten
    if (path_exists(to + "/" + f.first)) throw_usage("export: " + to + "/" + f.first + " already exists; choose another --out");
  make_dirs(to);
  for (const auto& f : files) write_file_new(to + "/" + f.first, f.second);
  out << "exported " << files.size() << " files to " << to << ": ";
  for (size_t i = 0; i < files.size(); ++i) out << (i ? ", " : "") << files[i].first;
  out << "\n";
}

void run_info(const std::vector<std::string>& args, std::ostream& out) {
  std::vector<std::string> rest = args;
  const std::string format = take_option(rest, "format", "text");
  if (!rest.empty()) throw_usage("info takes only --format=text|json, not '" + rest[0] + "'");
  if (format != "text" && format != "json") throw_usage("--format must be text or json, not '" + format + "'");
  const CudaInfo info = cuda_info();
  const std::string engine = info.usable ? std::string("cuda") : std::string("cpu");
  // The ranks (dist.hpp): each one's host, local rank, threads and the GPU its local rank would
  // take (local rank modulo the devices it sees); gathered in rank order, printed by rank 0 alone.
  const World& world = World::get();
  std::string mine;
  {
    char host[256] = {0};
    gethostname(host, sizeof host - 1);
    Json r = Json::object();
    r["rank"] = world.rank();
    r["host"] = host;
    r["local_rank"] = world.local_rank();
    r["cpu_threads"] = omp_get_max_threads();
    if (info.usable && !info.devices.empty()) r["gpu"] = rank_device(world.local_rank(), int(info.devices.size()));
    mine = r.dump();
  }
  std::vector<Json> ranks;
  for (const std::vector<char>& part : world.allgather(std::vector<char>(mine.begin(), mine.end())))
    ranks.push_back(Json::parse(std::string(part.begin(), part.end())));
  if (world.rank() != 0) return;
  if (format == "json") {
    Json j = Json::object();
    j["version"] = kVersionString;
    j["cuda_built"] = bool(CONVNCF_HAVE_CUDA);
    j["cpu_threads"] = omp_get_max_threads();
    j["cuda_driver"] = info.driver;
    j["cuda_runtime"] = info.runtime;
    j["cudnn"] = info.cudnn;
    j["nccl"] = info.nccl;
    j["gpu_usable"] = info.usable;
    if (!info.usable) j["gpu_reason"] = info.reason;
    j["devices"] = Json::array();
    for (const GpuDevice& g : info.devices) {
      Json d = Json::object();
      d["index"] = g.index;
      if (!g.error.empty()) {
        d["error"] = g.error;
      } else {
        d["name"] = g.name;
        d["compute_capability"] = std::to_string(g.cc_major) + "." + std::to_string(g.cc_minor);
        d["sms"] = g.sms;
        d["memory_gib"] = json_fixed(g.memory_gib, 1);
        d["l2_mib"] = g.l2_mib;
        d["sm_clock_mhz"] = g.sm_clock_mhz;
        d["memory_clock_mhz"] = g.memory_clock_mhz;
      }
      j["devices"].push_back(d);
    }
    j["auto_engine"] = engine;
    j["world_size"] = world.size();
    j["ranks"] = ranks;
    out << j.dump() << "\n";
    return;
  }
  out << "convncf " << kVersionString << "\n";
  out << "CPU threads (OpenMP): " << omp_get_max_threads() << "\n";
  out << cuda_device_summary() << "\n";
  out << "device auto would use: "
      << (info.usable ? std::string("the CUDA engine (ConvNCF and MF-BPR; popularity needs no training)")
                      : "the CPU engine (" + info.reason + ")")
      << "\n";
  out << "ranks: " << world.describe() << "\n";
  if (world.distributed())
    for (const Json& r : ranks) {
      const int threads = r["cpu_threads"].get<int>();
      out << "  rank " << r["rank"].get<int>() << ": " << r["host"].get<std::string>() << ", local rank "
          << r["local_rank"].get<int>() << ", " << threads << (threads == 1 ? " CPU thread" : " CPU threads")
          << (r.contains("gpu") ? ", GPU " + std::to_string(r["gpu"].get<int>()) : std::string()) << "\n";
    }
}

}  // namespace convncf
