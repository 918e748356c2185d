"""Forecast the notebook's run time on a GPU nobody here has (a Colab T4), from counted work.

Method (issue 10). The notebook's own `section_workload(cfg)` counts, per timed section, the units of
work a profile asks for: training steps of each model family at its batch size, network passes per
image while sampling, images through evaluate(). For each unit this script runs it once on the CPU
under a counting dispatch mode and records, op by op, the FLOPs (torch.utils.flop_counter's formulas),
the bytes the op reads and writes (its tensor arguments and results, in the dtype autocast gives them)
and one kernel launch. A device is described by its sustained rates: FLOP/s per dtype, memory
bandwidth, and the host's cost to launch one eager op. The device time of an op is the larger of its
compute time and its memory time (a roofline per op); a unit's time is the larger of its summed device
time and its launches times the per-launch cost (the GPU runs behind the host). A compiled sampler
fuses elementwise ops: its memory traffic is counted only for the matmul-like ops and norms, and its
launches are those ops alone.

    python3 scripts/predict_time.py                 # T4 profile on a T4, and full on an H100 checked
                                                   # against the committed notebook's measured sections
    python3 scripts/predict_time.py --profile t4 --device T4
"""
import argparse
import ast
import json
import re
import sys
from pathlib import Path

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten
from torch.utils.flop_counter import flop_registry

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from notebook_defs import NOTEBOOK, load_definitions  # noqa: E402

# Sustained rates. T4: fp16 tensor cores 65 TFLOP/s peak, about 24 measured by cuBLAS under its 70 W cap;
# fp32 8.1 peak (no TF32), fp64 1/32 of fp32; 320 GB/s. H100 SXM: bf16 dense as the committed run measured
# it (792.6), TF32 half of that, fp64 67; 3.35 TB/s. Both at 80% of the peak bandwidth. Launch cost per eager op
# (host side): fitted to the committed H100 render's DDPM training step (launch-bound there), read from its
# printed output; Colab's 2-vCPU host is taken as 1.5x slower than the H100 machine's.
DEVICES = {
    "T4": {"flops": {"half": 24e12, "fp32": 6e12, "fp64": 0.25e12}, "bandwidth": 320e9 * 0.8, "launch_vs_h100": 1.5},
    "H100": {"flops": {"half": 792.6e12, "fp32": 396e12, "fp64": 67e12}, "bandwidth": 3.35e12 * 0.8, "launch_vs_h100": 1.0},
}
COMPUTE_OPS = ("convolution", "addmm", "mm", "bmm", "_scaled_dot_product", "native_group_norm", "native_layer_norm",
               "cdist", "_cdist_forward", "topk", "linalg")


class WorkCounter(TorchDispatchMode):
    """Per aten op: FLOPs, bytes read + written, and whether a compiled graph would keep it as a kernel."""

    def __init__(self):
        super().__init__()
        self.ops = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        packet = func._overloadpacket
        flops = flop_registry[packet](*args, **kwargs, out_val=out) if packet in flop_registry else 0
        tensors = [t for t in tree_flatten((args, kwargs, out))[0] if isinstance(t, torch.Tensor)]
        nbytes = sum(t.numel() * t.element_size() for t in tensors)
        dtype = next((t.dtype for t in tensors if t.is_floating_point()), torch.float32)
        kind = "half" if dtype in (torch.float16, torch.bfloat16) else "fp64" if dtype == torch.float64 else "fp32"
        if nbytes:  # views and metadata ops launch nothing
            self.ops.append({"flops": flops, "bytes": nbytes, "kind": kind, "compute": any(c in func.__name__ for c in COMPUTE_OPS)})
        return out


def count(fn):
    with WorkCounter() as counter:
        fn()
    return counter.ops


