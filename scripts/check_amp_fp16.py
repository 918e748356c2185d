"""The T4 path on any CUDA GPU: train the notebook's DDPM for a few steps in fp16 autocast with the
gradient scaler (fp32 master weights), then sample in fp16; fail on a non-finite loss or sample.
Usage (GPU): python3 scripts/check_amp_fp16.py"""
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from notebook_defs import load_definitions  # noqa: E402

nb = load_definitions("smoke")
assert nb["DEVICE"].type == "cuda", "needs a GPU"
fp16 = torch.float16
data = nb["to_signed"](torch.rand(2048, 28, 28, device=nb["DEVICE"]).round())
sched = nb["make_schedule"]("linear", 1000)
ema, info = nb["train_ddpm"]("fp16_check", nb["UNet"](16), sched, data, 60, 128, 0, amp_dtype=fp16, retrain=True)
losses = info["history"]["loss"]
assert all(torch.isfinite(torch.tensor(losses))), losses
assert all(p.dtype == torch.float32 for p in ema.parameters()), "master weights must stay fp32"
x, _ = nb["sample"](ema, sched, torch.randn(8, 1, 28, 28, device=nb["DEVICE"]), 10, "ddim", amp_dtype=fp16)
assert torch.isfinite(x).all()
print(f"fp16 + GradScaler: {len(losses)} logged losses, first {losses[0]:.4f}, last {losses[-1]:.4f}; fp16 DDIM samples finite")
