// cudnn_conv.cpp: one ConvNCF conv layer through cuDNN's graph (backend) API: descriptors built
// with cudnnBackendCreateDescriptor / SetAttribute / Finalize, engines chosen by the engine
// heuristics, run with cudnnBackendExecute. No legacy cudnnConvolution* calls, no cudnn_frontend.
// Contract and layout: include/convncf/cudnn_conv.hpp. Tests: tests/test_cudnn_conv_gpu.cu.
//
// Graphs, one execution plan each, built once per layer shape:
//   forward (fused)    X, W -> conv -> [Zc virtual] -> add b -> [Zb virtual] -> ReLU -> Y
//   forward (plain)    X, W -> conv -> Y, then bias_relu_fwd (kernels/conv_bias_relu.cu)
//   backward filter    X, dZ -> dW        (CONVOLUTION_BACKWARD_FILTER)
//   backward data      W, dZ -> dX        (CONVOLUTION_BACKWARD_DATA)
// The fused graph is tried first; when no engine config finalizes into a plan (common for fp32
// without tensor cores) the plain graph is used. For each graph the engine configs of heuristics
// mode A, then of the fallback list, are walked in order; the first that passes the numerical-note
// filter of ConvOptions and finalizes into a plan wins. Variant packs are built per call (a few
// host-side attribute sets), so no pointer is cached between calls.
#include "convncf/cudnn_conv.hpp"

#include <cudnn.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstdio>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "convncf/conv_bias_relu.hpp"
#include "convncf/cuda_check.hpp"
#include "convncf/errors.hpp"

// A cuDNN call whose failure throws Error(kExitSoftware) naming the call, file:line, cuDNN's
// message and `ctx` (the layer shape and the graph being built or run).
#define CONVNCF_CUDNN_CTX(call, ctx)                                          \
  do {                                                                        \
    const cudnnStatus_t convncf_st_ = (call);                                 \
    if (convncf_st_ != CUDNN_STATUS_SUCCESS)                                  \
      ::convncf::detail::throw_gpu_error(                                     \
          "cuDNN", #call, __FILE__, __LINE__,                                 \
          ::convncf::detail::status_message(cudnnGetErrorString(convncf_st_), \
                                            static_cast<int>(convncf_st_)) +  \
              " [" + (ctx) + "]");                                            \
  } while (0)

// One attribute of a backend descriptor; the attribute's name shows in the error text.
#define CONVNCF_SET_ATTR(desc, name, type, count, values, ctx) \
  CONVNCF_CUDNN_CTX(cudnnBackendSetAttribute((desc).get(), name, type, count, values), ctx)

#define CONVNCF_FINALIZE(desc, ctx) CONVNCF_CUDNN_CTX(cudnnBackendFinalize((desc).get()), ctx)

namespace convncf {
namespace {

// Unique ids of the tensors (per graph; the same id means the same buffer in every graph).
constexpr int64_t kUidX = 1, kUidW = 2, kUidB = 3, kUidY = 4, kUidDY = 5, kUidDW = 6, kUidDX = 7;
constexpr int64_t kUidConvOut = 101, kUidBiasOut = 102;  // virtual: live inside the fused kernel

std::string status_text(cudnnStatus_t st) {
  return detail::status_message(cudnnGetErrorString(st), static_cast<int>(st));
}

// A backend descriptor, destroyed with its owner. Move-only; the destructor only logs.
class BackendDesc {
 public:
  BackendDesc() = default;
  BackendDesc(cudnnBackendDescriptorType_t type, const std::string& ctx) {
    CONVNCF_CUDNN_CTX(cudnnBackendCreateDescriptor(type, &m_desc), ctx);
  }
  ~BackendDesc() { reset(); }
  BackendDesc(const BackendDesc&) = delete;
  BackendDesc& operator=(const BackendDesc&) = delete;
  BackendDesc(BackendDesc&& o) noexcept : m_desc(std::exchange(o.m_desc, nullptr)) {}
  BackendDesc& operator=(BackendDesc&& o) noexcept {
    if (this != &o) {
      reset();
      m_desc = std::exchange(o.m_desc, nullptr);
    }
    return *this;
  }
  cudnnBackendDescriptor_t get() const { return m_desc; }
  // For attributes of type CUDNN_TYPE_BACKEND_DESCRIPTOR: a one-element array of descriptors.
  const cudnnBackendDescriptor_t* addr() const { return &m_desc; }

