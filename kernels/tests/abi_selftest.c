/*
 * abi_selftest.c: backend-agnostic self-test of a greta_parity.h library.
 *
 *   abi_selftest path/to/libgreta_parity_<backend>.so
 *
 * dlopens the library and drives it only through the ABI (gp_malloc and
 * gp_memcpy_* for all data), so the same program checks the CPU, CUDA and
 * ROCm builds. For every entry point it runs random non-zero inputs of
 * several shapes, every dtype and every route, and compares against a naive
 * double-precision reference computed here from the dtype-rounded inputs.
 *
 * Error bounds (u_out = unit roundoff of the output dtype: 2^-24 f32, 2^-11
 * f16, 2^-8 bf16; eps32 = 2^-23; "+ tiny" covers f16/bf16 subnormal spacing):
 *   linear   |y - ref| <= 2 * (u_out*|ref| + (K+2)*eps32*(sum|x*w| + |b|)) + tiny
 *   rmsnorm  |y - ref| <= 2 * u_out*|ref| + (dim+8)*eps32*|ref| + tiny
 *   rope     |y - ref| <= 2 * u_out*|ref| + (|x0|+|x1|) * (8*eps32*|angle|
 *            + 8*eps32), the reference angle being the f32 angle of the header
 *   scores   |s - ref| <= (head_dim+2)*eps32*|scale|*sum|q*k|, masked exactly -inf
 *   softmax  |p - ref| <= (n_kv+8)*eps32*ref + 2^-40, masked exactly 0
 *   pv       |o - ref| <= 2 * u_out*|ref| + (n_kv+2)*eps32*sum|p*v| + tiny
 *   attn     |o - ref| <= 2 * u_out*|ref| + 2*rel*sum|p*v| + tiny and
 *            |lse - ref| <= 2*rel + 4*eps32*|ref|, with rel = 2*(the scores'
 *            bound above) + (2*max|s - max| + n_vis + 16)*eps32
 *
 * ABI 3: the core symbols are required; each optional capability (faults,
 * attestation, d2d, routes, unfused, fused, invariance, mlp) is looked up with
 * dlsym, must be exported whole or not at all, and its tests are skipped
 * with a printed note when it is absent (at least one of unfused and fused
 * is required). gp_linear runs on AUTO and on the routes gp_forced_routes()
 * lists (BLAS outside it must be GP_ERR_UNSUPPORTED). Bit equality of a row
 * at row count 1 and in a larger call is required for the stages
 * gp_batch_invariant_stages() declares (projections, rope, attn); for
 * undeclared ones a difference is only counted.
 * Besides values it checks: batch invariance per forced route (row m of an
 * M-row call equals the M=1 call on that row, bit for bit), attestation,
 * bad arguments (status and a message naming the argument, then a valid call
 * still works), fault names, the effect of each fault at row count 1 and its
 * absence at row count 2, and that every output element is written (outputs
 * are poisoned with 0xFF bytes, a NaN in every dtype, and followed by a guard
 * region that must stay untouched).
 *
 * Prints "abi_selftest: N checks, F failures" and exits 1 on any failure.
 */
#define _POSIX_C_SOURCE 200809L

#include <dlfcn.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gp_half.h"
#include "greta_parity.h"

/* ---- the library ------------------------------------------------------ */

static struct {
    int (*abi_version)(void);
    const char *(*backend_name)(void);
    const char *(*status_string)(int);
    const char *(*last_error)(void);
    int (*device_count)(int *);
    int (*malloc_)(void **, size_t);
    int (*free_)(void *);
    int (*memcpy_h2d)(void *, const void *, size_t);
    int (*memcpy_d2h)(void *, const void *, size_t);
    int (*memcpy_d2d)(void *, const void *, size_t);
    int (*synchronize)(void);
    int (*rmsnorm)(int, const void *, const void *, void *, int, int, float);
    int (*linear)(int, int, const void *, const void *, const void *, void *, int, int, int);
    int (*rope)(int, int, const void *, void *, const int32_t *, int, int, int, float);
    int (*kv_append)(int, const void *, const void *, void *, void *, int, int, int, int);
    int (*attn_scores)(int, const void *, const void *, float *, int, int, int, int, int, int,
                       float, int);
    int (*softmax)(const float *, float *, int, int, int);
    int (*attn_pv)(int, const float *, const void *, void *, int, int, int, int, int);
    int (*last_launch)(int *, int *, int *, int *, int *, char *, int);
    int (*set_fault)(const char *);
    const char *(*active_fault)(void);
    int (*fault_count)(void);
    const char *(*fault_name)(int);
    int (*forced_routes)(void);
    int (*attention)(int, const void *, const void *, const void *, void *, float *, int, int, int,
                     int, int, int, float, int);
    const char *(*batch_invariant_stages)(void);
    int (*residual_add)(int, const void *, const void *, void *, int, int);
    int (*rmsnorm_offset)(int, const void *, const void *, void *, int, int, float, float);
    int (*gated_act)(int, int, const void *, const void *, void *, int, int);
} gp;

/* The optional capabilities of ABI 3 the library implements (all of a
 * capability's symbols exported), and the routes and stages it declares. */
static struct {
    int faults, attestation, d2d, routes, unfused, fused, invariance, mlp;
    int route_mask;     /* gp_forced_routes(), 0 without "routes" */
    const char *stages; /* gp_batch_invariant_stages(), "" without "invariance" */
} cap;

static void *lib;

static int load_symbol(void **slot, const char *name) {
    void *p = dlsym(lib, name);
    if (p == NULL) {
        fprintf(stderr, "abi_selftest: missing core symbol %s\n", name);
        return 0;
    }
    *slot = p;
    return 1;
}

#define LOAD(field, name) ok &= load_symbol((void **)&gp.field, name)

/* A capability: its symbols and the gp fields they go to. */
typedef struct {
    const char *name;
    int *have;
    int n;
    const char *syms[4];
    void **slots[4];
} capability;

/* Looks up every symbol of c: returns 1 with *c->have set if all are there,
 * 1 with *c->have = 0 if none is, 0 (an ABI violation) if only some are. */
static int load_capability(const capability *c) {
    int found = 0, i;
    void *p[4];
    for (i = 0; i < c->n; i++) {
        p[i] = dlsym(lib, c->syms[i]);
        found += p[i] != NULL;
    }
    *c->have = found == c->n;
    if (found == c->n) {
        for (i = 0; i < c->n; i++) {
            *c->slots[i] = p[i];
        }
        printf("abi_selftest: capability %-12s present\n", c->name);
        return 1;
    }
    if (found == 0) {
        printf("abi_selftest: capability %-12s absent: its tests are skipped\n", c->name);
        return 1;
    }
    for (i = 0; i < c->n; i++) {
        if (p[i] == NULL) {
            fprintf(stderr,
                    "abi_selftest: capability %s is partial: %s missing (a library exports all "
                    "of a capability's symbols or none)\n",
                    c->name, c->syms[i]);
        }
    }
    return 0;
}

static int load_library(const char *path) {
    int ok = 1, i;
    const capability caps[] = {
        {"faults",
         &cap.faults,
         4,
         {"gp_set_fault", "gp_active_fault", "gp_fault_count", "gp_fault_name"},
         {(void **)&gp.set_fault, (void **)&gp.active_fault, (void **)&gp.fault_count,
          (void **)&gp.fault_name}},
        {"attestation", &cap.attestation, 1, {"gp_last_launch"}, {(void **)&gp.last_launch}},
        {"d2d", &cap.d2d, 1, {"gp_memcpy_d2d"}, {(void **)&gp.memcpy_d2d}},
        {"routes", &cap.routes, 1, {"gp_forced_routes"}, {(void **)&gp.forced_routes}},
        {"unfused",
         &cap.unfused,
         3,
         {"gp_attn_scores", "gp_softmax", "gp_attn_pv"},
         {(void **)&gp.attn_scores, (void **)&gp.softmax, (void **)&gp.attn_pv}},
        {"fused", &cap.fused, 1, {"gp_attention"}, {(void **)&gp.attention}},
        {"invariance",
         &cap.invariance,
         1,
         {"gp_batch_invariant_stages"},
         {(void **)&gp.batch_invariant_stages}},
        {"mlp",
         &cap.mlp,
         3,
         {"gp_residual_add", "gp_rmsnorm_offset", "gp_gated_act"},
         {(void **)&gp.residual_add, (void **)&gp.rmsnorm_offset, (void **)&gp.gated_act}},
    };
    lib = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (lib == NULL) {
        fprintf(stderr, "abi_selftest: dlopen %s: %s\n", path, dlerror());
        return 0;
    }
    LOAD(abi_version, "gp_abi_version");
    LOAD(backend_name, "gp_backend_name");
    LOAD(status_string, "gp_status_string");
    LOAD(last_error, "gp_last_error");
    LOAD(device_count, "gp_device_count");
    LOAD(malloc_, "gp_malloc");
    LOAD(free_, "gp_free");
    LOAD(memcpy_h2d, "gp_memcpy_h2d");
    LOAD(memcpy_d2h, "gp_memcpy_d2h");
    LOAD(synchronize, "gp_synchronize");
    LOAD(rmsnorm, "gp_rmsnorm");
    LOAD(linear, "gp_linear");
    LOAD(rope, "gp_rope");
    LOAD(kv_append, "gp_kv_append");
    for (i = 0; i < (int)(sizeof caps / sizeof caps[0]); i++) {
        ok &= load_capability(&caps[i]);
    }
    if (!cap.unfused && !cap.fused) {
        fprintf(stderr, "abi_selftest: neither \"unfused\" (gp_attn_scores, gp_softmax, "
                        "gp_attn_pv) nor \"fused\" (gp_attention) attention is exported\n");
        ok = 0;
    }
    return ok;
}

/* Prints a skipped test once per reason. */
static void skip_note(const char *what, const char *capability_name) {
    printf("abi_selftest: skipped %s: no \"%s\" capability\n", what, capability_name);
}

/* ---- checks ------------------------------------------------------------ */

static long n_checks, n_failures;

static int check(int cond, const char *fmt, ...) {
    n_checks++;
    if (!cond) {
        va_list ap;
        n_failures++;
        if (n_failures <= 60) {
            fprintf(stderr, "FAIL: ");
            va_start(ap, fmt);
            vfprintf(stderr, fmt, ap);
            va_end(ap);
            fprintf(stderr, "\n");
        }
    }
    return cond;
}

/* A call that must succeed; reports the library's message otherwise. */
static int check_ok(int status, const char *what) {
    return check(status == GP_OK, "%s: status %d (%s): %s", what, status, gp.status_string(status),
                 gp.last_error());
}

/* ---- capabilities in use ------------------------------------------------ */

/* 1 if gp_linear may be called with route: AUTO always, the others when
 * gp_forced_routes() lists them. */
static int route_usable(int route) {
    return route == GP_ROUTE_AUTO || (cap.route_mask & (1 << route)) != 0;
}

/* 1 if the library declares stage batch invariant (gp_batch_invariant_stages). */
static int stage_declared(const char *stage) {
    size_t n = strlen(stage);
    const char *p = cap.stages;
    while (*p != '\0') {
        const char *end = strchr(p, ',');
        size_t len = end != NULL ? (size_t)(end - p) : strlen(p);
        if (len == n && strncmp(p, stage, n) == 0) {
            return 1;
        }
        p += len;
        if (*p == ',') {
            p++;
        }
    }
    return 0;
}

static long n_undeclared_variant;

/* Bit equality of a row computed at row count 1 and at a larger row count:
 * required for a declared stage; for an undeclared one a difference is
 * allowed and only counted (printed at the end). */
static void check_invariant(int declared, int equal, const char *fmt, ...) {
    if (declared) {
        va_list ap;
        char msg[512];
        va_start(ap, fmt);
        vsnprintf(msg, sizeof msg, fmt, ap);
        va_end(ap);
        check(equal, "%s (stage declared batch invariant)", msg);
    } else if (!equal) {
        n_undeclared_variant++;
    }
}

static const char *dtype_str(int dtype) {
    return dtype == GP_DTYPE_F32 ? "f32" : dtype == GP_DTYPE_F16 ? "f16" : "bf16";
}

static double unit_roundoff(int dtype) {
    return dtype == GP_DTYPE_F32   ? ldexp(1.0, -24)
           : dtype == GP_DTYPE_F16 ? ldexp(1.0, -11)
                                   : ldexp(1.0, -8);
}

