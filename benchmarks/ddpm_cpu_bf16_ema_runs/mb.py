import sys, time, torch
sys.path.insert(0, "/work/main/tests")
from notebook_defs import load_definitions
ns = load_definitions("cpu")
torch.manual_seed(0)
X = torch.rand(2000, 1, 28, 28) * 2 - 1
s = ns["make_schedule"]("linear", 100)
def bench(label, ch=16, amp=torch.float32, cl=False, compile_=False, batch=64, n=40):
    m = ns["UNet"](ch=ch, attn_levels=(), dropout=0.0, target="v")
    if cl: m = m.to(memory_format=torch.channels_last)
    ema = ns["UNet"](ch=ch, attn_levels=(), dropout=0.0, target="v")
    net = torch.compile(m) if compile_ else m
    opt = torch.optim.AdamW(m.parameters(), lr=1e-3)
    sched = ns["warmup_cosine"](opt, 1000, 10)
    scaler = torch.amp.GradScaler("cpu", enabled=False)
    net.target = "v"
    step = ns["make_ddpm_step"](net, ema, opt, sched, scaler, X if not cl else X.contiguous(memory_format=torch.channels_last), s, 0.995, amp)
    t0 = time.perf_counter()
    for i in range(5): step(torch.randint(0, 2000, (batch,)), i)
    t1 = time.perf_counter()
    for i in range(n): step(torch.randint(0, 2000, (batch,)), i)
    dt = (time.perf_counter() - t1) / n
    print(f"{label:30s} {dt*1000:7.1f} ms/step  {batch/dt:6.0f} img/s  (warmup {t1-t0:.1f}s)", flush=True)
bench("fp32")
bench("fp32 channels_last", cl=True)
bench("bf16 autocast", amp=torch.bfloat16)
bench("bf16 autocast channels_last", amp=torch.bfloat16, cl=True)
bench("fp32 batch 128", batch=128, n=20)
bench("w24 fp32", ch=24)
bench("w24 bf16", ch=24, amp=torch.bfloat16)
bench("fp32 compiled", compile_=True)
