/* lisp.c - a small Scheme-like interpreter on the gomap GC, written the way
 * a language runtime author would use it (docs/gc.md, "For language
 * runtimes", walks through each feature):
 *
 *   - VALUES are 64-bit words with the tag in the top 16 bits: fixnums,
 *     #t/#f/nil, and heap pointers under TAG_PTR.  A tagged pointer is not an
 *     address at all, so neither a ptrmask nor a conservative scan can see
 *     it: every heap type has a TRACE FUNCTION (gm_type.trace) that decodes
 *     its words, and every store into a heap slot goes through gm_barrier.
 *   - The evaluator keeps every live value in a SHADOW STACK, itself one
 *     large traced GC object (Lua keeps its stack the same way): C locals
 *     hold tagged words that the conservative stack scan cannot see, so
 *     nothing lives only in a C local across an allocation.
 *   - ENVIRONMENTS are GC maps (symbol -> cell) chained to their parent;
 *     closures capture them.  HASH TABLES are GC maps (tagged key bits ->
 *     entry).  The SYMBOL TABLE is a GC map shared by the threads.
 *   - A WEAK-KEYED PROPERTY TABLE (gm_map_new_weak): prop-set! attaches a
 *     value to any heap object without keeping it alive, even when the
 *     value points back at the object.
 *   - RESOURCES have finalizers, run ON DEMAND (gm_finalizers_on_demand):
 *     only at the interpreter's own safe points (every SAFEPOINT_STEPS
 *     evaluation steps and in run-finalizers), on the interpreter's thread.
 *   - TWO THREADS evaluate at the same time, each its own program with its
 *     own global environment, sharing the builtins and the symbol table.
 *   - gm_heap_live (heap-live) reads the heap size without stopping the
 *     world.
 *
 * Usage: example_lisp [scale]   (scale multiplies the workload; default 1)
 * Runs two built-in programs that check their own results; exit status 0
 * when every check passed.  CI runs it under GMDEBUG=gccheckmark=1.
 */
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gomap/gc.h"
#include "gomap/map.h"

/* ---- values ----------------------------------------------------------------------------- */

typedef uint64_t value;
#define TAG_SHIFT 48
#define PAYLOAD ((1ull << TAG_SHIFT) - 1)
enum { TAG_INT = 0xfff9, TAG_SPECIAL = 0xfffa, TAG_PTR = 0xfffc };
#define NIL ((value)TAG_SPECIAL << TAG_SHIFT)
#define FALSE_V (NIL | 1)
#define TRUE_V (NIL | 2)

static inline unsigned tag_of(value v) { return (unsigned)(v >> TAG_SHIFT); }
static inline value mk_int(int64_t n) { return ((value)TAG_INT << TAG_SHIFT) | ((uint64_t)n & PAYLOAD); }
static inline int64_t int_of(value v) { return (int64_t)(v << 16) >> 16; }
static inline value mk_ptr(const void *p) { return ((value)TAG_PTR << TAG_SHIFT) | (uintptr_t)p; }
static inline void *ptr_of(value v) { return tag_of(v) == TAG_PTR ? (void *)(uintptr_t)(v & PAYLOAD) : NULL; }
static inline bool is_int(value v) { return tag_of(v) == TAG_INT; }

/* Heap objects start with a kind word. */
enum kind { K_NONE, K_PAIR, K_SYM, K_CLOSURE, K_PRIM, K_ENV, K_CELL, K_TABLE, K_ENTRY, K_RES, K_STACK };
typedef struct hdr { uint64_t kind; } hdr;
typedef struct pair { uint64_t kind; value car, cdr; } pair;
typedef struct sym { uint64_t kind; char *name; size_t len; } sym;
typedef struct closure { uint64_t kind; value params, body, env; } closure;
typedef struct vm vm;
typedef value (*prim_fn)(vm *m, size_t args, int argc);
typedef struct prim { uint64_t kind; prim_fn fn; const char *name; int arity; } prim;
typedef struct env { uint64_t kind; gm_map *vars; value parent; } env;   /* vars: sym* -> cell* */
typedef struct cell { uint64_t kind; value v; } cell;
typedef struct table { uint64_t kind; gm_map *map; } table;              /* map: key bits -> entry* */
typedef struct entry { uint64_t kind; value key, val; } entry;
typedef struct res { uint64_t kind; int64_t id; } res;

static inline enum kind kind_of(value v)
{
    hdr *h = ptr_of(v);
    return h ? (enum kind)h->kind : K_NONE;
}

/* Reads of tagged slots that a marker may read at the same time. */
static inline value ld(const value *slot) { return __atomic_load_n(slot, __ATOMIC_RELAXED); }

/* The write barrier for a tagged slot: the collector cannot decode it. */
static inline void store(value *slot, value v)
{
    gm_barrier(ptr_of(ld(slot)), ptr_of(v));
    __atomic_store_n(slot, v, __ATOMIC_RELAXED);
}

/* ---- trace functions ----------------------------------------------------------------------- */

#define SHADOW_SLOTS 32768
typedef struct stack { uint64_t kind; uint64_t sp; value slot[SHADOW_SLOTS]; } stack;