/* Absolute slack for the subnormal range of the output dtype. */
static double tiny(int dtype) { return dtype == GP_DTYPE_F16 ? ldexp(1.0, -24) : ldexp(1.0, -126); }

static const double EPS32 = 1.1920928955078125e-07; /* 2^-23 */

/* ---- random data --------------------------------------------------------- */

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static uint32_t rng_u32(void) {
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (uint32_t)(rng_state >> 11);
}

static double rng_unit(void) { return (double)rng_u32() / 4294967296.0; } /* [0, 1) */

/* Random value in +-[lo, hi], never zero. */
static float rng_nonzero(double lo, double hi) {
    double v = lo + (hi - lo) * rng_unit();
    return (float)((rng_u32() & 1) ? v : -v);
}

/* Host tensor of a dtype, plus its values as double (after rounding). */
typedef struct {
    int dtype;
    size_t n;
    void *raw;   /* dtype storage */
    double *val; /* exact values of raw */
} tensor;

static tensor tensor_random(int dtype, size_t n, double lo, double hi) {
    tensor t;
    size_t i;
    t.dtype = dtype;
    t.n = n;
    t.raw = calloc(n ? n : 1, gp_dtype_size(dtype));
    t.val = (double *)calloc(n ? n : 1, sizeof(double));
    for (i = 0; i < n; i++) {
        float v = rng_nonzero(lo, hi);
        gp_store(dtype, t.raw, i, v, 0);
        t.val[i] = gp_load(dtype, t.raw, i);
        if (t.val[i] == 0.0) { /* rounding underflow: keep it non-zero */
            gp_store(dtype, t.raw, i, 0.5f, 0);
            t.val[i] = 0.5;
        }
    }
    return t;
}

static void tensor_free(tensor *t) {
    free(t->raw);
    free(t->val);
    t->raw = NULL;
    t->val = NULL;
}

/* ---- device buffers -------------------------------------------------------- */

#define GUARD_BYTES 256
#define GUARD_BYTE 0xA5

/* Device copy of host bytes (no guard). */
static void *dev_upload(const void *host, size_t bytes) {
    void *d = NULL;
    if (!check_ok(gp.malloc_(&d, bytes), "gp_malloc")) {
        return NULL;
    }
    check(((uintptr_t)d % 256) == 0, "gp_malloc: %p not 256-byte aligned", d);
    check_ok(gp.memcpy_h2d(d, host, bytes), "gp_memcpy_h2d");
    return d;
}

/* Output buffer: bytes of 0xFF (NaN in every dtype) then a guard region. */
static void *dev_poisoned(size_t bytes) {
    unsigned char *h = (unsigned char *)malloc(bytes + GUARD_BYTES);
    void *d;
    memset(h, 0xFF, bytes);
    memset(h + bytes, GUARD_BYTE, GUARD_BYTES);
    d = dev_upload(h, bytes + GUARD_BYTES);
    free(h);
    return d;
}

/* Downloads bytes (+ guard) and checks that every element of elem_size bytes
 * was written (is not all 0xFF) and the guard is intact. Returns the host copy
 * (bytes), to free. */
static unsigned char *dev_download_checked(const void *d, size_t bytes, size_t elem_size,
                                           const char *what) {
    unsigned char *h = (unsigned char *)malloc(bytes + GUARD_BYTES);
    size_t i, j, unwritten = 0, first = 0, guard_bad = 0;
    check_ok(gp.synchronize(), "gp_synchronize");
    check_ok(gp.memcpy_d2h(h, d, bytes + GUARD_BYTES), "gp_memcpy_d2h");
    for (i = 0; i < bytes; i += elem_size) {
        int all = 1;
        for (j = 0; j < elem_size; j++) {
            all &= h[i + j] == 0xFF;
        }
        if (all && unwritten++ == 0) {
            first = i / elem_size;
        }
    }
    for (i = 0; i < GUARD_BYTES; i++) {
        guard_bad += h[bytes + i] != GUARD_BYTE;
    }
    check(unwritten == 0, "%s: %zu elements not written (first %zu)", what, unwritten, first);
    check(guard_bad == 0, "%s: %zu bytes written past the output", what, guard_bad);
    return h;
}

static void dev_free(void *d) { check_ok(gp.free_(d), "gp_free"); }

/* ---- attestation ------------------------------------------------------------- */

/* The last launch's attestation (gp_last_launch). */
typedef struct attest {
    int route, tm, tn, tk, split;
    char kernel[GP_KERNEL_NAME_CAP];
} attest;

/* Reads the attestation into a: 0 where the library has none (nothing to
 * check) or gp_last_launch failed (a counted failure). */
static int read_attest(attest *a) {
    a->route = a->tm = a->tn = a->tk = a->split = -1;
    memset(a->kernel, 0, sizeof a->kernel);
    if (!cap.attestation) {
        return 0;
    }
    return check_ok(gp.last_launch(&a->route, &a->tm, &a->tn, &a->tk, &a->split, a->kernel,
                                   (int)sizeof a->kernel),
                    "gp_last_launch");
}

static void check_attest(const char *what, int want_route, int want_split) {
    attest a;
    char small[4];
    if (!read_attest(&a)) {
        return;
    }
    const int route = a.route, tm = a.tm, tn = a.tn, tk = a.tk, split = a.split;
    const char *kernel = a.kernel;
    check(route == want_route, "%s: attested route %d, want %d", what, route, want_route);
    if (want_split > 0) {
        check(split == want_split, "%s: attested split_k %d, want %d", what, split, want_split);
    }
    check(kernel[0] != '\0' && strlen(kernel) < sizeof a.kernel, "%s: attested kernel name '%s'",
          what, kernel);
    if (want_route == GP_ROUTE_MFMA) {
        check(tm > 0 && tn > 0 && tk > 0, "%s: MFMA tiles %dx%dx%d", what, tm, tn, tk);
    } else {
        check(tm >= 0 && tn >= 0 && tk >= 0, "%s: tiles %dx%dx%d", what, tm, tn, tk);
    }
    if (want_route == 0) {
        check(tm == 0 && tn == 0 && tk == 0 && split == 1, "%s: non-projection attests %d %d %d %d",
              what, tm, tn, tk, split);
    }
    /* truncation and NULL out-pointers */
    check_ok(gp.last_launch(NULL, NULL, NULL, NULL, NULL, small, (int)sizeof small),
             "gp_last_launch (small)");
    check(strlen(small) <= 3 && strncmp(small, kernel, strlen(small)) == 0,
          "%s: truncated kernel name '%s' vs '%s'", what, small, kernel);
}

/* gp_attn_pv attests its key chunks (ABI 3): route 0, tile_n =
 * GP_ATTN_PV_CHUNK_KEYS, split_k = the chunks of n_kv keys, no other tile. */
static void check_attest_pv_chunks(int n_kv) {
    const int want = (n_kv + GP_ATTN_PV_CHUNK_KEYS - 1) / GP_ATTN_PV_CHUNK_KEYS;
    attest a;
    if (!read_attest(&a)) {
        return;
    }
    check(a.route == 0 && a.tm == 0 && a.tn == GP_ATTN_PV_CHUNK_KEYS && a.tk == 0 &&
              a.split == want && a.kernel[0] != '\0',
          "gp_attn_pv: attests route %d tiles %dx%dx%d split %d kernel '%s', want route 0, "
          "0x%dx0, %d chunks of n_kv=%d",
          a.route, a.tm, a.tn, a.tk, a.split, a.kernel, GP_ATTN_PV_CHUNK_KEYS, want, n_kv);
}

/* ---- linear -------------------------------------------------------------------- */

static int valu_split(int N, int K) {
    return (N <= GP_VALU_SPLIT_MAX_N && K >= GP_VALU_SPLIT_K) ? GP_VALU_SPLIT_K : 1;
}

/* Runs gp_linear on host data; returns the downloaded y (M*N elements). */
static unsigned char *run_linear(int dtype, int route, const void *x, const void *w, const void *b,
                                 int M, int N, int K, int *status) {
    size_t es = gp_dtype_size(dtype);
    void *dx = dev_upload(x, (size_t)M * K * es);
    void *dw = dev_upload(w, (size_t)N * K * es);
    void *db = b ? dev_upload(b, (size_t)N * es) : NULL;
    void *dy = dev_poisoned((size_t)M * N * es);
    unsigned char *y = NULL;
    *status = gp.linear(dtype, route, dx, dw, db, dy, M, N, K);
    if (route == GP_ROUTE_BLAS && !route_usable(route) && *status == GP_ERR_UNSUPPORTED) {
        /* a backend without a vendor BLAS: allowed, with a message saying so */
        check(strstr(gp.last_error(), "blas") != NULL,
              "gp_linear route=blas unsupported: message '%s' should name the route",
              gp.last_error());
    } else if (check_ok(*status, "gp_linear")) {
        y = dev_download_checked(dy, (size_t)M * N * es, es, "gp_linear");
    }
    dev_free(dx);
    dev_free(dw);
    dev_free(db);
    dev_free(dy);
    return y;
}

static void test_linear_shape(int dtype, int M, int N, int K, int with_bias) {
    /* BLAS (ABI 2): correct or GP_ERR_UNSUPPORTED, never batch invariant */
    static const int routes[4] = {GP_ROUTE_AUTO, GP_ROUTE_MFMA, GP_ROUTE_VALU, GP_ROUTE_BLAS};
    size_t es = gp_dtype_size(dtype);
    tensor x = tensor_random(dtype, (size_t)M * K, 0.05, 1.0);
    tensor w = tensor_random(dtype, (size_t)N * K, 0.05, 1.0);
    tensor b = tensor_random(dtype, (size_t)N, 0.05, 1.0);
    double u = unit_roundoff(dtype);
    int r, m, n, k, status;
    for (r = 0; r < 4; r++) {
        int route = routes[r];
        int ran = route == GP_ROUTE_AUTO ? (M > 1 ? GP_ROUTE_MFMA : GP_ROUTE_VALU) : route;
        long bad = 0;
        double worst = 0.0;
        unsigned char *y;
        /* BLAS outside gp_forced_routes() must be GP_ERR_UNSUPPORTED (run_linear
         * checks the message); MFMA / VALU outside it are not called */
        if (!route_usable(route) && !(cap.routes && route == GP_ROUTE_BLAS)) {
            continue;
        }
        y = run_linear(dtype, route, x.raw, w.raw, with_bias ? b.raw : NULL, M, N, K, &status);
        if (y == NULL) {
            continue;
        }
        check_attest(route == GP_ROUTE_BLAS ? "gp_linear blas" : "gp_linear", ran,
                     ran == GP_ROUTE_VALU ? valu_split(N, K) : 1);
        for (m = 0; m < M; m++) {
            for (n = 0; n < N; n++) {
                double ref = with_bias ? b.val[n] : 0.0, mag = with_bias ? fabs(b.val[n]) : 0.0;
                double got = gp_load(dtype, y, (size_t)m * N + n), err, tol;
                for (k = 0; k < K; k++) {
                    double p = x.val[(size_t)m * K + k] * w.val[(size_t)n * K + k];
                    ref += p;
                    mag += fabs(p);
                }
                err = fabs(got - ref);
                tol = 2.0 * (u * fabs(ref) + (K + 2) * EPS32 * mag) + tiny(dtype);
                if (!(err <= tol)) {
                    if (bad++ == 0) {
                        worst = err / tol;
                    }
                }
            }
        }
        check(bad == 0,
              "gp_linear %s route=%d M=%d N=%d K=%d bias=%d: %ld outputs beyond bound "
              "(first at %.2fx)",
              dtype_str(dtype), route, M, N, K, with_bias, bad, worst);
        /* batch invariance of forced routes: row m alone == row m of the batch */
        if (M > 1 && route != GP_ROUTE_AUTO && route != GP_ROUTE_BLAS) {
            int rows[2];
            int i;
            rows[0] = M - 1;
            rows[1] = 0;
            for (i = 0; i < 2; i++) {
                const unsigned char *xr = (const unsigned char *)x.raw + (size_t)rows[i] * K * es;
                unsigned char *y1 =
                    run_linear(dtype, route, xr, w.raw, with_bias ? b.raw : NULL, 1, N, K, &status);
                if (y1 != NULL) {
                    check_invariant(stage_declared("q_proj") && stage_declared("k_proj") &&
                                        stage_declared("v_proj") && stage_declared("attn_out"),
                                    memcmp(y1, y + (size_t)rows[i] * N * es, (size_t)N * es) == 0,
                                    "gp_linear %s route=%d M=%d N=%d K=%d: row %d differs from "
                                    "M=1 call",
                                    dtype_str(dtype), route, M, N, K, rows[i]);
                    check_attest("gp_linear M=1", route,
                                 route == GP_ROUTE_VALU ? valu_split(N, K) : 1);
                }
                free(y1);
            }
        }
        free(y);
    }
    tensor_free(&x);
    tensor_free(&w);
    tensor_free(&b);
}

