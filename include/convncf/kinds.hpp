// kinds.hpp: the small enumerations every layer speaks (model, learner, regularizer, initializer,
// device). The configuration (config.hpp) parses them from text; nothing below the application
// layer needs the configuration itself.
#pragma once

namespace convncf {

enum class ModelKind { ConvNCF, BPR, Pop };
enum class Preset { RecBole, Paper };
enum class Learner { SGD, Adagrad, Adam };
enum class RegType { Norm, Squared };   // RecBole's whole-table norms | the paper's squared row norms
enum class InitKind { PyTorch, Paper };  // PyTorch defaults | truncated normals of the official code
enum class Device { Auto, Cpu, Cuda };
// Input format of the products of conv layers 2..L in the fused engine (config key `precision`).
enum class Precision : int { FP32 = 0, TF32 = 1, BF16 = 2 };

// "ConvNCF", "BPR", "Pop": the names config.yaml, model files' messages and run folders use.
inline const char* model_name(ModelKind m) {
  return m == ModelKind::ConvNCF ? "ConvNCF" : m == ModelKind::BPR ? "BPR" : "Pop";
}

}  // namespace convncf