/* One trace function for every kind: an object is zeroed until its kind is
 * set, and then traced by what its kind says. */
static void obj_trace(const void *obj, gm_visit_fn *visit, void *ctx)
{
    const hdr *h = obj;
    switch (__atomic_load_n(&h->kind, __ATOMIC_ACQUIRE)) {
    case K_PAIR: visit(ptr_of(ld(&((const pair *)obj)->car)), ctx); visit(ptr_of(ld(&((const pair *)obj)->cdr)), ctx); break;
    case K_SYM: visit(((const sym *)obj)->name, ctx); break;
    case K_CLOSURE: {
        const closure *c = obj;
        visit(ptr_of(ld(&c->params)), ctx);
        visit(ptr_of(ld(&c->body)), ctx);
        visit(ptr_of(ld(&c->env)), ctx);
        break;
    }
    case K_ENV: visit(((const env *)obj)->vars, ctx); visit(ptr_of(ld(&((const env *)obj)->parent)), ctx); break;
    case K_CELL: visit(ptr_of(ld(&((const cell *)obj)->v)), ctx); break;
    case K_TABLE: visit(((const table *)obj)->map, ctx); break;
    case K_ENTRY: visit(ptr_of(ld(&((const entry *)obj)->key)), ctx); visit(ptr_of(ld(&((const entry *)obj)->val)), ctx); break;
    case K_STACK: {
        /* only below sp: a popped value that is still used is pushed again
         * (with the barrier) before the next safepoint */
        const stack *s = obj;
        uint64_t sp = __atomic_load_n(&s->sp, __ATOMIC_RELAXED);
        for (uint64_t i = 0; i < sp && i < SHADOW_SLOTS; i++) visit(ptr_of(ld(&s->slot[i])), ctx);
        break;
    }
    default: break;
    }
}

