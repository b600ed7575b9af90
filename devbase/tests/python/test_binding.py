"""pytest of the Python binding (python/attnforge): the ctypes layout against the C header, the
library's variant list, mask mapping, and — where PyTorch, a CUDA device and libattnforge.so are
present — every backend against an fp64 reference under DESIGN.md's numerics rule.
Tests that cannot run here skip with the reason (no torch / no GPU / no library / not built)."""
from __future__ import annotations

import ctypes
import itertools
import math
import os
import re
import shutil
import subprocess
import sys

import pytest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "python"))

from attnforge import _lib  # noqa: E402  (needs no torch)

try:
    import torch
except ImportError:  # the layout and library tests still run
    torch = None

needs_torch = pytest.mark.skipif(torch is None, reason="PyTorch is not installed")


def _library_or_skip():
    try:
        return _lib.lib()
    except _lib.LibraryNotFound as e:
        if e.broken:  # a built library that does not load is a bug, not a reason to skip
            pytest.fail(str(e))
        pytest.skip(f"no usable libattnforge.so: {' | '.join(str(e).splitlines())}")


@pytest.fixture
def gpu():
    """Skips unless torch sees a CUDA device and the library loads."""
    if torch is None:
        pytest.skip("PyTorch is not installed")
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    _library_or_skip()
    torch.manual_seed(0)
    import attnforge
    return attnforge


# ---- no GPU needed ----------------------------------------------------------------------------

def test_struct_layout_matches_header(tmp_path):
    """Every field offset and struct size of the ctypes mirror equals the C compiler's."""
    cc = shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
    if cc is None:
        pytest.skip("no C compiler to read the header's layout")
    structs = {"attnforge_tensor": _lib.Tensor, "attnforge_mask": _lib.Mask, "attnforge_args": _lib.Args,
               "attnforge_backend_estimate": _lib.BackendEstimate}
    lines = []
    for cname, py in structs.items():
        lines.append(f'printf("{cname} sizeof %zu\\n", sizeof({cname}));')
        for fname, _ in py._fields_:
            lines.append(f'printf("{cname} {fname} %zu\\n", offsetof({cname}, {fname}));')
    src = tmp_path / "layout.c"
    src.write_text("#include <stdio.h>\n#include <stddef.h>\n#include \"attnforge/attnforge.h\"\n"
                   "int main(void) {\n" + "\n".join(lines) + "\nreturn 0; }\n")
    exe = tmp_path / "layout"
    subprocess.run([cc, "-I", os.path.join(ROOT, "runtime", "include"), str(src), "-o", str(exe)],
                   check=True)
    got = subprocess.run([str(exe)], check=True, capture_output=True, text=True).stdout.split("\n")
    checked = 0
    for line in filter(None, got):
        cname, field, value = line.split()
        py = structs[cname]
        expect = ctypes.sizeof(py) if field == "sizeof" else getattr(py, field).offset
        assert int(value) == expect, f"{cname}.{field}: C says {value}, ctypes says {expect}"
        checked += 1
    assert checked == sum(len(p._fields_) + 1 for p in structs.values())


def test_enum_values_match_header():
    """The status / dtype / backend numbers the binding uses are those of attnforge.h."""
    header = open(os.path.join(ROOT, "runtime", "include", "attnforge", "attnforge.h")).read()
    def value(name):
        m = re.search(rf"\b{name}\s*=\s*(\d+)", header)
        assert m, f"{name} not in attnforge.h"
        return int(m.group(1))
    assert (value("ATTNFORGE_OK"), value("ATTNFORGE_UNSUPPORTED")) == (_lib.OK, _lib.UNSUPPORTED)
    assert (value("ATTNFORGE_F32"), value("ATTNFORGE_F16"), value("ATTNFORGE_BF16"),
            value("ATTNFORGE_BOOL")) == (_lib.F32, _lib.F16, _lib.BF16, _lib.BOOL)
    for name, v in _lib.BACKENDS.items():
        assert value(f"ATTNFORGE_BACKEND_{name.upper()}") == v