static void test_linear(void) {
    /* K not a multiple of 32 or of 4, N <= 256 (split-K) and > 256, K < 4 */
    static const int shapes[][3] = {{1, 16, 7},     {3, 40, 100}, {4, 300, 75}, {5, 64, 257},
                                    {2, 256, 3},    {1, 1, 1},    {1, 257, 96}, {6, 33, 1030},
                                    {1, 128, 4099}, {3, 256, 130}};
    int dtype, s;
    for (dtype = 0; dtype < 3; dtype++) {
        for (s = 0; s < (int)(sizeof shapes / sizeof shapes[0]); s++) {
            test_linear_shape(dtype, shapes[s][0], shapes[s][1], shapes[s][2], s % 2);
        }
    }
}

/* ---- device-to-device copy (ABI 2) ------------------------------------------------ */

static void test_memcpy_d2d(void) {
    static const size_t sizes[] = {1, 7, 256, 4099, (1u << 20) + 3};
    size_t s, i;
    for (s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
        size_t bytes = sizes[s];
        unsigned char *src = (unsigned char *)malloc(bytes);
        unsigned char *got;
        void *dsrc, *ddst;
        for (i = 0; i < bytes; i++) {
            src[i] = (unsigned char)((i * 131u + s * 17u + 1u) & 0xFFu);
            if (src[i] == 0xFF) {
                src[i] = 0x11; /* 0xFF is the "not written" poison */
            }
        }
        dsrc = dev_upload(src, bytes);
        ddst = dev_poisoned(bytes);
        check_ok(gp.memcpy_d2d(ddst, dsrc, bytes), "gp_memcpy_d2d");
        got = dev_download_checked(ddst, bytes, 1, "gp_memcpy_d2d");
        check(memcmp(got, src, bytes) == 0, "gp_memcpy_d2d: %zu bytes copied wrong", bytes);
        free(got);
        free(src);
        dev_free(dsrc);
        dev_free(ddst);
    }
    check_ok(gp.memcpy_d2d(NULL, NULL, 0), "gp_memcpy_d2d(bytes=0)");
    {
        void *d = NULL;
        check_ok(gp.malloc_(&d, 64), "gp_malloc");
        check(gp.memcpy_d2d(NULL, d, 16) == GP_ERR_NULL_POINTER &&
                  strstr(gp.last_error(), "gp_memcpy_d2d") != NULL &&
                  strstr(gp.last_error(), "dst") != NULL,
              "gp_memcpy_d2d NULL dst: want GP_ERR_NULL_POINTER naming dst, got '%s'",
              gp.last_error());
        check(gp.memcpy_d2d(d, NULL, 16) == GP_ERR_NULL_POINTER &&
                  strstr(gp.last_error(), "src") != NULL,
              "gp_memcpy_d2d NULL src: want GP_ERR_NULL_POINTER naming src, got '%s'",
              gp.last_error());
        dev_free(d);
    }
}

/* ---- rmsnorm -------------------------------------------------------------------- */

static void test_rmsnorm(void) {
    static const int shapes[][2] = {{1, 64}, {3, 100}, {2, 4096}, {4, 7}};
    int dtype, s, r, c;
    for (dtype = 0; dtype < 3; dtype++) {
        for (s = 0; s < 4; s++) {
            int rows = shapes[s][0], dim = shapes[s][1];
            size_t es = gp_dtype_size(dtype), n = (size_t)rows * dim;
            float eps = 1e-5f;
            tensor x = tensor_random(dtype, n, 0.05, 2.0);
            tensor w = tensor_random(dtype, (size_t)dim, 0.5, 1.5);
            void *dx = dev_upload(x.raw, n * es), *dw = dev_upload(w.raw, dim * es);
            void *dy = dev_poisoned(n * es);
            unsigned char *y;
            long bad = 0;
            if (!check_ok(gp.rmsnorm(dtype, dx, dw, dy, rows, dim, eps), "gp_rmsnorm")) {
                continue;
            }
            y = dev_download_checked(dy, n * es, es, "gp_rmsnorm");
            check_attest("gp_rmsnorm", 0, 1);
            for (r = 0; r < rows; r++) {
                double ss = 0.0, inv;
                for (c = 0; c < dim; c++) {
                    ss += x.val[(size_t)r * dim + c] * x.val[(size_t)r * dim + c];
                }
                inv = 1.0 / sqrt(ss / dim + (double)eps);
                for (c = 0; c < dim; c++) {
                    double ref = x.val[(size_t)r * dim + c] * inv * w.val[c];
                    double got = gp_load(dtype, y, (size_t)r * dim + c);
                    double tol = 2.0 * unit_roundoff(dtype) * fabs(ref) +
                                 (dim + 8) * EPS32 * fabs(ref) + tiny(dtype);
                    bad += !(fabs(got - ref) <= tol);
                }
            }
            check(bad == 0, "gp_rmsnorm %s rows=%d dim=%d: %ld outputs beyond bound",
                  dtype_str(dtype), rows, dim, bad);
            /* in place (y == x) gives the same bits */
            if (check_ok(gp.rmsnorm(dtype, dx, dw, dx, rows, dim, eps), "gp_rmsnorm in place")) {
                unsigned char *h = (unsigned char *)malloc(n * es);
                check_ok(gp.memcpy_d2h(h, dx, n * es), "gp_memcpy_d2h");
                check(memcmp(h, y, n * es) == 0, "gp_rmsnorm %s: in-place result differs",
                      dtype_str(dtype));
                free(h);
            }
            free(y);
            dev_free(dx);
            dev_free(dw);
            dev_free(dy);
            tensor_free(&x);
            tensor_free(&w);
        }
    }
}

/* ---- rope ------------------------------------------------------------------------- */

static void test_rope(void) {
    static const int shapes[][3] = {{1, 4, 64}, {3, 2, 128}, {2, 3, 8}, {5, 1, 256}};
    static const float thetas[2] = {10000.0f, 1000000.0f};
    int dtype, s, layout;
    for (dtype = 0; dtype < 3; dtype++) {
        for (s = 0; s < 4; s++) {
            for (layout = 0; layout < 2; layout++) {
                int rows = shapes[s][0], nh = shapes[s][1], hd = shapes[s][2];
                int width = nh * hd, half = hd / 2, r, h, i;
                float theta = thetas[(s + layout) % 2];
                size_t es = gp_dtype_size(dtype), n = (size_t)rows * width;
                tensor x = tensor_random(dtype, n, 0.05, 2.0);
                int32_t pos[8];
                void *dx, *dy, *dpos;
                unsigned char *y;
                long bad = 0;
                for (r = 0; r < rows; r++) {
                    pos[r] = r == 0 ? 0 : (int32_t)(rng_u32() % 2048);
                }
                dx = dev_upload(x.raw, n * es);
                dpos = dev_upload(pos, rows * sizeof(int32_t));
                dy = dev_poisoned(n * es);
                if (!check_ok(
                        gp.rope(dtype, layout, dx, dy, (const int32_t *)dpos, rows, nh, hd, theta),
                        "gp_rope")) {
                    continue;
                }
                y = dev_download_checked(dy, n * es, es, "gp_rope");
                check_attest("gp_rope", 0, 1);
                for (r = 0; r < rows; r++) {
                    for (i = 0; i < half; i++) {
                        /* the header's f32 angle */
                        float angle_f = (float)pos[r] * powf(theta, -2.0f * (float)i / (float)hd);
                        double angle = angle_f, c = cos(angle), sn = sin(angle);
                        for (h = 0; h < nh; h++) {
                            size_t base = (size_t)r * width + (size_t)h * hd;
                            size_t i0 = layout == GP_ROPE_NEOX ? base + i : base + 2 * i;
                            size_t i1 = layout == GP_ROPE_NEOX ? base + i + half : i0 + 1;
                            double x0 = x.val[i0], x1 = x.val[i1];
                            double ref0 = x0 * c - x1 * sn, ref1 = x0 * sn + x1 * c;
                            double slack =
                                (fabs(x0) + fabs(x1)) * 8.0 * EPS32 * (fabs(angle) + 1.0);
                            double u2 = 2.0 * unit_roundoff(dtype);
                            bad += !(fabs(gp_load(dtype, y, i0) - ref0) <=
                                     u2 * fabs(ref0) + slack + tiny(dtype));
                            bad += !(fabs(gp_load(dtype, y, i1) - ref1) <=
                                     u2 * fabs(ref1) + slack + tiny(dtype));
                        }
                    }
                }
                check(bad == 0,
                      "gp_rope %s layout=%d rows=%d heads=%d head_dim=%d: %ld beyond bound",
                      dtype_str(dtype), layout, rows, nh, hd, bad);
                /* in place and batch invariance (row r alone) */
                if (check_ok(
                        gp.rope(dtype, layout, dx, dx, (const int32_t *)dpos, rows, nh, hd, theta),
                        "gp_rope in place")) {
                    unsigned char *hbuf = (unsigned char *)malloc(n * es);
                    check_ok(gp.memcpy_d2h(hbuf, dx, n * es), "gp_memcpy_d2h");
                    check(memcmp(hbuf, y, n * es) == 0, "gp_rope %s: in-place result differs",
                          dtype_str(dtype));
                    free(hbuf);
                }
                if (rows > 1) {
                    void *dx1 = dev_upload((unsigned char *)x.raw + (size_t)(rows - 1) * width * es,
                                           width * es);
                    void *dp1 = dev_upload(&pos[rows - 1], sizeof(int32_t));
                    void *dy1 = dev_poisoned(width * es);
                    if (check_ok(gp.rope(dtype, layout, dx1, dy1, (const int32_t *)dp1, 1, nh, hd,
                                         theta),
                                 "gp_rope rows=1")) {
                        unsigned char *y1 =
                            dev_download_checked(dy1, width * es, es, "gp_rope rows=1");
                        check_invariant(
                            stage_declared("q_rope") && stage_declared("k_rope"),
                            memcmp(y1, y + (size_t)(rows - 1) * width * es, width * es) == 0,
                            "gp_rope %s: last row differs from rows=1 call", dtype_str(dtype));
                        free(y1);
                    }
                    dev_free(dx1);
                    dev_free(dp1);
                    dev_free(dy1);
                }
                free(y);
                dev_free(dx);
                dev_free(dy);
                dev_free(dpos);
                tensor_free(&x);
            }
        }
    }
}

/* ---- kv_append -------------------------------------------------------------------------- */

static void test_kv_append(void) {
    static const int cases[][4] = {/* rows, kv_width, slot, capacity */
                                   {1, 64, 3, 10},
                                   {4, 24, 0, 4},
                                   {3, 128, 5, 9},
                                   {1, 8, 9, 10}};
    int dtype, s;
    for (dtype = 0; dtype < 3; dtype++) {
        for (s = 0; s < 4; s++) {
            int rows = cases[s][0], kvw = cases[s][1], slot = cases[s][2], cap = cases[s][3];
            size_t es = gp_dtype_size(dtype), rb = (size_t)kvw * es;
            tensor k = tensor_random(dtype, (size_t)rows * kvw, 0.05, 1.0);
            tensor v = tensor_random(dtype, (size_t)rows * kvw, 0.05, 1.0);
            void *dk = dev_upload(k.raw, rows * rb), *dv = dev_upload(v.raw, rows * rb);
            void *dkc = dev_poisoned(cap * rb), *dvc = dev_poisoned(cap * rb);
            unsigned char *hk, *hv;
            int bad = 0, j;
            size_t i;
            if (!check_ok(gp.kv_append(dtype, dk, dv, dkc, dvc, rows, kvw, slot, cap),
                          "gp_kv_append")) {
                continue;
            }
            check_attest("gp_kv_append", 0, 1);
            hk = (unsigned char *)malloc(cap * rb + GUARD_BYTES);
            hv = (unsigned char *)malloc(cap * rb + GUARD_BYTES);
            check_ok(gp.memcpy_d2h(hk, dkc, cap * rb + GUARD_BYTES), "gp_memcpy_d2h");
            check_ok(gp.memcpy_d2h(hv, dvc, cap * rb + GUARD_BYTES), "gp_memcpy_d2h");
            for (j = 0; j < cap; j++) {
                if (j >= slot && j < slot + rows) {
                    bad += memcmp(hk + j * rb, (unsigned char *)k.raw + (j - slot) * rb, rb) != 0;
                    bad += memcmp(hv + j * rb, (unsigned char *)v.raw + (j - slot) * rb, rb) != 0;
                } else {
                    for (i = 0; i < rb; i++) {
                        bad += hk[j * rb + i] != 0xFF || hv[j * rb + i] != 0xFF;
                    }
                }
            }
            for (i = 0; i < GUARD_BYTES; i++) {
                bad += hk[cap * rb + i] != GUARD_BYTE || hv[cap * rb + i] != GUARD_BYTE;
            }
            check(bad == 0, "gp_kv_append %s rows=%d slot=%d cap=%d: cache contents wrong",
                  dtype_str(dtype), rows, slot, cap);
            free(hk);
            free(hv);
            dev_free(dk);
            dev_free(dv);
            dev_free(dkc);
            dev_free(dvc);
            tensor_free(&k);
            tensor_free(&v);
        }
    }
}