#define OBJ_TYPE(name, ctype) \
    static const gm_type name = { sizeof(ctype), 8, NULL, NULL, NULL, 0, #ctype, obj_trace }
OBJ_TYPE(pair_type, pair);
OBJ_TYPE(sym_type, sym);
OBJ_TYPE(closure_type, closure);
OBJ_TYPE(prim_type, prim);
OBJ_TYPE(env_type, env);
OBJ_TYPE(cell_type, cell);
OBJ_TYPE(table_type, table);
OBJ_TYPE(entry_type, entry);
OBJ_TYPE(stack_type, stack);
static const gm_type res_type = { sizeof(res), 8, NULL, NULL, NULL, 0, "res" };   /* no pointers */

/* A bare tagged word: the weak property table's value type. */
static void value_trace(const void *obj, gm_visit_fn *visit, void *ctx) { visit(ptr_of(ld(obj)), ctx); }
static const gm_type value_type = { sizeof(value), 8, NULL, NULL, NULL, 0, "value", value_trace };

/* ---- the interpreter state --------------------------------------------------------------- */

#define SAFEPOINT_STEPS 4096

struct vm {
    stack *st;             /* the shadow stack (a root: st is in a root range) */
    gm_map *props;         /* weak-keyed property table: object -> value (GC pointer, rooted) */
    value global;          /* this thread's global environment (in st->slot[0]) */
    const char *name;
    uint64_t steps;
    int checks, failures;
};

static _Thread_local bool at_safepoint;     /* finalizers may run only when set */
static atomic_long finalized;
static atomic_int finalizer_misplaced;

static inline value S(vm *m, size_t i) { return ld(&m->st->slot[i]); }
static inline void set_S(vm *m, size_t i, value v) { store(&m->st->slot[i], v); }
static inline size_t sp_of(vm *m) { return m->st->sp; }
static inline void pop_to(vm *m, size_t sp) { __atomic_store_n(&m->st->sp, sp, __ATOMIC_RELAXED); }
static size_t push(vm *m, value v)
{
    size_t i = m->st->sp;
    if (i >= SHADOW_SLOTS) {
        fprintf(stderr, "lisp: shadow stack overflow\n");
        exit(2);
    }
    store(&m->st->slot[i], v);
    __atomic_store_n(&m->st->sp, i + 1, __ATOMIC_RELAXED);
    return i;
}

static void *new_obj(const gm_type *t, enum kind k)
{
    hdr *h = gm_new(t);
    __atomic_store_n(&h->kind, (uint64_t)k, __ATOMIC_RELEASE);
    return h;
}

/* cons: both halves rooted by the caller through the stack indices */
static value cons_at(vm *m, size_t a, size_t d)
{
    pair *p = new_obj(&pair_type, K_PAIR);
    store(&p->car, S(m, a));
    store(&p->cdr, S(m, d));
    return mk_ptr(p);
}

static value cons(vm *m, value a, value d)
{
    size_t sp = sp_of(m);
    push(m, a);
    push(m, d);
    value r = cons_at(m, sp, sp + 1);
    pop_to(m, sp);
    return r;
}

static inline value car(value v) { return kind_of(v) == K_PAIR ? ld(&((pair *)ptr_of(v))->car) : NIL; }
static inline value cdr(value v) { return kind_of(v) == K_PAIR ? ld(&((pair *)ptr_of(v))->cdr) : NIL; }

/* ---- symbols: one GC map shared by the threads, under a lock ------------------------------- */

static gm_map *symtab;                 /* gm_str (bytes copied into the GC heap) -> sym* */
static pthread_mutex_t symtab_mu = PTHREAD_MUTEX_INITIALIZER;

static value intern(const char *s, size_t len)
{
    if (pthread_mutex_trylock(&symtab_mu) != 0) {   /* wait without holding up a collection */
        gm_blocking_begin();
        pthread_mutex_lock(&symtab_mu);
        gm_blocking_end();
    }
    gm_str k = { s, len };
    sym **slot = gm_map_get(symtab, &k);
    sym *y = slot ? *slot : NULL;
    if (y == NULL) {
        y = new_obj(&sym_type, K_SYM);
        char *name = gm_alloc_noscan(len + 1);
        memcpy(name, s, len);
        gm_store(&y->name, name);
        y->len = len;
        gm_map_put(symtab, &k, &y);
    }
    pthread_mutex_unlock(&symtab_mu);
    return mk_ptr(y);
}

static value s_quote, s_if, s_define, s_set, s_lambda, s_begin, s_let, s_and, s_or;

/* ---- environments: GC maps ------------------------------------------------------------------ */

static value new_env(vm *m, value parent)
{
    size_t sp = push(m, parent);
    env *e = new_obj(&env_type, K_ENV);
    size_t ei = push(m, mk_ptr(e));
    gm_map *vars = gm_map_new_gc(&gm_type_ptr, &gm_type_ptr, 0);
    gm_store(&e->vars, vars);
    store(&e->parent, S(m, sp));
    value r = S(m, ei);
    pop_to(m, sp);
    return r;
}

static void define(vm *m, value envv, value name, value v)
{
    size_t sp = push(m, envv);
    push(m, name);
    push(m, v);
    cell *c = new_obj(&cell_type, K_CELL);
    store(&c->v, S(m, sp + 2));
    env *e = ptr_of(S(m, sp));
    void *k = ptr_of(S(m, sp + 1));
    gm_map_put(e->vars, &k, &c);
    pop_to(m, sp);
}

static cell *lookup_cell(value envv, value name)
{
    void *k = ptr_of(name);
    for (env *e = ptr_of(envv); e; e = ptr_of(ld(&e->parent))) {
        cell **c = gm_map_get(e->vars, &k);
        if (c) return *c;
    }
    return NULL;
}

static void fail(vm *m, const char *what, value v);

/* ---- printing and equality ------------------------------------------------------------------ */

static void print(FILE *f, value v)
{
    switch (kind_of(v)) {
    case K_NONE:
        if (is_int(v)) fprintf(f, "%" PRId64, int_of(v));
        else if (v == NIL) fprintf(f, "()");
        else fprintf(f, v == TRUE_V ? "#t" : "#f");
        break;
    case K_SYM: {
        sym *y = ptr_of(v);
        fprintf(f, "%.*s", (int)y->len, y->name);
        break;
    }
    case K_PAIR:
        fputc('(', f);
        for (;;) {
            print(f, car(v));
            v = cdr(v);
            if (kind_of(v) != K_PAIR) break;
            fputc(' ', f);
        }
        if (v != NIL) {
            fprintf(f, " . ");
            print(f, v);
        }
        fputc(')', f);
        break;
    default: fprintf(f, "#<object %d>", (int)kind_of(v));
    }
}

static bool equal(value a, value b)
{
    while (kind_of(a) == K_PAIR && kind_of(b) == K_PAIR) {
        if (!equal(car(a), car(b))) return false;
        a = cdr(a);
        b = cdr(b);
    }
    return a == b;
}

/* ---- the reader -------------------------------------------------------------------------------- */

typedef struct reader { const char *p; } reader;

static void skip_space(reader *r)
{
    for (;;) {
        while (*r->p == ' ' || *r->p == '\n' || *r->p == '\t') r->p++;
        if (*r->p != ';') return;
        while (*r->p && *r->p != '\n') r->p++;
    }
}

static value read_form(vm *m, reader *r);

static value read_list(vm *m, reader *r)
{
    size_t sp = sp_of(m);
    for (;;) {
        skip_space(r);
        if (*r->p == ')' || *r->p == 0) break;
        push(m, read_form(m, r));
    }
    if (*r->p == ')') r->p++;
    size_t tail = push(m, NIL);
    for (size_t i = tail; i-- > sp;) set_S(m, tail, cons_at(m, i, tail));
    value l = S(m, tail);
    pop_to(m, sp);
    return l;
}

static value read_form(vm *m, reader *r)
{
    skip_space(r);
    if (*r->p == '(') {
        r->p++;
        return read_list(m, r);
    }
    if (*r->p == '\'') {
        r->p++;
        size_t sp = push(m, read_form(m, r));
        push(m, NIL);
        set_S(m, sp + 1, cons_at(m, sp, sp + 1));
        set_S(m, sp, s_quote);
        value q = cons_at(m, sp, sp + 1);
        pop_to(m, sp);
        return q;
    }
    const char *s = r->p;
    while (*r->p && !strchr(" \n\t()';", *r->p)) r->p++;
    size_t n = (size_t)(r->p - s);
    if (n == 2 && s[0] == '#') return s[1] == 't' ? TRUE_V : FALSE_V;
    char *end;
    long long x = strtoll(s, &end, 10);
    if (end == r->p && n > 0 && (s[0] != '-' || n > 1)) return mk_int(x);
    return intern(s, n);
}

/* ---- the evaluator ------------------------------------------------------------------------------- */

static value eval(vm *m, value x, value envv);

/* The interpreter's safe point: queued finalizers run here, on this thread. */
static void safepoint(vm *m)
{
    (void)m;
    at_safepoint = true;
    gm_run_finalizers();
    at_safepoint = false;
}

static value apply_closure_env(vm *m, size_t fi, size_t args, int argc)
{
    closure *c = ptr_of(S(m, fi));
    size_t sp = push(m, new_env(m, ld(&c->env)));
    c = ptr_of(S(m, fi));
    value params = ld(&c->params);
    for (int i = 0; i < argc && kind_of(params) == K_PAIR; i++, params = cdr(params)) {
        define(m, S(m, sp), car(params), S(m, args + (size_t)i));
        c = ptr_of(S(m, fi));
    }
    value e = S(m, sp);
    pop_to(m, sp);
    return e;
}

static value eval(vm *m, value x, value envv)
{
    size_t base = push(m, x);
    push(m, envv);                                   /* base + 1 */
    value result;
    for (;;) {
        if (++m->steps % SAFEPOINT_STEPS == 0) safepoint(m);
        x = S(m, base);
        if (kind_of(x) == K_SYM) {
            cell *c = lookup_cell(S(m, base + 1), x);
            if (!c) fail(m, "unbound variable", x);
            result = c ? ld(&c->v) : NIL;
            break;
        }
        if (kind_of(x) != K_PAIR) {
            result = x;
            break;
        }
        value op = car(x);
        if (op == s_quote) {
            result = car(cdr(x));
            break;
        }
        if (op == s_if) {
            value t = eval(m, car(cdr(x)), S(m, base + 1));
            x = S(m, base);
            value rest = cdr(cdr(x));
            set_S(m, base, t != FALSE_V ? car(rest) : car(cdr(rest)));
            continue;
        }
        if (op == s_define) {
            value target = car(cdr(x));
            if (kind_of(target) == K_PAIR) {         /* (define (f . params) body...) */
                closure *c = new_obj(&closure_type, K_CLOSURE);
                x = S(m, base);
                target = car(cdr(x));
                store(&c->params, cdr(target));
                store(&c->body, cdr(cdr(x)));
                store(&c->env, S(m, base + 1));
                define(m, S(m, base + 1), car(target), mk_ptr(c));
            } else {
                value v = eval(m, car(cdr(cdr(x))), S(m, base + 1));
                define(m, S(m, base + 1), car(cdr(S(m, base))), v);
            }
            result = NIL;
            break;
        }
        if (op == s_set) {
            value v = eval(m, car(cdr(cdr(x))), S(m, base + 1));
            cell *c = lookup_cell(S(m, base + 1), car(cdr(S(m, base))));
            if (!c) fail(m, "set! of unbound variable", car(cdr(S(m, base))));
            else store(&c->v, v);
            result = NIL;
            break;
        }
        if (op == s_lambda) {
            closure *c = new_obj(&closure_type, K_CLOSURE);
            x = S(m, base);
            store(&c->params, car(cdr(x)));
            store(&c->body, cdr(cdr(x)));
            store(&c->env, S(m, base + 1));
            result = mk_ptr(c);
            break;
        }
        if (op == s_begin || op == s_let) {
            value body = cdr(x);
            if (op == s_let) {                       /* (let ((n v)...) body...) */
                size_t e = push(m, new_env(m, S(m, base + 1)));
                for (value b = car(cdr(S(m, base))); kind_of(b) == K_PAIR; b = cdr(b)) {
                    size_t bi = push(m, b);
                    value v = eval(m, car(cdr(car(b))), S(m, base + 1));
                    define(m, S(m, e), car(car(S(m, bi))), v);
                    b = S(m, bi);
                    pop_to(m, bi);
                }
                set_S(m, base + 1, S(m, e));
                pop_to(m, e);
                body = cdr(cdr(S(m, base)));
            }
            if (body == NIL) {
                result = NIL;
                break;
            }
            size_t bi = push(m, body);
            while (cdr(S(m, bi)) != NIL) {
                eval(m, car(S(m, bi)), S(m, base + 1));
                set_S(m, bi, cdr(S(m, bi)));
            }
            set_S(m, base, car(S(m, bi)));
            pop_to(m, bi);
            continue;                                /* the last form: a tail call */
        }
        if (op == s_and || op == s_or) {
            result = op == s_and ? TRUE_V : FALSE_V;
            size_t bi = push(m, cdr(x));
            for (; S(m, bi) != NIL; set_S(m, bi, cdr(S(m, bi)))) {
                result = eval(m, car(S(m, bi)), S(m, base + 1));
                if ((op == s_and) == (result == FALSE_V)) break;
            }
            pop_to(m, bi);
            break;
        }
        /* application: f and the arguments on the stack */
        size_t fi = push(m, eval(m, op, S(m, base + 1)));
        int argc = 0;
        for (value a = cdr(S(m, base)); kind_of(a) == K_PAIR; argc++) {
            size_t ai = push(m, a);                  /* the rest of the list, replaced by its value */
            value v = eval(m, car(a), S(m, base + 1));
            a = cdr(S(m, ai));
            set_S(m, ai, v);
        }
        size_t args = fi + 1;
        enum kind fk = kind_of(S(m, fi));
        if (fk == K_PRIM) {
            prim *p = ptr_of(S(m, fi));
            if (p->arity >= 0 && p->arity != argc) fail(m, p->name, S(m, fi));
            result = p->fn(m, args, argc);
            break;
        }
        if (fk != K_CLOSURE) {
            fail(m, "not a procedure", S(m, fi));
            result = NIL;
            break;
        }
        value e = apply_closure_env(m, fi, args, argc);
        set_S(m, base + 1, e);
        closure *c = ptr_of(S(m, fi));
        set_S(m, base, cons(m, s_begin, ld(&c->body)));
        pop_to(m, base + 2);
    }
    pop_to(m, base);
    return result;
}

/* ---- primitives -------------------------------------------------------------------------------------- */

#define ARG(i) S(m, args + (i))

static void fail(vm *m, const char *what, value v)
{
    m->failures++;
    fprintf(stderr, "[%s] error: %s: ", m->name, what);
    print(stderr, v);
    fputc('\n', stderr);
}

static value p_add(vm *m, size_t args, int n)
{
    int64_t s = 0;
    for (int i = 0; i < n; i++) s += int_of(ARG(i));
    return mk_int(s);
}
static value p_sub(vm *m, size_t args, int n)
{
    int64_t s = int_of(ARG(0));
    if (n == 1) return mk_int(-s);
    for (int i = 1; i < n; i++) s -= int_of(ARG(i));
    return mk_int(s);
}
static value p_mul(vm *m, size_t args, int n)
{
    int64_t s = 1;
    for (int i = 0; i < n; i++) s *= int_of(ARG(i));
    return mk_int(s);
}
static value p_eq_num(vm *m, size_t args, int n) { (void)n; return int_of(ARG(0)) == int_of(ARG(1)) ? TRUE_V : FALSE_V; }
static value p_lt(vm *m, size_t args, int n) { (void)n; return int_of(ARG(0)) < int_of(ARG(1)) ? TRUE_V : FALSE_V; }
static value p_mod(vm *m, size_t args, int n) { (void)n; return mk_int(int_of(ARG(0)) % int_of(ARG(1))); }
static value p_cons(vm *m, size_t args, int n) { (void)n; return cons_at(m, args, args + 1); }
static value p_car(vm *m, size_t args, int n) { (void)n; return car(ARG(0)); }
static value p_cdr(vm *m, size_t args, int n) { (void)n; return cdr(ARG(0)); }
static value p_nullp(vm *m, size_t args, int n) { (void)n; return ARG(0) == NIL ? TRUE_V : FALSE_V; }
static value p_pairp(vm *m, size_t args, int n) { (void)n; return kind_of(ARG(0)) == K_PAIR ? TRUE_V : FALSE_V; }
static value p_eq(vm *m, size_t args, int n) { (void)n; return ARG(0) == ARG(1) ? TRUE_V : FALSE_V; }
static value p_equal(vm *m, size_t args, int n) { (void)n; return equal(ARG(0), ARG(1)) ? TRUE_V : FALSE_V; }
static value p_not(vm *m, size_t args, int n) { (void)n; return ARG(0) == FALSE_V ? TRUE_V : FALSE_V; }
static value p_set_car(vm *m, size_t args, int n)
{
    (void)n;
    if (kind_of(ARG(0)) == K_PAIR) store(&((pair *)ptr_of(ARG(0)))->car, ARG(1));
    return NIL;
}

static value p_list(vm *m, size_t args, int n)
{
    size_t tail = push(m, NIL);
    for (int i = n; i-- > 0;) set_S(m, tail, cons_at(m, args + (size_t)i, tail));
    value l = S(m, tail);
    pop_to(m, tail);
    return l;
}

/* (check name actual expected) */
static value p_check(vm *m, size_t args, int n)
{
    (void)n;
    m->checks++;
    if (equal(ARG(1), ARG(2))) return TRUE_V;
    m->failures++;
    fprintf(stderr, "[%s] check ", m->name);
    print(stderr, ARG(0));
    fprintf(stderr, " failed: got ");
    print(stderr, ARG(1));
    fprintf(stderr, ", expected ");
    print(stderr, ARG(2));
    fputc('\n', stderr);
    return FALSE_V;
}

/* (check-range name actual lo hi): lo <= actual <= hi */
static value p_check_range(vm *m, size_t args, int n)
{
    (void)n;
    m->checks++;
    int64_t v = int_of(ARG(1));
    if (v >= int_of(ARG(2)) && v <= int_of(ARG(3))) return TRUE_V;
    m->failures++;
    fprintf(stderr, "[%s] check ", m->name);
    print(stderr, ARG(0));
    fprintf(stderr, " failed: %" PRId64 " not in [%" PRId64 ", %" PRId64 "]\n", v, int_of(ARG(2)),
            int_of(ARG(3)));
    return FALSE_V;
}

/* hash tables: GC maps from the key's tagged bits (eq? hashing) to entries */
static value p_make_table(vm *m, size_t args, int n)
{
    (void)args;
    (void)n;
    table *t = new_obj(&table_type, K_TABLE);
    size_t sp = push(m, mk_ptr(t));
    gm_map *map = gm_map_new_gc(&gm_type_u64, &gm_type_ptr, 0);
    gm_store(&t->map, map);
    pop_to(m, sp);
    return mk_ptr(t);
}

static value p_table_set(vm *m, size_t args, int n)
{
    (void)n;
    if (kind_of(ARG(0)) != K_TABLE) return NIL;
    entry *e = new_obj(&entry_type, K_ENTRY);
    store(&e->key, ARG(1));
    store(&e->val, ARG(2));
    value k = ARG(1);
    gm_map_put(((table *)ptr_of(ARG(0)))->map, &k, &e);
    return NIL;
}

static value p_table_get(vm *m, size_t args, int n)
{
    (void)n;
    if (kind_of(ARG(0)) != K_TABLE) return ARG(2);
    value k = ARG(1);
    entry **e = gm_map_get(((table *)ptr_of(ARG(0)))->map, &k);
    return e ? ld(&(*e)->val) : ARG(2);
}

static value p_table_count(vm *m, size_t args, int n)
{
    (void)n;
    return kind_of(ARG(0)) == K_TABLE ? mk_int((int64_t)gm_map_len(((table *)ptr_of(ARG(0)))->map)) : mk_int(0);
}

static value p_table_delete(vm *m, size_t args, int n)
{
    (void)n;
    value k = ARG(1);
    return kind_of(ARG(0)) == K_TABLE && gm_map_delete(((table *)ptr_of(ARG(0)))->map, &k) ? TRUE_V : FALSE_V;
}

/* the weak-keyed property table */
static value p_prop_set(vm *m, size_t args, int n)
{
    (void)n;
    void *k = ptr_of(ARG(0));
    if (!k) return FALSE_V;
    value v = ARG(1);
    gm_map_put(m->props, &k, &v);           /* the box is a traced `value`: the map barriers it */
    return TRUE_V;
}

static value p_prop_get(vm *m, size_t args, int n)
{
    (void)n;
    void *k = ptr_of(ARG(0));
    value *v = k ? gm_map_get(m->props, &k) : NULL;
    return v ? ld(v) : ARG(1);
}

static value p_prop_count(vm *m, size_t args, int n)
{
    (void)args;
    (void)n;
    return mk_int((int64_t)gm_map_len(m->props));
}

/* resources: finalized on demand, at this interpreter's safe points */
static void res_finalizer(void *obj, void *arg)
{
    (void)obj;
    (void)arg;
    if (!at_safepoint) atomic_fetch_add(&finalizer_misplaced, 1);
    atomic_fetch_add(&finalized, 1);
}

static value p_make_resource(vm *m, size_t args, int n)
{
    (void)n;
    res *r = gm_new(&res_type);
    r->kind = K_RES;
    r->id = int_of(ARG(0));
    gm_set_finalizer(r, res_finalizer, NULL);
    return mk_ptr(r);
}

static value p_run_finalizers(vm *m, size_t args, int n)
{
    (void)args;
    (void)n;
    at_safepoint = true;
    size_t k = gm_run_finalizers();
    at_safepoint = false;
    (void)m;
    return mk_int((int64_t)k);
}

static value p_finalized(vm *m, size_t args, int n)
{
    (void)m;
    (void)args;
    (void)n;
    return mk_int(atomic_load(&finalized));
}

static value p_gc(vm *m, size_t args, int n)
{
    (void)m;
    (void)args;
    (void)n;
    gm_gc();
    return NIL;
}

static value p_heap_live(vm *m, size_t args, int n)
{
    (void)m;
    (void)args;
    (void)n;
    return mk_int((int64_t)(gm_heap_live() >> 10));   /* KiB, like collectgarbage("count") */
}

static value p_display(vm *m, size_t args, int n)
{
    for (int i = 0; i < n; i++) print(stdout, ARG(i));
    fputc('\n', stdout);
    return NIL;
}

/* ---- set-up ------------------------------------------------------------------------------------------ */

static stack *builtins_holder[1];   /* root range: a stack holding the builtins environment */
static value builtins;              /* shared, read-only once the threads start */
static gm_map *props_holder[2];     /* root range: the threads' weak property tables */
static stack *stacks[2];            /* root range: the threads' shadow stacks */

static void def_prim(vm *m, const char *name, prim_fn fn, int arity)
{
    prim *p = new_obj(&prim_type, K_PRIM);
    p->fn = fn;
    p->name = name;
    p->arity = arity;
    size_t sp = push(m, mk_ptr(p));
    value s = intern(name, strlen(name));
    define(m, S(m, 0), s, S(m, sp));
    pop_to(m, sp);
}

static void vm_init(vm *m, stack **holder, const char *name)
{
    memset(m, 0, sizeof *m);
    m->name = name;
    stack *st = gm_new(&stack_type);
    st->kind = K_STACK;
    gm_store(holder, st);
    m->st = st;
}

static void make_builtins(void)
{
    vm m;
    vm_init(&m, &builtins_holder[0], "builtins");
    symtab = gm_map_new_gc(&gm_type_str_owned, &gm_type_ptr, 256);
    gm_root_add(&symtab, sizeof symtab);
    s_quote = intern("quote", 5);
    s_if = intern("if", 2);
    s_define = intern("define", 6);
    s_set = intern("set!", 4);
    s_lambda = intern("lambda", 6);
    s_begin = intern("begin", 5);
    s_let = intern("let", 3);
    s_and = intern("and", 3);
    s_or = intern("or", 2);
    push(&m, new_env(&m, NIL));                  /* slot 0: the builtins environment */
    def_prim(&m, "+", p_add, -1);
    def_prim(&m, "-", p_sub, -1);
    def_prim(&m, "*", p_mul, -1);
    def_prim(&m, "=", p_eq_num, 2);
    def_prim(&m, "<", p_lt, 2);
    def_prim(&m, "modulo", p_mod, 2);
    def_prim(&m, "cons", p_cons, 2);
    def_prim(&m, "car", p_car, 1);
    def_prim(&m, "cdr", p_cdr, 1);
    def_prim(&m, "set-car!", p_set_car, 2);
    def_prim(&m, "null?", p_nullp, 1);
    def_prim(&m, "pair?", p_pairp, 1);
    def_prim(&m, "eq?", p_eq, 2);
    def_prim(&m, "equal?", p_equal, 2);
    def_prim(&m, "not", p_not, 1);
    def_prim(&m, "list", p_list, -1);
    def_prim(&m, "check", p_check, 3);
    def_prim(&m, "check-range", p_check_range, 4);
    def_prim(&m, "make-table", p_make_table, 0);
    def_prim(&m, "table-set!", p_table_set, 3);
    def_prim(&m, "table-get", p_table_get, 3);
    def_prim(&m, "table-count", p_table_count, 1);
    def_prim(&m, "table-delete!", p_table_delete, 2);
    def_prim(&m, "prop-set!", p_prop_set, 2);
    def_prim(&m, "prop-get", p_prop_get, 2);
    def_prim(&m, "prop-count", p_prop_count, 0);
    def_prim(&m, "make-resource", p_make_resource, 1);
    def_prim(&m, "run-finalizers", p_run_finalizers, 0);
    def_prim(&m, "finalized", p_finalized, 0);
    def_prim(&m, "gc", p_gc, 0);
    def_prim(&m, "heap-live", p_heap_live, 0);
    def_prim(&m, "display", p_display, -1);
    builtins = S(&m, 0);
}

/* ---- the programs ------------------------------------------------------------------------------------ */

/* %d: the scale */
static const char prog_main[] =
    "(define (make-list n acc) (if (= n 0) acc (make-list (- n 1) (cons n acc))))\n"
    "(define (sum l acc) (if (null? l) acc (sum (cdr l) (+ acc (car l)))))\n"
    "(define (repeat i total) (if (= i 0) total (repeat (- i 1) (+ total (sum (make-list 1000 '()) 0)))))\n"
    "(define scale %d)\n"
    "(check 'lists (repeat (* 300 scale) 0) (* 300 scale 500500))\n"
    ";; closures over environments (GC maps)\n"
    "(define (make-counter) (let ((n 0)) (lambda () (set! n (+ n 1)) n)))\n"
    "(define c1 (make-counter))\n"
    "(define c2 (make-counter))\n"
    "(c1) (c1) (c2)\n"
    "(check 'closures (list (c1) (c2)) '(3 2))\n"
    "(define (adder k) (lambda (x) (+ x k)))\n"
    "(define (map1 f l) (if (null? l) '() (cons (f (car l)) (map1 f (cdr l)))))\n"
    "(check 'map (map1 (adder 10) '(1 2 3)) '(11 12 13))\n"
    ";; a weak-keyed property table: values point back at their keys\n"
    "(define keep (list (cons 1 1) (cons 2 2) (cons 3 3)))\n"
    "(define (tag-all l) (if (null? l) 'ok (begin (prop-set! (car l) (car l)) (tag-all (cdr l)))))\n"
    "(tag-all keep)\n"
    "(define (tag-many n) (if (= n 0) 'ok\n"
    "  (begin (let ((o (cons n n))) (prop-set! o (cons o 'back))) (tag-many (- n 1)))))\n"
    "(tag-many (* 20000 scale))\n"
    "(gc) (gc)\n"
    "(check-range 'weak-entries-dropped (prop-count) 3 5)\n"
    "(check 'weak-entry-kept (prop-get (car (cdr keep)) #f) (cons 2 2))\n"
    "(check 'weak-entry-is-the-key (eq? (prop-get (car keep) #f) (car keep)) #t)\n"
    ";; resources finalized at this interpreter's safe points\n"
    "(define (make-res n) (if (= n 0) 'ok (begin (make-resource n) (make-res (- n 1)))))\n"
    "(make-res 1000)\n"
    "(gc)\n"
    "(run-finalizers)\n"
    "(check-range 'finalized (finalized) 990 1000000)\n"
    "(check-range 'heap-live-kib (heap-live) 1 10000000)\n";

static const char prog_second[] =
    "(define scale %d)\n"
    "(define t (make-table))\n"
    "(define (fill i) (if (= i 0) 'ok (begin (table-set! t i (cons i (* i i))) (fill (- i 1)))))\n"
    "(define (drain i) (if (= i 0) 'ok (begin (table-delete! t i) (drain (- i 1)))))\n"
    "(define (rounds r) (if (= r 0) 'ok (begin (fill 20000) (drain 10000) (rounds (- r 1)))))\n"
    "(rounds (* 20 scale))\n"
    "(check 'table-count (table-count t) 10000)\n"
    "(check 'table-get (table-get t 15000 #f) (cons 15000 225000000))\n"
    "(check 'table-miss (table-get t 5 'none) 'none)\n"
    "(define (fib n) (if (< n 2) n (+ (fib (- n 1)) (fib (- n 2)))))\n"
    "(check 'fib (fib 20) 6765)\n"
    "(define (tree d) (if (= d 0) '() (cons (tree (- d 1)) (tree (- d 1)))))\n"
    "(define (count t) (if (null? t) 1 (+ (count (car t)) (count (cdr t)))))\n"
    "(define (trees i acc) (if (= i 0) acc (trees (- i 1) (+ acc (count (tree 12))))))\n"
    "(check 'trees (trees (* 40 scale) 0) (* 40 scale 4096))\n"
    "(define (tag-many n) (if (= n 0) 'ok\n"
    "  (begin (let ((o (list n))) (prop-set! o (list o o))) (make-resource n) (tag-many (- n 1)))))\n"
    "(tag-many (* 5000 scale))\n"
    "(gc)\n"
    "(check-range 'weak-entries-dropped (prop-count) 0 2)\n";

typedef struct job { const char *prog; int idx; int scale; const char *name; int checks, failures; } job;

static void run(job *j)
{
    vm m;
    vm_init(&m, &stacks[j->idx], j->name);
    m.props = gm_map_new_weak(&gm_type_ptr, &value_type, 0);
    gm_store(&props_holder[j->idx], m.props);
    push(&m, new_env(&m, builtins));             /* slot 0: this program's globals */
    size_t len = strlen(j->prog) + 16;
    char *src = malloc(len);
    snprintf(src, len, j->prog, j->scale);
    reader r = { src };
    for (;;) {
        skip_space(&r);
        if (!*r.p) break;
        size_t sp = push(&m, read_form(&m, &r));
        eval(&m, S(&m, sp), S(&m, 0));
        pop_to(&m, sp);
        safepoint(&m);                           /* between top-level forms */
    }
    free(src);
    j->checks = m.checks;
    j->failures = m.failures;
    gm_store(&stacks[j->idx], NULL);
    gm_store(&props_holder[j->idx], NULL);
}

static void *thread_main(void *arg)
{
    gm_thread_attach();
    run(arg);
    gm_thread_detach();
    return NULL;
}

int main(int argc, char **argv)
{
    int scale = argc > 1 ? atoi(argv[1]) : 1;
    if (scale < 1) scale = 1;
    gm_thread_attach();
    gm_finalizers_on_demand(true);              /* finalizers only at our safe points */
    gm_root_add(builtins_holder, sizeof builtins_holder);
    gm_root_add(props_holder, sizeof props_holder);
    gm_root_add(stacks, sizeof stacks);
    make_builtins();
    job second = { prog_second, 1, scale, "thread 2", 0, 0 };
    pthread_t th;
    pthread_create(&th, NULL, thread_main, &second);
    job first = { prog_main, 0, scale, "main", 0, 0 };
    run(&first);
    gm_blocking_begin();
    pthread_join(th, NULL);
    gm_blocking_end();
    gm_memstats ms;
    gm_read_memstats(&ms);
    int checks = first.checks + second.checks, failures = first.failures + second.failures;
    if (atomic_load(&finalizer_misplaced)) {
        fprintf(stderr, "lisp: %d finalizers ran outside a safe point\n", atomic_load(&finalizer_misplaced));
        failures++;
    }
    printf("lisp: %d checks, %d failed; %" PRIu64 " objects allocated, %u GC cycles, %ld finalized\n",
           checks, failures, ms.mallocs, ms.num_gc, atomic_load(&finalized));
    return failures ? 1 : 0;
}
