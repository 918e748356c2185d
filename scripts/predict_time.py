"""Forecast the notebook's run time on a GPU nobody here has (a Colab T4), from counted work.

Method. The notebook's own `section_workload(cfg)` counts, per timed section, the units of
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

    python3 scripts/predict_time.py                 # t4 profile on a T4, and the method checked on the H100
                                                   # against a GPU render's metrics (benchmarks/h100_render.json)
    python3 scripts/predict_time.py --profile t4 --device T4 --measured figures/metrics.json
    python3 scripts/predict_time.py --dry-run       # smoke profile: checks that the counting runs
"""
import argparse
import dataclasses
import functools
import json
import sys
from pathlib import Path

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten
from torch.utils.flop_counter import flop_registry

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from notebook_defs import load_notebook  # noqa: E402

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
    """One run of every unit in section_workload under the counter: {unit: (ops, per)}; per = the units one run
    covers (images for the sampling passes, 1 for a training step). The units are the notebook's own unit_calls,
    the ones calibrate_units times, with the U-Net under bf16 autocast as on a GPU."""
    torch.manual_seed(0)
    units = {}
    for name, (fn, items) in nb.unit_calls(cfg, torch.rand(max(4096, cfg.ddpm_batch), 28, 28), None, torch.bfloat16).items():
        with torch.no_grad() if not name.endswith("step") else torch.enable_grad():  # no inference_mode: the FLOP registry
            fn()  # a training step's optimizer state exists from here on, as in training
            units[name] = (count(fn), items)
    # evaluate(): a reference of 10,000 "test" images and 60,000 "training" images, as in the notebook
    clf = nb.DigitClassifier().eval()
    ref = nb.build_reference(clf, torch.rand(10000, 28, 28), torch.rand(60000, 28, 28), n_memo=min(cfg.n_eval, 2000))
    images = torch.rand(eval_n, 28, 28)
    units["eval_image"] = (count(lambda: nb.evaluate(images, ref, cfg.n_boot, 0)), eval_n)
    return units


def unit_seconds(ops, per, device, launch, compiled=False):
    """Roofline per op, summed, against the host's launch cost (seconds per op); per image or per step."""
    dev = DEVICES[device]
    if compiled:
        ops = [o for o in ops if o["compute"]]
    device_time = sum(max(o["flops"] / dev["flops"][o["kind"]], o["bytes"] / dev["bandwidth"]) for o in ops)
    return max(device_time, len(ops) * launch) / per


def profile_from(nb, config):
    """The Profile a metrics file's run.config describes (fields it lacks, from an older render, from `full`)."""
    fields = {f.name for f in dataclasses.fields(nb.Profile)}
    return dataclasses.replace(nb.PROFILES["full"], **{k: tuple(v) if isinstance(v, list) else v for k, v in config.items() if k in fields})


