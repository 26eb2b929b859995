/*
 * ggml_glue.h: the layer between greta_parity.h's ABI and ggml-backend that
 * every entry point of greta_ggml.cpp uses: the one backend of the process
 * (CPU or CUDA, chosen at build time), the map from gp_malloc's pointers to
 * ggml backend buffers, a graph per call whose tensors point at the
 * caller's memory, and the attestation strings inferred from ggml's
 * dispatch rules (ggml_dispatch.cpp).
 */
#ifndef GP_GGML_GLUE_H
#define GP_GGML_GLUE_H

#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "ggml-backend.h"
#include "ggml.h"

#ifndef GP_GGML_COMMIT
#define GP_GGML_COMMIT "unknown"
#endif

namespace gp_ggml {

/* The backend of the process, created on first use. */
struct Backend {
    ggml_backend_t backend = nullptr; /* CUDA0 or CPU: the caller's memory */
    ggml_backend_t cpu = nullptr;     /* ggml's CPU backend (== backend on CPU) */
    /* Places every graph: ops the primary backend does not support run on
     * the CPU backend with copies, as llama.cpp's scheduler does. */
    ggml_backend_sched_t sched = nullptr;
    bool cuda = false;
    std::string name;       /* gp_backend_name() */
    std::string init_error; /* why backend is nullptr */
};
Backend &backend();

/* gp_malloc / gp_free: one ggml backend buffer per allocation. */
int mem_alloc(void **ptr, size_t bytes);
int mem_free(void *ptr);
/* The buffer holding [p, p + bytes), or nullptr. */
ggml_backend_buffer_t mem_find(const void *p, size_t bytes);
/* 0 h2d, 1 d2h, 2 d2d (synchronous; ggml_backend_tensor_set/get/copy). */
int mem_copy(const char *fn, void *dst, const void *src, size_t bytes, int kind);

/* One call's graph: tensors over the caller's memory (user), uploaded host
 * data (input), intermediates placed by ggml_backend_sched. run() checks
 * that some backend supports every node (GP_ERR_UNSUPPORTED naming the op
 * if not), allocates, uploads and computes synchronously; on_cpu(node)
 * then says whether the scheduler ran node on the CPU backend. */
class Graph {
  public:
    explicit Graph(const char *fn);
    ~Graph();
    Graph(const Graph &) = delete;
    Graph &operator=(const Graph &) = delete;

    ggml_context *ctx() { return ctx_; }
    /* A tensor of type t and shape ne (ne0 fastest) at p. */
    ggml_tensor *user(ggml_type t, std::vector<int64_t> ne, const void *p, const char *arg);
    /* A tensor whose content is data (uploaded after allocation). */
    ggml_tensor *input(ggml_type t, std::vector<int64_t> ne, std::vector<uint8_t> data);
    /* A tensor filled with zero bytes after allocation. */
    ggml_tensor *zeros(ggml_type t, std::vector<int64_t> ne);
    /* Appends node (and what it depends on) to the graph, in call order. */
    void expand(ggml_tensor *node);
    /* Runs node on ggml's CPU backend whatever the primary backend is. */
    void pin_cpu(ggml_tensor *node) { pinned_.push_back(node); }
    /* GP_OK or a gp_fail status. */
    int run();
    /* After run(): node ran on ggml's CPU backend. */
    bool on_cpu(ggml_tensor *node);

  private:
    const char *fn_;
    ggml_context *ctx_ = nullptr;
    ggml_cgraph *gf_ = nullptr;
    int error_ = 0; /* first failure of user() */
    std::vector<std::pair<ggml_tensor *, void *>> users_;
    std::vector<std::pair<ggml_tensor *, std::vector<uint8_t>>> inputs_;
    std::vector<ggml_tensor *> zeros_;
    std::vector<ggml_tensor *> pinned_;
};

/* x as an f32 tensor: x itself if it is f32 and contiguous, else a copy
 * (exact from f16/bf16). */
ggml_tensor *to_f32(ggml_context *ctx, ggml_tensor *x);
/* ggml type of a gp_dtype. */
ggml_type type_of(int dtype);

/* ---- attestation: the kernel family ggml's dispatch picks (ggml_dispatch.cpp) */

/* On CUDA (cuda: the node ran on the CUDA backend): src0 [ne00, ne01, ne02] of type t (row stride
 * nb01, batch stride nb02 in bytes), src1 with ne11 columns, f32 result; prec_f32:
 * ggml_mul_mat_set_prec (GGML_PREC_F32). */
std::string mul_mat_kernel(bool cuda, ggml_type t, int64_t ne00, int64_t ne01, int64_t ne02,
                           size_t nb01, size_t nb02, int64_t ne11, bool prec_f32);
/* ggml_flash_attn_ext with head_dim D, n_q queries, n_kv keys (as given to
 * ggml, padded or not), gqa = n_heads / n_kv_heads, a mask or not. */
std::string flash_attn_kernel(bool cuda, int64_t D, int64_t n_q, int64_t n_kv, int64_t gqa,
                              bool mask);

} // namespace gp_ggml

#endif /* GP_GGML_GLUE_H */