def unit_ops(nb, cfg, eval_n=256):
    """One run of every unit in section_workload under the counter: {unit: (ops, per)}; per = images the
    run covers for per-image units, 1 for per-step units. The U-Net runs under bf16 autocast, as on a GPU."""
    torch.manual_seed(0)
    T, amp = cfg["ddpm_T"], torch.bfloat16
    data = torch.rand(max(4096, cfg["ddpm_batch"]), 28, 28)
    sched = nb["make_schedule"]("linear", T)
    units = {}
    unet_args = nb["unet_args"](cfg)
    for name, model, x, batch, dtype in (("unet_step", nb["UNet"](**unet_args), nb["to_signed"](data), cfg["ddpm_batch"], amp),
                                         ("ld_step", nb["LatentDenoiser"](16), torch.randn(4096, 16), 1024, torch.float32)):
        opt = torch.optim.AdamW(model.parameters(), lr=1e-4, foreach=True)
        ema = nb["copy"].deepcopy(model).requires_grad_(False)
        scaler = torch.amp.GradScaler("cpu", enabled=False)
        step = nb["make_ddpm_step"](model, ema, opt, nb["warmup_cosine"](opt, 10, 1), scaler, x, sched, 0.999, dtype)
        step(torch.arange(batch), 1)  # optimizer state exists from here on, as in training
        units[name] = (count(lambda: step(torch.arange(batch), 2)), 1)
    vae = nb["ConvVAE"](16)
    vopt = torch.optim.Adam(vae.parameters(), foreach=True)
    vstep = nb["make_vae_step"](vae, vopt, torch.optim.lr_scheduler.ConstantLR(vopt, 1.0), data)
    vstep(torch.arange(cfg["vae_batch"]), 1)
    units["vae_step"] = (count(lambda: vstep(torch.arange(cfg["vae_batch"]), 2)), 1)
    G, D = nb["DCGenerator"](), nb["DCDiscriminator"]()
    gstep = nb["make_gan_step"](G, D, torch.optim.Adam(G.parameters(), foreach=True), torch.optim.Adam(D.parameters(), foreach=True),
                                nb["to_signed"](data))
    gstep(torch.arange(256), 1)
    units["gan_step"] = (count(lambda: gstep(torch.arange(256), 2)), 1)
    b = cfg["sample_batch"]
    with torch.no_grad():  # not inference_mode: under it, convolutions reach the dispatch mode as ops the FLOP registry lacks
        unet = nb["UNet"](**unet_args).eval()
        units["unet_forward"] = (count(lambda: nb["predict_noise"](unet, torch.randn(b, 1, 28, 28), T // 2, sched, amp)), b)
        units["unet_pass_small"] = (count(lambda: nb["predict_noise"](unet, torch.randn(16, 1, 28, 28), T // 2, sched, amp)), 1)
        ld = nb["LatentDenoiser"](16).eval()
        units["ld_forward"] = (count(lambda: nb["predict_noise"](ld, torch.randn(5000, 16), T // 2, sched, torch.float32)), 5000)
        units["vae_decode"] = (count(lambda: vae.decode(torch.randn(5000, 16))), 5000)
    # evaluate(): a reference of 10,000 "test" images and 60,000 "training" images, as in the notebook
    clf = nb["DigitClassifier"]().eval()
    ref = nb["build_reference"](clf, torch.rand(10000, 28, 28), torch.rand(60000, 28, 28), n_memo=min(cfg["n_eval"], 2000))
    images = torch.rand(eval_n, 28, 28)
    ops = count(lambda: nb["evaluate"](images, ref, cfg.get("n_boot", 0), 0))  # the committed render had no bootstrap
    units["eval_image"] = (ops, eval_n)
    return units


def unit_seconds(ops, per, device, launch, compiled=False):
    """Roofline per op, summed, against the host's launch cost (seconds per op); per image or per step."""
    dev = DEVICES[device]
    if compiled:
        ops = [o for o in ops if o["compute"]]
    device_time = sum(max(o["flops"] / dev["flops"][o["kind"]], o["bytes"] / dev["bandwidth"]) for o in ops)
    return max(device_time, len(ops) * launch) / per


def measured_run(notebook):
    """From the committed render's outputs (no numbers typed here): its printed profile configuration,
    its timing table, its main DDPM's training (steps, batch, seconds) and its compile time."""
    cells = json.loads(Path(notebook).read_text())["cells"]
    text = "".join("".join(o.get("text", "")) for c in cells if c["cell_type"] == "code" for o in c.get("outputs", []))
    cfg_line = re.search(r"clf_epochs=.*", text).group(0)
    table = dict(re.findall(r"^(Q1 VAE|Q2 DDPM|Q3 GAN and latent diffusion)\s+(?:[\d.]+\s+)?([\d.]+)", text, re.M))
    steps, batch, secs = re.search(r"ddpm_linear_T1000: [\d,]+ params, (\d+) steps x (\d+) in ([\d.]+) s", text).groups()
    compile_s = float(re.search(r"torch.compile of the sampling U-Net: ([\d.]+) s", text).group(1))
    return cfg_line, {k: float(v) for k, v in table.items()}, (int(steps), int(batch), float(secs)), compile_s


def forecast(nb, cfg, device, compiled, units_ops, launch, **workload_args):
    secs = {u: unit_seconds(ops, per, device, launch, compiled=compiled and u == "unet_forward") for u, (ops, per) in units_ops.items()}
    if compiled:  # a figure's small batch goes through the compiled carrier padded to the sample batch
        secs["unet_pass_small"] = secs["unet_forward"] * cfg["sample_batch"]
    return secs, nb["forecast_seconds"](nb["section_workload"](cfg, **workload_args), secs)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", default="t4")
    parser.add_argument("--device", default="T4", choices=sorted(DEVICES))
    parser.add_argument("--eager", action="store_true", help="forecast with an eager (uncompiled) sampler")
    args = parser.parse_args()
    torch.set_num_threads(2)
    nb = load_definitions("smoke")

    # the committed H100 render: its configuration, its section times, and its launch-bound DDPM step
    cfg_line, measured, (h_steps, h_batch, h_secs), compile_h100 = measured_run(NOTEBOOK)
    full_cfg = {k: ast.literal_eval(v) for k, v in (kv.split("=", 1) for kv in re.split(r", (?=\w+=)", cfg_line))}
    h_units = unit_ops(nb, full_cfg)
    launches = len(h_units["unet_step"][0])
    launch_h100 = h_secs / h_steps / launches
    print(f"H100 launch cost: {h_secs / h_steps * 1e3:.1f} ms per DDPM step (batch {h_batch}) / {launches} launches "
          f"= {launch_h100 * 1e6:.1f} us per op (fitted to the committed render)")

    info = {"type": "cuda", "name": args.device, "capability": (7, 5) if args.device == "T4" else (9, 0)}
    _, cfg, _ = nb["resolve_profile"](args.profile, info)
    units_ops = unit_ops(nb, cfg)
    print(f"\nper unit, profile {args.profile}: GFLOP, MB moved, launches (counted on the CPU, bf16 autocast for the U-Net)")
    for u, (ops, per) in units_ops.items():
        print(f"  {u:13s} per {'image' if per > 1 else 'step '}: {sum(o['flops'] for o in ops) / per / 1e9:9.4f} GFLOP "
              f"{sum(o['bytes'] for o in ops) / per / 1e6:9.3f} MB {len(ops) / per:9.2f} launches")
    host_scale = DEVICES[args.device]["launch_vs_h100"]
    secs, fc = forecast(nb, cfg, args.device, not args.eager, units_ops, launch_h100 * host_scale)
    compile_s = compile_h100 * host_scale  # compiling runs on the host: the H100 machine's measured time, scaled like a launch
    if not args.eager:
        fc["Q2 DDPM"] += compile_s
    how = "eager sampling U-Net" if args.eager else f"compiled sampling U-Net; compiling: {compile_s:.0f} s in Q2"
    print(f"\nforecast on {args.device} ({how}), seconds per unit:")
    print("  " + ", ".join(f"{u} {s * 1e3:.3g} ms" for u, s in secs.items()))
    for section, s in fc.items():
        print(f"  {section:30s}{s:8.0f} s")
    total = sum(fc.values())
    print(f"  {'sections above':30s}{total:8.0f} s = {total / 60:.1f} min, plus setup, the yardstick and Q3's plots")

    _, h_fc = forecast(nb, full_cfg, "H100", True, h_units, launch_h100, fresh_chain_model=False)  # as that render ran
    h_fc["Q2 DDPM"] += compile_h100
    print(f"\ncheck: the same method on the H100, with the committed full render's configuration ({cfg_line[:60]}...)")
    print(f"  {'section':30s}{'forecast s':>11s}{'measured s':>11s}{'measured/forecast':>19s}")
    for section, m in measured.items():
        print(f"  {section:30s}{h_fc[section]:11.1f}{m:11.1f}{m / h_fc[section]:19.2f}")
    total_f, total_m = sum(h_fc[k] for k in measured), sum(measured.values())
    print(f"  {'three sections':30s}{total_f:11.1f}{total_m:11.1f}{total_m / total_f:19.2f}")


if __name__ == "__main__":
    main()