def test_library_lists_variants():
    L = _library_or_skip()
    names = _lib.variants()
    assert len(names) == L.attnforge_variant_count() > 0
    pattern = re.compile(r"^(unfused|fused|flash)_(fwd|bwd)_(f32|f16|bf16)_hd(\d+|any)_\w+$")
    bad = [n for n in names if not pattern.match(n)]
    assert not bad, f"non-canonical variant names: {bad[:5]}"
    assert len(set(names)) == len(names)
    assert re.match(r"^\d+\.\d+\.\d+", _lib.version())
    for name, v in _lib.BACKENDS.items():
        assert L.attnforge_backend_name(v).decode() == name


def _fake_tensor(addr, dtype, sizes):
    """A descriptor of a made-up device address: validation reads shapes, never the memory."""
    t = _lib.Tensor()
    t.data, t.dtype, t.rank = addr, dtype, len(sizes)
    stride = 1
    for i in reversed(range(len(sizes))):
        t.sizes[i], t.strides[i] = sizes[i], stride
        stride *= sizes[i]
    return t


def test_library_error_reaches_python_without_a_gpu():
    """A validation failure comes back as AttnforgeError carrying the library's message (no
    launch, no device needed: bad input never reaches a kernel)."""
    L = _library_or_skip()
    a = _lib.new_args()
    a.q = _fake_tensor(0x10000, _lib.BF16, (2, 16, 4, 64))
    a.k = _fake_tensor(0x20000, _lib.F16, (2, 16, 4, 64))
    a.v = _fake_tensor(0x30000, _lib.F16, (2, 16, 4, 64))
    a.o = _fake_tensor(0x40000, _lib.BF16, (2, 16, 4, 64))
    nbytes = ctypes.c_size_t(0)
    status = L.attnforge_workspace_size(ctypes.byref(a), 0, ctypes.byref(nbytes))
    assert status == _lib.INVALID_ARGUMENT
    with pytest.raises(_lib.AttnforgeError) as e:
        _lib.check(status, "workspace_size")
    msg = str(e.value)
    assert "dtype" in msg and "bf16" in msg and "f16" in msg, msg
    assert e.value.status == _lib.INVALID_ARGUMENT


@needs_torch
def test_mask_mapping():
    """causal / window / attn_mask / mask_kind → the library's kind and scalars (CPU only)."""
    from attnforge import functional as F
    assert F._mask_kind(False, (-1, -1), False, None, ()) == ("none", ())
    assert F._mask_kind(True, (-1, -1), False, None, ()) == ("causal", ())
    assert F._mask_kind(False, (8, 2), False, None, ()) == ("window", (8, 2))
    assert F._mask_kind(True, (8, -1), False, None, ()) == ("window", (8, 0))  # causal ⇒ right = 0
    assert F._mask_kind(True, (8, 4), False, None, ()) == ("window", (8, 0))
    assert F._mask_kind(True, (-1, -1), True, None, ()) == ("bias", ())  # folded into the tensor
    assert F._mask_kind(False, (-1, -1), False, "prefix_lm", (7,)) == ("prefix_lm", (7,))
    with pytest.raises(ValueError):
        F._mask_kind(True, (-1, -1), False, "prefix_lm", (7,))
    # bottom-right causal with Sq=2, Sk=4: query 0 sees keys 0..2, query 1 sees 0..3
    vis = F._visibility(2, 4, True, (-1, -1), "cpu")
    assert vis.tolist() == [[True, True, True, False], [True, True, True, True]]
    vis = F._visibility(3, 3, False, (1, 0), "cpu")  # window left 1, right 0
    assert vis.tolist() == [[True, False, False], [True, True, False], [False, True, True]]


@needs_torch
def test_cpu_tensors_rejected_before_the_library():
    import attnforge
    q = torch.randn(1, 4, 2, 8)
    with pytest.raises(ValueError, match="CUDA"):
        attnforge.attention(q, q, q)


# ---- references -------------------------------------------------------------------------------

