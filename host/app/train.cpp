// train.cpp: the `convncf train` job (see train.hpp). The loop: shuffle the training positives,
// draw one negative per positive, step the optimizers per batch, validate every eval_step
// epochs, stop early on valid_metric, test the best epoch, write the run folder.
#include "convncf/train.hpp"

#include <omp.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <fstream>
#include <iostream>
#include <memory>
#include <sstream>

#include "convncf/checkpoint.hpp"
#include "convncf/cpu_engine.hpp"
#include "convncf/eval_gpu.hpp"
#include "convncf/gpu_engine.hpp"
#include "convncf/early_stopping.hpp"
#include "convncf/dataset.hpp"
#include "convncf/errors.hpp"
#include "convncf/common.hpp"
#include "convncf/version.hpp"
#include "convncf/evaluate.hpp"
#include "convncf/gpu.hpp"
#include "convncf/model_io.hpp"
#include "convncf/optim.hpp"
#include "convncf/options.hpp"
#include "convncf/prepare.hpp"
#include "convncf/rng.hpp"

namespace convncf {

namespace {

using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

bool is_dir(const std::string& p) {
  struct stat st;
  return stat(p.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}
bool exists(const std::string& p) {
  struct stat st;
  return stat(p.c_str(), &st) == 0;
}

void make_dirs(const std::string& path) {
  std::string cur;
  std::stringstream ss(path);
  std::string part;
  if (!path.empty() && path[0] == '/') cur = "/";
  while (std::getline(ss, part, '/')) {
    if (part.empty()) continue;
    cur += part;
    if (mkdir(cur.c_str(), 0755) != 0 && errno != EEXIST)
      throw_io("cannot create folder " + cur + ": " + std::strerror(errno));
    if (!is_dir(cur)) throw_io("cannot create folder " + cur + ": a file of that name exists");
    cur += '/';
  }
}

// A fresh run folder: the one asked for (refused if it already holds a run, so nothing written is
// lost) or runs/<model>-<timestamp>[-n].
std::string prepare_run_dir(const Config& cfg) {
  std::string dir = cfg.out;
  if (dir.empty()) {
    char stamp[32];
    const std::time_t now = std::time(nullptr);
    std::strftime(stamp, sizeof stamp, "%Y%m%d-%H%M%S", std::localtime(&now));
    dir = std::string("runs/") + model_name(cfg.model) + "-" + stamp;
    for (int n = 2; exists(dir); ++n)
      dir = std::string("runs/") + model_name(cfg.model) + "-" + stamp + "-" + std::to_string(n);
  } else if (exists(dir + "/metrics.jsonl") || exists(dir + "/model.bin")) {
    throw_usage("run folder " + dir + " already holds a run; choose another --out");
  }
  make_dirs(dir);
  return dir;
}

void write_text_atomic(const std::string& path, const std::string& text) { write_file_atomic(path, text); }

// The three optimizers of one phase: embeddings P and Q, and the network.
struct Optimizers {
  Optimizer<float> P, Q, net;
  bool rows_ok = false;  // row-sparse updates equal dense ones (see Optimizer::step_rows)
  Optimizers(const Config& cfg, Learner learner, double emb_lr, double net_lr,
             const Params<float>& prm)
      : P(optimizer_spec(cfg, learner, emb_lr), int64_t(prm.P.size())),
        Q(optimizer_spec(cfg, learner, emb_lr), int64_t(prm.Q.size())),
        net(optimizer_spec(cfg, learner, net_lr), int64_t(prm.net.size())) {
    rows_ok = learner != Learner::Adam && cfg.weight_decay == 0;
  }
  void step(Params<float>& prm, const CpuEngine<float>& eng) {
    const Gradients<float>& g = eng.grads();
    if (rows_ok && !eng.all_rows()) {
      P.step_rows(prm.P.data(), g.P.data(), eng.touched_users(), prm.E);
      Q.step_rows(prm.Q.data(), g.Q.data(), eng.touched_items(), prm.E);
    } else {
      P.step(prm.P.data(), g.P.data(), int64_t(prm.P.size()));
      Q.step(prm.Q.data(), g.Q.data(), int64_t(prm.Q.size()));
    }
    if (!prm.net.empty()) net.step(prm.net.data(), g.net.data(), int64_t(prm.net.size()));
  }
  void save(std::vector<OptimizerState>& out) {
    for (Optimizer<float>* o : {&P, &Q, &net}) out.push_back({o->steps(), o->state0(), o->state1()});
  }
  void load(const std::vector<OptimizerState>& in, size_t at, const std::string& name) {
    for (Optimizer<float>* o : {&P, &Q, &net}) {
      const OptimizerState& s = in.at(at++);
      if (s.s0.size() != o->state0().size() || s.s1.size() != o->state1().size())
        throw_data(name + ": optimizer state of another shape: the checkpoint was made with another configuration");
      o->set_steps(s.steps);
      o->state0() = s.s0;
      o->state1() = s.s1;
    }
  }
};

// The first non-finite parameter after a step, named; empty when all are finite. Checks the
// network and the embedding rows the step touched (every row when it was dense).
std::string non_finite_tensor(const Params<float>& p, const CpuEngine<float>& eng, bool rows_only,
                              const Interactions& in) {
  for (size_t k = 0; k < p.net.size(); ++k)
    if (!std::isfinite(p.net[k])) return "network weights (element " + std::to_string(k) + ")";
  const size_t E = static_cast<size_t>(p.E);
  auto row_bad = [E](const std::vector<float>& t, int32_t r) {
    for (size_t j = 0; j < E; ++j)
      if (!std::isfinite(t[size_t(r) * E + j])) return true;
    return false;
  };
  auto check = [&](const std::vector<float>& t, const std::vector<int32_t>& touched, int32_t n, const IdMap& ids,
                   const char* what) -> std::string {
    if (rows_only) {
      for (int32_t r : touched)
        if (row_bad(t, r)) return std::string(what) + " embedding of '" + ids.raw(r) + "'";
    } else {
      for (int32_t r = 0; r < n; ++r)
        if (row_bad(t, r)) return std::string(what) + " embedding of '" + ids.raw(r) + "'";
    }
    return "";
  };
  if (p.P.empty()) return "";
  std::string bad = check(p.P, eng.touched_users(), p.n_users, in.users, "user");
  if (bad.empty()) bad = check(p.Q, eng.touched_items(), p.n_items, in.items, "item");
  return bad;
}

// Embeddings of an MF-BPR run, matched by raw id (RecBole's after_pretrain).
void load_pretrained(const Config& cfg, const PreparedData& prep, Params<float>& prm) {
  // (matched by raw id, so the pretraining may have used another split or format of the data)
  std::string path = cfg.pre_model_path;
  if (is_dir(path)) path += "/model.bin";
  const ModelFile m = load_model(path);
  if (m.params.model != ModelKind::BPR)
    throw_data(path + ": pre_model_path must hold an MF-BPR model (model: BPR), found " +
               model_name(m.params.model));
  if (m.params.E != prm.E)
    throw_data(path + ": pretrained embedding size " + std::to_string(m.params.E) +
               " differs from embedding_size " + std::to_string(prm.E));
  Params<float> mapped = params_for_data(m, prep, path);
  prm.P = std::move(mapped.P);
  prm.Q = std::move(mapped.Q);
}

// The CPU engine for a saved model (its tower comes from the model file).
std::unique_ptr<CpuEngine<float>> engine_for(const ModelFile& m, const Params<float>& prm, int threads,
                                             TowerSpec& tower, const std::string& name) {
  const bool conv = prm.model == ModelKind::ConvNCF;
  if (conv) {
    tower = TowerSpec::make(prm.E, m.channels, m.kernels, m.kernels);
    if (int64_t(prm.net.size()) != tower.n_params) throw_data(name + ": network size does not match its tower");
  }
  return std::make_unique<CpuEngine<float>>(prm.model, conv ? &tower : nullptr, prm.n_users, prm.n_items, prm.E, threads);
}

// engine and precision that contradict each other: a usage error on every device, checked before
// any GPU is looked for, so a machine without one gives the same answer as a machine with one.
void check_engine_keys(const Config& cfg) {
  if (cfg.engine != "fused" && cfg.precision != "fp32")
    throw_usage("precision: " + cfg.precision + " needs engine: fused; the cuDNN engine computes in FP32");
}

// The CUDA engine as the scorer of a saved model, when the configuration's device picks it (as
// train does: auto takes a usable GPU, cuda requires one); null for the CPU engine.
std::unique_ptr<GpuEngine> gpu_scorer_for(const Config& cfg, const Params<float>& prm, const TowerSpec& tower,
                                          const Split& split) {
  if (prm.model == ModelKind::Pop || cfg.device == Device::Cpu) return nullptr;
  std::string reason;
  if (!cuda_device_available(&reason)) {
    if (cfg.device == Device::Cuda) throw Error(kExitUnavailable, "device: cuda, but no usable GPU: " + reason);
    return nullptr;
  }
  GpuEngineOptions go = gpu_engine_options(cfg);
  go.batch_cap = 1;          // no training
  go.deterministic = true;   // scoring keeps deterministic cuDNN plans whatever sparse_grad says
  try {
    auto g = std::make_unique<GpuEngine>(prm.model, prm.model == ModelKind::ConvNCF ? &tower : nullptr, split, prm.E, go);
    g->upload_params(prm);
    return g;
  } catch (const Error& e) {
    if (cfg.device == Device::Cuda) throw;
    std::cerr << "device auto: the CUDA engine could not start (" << e.what() << "); scoring on the CPU engine\n";
    return nullptr;
  }
}

std::string json_string(const std::string& s) {
  std::string q = "\"";
  for (char c : s) {
    const auto u = static_cast<unsigned char>(c);
    if (c == '"' || c == '\\') q += std::string("\\") + c;
    else if (u < 0x20) {
      char b[8];
      std::snprintf(b, sizeof b, "\\u%04x", u);
      q += b;
    } else q += c;
  }
  return q + "\"";
}

std::string fmt(const char* f, double v) {
  char b[64];
  std::snprintf(b, sizeof b, f, v);
  return b;
}


int64_t peak_memory_bytes() {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return int64_t(ru.ru_maxrss) * 1024;  // Linux reports kilobytes
}

std::string hms(double s) {
  if (!(s >= 0) || s > 1e7) return "?";
  const int64_t t = int64_t(s + 0.5);
  char b[32];
  if (t >= 3600) std::snprintf(b, sizeof b, "%lld:%02lld:%02lld", (long long)(t / 3600), (long long)(t / 60 % 60), (long long)(t % 60));
  else std::snprintf(b, sizeof b, "%lld:%02lld", (long long)(t / 60), (long long)(t % 60));
  return b;
}

// The live progress line: on a terminal only, redrawn at most 4 times a second, erased before
// any other line is printed.
class Progress {
 public:
  Progress(bool on, std::ostream& os) : m_on(on), m_os(os) {}
  void update(int epoch, int epochs, int64_t batch, int64_t batches, double loss, double tps, double eta) {
    if (!m_on) return;
    const auto now = Clock::now();
    if (batch != batches && now - m_last < std::chrono::milliseconds(250)) return;
    m_last = now;
    char b[200];
    std::snprintf(b, sizeof b, "\r  epoch %d/%d  batch %lld/%lld  loss %.4f  %.0f triples/s  ETA %s\033[K", epoch, epochs,
                  (long long)batch, (long long)batches, loss, tps, hms(eta).c_str());
    m_os << b << std::flush;
    m_shown = true;
  }
  void clear() {
    if (m_shown) m_os << "\r\033[K" << std::flush;
    m_shown = false;
  }

 private:
  bool m_on;
  std::ostream& m_os;
  Clock::time_point m_last{};
  bool m_shown = false;
};

// metrics.jsonl cut back to the epochs a checkpoint holds (a kill may land after the line of
// an epoch whose checkpoint was not yet renamed into place, or in the middle of a line).
void trim_metrics(const std::string& path, int epochs_kept) {
  std::ifstream in(path);
  std::string line, kept;
  while (std::getline(in, line)) {
    if (in.eof()) break;  // no newline after it: a line cut short by a kill
    const size_t at = line.find("\"event\":\"epoch\",\"epoch\":");
    if (at == std::string::npos) continue;  // test lines are written again at the end
    const int e = std::atoi(line.c_str() + at + 24);
    if (e >= 1 && e <= epochs_kept) kept += line + "\n";
  }
  write_text_atomic(path, kept);
}

std::vector<std::string> shown_metrics(const Config& cfg) {
  std::vector<std::string> names;
  for (const std::string& m : cfg.metrics) {
    if (m == "auc") names.push_back("auc");
    else for (int k : cfg.topk) names.push_back(m + "@" + std::to_string(k));
  }
  if (std::find(names.begin(), names.end(), cfg.valid_metric) == names.end()) names.push_back(cfg.valid_metric);
  return names;
}

TowerSpec tower_of(const Config& cfg) {
  return TowerSpec::make(cfg.embedding_size, cfg.cnn_channels, cfg.cnn_kernels, cfg.cnn_strides);
}

}  // namespace

void run_train(const Config& cfg, std::ostream& log, const std::string& resume_dir) {
  const auto t_start = Clock::now();
  const bool resume = !resume_dir.empty();
  const bool live = !cfg.quiet && cfg.show_progress && isatty(STDOUT_FILENO) && &log == &std::cout;
  Progress progress(live, log);
  auto say = [&](const std::string& s) {
    if (cfg.quiet) return;
    progress.clear();
    log << s << std::endl;
  };
  // --- checks that need nothing written ---------------------------------------------------
  if (!cfg.ignored_warning().empty()) std::cerr << cfg.ignored_warning() << "\n";
  check_engine_keys(cfg);  // before the GPU probe: device cuda without a GPU would answer 69 first
  std::string gpu_reason;
  const bool gpu = cuda_device_available(&gpu_reason);
  if (cfg.device == Device::Cuda && !gpu) throw Error(kExitUnavailable, "device: cuda, but no usable GPU: " + gpu_reason);
  // The popularity model does not train: it never needs the GPU.
  const bool use_gpu = cfg.model != ModelKind::Pop && cfg.device != Device::Cpu && gpu;
  if (cfg.device == Device::Auto)
    say(use_gpu ? std::string("device auto: using the CUDA engine")
                : std::string("device auto: using the CPU engine") +
                      (gpu ? " (the popularity model does not train)" : " (" + gpu_reason + ")"));
  if (!use_gpu && cfg.model != ModelKind::Pop && (cfg.embedding_update == "lazy" || cfg.sparse_grad == "fast"))
    std::cerr << "warning: embedding_update and sparse_grad are CUDA engine options: the CPU engine updates Adam "
                 "densely and sums rows deterministically\n";
  if (!use_gpu && cfg.model != ModelKind::Pop && (cfg.engine != "cudnn" || cfg.precision != "fp32"))
    std::cerr << "warning: engine and precision are CUDA engine options: the CPU engine computes in FP32 and "
                 "ignores them (engine: " << cfg.engine << ", precision: " << cfg.precision << ")\n";
  if (cfg.embedding_update == "lazy" && cfg.reg_type == RegType::Norm && !cfg.reg_weights.empty() &&
      cfg.reg_weights[0] > 0)
    throw_usage("embedding_update: lazy needs a regularizer that touches only the batch's rows, but reg_type norm "
                "with reg_weights[0] > 0 puts a gradient on every row (use reg_type squared or reg_weights[0] = 0)");
  if (cfg.threads > 0) omp_set_num_threads(cfg.threads);
  const int threads = cfg.threads > 0 ? cfg.threads : omp_get_max_threads();

  TowerSpec tower;
  const bool conv = cfg.model == ModelKind::ConvNCF;
  if (conv) tower = tower_of(cfg);
  const size_t need_regs = cfg.reg_type == RegType::Squared ? (conv ? 3 : 1) : (conv ? 2 : 1);
  if (cfg.model != ModelKind::Pop && cfg.reg_weights.size() < need_regs)
    throw_usage("reg_weights needs " + std::to_string(need_regs) + " values for reg_type " +
                (cfg.reg_type == RegType::Squared ? "squared" : "norm") + " and model " +
                model_name(cfg.model));
  MetricSum probe_sum(cfg.topk);
  const Metrics probe = probe_sum.mean();
  metric_value(probe, cfg.valid_metric);  // throws when valid_metric's K is not in topk

  if (!cfg.quiet) {  // the effective configuration, as config.yaml will hold it
    std::string y = cfg.to_yaml();
    y.erase(0, y.find('\n') + 1);
    std::string indented;
    for (size_t b = 0, e; b < y.size(); b = e + 1) {
      e = y.find('\n', b);
      indented += "  " + y.substr(b, e - b) + "\n";
    }
    say("configuration:\n" + indented.substr(0, indented.size() - 1));
  }
  const PreparedData prep = prepare_data(cfg);
  const Split& split = prep.split;
  const Interactions& data = prep.data.inter;
  say(prep.summary);
  const FileNegatives* file_neg = prep.data.negatives.empty() ? nullptr : &prep.data.negatives;
  const EvalSet valid = make_eval_set(split, false, cfg.eval_mode_valid, cfg.seed, kStreamEvalValid, file_neg);
  const EvalSet test = make_eval_set(split, true, cfg.eval_mode_test, cfg.seed, kStreamEvalTest, file_neg);

  Params<float> prm = init_params(cfg, conv ? &tower : nullptr, split.n_users, split.n_items);
  const uint64_t fingerprint = data_fingerprint(prep);
  Checkpoint ck;
  const std::string ckpt_path = resume_dir + "/checkpoint.bin";  // the same file as dir's below
  const bool have_ckpt = resume && exists(ckpt_path);
  if (have_ckpt) {
    ck = load_checkpoint(ckpt_path);
    if (ck.data_fingerprint != fingerprint)
      throw_data(ckpt_path + ": the checkpoint was made on other data or another split than " + cfg.dataset +
                 " gives now");
    // the same configuration but for the keys a resume may change
    auto settings = [](const std::string& yaml) {
      std::istringstream in(yaml);
      std::string line, kept;
      while (std::getline(in, line))
        if (line.rfind("#", 0) != 0 && line.rfind("epochs:", 0) != 0 && line.rfind("threads:", 0) != 0 &&
            line.rfind("quiet:", 0) != 0 && line.rfind("show_progress:", 0) != 0 && line.rfind("out:", 0) != 0 &&
            line.rfind("device:", 0) != 0 && line.rfind("verbose:", 0) != 0 && line.rfind("engine:", 0) != 0 &&
            line.rfind("precision:", 0) != 0)
          kept += line + "\n";
      return kept;
    };
    const std::string mine = settings(cfg.to_yaml()), theirs = settings(ck.config_yaml);
    if (mine != theirs) {
      size_t at = 0;
      while (at < mine.size() && at < theirs.size() && mine[at] == theirs[at]) ++at;
      const size_t line_start = theirs.rfind('\n', at == 0 ? 0 : at - 1);
      const std::string first = theirs.substr(line_start == std::string::npos ? 0 : line_start + 1,
                                              theirs.find('\n', at) - (line_start == std::string::npos ? 0 : line_start + 1));
      throw_data(ckpt_path + ": the checkpoint was made with another configuration (it has '" + first + "')");
    }
    const Params<float>& lp = ck.latest.params;
    if (lp.model != cfg.model || lp.E != prm.E || lp.P.size() != prm.P.size() || lp.Q.size() != prm.Q.size() ||
        lp.net.size() != prm.net.size())
      throw_data(ckpt_path + ": the checkpoint holds a model of another shape than the run's configuration");
    prm = lp;
  } else if (cfg.model != ModelKind::Pop && cfg.train_method == "after_pretrain") {
    load_pretrained(cfg, prep, prm);
    say("loaded pretrained MF-BPR embeddings from " + cfg.pre_model_path);
  }
  const std::string dir = resume ? resume_dir : prepare_run_dir(cfg);  // nothing written before this
  const std::string ckpt_out = dir + "/checkpoint.bin";

  // --- the run folder ------------------------------------------------------------------------
  if (resume)  // temporary files of writes a kill interrupted
    for (const char* f : {"checkpoint.bin", "model.bin", "metrics.jsonl", "config.yaml", "split.tsv"})
      std::remove((dir + "/" + f + ".tmp").c_str());
  write_text_atomic(dir + "/config.yaml", cfg.to_yaml());
  if (!resume || !exists(dir + "/split.tsv")) write_split(dir + "/split.tsv", data, split);
  if (have_ckpt) trim_metrics(dir + "/metrics.jsonl", ck.epoch);
  else write_text_atomic(dir + "/metrics.jsonl", "");
  std::ofstream metrics(dir + "/metrics.jsonl", std::ios::app);
  if (!metrics) throw_io("cannot write " + dir + "/metrics.jsonl: " + std::strerror(errno));
  say((resume ? "resuming run folder: " : "run folder: ") + dir +
      (have_ckpt ? " (from the end of epoch " + std::to_string(ck.epoch) + ")" : resume ? " (no checkpoint yet: from the start)" : ""));
  if (conv) say("model: ConvNCF, tower " + tower.describe());
  else say(std::string("model: ") + model_name(cfg.model));
  say("evaluation: valid " + cfg.eval_mode_valid + " (" + std::to_string(valid.size()) + " queries), test " +
      cfg.eval_mode_test + " (" + std::to_string(test.size()) + " queries)");

  CpuEngine<float> engine(cfg.model, conv ? &tower : nullptr, split.n_users, split.n_items, prm.E, threads);
  std::unique_ptr<GpuEngine> gpu_engine;
  if (use_gpu) {
    const GpuEngineOptions go = gpu_engine_options(cfg);
    try {
      gpu_engine = std::make_unique<GpuEngine>(cfg.model, conv ? &tower : nullptr, split, prm.E, go);
      say(gpu_engine->describe());
    } catch (const Error& e) {  // e.g. cuDNN offers no plan for this tower, or out of memory
      if (cfg.device == Device::Cuda) throw;
      gpu_engine.reset();
      say(std::string("device auto: the CUDA engine could not start (") + e.what() + "); using the CPU engine");
    }
  }
  const std::vector<std::string> shown = shown_metrics(cfg);
  auto model_file = [&](const Params<float>& p) {
    return ModelFile{p, conv ? cfg.cnn_channels : std::vector<int>{}, conv ? cfg.cnn_kernels : std::vector<int>{},
                     data.users.raws(), data.items.raws()};
  };
  auto run_eval_set = [&](const Params<float>& p, const EvalSet& set) {
    if (gpu_engine) {
      gpu_engine->upload_params(p);
      return evaluate_gpu(*gpu_engine, set, cfg.topk, gpu_engine->stream());
    }
    std::unique_ptr<Scorer> scorer = make_scorer(engine, p);
    return evaluate(*scorer, set, cfg.topk);
  };

  int best_epoch = 0;
  if (cfg.model == ModelKind::Pop) {
    for (int32_t i = 0; i < split.n_items; ++i) prm.net[size_t(i)] = float(split.item_train_count[size_t(i)]);
  } else {
    // training positives of users who still have a negative to draw
    std::vector<int64_t> usable;
    usable.reserve(split.train_user.size());
    int64_t skipped = 0;
    for (size_t t = 0; t < split.train_user.size(); ++t) {
      if (split.train.degree(split.train_user[t]) < split.n_items) usable.push_back(int64_t(t));
      else ++skipped;
    }
    if (skipped) say("warning: " + std::to_string(skipped) + " positives skipped: their users interacted with every item");
    const int64_t T = int64_t(usable.size());
    const int64_t B = cfg.train_batch_size;
    const double emb_lr = cfg.embedding_learning_rate > 0 ? cfg.embedding_learning_rate : cfg.learning_rate;
    Optimizers main_opt(cfg, cfg.learner, emb_lr, cfg.learning_rate, prm);
    Optimizers warm_opt(cfg, Learner::Adagrad, cfg.warmup_learning_rate, cfg.warmup_learning_rate, prm);
    RegSpec reg{cfg.reg_type, cfg.reg_weights, true};
    Params<float> best = prm;
    EarlyStopping es;
    uint64_t global_step = 0;
    int first_epoch = 1;
    bool stopped = false;
    if (have_ckpt) {
      if (ck.optimizers.size() != 6) throw_data(ckpt_path + ": expected 6 optimizer states, found " + std::to_string(ck.optimizers.size()));
      main_opt.load(ck.optimizers, 0, ckpt_path);
      warm_opt.load(ck.optimizers, 3, ckpt_path);
      best = ck.best.params;
      es.best_epoch = ck.best_epoch;
      es.best_value = ck.best_value;
      es.evals_without_gain = ck.evals_without_gain;
      global_step = ck.global_step;
      first_epoch = ck.epoch + 1;
      stopped = ck.stopped;
      if (stopped) say("the run had stopped early after epoch " + std::to_string(ck.epoch) + "; nothing left to train");
    }
    if (gpu_engine) {
      gpu_engine->upload_params(prm);
      gpu_engine->upload_optimizers(0, {&main_opt.P, &main_opt.Q, &main_opt.net});
      if (cfg.warmup_epochs >= first_epoch) gpu_engine->upload_optimizers(1, {&warm_opt.P, &warm_opt.Q, &warm_opt.net});
    }
    std::vector<int64_t> order(usable);
    std::vector<int32_t> bu(static_cast<size_t>(B)), bp(static_cast<size_t>(B)), bn(static_cast<size_t>(B));
    const int64_t n_batches = cfg.drop_last_batch ? T / B : (T + B - 1) / B;

    for (int epoch = first_epoch; epoch <= cfg.epochs && !stopped; ++epoch) {
      const auto t0 = Clock::now();
      const bool warm = epoch <= cfg.warmup_epochs;
      Optimizers& opt = warm ? warm_opt : main_opt;
      reg.enabled = !warm;
      order = usable;
      Rng shuffle(cfg.seed, kStreamShuffle + (uint64_t(epoch) << 8));
      for (int64_t i = T - 1; i > 0; --i) std::swap(order[size_t(i)], order[shuffle.index(uint32_t(i + 1))]);
      if (gpu_engine) gpu_engine->set_epoch_order(order);
      double bpr_sum = 0;
      int64_t triples = 0;
      for (int64_t b = 0; b < n_batches; ++b) {
        const int64_t lo = b * B, n = std::min(B, T - lo);
        for (int64_t j = 0; j < n && !gpu_engine; ++j) {  // the GPU engine samples on the device
          const int64_t t = order[size_t(lo + j)];
          const int32_t u = split.train_user[size_t(t)];
          bu[size_t(j)] = u;
          bp[size_t(j)] = split.train_item[size_t(t)];
          bn[size_t(j)] = sample_negative(split.train.row(u), split.train.degree(u), split.n_items,
                                          rng_hash(cfg.seed, kStreamNegative, (uint64_t(epoch) << 40) + uint64_t(lo + j)));
        }
        ++global_step;
        const DropoutSpec drop{cfg.dropout_prob, cfg.seed, global_step};
        const std::string where = "at epoch " + std::to_string(epoch) + ", batch " + std::to_string(b + 1);
        LossParts lp;
        std::string bad;
        if (gpu_engine) {  // loss, gradients and update in one call; checked after it
          const GpuEngine::StepResult r = gpu_engine->train_step(epoch, lo, n, warm ? 1 : 0, reg, drop, cfg.seed);
          lp = r.loss;
          if (!r.non_finite.empty()) {  // name the first bad value as the CPU engine does
            gpu_engine->download_params(prm);
            bad = non_finite_tensor(prm, engine, false, data);
            if (bad.empty()) bad = r.non_finite;
          }
        } else {
          lp = engine.compute(prm, {bu.data(), bp.data(), bn.data(), n}, reg, drop);
        }
        if (!std::isfinite(lp.bpr) || !std::isfinite(lp.reg))
          throw Error(kExitSoftware, "non-finite loss " + where + " (bpr " + fmt("%g", lp.bpr) + ", reg " +
                                         fmt("%g", lp.reg) + "); the last good checkpoint is kept");
        if (!gpu_engine) {
          opt.step(prm, engine);
          bad = non_finite_tensor(prm, engine, opt.rows_ok && !engine.all_rows(), data);
        }
        if (!bad.empty())
          throw Error(kExitSoftware, "non-finite " + bad + " after the update " + where + "; the last good checkpoint is kept");
        bpr_sum += lp.bpr;
        triples += n;
        const double el = seconds_since(t0);
        progress.update(epoch, cfg.epochs, b + 1, n_batches, bpr_sum / double(triples), double(triples) / el,
                        el / double(b + 1) * double(n_batches - b - 1));
      }
      const double secs = seconds_since(t0);  // train_step synchronizes: the epoch's work is done
      if (gpu_engine) {  // the epoch's model and optimizer state, for evaluation and the checkpoint
        gpu_engine->download_params(prm);
        gpu_engine->download_optimizers(0, {&main_opt.P, &main_opt.Q, &main_opt.net});
        gpu_engine->download_optimizers(1, {&warm_opt.P, &warm_opt.Q, &warm_opt.net});
      }
      const double loss = triples ? bpr_sum / double(triples) : 0.0;
      const double tps = secs > 0 ? double(triples) / secs : 0.0;
      const double emb_lr_now = opt.P.spec().lr, net_lr_now = opt.net.spec().lr;
      std::string line = "{\"event\":\"epoch\",\"epoch\":" + std::to_string(epoch) + ",\"loss\":" + fmt("%.10g", loss) +
                         ",\"lr\":{\"embedding\":" + fmt("%.10g", emb_lr_now) + ",\"network\":" + fmt("%.10g", net_lr_now) + "}" +
                         ",\"seconds\":" + fmt("%.4f", secs) + ",\"triples_per_second\":" + fmt("%.1f", tps);
      std::string text = "epoch " + std::to_string(epoch) + "/" + std::to_string(cfg.epochs) + (warm ? " (warm-up)" : "") +
                         "  loss " + fmt("%.4f", loss) + "  " + fmt("%.1f", secs) + " s  " + fmt("%.0f", tps) + " triples/s";
      bool improved = false;
      if (epoch % cfg.eval_step == 0 && valid.size() > 0) {
        const auto te = Clock::now();
        const Metrics m = run_eval_set(prm, valid);
        line += ",\"valid\":" + metrics_json(m) + ",\"eval_seconds\":" + fmt("%.4f", seconds_since(te));
        text += "  valid " + metrics_brief(m, shown);
        stopped = es.update(metric_value(m, cfg.valid_metric), epoch, cfg.stopping_step, &improved);
        if (improved) best = prm;
        if (stopped)
          text += "  (no gain in " + cfg.valid_metric + " for " + std::to_string(es.evals_without_gain) +
                  " validations: stopping)";
      }
      line += ",\"peak_memory_bytes\":" + std::to_string(peak_memory_bytes()) + "}";
      // Log line first, then the best model, then the checkpoint: a kill anywhere before the
      // checkpoint's rename leaves the previous checkpoint and a line of an epoch it does not
      // hold, which resume trims and writes again. (Checkpoint first would lose the line.)
      metrics << line << "\n" << std::flush;
      if (!metrics) throw_io("cannot write " + dir + "/metrics.jsonl");
      if (improved) save_model(dir + "/model.bin", model_file(best));
      Checkpoint c;
      c.config_yaml = cfg.to_yaml();
      c.data_fingerprint = fingerprint;
      c.epoch = epoch;
      c.global_step = global_step;
      c.best_epoch = es.best_epoch;
      c.best_value = es.best_value;
      c.evals_without_gain = es.evals_without_gain;
      c.stopped = stopped;
      c.latest = model_file(prm);
      c.best = model_file(best);
      main_opt.save(c.optimizers);
      warm_opt.save(c.optimizers);
      save_checkpoint(ckpt_out, c);
      say(text);
    }
    best_epoch = es.best_epoch;
    if (best_epoch > 0) prm = best;
    else best_epoch = std::max(cfg.epochs, have_ckpt ? ck.epoch : 0);  // never validated: the last epoch is the model
  }

  const Metrics tm = run_eval_set(prm, test);
  metrics << "{\"event\":\"test\",\"best_epoch\":" << best_epoch << ",\"test\":" << metrics_json(tm) << "}\n" << std::flush;
  save_model(dir + "/model.bin", model_file(prm));
  say("test (" + (cfg.model == ModelKind::Pop ? std::string() : "epoch " + std::to_string(best_epoch) + ", ") +
      cfg.eval_mode_test + ", " + std::to_string(test.size()) + " queries): " + metrics_brief(tm, shown));
  say("done in " + fmt("%.1f", seconds_since(t_start)) + " s; " + dir + "/{config.yaml,split.tsv,metrics.jsonl,model.bin,checkpoint.bin}");
}

// ---------------------------------------------------------------------------------------------
// The subcommands around a run folder

namespace {

std::string run_config_path(const std::string& dir) {
  if (!is_dir(dir)) throw_no_input("run folder " + dir + " does not exist");
  const std::string p = dir + "/config.yaml";
  if (!exists(p)) throw_no_input(dir + " is not a run folder: it has no config.yaml");
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

}  // namespace

Config resume_config(const std::string& dir, const std::vector<std::string>& overrides) {
  for (const std::string& o : overrides) {
    const std::string key = o.substr(0, o.find('='));
    if (key != "--epochs" && key != "--threads" && key != "--quiet" && key != "--show_progress" &&
        key != "--device" && key != "--verbose" && key != "--engine" && key != "--precision")
      throw_usage("cannot change '" + key.substr(std::min<size_t>(2, key.size())) +
                  "' when resuming: only --epochs, --threads, --device, --engine, --precision, --quiet, --verbose "
                  "and --show_progress (start a new run for others)");
  }
  Config cfg = run_config(dir, overrides);
  cfg.out = dir;
  return cfg;
}

void run_eval(const std::string& dir, const std::vector<std::string>& overrides, std::ostream& out) {
  const Config cfg = run_config(dir, overrides);
  check_engine_keys(cfg);
  if (cfg.threads > 0) omp_set_num_threads(cfg.threads);
  const int threads = cfg.threads > 0 ? cfg.threads : omp_get_max_threads();
  const ModelFile m = load_model(dir + "/model.bin");
  const PreparedData prep = prepare_data(cfg);
  if (!cfg.quiet) out << prep.summary << "\n";
  const Params<float> prm = params_for_data(m, prep, dir + "/model.bin");
  TowerSpec tower;
  const std::unique_ptr<CpuEngine<float>> engine = engine_for(m, prm, threads, tower, dir + "/model.bin");
  const std::unique_ptr<GpuEngine> gpu = gpu_scorer_for(cfg, prm, tower, prep.split);
  if (!cfg.quiet) out << "scoring on the " << (gpu ? "CUDA" : "CPU") << " engine\n";
  const FileNegatives* file_neg = prep.data.negatives.empty() ? nullptr : &prep.data.negatives;
  std::string json = "{\"event\":\"eval\",\"model\":\"" + std::string(model_name(prm.model)) + "\"";
  for (bool is_test : {false, true}) {
    const std::string& mode = is_test ? cfg.eval_mode_test : cfg.eval_mode_valid;
    const EvalSet set = make_eval_set(prep.split, is_test, mode, cfg.seed, is_test ? kStreamEvalTest : kStreamEvalValid, file_neg);
    if (set.size() == 0) continue;
    const auto t0 = Clock::now();
    const Metrics mt = gpu ? evaluate_gpu(*gpu, set, cfg.topk, gpu->stream()) : evaluate(*make_scorer(*engine, prm), set, cfg.topk);
    const char* name = is_test ? "test" : "valid";
    if (!cfg.quiet)
      out << name << " (" << mode << ", " << set.size() << " queries, " << fmt("%.1f", seconds_since(t0)) << " s): "
          << metrics_brief(mt, shown_metrics(cfg)) << "\n";
    json += std::string(",\"") + name + "\":" + metrics_json(mt) + ",\"" + name + "_mode\":\"" + mode + "\"";
  }
  out << json << "}\n";
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
  if (topk_arg.empty() || *end != '\0' || k < 1 || k > 1000000) throw_usage("--topk must be an integer >= 1, not '" + topk_arg + "'");
  for (const std::string& a : args)
    if (a.compare(0, 10, "--threads=") != 0 && a.compare(0, 9, "--device=") != 0 && a != "--quiet")
      throw_usage("recommend takes --users, --topk, --format, --exclude, --threads and --device, not '" + a + "'");
  Config cfg = run_config(dir, args);
  check_engine_keys(cfg);
  if (cfg.threads > 0) omp_set_num_threads(cfg.threads);
  const int threads = cfg.threads > 0 ? cfg.threads : omp_get_max_threads();
  const ModelFile m = load_model(dir + "/model.bin");
  const PreparedData prep = prepare_data(cfg);
  const Params<float> prm = params_for_data(m, prep, dir + "/model.bin");
  std::vector<int32_t> users;
  std::stringstream ss(users_arg);
  std::string id;
  while (std::getline(ss, id, ',')) {
    const int32_t u = prep.data.inter.users.find(id);
    if (u < 0) throw_data("user '" + id + "' is not in the run's data");
    users.push_back(u);
  }
  TowerSpec tower;
  const std::unique_ptr<CpuEngine<float>> engine = engine_for(m, prm, threads, tower, dir + "/model.bin");
  std::unique_ptr<Scorer> scorer = make_scorer(*engine, prm);
  std::vector<const Csr*> ex;
  if (exclude == "train") ex.push_back(&prep.split.train);
  if (exclude == "all") ex.push_back(&prep.split.all);
  const std::unique_ptr<GpuEngine> gpu = k <= kTopKGpuMax ? gpu_scorer_for(cfg, prm, tower, prep.split) : nullptr;
  const auto top = gpu ? top_k_gpu(*gpu, users, ex, int32_t(k), gpu->stream()) : top_k(*scorer, users, ex, int32_t(k));
  const IdMap& items = prep.data.inter.items;
  if (format == "table") out << "user\trank\titem\tscore\n";
  for (size_t j = 0; j < users.size(); ++j) {
    const std::string& u = prep.data.inter.users.raw(users[j]);
    if (format == "table") {
      for (size_t r = 0; r < top[j].size(); ++r)
        out << u << "\t" << r + 1 << "\t" << items.raw(top[j][r].first) << "\t" << fmt("%.6g", top[j][r].second) << "\n";
    } else {
      out << "{\"user\":" << json_string(u) << ",\"items\":[";
      for (size_t r = 0; r < top[j].size(); ++r) out << (r ? "," : "") << json_string(items.raw(top[j][r].first));
      out << "],\"scores\":[";
      for (size_t r = 0; r < top[j].size(); ++r) out << (r ? "," : "") << fmt("%.9g", top[j][r].second);
      out << "]}\n";
    }
  }
}

namespace {

// A .npy file (format 1.0): magic, header dict padded to a multiple of 64 bytes, raw data.
std::string npy(const std::string& descr, const std::vector<int64_t>& shape, const std::string& data) {
  std::string sh = "(";
  for (size_t i = 0; i < shape.size(); ++i)  // as NumPy writes it: (5,) and (3, 4)
    sh += std::to_string(shape[i]) + (shape.size() == 1 ? "," : i + 1 < shape.size() ? ", " : "");
  sh += ")";
  std::string header = "{'descr': '" + descr + "', 'fortran_order': False, 'shape': " + sh + ", }";
  const size_t total = 10 + header.size() + 1;
  header.append((64 - total % 64) % 64, ' ');
  header += '\n';
  std::string f("\x93NUMPY\x01\x00", 8);
  const uint16_t len = uint16_t(header.size());
  f.append(reinterpret_cast<const char*>(&len), 2);
  return f + header + data;
}

// Raw ids as a NumPy unicode array ('<Un', UTF-32LE). Ids are UTF-8 (the loaders check).
std::string npy_strings(const std::vector<std::string>& ids) {
  std::vector<std::u32string> wide;
  size_t width = 1;
  for (const std::string& s : ids) {
    std::u32string w;
    for (size_t i = 0; i < s.size();) {
      const unsigned char c = static_cast<unsigned char>(s[i]);
      const int n = c < 0x80 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4;
      char32_t cp = n == 1 ? c : n == 2 ? (c & 0x1F) : n == 3 ? (c & 0x0F) : (c & 0x07);
      for (int j = 1; j < n && i + size_t(j) < s.size(); ++j) cp = (cp << 6) | (static_cast<unsigned char>(s[i + size_t(j)]) & 0x3F);
      w += cp;
      i += size_t(n);
    }
    width = std::max(width, w.size());
    wide.push_back(std::move(w));
  }
  std::string data;
  data.reserve(wide.size() * width * 4);
  for (const std::u32string& w : wide) {
    for (size_t j = 0; j < width; ++j) {
      const char32_t cp = j < w.size() ? w[j] : 0;
      const uint32_t v = uint32_t(cp);
      data.append(reinterpret_cast<const char*>(&v), 4);
    }
  }
  return npy("<U" + std::to_string(width), {int64_t(ids.size())}, data);
}

std::string npy_floats(const std::vector<float>& v, const std::vector<int64_t>& shape) {
  return npy("<f4", shape, std::string(reinterpret_cast<const char*>(v.data()), v.size() * sizeof(float)));
}

}  // namespace

void run_export(const std::string& dir, const std::vector<std::string>& args_in, std::ostream& out) {
  std::vector<std::string> args = args_in;
  const std::string to = take_option(args, "out", "");
  if (to.empty()) throw_usage("export needs --out=FOLDER");
  if (!args.empty()) throw_usage("export takes only --out=FOLDER, not '" + args[0] + "'");
  run_config_path(dir);
  const ModelFile m = load_model(dir + "/model.bin");
  const Params<float>& p = m.params;
  std::vector<std::pair<std::string, std::string>> files;
  if (p.model != ModelKind::Pop) {
    files.emplace_back("user_embeddings.npy", npy_floats(p.P, {p.n_users, p.E}));
    files.emplace_back("item_embeddings.npy", npy_floats(p.Q, {p.n_items, p.E}));
  }
  if (!p.net.empty()) files.emplace_back(p.model == ModelKind::Pop ? "item_popularity.npy" : "network.npy",
                                         npy_floats(p.net, {int64_t(p.net.size())}));
  files.emplace_back("user_ids.npy", npy_strings(m.user_ids));
  files.emplace_back("item_ids.npy", npy_strings(m.item_ids));
  std::string index = "{\"model\":\"" + std::string(model_name(p.model)) + "\",\"embedding_size\":" + std::to_string(p.E) +
                      ",\"n_users\":" + std::to_string(p.n_users) + ",\"n_items\":" + std::to_string(p.n_items) +
                      ",\"source\":" + json_string(dir + "/model.bin") + ",\"files\":{";
  for (size_t i = 0; i < files.size(); ++i)
    index += std::string(i ? "," : "") + "\"" + files[i].first.substr(0, files[i].first.size() - 4) + "\":\"" + files[i].first + "\"";
  index += "},\"note\":\"row i of user_embeddings is user_ids[i]; row j of item_embeddings is item_ids[j]\"}\n";
  files.emplace_back("index.json", index);
  for (const auto& f : files)  // nothing already there is overwritten
    if (exists(to + "/" + f.first)) throw_usage("export: " + to + "/" + f.first + " already exists; choose another --out");
  make_dirs(to);
  for (const auto& f : files) write_file_atomic(to + "/" + f.first, f.second);
  out << "exported " << files.size() << " files to " << to << ": ";
  for (size_t i = 0; i < files.size(); ++i) out << (i ? ", " : "") << files[i].first;
  out << "\n";
}

void run_info(std::ostream& out) {
  std::string reason;
  const bool gpu = cuda_device_available(&reason);
  out << "convncf " << kVersionString << "\n";
  out << "CPU threads (OpenMP): " << omp_get_max_threads() << "\n";
  out << cuda_device_summary() << "\n";
  out << "device auto would use: "
      << (gpu ? std::string("the CUDA engine (ConvNCF and MF-BPR; popularity needs no training)")
              : "the CPU engine (" + reason + ")")
      << "\n";
}

}  // namespace convncf
