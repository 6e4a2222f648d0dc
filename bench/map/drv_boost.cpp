// drv_boost.cpp - workload W on boost::unordered_flat_map (Boost 1.81).
// String keys are std::string_view into the shared key buffer (no copy),
// as Go's map[string] and gomap's gm_type_str hold string headers.
#include <boost/unordered/unordered_flat_map.hpp>
#include <string_view>

#define IMPL_NAME "boost"
typedef boost::unordered_flat_map<uint64_t, uint64_t> u64map;
typedef boost::unordered_flat_map<std::string_view, uint64_t> strmap;
#include "peer_ops.hpp"
#include "harness.h"
