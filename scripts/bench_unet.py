"""Time the DDPM U-Net's training step and sampling forward pass on the GPU, per width and memory
layout, using the notebook's own definitions. Usage: python3 scripts/bench_unet.py"""
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from notebook_defs import load_definitions  # noqa: E402

nb = load_definitions("full")
dev, amp = nb["DEVICE"], nb["AMP_DTYPE"]
sched = nb["make_schedule"]("linear", 1000)
data = torch.rand(4096, 1, 28, 28, device=dev) * 2 - 1


def timeit(fn, warmup, reps):
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(reps):
        fn()
    torch.cuda.synchronize()
    return (time.perf_counter() - t0) / reps


peak = nb["matmul_tflops"](amp)
print(f"matmul ceiling {peak:.0f} TFLOP/s ({amp})")
for ch in (32, 48):
    for layout in ("nchw", "channels_last"):
        model = nb["UNet"](ch).to(dev)
        if layout == "channels_last":
            model = model.to(memory_format=torch.channels_last)
        flops = nb["unet_flops_per_image"](model)
        ema = nb["copy"].deepcopy(model).requires_grad_(False)
        opt = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=True)
        scaler = torch.amp.GradScaler("cuda", enabled=False)
        lr = nb["warmup_cosine"](opt, 1000, 10)
        step = nb["make_ddpm_step"](model, ema, opt, lr, scaler, data, sched, 0.999, amp)
        for batch in (256, 512):
            idx = torch.arange(batch, device=dev)
            s = timeit(lambda: step(idx, 1), 5, 20)
            print(f"ch={ch} {layout:14s} train batch {batch}: {s * 1e3:6.1f} ms/step "
                  f"{3 * flops * batch / s / 1e12:6.1f} TFLOP/s")
        model.eval()
        x = torch.randn(2500, 1, 28, 28, device=dev)
        with torch.inference_mode():
            s = timeit(lambda: nb["predict_noise"](model, x, 500, sched, amp), 3, 10)
        print(f"ch={ch} {layout:14s} sample fwd batch 2500: {s * 1e3:6.1f} ms "
              f"{flops * 2500 / s / 1e12:6.1f} TFLOP/s -> 10k x 1000 steps {s * 4 * 1000:.0f} s")
# torch.compile of the sampling forward (fixed shape)
model = nb["UNet"](32).to(dev).to(memory_format=torch.channels_last).eval()
t0 = time.perf_counter()
cmodel = torch.compile(model)
x = torch.randn(2500, 1, 28, 28, device=dev)
with torch.inference_mode():
    nb["predict_noise"](cmodel, x, 500, sched, amp)
    torch.cuda.synchronize()
    print(f"compile: {time.perf_counter() - t0:.1f} s")
    s = timeit(lambda: nb["predict_noise"](cmodel, x, 500, sched, amp), 3, 10)
print(f"ch=32 channels_last compiled sample fwd batch 2500: {s * 1e3:6.1f} ms -> 10k x 1000 steps {s * 4 * 1000:.0f} s")
# small-model step overhead: one VAE step
vae = nb["ConvVAE"](16).to(dev)
vopt = torch.optim.Adam(vae.parameters(), lr=1e-3)
xb = torch.rand(60000, 28, 28, device=dev)


def vae_step(b):
    terms = nb["negative_elbo"](vae, xb[:b])
    vopt.zero_grad()
    terms["loss"].backward()
    vopt.step()


for b in (128, 512):
    print(f"VAE step batch {b}: {timeit(lambda: vae_step(b), 5, 50) * 1e3:.2f} ms")
