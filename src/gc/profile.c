/* profile.c - heap profiling: sampled allocations, their stacks, and pprof's
 * profile.proto (Go's runtime.MemProfileRate, runtime/mprof.go and
 * pprof.WriteHeapProfile).
 *
 * SAMPLING.  On average one allocation per `rate` bytes is sampled
 * (MemProfileRate: default 512 KiB; GMDEBUG=memprofilerate=N; 1 samples
 * every allocation; 0 none).  Each thread counts down the bytes to its next
 * sample (gc_prof_left, profile.h); the gap is drawn from an exponential
 * distribution of mean `rate`, as Go draws it, so that the chance an object
 * is sampled is 1 - exp(-size/rate) whatever the allocation pattern: the
 * writer divides by that chance to estimate the true counts (Go's
 * scaleHeapSample).  The fast path is one subtraction and a branch.
 *
 * RECORDS.  A sampled allocation captures its stack (backtrace(3), the
 * allocator's own frames dropped when written) and adds to its bucket: one
 * per (stack, object size), holding allocs and frees (objects and bytes,
 * unscaled).  Buckets are never freed, like Go's.  The object itself gets a
 * record {span, address, bucket} in a chained hash table keyed by span.
 *
 * FREES.  Sweeping calls gc_prof_sweep(s) for each span while any record is
 * live: the records of s whose objects are unmarked are being freed -- their
 * buckets count a free and the records go.  Invariant (checked by
 * tests through gm_heap_profile_read): for every bucket,
 * allocs - frees == the records pointing at it, and every record's object is
 * allocated in its span.  inuse = allocs - frees; Go reports inuse as of the
 * last completed cycle, gomap as of the last sweep of each span (after
 * gm_gc() returns, every span is swept: the same thing).
 *
 * SYMBOLS.  Written profiles carry function names (pprof's Function table),
 * so pprof needs neither the binaries nor addr2line: each program counter is
 * looked up in the ELF symbol table (.symtab, else .dynsym) of the module
 * that holds it (dl_iterate_phdr), which names static functions too; dladdr
 * is the fallback; an address nothing names is written as module+offset.
 *
 * LOCKS.  prof_mu guards the buckets and the record table; it is a leaf
 * (nothing else is taken under it; malloc is called under it).  write_mu
 * serialises writers and the symbol cache.  A forked child re-initialises
 * prof_mu (the thread that held it does not exist there).
 */
#include "gc/profile.h"

#include <dlfcn.h>
#include <elf.h>
#include <errno.h>
#include <execinfo.h>
#include <fcntl.h>
#include <limits.h>
#include <link.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#define PROF_DEFAULT_RATE (512 * 1024)
#define PROF_MAX_DEPTH 64          /* frames kept per stack (Go: 32) */
#define PROF_NBUCKET_HASH 4096     /* stack-bucket hash chains */

_Thread_local int64_t gc_prof_left __attribute__((tls_model("initial-exec")));
static _Thread_local bool prof_started;   /* this thread's countdown was drawn */
_Atomic size_t gc_prof_live_a;

static _Atomic int prof_rate_a = PROF_DEFAULT_RATE;
static pthread_once_t prof_once = PTHREAD_ONCE_INIT;
static pthread_mutex_t prof_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_mutex_t write_mu = PTHREAD_MUTEX_INITIALIZER;

typedef struct prof_bucket {
    struct prof_bucket *next;      /* hash chain */
    struct prof_bucket *all;       /* every bucket, in creation order */
    uint64_t hash;
    size_t size;                   /* object size */
    uint64_t allocs, frees, alloc_bytes, free_bytes;       /* since start */
    uint64_t allocs0, alloc_bytes0;                         /* at the last reset */
    int depth;
    uintptr_t stk[];
} prof_bucket;

typedef struct prof_rec {
    struct prof_rec *next;
    const gc_span *span;
    uintptr_t addr;
    prof_bucket *b;
} prof_rec;

static prof_bucket *bhash[PROF_NBUCKET_HASH];

/* The buckets are malloc'd, never on the GC heap: the hash is not a root. */
void gc_prof_exclude_globals(void) { gc_globals_exclude(bhash, sizeof bhash); }
static prof_bucket *ball;
static size_t nbuckets;
static prof_rec **rtab;            /* records, chained by span */
static size_t rtab_cap, nrecs;

