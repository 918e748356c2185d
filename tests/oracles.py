"""Exact noise predictors of toy data sets, for testing samplers and bounds against known answers. Each sees t on
the notebook's 0..1000 scale, whatever the chain length T = len(alpha_bar)."""
import torch


class Oracle(torch.nn.Module):
    """What the exact predictors share: the schedule's alpha-bar, read at the network's t, and one unused parameter,
    so that a Sampler finds the model's device from its parameters as it does for a trained network."""

    def __init__(self, alpha_bar):
        super().__init__()
        self.alpha_bar = alpha_bar
        self.anchor = torch.nn.Parameter(torch.zeros(()))

    def abar(self, t, like):
        ab = self.alpha_bar.float()
        return ab[(t * len(ab) / 1000).round().long()].view(-1, *([1] * (like.dim() - 1)))


class PointOracle(Oracle):
    """Data that is a single point x*: eps(x_t) = (x_t - sqrt(abar) x*) / sqrt(1 - abar)."""

    def __init__(self, alpha_bar, point):
        super().__init__(alpha_bar)
        self.point = point

    def forward(self, x, t):
        a = self.abar(t, x)
        return (x - a.sqrt() * self.point) / (1 - a).sqrt()


class GaussianOracle(Oracle):
    """Data x0 ~ N(0, s^2 I): eps(x_t) = sqrt(1 - abar) x_t / (abar s^2 + 1 - abar)."""

    def __init__(self, alpha_bar, s):
        super().__init__(alpha_bar)
        self.s = s

    def forward(self, x, t):
        a = self.abar(t, x)
        return (1 - a).sqrt() * x / (a * self.s ** 2 + 1 - a)


class CodeDenoiser(torch.nn.Module):
    """A small MLP eps/v-model on (B, 4) codes with the time as an input: a diffusion model small enough for fp16 on a CPU."""

    def __init__(self, hidden=16):
        super().__init__()
        self.net = torch.nn.Sequential(torch.nn.Linear(5, hidden), torch.nn.SiLU(), torch.nn.Linear(hidden, 4))

    def forward(self, x, t):
        return self.net(torch.cat([x, t[:, None] / 1000], 1))
