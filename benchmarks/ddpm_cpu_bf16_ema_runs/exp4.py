# sampler variants on the cpu render's DDPM checkpoint
from common import *
import torch, math
ns["FAST"] = None
DDPMSampler, REF, CFG, SEED = ns["DDPMSampler"], ns["REF"], ns["CFG"], ns["SEED"]
ev = ns["evaluate_u8"]; to_uint8 = ns["to_uint8"]
def show(label, m, dt=0):
    print(f"{label:34s} fid {m['fid']:7.2f} conf {m['confident_frac']:.3f} kl {m['class_kl_uniform']:.4f} prec {m['precision']:.3f} rec {m['recall']:.3f}  {dt:.0f}s", flush=True)
ck = torch.load("/tmp/exp/checkpoints/ddpm_linear_T100-6e9b8d8e3e.pt", weights_only=True)
print(ck["config"]["modules"])
args = {k: v for k, v in ck["config"]["modules"]["ema"].items() if k != "class"}
ema = ns["UNet"](**args); ema.load_state_dict(ck["state"]["ema"]); ema.eval()
raw = ns["UNet"](**args); raw.load_state_dict(ck["state"]["model"]); raw.eval()
s = ns["make_schedule"]("linear", 100)
def run(label, model, method="ddpm", steps=100, eta=0.0):
    t = time.time(); x = to_uint8(DDPMSampler(model, s, steps, method, None, 250, eta=eta)(500, SEED)); show(label, ev(x, REF, 20, SEED), time.time() - t)
run("ema ancestral (render)", ema)
run("raw ancestral", raw)
# sigma^2 = beta instead of beta-tilde
orig = ns["ddpm_mean_std"]
def beta_var(x_t, x0, ab_t, ab_prev):
    mean, _ = orig(x_t, x0, ab_t, ab_prev)
    return mean, math.sqrt(1 - ab_t / ab_prev)
ns["ddpm_mean_std"] = beta_var
run("ema ancestral sigma^2=beta", ema)
ns["ddpm_mean_std"] = orig
run("ema ddim eta 1", ema, "ddim", 100, 1.0)
run("ema ddim 100 eta 0", ema, "ddim", 100, 0.0)
run("ema ddim 50 eta 0.5", ema, "ddim", 50, 0.5)
