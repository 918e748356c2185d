"""Time the DDPM U-Net of a profile: its training step (diffusion_trainer, the notebook's own step) and its
sampling forward pass, eager and compiled, per width and memory layout; with the achieved TFLOP/s against
the measured matmul ceiling. Meant for a GPU; --dry-run times a tiny setting on any device.

    python3 scripts/bench_unet.py                      # profile full: its U-Net, widths 32 and 48, batches 256 and 512
    python3 scripts/bench_unet.py --profile t4 --widths 32 --batches 256
    python3 scripts/bench_unet.py --dry-run            # smoke profile, one width, two reps: checks that it runs
"""
import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from notebook_defs import load_notebook  # noqa: E402


def timeit(nb, fn, warmup, reps):
    for _ in range(warmup):
        fn()
    nb.sync()
    t0 = time.perf_counter()
    for _ in range(reps):
        fn()
    nb.sync()
    return (time.perf_counter() - t0) / reps


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", default="full", help="whose U-Net arguments, T and sample batch (default full)")
    parser.add_argument("--widths", type=int, nargs="+", help="base widths to time (default: the profile's and 1.5x it)")
    parser.add_argument("--batches", type=int, nargs="+", default=[256, 512], help="training batches to time")
    parser.add_argument("--dry-run", action="store_true", help="smoke profile, its width, batch 16, two reps")
    args = parser.parse_args()
    if args.dry_run:
        args.profile, args.batches = "smoke", [16]
    nb = load_notebook(args.profile)
    cfg, dev, amp = nb.CFG, nb.DEVICE, nb.AMP_DTYPE
    widths = args.widths or ([cfg.unet_ch] if args.dry_run else [cfg.unet_ch, cfg.unet_ch * 3 // 2])
    warmup, reps = (1, 2) if args.dry_run else (5, 20)
    diffusion = nb.Diffusion(nb.make_schedule("linear", cfg.ddpm_T), target=cfg.ddpm_target, amp_dtype=amp)
    data = torch.rand(max(4096, *args.batches), 1, 28, 28, device=dev) * 2 - 1
    sample_batch = 16 if args.dry_run else cfg.sample_batch
    peak = nb.matmul_tflops(amp)
    print(f"{dev} ({nb.DEVICE_INFO['name']}), profile {args.profile}, {amp}: matmul ceiling {peak:.1f} TFLOP/s")
    for ch in widths:
        for layout in ("nchw", "channels_last"):
            model = nb.UNet(**{**nb.unet_args(cfg), "ch": ch}).to(dev)
            if layout == "channels_last":
                model = model.to(memory_format=torch.channels_last)
            flops = nb.unet_flops_per_image(model)
            step, _ = nb.diffusion_trainer(model, diffusion, data, n_steps=1000, **nb.ddpm_recipe(cfg))
            for batch in args.batches:
                idx = torch.arange(batch, device=dev)
                s = timeit(nb, lambda: step(idx, 1), warmup, reps)
                print(f"ch={ch} {layout:14s} train batch {batch}: {s * 1e3:7.1f} ms/step {1 / s:7.1f} steps/s "
                      f"{3 * flops * batch / s / 1e12:7.2f} TFLOP/s")
            model.eval()
            x = torch.randn(sample_batch, 1, 28, 28, device=dev)
            with torch.inference_mode():
                s = timeit(nb, lambda: diffusion.predict_eps(model, x, cfg.ddpm_T // 2), warmup, reps)
            print(f"ch={ch} {layout:14s} sample forward, batch {sample_batch}: {s * 1e3:7.1f} ms {flops * sample_batch / s / 1e12:7.2f} TFLOP/s "
                  f"-> {cfg.n_eval} samples x {cfg.ddpm_T} steps in {s * cfg.n_eval / sample_batch * cfg.ddpm_T:.0f} s")
    if dev.type == "cuda":  # the notebook's compiled sampling carrier
        t0 = time.perf_counter()
        fast = nb.make_fast_unet(nb.UNet(**nb.unet_args(cfg)).config, True, sample_batch, amp)
        print(f"compiling the sampling carrier: {time.perf_counter() - t0:.1f} s")
        if fast is not None:
            x = torch.randn(sample_batch, 1, 28, 28, device=dev)
            with torch.inference_mode():
                s = timeit(nb, lambda: diffusion.predict_eps(fast.compiled, x, cfg.ddpm_T // 2), warmup, reps)
            print(f"compiled sample forward, batch {sample_batch}: {s * 1e3:7.1f} ms")


if __name__ == "__main__":
    main()
