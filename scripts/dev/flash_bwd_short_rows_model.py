# NumPy model of the mma.sync flash backward's dQ on rows whose keys all fit one key tile (D = Σ P·dP
# from the tile), bf16, D 128, an additive bf16 bias with −inf entries: three ways to form dS = P ∘ (dP − D)
# under DESIGN.md's factor-3 rule against the low-precision baseline of runtime/src/reference.cpp.
#   p16:      P rounded to bf16 before D and dS (the kernel before 2026-12-01)
#   p32:      fp32 P, D = Σ P·dP
#   p32-norm: fp32 P, D = Σ P·dP / Σ P (the kernel from 2026-12-01: Σ_j dS_j = 0 up to fp32 rounding)
# Usage: flash_bwd_short_rows_model.py [--seed S] [--draws N]        random short rows, failures per model
#        flash_bwd_short_rows_model.py --replay sweep_case_<i>.txt   (ATTNFORGE_SWEEP_DUMP of a flash bf16 case
#        with Hq = Hkv, B 1): which model reproduces the kernel's dQ, element for element
import argparse

import numpy as np

from flash_bwd_delta_model import bf16_round as bf16  # scripts/dev, beside this file

MODELS = ("p16", "p32", "p32-norm")
LOG2E = np.log2(np.e)


def f32(x):
    return np.asarray(x, dtype=np.float32).astype(np.float64)




def kernel_dq(model, q, k, v, do, bias, lse, scale):
    """dQ (Sq, D) of one head as the kernel forms it: P = exp2(S·scale·log2e + bias·log2e − LSE·log2e) in
    fp32, dP = dO·Vᵀ in fp32, dS rounded to bf16, dQ = (dS·K)·scale rounded to bf16."""
    x = f32(f32(f32(q @ k.T) * f32(scale * LOG2E)) + f32(bias * LOG2E))
    lse2 = np.where(np.isfinite(lse), f32(lse * LOG2E), np.inf)[:, None]  # a row that sees no key: P = 0
    p = np.where(np.isfinite(bias), f32(np.exp2(x - lse2)), 0.0)
    if model == "p16":
        p = bf16(p)
    dp = f32(do @ v.T)
    d = f32((p * dp).sum(1, keepdims=True))
    if model == "p32-norm":
        ps = f32(p.sum(1, keepdims=True))
        d = np.where(ps > 0, f32(d / np.where(ps > 0, ps, 1)), 0.0)
    ds = bf16(f32(p * (dp - d)))
    return bf16(f32(f32(ds @ k) * scale))


def reference_dq(q, k, v, do, bias, scale, lowp):
    """fp64 dQ, or reference.cpp's low-precision one (scores, P, dP and dS rounded to bf16, fp32 sums)."""
    r = bf16 if lowp else (lambda x: np.asarray(x, dtype=np.float64))
    acc = f32 if lowp else r
    x = r(r(acc(q @ k.T)) * scale)
    x = np.where(np.isfinite(bias), r(x + np.where(np.isfinite(bias), bias, 0)), -np.inf)
    m = x.max(1, keepdims=True)
    seen = np.isfinite(m)
    e = np.where(np.isfinite(x), acc(np.exp(acc(x - np.where(seen, m, 0)))), 0.0)
    p = np.where(seen, r(acc(e / np.where(seen, acc(e.sum(1, keepdims=True)), 1))), 0.0)
    dp = r(acc(do @ v.T))
    d = acc((p * dp).sum(1, keepdims=True))
    ds = r(r(acc(p * (dp - d))) * scale)
    return r(acc(ds @ k))


def rule_ratio(out, ref, lowp, factor=3.0, abs_tol=1e-5, bits=8):
    """max|out − ref| over the rule's bound (tests/common numerics_rule): > 1 fails."""
    ref_max = np.abs(ref).max()
    floor = 2.0 ** (np.frexp(ref_max)[1] - bits - 1) if ref_max > 0 else 0.0
    return np.abs(out - ref).max() / (factor * max(np.abs(lowp - ref).max(), floor) + abs_tol)


def draw(rng, D=128):
    """One head: Sq 1–5, Sk 1–6, a bf16 bias (5 % −inf), broadcast over queries half the time (case #355)."""
    sq, sk = int(rng.integers(1, 6)), int(rng.integers(1, 7))
    q, do = bf16(rng.standard_normal((sq, D))), bf16(rng.standard_normal((sq, D)))
    k, v = bf16(rng.standard_normal((sk, D))), bf16(rng.standard_normal((sk, D)))
    bias = bf16(rng.standard_normal((sq, sk)))
    bias[rng.random((sq, sk)) < 0.05] = -np.inf
    if rng.random() < 0.5:
        bias = np.repeat(bias[:1], sq, 0)
    z = (q @ k.T) / np.sqrt(D) + bias
    m = z.max(1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        lse = (m + np.log(np.exp(z - np.where(np.isfinite(m), m, 0)).sum(1, keepdims=True)))[:, 0]
    return q, k, v, do, bias, np.where(np.isfinite(m[:, 0]), lse, -np.inf), 1 / np.sqrt(D)


def monte_carlo(seed, draws):
    rng = np.random.default_rng(seed)
    fails, worst = dict.fromkeys(MODELS, 0), dict.fromkeys(MODELS, 0.0)
    for _ in range(draws):
        q, k, v, do, bias, lse, scale = draw(rng)
        ref, low = reference_dq(q, k, v, do, bias, scale, False), reference_dq(q, k, v, do, bias, scale, True)
        for mdl in MODELS:
            ratio = rule_ratio(kernel_dq(mdl, q, k, v, do, bias, f32(lse), scale), ref, low)
            fails[mdl] += ratio > 1
            worst[mdl] = max(worst[mdl], ratio)
    print(f"seed {seed}, {draws} short bias rows (bf16, D 128):")
    for mdl in MODELS:
        print(f"  {mdl:9} fails the rule {fails[mdl]:5d} times, worst error / bound {worst[mdl]:.3f}")


def replay(path):
    arrays, meta = {}, {}
    for line in open(path):
        name, *rest = line.split()
        if name == "#":
            meta["case"] = " ".join(rest)
        elif name in ("scale", "bias_sizes"):
            meta[name] = [float(x) for x in rest]
        else:
            arrays[name] = np.array([float(x) for x in rest[1:]])
    print(meta["case"])
    heads = int(meta["bias_sizes"][1])
    sq = arrays["gpu_lse"].size // heads
    D = arrays["q"].size // (sq * heads)
    sk = arrays["k"].size // (heads * D)
    def heads_first(x, rows):  # (1, rows, H, D) → (H, rows, D)
        return x.reshape(rows, heads, D).transpose(1, 0, 2)
    q, do, gpu = (heads_first(arrays[n], sq) for n in ("q", "do", "gpu_dq"))
    k, v = (heads_first(arrays[n], sk) for n in ("k", "v"))
    bias = np.broadcast_to(arrays["bias"].reshape([int(s) for s in meta["bias_sizes"]])[0], (heads, sq, sk))
    lse = arrays["gpu_lse"].reshape(heads, sq)
    scale = meta["scale"][0] or 1 / np.sqrt(D)
    for mdl in MODELS:
        dq = np.stack([kernel_dq(mdl, q[h], k[h], v[h], do[h], bias[h], lse[h], scale) for h in range(heads)])
        print(f"  {mdl:9} differs from the kernel's dQ in {int((dq != gpu).sum())} of {gpu.size} elements")


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--draws", type=int, default=3000)
    ap.add_argument("--replay")
    a = ap.parse_args()
    replay(a.replay) if a.replay else monte_carlo(a.seed, a.draws)
