// A program that uses convncf as a library: the built-in data, one engine from the factory, two
// epochs through the training schedule, then the test metrics. Prints the version, the engine
// and the metrics; exits non-zero when the loss is not finite or a metric is out of [0, 1].
#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include "convncf/config.hpp"
#include "convncf/engine.hpp"
#include "convncf/errors.hpp"
#include "convncf/evaluate.hpp"
#include "convncf/options.hpp"
#include "convncf/rng.hpp"
#include "convncf/run_data.hpp"
#include "convncf/schedule.hpp"
#include "convncf/version.hpp"

int main() {
  using namespace convncf;
  try {
    const Config cfg = Config::from_args({"--model=ConvNCF", "--device=cpu", "--embedding_size=16",
                                          "--cnn_channels=[1,8,8]", "--cnn_kernels=[4,4]",
                                          "--cnn_strides=[4,4]", "--train_batch_size=512"});
    const RunData run = load_run_data(data_options(cfg));
    std::unique_ptr<Engine> engine = make_engine(engine_options(cfg), run.split);
    const TowerSpec tower = tower_spec(cfg);
    engine->set_params(init_params(cfg, &tower, run.split.n_users, run.split.n_items));
    const Schedule schedule(schedule_options(cfg), run.split);
    uint64_t global_step = 0;
    double loss = 0;
    for (int epoch = 0; epoch < 2; ++epoch) {
      loss = 0;
      run_epoch(*engine, schedule, epoch, global_step,
                [&](int64_t, int64_t, const StepResult& r) { loss += r.loss.bpr; });
    }
    const EvalSet test = make_eval_set(run.split, true, "full", cfg.seed, kStreamEvalTest, nullptr);
    const Metrics m = engine->evaluate(test, {10});
    std::printf("convncf %s, engine %s, %lld test queries, last epoch's loss %.4f\n", kVersionString,
                engine->name(), static_cast<long long>(test.size()), loss);
    bool ok = std::isfinite(loss) && test.size() > 0 && !m.empty();
    for (const auto& [name, value] : m) {
      std::printf("  %s %.4f\n", name.c_str(), value);
      ok = ok && value >= 0 && value <= 1;
    }
    return ok ? 0 : 1;
  } catch (const Error& e) {
    std::fprintf(stderr, "consumer: %s\n", e.what());
    return e.code();
  }
}