/* ---- attention ------------------------------------------------------------------------ */

typedef struct {
    int n_q, n_kv, n_heads, n_kv_heads, head_dim, q_pos0;
} attn_shape;

static const attn_shape attn_shapes[] = {
    {1, 17, 4, 2, 64, 16},  {5, 12, 8, 2, 32, 7}, {3, 3, 2, 2, 8, 0},
    {4, 40, 6, 1, 128, 36}, {1, 1, 1, 1, 256, 0},
};
#define N_ATTN_SHAPES ((int)(sizeof attn_shapes / sizeof attn_shapes[0]))

static void test_attn_scores(void) {
    int dtype, s, causal;
    for (dtype = 0; dtype < 3; dtype++) {
        for (s = 0; s < N_ATTN_SHAPES; s++) {
            for (causal = 0; causal < 2; causal++) {
                attn_shape a = attn_shapes[s];
                int qw = a.n_heads * a.head_dim, kw = a.n_kv_heads * a.head_dim;
                int group = a.n_heads / a.n_kv_heads, h, i, j, c;
                size_t es = gp_dtype_size(dtype);
                size_t ns = (size_t)a.n_heads * a.n_q * a.n_kv;
                float scale = (float)(1.0 / sqrt((double)a.head_dim));
                tensor q = tensor_random(dtype, (size_t)a.n_q * qw, 0.05, 1.0);
                tensor k = tensor_random(dtype, (size_t)a.n_kv * kw, 0.05, 1.0);
                void *dq = dev_upload(q.raw, q.n * es), *dk = dev_upload(k.raw, k.n * es);
                void *ds = dev_poisoned(ns * sizeof(float));
                unsigned char *sc;
                long bad = 0;
                if (!check_ok(gp.attn_scores(dtype, dq, dk, (float *)ds, a.n_q, a.n_kv, a.n_heads,
                                             a.n_kv_heads, a.head_dim, a.q_pos0, scale, causal),
                              "gp_attn_scores")) {
                    continue;
                }
                sc = dev_download_checked(ds, ns * sizeof(float), sizeof(float), "gp_attn_scores");
                check_attest("gp_attn_scores", 0, 1);
                for (h = 0; h < a.n_heads; h++) {
                    for (i = 0; i < a.n_q; i++) {
                        for (j = 0; j < a.n_kv; j++) {
                            float got;
                            double ref = 0.0, mag = 0.0;
                            memcpy(&got, sc + (((size_t)h * a.n_q + i) * a.n_kv + j) * 4, 4);
                            if (causal && j > a.q_pos0 + i) {
                                bad += !(isinf(got) && got < 0);
                                continue;
                            }
                            for (c = 0; c < a.head_dim; c++) {
                                double p = q.val[(size_t)i * qw + h * a.head_dim + c] *
                                           k.val[(size_t)j * kw + (h / group) * a.head_dim + c];
                                ref += p;
                                mag += fabs(p);
                            }
                            ref *= scale;
                            bad += !(fabs(got - ref) <= (a.head_dim + 2) * EPS32 * scale * mag);
                        }
                    }
                }
                check(bad == 0, "gp_attn_scores %s shape %d causal=%d: %ld scores wrong",
                      dtype_str(dtype), s, causal, bad);
                free(sc);
                dev_free(dq);
                dev_free(dk);
                dev_free(ds);
                tensor_free(&q);
                tensor_free(&k);
            }
        }
    }
}

/* Random scores with some -inf (never a whole row), for softmax and pv. */
static float *random_scores(size_t rows, int n_kv, double spread) {
    float *s = (float *)malloc(rows * n_kv * sizeof(float));
    size_t r;
    int j;
    for (r = 0; r < rows; r++) {
        for (j = 0; j < n_kv; j++) {
            s[r * n_kv + j] = (j > 0 && rng_u32() % 5 == 0) ? -INFINITY : rng_nonzero(0.01, spread);
        }
    }
    return s;
}

static void test_softmax(void) {
    static const int shapes[][3] = {{4, 1, 17}, {2, 5, 12}, {1, 1, 1}, {3, 2, 1000}};
    int s;
    for (s = 0; s < 4; s++) {
        int nh = shapes[s][0], nq = shapes[s][1], nkv = shapes[s][2], j;
        size_t rows = (size_t)nh * nq, n = rows * nkv, r;
        float *sc = random_scores(rows, nkv, 30.0);
        void *ds = dev_upload(sc, n * sizeof(float)), *dp = dev_poisoned(n * sizeof(float));
        unsigned char *p;
        long bad = 0;
        if (!check_ok(gp.softmax((const float *)ds, (float *)dp, nh, nq, nkv), "gp_softmax")) {
            continue;
        }
        p = dev_download_checked(dp, n * sizeof(float), sizeof(float), "gp_softmax");
        check_attest("gp_softmax", 0, 1);
        for (r = 0; r < rows; r++) {
            double mx = -INFINITY, sum = 0.0;
            for (j = 0; j < nkv; j++) {
                mx = sc[r * nkv + j] > mx ? sc[r * nkv + j] : mx;
            }
            for (j = 0; j < nkv; j++) {
                sum += isinf(sc[r * nkv + j]) ? 0.0 : exp(sc[r * nkv + j] - mx);
            }
            for (j = 0; j < nkv; j++) {
                float got;
                double ref = isinf(sc[r * nkv + j]) ? 0.0 : exp(sc[r * nkv + j] - mx) / sum;
                memcpy(&got, p + (r * nkv + j) * 4, 4);
                if (ref == 0.0 && isinf(sc[r * nkv + j])) {
                    bad += got != 0.0f;
                } else {
                    bad += !(fabs(got - ref) <= (nkv + 8) * EPS32 * ref + ldexp(1.0, -40));
                }
            }
        }
        check(bad == 0, "gp_softmax shape %d: %ld probabilities wrong", s, bad);
        /* in place */
        if (check_ok(gp.softmax((const float *)ds, (float *)ds, nh, nq, nkv),
                     "gp_softmax in place")) {
            unsigned char *h = (unsigned char *)malloc(n * sizeof(float));
            check_ok(gp.memcpy_d2h(h, ds, n * sizeof(float)), "gp_memcpy_d2h");
            check(memcmp(h, p, n * sizeof(float)) == 0, "gp_softmax: in-place result differs");
            free(h);
        }
        free(p);
        free(sc);
        dev_free(ds);
        dev_free(dp);
    }
}

static void test_attn_pv(void) {
    int dtype, s;
    for (dtype = 0; dtype < 3; dtype++) {
        for (s = 0; s < N_ATTN_SHAPES; s++) {
            attn_shape a = attn_shapes[s];
            int ow = a.n_heads * a.head_dim, kw = a.n_kv_heads * a.head_dim;
            int group = a.n_heads / a.n_kv_heads, h, i, j, c;
            size_t es = gp_dtype_size(dtype), np = (size_t)a.n_heads * a.n_q * a.n_kv;
            size_t no = (size_t)a.n_q * ow;
            float *probs = (float *)malloc(np * sizeof(float));
            tensor v = tensor_random(dtype, (size_t)a.n_kv * kw, 0.05, 1.0);
            void *dp, *dv, *dout;
            unsigned char *o;
            long bad = 0;
            size_t t;
            for (t = 0; t < np; t++) {
                probs[t] = (float)(0.01 + rng_unit());
            }
            dp = dev_upload(probs, np * sizeof(float));
            dv = dev_upload(v.raw, v.n * es);
            dout = dev_poisoned(no * es);
            if (!check_ok(gp.attn_pv(dtype, (const float *)dp, dv, dout, a.n_q, a.n_kv, a.n_heads,
                                     a.n_kv_heads, a.head_dim),
                          "gp_attn_pv")) {
                continue;
            }
            o = dev_download_checked(dout, no * es, es, "gp_attn_pv");
            check_attest_pv_chunks(a.n_kv);
            for (i = 0; i < a.n_q; i++) {
                for (h = 0; h < a.n_heads; h++) {
                    for (c = 0; c < a.head_dim; c++) {
                        double ref = 0.0, mag = 0.0, got, tol;
                        for (j = 0; j < a.n_kv; j++) {
                            double pv = probs[((size_t)h * a.n_q + i) * a.n_kv + j] *
                                        v.val[(size_t)j * kw + (h / group) * a.head_dim + c];
                            ref += pv;
                            mag += fabs(pv);
                        }
                        got = gp_load(dtype, o, (size_t)i * ow + h * a.head_dim + c);
                        tol = 2.0 * unit_roundoff(dtype) * fabs(ref) + (a.n_kv + 2) * EPS32 * mag +
                              tiny(dtype);
                        bad += !(fabs(got - ref) <= tol);
                    }
                }
            }
            check(bad == 0, "gp_attn_pv %s shape %d: %ld outputs beyond bound", dtype_str(dtype), s,
                  bad);
            free(o);
            free(probs);
            dev_free(dp);
            dev_free(dv);
            dev_free(dout);
            tensor_free(&v);
        }
    }
}

/* ---- fused attention (ABI 3) ---------------------------------------------------------- */

static const attn_shape fused_shapes[] = {
    /* n_q, n_kv, n_heads, n_kv_heads, head_dim, q_pos0 */
    {1, 17, 4, 2, 64, 16},    /* decode, one split */
    {5, 12, 8, 2, 32, 7},     /* GQA 4:1, one split */
    {4, 200, 6, 2, 128, 196}, /* decode-like tail of a long cache: 4 splits */
    {70, 130, 4, 4, 8, 60},   /* rows across the 64 and 128 split boundaries */
    {3, 64, 2, 1, 16, 61},    /* MQA, exactly one full split */
    {2, 65, 2, 1, 256, 63},   /* a second split of one key, head_dim 256 */
    {6, 300, 8, 2, 64, 10},   /* non-causal sees 5 splits, causal 1 */
    {1, 1, 1, 1, 256, 0},
};
#define N_FUSED_SHAPES ((int)(sizeof fused_shapes / sizeof fused_shapes[0]))

/* Runs gp_attention on host data; returns the downloaded out (and lse into
 * *lse_out, when with_lse), or NULL on failure. */
static unsigned char *run_attention(int dtype, const tensor *q, const tensor *k, const tensor *v,
                                    attn_shape a, float scale, int causal, int with_lse,
                                    unsigned char **lse_out) {
    size_t es = gp_dtype_size(dtype);
    size_t no = (size_t)a.n_q * a.n_heads * a.head_dim * es, nl = (size_t)a.n_heads * a.n_q * 4;
    void *dq = dev_upload(q->raw, q->n * es);
    void *dk = dev_upload(k->raw, k->n * es), *dv = dev_upload(v->raw, v->n * es);
    void *dout = dev_poisoned(no), *dlse = with_lse ? dev_poisoned(nl) : NULL;
    unsigned char *out = NULL;
    if (lse_out != NULL) {
        *lse_out = NULL;
    }
    if (check_ok(gp.attention(dtype, dq, dk, dv, dout, (float *)dlse, a.n_q, a.n_kv, a.n_heads,
                              a.n_kv_heads, a.head_dim, a.q_pos0, scale, causal),
                 "gp_attention")) {
        out = dev_download_checked(dout, no, es, "gp_attention out");
        if (with_lse) {
            *lse_out = dev_download_checked(dlse, nl, 4, "gp_attention lse");
        }
    }
    dev_free(dq);
    dev_free(dk);
    dev_free(dv);
    dev_free(dout);
    dev_free(dlse);
    return out;
}

