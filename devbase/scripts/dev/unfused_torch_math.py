# PyTorch SDPA math backend on the unfused target point (bf16, D=128, S=4096, B=4, H=16): fwd TFLOP/s.
import torch
from torch.nn.attention import SDPBackend, sdpa_kernel

B, H, S, D = 4, 16, 4096, 128
q, k, v = (torch.randn(B, H, S, D, device="cuda", dtype=torch.bfloat16) for _ in range(3))
for causal in (False, True):
    with sdpa_kernel(SDPBackend.MATH):
        f = lambda: torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=causal)
        for _ in range(3):
            f()
        torch.cuda.synchronize()
        ts = []
        for _ in range(10):
            a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            a.record(); f(); b.record(); torch.cuda.synchronize()
            ts.append(a.elapsed_time(b))
        ms = sorted(ts)[len(ts) // 2]
        flops = 4 * B * H * S * S * D * (0.5 if causal else 1.0)
        print(f"BENCH torch-math fwd bf16 D={D} S={S} B={B} H={H} causal={int(causal)}: {ms:.3f} ms  {flops / ms / 1e9:.1f} TFLOP/s")
