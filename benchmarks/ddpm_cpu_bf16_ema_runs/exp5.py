# bf16 autocast on the CPU at full length, with several EMA decays tracked in one run
from common import *
import torch, copy
STEPS = int(sys.argv[1]); AMP = {"bf16": torch.bfloat16, "fp32": torch.float32}[sys.argv[2]]
DECAYS = (0.99, 0.995, 0.998, 0.999)
ns["FAST"] = None
DDPMSampler, REF, SEED = ns["DDPMSampler"], ns["REF"], ns["SEED"]
ev = ns["evaluate_u8"]; to_uint8 = ns["to_uint8"]
def show(label, m, dt=0):
    print(f"{label:34s} fid {m['fid']:7.2f} [{m['fid_low']:.1f},{m['fid_high']:.1f}] conf {m['confident_frac']:.3f} kl {m['class_kl_uniform']:.4f} prec {m['precision']:.3f} rec {m['recall']:.3f}  {dt:.0f}s", flush=True)
s = ns["make_schedule"]("linear", 100)
X = ns["to_signed"](ns["X_TRAIN"])
model = ns["new_model"](ns["UNet"], SEED, ch=16, attn_levels=(), dropout=0.0, target="v")
emas = {d: copy.deepcopy(model).eval().requires_grad_(False) for d in DECAYS}
main = emas[0.995]
opt = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=0.0)
sched = ns["warmup_cosine"](opt, STEPS, round(0.1 * STEPS))
scaler = torch.amp.GradScaler("cpu", enabled=False)
step = ns["make_ddpm_step"](model, main, opt, sched, scaler, X, s, 0.995, AMP)
params = list(model.parameters())
extra = {d: list(e.parameters()) for d, e in emas.items() if d != 0.995}
ns["seed_everything"](SEED)
batches = ns["batch_indices"](len(X), 64, ns["DEVICE"])
t0 = time.perf_counter()
for i in range(1, STEPS + 1):
    step(next(batches), i)
    for d, ep in extra.items():
        ns["ema_update"](ep, params, ns["ema_decay"](i, d))
    if i % 1000 == 0: print(i, f"{time.perf_counter()-t0:.0f}s", flush=True)
print("train seconds", time.perf_counter() - t0, flush=True)
torch.save({"model": model.state_dict(), **{str(d): e.state_dict() for d, e in emas.items()}}, f"/tmp/exp/exp5_{STEPS}_{sys.argv[2]}.pt")
def run(label, m, method="ddpm", steps=100):
    t = time.time(); x = to_uint8(DDPMSampler(m, s, steps, method, None, 250)(500, SEED)); show(label, ev(x, REF, 100, SEED), time.time() - t)
ns["AMP_DTYPE"] = AMP  # sample in the same precision
f = ns["sample"]; f = getattr(f, "__wrapped__", f); d = list(f.__defaults__); d[3] = AMP; f.__defaults__ = tuple(d); print("sample defaults", d)
run("raw", model.eval())
for d, e in emas.items(): run(f"ema {d}", e)
run("ema 0.995 ddim25", main, "ddim", 25)