/* ---- the sampling rate ---------------------------------------------------- */

static void child_after_fork(void)
{
    pthread_mutex_init(&prof_mu, NULL);
    pthread_mutex_init(&write_mu, NULL);
}

/* GMDEBUG=memprofilerate=N (debug.c leaves this name to us). */
static void prof_init(void)
{
    pthread_atfork(NULL, NULL, child_after_fork);
    const char *d = getenv("GMDEBUG");
    for (const char *p = d; p && *p;) {
        const char *c = strchr(p, ',');
        size_t n = c ? (size_t)(c - p) : strlen(p);
        static const char key[] = "memprofilerate=";
        if (n >= sizeof key - 1 && memcmp(p, key, sizeof key - 1) == 0) {
            char buf[32];
            size_t vl = n - (sizeof key - 1);
            char *end = buf;
            long long v = -1;
            if (vl > 0 && vl < sizeof buf) {
                memcpy(buf, p + sizeof key - 1, vl);
                buf[vl] = 0;
                errno = 0;
                v = strtoll(buf, &end, 10);
                if (errno || *end) v = -1;
            }
            if (v < 0 || v > INT_MAX)
                gm_errorf("GMDEBUG: bad value \"%.*s\" for memprofilerate (want an integer in 0..%d); ignored",
                          (int)vl, p + sizeof key - 1, INT_MAX);
            else
                atomic_store(&prof_rate_a, (int)v);
        }
        p = c ? c + 1 : NULL;
    }
}

static uint64_t prof_rand(void)
{
    static _Thread_local uint64_t x;
    if (x == 0) x = gm_rand_seed64() | 1;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return x;
}

/* Bytes until the next sample: exponential with mean rate (0 for rate 1,
 * never for rate 0). */
static int64_t next_sample(void)
{
    int rate = atomic_load_explicit(&prof_rate_a, memory_order_relaxed);
    if (rate <= 0) return INT64_MAX;
    if (rate == 1) return 0;
    double u = (double)((prof_rand() >> 11) + 1) / 9007199254740993.0;   /* (0, 1] */
    double v = -log(u) * rate;
    return v > 1e15 ? (int64_t)1e15 : (int64_t)v;
}

int gm_mem_profile_rate(int rate)
{
    pthread_once(&prof_once, prof_init);
    int old = atomic_load(&prof_rate_a);
    if (rate >= 0) {
        atomic_store(&prof_rate_a, rate);
        gc_prof_left = next_sample();   /* this thread at once; others at their next sample */
        prof_started = true;
    }
    return old;
}

/* ---- recording ------------------------------------------------------------ */

static uint64_t stack_hash(const uintptr_t *stk, int depth, size_t size)
{
    uint64_t h = 0x9e3779b97f4a7c15ull ^ size;
    for (int i = 0; i < depth; i++) h = (h ^ stk[i]) * 0x100000001b3ull + (h >> 29);
    return h;
}

static prof_bucket *bucket_for(const uintptr_t *stk, int depth, size_t size)
{
    uint64_t h = stack_hash(stk, depth, size);
    prof_bucket **chain = &bhash[h % PROF_NBUCKET_HASH];
    for (prof_bucket *b = *chain; b; b = b->next)
        if (b->hash == h && b->size == size && b->depth == depth &&
            memcmp(b->stk, stk, (size_t)depth * sizeof *stk) == 0)
            return b;
    prof_bucket *b = calloc(1, sizeof *b + (size_t)depth * sizeof *stk);
    if (!b) return NULL;
    b->hash = h;
    b->size = size;
    b->depth = depth;
    memcpy(b->stk, stk, (size_t)depth * sizeof *stk);
    b->next = *chain;
    *chain = b;
    b->all = ball;
    ball = b;
    nbuckets++;
    return b;
}

static size_t span_slot(const gc_span *s, size_t cap)
{
    uint64_t x = (uint64_t)(uintptr_t)s;
    x ^= x >> 17;
    x *= 0xff51afd7ed558ccdull;
    return (size_t)(x ^ (x >> 31)) & (cap - 1);
}

