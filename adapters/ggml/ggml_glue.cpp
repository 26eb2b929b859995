/*
 * ggml_glue.cpp: the backend, memory and per-call graph of the ggml adapter
 * (see ggml_glue.h).
 *
 * Memory: gp_malloc is one ggml backend buffer per allocation, so each of
 * the harness's buffers (its guard regions included) is its own region:
 * on CUDA ggml_backend_alloc_buffer (cudaMalloc through ggml's CUDA buffer
 * type, 256-byte aligned), on the CPU a 256-byte aligned host block wrapped
 * with ggml_backend_cpu_buffer_from_ptr. A call's tensors are placed at the
 * caller's addresses with ggml_backend_tensor_alloc on a no_alloc context;
 * the pointer must lie, with the tensor's bytes, inside one buffer (checked
 * here first: ggml would abort). Intermediates are placed by one
 * ggml_backend_sched kept for the process (CUDA, then CPU for what CUDA
 * does not support). Nothing of the caller's memory is written but the
 * output regions, each by one ggml_cpy (the last node of its chain).
 */
#include "ggml_glue.h"

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <thread>

#include "ggml-cpu.h"
#ifdef GP_GGML_CUDA
#include "ggml-cuda.h"
#endif

extern "C" {
#include "gp_common.h"
}

