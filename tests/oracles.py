"""Exact noise predictors of toy data sets, for testing samplers and bounds against known answers. Each sees t on
the notebook's 0..1000 scale, whatever the chain length T = len(alpha_bar)."""
import torch


def _abar(alpha_bar, t, like):
    ab = alpha_bar.float()
    return ab[(t * len(ab) / 1000).round().long()].view(-1, *([1] * (like.dim() - 1)))


class PointOracle(torch.nn.Module):
    """Data that is a single point x*: eps(x_t) = (x_t - sqrt(abar) x*) / sqrt(1 - abar)."""

    def __init__(self, alpha_bar, point):
        super().__init__()
        self.alpha_bar, self.point = alpha_bar, point

    def forward(self, x, t):
        a = _abar(self.alpha_bar, t, x)
        return (x - a.sqrt() * self.point) / (1 - a).sqrt()


class GaussianOracle(torch.nn.Module):
    """Data x0 ~ N(0, s^2 I): eps(x_t) = sqrt(1 - abar) x_t / (abar s^2 + 1 - abar)."""

    def __init__(self, alpha_bar, s):
        super().__init__()
        self.alpha_bar, self.s = alpha_bar, s

    def forward(self, x, t):
        a = _abar(self.alpha_bar, t, x)
        return (1 - a).sqrt() * x / (a * self.s ** 2 + 1 - a)
