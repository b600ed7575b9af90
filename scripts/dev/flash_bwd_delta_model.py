# NumPy model of the flash backward's δ on one query row (default f16, D 128, Sk 257): δ = dO·O from the
# 16-bit O (whose forward rounded P for P·V) against δ = Σ P·dP, each under the factor-3 rule against the
# plain low-precision baseline of runtime/src/reference.cpp.
# Usage: flash_bwd_delta_model.py SEED [SCALE] [D] [SK] [f16|bf16]
import numpy as np, sys
def bf16_round(x):  # round-to-nearest-even to bfloat16, back to float64
    b = np.asarray(x, dtype=np.float32).view(np.uint32).astype(np.uint64)
    b = ((b + 0x7FFF + ((b >> 16) & 1)) >> 16 << 16).astype(np.uint32)
    return b.view(np.float32).astype(np.float64)
def main():
    DT = sys.argv[5] if len(sys.argv) > 5 else "f16"
    def f16(x):  # the 16-bit dtype of the run (name kept from the f16 model)
        if DT == "bf16": return bf16_round(np.asarray(x, dtype=np.float64))
        return np.asarray(x, dtype=np.float64).astype(np.float16).astype(np.float64)
    rng = np.random.default_rng(int(sys.argv[1]) if len(sys.argv) > 1 else 1)
    D = int(sys.argv[3]) if len(sys.argv) > 3 else 128
    Sk = int(sys.argv[4]) if len(sys.argv) > 4 else 257
    N = 3000
    scale = float(sys.argv[2]) if len(sys.argv) > 2 else 0.351
    fails = {"O-delta": 0, "exact-delta": 0}; mags = []
    for t in range(N):
        q = f16(rng.standard_normal(D)); k = f16(rng.standard_normal((Sk, D))); v = f16(rng.standard_normal((Sk, D)))
        do = f16(rng.standard_normal(D))
        s = k @ q * scale; p = np.exp(s - s.max()); p /= p.sum()
        dp = v @ do; dl = p @ dp; dq = ((p * (dp - dl)) @ k) * scale
        mags.append(np.abs(dq).max())
        # baseline (reference.cpp lowp): S rounded, scaled in dtype, softmax fp32, P rounded; dP rounded; Di fp32
        sl = f16(f16(k @ q) * scale); pl = np.exp((sl - sl.max()).astype(np.float32)); pl = f16(pl / pl.sum())
        dpl = f16(v @ do); Dl = np.float32(pl @ dpl); dsl = f16(f16(pl * (dpl - Dl)) * scale); dql = f16(dsl @ k)
        el = np.abs(dql - dq).max()
        # flash forward: P̃ = f16(exp(s − m)) in P·V, divided by l = Σ fp32 exp; O rounded to f16
        e = np.exp((s - s.max()).astype(np.float32)).astype(np.float64); l = e.sum()
        o = f16((f16(e) @ v) / l)
        pb = np.exp((s - (s.max() + np.log(l))).astype(np.float32)).astype(np.float64)  # bwd P from LSE
        for name, delta in (("O-delta", do @ o), ("exact-delta", pb @ dp)):
            dsf = f16(pb * (dp - delta)); dqf = f16((dsf @ k) * scale)
            if np.abs(dqf - dq).max() > 3 * el + 1e-5: fails[name] += 1
    print(f"{DT} D {D} Sk {Sk} scale {scale}: {N} draws, max|dQ| median {np.median(mags):.3g}; factor-3 failures:",
          {k: f"{v}/{N}" for k, v in fails.items()})


if __name__ == "__main__":
    main()