static bool rtab_grow(void)
{
    size_t cap = rtab_cap ? rtab_cap * 2 : 1024;
    prof_rec **t = calloc(cap, sizeof *t);
    if (!t) return false;
    for (size_t i = 0; i < rtab_cap; i++)
        for (prof_rec *r = rtab[i], *n; r; r = n) {
            n = r->next;
            size_t j = span_slot(r->span, cap);
            r->next = t[j];
            t[j] = r;
        }
    free(rtab);
    rtab = t;
    rtab_cap = cap;
    return true;
}

void gc_prof_sample(gc_span *s, uintptr_t p, size_t size)
{
    pthread_once(&prof_once, prof_init);
    int64_t next = next_sample();
    if (!prof_started) {       /* a thread's first countdown starts here */
        prof_started = true;
        gc_prof_left = next;
        if (next > 0) return;
    }
    gc_prof_left = next;
    if (atomic_load_explicit(&prof_rate_a, memory_order_relaxed) <= 0) return;
    void *frames[PROF_MAX_DEPTH];
    int depth = backtrace(frames, PROF_MAX_DEPTH);
    uintptr_t stk[PROF_MAX_DEPTH];
    int n = 0;
    for (int i = 1; i < depth; i++) stk[n++] = (uintptr_t)frames[i];   /* not this function */
    pthread_mutex_lock(&prof_mu);
    prof_bucket *b = bucket_for(stk, n, size);
    prof_rec *r = b ? malloc(sizeof *r) : NULL;
    if (r && nrecs + 1 > rtab_cap * 2 && !rtab_grow() && rtab_cap == 0) {
        free(r);
        r = NULL;
    }
    if (r) {
        b->allocs++;
        b->alloc_bytes += size;
        r->span = s;
        r->addr = p;
        r->b = b;
        size_t j = span_slot(s, rtab_cap);
        r->next = rtab[j];
        rtab[j] = r;
        nrecs++;
        atomic_fetch_add_explicit(&gc_prof_live_a, 1, memory_order_relaxed);
    }
    pthread_mutex_unlock(&prof_mu);
}

void gc_prof_sweep(gc_span *s)
{
    pthread_mutex_lock(&prof_mu);
    if (rtab_cap) {
        for (prof_rec **pp = &rtab[span_slot(s, rtab_cap)], *r; (r = *pp) != NULL;) {
            if (r->span != s || gc_bit(s->mark_bits, gc_obj_index(s, r->addr))) {
                pp = &r->next;
                continue;
            }
            r->b->frees++;
            r->b->free_bytes += r->b->size;
            *pp = r->next;
            free(r);
            nrecs--;
            atomic_fetch_sub_explicit(&gc_prof_live_a, 1, memory_order_relaxed);
        }
    }
    pthread_mutex_unlock(&prof_mu);
}

void gm_heap_profile_reset(void)
{
    pthread_mutex_lock(&prof_mu);
    for (prof_bucket *b = ball; b; b = b->all) {
        b->allocs0 = b->allocs;
        b->alloc_bytes0 = b->alloc_bytes;
    }
    pthread_mutex_unlock(&prof_mu);
}

void gm_heap_profile_read(gm_heap_profile_totals *out)
{
    memset(out, 0, sizeof *out);
    pthread_mutex_lock(&prof_mu);
    for (prof_bucket *b = ball; b; b = b->all) {
        out->alloc_objects += b->allocs - b->allocs0;
        out->alloc_bytes += b->alloc_bytes - b->alloc_bytes0;
        out->inuse_objects += b->allocs - b->frees;
        out->inuse_bytes += b->alloc_bytes - b->free_bytes;
    }
    out->records = nrecs;
    out->buckets = nbuckets;
    pthread_mutex_unlock(&prof_mu);
    out->rate = atomic_load(&prof_rate_a);
}

/* ---- symbols -------------------------------------------------------------- */

typedef struct sym { uintptr_t lo, hi; const char *name; } sym;
typedef struct module {
    uintptr_t bias, lo, hi;        /* load bias; [lo, hi) the executable segments */
    char path[PATH_MAX];
    sym *syms;
    size_t nsyms;
    char *strs;                    /* the names' storage */
    bool loaded;
    uint64_t id;                   /* the Mapping id, 0 if unused */
} module;

static module *mods;
static size_t nmods;