/* Attestation of gp_attention: route 0, a kernel name; with the header's
 * split (tile_n == GP_ATTN_SPLIT_KEYS), split_k = the longest row's splits. */
static void check_attest_attention(const char *what, int longest_visible) {
    int want;
    attest a;
    if (!read_attest(&a)) {
        return;
    }
    const int route = a.route, tm = a.tm, tn = a.tn, tk = a.tk, split = a.split;
    const char *kernel = a.kernel;
    check(route == 0 && kernel[0] != '\0' && split >= 1 && tm >= 0 && tn >= 0 && tk >= 0,
          "%s: attests route %d tiles %dx%dx%d split %d kernel '%s'", what, route, tm, tn, tk,
          split, kernel);
    if (tn == GP_ATTN_SPLIT_KEYS) {
        want = (longest_visible + GP_ATTN_SPLIT_KEYS - 1) / GP_ATTN_SPLIT_KEYS;
        check(split == want, "%s: attests split_k %d, want %d splits of %d keys", what, split, want,
              GP_ATTN_SPLIT_KEYS);
    }
}

static void test_attention(void) {
    int dtype, s, causal;
    for (dtype = 0; dtype < 3; dtype++) {
        for (s = 0; s < N_FUSED_SHAPES; s++) {
            for (causal = 0; causal < 2; causal++) {
                attn_shape a = fused_shapes[s];
                int qw = a.n_heads * a.head_dim, kw = a.n_kv_heads * a.head_dim;
                int group = a.n_heads / a.n_kv_heads, h, i, j, c, r;
                size_t es = gp_dtype_size(dtype);
                float scale = (float)(1.0 / sqrt((double)a.head_dim));
                tensor q = tensor_random(dtype, (size_t)a.n_q * qw, 0.05, 1.0);
                tensor k = tensor_random(dtype, (size_t)a.n_kv * kw, 0.05, 1.0);
                tensor v = tensor_random(dtype, (size_t)a.n_kv * kw, 0.05, 1.0);
                double *sc = (double *)malloc((size_t)a.n_kv * sizeof(double));
                unsigned char *out, *lse = NULL, *out2;
                long bad_out = 0, bad_lse = 0;
                double worst = 0.0;
                out = run_attention(dtype, &q, &k, &v, a, scale, causal, 1, &lse);
                if (out == NULL) {
                    free(sc);
                    tensor_free(&q);
                    tensor_free(&k);
                    tensor_free(&v);
                    continue;
                }
                check_attest_attention("gp_attention", causal ? a.q_pos0 + a.n_q : a.n_kv);
                for (i = 0; i < a.n_q; i++) {
                    int n_vis = causal ? a.q_pos0 + i + 1 : a.n_kv;
                    for (h = 0; h < a.n_heads; h++) {
                        int g = h / group;
                        double mx = -INFINITY, l = 0.0, dmax = 0.0, smax = 0.0, ref_lse, got_lse;
                        float lf;
                        /* scores and the bound of their f32 error */
                        for (j = 0; j < n_vis; j++) {
                            double dot = 0.0, mag = 0.0;
                            for (c = 0; c < a.head_dim; c++) {
                                double p = q.val[(size_t)i * qw + h * a.head_dim + c] *
                                           k.val[(size_t)j * kw + g * a.head_dim + c];
                                dot += p;
                                mag += fabs(p);
                            }
                            sc[j] = dot * scale;
                            mx = sc[j] > mx ? sc[j] : mx;
                            mag = (a.head_dim + 2) * EPS32 * scale * mag;
                            dmax = mag > dmax ? mag : dmax;
                        }
                        for (j = 0; j < n_vis; j++) {
                            l += exp(sc[j] - mx);
                            smax = fabs(sc[j] - mx) > smax ? fabs(sc[j] - mx) : smax;
                        }
                        /* relative error of each weight: twice the score error, the
                         * f32 exponent differences, exp and sums of n_vis terms */
                        {
                            double rel = 2.0 * dmax + (2.0 * smax + n_vis + 16) * EPS32;
                            for (c = 0; c < a.head_dim; c++) {
                                double ref = 0.0, mag = 0.0, got, tol;
                                for (j = 0; j < n_vis; j++) {
                                    double pv = exp(sc[j] - mx) / l *
                                                v.val[(size_t)j * kw + g * a.head_dim + c];
                                    ref += pv;
                                    mag += fabs(pv);
                                }
                                got = gp_load(dtype, out, (size_t)i * qw + h * a.head_dim + c);
                                tol = 2.0 * unit_roundoff(dtype) * fabs(ref) + 2.0 * rel * mag +
                                      tiny(dtype);
                                if (!(fabs(got - ref) <= tol)) {
                                    if (bad_out++ == 0) {
                                        worst = fabs(got - ref) / tol;
                                    }
                                }
                            }
                            ref_lse = mx + log(l);
                            memcpy(&lf, lse + ((size_t)h * a.n_q + i) * 4, 4);
                            got_lse = lf;
                            bad_lse += !(fabs(got_lse - ref_lse) <=
                                         2.0 * rel + 4.0 * EPS32 * fabs(ref_lse));
                        }
                    }
                }
                check(bad_out == 0,
                      "gp_attention %s shape %d causal=%d: %ld outputs beyond bound (first at "
                      "%.2fx)",
                      dtype_str(dtype), s, causal, bad_out, worst);
                check(bad_lse == 0, "gp_attention %s shape %d causal=%d: %ld lse beyond bound",
                      dtype_str(dtype), s, causal, bad_lse);
                /* lse = NULL: the same out, bit for bit */
                out2 = run_attention(dtype, &q, &k, &v, a, scale, causal, 0, NULL);
                if (out2 != NULL) {
                    check(memcmp(out, out2, (size_t)a.n_q * qw * es) == 0,
                          "gp_attention %s shape %d causal=%d: out differs with lse=NULL",
                          dtype_str(dtype), s, causal);
                }
                free(out2);
                /* decode: row r alone (n_q = 1; causal: n_kv = q_pos0 + 1 as in a
                 * decode step) equals row r of this call, out and lse */
                for (r = a.n_q - 1; r >= 0; r = r == a.n_q - 1 && r > 0 ? 0 : -1) {
                    attn_shape d = a;
                    tensor q1 = q;
                    unsigned char *o1, *l1 = NULL;
                    d.n_q = 1;
                    d.q_pos0 = a.q_pos0 + r;
                    d.n_kv = causal ? d.q_pos0 + 1 : a.n_kv;
                    q1.raw = (unsigned char *)q.raw + (size_t)r * qw * es;
                    q1.n = (size_t)qw;
                    o1 = run_attention(dtype, &q1, &k, &v, d, scale, causal, 1, &l1);
                    if (o1 != NULL) {
                        int equal = memcmp(o1, out + (size_t)r * qw * es, (size_t)qw * es) == 0;
                        for (h = 0; h < a.n_heads; h++) {
                            equal &= memcmp(l1 + (size_t)h * 4, lse + ((size_t)h * a.n_q + r) * 4,
                                            4) == 0;
                        }
                        check_invariant(stage_declared("attn"), equal,
                                        "gp_attention %s shape %d causal=%d: row %d at n_q=1 "
                                        "differs from n_q=%d",
                                        dtype_str(dtype), s, causal, r, a.n_q);
                    }
                    free(o1);
                    free(l1);
                }
                free(out);
                free(lse);
                free(sc);
                tensor_free(&q);
                tensor_free(&k);
                tensor_free(&v);
            }
        }
    }
}

/* ---- declared capabilities (ABI 3) ------------------------------------------------------ */

static void test_declarations(void) {
    static const char *const stages[] = {
        "x_norm",    "q_proj",  "k_proj", "v_proj",    "q_rope",   "k_rope",   "kv_cache",
        "qk",        "softmax", "pv",     "attn",      "attn_out", "attn_res", "post_norm",
        "gate_proj", "up_proj", "act",    "down_proj", "mlp_res"};
    const int n_stages = (int)(sizeof stages / sizeof stages[0]);
    if (cap.routes) {
        const int known = (1 << GP_ROUTE_MFMA) | (1 << GP_ROUTE_VALU) | (1 << GP_ROUTE_BLAS);
        check((cap.route_mask & ~known) == 0,
              "gp_forced_routes: 0x%x has bits besides MFMA, VALU and BLAS", cap.route_mask);
        printf("abi_selftest: forced routes:%s%s%s\n",
               cap.route_mask & (1 << GP_ROUTE_MFMA) ? " mfma" : "",
               cap.route_mask & (1 << GP_ROUTE_VALU) ? " valu" : "",
               cap.route_mask & (1 << GP_ROUTE_BLAS) ? " blas" : "");
    }
    if (cap.invariance) {
        /* a comma-separated list of known stage names, each at most once */
        const char *p = cap.stages;
        int seen[32] = {0}, ok = cap.stages[0] != '\0', i;
        while (ok && *p != '\0') {
            const char *end = strchr(p, ',');
            size_t len = end != NULL ? (size_t)(end - p) : strlen(p);
            int found = 0;
            for (i = 0; i < n_stages; i++) {
                if (strlen(stages[i]) == len && strncmp(p, stages[i], len) == 0) {
                    found = 1;
                    ok &= seen[i]++ == 0;
                }
            }
            ok &= found;
            p += len;
            if (*p == ',') {
                ok &= p[1] != '\0';
                p++;
            }
        }
        check(ok, "gp_batch_invariant_stages: '%s' is not a list of distinct stage names",
              cap.stages);
        /* a stage declared batch invariant must exist in the library */
        check(cap.fused || !stage_declared("attn"),
              "gp_batch_invariant_stages declares attn without gp_attention");
        check(cap.unfused ||
                  !(stage_declared("qk") || stage_declared("softmax") || stage_declared("pv")),
              "gp_batch_invariant_stages declares unfused stages without them");
        check(cap.mlp || !(stage_declared("attn_res") || stage_declared("post_norm") ||
                           stage_declared("act") || stage_declared("mlp_res")),
              "gp_batch_invariant_stages declares mlp stages without the mlp capability");
        printf("abi_selftest: batch-invariant stages: %s\n", cap.stages);
    }
}

/* ---- bad arguments ---------------------------------------------------------------------- */

static int is_ident(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
}

/* 1 if word occurs in s with no identifier character on either side. */
static int has_word(const char *s, const char *word) {
    size_t n = strlen(word);
    const char *p = s;
    while ((p = strstr(p, word)) != NULL) {
        if ((p == s || !is_ident(p[-1])) && !is_ident(p[n])) {
            return 1;
        }
        p++;
    }
    return 0;
}

static void expect_fail(int status, int want, const char *fn, const char *word, const char *what) {
    const char *msg = gp.last_error();
    check(status == want, "%s: status %d, want %d (%s)", what, status, want, msg);
    check(strncmp(msg, fn, strlen(fn)) == 0 && has_word(msg, word),
          "%s: message '%s' should start with %s and name %s", what, msg, fn, word);
}