 private:
  void reset() noexcept {
    if (!m_desc) return;
    const cudnnStatus_t st = cudnnBackendDestroyDescriptor(m_desc);
    if (st != CUDNN_STATUS_SUCCESS)
      std::fprintf(stderr, "cuDNN error: cudnnBackendDestroyDescriptor: %s\n",
                   status_text(st).c_str());
    m_desc = nullptr;
  }
  cudnnBackendDescriptor_t m_desc = nullptr;
};

// One execution plan and everything it was built from (kept alive as long as the plan).
struct Plan {
  std::vector<BackendDesc> parts;  // tensors, operations, the operation graph
  BackendDesc cfg;                 // the chosen engine config
  BackendDesc plan;                // the execution plan
  int64_t workspace = 0;
  int64_t engine_id = -1;
  std::string knobs;  // "type=value,..." of the engine config
  std::string text() const {
    std::ostringstream s;
    s << "engine " << engine_id;
    if (!knobs.empty()) s << " {" << knobs << "}";
    s << " ws " << workspace << " B";
    return s.str();
  }
};

using Dims = std::array<int64_t, 4>;

// A 4-D fp32 tensor with packed NCHW strides.
BackendDesc make_tensor(int64_t uid, const Dims& dims, int64_t alignment, bool is_virtual,
                        const std::string& ctx) {
  const Dims strides = {dims[1] * dims[2] * dims[3], dims[2] * dims[3], dims[3], 1};
  const cudnnDataType_t dtype = CUDNN_DATA_FLOAT;
  const bool virt = is_virtual;
  BackendDesc t(CUDNN_BACKEND_TENSOR_DESCRIPTOR, ctx);
  CONVNCF_SET_ATTR(t, CUDNN_ATTR_TENSOR_DATA_TYPE, CUDNN_TYPE_DATA_TYPE, 1, &dtype, ctx);
  CONVNCF_SET_ATTR(t, CUDNN_ATTR_TENSOR_DIMENSIONS, CUDNN_TYPE_INT64, 4, dims.data(), ctx);
  CONVNCF_SET_ATTR(t, CUDNN_ATTR_TENSOR_STRIDES, CUDNN_TYPE_INT64, 4, strides.data(), ctx);
  CONVNCF_SET_ATTR(t, CUDNN_ATTR_TENSOR_UNIQUE_ID, CUDNN_TYPE_INT64, 1, &uid, ctx);
  CONVNCF_SET_ATTR(t, CUDNN_ATTR_TENSOR_BYTE_ALIGNMENT, CUDNN_TYPE_INT64, 1, &alignment, ctx);
  CONVNCF_SET_ATTR(t, CUDNN_ATTR_TENSOR_IS_VIRTUAL, CUDNN_TYPE_BOOLEAN, 1, &virt, ctx);
  CONVNCF_FINALIZE(t, ctx);
  return t;
}

// 2 spatial dims, stride k, no padding, dilation 1, cross-correlation (PyTorch's Conv2d), fp32.
BackendDesc make_conv_desc(int k, const std::string& ctx) {
  const int64_t spatial_dims = 2;
  const cudnnDataType_t comp = CUDNN_DATA_FLOAT;
  const cudnnConvolutionMode_t mode = CUDNN_CROSS_CORRELATION;
  const int64_t strides[2] = {k, k}, dilations[2] = {1, 1}, pads[2] = {0, 0};
  BackendDesc c(CUDNN_BACKEND_CONVOLUTION_DESCRIPTOR, ctx);
  CONVNCF_SET_ATTR(c, CUDNN_ATTR_CONVOLUTION_SPATIAL_DIMS, CUDNN_TYPE_INT64, 1, &spatial_dims, ctx);
  CONVNCF_SET_ATTR(c, CUDNN_ATTR_CONVOLUTION_COMP_TYPE, CUDNN_TYPE_DATA_TYPE, 1, &comp, ctx);
  CONVNCF_SET_ATTR(c, CUDNN_ATTR_CONVOLUTION_CONV_MODE, CUDNN_TYPE_CONVOLUTION_MODE, 1, &mode, ctx);
  CONVNCF_SET_ATTR(c, CUDNN_ATTR_CONVOLUTION_DILATIONS, CUDNN_TYPE_INT64, 2, dilations, ctx);
  CONVNCF_SET_ATTR(c, CUDNN_ATTR_CONVOLUTION_FILTER_STRIDES, CUDNN_TYPE_INT64, 2, strides, ctx);
  CONVNCF_SET_ATTR(c, CUDNN_ATTR_CONVOLUTION_PRE_PADDINGS, CUDNN_TYPE_INT64, 2, pads, ctx);
  CONVNCF_SET_ATTR(c, CUDNN_ATTR_CONVOLUTION_POST_PADDINGS, CUDNN_TYPE_INT64, 2, pads, ctx);
  CONVNCF_FINALIZE(c, ctx);
  return c;
}

// Output = 1 * op(...) + 0 * Output: every convolution overwrites its output.
constexpr float kAlpha = 1.0f, kBeta = 0.0f;

BackendDesc make_conv_fwd_op(const BackendDesc& conv, const BackendDesc& x, const BackendDesc& w,
                             const BackendDesc& y, const std::string& ctx) {
  BackendDesc op(CUDNN_BACKEND_OPERATION_CONVOLUTION_FORWARD_DESCRIPTOR, ctx);
  CONVNCF_SET_ATTR(op, CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_CONV_DESC,
                   CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, conv.addr(), ctx);
  CONVNCF_SET_ATTR(op, CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_X, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1,
                   x.addr(), ctx);
  CONVNCF_SET_ATTR(op, CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_W, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1,
                   w.addr(), ctx);
  CONVNCF_SET_ATTR(op, CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_Y, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1,
                   y.addr(), ctx);
  CONVNCF_SET_ATTR(op, CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_ALPHA, CUDNN_TYPE_FLOAT, 1, &kAlpha,
                   ctx);
  CONVNCF_SET_ATTR(op, CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_BETA, CUDNN_TYPE_FLOAT, 1, &kBeta,
                   ctx);
  CONVNCF_FINALIZE(op, ctx);
  return op;
}

BackendDesc make_conv_bwd_filter_op(const BackendDesc& conv, const BackendDesc& x,
                                    const BackendDesc& dy, const BackendDesc& dw,
                                    const std::string& ctx) {
  BackendDesc op(CUDNN_BACKEND_OPERATION_CONVOLUTION_BACKWARD_FILTER_DESCRIPTOR, ctx);
  CONVNCF_SET_ATTR(op, CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_FILTER_CONV_DESC,
                   CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, conv.addr(), ctx);
  CONVNCF_SET_ATTR(op, CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_FILTER_X, CUDNN_TYPE_BACKEND_DESCRIPTOR,
                   1, x.addr(), ctx);
  CONVNCF_SET_ATTR(op, CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_FILTER_DY,
                   CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, dy.addr(), ctx);
  CONVNCF_SET_ATTR(op, CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_FILTER_DW,
                   CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, dw.addr(), ctx);
  CONVNCF_SET_ATTR(op, CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_FILTER_ALPHA, CUDNN_TYPE_FLOAT, 1,
                   &kAlpha, ctx);
  CONVNCF_SET_ATTR(op, CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_FILTER_BETA, CUDNN_TYPE_FLOAT, 1,
                   &kBeta, ctx);
  CONVNCF_FINALIZE(op, ctx);
  return op;
}

BackendDesc make_conv_bwd_data_op(const BackendDesc& conv, const BackendDesc& w,
                                  const BackendDesc& dy, const BackendDesc& dx,
                                  const std::string& ctx) {
  BackendDesc op(CUDNN_BACKEND_OPERATION_CONVOLUTION_BACKWARD_DATA_DESCRIPTOR, ctx);
  CONVNCF_SET_ATTR(op, CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_DATA_CONV_DESC,
                   CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, conv.addr(), ctx);
  CONVNCF_SET_ATTR(op, CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_DATA_W, CUDNN_TYPE_BACKEND_DESCRIPTOR,
                   1, w.addr(), ctx);
  CONVNCF_SET_ATTR(op, CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_DATA_DY, CUDNN_TYPE_BACKEND_DESCRIPTOR,
                   1, dy.addr(), ctx);
  CONVNCF_SET_ATTR(op, CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_DATA_DX, CUDNN_TYPE_BACKEND_DESCRIPTOR,
                   1, dx.addr(), ctx);
  CONVNCF_SET_ATTR(op, CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_DATA_ALPHA, CUDNN_TYPE_FLOAT, 1,
                   &kAlpha, ctx);
  CONVNCF_SET_ATTR(op, CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_DATA_BETA, CUDNN_TYPE_FLOAT, 1, &kBeta,
                   ctx);
  CONVNCF_FINALIZE(op, ctx);
  return op;
}

BackendDesc make_pointwise_desc(cudnnPointwiseMode_t mode, const std::string& ctx) {
  const cudnnDataType_t prec = CUDNN_DATA_FLOAT;
  BackendDesc pw(CUDNN_BACKEND_POINTWISE_DESCRIPTOR, ctx);
  CONVNCF_SET_ATTR(pw, CUDNN_ATTR_POINTWISE_MODE, CUDNN_TYPE_POINTWISE_MODE, 1, &mode, ctx);
  CONVNCF_SET_ATTR(pw, CUDNN_ATTR_POINTWISE_MATH_PREC, CUDNN_TYPE_DATA_TYPE, 1, &prec, ctx);
  CONVNCF_FINALIZE(pw, ctx);
  return pw;
}

// y = pw(x) or, when b is given, y = pw(x, b) (b broadcast over the dims where it has size 1).
BackendDesc make_pointwise_op(const BackendDesc& pw, const BackendDesc& x, const BackendDesc* b,
                              const BackendDesc& y, const std::string& ctx) {
  BackendDesc op(CUDNN_BACKEND_OPERATION_POINTWISE_DESCRIPTOR, ctx);
  CONVNCF_SET_ATTR(op, CUDNN_ATTR_OPERATION_POINTWISE_PW_DESCRIPTOR, CUDNN_TYPE_BACKEND_DESCRIPTOR,
                   1, pw.addr(), ctx);
  CONVNCF_SET_ATTR(op, CUDNN_ATTR_OPERATION_POINTWISE_XDESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1,
                   x.addr(), ctx);
  if (b)
    CONVNCF_SET_ATTR(op, CUDNN_ATTR_OPERATION_POINTWISE_BDESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1,
                     b->addr(), ctx);
  CONVNCF_SET_ATTR(op, CUDNN_ATTR_OPERATION_POINTWISE_YDESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1,
                   y.addr(), ctx);
  CONVNCF_FINALIZE(op, ctx);
  return op;
}

BackendDesc make_graph(cudnnHandle_t handle, const std::vector<const BackendDesc*>& ops,
                       const std::string& ctx) {
  std::vector<cudnnBackendDescriptor_t> raw;
  for (const BackendDesc* op : ops) raw.push_back(op->get());
  BackendDesc g(CUDNN_BACKEND_OPERATIONGRAPH_DESCRIPTOR, ctx);
  CONVNCF_SET_ATTR(g, CUDNN_ATTR_OPERATIONGRAPH_OPS, CUDNN_TYPE_BACKEND_DESCRIPTOR,
                   static_cast<int64_t>(raw.size()), raw.data(), ctx);
  // CUDNN_ATTR_OPERATIONGRAPH_HANDLE and CUDNN_ATTR_EXECUTION_PLAN_HANDLE (below) are marked
  // deprecated in cuDNN 9's cudnn_graph.h (a warning only with CUDNN_WARN_DEPRECATED): a device
  // properties descriptor (CUDNN_BACKEND_DEVICEPROP_DESCRIPTOR) is the newer way to name the
  // device. They are fine in cuDNN 9: every 9.x release accepts them, and the copy of cuDNN a GPU
  // machine brings (its toolkit's, or PyTorch's wheel) may be an older 9.x than the headers here,
  // so the handle form stays until a cuDNN major release drops it.
  CONVNCF_SET_ATTR(g, CUDNN_ATTR_OPERATIONGRAPH_HANDLE, CUDNN_TYPE_HANDLE, 1, &handle, ctx);
  CONVNCF_FINALIZE(g, ctx);
  return g;
}

const char* note_name(cudnnBackendNumericalNote_t note) {
  switch (note) {
    case CUDNN_NUMERICAL_NOTE_TENSOR_CORE:
      return "TENSOR_CORE";
    case CUDNN_NUMERICAL_NOTE_DOWN_CONVERT_INPUTS:
      return "DOWN_CONVERT_INPUTS";
    case CUDNN_NUMERICAL_NOTE_REDUCED_PRECISION_REDUCTION:
      return "REDUCED_PRECISION_REDUCTION";
    case CUDNN_NUMERICAL_NOTE_NONDETERMINISTIC:
      return "NONDETERMINISTIC";
    default:
      return "other";
  }
}

// The numerical note that rules an engine out under `options`, or nullptr when none does.
// Deterministic mode drops NONDETERMINISTIC engines (atomics in the reduction); Fp32 drops those
// that run on tensor cores or convert inputs down (TF32 for fp32 data), and reduced-precision
// reductions.
const char* rejecting_note(const cudnnBackendNumericalNote_t* notes, int64_t count,
                           const ConvOptions& options) {
  for (int64_t i = 0; i < count; ++i) {
    const cudnnBackendNumericalNote_t note = notes[i];
    if (options.deterministic && note == CUDNN_NUMERICAL_NOTE_NONDETERMINISTIC)
      return note_name(note);
    if (options.math == ConvMath::Fp32 &&
        (note == CUDNN_NUMERICAL_NOTE_TENSOR_CORE ||
         note == CUDNN_NUMERICAL_NOTE_DOWN_CONVERT_INPUTS ||
         note == CUDNN_NUMERICAL_NOTE_REDUCED_PRECISION_REDUCTION))
      return note_name(note);
  }
  return nullptr;
}

// Appends the first few reasons a step failed, for the error message when nothing works.
void note_failure(std::vector<std::string>* why, const std::string& text) {
  if (why->size() < 6) why->push_back(text);
}

// Engine id and knob choices of a finalized engine config; failures leave "?" (describe only).
void read_engine_info(const BackendDesc& cfg, const std::string& ctx, Plan* out) {
  BackendDesc engine(CUDNN_BACKEND_ENGINE_DESCRIPTOR, ctx);
  cudnnBackendDescriptor_t e = engine.get();
  int64_t n = 0;
  if (cudnnBackendGetAttribute(cfg.get(), CUDNN_ATTR_ENGINECFG_ENGINE,
                               CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &n, &e) == CUDNN_STATUS_SUCCESS) {
    int64_t id = -1;
    if (cudnnBackendGetAttribute(e, CUDNN_ATTR_ENGINE_GLOBAL_INDEX, CUDNN_TYPE_INT64, 1, &n, &id) ==
        CUDNN_STATUS_SUCCESS)
      out->engine_id = id;
  }
  std::vector<BackendDesc> knobs;
  std::vector<cudnnBackendDescriptor_t> raw;
  for (int i = 0; i < static_cast<int>(CUDNN_KNOB_TYPE_COUNTS); ++i) {
    knobs.emplace_back(CUDNN_BACKEND_KNOB_CHOICE_DESCRIPTOR, ctx);
    raw.push_back(knobs.back().get());
  }
  int64_t count = 0;
  if (cudnnBackendGetAttribute(cfg.get(), CUDNN_ATTR_ENGINECFG_KNOB_CHOICES,
                               CUDNN_TYPE_BACKEND_DESCRIPTOR, CUDNN_KNOB_TYPE_COUNTS, &count,
                               raw.data()) != CUDNN_STATUS_SUCCESS) {
    out->knobs = "?";
    return;
  }
  count = std::min<int64_t>(count, CUDNN_KNOB_TYPE_COUNTS);
  std::ostringstream s;
  for (int64_t i = 0; i < count; ++i) {
    cudnnBackendKnobType_t type = CUDNN_KNOB_TYPE_COUNTS;
    int64_t value = 0;
    if (cudnnBackendGetAttribute(raw[i], CUDNN_ATTR_KNOB_CHOICE_KNOB_TYPE, CUDNN_TYPE_KNOB_TYPE, 1,
                                 &n, &type) != CUDNN_STATUS_SUCCESS ||
        cudnnBackendGetAttribute(raw[i], CUDNN_ATTR_KNOB_CHOICE_KNOB_VALUE, CUDNN_TYPE_INT64, 1, &n,
                                 &value) != CUDNN_STATUS_SUCCESS) {
      s << (i ? "," : "") << "?";
      continue;
    }
    s << (i ? "," : "") << static_cast<int>(type) << "=" << value;
  }
  out->knobs = s.str();
}

// Walks the engine configs of heuristics mode A, then of the fallback list, and keeps the first
// that `options` allow and that finalizes into an execution plan. Returns false (with the reasons
// in *why) when none does. Setting attributes of our own descriptors throws on failure (a bug);
// what cuDNN may legitimately refuse (heuristics, a plan for a config) is skipped and noted.
bool select_plan(cudnnHandle_t handle, const BackendDesc& graph, const ConvOptions& options,
                 const std::string& ctx, Plan* out, std::string* why) {
  std::vector<std::string> failures;
  int64_t seen = 0, filtered = 0, unfinalized = 0;
  const std::pair<cudnnBackendHeurMode_t, const char*> modes[] = {
      {CUDNN_HEUR_MODE_A, "heuristics mode A"}, {CUDNN_HEUR_MODE_FALLBACK, "fallback heuristics"}};
  for (const auto& [mode, mode_name] : modes) {
    BackendDesc heur(CUDNN_BACKEND_ENGINEHEUR_DESCRIPTOR, ctx);
    CONVNCF_SET_ATTR(heur, CUDNN_ATTR_ENGINEHEUR_OPERATION_GRAPH, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1,
                     graph.addr(), ctx);
    const cudnnBackendHeurMode_t heur_mode = mode;
    CONVNCF_SET_ATTR(heur, CUDNN_ATTR_ENGINEHEUR_MODE, CUDNN_TYPE_HEUR_MODE, 1, &heur_mode, ctx);
    cudnnStatus_t st = cudnnBackendFinalize(heur.get());
    if (st != CUDNN_STATUS_SUCCESS) {
      note_failure(&failures, std::string(mode_name) + ": finalize " + status_text(st));
      continue;
    }
    int64_t count = 0;
    st = cudnnBackendGetAttribute(heur.get(), CUDNN_ATTR_ENGINEHEUR_RESULTS,
                                  CUDNN_TYPE_BACKEND_DESCRIPTOR, 0, &count, nullptr);
    if (st != CUDNN_STATUS_SUCCESS || count <= 0) {
      note_failure(&failures, std::string(mode_name) + ": " +
                                  (st != CUDNN_STATUS_SUCCESS ? status_text(st) : "no results"));
      continue;
    }
    std::vector<BackendDesc> cfgs;
    std::vector<cudnnBackendDescriptor_t> raw;
    for (int64_t i = 0; i < count; ++i) {
      cfgs.emplace_back(CUDNN_BACKEND_ENGINECFG_DESCRIPTOR, ctx);
      raw.push_back(cfgs.back().get());
    }
    int64_t got = 0;
    st = cudnnBackendGetAttribute(heur.get(), CUDNN_ATTR_ENGINEHEUR_RESULTS,
                                  CUDNN_TYPE_BACKEND_DESCRIPTOR, count, &got, raw.data());
    if (st != CUDNN_STATUS_SUCCESS) {
      note_failure(&failures, std::string(mode_name) + ": results " + status_text(st));
      continue;
    }
    got = std::min(got, count);
    for (int64_t i = 0; i < got; ++i) {
      ++seen;
      // The engine behind the config, for its numerical notes.
      BackendDesc engine(CUDNN_BACKEND_ENGINE_DESCRIPTOR, ctx);
      cudnnBackendDescriptor_t e = engine.get();
      int64_t n = 0;
      st = cudnnBackendGetAttribute(raw[i], CUDNN_ATTR_ENGINECFG_ENGINE,
                                    CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &n, &e);
      std::array<cudnnBackendNumericalNote_t, CUDNN_NUMERICAL_NOTE_TYPE_COUNT> notes{};
      int64_t n_notes = 0;
      if (st == CUDNN_STATUS_SUCCESS)
        st =
            cudnnBackendGetAttribute(e, CUDNN_ATTR_ENGINE_NUMERICAL_NOTE, CUDNN_TYPE_NUMERICAL_NOTE,
                                     CUDNN_NUMERICAL_NOTE_TYPE_COUNT, &n_notes, notes.data());
      if (st != CUDNN_STATUS_SUCCESS) {  // notes unknown: cannot promise determinism or fp32
        note_failure(&failures, std::string(mode_name) + " config " + std::to_string(i) +
                                    ": numerical notes " + status_text(st));
        ++filtered;
        continue;
      }
      n_notes = std::min<int64_t>(n_notes, CUDNN_NUMERICAL_NOTE_TYPE_COUNT);
      if (rejecting_note(notes.data(), n_notes, options)) {
        ++filtered;
        continue;
      }
      BackendDesc plan(CUDNN_BACKEND_EXECUTION_PLAN_DESCRIPTOR, ctx);
      // deprecated in cuDNN 9 but accepted by every 9.x: see make_graph
      CONVNCF_SET_ATTR(plan, CUDNN_ATTR_EXECUTION_PLAN_HANDLE, CUDNN_TYPE_HANDLE, 1, &handle, ctx);
      CONVNCF_SET_ATTR(plan, CUDNN_ATTR_EXECUTION_PLAN_ENGINE_CONFIG, CUDNN_TYPE_BACKEND_DESCRIPTOR,
                       1, &raw[i], ctx);
      st = cudnnBackendFinalize(plan.get());
      if (st != CUDNN_STATUS_SUCCESS) {
        ++unfinalized;
        note_failure(&failures, std::string(mode_name) + " config " + std::to_string(i) +
                                    ": plan " + status_text(st));
        continue;
      }
      int64_t workspace = -1;
      st = cudnnBackendGetAttribute(plan.get(), CUDNN_ATTR_EXECUTION_PLAN_WORKSPACE_SIZE,
                                    CUDNN_TYPE_INT64, 1, &n, &workspace);
      if (st != CUDNN_STATUS_SUCCESS || workspace < 0) {
        ++unfinalized;
        note_failure(&failures, std::string(mode_name) + " config " + std::to_string(i) +
                                    ": workspace size " + status_text(st));
        continue;
      }
      out->cfg = std::move(cfgs[static_cast<size_t>(i)]);
      out->plan = std::move(plan);
      out->workspace = workspace;
      read_engine_info(out->cfg, ctx, out);
      return true;
    }
  }
  std::ostringstream s;
  s << seen << " engine configs seen, " << filtered << " ruled out by numerical notes, "
    << unfinalized << " without a plan";
  for (const std::string& f : failures) s << "; " << f;
  *why = s.str();
  return false;
}

struct LayerDims {
  Dims x, w, b, y;
};
LayerDims layer_dims(const ConvShape& s) {
  const int64_t S = s.in_size, So = s.out_size();
  return {{s.n, s.cin, S, S}, {s.cout, s.cin, s.k, s.k}, {1, s.cout, 1, 1}, {s.n, s.cout, So, So}};
}

constexpr int64_t kAct = static_cast<int64_t>(kConvActivationAlignment);
constexpr int64_t kParam = static_cast<int64_t>(kConvParamAlignment);

// Builds the graph of `ops` (which, with the tensors, move into the plan) and selects its plan.
bool finish_plan(cudnnHandle_t handle, std::vector<BackendDesc> parts,
                 const std::vector<size_t>& op_index, const ConvOptions& options,
                 const std::string& ctx, Plan* out, std::string* why) {
  std::vector<const BackendDesc*> ops;
  for (size_t i : op_index) ops.push_back(&parts[i]);
  BackendDesc graph = make_graph(handle, ops, ctx);
  Plan p;
  const bool ok = select_plan(handle, graph, options, ctx, &p, why);
  if (!ok) return false;
  p.parts = std::move(parts);
  p.parts.push_back(std::move(graph));
  *out = std::move(p);
  return true;
}

bool build_fused_forward(cudnnHandle_t handle, const ConvShape& s, const ConvOptions& options,
                         const std::string& ctx, Plan* out, std::string* why) {
  const LayerDims d = layer_dims(s);
  std::vector<BackendDesc> parts;
  parts.push_back(make_tensor(kUidX, d.x, kAct, false, ctx));                        // 0
  parts.push_back(make_tensor(kUidW, d.w, kParam, false, ctx));                      // 1
  parts.push_back(make_tensor(kUidB, d.b, kParam, false, ctx));                      // 2
  parts.push_back(make_tensor(kUidY, d.y, kAct, false, ctx));                        // 3
  parts.push_back(make_tensor(kUidConvOut, d.y, kAct, true, ctx));                   // 4
  parts.push_back(make_tensor(kUidBiasOut, d.y, kAct, true, ctx));                   // 5
  parts.push_back(make_conv_desc(s.k, ctx));                                         // 6
  parts.push_back(make_pointwise_desc(CUDNN_POINTWISE_ADD, ctx));                    // 7
  parts.push_back(make_pointwise_desc(CUDNN_POINTWISE_RELU_FWD, ctx));               // 8
  parts.push_back(make_conv_fwd_op(parts[6], parts[0], parts[1], parts[4], ctx));    // 9
  parts.push_back(make_pointwise_op(parts[7], parts[4], &parts[2], parts[5], ctx));  // 10
  parts.push_back(make_pointwise_op(parts[8], parts[5], nullptr, parts[3], ctx));    // 11
  return finish_plan(handle, std::move(parts), {9, 10, 11}, options, ctx, out, why);
}

bool build_plain_forward(cudnnHandle_t handle, const ConvShape& s, const ConvOptions& options,
                         const std::string& ctx, Plan* out, std::string* why) {
  const LayerDims d = layer_dims(s);
  std::vector<BackendDesc> parts;
  parts.push_back(make_tensor(kUidX, d.x, kAct, false, ctx));                      // 0
  parts.push_back(make_tensor(kUidW, d.w, kParam, false, ctx));                    // 1
  parts.push_back(make_tensor(kUidY, d.y, kAct, false, ctx));                      // 2
  parts.push_back(make_conv_desc(s.k, ctx));                                       // 3
  parts.push_back(make_conv_fwd_op(parts[3], parts[0], parts[1], parts[2], ctx));  // 4
  return finish_plan(handle, std::move(parts), {4}, options, ctx, out, why);
}

bool build_bwd_filter(cudnnHandle_t handle, const ConvShape& s, const ConvOptions& options,
                      const std::string& ctx, Plan* out, std::string* why) {
  const LayerDims d = layer_dims(s);
  std::vector<BackendDesc> parts;
  parts.push_back(make_tensor(kUidX, d.x, kAct, false, ctx));                             // 0
  parts.push_back(make_tensor(kUidDY, d.y, kAct, false, ctx));                            // 1
  parts.push_back(make_tensor(kUidDW, d.w, kParam, false, ctx));                          // 2
  parts.push_back(make_conv_desc(s.k, ctx));                                              // 3
  parts.push_back(make_conv_bwd_filter_op(parts[3], parts[0], parts[1], parts[2], ctx));  // 4
  return finish_plan(handle, std::move(parts), {4}, options, ctx, out, why);
}

bool build_bwd_data(cudnnHandle_t handle, const ConvShape& s, const ConvOptions& options,
                    const std::string& ctx, Plan* out, std::string* why) {
  const LayerDims d = layer_dims(s);
  std::vector<BackendDesc> parts;
  parts.push_back(make_tensor(kUidW, d.w, kParam, false, ctx));                         // 0
  parts.push_back(make_tensor(kUidDY, d.y, kAct, false, ctx));                          // 1
  parts.push_back(make_tensor(kUidDX, d.x, kAct, false, ctx));                          // 2
  parts.push_back(make_conv_desc(s.k, ctx));                                            // 3
  parts.push_back(make_conv_bwd_data_op(parts[3], parts[0], parts[1], parts[2], ctx));  // 4
  return finish_plan(handle, std::move(parts), {4}, options, ctx, out, why);
}


std::string options_text(const ConvOptions& o) {
  return std::string(o.deterministic ? "deterministic" : "nondeterministic allowed") + ", " +
         (o.math == ConvMath::Fp32 ? "fp32" : "tf32 allowed");
}

void check_pointer(const void* p, size_t alignment, const char* name, const std::string& ctx) {
  if (!p) throw_internal(ctx + ": " + name + " is null");
  if (reinterpret_cast<uintptr_t>(p) % alignment != 0)
    throw_internal(ctx + ": " + name + " is not " + std::to_string(alignment) +
                   "-byte aligned (the alignment its cuDNN tensor was declared with)");
}

// Runs `plan` on the pointers of its tensors; the variant pack lives for this call only.
void execute(cudnnHandle_t handle, const Plan& plan, const std::vector<int64_t>& uids,
             const std::vector<void*>& ptrs, void* workspace, const std::string& ctx) {
  BackendDesc pack(CUDNN_BACKEND_VARIANT_PACK_DESCRIPTOR, ctx);
  CONVNCF_SET_ATTR(pack, CUDNN_ATTR_VARIANT_PACK_UNIQUE_IDS, CUDNN_TYPE_INT64,
                   static_cast<int64_t>(uids.size()), uids.data(), ctx);
  CONVNCF_SET_ATTR(pack, CUDNN_ATTR_VARIANT_PACK_DATA_POINTERS, CUDNN_TYPE_VOID_PTR,
                   static_cast<int64_t>(ptrs.size()), ptrs.data(), ctx);
  CONVNCF_SET_ATTR(pack, CUDNN_ATTR_VARIANT_PACK_WORKSPACE, CUDNN_TYPE_VOID_PTR, 1, &workspace,
                   ctx);
  CONVNCF_FINALIZE(pack, ctx);
  CONVNCF_CUDNN_CTX(cudnnBackendExecute(handle, plan.plan.get(), pack.get()), ctx);
}

}  // namespace

// ---------------------------------------------------------------------------------------------
CudnnContext::CudnnContext(cudaStream_t stream) {
  CUDNN_CHECK(cudnnCreate(&m_handle));
  const cudnnStatus_t st = cudnnSetStream(m_handle, stream);
  if (st != CUDNN_STATUS_SUCCESS) {
    cudnnDestroy(m_handle);
    m_handle = nullptr;
    detail::throw_gpu_error("cuDNN", "cudnnSetStream(handle, stream)", __FILE__, __LINE__,
                            status_text(st));
  }
}

CudnnContext::~CudnnContext() {
  if (!m_handle) return;
  const cudnnStatus_t st = cudnnDestroy(m_handle);
  if (st != CUDNN_STATUS_SUCCESS)
    std::fprintf(stderr, "cuDNN error: cudnnDestroy: %s\n", status_text(st).c_str());
}

// ---------------------------------------------------------------------------------------------
struct ConvLayerPlans::Impl {
  ConvShape shape;
  ConvOptions options;
  cudnnHandle_t handle = nullptr;
  std::string shape_str;
  bool fused = false;
  std::string fused_why;  // why the fused graph is not used (empty when it is)
  Plan fwd, bwd_filter, bwd_data;
  size_t workspace = 0;