static int phdr_cb(struct dl_phdr_info *info, size_t sz, void *arg)
{
    (void)sz;
    (void)arg;
    uintptr_t lo = UINTPTR_MAX, hi = 0;
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type != PT_LOAD || !(ph->p_flags & PF_X)) continue;
        uintptr_t a = info->dlpi_addr + ph->p_vaddr;
        if (a < lo) lo = a;
        if (a + ph->p_memsz > hi) hi = a + ph->p_memsz;
    }
    if (hi == 0) return 0;
    module *m2 = realloc(mods, (nmods + 1) * sizeof *mods);
    if (!m2) return 1;
    mods = m2;
    module *m = &mods[nmods++];
    memset(m, 0, sizeof *m);
    m->bias = info->dlpi_addr;
    m->lo = lo;
    m->hi = hi;
    const char *name = info->dlpi_name;
    if (name == NULL || name[0] == 0) {
        ssize_t l = readlink("/proc/self/exe", m->path, sizeof m->path - 1);
        m->path[l > 0 ? l : 0] = 0;
    } else {
        snprintf(m->path, sizeof m->path, "%s", name);
    }
    return 0;
}

static int sym_cmp(const void *a, const void *b)
{
    const sym *x = a, *y = b;
    return x->lo < y->lo ? -1 : x->lo > y->lo;
}

