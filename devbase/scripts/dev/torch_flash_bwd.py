# PyTorch SDPA flash-backend backward timings on the training grid (bf16, B*S = 16384,
# H*D = 2048), the baseline the flash backward is compared with in the same device run.
# `quick`: S 1024, 4096, 16384 only, and the cuDNN backend's backward beside the flash one.
import sys
import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

def bench(S, D, causal, iters=10, backend=SDPBackend.FLASH_ATTENTION, label="flash"):
    B, H = 16384 // S, 2048 // D
    q, k, v = (torch.randn(B, S, H, D, device="cuda", dtype=torch.bfloat16).transpose(1, 2).requires_grad_()
               for _ in range(3))
    with sdpa_kernel(backend):
        o = F.scaled_dot_product_attention(q, k, v, is_causal=causal)
    do = torch.randn_like(o)
    for _ in range(3):
        torch.autograd.grad(o, (q, k, v), do, retain_graph=True)
    e0, e1 = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    torch.cuda.synchronize()
    e0.record()
    for _ in range(iters):
        torch.autograd.grad(o, (q, k, v), do, retain_graph=True)
    e1.record()
    torch.cuda.synchronize()
    ms = e0.elapsed_time(e1) / iters
    flops = 4 * B * H * S * S * D * (0.5 if causal else 1.0) * 2.5
    print(f"TORCH {label}_bwd D={D} S={S:5d} B={B:2d} H={H:2d} causal={int(causal)}  {ms:.3f} ms  {flops / ms / 1e9:.1f} TFLOP/s")

quick = len(sys.argv) > 1 and sys.argv[1] == "quick"
for S in (1024, 4096, 16384) if quick else (512, 1024, 2048, 4096, 8192, 16384):
    for D in (64, 128):
        for causal in (False, True):
            bench(S, D, causal)
            if quick:
                bench(S, D, causal, backend=SDPBackend.CUDNN_ATTENTION, label="cudnn")
