from common import *
import torch
ns["FAST"] = None
DDPMSampler, REF, SEED = ns["DDPMSampler"], ns["REF"], ns["SEED"]
ev = ns["evaluate_u8"]; to_uint8 = ns["to_uint8"]
f = ns["sample"]; f = getattr(f, "__wrapped__", f); d = list(f.__defaults__); d[3] = torch.bfloat16; f.__defaults__ = tuple(d)
s = ns["make_schedule"]("linear", 100)
ck = torch.load("/tmp/exp/exp5_12000_bf16.pt", weights_only=True)
def net(key):
    m = ns["UNet"](ch=16, attn_levels=(), dropout=0.0, target="v"); m.load_state_dict(ck[key]); return m.eval()
def run(label, m, method="ddpm", steps=100, seed=SEED):
    t = time.time(); x = to_uint8(DDPMSampler(m, s, steps, method, None, 250)(500, seed)); r = ev(x, REF, 100, SEED)
    print(f"{label:30s} fid {r['fid']:6.2f} conf {r['confident_frac']:.3f} kl {r['class_kl_uniform']:.4f} prec {r['precision']:.3f}  {time.time()-t:.0f}s", flush=True)
for k in ("0.999", "0.995"):
    m = net(k)
    run(f"ema {k} ddim25", m, "ddim", 25); run(f"ema {k} ddim10", m, "ddim", 10)
    for sd in (1, 2): run(f"ema {k} ancestral seed+{sd}", m, seed=SEED + 1000 * sd)
