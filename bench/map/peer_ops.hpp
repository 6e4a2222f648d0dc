// peer_ops.hpp - the harness operations for any std::unordered_map-like
// flat map (boost::unordered_flat_map, absl::flat_hash_map).  Each call is
// what a user writes: m[k] = v, find, erase(k), a range-for.
#include <cstddef>
#include <cstdint>
#include <string_view>

static u64map *u64_new(void) { return new u64map(); }
static void u64_free(u64map *m) { delete m; }
static inline void u64_insert(u64map *m, uint64_t k, uint64_t v) { (*m)[k] = v; }
static inline bool u64_find(u64map *m, uint64_t k, uint64_t *v)
{
    auto it = m->find(k);
    if (it == m->end()) return false;
    *v = it->second;
    return true;
}
static inline void u64_erase(u64map *m, uint64_t k) { m->erase(k); }
static inline uint64_t u64_sum(u64map *m, size_t *count)
{
    uint64_t s = 0; size_t c = 0;
    for (const auto &kv : *m) { s += kv.second; c++; }
    *count = c;
    return s;
}
static inline size_t u64_len(u64map *m) { return m->size(); }
static inline bool u64_any(u64map *m, uint64_t *k)
{
    auto it = m->begin();
    if (it == m->end()) return false;
    *k = it->first;
    return true;
}
static inline void u64_clear(u64map *m) { m->clear(); }

static strmap *str_new(void) { return new strmap(); }
static void str_free(strmap *m) { delete m; }
static inline void str_insert(strmap *m, const char *k, uint64_t v) { (*m)[std::string_view(k, 16)] = v; }
static inline bool str_find(strmap *m, const char *k, uint64_t *v)
{
    auto it = m->find(std::string_view(k, 16));
    if (it == m->end()) return false;
    *v = it->second;
    return true;
}
static inline void str_erase(strmap *m, const char *k) { m->erase(std::string_view(k, 16)); }
static inline uint64_t str_sum(strmap *m, size_t *count)
{
    uint64_t s = 0; size_t c = 0;
    for (const auto &kv : *m) { s += kv.second; c++; }
    *count = c;
    return s;
}
static inline size_t str_len(strmap *m) { return m->size(); }
