# Dev: warp-stall samples of an ncu source export (ncu_stalls.py input) grouped by how often each instruction
# ran: in a persistent kernel the per-key-tile loop, the per-row-block code and the producer separate by
# their execution counts. Usage: ncu_exec_classes.py FILE.csv.gz
import csv,gzip,sys,collections
rows=list(csv.reader(gzip.open(sys.argv[1],'rt'))); hdr=rows[1]; data=rows[2:]; ix={h:i for i,h in enumerate(hdr)}
A='Warp Stall Sampling (All Samples)'
tot=sum(int(r[ix[A]] or 0) for r in data)
reasons=[h for h in hdr if h.startswith('stall_') and 'Not Issued' not in h]
cls=collections.defaultdict(lambda: collections.Counter())
n=collections.Counter()
for r in data:
    ex=int((r[ix['Instructions Executed']] or '0').replace(',',''))
    s=int(r[ix[A]] or 0)
    k='%d'%ex
    n[k]+=1
    cls[k]['all']+=s
    for c in reasons: cls[k][c[6:]]+=int(r[ix[c]] or 0)
for k in sorted(cls,key=lambda k:-cls[k]['all'])[:12]:
    c=cls[k]; print(f"exec={k:>8} instrs={n[k]:4d} {100*c['all']/tot:5.1f}%  "+' '.join(f"{x}:{100*c[x]/tot:.1f}" for x,_ in sorted(((x,v) for x,v in c.items() if x!='all'),key=lambda t:-t[1])[:5]))