static void test_bad_args(void) {
    enum { BIG = 4096 };
    void *a = NULL, *b = NULL, *c = NULL, *d = NULL, *pos = NULL, *probe = NULL;
    int32_t zero_pos[4] = {0, 1, 2, 3};
    float nan = NAN;
    int route_before = -1, route_after = -1, count = 0;
    char kb[GP_KERNEL_NAME_CAP], ka[GP_KERNEL_NAME_CAP];

    check_ok(gp.malloc_(&a, BIG), "gp_malloc");
    check_ok(gp.malloc_(&b, BIG), "gp_malloc");
    check_ok(gp.malloc_(&c, BIG), "gp_malloc");
    check_ok(gp.malloc_(&d, BIG), "gp_malloc");
    pos = dev_upload(zero_pos, sizeof zero_pos);
    /* the inputs are all zero bytes: a valid value in every dtype */
    {
        unsigned char *z = (unsigned char *)calloc(BIG, 1);
        check_ok(gp.memcpy_h2d(a, z, BIG), "gp_memcpy_h2d");
        check_ok(gp.memcpy_h2d(b, z, BIG), "gp_memcpy_h2d");
        free(z);
    }
    /* a successful call, whose attestation failing calls must not change */
    check_ok(gp.linear(GP_DTYPE_F32, route_usable(GP_ROUTE_MFMA) ? GP_ROUTE_MFMA : GP_ROUTE_AUTO, a,
                       b, NULL, c, 2, 4, 8),
             "gp_linear");
    if (cap.attestation) {
        check_ok(gp.last_launch(&route_before, NULL, NULL, NULL, NULL, kb, (int)sizeof kb),
                 "gp_last_launch");
    }

#define F32 GP_DTYPE_F32
#define INV GP_ERR_INVALID_ARG
#define NUL GP_ERR_NULL_POINTER
    expect_fail(gp.linear(F32, 0, a, b, NULL, c, 2, 4, 0), INV, "gp_linear", "K=0", "linear K=0");
    expect_fail(gp.linear(F32, 0, a, b, NULL, c, 0, 4, 8), INV, "gp_linear", "M=0", "linear M=0");
    expect_fail(gp.linear(F32, 0, a, b, NULL, c, 2, -3, 8), INV, "gp_linear", "N=-3", "linear N<0");
    expect_fail(gp.linear(F32, 0, a, b, NULL, c, 1, GP_MAX_LINEAR_N + 1, 8), INV, "gp_linear",
                "N=262145", "linear N>max");
    expect_fail(gp.linear(7, 0, a, b, NULL, c, 2, 4, 8), INV, "gp_linear", "dtype=7",
                "linear dtype");
    expect_fail(gp.linear(F32, 9, a, b, NULL, c, 2, 4, 8), INV, "gp_linear", "route=9",
                "linear route");
    expect_fail(gp.linear(F32, 0, NULL, b, NULL, c, 2, 4, 8), NUL, "gp_linear", "x", "linear x");
    expect_fail(gp.linear(F32, 0, a, NULL, NULL, c, 2, 4, 8), NUL, "gp_linear", "w", "linear w");
    expect_fail(gp.linear(F32, 0, a, b, NULL, NULL, 2, 4, 8), NUL, "gp_linear", "y", "linear y");
    expect_fail(gp.rmsnorm(F32, a, b, c, 2, 8, -1.0f), INV, "gp_rmsnorm", "eps", "rmsnorm eps<0");
    expect_fail(gp.rmsnorm(F32, a, b, c, 2, 8, nan), INV, "gp_rmsnorm", "eps", "rmsnorm eps NaN");
    expect_fail(gp.rmsnorm(F32, a, b, c, 2, 0, 1e-5f), INV, "gp_rmsnorm", "dim=0", "rmsnorm dim=0");
    expect_fail(gp.rmsnorm(F32, a, b, c, GP_MAX_SEQ + 1, 8, 1e-5f), INV, "gp_rmsnorm", "rows=65537",
                "rmsnorm rows>max");
    expect_fail(gp.rope(F32, 0, a, c, (const int32_t *)pos, 2, 2, 7, 1e4f), INV, "gp_rope",
                "head_dim=7", "rope odd head_dim");
    expect_fail(gp.rope(F32, 0, a, c, (const int32_t *)pos, 2, 1, 258, 1e4f), INV, "gp_rope",
                "head_dim=258", "rope head_dim>max");
    expect_fail(gp.rope(F32, 0, a, c, (const int32_t *)pos, 2, 2, 8, 0.0f), INV, "gp_rope", "theta",
                "rope theta=0");
    expect_fail(gp.rope(F32, 0, a, c, (const int32_t *)pos, 2, 2, 8, INFINITY), INV, "gp_rope",
                "theta", "rope theta=inf");
    expect_fail(gp.rope(F32, 5, a, c, (const int32_t *)pos, 2, 2, 8, 1e4f), INV, "gp_rope",
                "layout=5", "rope layout");
    expect_fail(gp.rope(F32, 0, a, c, NULL, 2, 2, 8, 1e4f), NUL, "gp_rope", "pos", "rope pos");
    expect_fail(gp.kv_append(F32, a, b, c, d, 1, 8, -1, 4), INV, "gp_kv_append", "slot=-1",
                "kv slot<0");
    expect_fail(gp.kv_append(F32, a, b, c, d, 2, 8, 3, 4), INV, "gp_kv_append", "capacity=4",
                "kv slot+rows>capacity");
    expect_fail(gp.kv_append(F32, a, b, NULL, d, 1, 8, 0, 4), NUL, "gp_kv_append", "k_cache",
                "kv k_cache");
    expect_fail(gp.kv_append(F32, a, b, c, NULL, 1, 8, 0, 4), NUL, "gp_kv_append", "v_cache",
                "kv v_cache");
    if (cap.unfused) {
        expect_fail(gp.attn_scores(F32, a, b, (float *)c, 1, 4, 6, 4, 8, 0, 1.0f, 1), INV,
                    "gp_attn_scores", "n_kv_heads=4", "scores n_heads%n_kv_heads");
        expect_fail(gp.attn_scores(F32, a, b, (float *)c, 1, 4, 2, 2, 12, 0, 1.0f, 1), INV,
                    "gp_attn_scores", "head_dim=12", "scores head_dim%8");
        expect_fail(gp.attn_scores(F32, a, b, (float *)c, 2, 4, 2, 2, 8, 3, 1.0f, 1), INV,
                    "gp_attn_scores", "n_kv=4", "scores q_pos0+n_q>n_kv");
        expect_fail(gp.attn_scores(F32, a, b, (float *)c, 1, 4, 2, 2, 8, -1, 1.0f, 1), INV,
                    "gp_attn_scores", "q_pos0=-1", "scores q_pos0<0");
        expect_fail(gp.attn_scores(F32, a, b, (float *)c, 1, 4, 2, 2, 8, 0, INFINITY, 1), INV,
                    "gp_attn_scores", "scale", "scores scale=inf");
        expect_fail(gp.attn_scores(F32, a, NULL, (float *)c, 1, 4, 2, 2, 8, 0, 1.0f, 1), NUL,
                    "gp_attn_scores", "k_cache", "scores k_cache");
        expect_fail(gp.softmax((const float *)a, (float *)c, 2, 1, 0), INV, "gp_softmax", "n_kv=0",
                    "softmax n_kv=0");
        expect_fail(gp.softmax((const float *)a, NULL, 2, 1, 4), NUL, "gp_softmax", "probs",
                    "softmax probs");
        expect_fail(gp.attn_pv(F32, (const float *)a, NULL, c, 1, 4, 2, 2, 8), NUL, "gp_attn_pv",
                    "v_cache", "pv v_cache");
        expect_fail(gp.attn_pv(F32, (const float *)a, b, c, 1, 4, 2, 0, 8), INV, "gp_attn_pv",
                    "n_kv_heads=0", "pv n_kv_heads=0");
    }
    if (cap.fused) {
        float *l = (float *)d;
        expect_fail(gp.attention(F32, a, b, b, c, l, 1, 4, 6, 4, 8, 0, 1.0f, 1), INV,
                    "gp_attention", "n_kv_heads=4", "attention n_heads%n_kv_heads");
        expect_fail(gp.attention(F32, a, b, b, c, l, 1, 4, 2, 2, 12, 0, 1.0f, 1), INV,
                    "gp_attention", "head_dim=12", "attention head_dim%8");
        expect_fail(gp.attention(F32, a, b, b, c, l, 1, 4, 1, 1, 264, 0, 1.0f, 1), INV,
                    "gp_attention", "head_dim=264", "attention head_dim>max");
        expect_fail(gp.attention(F32, a, b, b, c, l, 2, 4, 2, 2, 8, 3, 1.0f, 1), INV,
                    "gp_attention", "n_kv=4", "attention q_pos0+n_q>n_kv");
        expect_fail(gp.attention(F32, a, b, b, c, l, 1, 4, 2, 2, 8, -1, 1.0f, 0), INV,
                    "gp_attention", "q_pos0=-1", "attention q_pos0<0");
        expect_fail(gp.attention(F32, a, b, b, c, l, 0, 4, 2, 2, 8, 0, 1.0f, 1), INV,
                    "gp_attention", "n_q=0", "attention n_q=0");
        expect_fail(gp.attention(F32, a, b, b, c, l, 1, 0, 2, 2, 8, 0, 1.0f, 1), INV,
                    "gp_attention", "n_kv=0", "attention n_kv=0");
        expect_fail(gp.attention(F32, a, b, b, c, l, 1, GP_MAX_SEQ + 1, 2, 2, 8, 0, 1.0f, 1), INV,
                    "gp_attention", "n_kv=65537", "attention n_kv>max");
        expect_fail(gp.attention(F32, a, b, b, c, l, 1, 4, 0, 1, 8, 0, 1.0f, 1), INV,
                    "gp_attention", "n_heads=0", "attention n_heads=0");
        expect_fail(gp.attention(F32, a, b, b, c, l, 1, 4, 2, 2, 8, 0, INFINITY, 1), INV,
                    "gp_attention", "scale", "attention scale=inf");
        expect_fail(gp.attention(F32, a, b, b, c, l, 1, 4, 2, 2, 8, 0, nan, 1), INV, "gp_attention",
                    "scale", "attention scale=NaN");
        expect_fail(gp.attention(7, a, b, b, c, l, 1, 4, 2, 2, 8, 0, 1.0f, 1), INV, "gp_attention",
                    "dtype=7", "attention dtype");
        expect_fail(gp.attention(F32, NULL, b, b, c, l, 1, 4, 2, 2, 8, 0, 1.0f, 1), NUL,
                    "gp_attention", "q", "attention q");
        expect_fail(gp.attention(F32, a, NULL, b, c, l, 1, 4, 2, 2, 8, 0, 1.0f, 1), NUL,
                    "gp_attention", "k_cache", "attention k_cache");
        expect_fail(gp.attention(F32, a, b, NULL, c, l, 1, 4, 2, 2, 8, 0, 1.0f, 1), NUL,
                    "gp_attention", "v_cache", "attention v_cache");
        expect_fail(gp.attention(F32, a, b, b, NULL, l, 1, 4, 2, 2, 8, 0, 1.0f, 1), NUL,
                    "gp_attention", "out", "attention out");
    }
    expect_fail(gp.malloc_(&probe, 0), INV, "gp_malloc", "bytes", "malloc 0 bytes");
    expect_fail(gp.malloc_(NULL, 64), NUL, "gp_malloc", "ptr", "malloc NULL ptr");
    expect_fail(gp.device_count(NULL), NUL, "gp_device_count", "count", "device_count NULL");
    expect_fail(gp.memcpy_h2d(NULL, zero_pos, 4), NUL, "gp_memcpy_h2d", "dst", "h2d NULL dst");
    expect_fail(gp.memcpy_d2h(zero_pos, NULL, 4), NUL, "gp_memcpy_d2h", "src", "d2h NULL src");
#undef F32
#undef INV
#undef NUL

    /* failing calls leave the attestation of the last success */
    if (cap.attestation) {
        check_ok(gp.last_launch(&route_after, NULL, NULL, NULL, NULL, ka, (int)sizeof ka),
                 "gp_last_launch");
        check(route_after == route_before && strcmp(ka, kb) == 0,
              "failing calls changed the attestation (%d %s -> %d %s)", route_before, kb,
              route_after, ka);
    }
    /* and a valid call still works; gp_attention's lse is optional */
    if (cap.fused) {
        check_ok(gp.attention(GP_DTYPE_F32, a, b, b, c, NULL, 1, 4, 2, 2, 8, 3, 1.0f, 1),
                 "gp_attention lse=NULL");
    }
    check_ok(gp.linear(GP_DTYPE_F16, route_usable(GP_ROUTE_VALU) ? GP_ROUTE_VALU : GP_ROUTE_AUTO, a,
                       b, NULL, c, 1, 4, 8),
             "gp_linear after errors");
    check_attest("gp_linear after errors", GP_ROUTE_VALU, valu_split(4, 8));
    check_ok(gp.free_(NULL), "gp_free(NULL)");
    check_ok(gp.device_count(&count), "gp_device_count");
    check(count >= 1, "gp_device_count: %d", count);
    check(strcmp(gp.status_string(GP_ERR_INVALID_ARG), gp.status_string(GP_ERR_NULL_POINTER)) != 0,
          "gp_status_string: distinct strings");
    dev_free(a);
    dev_free(b);
    dev_free(c);
    dev_free(d);
    dev_free(pos);
}

