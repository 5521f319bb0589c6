// train.cpp: the `convncf train` job (see train.hpp). A run loads and splits its data, starts from
// a fresh model, pretrained MF-BPR embeddings or its checkpoint, and trains on the engine the
// configuration picks: each epoch shuffles the training positives, steps through them in batches
// (the engine draws train_neg_sample_args' negatives for each positive), validates every eval_step epochs, stops early on
// valid_metric, and writes its metrics line, the best model and a checkpoint; at the end it tests
// the best epoch. The engine is driven through engine.hpp's interface only.
// train_method: after_pretrain without pre_model_path makes two stages of one run (run_stage):
// the MF-BPR stage of pretrain_config(cfg) (lines tagged "pretrain", best model pretrain.bin),
// then ConvNCF from pretrain.bin as from a pre_model_path (lines tagged "main", model.bin). Each
// stage has its own epochs, global step and checkpoint, so it computes what the two runs by hand
// compute; the pretrain stage's test line marks it done, and resume picks the stage from it.
#include "convncf/train.hpp"

#include <omp.h>
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <memory>
#include <optional>
#include <sstream>

#include "convncf/checkpoint.hpp"
#include "convncf/dist.hpp"
#include "convncf/early_stopping.hpp"
#include "convncf/engine.hpp"
#include "convncf/errors.hpp"
#include "convncf/evaluate.hpp"
#include "convncf/model_io.hpp"
#include "convncf/options.hpp"
#include "convncf/rng.hpp"
#include "convncf/run_data.hpp"
#include "convncf/run_folder.hpp"
#include "convncf/schedule.hpp"
#include "convncf/util.hpp"
#include "json_util.hpp"
#include "progress.hpp"

namespace convncf {

namespace {

using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

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

// The run's log: lines on `log` unless quiet, with the live progress line (progress.hpp) erased
// before each.
class RunLog {
 public:
  // `lead`: rank 0 of a multi-rank run (or the one process); the other ranks say nothing.
  RunLog(const Config& cfg, std::ostream& log, bool lead)
      : m_quiet(cfg.quiet || !lead),
        m_lead(lead),
        m_log(log),
        m_progress(lead && !cfg.quiet && cfg.show_progress && &log == &std::cout) {}
  void say(const std::string& s) {
    if (m_quiet) return;
    m_progress.clear();
    m_log << s << std::endl;
  }
  void warn(const std::string& s) {
    if (!m_lead) return;
    m_progress.clear();
    std::cerr << s << "\n";
  }
  Progress& progress() { return m_progress; }

