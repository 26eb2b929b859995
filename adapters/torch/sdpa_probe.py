"""sdpa_probe.py: what the PyTorch adapter assumes of SDPA's kernels, checked
on the machine that runs it (scripts/gpu-torch.sh, phase probe).

For each backend whose private op returns a log-sum-exp (flash, efficient):
its layout ([B, H, L] or padded), its base (natural log: compared with
float64 logsumexp of scale * q k^T over the visible keys) and the output
error, at a prefill shape (causal, n_q = n_kv) and a decode shape (n_q = 1,
every key visible), with GQA 32/8 for flash (native) and expanded KV for
efficient. Prints versions first. No output is written elsewhere.
"""
import torch

print("torch", torch.__version__, "cuda", torch.version.cuda, "cudnn", torch.backends.cudnn.version(),
      "device", torch.cuda.get_device_name(0))
print("allow_tf32 matmul", torch.backends.cuda.matmul.allow_tf32, "cudnn", torch.backends.cudnn.allow_tf32,
      "fp16 reduced-precision reduction", torch.backends.cuda.matmul.allow_fp16_reduced_precision_reduction,
      "bf16", torch.backends.cuda.matmul.allow_bf16_reduced_precision_reduction)
torch.manual_seed(0)
H, HKV, D = 32, 8, 128
scale = D ** -0.5


def ref(q, k, v, causal):
    g = q.shape[1] // k.shape[1]
    k = k.double().repeat_interleave(g, 1)
    v = v.double().repeat_interleave(g, 1)
    s = (q.double() @ k.transpose(-1, -2)) * scale
    if causal:
        L, S = s.shape[-2], s.shape[-1]
        m = torch.ones(L, S, dtype=torch.bool, device=s.device).triu(S - L + 1)
        s = s.masked_fill(m, float("-inf"))
    return torch.softmax(s, -1) @ v, torch.logsumexp(s, -1)


for dt in (torch.float16, torch.bfloat16, torch.float32):
    for name, nq, nk in (("prefill", 129, 129), ("decode", 1, 129)):
        causal = nq > 1
        q = torch.randn(1, H, nq, D, device="cuda").to(dt)
        k = torch.randn(1, HKV, nk, D, device="cuda").to(dt)
        v = torch.randn(1, HKV, nk, D, device="cuda").to(dt)
        ro, rl = ref(q, k, v, causal)
        runs = []
        if dt != torch.float32:
            runs.append(("flash", lambda: torch.ops.aten._scaled_dot_product_flash_attention(
                q, k, v, 0.0, causal, False, scale=scale)[:2]))
        ke, ve = k.repeat_interleave(H // HKV, 1), v.repeat_interleave(H // HKV, 1)
        runs.append(("efficient", lambda: torch.ops.aten._scaled_dot_product_efficient_attention(
            q, ke, ve, None, True, 0.0, causal, scale=scale)[:2]))
        for bk, f in runs:
            try:
                o, l = f()
                torch.cuda.synchronize()
                ln = l[..., :nq].double()
                print(f"{bk:9s} {str(dt):14s} {name:7s} lse shape {tuple(l.shape)} dtype {l.dtype}: "
                      f"max|lse - ln ref| {(ln - rl).abs().max().item():.3g}, "
                      f"max|lse - log2 ref| {(ln - rl / 0.6931471805599453).abs().max().item():.3g}; "
                      f"max|out - ref| {(o.double() - ro).abs().max().item():.3g}")
            except Exception as e:  # a backend that cannot take the shape says why
                print(f"{bk:9s} {str(dt):14s} {name:7s} error: {str(e).splitlines()[0][:160]}")