def forecast(nb, cfg, device, compiled, units_ops, launch, missing_chain_models=0):
    """Seconds per unit and per section; missing_chain_models: chain-length models a render ran without."""
    secs = {u: unit_seconds(ops, per, device, launch, compiled=compiled and u == "unet_forward") for u, (ops, per) in units_ops.items()}
    if compiled:  # a figure's small batch goes through the compiled carrier padded to the sample batch
        secs["unet_pass_small"] = secs["unet_forward"] * cfg.sample_batch
    workload = nb.section_workload(cfg)
    workload["Q2 DDPM"]["unet_step"] -= missing_chain_models * cfg.ddpm_cmp_steps
    workload["Q2 DDPM"]["eval_image"] -= missing_chain_models * cfg.n_small
    return secs, nb.forecast_seconds(workload, secs)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", default="t4")
    parser.add_argument("--device", default="T4", choices=sorted(DEVICES))
    parser.add_argument("--eager", action="store_true", help="forecast with an eager (uncompiled) sampler")
    parser.add_argument("--measured", default=str(ROOT / "benchmarks" / "h100_render.json"),
                        help="metrics.json of an H100 render: its DDPM step fits the launch cost, its sections check the method")
    parser.add_argument("--dry-run", action="store_true", help="smoke profile for both forecasts: checks that it runs")
    args = parser.parse_args()
    torch.set_num_threads(2)
    for name in ("Adam", "AdamW"):  # multi-tensor optimiser kernels, as on a GPU (fused there): not one op per parameter
        setattr(torch.optim, name, functools.partial(getattr(torch.optim, name), foreach=True))
    nb = load_notebook("smoke")
    measured = json.loads(Path(args.measured).read_text())
    run, ddpm = measured["run"], measured["models"]["ddpm"]

    # the measured H100 render: its configuration, its section times, and its launch-bound DDPM step
    h_cfg = nb.PROFILES["smoke"] if args.dry_run else profile_from(nb, run["config"])
    h_units = unit_ops(nb, h_cfg)
    launches = len(h_units["unet_step"][0])
    step_s = ddpm["train_seconds"] / ddpm["train_steps"]
    launch_h100 = step_s / launches
    print(f"H100 launch cost: {step_s * 1e3:.1f} ms per DDPM step (batch {ddpm['train_batch']}) / {launches} launches "
          f"= {launch_h100 * 1e6:.1f} us per op (fitted to {Path(args.measured).name})")

    info = {"type": "cuda", "name": args.device, "capability": (7, 5) if args.device == "T4" else (9, 0)}
    _, cfg, _ = nb.resolve_profile("smoke" if args.dry_run else args.profile, info)
    units_ops = unit_ops(nb, cfg)
    print(f"\nper unit, profile {args.profile}: GFLOP, MB moved, launches (counted on the CPU, bf16 autocast for the U-Net)")
    for u, (ops, per) in units_ops.items():
        print(f"  {u:15s} per {'image' if per > 1 else 'step '}: {sum(o['flops'] for o in ops) / per / 1e9:9.4f} GFLOP "
              f"{sum(o['bytes'] for o in ops) / per / 1e6:9.3f} MB {len(ops) / per:9.2f} launches")
    host_scale = DEVICES[args.device]["launch_vs_h100"]
    secs, fc = forecast(nb, cfg, args.device, not args.eager, units_ops, launch_h100 * host_scale)
    compile_s = run["compile_seconds"] * host_scale  # compiling runs on the host: the H100 machine's time, scaled like a launch
    if not args.eager:
        fc["Q2 DDPM"] += compile_s
    how = "eager sampling U-Net" if args.eager else f"compiled sampling U-Net; compiling: {compile_s:.0f} s in Q2"
    print(f"\nforecast on {args.device} ({how}), seconds per unit:")
    print("  " + ", ".join(f"{u} {s * 1e3:.3g} ms" for u, s in secs.items()))
    for section, s in fc.items():
        print(f"  {section:30s}{s:8.0f} s")
    total = sum(fc.values())
    print(f"  {'sections above':30s}{total:8.0f} s = {total / 60:.1f} min, plus setup, the yardstick and Q3's plots")

    missing = 1 if run.get("chain_models") == len(h_cfg.cmp_T) + 1 else 0  # a render from before the fresh T model
    _, h_fc = forecast(nb, h_cfg, "H100", run.get("compiled_sampler", True), h_units, launch_h100, missing_chain_models=missing)
    h_fc["Q2 DDPM"] += run["compile_seconds"]
    print(f"\ncheck: the same method on the H100, with the measured render's configuration ({Path(args.measured).name})")
    print(f"  {'section':30s}{'forecast s':>11s}{'measured s':>11s}{'measured/forecast':>19s}")
    sections = {k: v for k, v in run["seconds_by_section"].items() if k in h_fc}
    for section, m in sections.items():
        print(f"  {section:30s}{h_fc[section]:11.1f}{m:11.1f}{m / h_fc[section]:19.2f}")
    total_f, total_m = sum(h_fc[k] for k in sections), sum(sections.values())
    print(f"  {'those sections':30s}{total_f:11.1f}{total_m:11.1f}{total_m / total_f:19.2f}")


if __name__ == "__main__":
    main()
