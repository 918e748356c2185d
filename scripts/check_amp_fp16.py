"""The T4 path on a CUDA GPU: train the notebook's DDPM (the t4 profile's U-Net and diffusion, through
train_diffusion) for a few steps in fp16 autocast with the gradient scaler and fp32 master weights, then
sample in fp16; fail on a non-finite loss or sample. --dry-run runs the same code on the CPU in fp32.

    python3 scripts/check_amp_fp16.py            # on a GPU
    python3 scripts/check_amp_fp16.py --dry-run  # anywhere: the same calls, 4 steps, fp32
"""
import argparse
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from notebook_defs import load_notebook  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dry-run", action="store_true", help="on the CPU in fp32, smoke-profile U-Net, 4 steps")
    args = parser.parse_args()
    nb = load_notebook("smoke" if args.dry_run else "t4")
    if not args.dry_run and nb.DEVICE.type != "cuda":
        sys.exit("needs a CUDA GPU (use --dry-run to check the code path on the CPU)")
    amp, steps = (torch.float32, 4) if args.dry_run else (torch.float16, 60)
    cfg = nb.CFG
    nb.CKPT_DIR = Path(tempfile.mkdtemp())  # never touch the notebook's checkpoints
    data = nb.to_signed(torch.rand(2048, 28, 28, device=nb.DEVICE).round())
    diffusion = nb.Diffusion(nb.make_schedule("linear", cfg.ddpm_T), target=cfg.ddpm_target, amp_dtype=amp)
    ema, info = nb.train_diffusion(nb.Run("fp16_check", steps=steps, batch=128, seed=0, retrain=True, log_every=1),
                                   nb.new_model(nb.UNet, 0, **nb.unet_args(cfg)), diffusion, data, **nb.ddpm_recipe(cfg))
    losses = info["history"]["loss"]
    assert all(torch.isfinite(torch.tensor(losses))), losses
    assert all(p.dtype == torch.float32 for p in ema.parameters()), "master weights must stay fp32"
    images = nb.DiffusionSampler(ema, diffusion, 10, "ddim")(8, 0)
    assert images.dtype == torch.uint8 and images.shape == (8, 28, 28)
    print(f"{amp} + GradScaler: {len(losses)} logged losses, first {losses[0]:.4f}, last {losses[-1]:.4f}; DDIM samples "
          f"{tuple(images.shape)} {images.dtype}")


if __name__ == "__main__":
    main()