def _reference(q, k, v, vis=None, bias=None, scale=None, dtype=torch.float64 if torch else None):
    """Plain attention in `dtype`: q (B, Sq, Hq, D), k/v (B, Sk, Hkv, D); vis bool broadcastable
    to (B, Hq, Sq, Sk); bias additive. Fully masked rows give O = 0 and LSE = -inf.
    Returns o (B, Sq, Hq, D) and lse (B, Hq, Sq) in fp32."""
    hq, hkv, d = q.size(2), k.size(2), q.size(3)
    scale = 1.0 / math.sqrt(d) if scale is None else scale
    qh = q.to(dtype).transpose(1, 2)  # (B, Hq, Sq, D)
    kh = k.to(dtype).transpose(1, 2).repeat_interleave(hq // hkv, dim=1)  # (B, Hq, Sk, D)
    vh = v.to(dtype).transpose(1, 2).repeat_interleave(hq // hkv, dim=1)
    s = (qh @ kh.transpose(-1, -2)) * scale  # S = Q·Kᵀ·scale  (B, Hq, Sq, Sk)
    if bias is not None:
        s = s + bias.to(dtype)
    if vis is not None:
        s = s.masked_fill(~vis, float("-inf"))
    m = s.amax(dim=-1, keepdim=True)
    m = torch.where(torch.isinf(m), torch.zeros_like(m), m)  # a fully masked row: exp(-inf) = 0
    p = torch.exp((s - m).float()).to(dtype) if dtype != torch.float64 else torch.exp(s - m)
    l = p.sum(dim=-1, keepdim=True)
    p = torch.where(l > 0, p / torch.where(l > 0, l, torch.ones_like(l)), torch.zeros_like(p))
    o = (p @ vh).transpose(1, 2)  # (B, Sq, Hq, D)
    lse = (m + torch.log(l.double())).squeeze(-1).float()  # log(0) = -inf for masked rows
    return o, lse, p


def _grads(fn, q, k, v, d_o):
    q, k, v = (t.detach().clone().requires_grad_(True) for t in (q, k, v))
    o = fn(q, k, v)
    o.backward(d_o.to(o.dtype))
    return o.detach(), q.grad, k.grad, v.grad


def _max_err(a, b):
    return (a.double() - b.double()).abs().max().item() if a.numel() else 0.0


def _assert_rule(name, out, lowp, ref, factor=2.0):
    """DESIGN.md: max|out − ref| ≤ factor·max|out_lowp − ref| + 1e-5; never NaN."""
    assert not torch.isnan(out).any(), f"{name}: NaN in output"
    err, base = _max_err(out, ref), _max_err(lowp, ref)
    assert err <= factor * base + 1e-5, f"{name}: max|out-ref| = {err:.3g} > {factor}*{base:.3g} + 1e-5"


def _call_or_skip(fn):
    from attnforge import UnsupportedError
    try:
        return fn()
    except UnsupportedError as e:  # a backend/variant this build does not contain: say which
        pytest.skip(f"not built: {e}")


# ---- GPU: numerics of every backend -----------------------------------------------------------

CASES = {
    #  name: (B, Sq, Sk, Hq, Hkv, D, mask)
    "none": (2, 128, 128, 4, 4, 64, "none"),
    "causal_sq_ne_sk_gqa": (2, 113, 203, 4, 2, 64, "causal"),
    "window": (1, 203, 203, 2, 2, 64, "window"),
    "bool_mask_with_empty_rows": (2, 64, 97, 2, 1, 64, "bool"),
    "float_mask": (1, 77, 77, 2, 2, 64, "float"),
}


def _case_inputs(case, dtype, device="cuda"):
    b, sq, sk, hq, hkv, d, mask = case
    q = torch.randn(b, sq, hq, d, device=device, dtype=dtype)
    k = torch.randn(b, sk, hkv, d, device=device, dtype=dtype)
    v = torch.randn(b, sk, hkv, d, device=device, dtype=dtype)
    kw, vis, bias = {}, None, None
    i = torch.arange(sq, device=device).view(-1, 1) + (sk - sq)
    j = torch.arange(sk, device=device).view(1, -1)
    if mask == "causal":
        kw["causal"], vis = True, (j <= i)
    elif mask == "window":
        kw["window"], vis = (16, 5), (j >= i - 16) & (j <= i + 5)
    elif mask == "bool":
        vis = torch.rand(b, 1, sq, sk, device=device) > 0.3
        vis[:, :, 3] = False  # fully masked rows ⇒ O = 0, LSE = -inf, grads 0
        vis[1, :, 10] = False
        kw["attn_mask"] = vis
    elif mask == "float":
        bias = torch.randn(1, hq, sq, sk, device=device, dtype=dtype)
        kw["attn_mask"] = bias
    return q, k, v, kw, vis, bias


@pytest.mark.parametrize("backend", ["unfused", "fused", "flash", "auto"])
@pytest.mark.parametrize("case", list(CASES))
def test_forward_backward_against_fp64(gpu, backend, case):
    attnforge = gpu
    dtype = torch.bfloat16
    q, k, v, kw, vis, bias = _case_inputs(CASES[case], dtype)
    d_o = torch.randn_like(q)

    def run(q_, k_, v_):
        return attnforge.attention(q_, k_, v_, backend=backend, **kw)

    o, lse = _call_or_skip(lambda: attnforge.attention(q, k, v, backend=backend, return_lse=True, **kw))
    ref_o, ref_lse, _ = _reference(q, k, v, vis, bias)
    low_o, low_lse, _ = _reference(q, k, v, vis, bias, dtype=dtype)
    _assert_rule(f"{backend}/{case} O", o, low_o, ref_o)
    finite = torch.isfinite(ref_lse)
    assert torch.equal(torch.isfinite(lse), finite), "LSE must be -inf exactly on fully masked rows"
    assert (lse[~finite] == float("-inf")).all()
    _assert_rule(f"{backend}/{case} LSE", lse[finite], low_lse[finite], ref_lse[finite])
    if vis is not None:
        empty = ~vis.expand(q.size(0), q.size(2), q.size(1), k.size(1)).any(-1)  # (B, Hq, Sq)
        assert (o.transpose(1, 2)[empty] == 0).all(), "fully masked rows must output exactly 0"

    got = _call_or_skip(lambda: _grads(run, q, k, v, d_o))
    ref = _grads(lambda a, b_, c: _reference(a, b_, c, vis, bias)[0], q, k, v, d_o)
    low = _grads(lambda a, b_, c: _reference(a, b_, c, vis, bias, dtype=dtype)[0], q, k, v, d_o)
    for i, name in ((1, "dQ"), (2, "dK"), (3, "dV")):
        _assert_rule(f"{backend}/{case} {name}", got[i], low[i], ref[i], factor=3.0)


def test_return_weights(gpu):
    attnforge = gpu
    q = torch.randn(2, 50, 2, 40, device="cuda", dtype=torch.float32)
    k = torch.randn(2, 70, 2, 40, device="cuda", dtype=torch.float32)
    v = torch.randn_like(k)
    o, w = _call_or_skip(lambda: attnforge.attention(q, k, v, causal=True, backend="unfused",
                                                     return_weights=True))
    i = torch.arange(50, device="cuda").view(-1, 1) + 20
    vis = torch.arange(70, device="cuda").view(1, -1) <= i
    ref_o, _, ref_p = _reference(q, k, v, vis)
    low_o, _, low_p = _reference(q, k, v, vis, dtype=torch.float32)
    assert w.shape == (2, 2, 50, 70) and w.dtype == q.dtype
    _assert_rule("weights", w, low_p, ref_p)
    _assert_rule("O", o, low_o, ref_o)


@pytest.mark.parametrize("backend", ["unfused", "flash"])
def test_varlen_matches_per_sequence_dense(gpu, backend):
    attnforge = gpu
    dtype = torch.bfloat16
    lens_q, lens_k = [5, 0, 37, 64], [9, 4, 37, 100]  # a zero-length query sequence included
    hq, hkv, d = 4, 2, 64
    cu_q = torch.tensor([0, *itertools.accumulate(lens_q)], dtype=torch.int32, device="cuda")
    cu_k = torch.tensor([0, *itertools.accumulate(lens_k)], dtype=torch.int32, device="cuda")
    q = torch.randn(sum(lens_q), hq, d, device="cuda", dtype=dtype)
    k = torch.randn(sum(lens_k), hkv, d, device="cuda", dtype=dtype)
    v = torch.randn_like(k)
    o = _call_or_skip(lambda: attnforge.varlen_attention(q, k, v, cu_q, cu_k, max(lens_q), max(lens_k),
                                                         causal=True, backend=backend))
    for b in range(len(lens_q)):
        qs, ks = slice(cu_q[b].item(), cu_q[b + 1].item()), slice(cu_k[b].item(), cu_k[b + 1].item())
        if lens_q[b] == 0:
            continue
        i = torch.arange(lens_q[b], device="cuda").view(-1, 1) + (lens_k[b] - lens_q[b])
        vis = torch.arange(lens_k[b], device="cuda").view(1, -1) <= i
        args = (q[None, qs], k[None, ks], v[None, ks], vis)
        _assert_rule(f"varlen seq {b}", o[None, qs], _reference(*args, dtype=dtype)[0],
                     _reference(*args)[0])


def test_strided_inputs_and_side_stream(gpu):
    """(B, H, S, D) tensors transposed to (B, S, H, D) views run without a copy of q, on a
    non-default stream, and give the reference's answer."""
    attnforge = gpu
    q = torch.randn(2, 4, 96, 64, device="cuda", dtype=torch.bfloat16).transpose(1, 2)
    k = torch.randn(2, 4, 96, 64, device="cuda", dtype=torch.bfloat16).transpose(1, 2)
    v = torch.randn(2, 4, 96, 64, device="cuda", dtype=torch.bfloat16).transpose(1, 2)
    assert not q.is_contiguous() and q.stride(-1) == 1
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        o = _call_or_skip(lambda: attnforge.attention(q, k, v, causal=True, backend="unfused"))
    side.synchronize()
    vis = torch.ones(96, 96, dtype=torch.bool, device="cuda").tril()
    _assert_rule("strided", o, _reference(q, k, v, vis, dtype=torch.bfloat16)[0], _reference(q, k, v, vis)[0])
    # a last dim that is not contiguous is copied, not rejected
    q2 = torch.randn(2, 96, 4, 128, device="cuda", dtype=torch.bfloat16)[..., ::2]
    o2 = _call_or_skip(lambda: attnforge.attention(q2, k, v, backend="unfused"))
    _assert_rule("copied", o2, _reference(q2, k, v, dtype=torch.bfloat16)[0], _reference(q2, k, v)[0])


def test_errors_carry_the_library_message(gpu):
    attnforge = gpu
    q = torch.randn(1, 16, 2, 80, device="cuda", dtype=torch.bfloat16)
    with pytest.raises(ValueError, match="unknown backend"):
        attnforge.attention(q, q, q, backend="bogus")
    # flash is built for head dims 32..256 in steps the TOML names; 80 is in none of them
    with pytest.raises(attnforge.UnsupportedError) as e:
        attnforge.attention(q, q, q, backend="flash")
    assert "flash" in str(e.value)  # the library says what is built instead (e.g. "no head_dim 80")
    with pytest.raises(attnforge.AttnforgeError) as e:  # dtype mismatch: the library names both
        attnforge.attention(q, q.half(), q.half(), backend="unfused")
    assert len(str(e.value)) > len("attnforge forward failed ()")
    with pytest.raises(attnforge.AttnforgeError):
        attnforge.attention(q, q, q, variant="no_such_variant")


def test_workspace_is_counted_by_torch(gpu):
    """The unfused backend's O(S²) scratch comes from torch's allocator: peak memory shows it."""
    attnforge = gpu
    b, s, h, d = 1, 2048, 4, 64
    q = torch.randn(b, s, h, d, device="cuda", dtype=torch.bfloat16)
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    base = torch.cuda.memory_allocated()
    _call_or_skip(lambda: attnforge.attention(q, q, q, backend="unfused"))
    torch.cuda.synchronize()
    peak = torch.cuda.max_memory_allocated() - base
    assert peak >= b * h * s * s * 2, f"peak {peak} B < one bf16 score matrix {b * h * s * s * 2} B"


def test_select_and_variants(gpu):
    attnforge = gpu
    names = attnforge.variants()
    q = torch.randn(2, 256, 4, 64, device="cuda", dtype=torch.bfloat16)
    backend, variant, reason = attnforge.select(q, q, q, causal=True)
    assert backend in ("unfused", "fused", "flash") and reason
    assert variant in names, f"{variant!r} is not a compiled variant"


def test_estimate(gpu):
    """The library's per-backend estimate: unfused needs O(S²) scratch, flash does not."""
    attnforge = gpu
    q = torch.randn(1, 2048, 4, 64, device="cuda", dtype=torch.bfloat16)
    est = {e["backend"]: e for e in attnforge.estimate(q, q, q, causal=True)}
    assert set(est) == {"unfused", "fused", "flash"}
    u = est["unfused"]
    assert u["available"] and u["flops"] > 0 and u["device_bytes"] >= u["scratch_bytes"]
    assert u["scratch_bytes"] >= 4 * 2048 * 2048 * 2, "unfused keeps a (Hq, Sq, Sk) score matrix"
    if est["flash"]["available"]:
        assert est["flash"]["scratch_bytes"] < u["scratch_bytes"]
