// drv_absl.cpp - workload W on absl::flat_hash_map (Debian's Abseil 20220623).
// String keys are std::string_view into the shared key buffer (no copy).
#include <absl/container/flat_hash_map.h>
#include <string_view>

#define IMPL_NAME "absl"
typedef absl::flat_hash_map<uint64_t, uint64_t> u64map;
typedef absl::flat_hash_map<std::string_view, uint64_t> strmap;
#include "peer_ops.hpp"
#include "harness.h"