 private:
  bool m_quiet, m_lead;
  std::ostream& m_log;
  Progress m_progress;
};

// The effective configuration, as config.yaml will hold it, indented under a heading.
std::string configuration_text(const Config& cfg) {
  std::string y = cfg.to_yaml();
  y.erase(0, y.find('\n') + 1);
  std::string indented;
  for (size_t b = 0, e; b < y.size(); b = e + 1) {
    e = y.find('\n', b);
    indented += "  " + y.substr(b, e - b) + "\n";
  }
  return "configuration:\n" + indented.substr(0, indented.size() - 1);
}

// Embeddings of an MF-BPR run, matched by raw id (RecBole's after_pretrain; the pretraining may
// have used another split or format of the data).
void load_pretrained(std::string path, const Interactions& data, Params<float>& prm) {
  if (is_dir(path)) path += "/model.bin";
  // rank 0 reads the file, every rank takes its bytes (the MF-BPR stage's pretrain.bin is written
  // by rank 0 alone, before this broadcast)
  const World& world = World::get();
  std::string bytes = world.rank() == 0 ? read_file_bytes(path, "pre_model_path") : std::string();
  world.bcast_string(bytes, 0);
  // RecBole's checkpoints are torch.save zip archives of pickles: converted in Python, never parsed here
  if (bytes.compare(0, 2, "PK") == 0 || (path.size() > 4 && path.compare(path.size() - 4, 4, ".pth") == 0))
    throw_data(path + ": pre_model_path names a RecBole checkpoint; convert it to a convncf model file first: "
               "python3 tools/recbole_convert.py from-recbole " + path + " --out=FILE.bin, then pre_model_path: FILE.bin");
  const ModelFile m = model_from_bytes(bytes, path);
  if (m.params.model != ModelKind::BPR)
    throw_data(path + ": pre_model_path must hold an MF-BPR model (model: BPR), found " + model_name(m.params.model));
  if (m.params.E != prm.E)
    throw_data(path + ": pretrained embedding size " + std::to_string(m.params.E) + " differs from embedding_size " +
               std::to_string(prm.E));
  Params<float> mapped = params_for_data(m, data, path);
  prm.P = std::move(mapped.P);
  prm.Q = std::move(mapped.Q);
}

// A checkpoint may continue this run only if it was made on the same data and split, with the
// same configuration but for the keys a resume may change, and holds a model of the run's shape.
void check_checkpoint(const Checkpoint& ck, const Config& cfg, uint64_t fingerprint, const Params<float>& fresh,
                      const std::string& path) {
  if (ck.data_fingerprint != fingerprint)
    throw_data(path + ": the checkpoint was made on other data or another split than " + cfg.dataset + " gives now");
  std::string theirs;
  if (!same_run_settings(cfg.to_yaml(), ck.config_yaml, &theirs))
    throw_data(path + ": the checkpoint was made with another configuration (it has '" + theirs + "')");
  const Params<float>& lp = ck.latest.params;
  if (lp.model != fresh.model || lp.E != fresh.E || lp.P.size() != fresh.P.size() || lp.Q.size() != fresh.Q.size() ||
      lp.net.size() != fresh.net.size())
    throw_data(path + ": the checkpoint holds a model of another shape than the run's configuration");
}

// The first non-finite value after a step, named in the data's own ids.
std::string name_of(const NonFinite& bad, const Interactions& data) {
  switch (bad.where) {
    case NonFinite::Where::Network: return "network weights (element " + std::to_string(bad.index) + ")";
    case NonFinite::Where::User: return "user embedding of '" + data.users.raw(int32_t(bad.index)) + "'";
    case NonFinite::Where::Item: return "item embedding of '" + data.items.raw(int32_t(bad.index)) + "'";
    case NonFinite::Where::Other: return bad.detail;
    case NonFinite::Where::None: break;
  }
  return "";
}

// The run's remaining time, from the training and validation seconds measured so far in this
// process: each epoch left costs the mean training time, each validation left the mean
// validation time. Before any validation was timed the estimate is a lower bound (">m:ss").
// Early stopping may end the run sooner.
class Eta {
 public:
  Eta(int epochs, int eval_step, bool has_valid) : m_epochs(epochs), m_step(eval_step), m_has_valid(has_valid) {}
  bool validates(int epoch) const { return m_has_valid && epoch % m_step == 0; }
  void trained(double secs) { m_train += secs, ++m_trains; }
  void validated(double secs) { m_valid += secs, ++m_valids; }
  // Once `epoch` (and its validation) is over.
  std::string after(int epoch) const { return text(0, epoch, 0, m_trains ? m_train / m_trains : 0); }
  // While `epoch` trains: `done` seconds of an estimated `total`; its validation is still to come.
  std::string during(int epoch, double done, double total) const {
    return text(std::max(0.0, total - done), epoch, validates(epoch) ? 1 : 0, m_trains ? m_train / m_trains : total);
  }

