// model_io.hpp: the model file (model.bin in a run folder).
//
// Little-endian binary, documented in README.md:
//   magic "CONVNCF\0" (8 bytes), u32 version (1), u32 model (0 ConvNCF, 1 BPR, 2 Pop),
//   i32 E, i32 n_layers, i32 channels[n_layers + 1], i32 kernels[n_layers],
//   i32 n_users, i32 n_items, u64 n_net,
//   f32 P[n_users * E], f32 Q[n_items * E], f32 net[n_net],
//   id maps: for users then items, each raw id as u32 length + bytes,
//   u64 FNV-1a hash of every byte before it.
// Written to a temporary file in the same folder, flushed, then renamed over the target.
#pragma once
#include <string>
#include <vector>

#include "convncf/dataset.hpp"
#include "convncf/model.hpp"
#include "convncf/util.hpp"

namespace convncf {

struct ModelFile {
  Params<float> params;
  std::vector<int> channels, kernels;  // empty unless ConvNCF
  std::vector<std::string> user_ids, item_ids;
};

void save_model(const std::string& path, const ModelFile& m);
// Throws Error(kExitNoInput) when missing, Error(kExitData) when corrupt, truncated or of
// another version.
ModelFile load_model(const std::string& path);

// The model's parameters re-indexed to the id maps of `in`, by raw id (so a model can score
// another split or format of its data). Throws kExitData naming the first user or item of the data
// the model does not know; `name` is the model file in messages.
Params<float> params_for_data(const ModelFile& m, const Interactions& in, const std::string& name);

// The same format in memory (checkpoints embed it); `name` is used in messages.
std::string model_bytes(const ModelFile& m);
ModelFile model_from_bytes(const std::string& bytes, const std::string& name);

// Writes `bytes` to path.tmp, flushes and fsyncs it, renames it over `path`, fsyncs the folder:
// a crash at any moment leaves either the old file or the new one. Throws Error(kExitIo).
void write_file_atomic(const std::string& path, const std::string& bytes);
// The same for a file that must not exist yet: Error(kExitUsage) when one does, and never one
// replaced, even by another process writing the same name at the same time.
void write_file_new(const std::string& path, const std::string& bytes);
// The part of a file image between its header and its checksum: checks the 8-byte magic, the
// trailing u64 FNV-1a of everything before it, and the u32 version after the magic; throws
// Error(kExitData) naming `path` and `what` ("model file", "checkpoint"). Offset 12 starts the
// payload in the returned string.
std::string checked_body(const std::string& bytes, const char (&magic)[8], uint32_t version,
                         const std::string& path, const char* what);
// Whole file; Error(kExitNoInput) naming `what` when it cannot be opened.
std::string read_file_bytes(const std::string& path, const char* what);


}  // namespace convncf
