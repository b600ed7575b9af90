# Device run: same-process timing A/B of the warp-specialized forward through the dev driver
# (scripts/dev/flash_fwd_dev.{cu,py}, DEV_TRACE_SET tiles): base = the kernels of devbase/ (git archive
# of a base rev), new = this tree, alt = this tree built with ALT_FLAGS (default: the dev switch
# -DATTNFORGE_FLASH_FWD_LAZY=0). Quick numerics check of `new`, then the training grid twice per lib.
#   OUT=... [SS=2048,4096,16384] [ALT_FLAGS=...] bash scripts/dev/fwd_dev_ab.sh
export PATH=$PATH:/usr/local/cuda/bin
F="-std=c++17 -O3 -gencode=arch=compute_90a,code=sm_90a --expt-relaxed-constexpr -DDEV_WS -DDEV_TRACE_SET -shared -Xcompiler -fPIC -Igenerated -Iscripts/dev"
nvcc $F -Idevbase/runtime/include -Idevbase/runtime/kernels scripts/dev/flash_fwd_dev.cu -o /tmp/lib_base.so &
nvcc $F -Iruntime/include -Iruntime/kernels scripts/dev/flash_fwd_dev.cu -o /tmp/lib_new.so &
nvcc $F ${ALT_FLAGS:--DATTNFORGE_FLASH_FWD_LAZY=0} -Iruntime/include -Iruntime/kernels scripts/dev/flash_fwd_dev.cu -o /tmp/lib_alt.so &
wait; ls /tmp/lib_base.so /tmp/lib_new.so /tmp/lib_alt.so || exit 1
timeout 150 python3 scripts/dev/flash_fwd_dev.py /tmp/lib_new.so check --quick > $OUT/check_new.log 2>&1
echo "check new rc=$?"; grep -E "FAIL|checks:" $OUT/check_new.log | head
for rep in 1 2; do for t in base new alt; do
  DEV_SS=${SS:-2048,4096,16384} timeout 150 python3 scripts/dev/flash_fwd_dev.py /tmp/lib_$t.so time > $OUT/time_${t}_$rep.log 2>&1
done; done
# wg:<tile> TFLOP/s per shape, every lib and rep side by side
python3 - $OUT <<'PY'
import re, sys, collections
out = sys.argv[1]
rows = collections.OrderedDict()
for t in ("base", "new", "alt"):
    for rep in (1, 2):
        for line in open(f"{out}/time_{t}_{rep}.log"):
            m = re.match(r"D=\s*(\d+) S=\s*(\d+) causal=(\d)", line)
            if not m:
                continue
            for k, v in re.findall(r"(wg:\S+|torch_cudnn)=\s*([0-9.]+)", line):
                rows.setdefault((m.groups(), k), {})[(t, rep)] = float(v)
print("D S causal tile | base r1 r2 | new r1 r2 | alt r1 r2 | new/base alt/base")
for (shape, k), v in rows.items():
    g = lambda t: [v.get((t, r), float("nan")) for r in (1, 2)]
    b, n, a = g("base"), g("new"), g("alt")
    print(f"{' '.join(shape)} {k:22s} | {b[0]:6.1f} {b[1]:6.1f} | {n[0]:6.1f} {n[1]:6.1f} | {a[0]:6.1f} {a[1]:6.1f} |"
          f" {sum(n) / sum(b):.3f} {sum(a) / sum(b):.3f}")
PY