namespace gp_ggml {

namespace {

/* ggml's INFO/DEBUG lines (device listings, graph allocations) would bury
 * the harness's output; warnings and errors go to stderr. */
void log_filter(enum ggml_log_level level, const char *text, void *) {
    if (level == GGML_LOG_LEVEL_WARN || level == GGML_LOG_LEVEL_ERROR) {
        std::fputs(text, stderr);
    }
}

std::string short_commit() { return std::string(GP_GGML_COMMIT).substr(0, 7); }

/* Nodes of one call's graph (kMaxNodes) plus the scheduler's copies. */
constexpr size_t kMaxNodes = 512;
constexpr size_t kSchedGraphSize = 4 * kMaxNodes;

} // namespace

Backend &backend() {
    static Backend b = [] {
        Backend s;
        ggml_log_set(log_filter, nullptr);
        s.cpu = ggml_backend_cpu_init();
        if (s.cpu == nullptr) {
            s.init_error = "ggml_backend_cpu_init failed";
            s.name = "ggml " + short_commit() + " (no backend)";
            return s;
        }
        /* GRETA_GGML_THREADS: the CPU backend's threads (default: all). */
        int threads = static_cast<int>(std::thread::hardware_concurrency());
        if (const char *t = std::getenv("GRETA_GGML_THREADS")) {
            threads = std::atoi(t);
        }
        ggml_backend_cpu_set_n_threads(s.cpu, threads > 0 ? threads : 1);
#ifdef GP_GGML_CUDA
        s.cuda = true;
        s.backend = ggml_backend_cuda_init(0);
        if (s.backend == nullptr) {
            s.init_error = "ggml_backend_cuda_init(0) failed (no CUDA device?)";
            s.name = "ggml " + short_commit() + " CUDA (no device)";
            return s;
        }
        char desc[128] = "";
        ggml_backend_cuda_get_device_description(0, desc, sizeof desc);
        s.name = "ggml " + short_commit() + " " + ggml_backend_name(s.backend) + " " + desc;
        ggml_backend_t list[2] = {s.backend, s.cpu};
        const int n = 2;
#else
        s.backend = s.cpu;
        s.name = "ggml " + short_commit() + " cpu";
        ggml_backend_t list[1] = {s.cpu};
        const int n = 1;
#endif
        s.sched = ggml_backend_sched_new(list, nullptr, n, kSchedGraphSize, false, false);
        if (s.sched == nullptr) {
            s.init_error = "ggml_backend_sched_new failed";
            s.backend = nullptr;
        }
        return s;
    }();
    return b;
}

/* ---- memory ----------------------------------------------------------- */

namespace {

struct Region {
    ggml_backend_buffer_t buf;
    size_t bytes;
    void *host; /* the CPU backend's block (freed after the buffer) */
};

std::map<uintptr_t, Region> &regions() {
    static std::map<uintptr_t, Region> m;
    return m;
}

/* A 1-D I8 tensor over [p, p + bytes) of buf, on ctx. */
ggml_tensor *byte_tensor(ggml_context *ctx, ggml_backend_buffer_t buf, void *p, size_t bytes) {
    ggml_tensor *t = ggml_new_tensor_1d(ctx, GGML_TYPE_I8, static_cast<int64_t>(bytes));
    if (ggml_backend_tensor_alloc(buf, t, p) != GGML_STATUS_SUCCESS) {
        return nullptr;
    }
    return t;
}

} // namespace

int mem_alloc(void **ptr, size_t bytes) {
    Backend &b = backend();
    if (b.backend == nullptr) {
        return gp_fail(GP_ERR_DEVICE, "gp_malloc: %s", b.init_error.c_str());
    }
    const size_t rounded = (bytes + 255) / 256 * 256;
    Region r{nullptr, bytes, nullptr};
    if (b.cuda) {
        r.buf = ggml_backend_alloc_buffer(b.backend, rounded);
    } else {
        r.host = std::aligned_alloc(256, rounded);
        if (r.host != nullptr) {
            r.buf = ggml_backend_cpu_buffer_from_ptr(r.host, rounded);
        }
    }
    if (r.buf == nullptr) {
        std::free(r.host);
        return gp_fail(GP_ERR_OUT_OF_MEMORY,
                       "gp_malloc: %zu bytes: ggml could not allocate a buffer", bytes);
    }
    void *base = ggml_backend_buffer_get_base(r.buf);
    regions()[reinterpret_cast<uintptr_t>(base)] = r;
    *ptr = base;
    return GP_OK;
}

int mem_free(void *ptr) {
    auto &m = regions();
    auto it = m.find(reinterpret_cast<uintptr_t>(ptr));
    if (it == m.end()) {
        return gp_fail(GP_ERR_INVALID_ARG, "gp_free: ptr=%p was not returned by gp_malloc", ptr);
    }
    ggml_backend_buffer_free(it->second.buf);
    std::free(it->second.host);
    m.erase(it);
    return GP_OK;
}

ggml_backend_buffer_t mem_find(const void *p, size_t bytes) {
    auto &m = regions();
    const uintptr_t a = reinterpret_cast<uintptr_t>(p);
    auto it = m.upper_bound(a);
    if (it == m.begin()) {
        return nullptr;
    }
    --it;
    const uintptr_t lo = it->first;
    const size_t size = ggml_backend_buffer_get_size(it->second.buf);
    if (a < lo || bytes > size || a - lo > size - bytes) {
        return nullptr;
    }
    return it->second.buf;
}

int mem_copy(const char *fn, void *dst, const void *src, size_t bytes, int kind) {
    Backend &b = backend();
    if (b.backend == nullptr) {
        return gp_fail(GP_ERR_DEVICE, "%s: %s", fn, b.init_error.c_str());
    }
    ggml_backend_buffer_t db = kind == 1 ? nullptr : mem_find(dst, bytes);
    ggml_backend_buffer_t sb = kind == 0 ? nullptr : mem_find(src, bytes);
    if (kind != 1 && db == nullptr) {
        return gp_fail(GP_ERR_INVALID_ARG,
                       "%s: dst=%p (+%zu bytes) is not inside memory from gp_malloc", fn, dst,
                       bytes);
    }
    if (kind != 0 && sb == nullptr) {
        return gp_fail(GP_ERR_INVALID_ARG,
                       "%s: src=%p (+%zu bytes) is not inside memory from gp_malloc", fn, src,
                       bytes);
    }
    ggml_init_params ip = {ggml_tensor_overhead() * 4, nullptr, true};
    ggml_context *ctx = ggml_init(ip);
    if (ctx == nullptr) {
        return gp_fail(GP_ERR_OUT_OF_MEMORY, "%s: ggml_init failed", fn);
    }
    int rc = GP_OK;
    ggml_tensor *dt = db != nullptr ? byte_tensor(ctx, db, dst, bytes) : nullptr;
    ggml_tensor *st =
        sb != nullptr ? byte_tensor(ctx, sb, const_cast<void *>(src), bytes) : nullptr;
    if ((db != nullptr && dt == nullptr) || (sb != nullptr && st == nullptr)) {
        rc = gp_fail(GP_ERR_DEVICE, "%s: ggml_backend_tensor_alloc failed", fn);
    } else if (kind == 0) {
        ggml_backend_tensor_set(dt, src, 0, bytes);
    } else if (kind == 1) {
        ggml_backend_tensor_get(st, dst, 0, bytes);
    } else {
        ggml_backend_tensor_copy(st, dt);
    }
    ggml_free(ctx);
    return rc;
}

/* ---- graphs ----------------------------------------------------------- */

Graph::Graph(const char *fn) : fn_(fn) {
    ggml_init_params ip = {ggml_tensor_overhead() * kMaxNodes +
                               ggml_graph_overhead_custom(kMaxNodes, false),
                           nullptr, true};
    ctx_ = ggml_init(ip);
    if (ctx_ != nullptr) {
        gf_ = ggml_new_graph_custom(ctx_, kMaxNodes, false);
    }
}

Graph::~Graph() {
    if (ctx_ != nullptr) {
        ggml_free(ctx_);
    }
}

ggml_tensor *Graph::user(ggml_type t, std::vector<int64_t> ne, const void *p, const char *arg) {
    ne.resize(4, 1);
    ggml_tensor *x = ggml_new_tensor(ctx_, t, 4, ne.data());
    const size_t bytes = ggml_nbytes(x);
    if (error_ == 0 && mem_find(p, bytes) == nullptr) {
        error_ = gp_fail(GP_ERR_INVALID_ARG,
                         "%s: %s=%p (+%zu bytes) is not inside one buffer from gp_malloc", fn_, arg,
                         p, bytes);
    }
    ggml_set_name(x, arg);
    users_.emplace_back(x, const_cast<void *>(p));
    return x;
}

ggml_tensor *Graph::input(ggml_type t, std::vector<int64_t> ne, std::vector<uint8_t> data) {
    ne.resize(4, 1);
    ggml_tensor *x = ggml_new_tensor(ctx_, t, 4, ne.data());
    ggml_set_input(x);
    inputs_.emplace_back(x, std::move(data));
    return x;
}

ggml_tensor *Graph::zeros(ggml_type t, std::vector<int64_t> ne) {
    ne.resize(4, 1);
    ggml_tensor *x = ggml_new_tensor(ctx_, t, 4, ne.data());
    ggml_set_input(x);
    zeros_.push_back(x);
    return x;
}

void Graph::expand(ggml_tensor *node) { ggml_build_forward_expand(gf_, node); }

int Graph::run() {
    Backend &b = backend();
    if (b.backend == nullptr) {
        return gp_fail(GP_ERR_DEVICE, "%s: %s", fn_, b.init_error.c_str());
    }
    if (ctx_ == nullptr || gf_ == nullptr) {
        return gp_fail(GP_ERR_OUT_OF_MEMORY, "%s: ggml_init failed", fn_);
    }
    if (error_ != 0) {
        return error_;
    }
    for (auto &u : users_) {
        if (ggml_backend_tensor_alloc(mem_find(u.second, ggml_nbytes(u.first)), u.first,
                                      u.second) != GGML_STATUS_SUCCESS) {
            return gp_fail(GP_ERR_DEVICE, "%s: ggml_backend_tensor_alloc(%s) failed", fn_,
                           ggml_get_name(u.first));
        }
    }
    for (int i = 0; i < ggml_graph_n_nodes(gf_); i++) {
        ggml_tensor *n = ggml_graph_node(gf_, i);
        if (!ggml_backend_supports_op(b.backend, n) && !ggml_backend_supports_op(b.cpu, n)) {
            const ggml_tensor *s0 = n->src[0], *s1 = n->src[1];
            return gp_fail(GP_ERR_UNSUPPORTED,
                           "%s: no ggml backend supports %s (%s <- %s, %s; ne0=%lld)", fn_,
                           ggml_op_desc(n), ggml_type_name(n->type),
                           s0 ? ggml_type_name(s0->type) : "-", s1 ? ggml_type_name(s1->type) : "-",
                           static_cast<long long>(s0 ? s0->ne[0] : n->ne[0]));
        }
    }
    ggml_backend_sched_reset(b.sched);
    /* Uploaded data lives on the primary backend (the scheduler would put
     * inputs on the CPU and copy them over). */
    for (auto &in : inputs_) {
        ggml_backend_sched_set_tensor_backend(b.sched, in.first, b.backend);
    }
    for (ggml_tensor *z : zeros_) {
        ggml_backend_sched_set_tensor_backend(b.sched, z, b.backend);
    }
    for (ggml_tensor *n : pinned_) {
        ggml_backend_sched_set_tensor_backend(b.sched, n, b.cpu);
    }
    if (!ggml_backend_sched_alloc_graph(b.sched, gf_)) {
        return gp_fail(GP_ERR_OUT_OF_MEMORY, "%s: ggml_backend_sched_alloc_graph failed", fn_);
    }
    for (auto &in : inputs_) {
        ggml_backend_tensor_set(in.first, in.second.data(), 0, in.second.size());
    }
    for (ggml_tensor *z : zeros_) {
        ggml_backend_tensor_memset(z, 0, 0, ggml_nbytes(z));
    }
    ggml_status st = ggml_backend_sched_graph_compute(b.sched, gf_);
    if (st != GGML_STATUS_SUCCESS) {
        return gp_fail(st == GGML_STATUS_ALLOC_FAILED ? GP_ERR_OUT_OF_MEMORY : GP_ERR_DEVICE,
                       "%s: ggml_backend_sched_graph_compute: status %d", fn_,
                       static_cast<int>(st));
    }
    ggml_backend_sched_synchronize(b.sched);
    return GP_OK;
}

bool Graph::on_cpu(ggml_tensor *node) {
    Backend &b = backend();
    return !b.cuda || ggml_backend_sched_get_tensor_backend(b.sched, node) == b.cpu;
}

ggml_tensor *to_f32(ggml_context *ctx, ggml_tensor *x) {
    if (x->type == GGML_TYPE_F32) {
        return ggml_is_contiguous(x) ? x : ggml_cont(ctx, x);
    }
    return ggml_cast(ctx, x, GGML_TYPE_F32);
}

ggml_type type_of(int dtype) {
    switch (dtype) {
    case GP_DTYPE_F16:
        return GGML_TYPE_F16;
    case GP_DTYPE_BF16:
        return GGML_TYPE_BF16;
    default:
        return GGML_TYPE_F32;
    }
}

} // namespace gp_ggml
