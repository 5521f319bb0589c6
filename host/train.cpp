// train.cpp: the `convncf train` job (see train.hpp). The loop: shuffle the training positives,
// draw one negative per positive, step the optimizers per batch, validate every eval_step
// epochs, stop early on valid_metric, test the best epoch, write the run folder.
#include "convncf/train.hpp"

#include <omp.h>
#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <fstream>
#include <sstream>

#include "convncf/cpu_engine.hpp"
#include "convncf/dataset.hpp"
#include "convncf/errors.hpp"
#include "convncf/evaluate.hpp"
#include "convncf/gpu.hpp"
#include "convncf/model_io.hpp"
#include "convncf/optim.hpp"
#include "convncf/rng.hpp"

namespace convncf {

namespace {

using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

const char* model_name(ModelKind m) {
  return m == ModelKind::ConvNCF ? "ConvNCF" : m == ModelKind::BPR ? "BPR" : "Pop";
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

void write_text_atomic(const std::string& path, const std::string& text) {
  const std::string tmp = path + ".tmp";
  {
    std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
    f << text;
    f.flush();
    if (!f) throw_io("cannot write " + tmp + ": " + std::strerror(errno));
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0)
    throw_io("cannot rename " + tmp + ": " + std::strerror(errno));
}

Interactions load_dataset(const Config& cfg) {
  if (cfg.dataset == "synthetic") return make_synthetic(cfg.seed);
  std::string path = cfg.dataset;
  if (is_dir(path)) {  // RecBole's layout: DIR/NAME/NAME.inter
    std::string base = path;
    while (base.size() > 1 && base.back() == '/') base.pop_back();
    const size_t slash = base.find_last_of('/');
    path = base + "/" + (slash == std::string::npos ? base : base.substr(slash + 1)) + ".inter";
  }
  if (!exists(path)) throw_no_input("dataset " + cfg.dataset + ": " + path + " does not exist");
  return load_inter_file(path);
}

OptimizerSpec optimizer_spec(const Config& cfg, Learner learner, double lr) {
  OptimizerSpec s;
  s.learner = learner;
  s.lr = lr;
  s.weight_decay = cfg.weight_decay;
  s.adagrad_initial_accumulator = cfg.adagrad_initial_accumulator;
  s.adagrad_eps = cfg.adagrad_eps;
  return s;
}

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
};

const char* first_non_finite(const Params<float>& p) {
  for (float v : p.P) if (!std::isfinite(v)) return "user embeddings";
  for (float v : p.Q) if (!std::isfinite(v)) return "item embeddings";
  for (float v : p.net) if (!std::isfinite(v)) return "network weights";
  return nullptr;
}

// Embeddings of an MF-BPR run, matched by raw id (RecBole's after_pretrain).
void load_pretrained(const Config& cfg, const Interactions& data, Params<float>& prm) {
  std::string path = cfg.pre_model_path;
  if (is_dir(path)) path += "/model.bin";
  const ModelFile m = load_model(path);
  if (m.params.model != ModelKind::BPR)
    throw_data(path + ": pre_model_path must hold an MF-BPR model (model: BPR), found " +
               model_name(m.params.model));
  if (m.params.E != prm.E)
    throw_data(path + ": pretrained embedding size " + std::to_string(m.params.E) +
               " differs from embedding_size " + std::to_string(prm.E));
  auto copy_rows = [&](const IdMap& ids, const std::vector<std::string>& raw,
                       const std::vector<float>& src, std::vector<float>& dst, const char* what) {
    IdMap index;
    for (const std::string& r : raw) index.get_or_add(r);
    for (int32_t i = 0; i < ids.size(); ++i) {
      const int32_t j = index.find(ids.raw(i));
      if (j < 0)
        throw_data(path + ": the pretrained model has no " + what + " '" + ids.raw(i) +
                   "': it was trained on another dataset");
      std::copy_n(src.begin() + int64_t(j) * prm.E, prm.E, dst.begin() + int64_t(i) * prm.E);
    }
  };
  copy_rows(data.users, m.user_ids, m.params.P, prm.P, "user");
  copy_rows(data.items, m.item_ids, m.params.Q, prm.Q, "item");
}

std::string fmt(const char* f, double v) {
  char b[64];
  std::snprintf(b, sizeof b, f, v);
  return b;
}

}  // namespace

void run_train(const Config& cfg, std::ostream& log) {
  const auto t_start = Clock::now();
  auto say = [&](const std::string& s) {
    if (!cfg.quiet) log << s << std::endl;
  };
  // --- checks that need nothing written ---------------------------------------------------
  std::string gpu_reason;
  const bool gpu = cuda_device_available(&gpu_reason);
  if (cfg.device == Device::Cuda) {
    if (!gpu) throw Error(kExitUnavailable, "device: cuda, but no usable GPU: " + gpu_reason);
    throw Error(kExitUnavailable,
                "device: cuda: the CUDA training engine is not in this build yet; use --device=cpu");
  }
  if (cfg.device == Device::Auto)
    say(std::string("device auto: using the CPU engine") +
        (gpu ? " (the CUDA engine is not in this build yet)" : " (" + gpu_reason + ")"));
  if (cfg.threads > 0) omp_set_num_threads(cfg.threads);
  const int threads = cfg.threads > 0 ? cfg.threads : omp_get_max_threads();

  TowerSpec tower;
  const bool conv = cfg.model == ModelKind::ConvNCF;
  if (conv) tower = TowerSpec::make(cfg.embedding_size, cfg.cnn_channels, cfg.cnn_kernels, cfg.cnn_strides);
  const size_t need_regs = cfg.reg_type == RegType::Squared ? (conv ? 3 : 1) : (conv ? 2 : 1);
  if (cfg.model != ModelKind::Pop && cfg.reg_weights.size() < need_regs)
    throw_usage("reg_weights needs " + std::to_string(need_regs) + " values for reg_type " +
                (cfg.reg_type == RegType::Squared ? "squared" : "norm") + " and model " +
                model_name(cfg.model));
  Metrics probe = metrics_from_positions({}, {}, cfg.topk);
  metric_value(probe, cfg.valid_metric);  // throws when valid_metric's K is not in topk

  const Interactions data = load_dataset(cfg);
  const Split split = leave_one_out(data);
  say("data: " + data.name + ", " + std::to_string(data.n_users()) + " users, " +
      std::to_string(data.n_items()) + " items, " + std::to_string(data.size()) + " interactions" +
      (data.duplicates_removed ? " (" + std::to_string(data.duplicates_removed) + " duplicates removed)" : "") +
      "; leave-one-out: " + std::to_string(split.train_user.size()) + " training positives");

  Params<float> prm = init_params(cfg, conv ? &tower : nullptr, split.n_users, split.n_items);
  if (cfg.model != ModelKind::Pop && cfg.train_method == "after_pretrain") {
    load_pretrained(cfg, data, prm);
    say("loaded pretrained MF-BPR embeddings from " + cfg.pre_model_path);
  }

  // --- the run folder ------------------------------------------------------------------------
  const std::string dir = prepare_run_dir(cfg);
  write_text_atomic(dir + "/config.yaml", cfg.to_yaml());
  std::ofstream metrics(dir + "/metrics.jsonl", std::ios::app);
  if (!metrics) throw_io("cannot write " + dir + "/metrics.jsonl: " + std::strerror(errno));
  say("run folder: " + dir);
  if (conv) say("model: ConvNCF, tower " + tower.describe());
  else say(std::string("model: ") + model_name(cfg.model));

  const int64_t n_neg = cfg.eval_negatives();
  const EvalCandidates valid = sample_eval_candidates(split, split.valid_item, int32_t(n_neg), cfg.seed, kStreamEvalValid);
  const EvalCandidates test = sample_eval_candidates(split, split.test_item, int32_t(n_neg), cfg.seed, kStreamEvalTest);
  CpuEngine<float> engine(cfg.model, conv ? &tower : nullptr, split.n_users, split.n_items, prm.E, threads);
  std::vector<std::string> shown;
  for (const char* m : {"hit@10", "ndcg@10"})
    if (std::find_if(probe.begin(), probe.end(), [&](auto& kv) { return kv.first == m; }) != probe.end())
      shown.push_back(m);
  if (std::find(shown.begin(), shown.end(), cfg.valid_metric) == shown.end()) shown.push_back(cfg.valid_metric);

  int best_epoch = 0;
  auto save = [&](const Params<float>& p) {
    ModelFile mf{p, conv ? cfg.cnn_channels : std::vector<int>{}, conv ? cfg.cnn_kernels : std::vector<int>{},
                 data.users.raws(), data.items.raws()};
    save_model(dir + "/model.bin", mf);
  };

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
    double best_value = -1e300;
    int evals_without_gain = 0;
    uint64_t global_step = 0;
    std::vector<int64_t> order(usable);
    std::vector<int32_t> bu(static_cast<size_t>(B)), bp(static_cast<size_t>(B)), bn(static_cast<size_t>(B));

    for (int epoch = 1; epoch <= cfg.epochs; ++epoch) {
      const auto t0 = Clock::now();
      const bool warm = epoch <= cfg.warmup_epochs;
      Optimizers& opt = warm ? warm_opt : main_opt;
      reg.enabled = !warm;
      order = usable;
      Rng shuffle(cfg.seed, kStreamShuffle + (uint64_t(epoch) << 8));
      for (int64_t i = T - 1; i > 0; --i) std::swap(order[size_t(i)], order[shuffle.index(uint32_t(i + 1))]);
      double bpr_sum = 0;
      int64_t triples = 0;
      const int64_t n_batches = cfg.drop_last_batch ? T / B : (T + B - 1) / B;
      for (int64_t b = 0; b < n_batches; ++b) {
        const int64_t lo = b * B, n = std::min(B, T - lo);
        for (int64_t j = 0; j < n; ++j) {
          const int64_t t = order[size_t(lo + j)];
          const int32_t u = split.train_user[size_t(t)];
          bu[size_t(j)] = u;
          bp[size_t(j)] = split.train_item[size_t(t)];
          bn[size_t(j)] = sample_negative(split.train.row(u), split.train.degree(u), split.n_items,
                                          rng_hash(cfg.seed, kStreamNegative, (uint64_t(epoch) << 40) + uint64_t(lo + j)));
        }
        ++global_step;
        const DropoutSpec drop{cfg.dropout_prob, cfg.seed, global_step};
        const LossParts lp = engine.compute(prm, {bu.data(), bp.data(), bn.data(), n}, reg, drop);
        if (!std::isfinite(lp.bpr) || !std::isfinite(lp.reg))
          throw Error(kExitSoftware, "non-finite loss at epoch " + std::to_string(epoch) + ", batch " +
                                         std::to_string(b + 1) + " (bpr " + fmt("%g", lp.bpr) +
                                         ", reg " + fmt("%g", lp.reg) + "); the last good model is not saved over");
        opt.step(prm, engine);
        bpr_sum += lp.bpr;
        triples += n;
      }
      if (const char* bad = first_non_finite(prm))
        throw Error(kExitSoftware, "non-finite " + std::string(bad) + " after epoch " + std::to_string(epoch));
      const double secs = seconds_since(t0);
      const double loss = triples ? bpr_sum / double(triples) : 0.0;
      const double tps = secs > 0 ? double(triples) / secs : 0.0;
      std::string line = "{\"event\":\"epoch\",\"epoch\":" + std::to_string(epoch) + ",\"loss\":" + fmt("%.10g", loss) +
                         ",\"seconds\":" + fmt("%.4f", secs) + ",\"triples_per_second\":" + fmt("%.1f", tps);
      std::string text = "epoch " + std::to_string(epoch) + "/" + std::to_string(cfg.epochs) + (warm ? " (warm-up)" : "") +
                         "  loss " + fmt("%.4f", loss) + "  " + fmt("%.1f", secs) + " s  " + fmt("%.0f", tps) + " triples/s";
      bool stop = false;
      if (epoch % cfg.eval_step == 0 && !valid.user.empty()) {
        const auto te = Clock::now();
        const Metrics m = evaluate_sampled(engine, prm, valid, cfg.topk);
        line += ",\"valid\":" + metrics_json(m) + ",\"eval_seconds\":" + fmt("%.4f", seconds_since(te));
        text += "  valid " + metrics_brief(m, shown);
        const double v = metric_value(m, cfg.valid_metric);
        if (v > best_value) {
          best_value = v;
          best_epoch = epoch;
          best = prm;
          evals_without_gain = 0;
        } else if (cfg.stopping_step > 0 && ++evals_without_gain > cfg.stopping_step) {
          stop = true;
          text += "  (no gain in " + cfg.valid_metric + " for " + std::to_string(evals_without_gain) + " evaluations: stopping)";
        }
      }
      metrics << line << "}\n" << std::flush;
      if (!metrics) throw_io("cannot write " + dir + "/metrics.jsonl");
      say(text);
      if (stop) break;
    }
    if (best_epoch > 0) prm = best;
    else best_epoch = cfg.epochs;  // never validated: the last epoch is the model
  }

  const Metrics tm = evaluate_sampled(engine, prm, test, cfg.topk);
  metrics << "{\"event\":\"test\",\"best_epoch\":" << best_epoch << ",\"test\":" << metrics_json(tm) << "}\n" << std::flush;
  save(prm);
  say("test (epoch " + std::to_string(best_epoch) + ", " + std::to_string(test.user.size()) + " users, " +
      std::to_string(n_neg) + " negatives): " + metrics_brief(tm, shown) + "  auc " + fmt("%.4f", metric_value(tm, "auc")));
  say("done in " + fmt("%.1f", seconds_since(t_start)) + " s; " + dir + "/{config.yaml,metrics.jsonl,model.bin}");
}

}  // namespace convncf