  std::string ctx(const char* step) const { return shape_str + ", " + step; }

  // Throws unless `stream` is the handle's stream: cuDNN runs on the handle's stream and the
  // aux kernels on `stream`, so a mismatch would race.
  void check_stream(cudaStream_t stream, const std::string& c) const {
    cudaStream_t hs = nullptr;
    CONVNCF_CUDNN_CTX(cudnnGetStream(handle, &hs), c);
    if (hs != stream)
      throw_internal(c + ": the stream argument is not the cuDNN handle's stream (CudnnContext)");
  }
  void check_workspace(const void* ws, const std::string& c) const {
    if (workspace > 0 && !ws)
      throw_internal(c + ": workspace is null but " + std::to_string(workspace) +
                     " bytes are needed");
  }
};

ConvLayerPlans::ConvLayerPlans(cudnnHandle_t handle, const ConvShape& shape,
                               const ConvOptions& options)
    : m_impl(std::make_unique<Impl>()) {
  Impl& m = *m_impl;
  m.shape = shape;
  m.options = options;
  m.handle = handle;
  m.shape_str = conv_shape_text(shape);
  check_conv_shape(shape, handle);

  std::string why;
  if (options.allow_fused) {
    // Anything cuDNN refuses while building the fused graph only means "not fused".
    try {
      const std::string c = m.ctx("forward fused graph (conv + bias + ReLU)");
      m.fused = build_fused_forward(handle, shape, options, c, &m.fwd, &why);
      if (!m.fused) m.fused_why = why;
    } catch (const Error& e) {
      m.fused = false;
      m.fused_why = e.what();
    }
  } else {
    m.fused_why = "disabled by ConvOptions::allow_fused";
  }
  if (!m.fused) {
    m.fwd = Plan();
    if (!build_plain_forward(handle, shape, options, m.ctx("forward graph"), &m.fwd, &why))
      throw_internal("ConvLayerPlans: no cuDNN engine for the forward convolution of " +
                     m.shape_str + " (" + options_text(options) + "): " + why);
  }
  if (!build_bwd_filter(handle, shape, options, m.ctx("backward-filter graph"), &m.bwd_filter,
                        &why))
    throw_internal("ConvLayerPlans: no cuDNN engine for the backward-filter convolution of " +
                   m.shape_str + " (" + options_text(options) + "): " + why);
  if (!build_bwd_data(handle, shape, options, m.ctx("backward-data graph"), &m.bwd_data, &why))
    throw_internal("ConvLayerPlans: no cuDNN engine for the backward-data convolution of " +
                   m.shape_str + " (" + options_text(options) + "): " + why);
  m.workspace = static_cast<size_t>(
      std::max({m.fwd.workspace, m.bwd_filter.workspace, m.bwd_data.workspace}));
}

ConvLayerPlans::~ConvLayerPlans() = default;
ConvLayerPlans::ConvLayerPlans(ConvLayerPlans&&) noexcept = default;
ConvLayerPlans& ConvLayerPlans::operator=(ConvLayerPlans&&) noexcept = default;

const ConvShape& ConvLayerPlans::shape() const { return m_impl->shape; }
size_t ConvLayerPlans::workspace_bytes() const { return m_impl->workspace; }

std::string ConvLayerPlans::describe() const {
  const Impl& m = *m_impl;
  std::ostringstream s;
  s << m.shape_str << ", " << options_text(m.options) << ": forward ";
  if (m.fused) {
    s << "fused conv+bias+ReLU " << m.fwd.text();
  } else {
    std::string why = m.fused_why;
    if (why.size() > 160) why = why.substr(0, 157) + "...";
    s << "conv " << m.fwd.text() << " + bias_relu_fwd (not fused: " << why << ")";
  }
  s << "; backward-filter " << m.bwd_filter.text() << "; backward-data " << m.bwd_data.text()
    << "; workspace " << m.workspace << " B";
  return s.str();
}

void ConvLayerPlans::forward(const float* X, const float* W, const float* b, float* Y,
                             void* workspace, cudaStream_t stream) const {
  const Impl& m = *m_impl;
  const std::string c = m.ctx(m.fused ? "forward (fused)" : "forward");
  check_pointer(X, kConvActivationAlignment, "X", c);
  check_pointer(W, kConvParamAlignment, "W", c);
  check_pointer(b, kConvParamAlignment, "b", c);
  check_pointer(Y, kConvActivationAlignment, "Y", c);
  m.check_workspace(workspace, c);
  m.check_stream(stream, c);
  if (m.fused) {
    execute(m.handle, m.fwd, {kUidX, kUidW, kUidB, kUidY},
            {const_cast<float*>(X), const_cast<float*>(W), const_cast<float*>(b), Y}, workspace, c);
  } else {
    execute(m.handle, m.fwd, {kUidX, kUidW, kUidY},
            {const_cast<float*>(X), const_cast<float*>(W), Y}, workspace, c);
    const int64_t hw = static_cast<int64_t>(m.shape.out_size()) * m.shape.out_size();
    bias_relu_fwd(m.shape.n, m.shape.cout, hw, Y, b, stream);
  }
}

void ConvLayerPlans::backward(const float* X, const float* W, const float* Y, float* dY, float* dW,
                              float* db, float* dX, void* workspace, cudaStream_t stream) const {
  const Impl& m = *m_impl;
  const std::string c = m.ctx("backward");
  check_pointer(X, kConvActivationAlignment, "X", c);
  check_pointer(W, kConvParamAlignment, "W", c);
  check_pointer(Y, kConvActivationAlignment, "Y", c);
  check_pointer(dY, kConvActivationAlignment, "dY", c);
  check_pointer(dW, kConvParamAlignment, "dW", c);
  check_pointer(db, kConvParamAlignment, "db", c);
  if (dX) check_pointer(dX, kConvActivationAlignment, "dX", c);
  m.check_workspace(workspace, c);
  m.check_stream(stream, c);
  const int64_t hw = static_cast<int64_t>(m.shape.out_size()) * m.shape.out_size();
  relu_bwd(m.shape.n * m.shape.cout * hw, Y, dY, stream);  // dY becomes dZ
  bias_grad(m.shape.n, m.shape.cout, hw, dY, db, stream);
  execute(m.handle, m.bwd_filter, {kUidX, kUidDY, kUidDW}, {const_cast<float*>(X), dY, dW},
          workspace, m.ctx("backward filter"));
  if (dX)
    execute(m.handle, m.bwd_data, {kUidW, kUidDY, kUidDX}, {const_cast<float*>(W), dY, dX},
            workspace, m.ctx("backward data"));
}

std::string cudnn_version() {
  const size_t v = cudnnGetVersion();
  size_t major, minor, patch;
  if (v >= 90000) {  // cuDNN 9: major * 10000 + minor * 100 + patch
    major = v / 10000;
    minor = (v / 100) % 100;
    patch = v % 100;
  } else {  // cuDNN 8 and older: major * 1000 + minor * 100 + patch
    major = v / 1000;
    minor = (v / 100) % 10;
    patch = v % 100;
  }
  return std::to_string(major) + "." + std::to_string(minor) + "." + std::to_string(patch);
}

}  // namespace convncf