/* ---- mlp --------------------------------------------------------------------------------- */

static double act_ref(int kind, double g) {
    if (kind == GP_ACT_GELU_TANH) {
        return 0.5 * g * (1.0 + tanh(0.7978845608028654 * (g + 0.044715 * g * g * g)));
    }
    return g / (1.0 + exp(-g));
}

/* Runs one "mlp" op on rows x width inputs a and b (op 0: gp_residual_add,
 * 1: gp_gated_act of kind, 2: gp_rmsnorm_offset with b's first width
 * elements as w and w_offset 1) and returns the downloaded output. */
static unsigned char *run_mlp(int op, int kind, int dtype, const tensor *a, const tensor *b,
                              int rows, int width) {
    size_t es = gp_dtype_size(dtype), n = (size_t)rows * width;
    void *da = dev_upload(a->raw, n * es), *db = dev_upload(b->raw, n * es);
    void *dy = dev_poisoned(n * es);
    unsigned char *y = NULL;
    int st = op == 0   ? gp.residual_add(dtype, da, db, dy, rows, width)
             : op == 1 ? gp.gated_act(dtype, kind, da, db, dy, rows, width)
                       : gp.rmsnorm_offset(dtype, da, db, dy, rows, width, 1e-5f, 1.0f);
    if (check_ok(st, op == 0   ? "gp_residual_add"
                     : op == 1 ? "gp_gated_act"
                               : "gp_rmsnorm_offset")) {
        y = dev_download_checked(dy, n * es, es, "mlp op");
    }
    dev_free(da);
    dev_free(db);
    dev_free(dy);
    return y;
}

/* Each "mlp" op against the double reference (one f32 rounding chain and
 * one store: 2 u_out |ref| + 16 eps32 (|ref| + |g u|) + tiny; |g u| covers
 * the cancellation of 1 + tanh), row 0 of a 3-row call equal to the 1-row
 * call for declared stages, and the argument checks. */
static void test_mlp(void) {
    static const char *const stage_of[] = {"mlp_res", "act", "post_norm"};
    int dtype, op, kind, r, c;
    for (dtype = 0; dtype < 3; dtype++) {
        for (op = 0; op < 3; op++) {
            for (kind = 0; kind < (op == 1 ? 2 : 1); kind++) {
                int rows = 3, width = 100;
                size_t es = gp_dtype_size(dtype), n = (size_t)rows * width;
                tensor a = tensor_random(dtype, n, 0.05, 4.0);
                tensor b = tensor_random(dtype, n, 0.05, 2.0);
                unsigned char *y = run_mlp(op, kind, dtype, &a, &b, rows, width);
                unsigned char *y1 = run_mlp(op, kind, dtype, &a, &b, 1, width);
                long bad = 0;
                if (y == NULL || y1 == NULL) {
                    free(y);
                    free(y1);
                    tensor_free(&a);
                    tensor_free(&b);
                    continue;
                }
                for (r = 0; r < rows; r++) {
                    double ss = 0.0, inv;
                    for (c = 0; c < width; c++) {
                        ss += a.val[(size_t)r * width + c] * a.val[(size_t)r * width + c];
                    }
                    inv = 1.0 / sqrt(ss / width + 1e-5);
                    for (c = 0; c < width; c++) {
                        size_t i = (size_t)r * width + c;
                        double ref = op == 0   ? a.val[i] + b.val[i]
                                     : op == 1 ? act_ref(kind, a.val[i]) * b.val[i]
                                               : a.val[i] * inv * (1.0 + b.val[c]);
                        double tol = 2.0 * unit_roundoff(dtype) * fabs(ref) +
                                     16 * EPS32 * (fabs(ref) + fabs(a.val[i] * b.val[i])) +
                                     (op == 2 ? (width + 8) * EPS32 * fabs(ref) : 0) + tiny(dtype);
                        bad += !(fabs(gp_load(dtype, y, i) - ref) <= tol);
                    }
                }
                check(bad == 0, "%s %s kind=%d: %ld outputs beyond bound", stage_of[op],
                      dtype_str(dtype), kind, bad);
                check_invariant(stage_declared(stage_of[op]), memcmp(y, y1, width * es) == 0,
                                "%s %s: row 0 differs between rows=3 and rows=1", stage_of[op],
                                dtype_str(dtype));
                free(y);
                free(y1);
                tensor_free(&a);
                tensor_free(&b);
            }
        }
    }
    {
        void *p = NULL;
        check_ok(gp.malloc_(&p, 4096), "gp_malloc");
        expect_fail(gp.residual_add(GP_DTYPE_F32, p, p, p, 0, 8), GP_ERR_INVALID_ARG,
                    "gp_residual_add", "rows", "gp_residual_add rows=0");
        expect_fail(gp.residual_add(GP_DTYPE_F32, p, NULL, p, 1, 8), GP_ERR_NULL_POINTER,
                    "gp_residual_add", "b", "gp_residual_add b=NULL");
        expect_fail(gp.gated_act(GP_DTYPE_F16, 7, p, p, p, 1, 8), GP_ERR_INVALID_ARG,
                    "gp_gated_act", "kind", "gp_gated_act kind=7");
        expect_fail(gp.gated_act(GP_DTYPE_F16, GP_ACT_SWIGLU, p, p, p, 1, GP_MAX_DIM + 1),
                    GP_ERR_INVALID_ARG, "gp_gated_act", "width", "gp_gated_act width too big");
        expect_fail(gp.rmsnorm_offset(GP_DTYPE_BF16, p, p, p, 1, 8, 1e-5f, NAN), GP_ERR_INVALID_ARG,
                    "gp_rmsnorm_offset", "w_offset", "gp_rmsnorm_offset w_offset=NaN");
        /* The call after the bad ones reads its 16 inputs: written first,
         * so compute-sanitizer's initcheck has nothing to report. */
        static const float zeros[16];
        check_ok(gp.memcpy_h2d(p, zeros, sizeof zeros), "gp_memcpy_h2d");
        check_ok(gp.residual_add(GP_DTYPE_F32, p, p, p, 2, 8), "gp_residual_add after bad calls");
        dev_free(p);
    }
}

/* ---- faults --------------------------------------------------------------------------- */

static const char *const header_faults[] = {
    "gemv_f16_acc",        "rope_wrong_layout", "rope_pos_prev",       "rope_pos_zero",
    "gqa_modulo",          "kv_slot_off",       "scale_missing",       "scale_twice",
    "mask_off_by_one",     "splitk_drop_tail",  "softmax_no_max",      "bias_skipped",
    "round_truncate",      "attn_no_rescale",   "attn_lse_off_by_one", "attn_causal_prev",
    "attn_gqa_modulo",     "act_wrong_half",    "residual_twice",      "gemv_skip_last_k_tile",
    "post_norm_no_offset",
};
#define N_HEADER_FAULTS ((int)(sizeof header_faults / sizeof header_faults[0]))

/* 1 if the library has the stage fault f acts on: the attn_* faults need
 * "fused", the qk / softmax / pv faults "unfused". */
static int fault_applies(int f) {
    const char *name = header_faults[f];
    if (strncmp(name, "attn_", 5) == 0) {
        return cap.fused;
    }
    if (strcmp(name, "act_wrong_half") == 0 || strcmp(name, "residual_twice") == 0 ||
        strcmp(name, "post_norm_no_offset") == 0) {
        return cap.mlp;
    }
    if (strcmp(name, "gqa_modulo") == 0 || strncmp(name, "scale_", 6) == 0 ||
        strcmp(name, "mask_off_by_one") == 0 || strcmp(name, "softmax_no_max") == 0) {
        return cap.unfused;
    }
    return 1;
}

/* The fused-attention fault scenario: 3 splits of keys (n_kv = 150), GQA
 * with 2 KV heads, causal, the last rows of the cache; out then lse. */
static unsigned char *attention_fault_scenario(const char *name, int rows, size_t *bytes) {
    int nh = 4, nkvh = 2, hd = 16, nkv = 150, q_pos0 = nkv - rows, qw = nh * hd, kw = nkvh * hd;
    size_t no = (size_t)rows * qw * 4, nl = (size_t)nh * rows * 4;
    tensor q = tensor_random(GP_DTYPE_F32, (size_t)rows * qw, 0.05, 1.0);
    tensor k = tensor_random(GP_DTYPE_F32, (size_t)nkv * kw, 0.05, 1.0);
    tensor v = tensor_random(GP_DTYPE_F32, (size_t)nkv * kw, 0.05, 1.0);
    void *dq, *dk, *dv, *dout, *dlse;
    unsigned char *out = (unsigned char *)calloc(no + nl, 1);
    size_t t;
    /* keys of very different scores per split, so that the split maxima
     * differ and the rescaling matters */
    for (t = 0; t < k.n; t++) {
        float f = (float)k.val[t] * (float)(1 + (int)((t / (size_t)kw) % 7));
        gp_store(GP_DTYPE_F32, k.raw, t, f, 0);
    }
    dq = dev_upload(q.raw, q.n * 4);
    dk = dev_upload(k.raw, k.n * 4);
    dv = dev_upload(v.raw, v.n * 4);
    dout = dev_poisoned(no);
    dlse = dev_poisoned(nl);
    *bytes = no + nl;
    if (check_ok(gp.attention(GP_DTYPE_F32, dq, dk, dv, dout, (float *)dlse, rows, nkv, nh, nkvh,
                              hd, q_pos0, 0.25f, 1),
                 name)) {
        unsigned char *o = dev_download_checked(dout, no, 4, name);
        unsigned char *l = dev_download_checked(dlse, nl, 4, name);
        memcpy(out, o, no);
        memcpy(out + no, l, nl);
        free(o);
        free(l);
    }
    dev_free(dq);
    dev_free(dk);
    dev_free(dv);
    dev_free(dout);
    dev_free(dlse);
    tensor_free(&q);
    tensor_free(&k);
    tensor_free(&v);
    return out;
}

/* Output of the op a fault targets, at row count `rows` (1 or 2); fixed data
 * per fault so that the outputs with and without the fault are comparable. */