 private:
  // `now` seconds of this epoch's training and `extra` validations, then the epochs after `epoch`.
  std::string text(double now, int epoch, int extra, double per_train) const {
    double secs = now + double(m_epochs - epoch) * per_train;
    const int valids = extra + (m_has_valid ? m_epochs / m_step - epoch / m_step : 0);
    if (valids > 0 && m_valids == 0) return ">" + hms(secs);
    if (valids > 0) secs += valids * m_valid / m_valids;
    return hms(secs);
  }
  int m_epochs, m_step;
  bool m_has_valid;
  double m_train = 0, m_valid = 0;
  int m_trains = 0, m_valids = 0;
};

// A test hook (tests/dist): CONVNCF_TEST_DIE=RANK:STEP[:kill] makes that rank fail at that global
// step, by an error (as a rank whose disk or memory fails) or, with :kill, by SIGKILL (as a node
// that vanishes). Without the variable, nothing.
struct TestDeath {
  int rank = -1;
  uint64_t step = 0;
  bool kill = false;
  [[noreturn]] void now() const {
    if (kill) {
      std::fflush(nullptr);
      ::raise(SIGKILL);
    }
    throw Error(kExitSoftware, "CONVNCF_TEST_DIE: this rank fails at step " + std::to_string(step) + " (a test)");
  }
};
TestDeath test_death() {
  TestDeath d;
  const char* e = std::getenv("CONVNCF_TEST_DIE");
  if (!e || !*e) return d;
  unsigned long long step = 0;
  int rank = -1;
  char mode[16] = {0};
  if (std::sscanf(e, "%d:%llu:%15s", &rank, &step, mode) < 2 || rank < 0 || step == 0)
    throw_usage(std::string("CONVNCF_TEST_DIE='") + e + "': expected RANK:STEP[:kill]");
  d.rank = rank;
  d.step = step;
  d.kill = std::string(mode) == "kill";
  return d;
}

// What every stage of a run shares.
struct RunContext {
  RunLog& out;
  const std::string& dir;  // the run folder's path, on every rank
  RunFolder* folder;  // rank 0 (or the one process) alone writes the run folder; null elsewhere
  const Interactions& data;
  const Split& split;
  const EvalSet& valid;
  const EvalSet& test;
  uint64_t fingerprint;
};

ModelFile model_file(const Config& cfg, const Interactions& data, const Params<float>& p) {
  const bool conv = cfg.model == ModelKind::ConvNCF;
  return ModelFile{p, conv ? cfg.cnn_channels : std::vector<int>{}, conv ? cfg.cnn_kernels : std::vector<int>{},
                   data.users.raws(), data.items.raws()};
}

// One stage of a run ("pretrain": the MF-BPR stage of the one-run after_pretrain recipe, "main":
// the run's own model): trains `cfg`'s model on `engine` from the parameters it holds, or from
// `ck` where given, to the end of its epochs or its early stop. Each epoch appends its metrics
// line (tagged with the stage), saves the best model so far into `best_file` and the checkpoint;
// then the best epoch is tested, its model saved, and the test line appended. Returns the
// tested epoch. A stage never needs to know of the other: its epochs, global step and
// checkpoint are its own, so it computes what a run of its configuration alone would.
int run_stage(RunContext& c, const char* stage, const char* best_file, const Config& cfg, const EngineOptions& opts,
              Engine& engine, const Checkpoint* ck) {
  const bool trains = cfg.model != ModelKind::Pop;
  const std::vector<std::string> shown = shown_metrics(cfg);
  const std::string label = std::string(stage) == "pretrain" ? "pretrain " : "";
  Params<float> prm = engine.params();
  int best_epoch = 0;
  if (trains) {
    const Schedule schedule(schedule_options(cfg), c.split);
    if (schedule.skipped())
      c.out.say("warning: " + std::to_string(schedule.skipped()) +
                " positives skipped: their users interacted with every item");
    Params<float> best = prm;
    EarlyStopping es;
    uint64_t global_step = 0;
    int first_epoch = 1;
    bool stopped = false;
    if (ck) {
      try {
        engine.set_optimizer_states(ck->optimizers);
      } catch (const Error& e) {
        throw Error(e.code(), c.dir + "/checkpoint.bin: " + e.what());
      }
      best = ck->best.params;
      es.best_epoch = ck->best_epoch;
      es.best_value = ck->best_value;
      es.evals_without_gain = ck->evals_without_gain;
      global_step = ck->global_step;
      first_epoch = ck->epoch + 1;
      stopped = ck->stopped;
      if (stopped)
        c.out.say(label + "the run had stopped early after epoch " + std::to_string(ck->epoch) +
                  "; nothing left to train");
    }
    const int64_t n_batches = schedule.batches();
    int kept_epoch = ck ? ck->epoch : 0;  // the epoch of the checkpoint on disk
    auto kept = [&] {
      return kept_epoch > 0 ? "; the checkpoint of epoch " + std::to_string(kept_epoch) + " is kept"
                            : std::string("; no epoch had finished, so nothing was kept");
    };
    Eta eta(cfg.epochs, cfg.eval_step, c.valid.size() > 0);
    const World& world = World::get();
    const TestDeath die = test_death();
    int64_t sent_bytes = 0;  // what this rank sent into the steps' collectives
    uint64_t sent_steps = 0;
    for (int epoch = first_epoch; epoch <= cfg.epochs && !stopped; ++epoch) {
      const auto t0 = Clock::now();
      const bool warm = schedule.warm(epoch);
      double bpr_sum = 0;
      int64_t triples = 0;
      const int64_t sent0 = world.bytes_sent();
      const uint64_t step0 = global_step;
      run_epoch(engine, schedule, epoch, global_step, [&](int64_t b, int64_t n, const StepResult& r) {
        if (die.rank == world.rank() && global_step == die.step) die.now();
        const std::string where = label + "epoch " + std::to_string(epoch) + ", batch " + std::to_string(b + 1);
        if (!std::isfinite(r.loss.bpr) || !std::isfinite(r.loss.reg))
          throw Error(kExitSoftware, "non-finite loss at " + where + " (bpr " + fmt("%g", r.loss.bpr) + ", reg " +
                                         fmt("%g", r.loss.reg) + ")" + kept());
        if (r.bad.any())
          throw Error(kExitSoftware, "non-finite " + name_of(r.bad, c.data) + " after the update at " + where + kept());
        bpr_sum += r.loss.bpr;
        triples += n * schedule.negatives();
        const double el = seconds_since(t0);
        c.out.progress().update(epoch, cfg.epochs, b + 1, n_batches, bpr_sum / double(triples), double(triples) / el,
                                eta.during(epoch, el, el / double(b + 1) * double(n_batches)));
      });
      const double secs = seconds_since(t0);  // a step returns when its work is done
      sent_bytes += world.bytes_sent() - sent0;
      sent_steps += global_step - step0;
      prm = engine.params();
      const double loss = triples ? bpr_sum / double(triples) : 0.0;
      const double tps = secs > 0 ? double(triples) / secs : 0.0;
      const PhaseOptimizers& phase = opts.phases[warm ? 1 : 0];
      Json line = Json::object();
      line["stage"] = stage;
      line["event"] = "epoch";
      line["epoch"] = epoch;
      line["loss"] = json_number(loss);
      line["lr"] = {{"embedding", json_number(phase.embeddings.lr)}, {"network", json_number(phase.network.lr)}};
      line["seconds"] = json_fixed(secs, 4);
      line["triples_per_second"] = json_fixed(tps, 1);
      std::string text = label + "epoch " + std::to_string(epoch) + "/" + std::to_string(cfg.epochs) +
                         (warm ? " (warm-up)" : "") + "  loss " + fmt("%.4f", loss) + "  train " + fmt("%.1f", secs) +
                         " s  " + fmt("%.0f", tps) + " triples/s";
      eta.trained(secs);
      bool improved = false;
      std::string validated;
      if (eta.validates(epoch)) {
        const auto te = Clock::now();
        const Metrics m = engine.evaluate(c.valid, cfg.topk);
        const double valid_secs = seconds_since(te);
        eta.validated(valid_secs);
        line["valid"] = metrics_object(m);
        line["eval_seconds"] = json_fixed(valid_secs, 4);
        text += "  validation " + fmt("%.1f", valid_secs) + " s";
        validated = "  valid " + metrics_brief(m, shown);
        stopped = es.update(metric_value(m, cfg.valid_metric), epoch, cfg.stopping_step, &improved);
        if (improved) best = prm;
        if (stopped)
          validated += "  (no gain in " + cfg.valid_metric + " for " + std::to_string(es.evals_without_gain) +
                       " validations: stopping)";
      }
      text += "  ETA " + (stopped ? hms(0) : eta.after(epoch)) + validated;
      line["peak_memory_bytes"] = peak_memory_bytes();
      // The line first, then the best model, then the checkpoint: a kill anywhere before the
      // checkpoint's rename leaves the previous checkpoint and a line of an epoch it does not
      // hold, which resume trims and writes again. (Checkpoint first would lose the line.)
      if (c.folder) c.folder->append_metrics(line.dump());
      if (c.folder && improved) c.folder->save_model(model_file(cfg, c.data, best), best_file);
      Checkpoint k;
      k.config_yaml = cfg.to_yaml();
      k.data_fingerprint = c.fingerprint;
      k.epoch = epoch;
      k.global_step = global_step;
      k.best_epoch = es.best_epoch;
      k.best_value = es.best_value;
      k.evals_without_gain = es.evals_without_gain;
      k.stopped = stopped;
      k.latest = model_file(cfg, c.data, prm);
      k.best = model_file(cfg, c.data, best);
      k.optimizers = engine.optimizer_states();
      if (c.folder) c.folder->save_checkpoint(k);
      kept_epoch = epoch;
      c.out.say(text);
    }
    if (world.distributed() && sent_steps > 0)
      c.out.say(label + world.describe() + ": rank 0 sent " + bytes_text(double(sent_bytes) / double(sent_steps)) +
                " per training step (" + std::to_string(sent_bytes / int64_t(sent_steps)) + " bytes, mean over " +
                std::to_string(sent_steps) + " steps)");
    best_epoch = es.best_epoch;
    if (best_epoch > 0) prm = best;
    else best_epoch = std::max(cfg.epochs, ck ? ck->epoch : 0);  // never validated: the last epoch is the model
    engine.set_params(prm);
  }

  // --- the test of the best epoch: its model, then its line (the line marks the stage done) ---
  const Metrics tm = engine.evaluate(c.test, cfg.topk);
  if (c.folder) c.folder->save_model(model_file(cfg, c.data, prm), best_file);
  Json line = Json::object();
  line["stage"] = stage;
  line["event"] = "test";
  line["best_epoch"] = best_epoch;
  line["test"] = metrics_object(tm);
  if (c.folder) c.folder->append_metrics(line.dump());
  c.out.say(label + "test (" + (trains ? "epoch " + std::to_string(best_epoch) + ", " : std::string()) +
            cfg.eval_mode_test + ", " + std::to_string(c.test.size()) + " queries): " + metrics_brief(tm, shown));
  return best_epoch;
}

}  // namespace

void run_train(const Config& cfg, std::ostream& log, const std::string& resume_dir) {
  const auto t_start = Clock::now();
  const bool resume = !resume_dir.empty();
  // Several ranks (dist.hpp): every rank loads the data and trains its share of each batch; rank 0
  // alone holds the run folder and writes into it, and says what the run does.
  const World& world = World::get();
  const bool lead = world.rank() == 0;
  RunLog out(cfg, log, lead);

  // --- what needs nothing loaded or written: usage errors, then the device -------------------
  if (lead && !cfg.ignored_warning().empty()) std::cerr << cfg.ignored_warning() << "\n";
  check_run_config(cfg);
  const EngineOptions engine_opts = engine_options(cfg);
  // after_pretrain without pre_model_path: the MF-BPR stage first, in this run (pretrain_config)
  const bool two_stage = pretrains_in_run(cfg);
  const Config pcfg = two_stage ? pretrain_config(cfg) : Config{};
  if (two_stage) check_run_config(pcfg);
  const EngineOptions pretrain_opts = two_stage ? engine_options(pcfg) : EngineOptions{};
  check_device(engine_opts);
  if (cfg.threads > 0) omp_set_num_threads(cfg.threads);
  if (world.distributed()) {
    // the shares of a step are ranks x threads (cpu_engine.hpp): every rank must run as many
    const int mine = cfg.threads > 0 ? cfg.threads : omp_get_max_threads();
    const std::vector<std::vector<int>> all = world.allgather(std::vector<int>{mine});
    std::string list;
    bool same = true;
    for (const std::vector<int>& t : all) {
      list += (list.empty() ? "" : ", ") + std::to_string(t.at(0));
      same = same && t.at(0) == mine;
    }
    if (!same)
      throw_usage("the ranks would run different thread counts (" + list + ", in rank order): give every rank the same "
                  "--threads=T");
  }

  // --- the run folder: claimed (locked) before anything is loaded (run_folder.hpp) -------------
  // A new run that fails before its first checkpoint removes what it wrote when `folder` goes.
  // Rank 0 claims it and tells the others its name and what it held.
  std::optional<RunFolder> lead_folder;
  if (lead)
    lead_folder.emplace(resume ? RunFolder::claim_resume(resume_dir) : RunFolder::claim_new(cfg.out, cfg.model, cfg.to_yaml()));
  RunFolder* const folder = lead_folder ? &*lead_folder : nullptr;  // null on ranks > 0
  // "CFKP" flags (continuing, had a checkpoint, finished, MF-BPR stage done with its pretrain.bin),
  // then the folder's path
  std::string claimed;
  if (folder) {
    const FolderState& st = folder->claimed_state();
    claimed = std::string(resume || folder->earlier_attempt() ? "1" : "0") + (st.checkpoint ? "1" : "0") +
              (st.finished ? "1" : "0") + (st.pretrain_done && path_exists(folder->path("pretrain.bin")) ? "1" : "0") +
              folder->dir();
  }
  world.bcast_string(claimed, 0);
  const std::string run_dir = claimed.substr(4);
  const bool continuing = claimed[0] == '1';  // the folder's own checkpoint, if any, is the start
  if (continuing && claimed[1] == '0' && claimed[2] == '1') {
    // start-from-scratch is right only where no finished result would be replaced
    if (cfg.model == ModelKind::Pop)
      throw_usage(run_dir + " holds a finished popularity run: popularity trains nothing, so there is nothing to "
                  "resume (its result is in metrics.jsonl; convncf eval " + run_dir + " scores it again)");
    throw_no_input(run_dir + " holds a finished run but no checkpoint.bin: there is nothing to continue from, and "
                   "training again would replace its model.bin and metrics.jsonl; start a new run with another --out");
  }
  out.say(configuration_text(cfg));

  // --- the data, its evaluation queries, and where training starts -----------------------------
  const RunData rd = load_run_data(data_options(cfg));
  const Split& split = rd.split;
  const Interactions& data = rd.data.inter;
  out.say(rd.summary);
  const FileNegatives* file_neg = rd.data.negatives.empty() ? nullptr : &rd.data.negatives;
  const EvalSet valid = make_eval_set(split, false, cfg.eval_mode_valid, cfg.seed, kStreamEvalValid, file_neg);
  const EvalSet test = make_eval_set(split, true, cfg.eval_mode_test, cfg.seed, kStreamEvalTest, file_neg);
  if (test.size() == 0)
    throw_data("no test queries, so there is nothing to evaluate and nothing was trained: " +
               why_no_held_out(rd, data_options(cfg).split, true));

  const bool conv = cfg.model == ModelKind::ConvNCF;
  const bool trains = cfg.model != ModelKind::Pop;
  // The MF-BPR stage is done once its test line is in metrics.jsonl (written after pretrain.bin).
  const std::string pretrain_path = run_dir + "/pretrain.bin";
  const bool pretrain_done = two_stage && continuing && claimed[3] == '1';
  const bool in_pretrain = two_stage && !pretrain_done;
  Params<float> prm = trains ? init_params(cfg, conv ? &engine_opts.tower : nullptr, split.n_users, split.n_items)
                             : popularity_params(split.n_users, split.item_train_count);
  const uint64_t fingerprint = data_fingerprint(rd);
  const std::string ckpt_path = run_dir + "/checkpoint.bin";
  // The checkpoint on disk belongs to the stage being trained, except the MF-BPR stage's last
  // one, left when a kill came after that stage ended and before the main stage's first epoch.
  Checkpoint ck;
  bool have_ckpt = false;
  Params<float> pprm;  // the MF-BPR stage's start
  if (in_pretrain) pprm = init_params(pcfg, nullptr, split.n_users, split.n_items);
  // rank 0 reads the checkpoint, every rank starts from its bytes
  std::string ck_bytes = lead && continuing && path_exists(ckpt_path) ? read_file_bytes(ckpt_path, "checkpoint") : "";
  world.bcast_string(ck_bytes, 0);
  if (!ck_bytes.empty()) {
    ck = checkpoint_from_bytes(ck_bytes, ckpt_path);
    std::string().swap(ck_bytes);
    const bool stale = pretrain_done && ck.latest.params.model == ModelKind::BPR;
    if (!stale) {
      check_checkpoint(ck, in_pretrain ? pcfg : cfg, fingerprint, in_pretrain ? pprm : prm, ckpt_path);
      (in_pretrain ? pprm : prm) = ck.latest.params;
      have_ckpt = true;
    }
  }
  if (!have_ckpt && trains && cfg.train_method == "after_pretrain" && !two_stage) {
    load_pretrained(is_dir(cfg.pre_model_path) ? cfg.pre_model_path + "/model.bin" : cfg.pre_model_path, data, prm);
    out.say("loaded pretrained MF-BPR embeddings from " + cfg.pre_model_path);
  }

  // --- the engines, then the run folder's files (nothing but run.lock is written before this) ---
  EngineNotes notes;
  std::unique_ptr<Engine> engine = make_engine(engine_opts, split, &notes);
  for (const std::string& w : notes.warnings) out.warn(w);
  std::unique_ptr<Engine> pengine;
  if (in_pretrain) {
    EngineNotes pnotes;
    pengine = make_engine(pretrain_opts, split, &pnotes);
    for (const std::string& w : pnotes.warnings) out.warn("MF-BPR stage: " + w);
    pengine->set_params(pprm);
  }
  if (folder) {
    folder->write_config(cfg.to_yaml());
    folder->write_split(data, split, /*keep_existing=*/continuing);
    folder->open_metrics(in_pretrain ? "pretrain" : "main", have_ckpt ? ck.epoch : 0, /*keep_pretrain=*/pretrain_done);
  }
  std::string folder_line = resume ? "resuming run folder: " + run_dir : "run folder: " + run_dir;
  const std::string where = (in_pretrain ? "the MF-BPR stage's epoch " : two_stage ? "the ConvNCF stage's epoch " : "epoch ") +
                            std::to_string(ck.epoch);
  const std::string start = two_stage && pretrain_done && !have_ckpt ? "the start of the ConvNCF stage" : "the start";
  if (resume)
    folder_line += have_ckpt ? " (from the end of " + where + ")" : " (no checkpoint yet: from " + start + ")";
  else if (continuing)
    folder_line += have_ckpt ? " (an earlier attempt of this run was stopped after " + where + ": continuing it)"
                             : " (an earlier attempt of this run was stopped before its first checkpoint: starting "
                               "from " + start + ")";
  out.say(folder_line);
  out.say(conv ? "model: ConvNCF, tower " + engine_opts.tower.describe() : std::string("model: ") + model_name(cfg.model));
  if (trains) out.say("training negatives: " + engine_opts.negatives.describe());
  if (valid.size() > 0 || !trains)
    out.say("evaluation: valid " + cfg.eval_mode_valid + " (" + std::to_string(valid.size()) + " queries), test " +
            cfg.eval_mode_test + " (" + std::to_string(test.size()) + " queries)");
  else  // training goes on to the last epoch, whose model is tested (README "Evaluation")
    out.say(std::string("evaluation: no validation queries (") +
            (rd.data.role.empty() ? "the split has no validation interactions" : "the data files give no validation split") +
            "): every epoch trains, nothing stops early, and the last epoch's model is tested; test " + cfg.eval_mode_test +
            " (" + std::to_string(test.size()) + " queries)");
  for (const std::string& line : notes.info) out.say(line);

  RunContext ctx{out, run_dir, folder, data, split, valid, test, fingerprint};
  // --- the MF-BPR stage of the one-run recipe: what `train --model=BPR` with pcfg would do -----
  if (two_stage) {
    if (in_pretrain) {
      out.say("stage 1 of 2: MF-BPR pretraining (" + std::to_string(pcfg.epochs) + " epochs, " +
              (pcfg.learner == Learner::Adam ? "Adam " : pcfg.learner == Learner::Adagrad ? "Adagrad " : "SGD ") +
              fmt("%g", pcfg.learning_rate) + ", reg_weights " +
              fmt("%g", pcfg.reg_weights.at(0)) + "; pretrain_epochs, pretrain_learning_rate) into " + pretrain_path);
      run_stage(ctx, "pretrain", "pretrain.bin", pcfg, pretrain_opts, *pengine, have_ckpt ? &ck : nullptr);
      pengine.reset();
      have_ckpt = false;  // the ConvNCF stage starts from its beginning
    } else {
      out.say("stage 1 of 2: MF-BPR pretraining finished earlier (" + pretrain_path + ")");
    }
    out.say("stage 2 of 2: ConvNCF from the MF-BPR embeddings");
    if (!have_ckpt) load_pretrained(pretrain_path, data, prm);
  }
  engine->set_params(prm);
  run_stage(ctx, "main", "model.bin", cfg, engine_opts, *engine, have_ckpt ? &ck : nullptr);
  if (folder) {
    folder->keep();
    out.say("done in " + fmt("%.1f", seconds_since(t_start)) + " s; " + folder->dir() + "/{" + folder->result_files() + "}");
  }
}

}  // namespace convncf