/* Reads the function symbols of m's file (.symtab, else .dynsym). */
static void load_syms(module *m)
{
    m->loaded = true;
    int fd = open(m->path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return;
    struct stat st;
    if (fstat(fd, &st) != 0 || (size_t)st.st_size < sizeof(ElfW(Ehdr))) {
        close(fd);
        return;
    }
    size_t len = (size_t)st.st_size;
    uint8_t *f = mmap(NULL, len, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (f == MAP_FAILED) return;
    const ElfW(Ehdr) *eh = (const void *)f;
    if (memcmp(eh->e_ident, ELFMAG, SELFMAG) != 0 || eh->e_shoff == 0 ||
        eh->e_shoff + (size_t)eh->e_shnum * sizeof(ElfW(Shdr)) > len)
        goto out;
    const ElfW(Shdr) *sh = (const void *)(f + eh->e_shoff);
    const ElfW(Shdr) *tab = NULL;
    for (int pass = 0; pass < 2 && !tab; pass++)
        for (int i = 0; i < eh->e_shnum; i++)
            if (sh[i].sh_type == (pass ? SHT_DYNSYM : SHT_SYMTAB)) tab = &sh[i];
    if (!tab || tab->sh_link >= eh->e_shnum) goto out;
    const ElfW(Shdr) *strsh = &sh[tab->sh_link];
    if (tab->sh_offset + tab->sh_size > len || strsh->sh_offset + strsh->sh_size > len) goto out;
    const ElfW(Sym) *syms = (const void *)(f + tab->sh_offset);
    size_t n = tab->sh_size / sizeof(ElfW(Sym)), k = 0, bytes = 0;
    for (size_t i = 0; i < n; i++)
        if (ELF64_ST_TYPE(syms[i].st_info) == STT_FUNC && syms[i].st_value && syms[i].st_name < strsh->sh_size)
            k++, bytes += strnlen((const char *)f + strsh->sh_offset + syms[i].st_name,
                                  strsh->sh_size - syms[i].st_name) + 1;
    m->syms = malloc(k * sizeof *m->syms);
    m->strs = malloc(bytes ? bytes : 1);
    if (!m->syms || !m->strs) goto out;
    char *sp = m->strs;
    for (size_t i = 0; i < n; i++) {
        const ElfW(Sym) *y = &syms[i];
        if (ELF64_ST_TYPE(y->st_info) != STT_FUNC || !y->st_value || y->st_name >= strsh->sh_size) continue;
        const char *nm = (const char *)f + strsh->sh_offset + y->st_name;
        size_t l = strnlen(nm, strsh->sh_size - y->st_name);
        memcpy(sp, nm, l);
        sp[l] = 0;
        uintptr_t lo = m->bias + y->st_value;
        m->syms[m->nsyms++] = (sym){ lo, lo + (y->st_size ? y->st_size : 1), sp };
        sp += l + 1;
    }
    qsort(m->syms, m->nsyms, sizeof *m->syms, sym_cmp);
out:
    munmap(f, len);
}

static module *module_of(uintptr_t pc)
{
    for (size_t i = 0; i < nmods; i++)
        if (pc >= mods[i].lo && pc < mods[i].hi) return &mods[i];
    return NULL;
}

/* The function containing pc: a name in m's symbols, else dladdr's, else
 * module+offset (written into buf). */
static const char *symbolize(module *m, uintptr_t pc, char *buf, size_t n)
{
    if (m) {
        if (!m->loaded) load_syms(m);
        size_t lo = 0, hi = m->nsyms;
        while (lo < hi) {              /* the last symbol starting at or below pc */
            size_t mid = (lo + hi) / 2;
            if (m->syms[mid].lo <= pc) lo = mid + 1;
            else hi = mid;
        }
        for (size_t i = lo; i-- > 0 && lo - i < 8;)   /* nested sizes: look back a few */
            if (pc < m->syms[i].hi) return m->syms[i].name;
    }
    Dl_info di;
    if (dladdr((void *)pc, &di) && di.dli_sname) return di.dli_sname;
    if (m) {
        const char *base = strrchr(m->path, '/');
        snprintf(buf, n, "%.40s+0x%lx", base ? base + 1 : m->path, (unsigned long)(pc - m->bias));
    } else {
        snprintf(buf, n, "0x%lx", (unsigned long)pc);
    }
    return buf;
}

/* The allocator's own frames, dropped from the top of every stack: the
 * profile starts at the caller of gm_new & co., as Go's starts above
 * mallocgc. */
static bool allocator_frame(const char *name)
{
    static const char *const own[] = { "gc_prof_sample", "gc_prof_account", "mallocgc", "mallocgc_rt",
                                       "alloc_large", "alloc_failed", "new_typed", "new_typed_slow",
                                       "alloc_noscan_slow", "gm_new", "gm_new_array",
                                       "gm_alloc_noscan", "gm_alloc_conservative", "gm_try_new",
                                       "gm_try_new_array", "gm_try_alloc_noscan", "gm_try_alloc_conservative" };
    size_t len = strcspn(name, ".");      /* a compiler's clone: mallocgc.constprop.0 */
    for (size_t i = 0; i < sizeof own / sizeof own[0]; i++)
        if (strlen(own[i]) == len && strncmp(name, own[i], len) == 0) return true;
    return false;
}

/* ---- profile.proto ---------------------------------------------------------
 * A minimal protocol-buffers writer: varints, length-delimited fields, and
 * packed repeated varints, into a growable buffer.  Sub-messages are built in
 * a buffer of their own and appended with their length. */

typedef struct pbuf { uint8_t *p; size_t n, cap; bool oom; } pbuf;

static void pb_bytes(pbuf *b, const void *src, size_t n)
{
    if (b->oom) return;
    if (b->n + n > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->n + n) cap *= 2;
        uint8_t *p = realloc(b->p, cap);
        if (!p) {
            b->oom = true;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->n, src, n);
    b->n += n;
}

static void pb_varint(pbuf *b, uint64_t v)
{
    uint8_t t[10];
    size_t n = 0;
    do {
        t[n] = (uint8_t)(v & 0x7f);
        v >>= 7;
        if (v) t[n] |= 0x80;
        n++;
    } while (v);
    pb_bytes(b, t, n);
}

static void pb_key(pbuf *b, unsigned field, unsigned wire) { pb_varint(b, (uint64_t)field << 3 | wire); }
static void pb_u64(pbuf *b, unsigned field, uint64_t v)
{
    pb_key(b, field, 0);
    pb_varint(b, v);
}
static void pb_len(pbuf *b, unsigned field, const void *p, size_t n)
{
    pb_key(b, field, 2);
    pb_varint(b, n);
    pb_bytes(b, p, n);
}
static void pb_msg(pbuf *b, unsigned field, pbuf *sub)
{
    pb_len(b, field, sub->p, sub->n);
    b->oom |= sub->oom;
    sub->n = 0;
}
static void pb_packed(pbuf *b, unsigned field, const uint64_t *v, size_t n, pbuf *tmp)
{
    for (size_t i = 0; i < n; i++) pb_varint(tmp, v[i]);
    pb_msg(b, field, tmp);
}

/* The string table: index 0 is "". */
typedef struct strtab { const char **s; size_t n, cap; } strtab;
static uint64_t str_id(strtab *t, const char *s)
{
    for (size_t i = 0; i < t->n; i++)
        if (strcmp(t->s[i], s) == 0) return i;
    if (t->n == t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 64;
        const char **p = realloc(t->s, cap * sizeof *p);
        if (!p) return 0;
        t->s = p;
        t->cap = cap;
    }
    t->s[t->n] = s;
    return t->n++;
}

typedef struct fn_ent { const char *name; uint64_t id; } fn_ent;
typedef struct loc_ent { uintptr_t pc; uint64_t id; const char *name; bool dup; } loc_ent;

/* Go's estimate of the true counts behind a sampled (count, bytes) pair: each
 * object of size s was sampled with probability 1 - exp(-s/rate). */
static void scale(uint64_t count, uint64_t bytes, int rate, int64_t *oc, int64_t *ob)
{
    if (count == 0 || bytes == 0) {
        *oc = *ob = 0;
        return;
    }
    if (rate <= 1) {
        *oc = (int64_t)count;
        *ob = (int64_t)bytes;
        return;
    }
    double avg = (double)bytes / (double)count;
    double f = 1 / (1 - exp(-avg / rate));
    *oc = (int64_t)((double)count * f);
    *ob = (int64_t)((double)bytes * f);
}

/* A snapshot of one bucket, taken under prof_mu. */
typedef struct snap { uint64_t ac, ab, ic, ib; size_t size; int depth; const uintptr_t *stk; } snap;

static bool encode(pbuf *out, const snap *sn, size_t nsn, int rate)
{
    strtab st = { 0 };
    str_id(&st, "");
    pbuf tmp = { 0 }, sub = { 0 }, sub2 = { 0 };
    bool ok = false;
    /* sample types, Go's order; the period: one sample per `rate` bytes */
    static const char *const types[4][2] = { { "alloc_objects", "count" }, { "alloc_space", "bytes" },
                                             { "inuse_objects", "count" }, { "inuse_space", "bytes" } };
    for (int i = 0; i < 4; i++) {
        pb_u64(&sub, 1, str_id(&st, types[i][0]));
        pb_u64(&sub, 2, str_id(&st, types[i][1]));
        pb_msg(out, 1, &sub);
    }
    size_t maxloc = 0;
    for (size_t i = 0; i < nsn; i++) maxloc += (size_t)sn[i].depth;
    loc_ent *locs = calloc(maxloc + 1, sizeof *locs);
    fn_ent *fns = calloc(maxloc + 1, sizeof *fns);
    uint64_t *ids = calloc(PROF_MAX_DEPTH, sizeof *ids);
    size_t nlocs = 0, nfns = 0;
    uint64_t nused = 0, nmaps = 0;
    for (size_t i = 0; i < nmods; i++) mods[i].id = 0;
    if (!locs || !fns || !ids) goto done;
    char namebuf[PROF_MAX_DEPTH][64];
    for (size_t i = 0; i < nsn; i++) {
        size_t k = 0;
        bool top = true;
        for (int d = 0; d < sn[i].depth; d++) {
            uintptr_t pc = sn[i].stk[d];
            loc_ent *l = NULL;
            for (size_t j = 0; j < nlocs; j++)
                if (locs[j].pc == pc) l = &locs[j];
            if (!l) {
                module *m = module_of(pc - 1);
                l = &locs[nlocs++];
                l->pc = pc;
                const char *nm = symbolize(m, pc - 1, namebuf[d], sizeof namebuf[d]);
                l->dup = nm == namebuf[d];
                l->name = l->dup ? strdup(nm) : nm;
                if (!l->name) {
                    l->name = "?";
                    l->dup = false;
                }
            }
            if (top && allocator_frame(l->name)) continue;
            top = false;
            if (!l->id) {              /* only frames a sample uses are written */
                l->id = ++nused;
                module *m = module_of(pc - 1);
                if (m && !m->id) m->id = ++nmaps;
            }
            ids[k++] = l->id;
        }
        int64_t ac, ab, ic, ib;
        scale(sn[i].ac, sn[i].ab, rate, &ac, &ab);
        scale(sn[i].ic, sn[i].ib, rate, &ic, &ib);
        pb_packed(&sub, 1, ids, k, &tmp);
        uint64_t vals[4] = { (uint64_t)ac, (uint64_t)ab, (uint64_t)ic, (uint64_t)ib };
        pb_packed(&sub, 2, vals, 4, &tmp);
        pb_u64(&sub2, 1, str_id(&st, "bytes"));       /* label bytes = object size, as Go */
        pb_u64(&sub2, 3, sn[i].size);
        pb_msg(&sub, 3, &sub2);
        pb_msg(out, 2, &sub);
    }
    for (size_t i = 0; i < nmods; i++) {
        module *m = &mods[i];
        if (!m->id) continue;
        pb_u64(&sub, 1, m->id);
        pb_u64(&sub, 2, m->lo);
        pb_u64(&sub, 3, m->hi);
        pb_u64(&sub, 4, m->lo - m->bias);
        pb_u64(&sub, 5, str_id(&st, m->path));
        pb_u64(&sub, 7, 1);            /* has_functions: names are in the profile */
        pb_msg(out, 3, &sub);
    }
    for (size_t i = 0; i < nlocs; i++) {
        loc_ent *l = &locs[i];
        if (!l->id) continue;
        fn_ent *f = NULL;
        for (size_t j = 0; j < nfns; j++)
            if (strcmp(fns[j].name, l->name) == 0) f = &fns[j];
        if (!f) {
            f = &fns[nfns];
            f->name = l->name;
            f->id = ++nfns;
        }
        module *m = module_of(l->pc - 1);
        pb_u64(&sub, 1, l->id);
        if (m && m->id) pb_u64(&sub, 2, m->id);
        pb_u64(&sub, 3, l->pc - 1);
        pb_u64(&sub2, 1, f->id);
        pb_msg(&sub, 4, &sub2);
        pb_msg(out, 4, &sub);
    }
    for (size_t i = 0; i < nfns; i++) {
        pb_u64(&sub, 1, fns[i].id);
        pb_u64(&sub, 2, str_id(&st, fns[i].name));
        pb_u64(&sub, 3, str_id(&st, fns[i].name));
        pb_msg(out, 5, &sub);
    }
    uint64_t space = str_id(&st, "space"), bytes = str_id(&st, "bytes");
    for (size_t i = 0; i < st.n; i++) pb_len(out, 6, st.s[i], strlen(st.s[i]));
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    pb_u64(out, 9, (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec);
    pb_u64(&sub, 1, space);
    pb_u64(&sub, 2, bytes);
    pb_msg(out, 11, &sub);
    pb_u64(out, 12, (uint64_t)(rate > 0 ? rate : 0));
    ok = !out->oom && !tmp.oom && !sub.oom && !sub2.oom;
done:
    for (size_t i = 0; locs && i < nlocs; i++)
        if (locs[i].dup) free((char *)locs[i].name);
    free(locs);
    free(fns);
    free(ids);
    free(st.s);
    free(tmp.p);
    free(sub.p);
    free(sub2.p);
    return ok;
}

bool gm_write_heap_profile(const char *path)
{
    pthread_once(&prof_once, prof_init);
    pthread_mutex_lock(&write_mu);
    if (!mods) dl_iterate_phdr(phdr_cb, NULL);
    pthread_mutex_lock(&prof_mu);
    snap *sn = calloc(nbuckets + 1, sizeof *sn);
    size_t n = 0;
    for (prof_bucket *b = ball; sn && b; b = b->all) {
        if (b->allocs == b->allocs0 && b->allocs == b->frees) continue;   /* nothing to say */
        sn[n++] = (snap){ b->allocs - b->allocs0, b->alloc_bytes - b->alloc_bytes0, b->allocs - b->frees,
                          b->alloc_bytes - b->free_bytes, b->size, b->depth, b->stk };
    }
    pthread_mutex_unlock(&prof_mu);  /* buckets are never freed and stk never changes */
    pbuf out = { 0 };
    bool ok = sn && encode(&out, sn, n, atomic_load(&prof_rate_a));
    free(sn);
    if (ok) {
        gzFile gz = gzopen(path, "wb");
        ok = gz != NULL && gzwrite(gz, out.p, (unsigned)out.n) == (int)out.n;
        if (gz && gzclose(gz) != Z_OK) ok = false;
        if (!ok) gm_errorf("gm_write_heap_profile: cannot write %s: %s", path, strerror(errno ? errno : EIO));
    } else {
        gm_errorf("gm_write_heap_profile: out of memory");
    }
    free(out.p);
    pthread_mutex_unlock(&write_mu);
    return ok;
}