static unsigned char *fault_scenario(int f, int rows, size_t *bytes) {
    const char *name = header_faults[f];
    unsigned char *out = NULL;
    uint64_t saved = rng_state;
    int status;
    rng_state = 0x1234567ull + (uint64_t)f * 977u; /* same data each time */
    if (strncmp(name, "attn_", 5) == 0) {
        out = attention_fault_scenario(name, rows, bytes);
    } else if (strcmp(name, "act_wrong_half") == 0 || strcmp(name, "residual_twice") == 0 ||
               strcmp(name, "post_norm_no_offset") == 0) {
        int op = strcmp(name, "residual_twice") == 0   ? 0
                 : strcmp(name, "act_wrong_half") == 0 ? 1
                                                       : 2;
        int width = 40;
        tensor a = tensor_random(GP_DTYPE_F32, (size_t)2 * width, 0.05, 1.0);
        tensor b = tensor_random(GP_DTYPE_F32, (size_t)2 * width, 0.05, 1.0);
        out = run_mlp(op, GP_ACT_SWIGLU, GP_DTYPE_F32, &a, &b, rows, width);
        *bytes = (size_t)rows * width * 4;
        tensor_free(&a);
        tensor_free(&b);
    } else if (strcmp(name, "gemv_skip_last_k_tile") == 0) {
        int N = 8, K = 300; /* K > 256: the VALU GEMV's last tile is k 256..299 */
        tensor x = tensor_random(GP_DTYPE_F32, (size_t)2 * K, 0.05, 1.0);
        tensor w = tensor_random(GP_DTYPE_F32, (size_t)N * K, 0.05, 1.0);
        out = run_linear(GP_DTYPE_F32, route_usable(GP_ROUTE_VALU) ? GP_ROUTE_VALU : GP_ROUTE_AUTO,
                         x.raw, w.raw, NULL, rows, N, K, &status);
        *bytes = (size_t)rows * N * 4;
        tensor_free(&x);
        tensor_free(&w);
    } else if (strcmp(name, "gemv_f16_acc") == 0 || strcmp(name, "splitk_drop_tail") == 0 ||
               strcmp(name, "bias_skipped") == 0 || strcmp(name, "round_truncate") == 0) {
        int dtype = strcmp(name, "round_truncate") == 0 ? GP_DTYPE_F16 : GP_DTYPE_F32;
        int N = 16, K = 103; /* K % 4 != 0, N <= 256: split-K with a tail */
        int route = strcmp(name, "bias_skipped") == 0 || strcmp(name, "round_truncate") == 0
                        ? GP_ROUTE_AUTO
                        : GP_ROUTE_VALU;
        tensor x = tensor_random(dtype, (size_t)2 * K, 0.05, 1.0);
        tensor w = tensor_random(dtype, (size_t)N * K, 0.05, 1.0);
        tensor b = tensor_random(dtype, (size_t)N, 0.05, 1.0);
        out = run_linear(dtype, route, x.raw, w.raw, b.raw, rows, N, K, &status);
        *bytes = (size_t)rows * N * gp_dtype_size(dtype);
        tensor_free(&x);
        tensor_free(&w);
        tensor_free(&b);
    } else if (strncmp(name, "rope_", 5) == 0) {
        int nh = 2, hd = 16;
        size_t n = (size_t)rows * nh * hd * 4;
        int32_t pos[2] = {5, 9};
        tensor x = tensor_random(GP_DTYPE_F32, (size_t)rows * nh * hd, 0.05, 1.0);
        void *dx = dev_upload(x.raw, n), *dp = dev_upload(pos, sizeof pos);
        void *dy = dev_poisoned(n);
        if (check_ok(gp.rope(GP_DTYPE_F32, GP_ROPE_NEOX, dx, dy, (const int32_t *)dp, rows, nh, hd,
                             10000.0f),
                     name)) {
            out = dev_download_checked(dy, n, 4, name);
        }
        *bytes = n;
        dev_free(dx);
        dev_free(dp);
        dev_free(dy);
        tensor_free(&x);
    } else if (strcmp(name, "kv_slot_off") == 0) {
        int kvw = 16, cap = 8, slot = 2;
        size_t rb = (size_t)kvw * 4;
        tensor k = tensor_random(GP_DTYPE_F32, (size_t)rows * kvw, 0.05, 1.0);
        void *dk = dev_upload(k.raw, rows * rb), *dkc = dev_poisoned(cap * rb);
        void *dvc = dev_poisoned(cap * rb);
        if (check_ok(gp.kv_append(GP_DTYPE_F32, dk, dk, dkc, dvc, rows, kvw, slot, cap), name)) {
            out = (unsigned char *)malloc(cap * rb);
            check_ok(gp.memcpy_d2h(out, dkc, cap * rb), "gp_memcpy_d2h");
        }
        *bytes = cap * rb;
        dev_free(dk);
        dev_free(dkc);
        dev_free(dvc);
        tensor_free(&k);
    } else if (strcmp(name, "softmax_no_max") == 0) {
        int nh = 2, nkv = 8, j;
        size_t n = (size_t)nh * rows * nkv;
        float *sc = (float *)malloc(n * sizeof(float));
        void *ds, *dp;
        for (j = 0; j < (int)n; j++) {
            sc[j] = 80.0f + 20.0f * (float)(j % 5); /* exp overflows without the max */
        }
        ds = dev_upload(sc, n * 4);
        dp = dev_poisoned(n * 4);
        if (check_ok(gp.softmax((const float *)ds, (float *)dp, nh, rows, nkv), name)) {
            out = dev_download_checked(dp, n * 4, 4, name);
        }
        *bytes = n * 4;
        free(sc);
        dev_free(ds);
        dev_free(dp);
    } else { /* attention: gqa_modulo (scores and pv), scale_*, mask_off_by_one */
        int nh = 4, nkvh = 2, hd = 8, nkv = 8, q_pos0 = 5, qw = nh * hd, kw = nkvh * hd;
        size_t ns = (size_t)nh * rows * nkv, no = (size_t)rows * qw;
        tensor q = tensor_random(GP_DTYPE_F32, (size_t)rows * qw, 0.05, 1.0);
        tensor k = tensor_random(GP_DTYPE_F32, (size_t)nkv * kw, 0.05, 1.0);
        void *dq = dev_upload(q.raw, q.n * 4), *dk = dev_upload(k.raw, k.n * 4);
        void *ds = dev_poisoned(ns * 4), *dp = dev_poisoned(ns * 4), *dout = dev_poisoned(no * 4);
        out = (unsigned char *)calloc(ns * 4 + no * 4, 1);
        *bytes = ns * 4 + no * 4;
        if (check_ok(gp.attn_scores(GP_DTYPE_F32, dq, dk, (float *)ds, rows, nkv, nh, nkvh, hd,
                                    q_pos0, 0.125f, 1),
                     name)) {
            unsigned char *s = dev_download_checked(ds, ns * 4, 4, name);
            memcpy(out, s, ns * 4);
            free(s);
        }
        if (strcmp(name, "gqa_modulo") == 0) {
            /* pv on fixed probabilities, so the pv fault shows on its own */
            float *probs = (float *)malloc(ns * 4);
            size_t t;
            void *dpr;
            for (t = 0; t < ns; t++) {
                probs[t] = 0.125f;
            }
            dpr = dev_upload(probs, ns * 4);
            if (check_ok(
                    gp.attn_pv(GP_DTYPE_F32, (const float *)dpr, dk, dout, rows, nkv, nh, nkvh, hd),
                    name)) {
                unsigned char *o = dev_download_checked(dout, no * 4, 4, name);
                memcpy(out + ns * 4, o, no * 4);
                free(o);
            }
            free(probs);
            dev_free(dpr);
        }
        dev_free(dq);
        dev_free(dk);
        dev_free(ds);
        dev_free(dp);
        dev_free(dout);
        tensor_free(&q);
        tensor_free(&k);
    }
    rng_state = saved;
    return out;
}

static void test_faults(void) {
    int n = gp.fault_count(), i, f;
    check(n >= N_HEADER_FAULTS, "gp_fault_count: %d < %d", n, N_HEADER_FAULTS);
    for (f = 0; f < N_HEADER_FAULTS; f++) {
        int found = 0;
        if (!fault_applies(f)) {
            continue;
        }
        for (i = 0; i < n; i++) {
            const char *nm = gp.fault_name(i);
            found |= nm != NULL && strcmp(nm, header_faults[f]) == 0;
        }
        check(found, "gp_fault_name: %s not listed", header_faults[f]);
    }
    for (i = 0; i < n; i++) {
        const char *nm = gp.fault_name(i);
        if (!check(nm != NULL, "gp_fault_name(%d) is NULL", i)) {
            continue;
        }
        check_ok(gp.set_fault(nm), nm);
        check(strcmp(gp.active_fault(), nm) == 0, "gp_active_fault: '%s' after setting '%s'",
              gp.active_fault(), nm);
    }
    check_ok(gp.set_fault(""), "gp_set_fault(\"\")");
    check(strcmp(gp.active_fault(), "none") == 0, "gp_active_fault after \"\": %s",
          gp.active_fault());
    check_ok(gp.set_fault("round_truncate"), "gp_set_fault");
    check_ok(gp.set_fault("none"), "gp_set_fault(\"none\")");
    check(strcmp(gp.active_fault(), "none") == 0, "gp_active_fault after none: %s",
          gp.active_fault());
    check(gp.set_fault("no_such_fault") == GP_ERR_UNKNOWN_FAULT,
          "gp_set_fault(no_such_fault) should be GP_ERR_UNKNOWN_FAULT");
    check(has_word(gp.last_error(), "no_such_fault") || strstr(gp.last_error(), "no_such_fault"),
          "gp_set_fault message '%s' should name the fault", gp.last_error());
    check_ok(gp.set_fault("none"), "gp_set_fault(\"none\")");

    /* each fault changes the decode shape (row count 1) and nothing else */
    for (f = 0; f < N_HEADER_FAULTS; f++) {
        size_t b1 = 0, b1f = 0, b2 = 0, b2f = 0;
        unsigned char *clean1, *clean2, *faulty1, *faulty2;
        if (!fault_applies(f)) {
            printf("abi_selftest: skipped fault %s: its stage's capability is absent\n",
                   header_faults[f]);
            continue;
        }
        clean1 = fault_scenario(f, 1, &b1);
        clean2 = fault_scenario(f, 2, &b2);
        check_ok(gp.set_fault(header_faults[f]), header_faults[f]);
        faulty1 = fault_scenario(f, 1, &b1f);
        faulty2 = fault_scenario(f, 2, &b2f);
        check_ok(gp.set_fault("none"), "gp_set_fault(none)");
        if (clean1 && clean2 && faulty1 && faulty2) {
            check(b1 == b1f && memcmp(clean1, faulty1, b1) != 0,
                  "fault %s: no effect at row count 1", header_faults[f]);
            check(b2 == b2f && memcmp(clean2, faulty2, b2) == 0,
                  "fault %s: changed the output at row count 2", header_faults[f]);
            if (strcmp(header_faults[f], "attn_lse_off_by_one") == 0) {
                /* out (the first rows*width floats) stays right, lse changes */
                size_t no = b1 - (size_t)4 * 4;
                check(memcmp(clean1, faulty1, no) == 0 &&
                          memcmp(clean1 + no, faulty1 + no, 16) != 0,
                      "fault attn_lse_off_by_one: want out unchanged and lse changed");
            }
        } else {
            check(0, "fault %s: scenario failed", header_faults[f]);
        }
        free(clean1);
        free(clean2);
        free(faulty1);
        free(faulty2);
    }
}

/* ---- main -------------------------------------------------------------------------------- */

int main(int argc, char **argv) {
    int version, route = 0;
    if (argc != 2) {
        fprintf(stderr, "usage: %s path/to/libgreta_parity_<backend>.so\n", argv[0]);
        return 2;
    }
    if (!load_library(argv[1])) {
        printf("abi_selftest: cannot load %s\n", argv[1]);
        return 1;
    }
    version = gp.abi_version();
    if (!check(version == GP_ABI_VERSION, "gp_abi_version: %d, this test knows %d", version,
               GP_ABI_VERSION)) {
        printf("abi_selftest: %ld checks, %ld failures\n", n_checks, n_failures);
        return 1;
    }
    printf("abi_selftest: %s (%s), ABI %d\n", argv[1], gp.backend_name(), version);
    check(gp.backend_name() != NULL && gp.backend_name()[0] != '\0', "gp_backend_name empty");
    if (cap.attestation) {
        check(gp.last_launch(&route, NULL, NULL, NULL, NULL, NULL, 0) == GP_ERR_INVALID_ARG,
              "gp_last_launch before any call should be GP_ERR_INVALID_ARG");
    }
    check(gp.last_error() != NULL, "gp_last_error is NULL");
    if (cap.faults) {
        check_ok(gp.set_fault("none"), "gp_set_fault(none)");
    }
    cap.route_mask = cap.routes ? gp.forced_routes() : 0;
    cap.stages = "";
    if (cap.invariance) {
        cap.stages = gp.batch_invariant_stages();
        check(cap.stages != NULL, "gp_batch_invariant_stages returned NULL");
        if (cap.stages == NULL) {
            cap.stages = "";
        }
    }

    test_declarations();
    if (cap.d2d) {
        test_memcpy_d2d();
    } else {
        skip_note("gp_memcpy_d2d", "d2d");
    }
    test_linear();
    test_rmsnorm();
    test_rope();
    test_kv_append();
    if (cap.unfused) {
        test_attn_scores();
        test_softmax();
        test_attn_pv();
    } else {
        skip_note("gp_attn_scores, gp_softmax, gp_attn_pv", "unfused");
    }
    if (cap.fused) {
        test_attention();
    } else {
        skip_note("gp_attention", "fused");
    }
    if (cap.mlp) {
        test_mlp();
    } else {
        skip_note("gp_residual_add, gp_rmsnorm_offset, gp_gated_act", "mlp");
    }
    test_bad_args();
    if (cap.faults) {
        test_faults();
    } else {
        skip_note("fault injection", "faults");
    }
    if (!cap.attestation) {
        skip_note("attestation checks", "attestation");
    }
    if (!cap.routes) {
        skip_note("forced routes (gp_linear ran with AUTO only)", "routes");
    }
    if (n_undeclared_variant > 0) {
        printf("abi_selftest: %ld rows of undeclared stages differ between row count 1 and more "
               "(allowed: not declared batch invariant)\n",
               n_undeclared_variant);
    }

    printf("abi_selftest: %ld checks, %ld failures\n", n_checks, n_failures);
    return n_failures == 0 ? 0 : 1;
}
