import sys, time, torch
sys.path.insert(0, "/work/main/tests")
from notebook_defs import load_definitions
ns = load_definitions("cpu")
print("AMP", ns["AMP_DTYPE"])
torch.manual_seed(0)
X = torch.rand(2000, 1, 28, 28) * 2 - 1
s = ns["make_schedule"]("linear", 100)
def bench(label, batch=64, n=40, **kw):
    args = {"ch": 16, "attn_levels": (), "dropout": 0.0, "target": "v", **kw}
    m = ns["UNet"](**args); ema = ns["UNet"](**args)
    opt = torch.optim.AdamW(m.parameters(), lr=1e-3)
    sched = ns["warmup_cosine"](opt, 1000, 10)
    scaler = torch.amp.GradScaler("cpu", enabled=False)
    step = ns["make_ddpm_step"](m, ema, opt, sched, scaler, X, s, 0.995, torch.bfloat16)
    for i in range(5): step(torch.randint(0, 2000, (batch,)), i)
    t1 = time.perf_counter()
    for i in range(n): step(torch.randint(0, 2000, (batch,)), i)
    dt = (time.perf_counter() - t1) / n
    npar = sum(p.numel() for p in m.parameters())
    print(f"{label:34s} {npar:8,d} params {dt*1000:7.1f} ms/step  {batch/dt:6.0f} img/s", flush=True)
bench("w16 (1,2,2)")
bench("w16 (1,2,4)", mults=(1,2,4))
bench("w16 (1,2,3)", mults=(1,2,3))
bench("w16 (1,3,4)", mults=(1,3,4))
bench("w16 (1,2,2) attn 14", attn_levels=(1,))
bench("w16 n_res 2", n_res=2)
bench("w24 (1,2,2)", ch=24)
bench("w16 (1,2,2) batch 32", batch=32, n=60)
bench("w16 (1,2,2) batch 128", batch=128, n=20)
