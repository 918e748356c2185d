"""The evaluation yardstick: data, FID and its interval, precision/recall/density/coverage, memorisation."""
import math

import numpy as np
import prdc as prdc_package
import pytest
import torch
from pytorch_fid.fid_score import calculate_frechet_distance

TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


def stats(x):
    return x.mean(0), np.cov(x, rowvar=False)


def test_mnist_loader_shapes_range_and_counts(mnist):
    x_train, y_train = mnist["train"]
    x_test, y_test = mnist["test"]
    assert x_train.shape == (60000, 28, 28) and x_test.shape == (10000, 28, 28)
    assert x_train.dtype == torch.float32 and y_train.dtype == torch.int64
    assert x_train.min() == 0 and x_train.max() == 1
    assert torch.bincount(y_train).tolist() == TRAIN_COUNTS
    assert torch.bincount(y_test).tolist() == TEST_COUNTS
    assert abs(x_train.mean().item() - 0.1307) < 1e-3 and abs(x_train.std().item() - 0.3081) < 1e-3


def test_missing_data_without_network_is_a_clear_error(nb, tmp_path, monkeypatch):
    def offline(*args, **kwargs):
        raise OSError("network is unreachable")

    monkeypatch.setattr(nb.torchvision.datasets.MNIST, "download", offline)
    with pytest.raises(RuntimeError, match="MNIST is neither in"):
        nb.load_mnist(str(tmp_path / "nowhere"), nb.DEVICE)


@pytest.mark.parametrize("n,d", [(2000, 16), (300, 64), (50, 128)])  # the last: N < D, singular covariances
def test_frechet_distance_matches_pytorch_fid(nb, n, d):
    rng = np.random.default_rng(n + d)
    a = rng.normal(size=(n, d))
    b = rng.normal(loc=0.3, scale=1.2, size=(n, d)) @ rng.normal(scale=0.3, size=(d, d))
    ours = nb.frechet_distance(*stats(a), *stats(b))
    reference = calculate_frechet_distance(*stats(a), *stats(b))
    assert math.isfinite(ours) and ours == pytest.approx(reference, rel=1e-5, abs=1e-6)


@pytest.mark.parametrize("n", [5000, 300, 60])  # the last: N < D, a singular sample covariance
def test_frechet_to_reference_matches_frechet_distance(nb, n):
    rng = np.random.default_rng(n)
    d = 64
    real = rng.normal(size=(4000, d)) @ rng.normal(scale=0.4, size=(d, d))
    fake = rng.normal(loc=0.2, size=(n, d)) @ rng.normal(scale=0.4, size=(d, d))
    ref = nb.reference_stats(torch.from_numpy(real))
    expected = calculate_frechet_distance(*stats(fake), *stats(real))
    assert nb.frechet_to_reference(*stats(fake), ref) == pytest.approx(expected, rel=1e-4, abs=1e-3)
    # the cached square root is a true symmetric square root of the covariance
    assert np.allclose(ref["sigma_sqrt"] @ ref["sigma_sqrt"], ref["sigma"], atol=1e-8)


def test_fid_halfwidth_shrinks_like_one_over_sqrt_n_and_is_seeded(nb):
    gen = torch.Generator().manual_seed(0)
    d = 16
    ref = nb.reference_stats(torch.randn(5000, d, generator=gen, dtype=torch.float64))
    widths = []
    for n in (300, 3000):
        fake = torch.randn(n, d, generator=gen, dtype=torch.float64) * 1.2 + 0.3
        fid = nb.frechet_distance(*nb.gaussian_stats(fake), ref["mu"], ref["sigma"])
        half = nb.fid_halfwidth(fake, ref, n_boot=200, seed=1)
        assert 0 < half < fid  # the FID of a shifted, widened Gaussian is well resolved at these N
        widths.append(half)
    assert widths[1] < widths[0] / 2  # ~1/sqrt(N): ten times the samples, about a third of the width
    assert nb.fid_halfwidth(fake, ref, 50, seed=3) == nb.fid_halfwidth(fake, ref, 50, seed=3)  # seeded


def test_evaluate_centres_the_interval_on_its_own_fid(nb, mnist, yardstick):
    _, ref = yardstick
    m = nb.evaluate(mnist["train"][0][20000:20300], ref, n_boot=30, seed=0)
    assert m["fid_low"] < m["fid"] < m["fid_high"]
    assert m["fid"] - m["fid_low"] == pytest.approx(m["fid_high"] - m["fid"], rel=1e-9)
    assert "fid_low" not in nb.evaluate(mnist["train"][0][20000:20300], ref)  # no bootstrap asked, none done


def test_frechet_distance_of_a_set_with_itself_is_zero(nb):
    f = torch.randn(1000, 32, dtype=torch.float64)
    assert abs(nb.frechet_distance(*nb.gaussian_stats(f), *nb.gaussian_stats(f))) < 1e-6
    # and a pure mean shift costs exactly ||shift||^2
    assert nb.frechet_distance(*nb.gaussian_stats(f), *nb.gaussian_stats(f + 1.0)) == pytest.approx(32.0, rel=1e-6)


@pytest.mark.parametrize("k", [3, 5])
def test_prdc_matches_the_prdc_package(nb, k):
    rng = np.random.default_rng(k)
    real = rng.normal(size=(400, 8)).astype(np.float32)
    fake = rng.normal(loc=0.4, scale=1.3, size=(350, 8)).astype(np.float32)
    ours = nb.prdc(torch.from_numpy(real), torch.from_numpy(fake), k)
    reference = prdc_package.compute_prdc(real_features=real, fake_features=fake, nearest_k=k)
    for key in ("precision", "recall", "density", "coverage"):
        assert ours[key] == pytest.approx(reference[key], abs=1e-9), key


def test_nearest_distance_matches_brute_force(nb):
    q, pool = torch.rand(7, 28, 28), torch.rand(40, 28, 28)
    d, idx = nb.nearest_distance(q, pool)
    brute = torch.cdist(q.flatten(1), pool.flatten(1))
    assert torch.allclose(d, brute.min(1).values, atol=1e-4) and torch.equal(idx, brute.argmin(1))


@pytest.fixture(scope="module")
def yardstick(nb, mnist):
    """A smoke-profile classifier (the notebook's own training function) and its reference statistics."""
    x_train, y_train = mnist["train"]
    x_test, _ = mnist["test"]
    clf = nb.new_model(nb.DigitClassifier)
    nb.fit("classifier", clf, nb.classifier_loss(clf, 0.05), (x_train[:8000], y_train[:8000]), nb.Train(60, 128, 3e-3, warmup=0.25),
           {"label_smoothing": 0.05})
    return clf, nb.build_reference(clf, x_test, x_train, n_memo=200)


def blur(x):
    kernel = torch.ones(1, 1, 5, 5) / 25
    return torch.nn.functional.conv2d(x.unsqueeze(1), kernel, padding=2).squeeze(1)


def test_metrics_move_the_right_way_when_images_degrade(nb, mnist, yardstick):
    _, ref = yardstick
    x_train, _ = mnist["train"]
    real = x_train[10000:11000]
    clean = nb.evaluate(real, ref)
    blurred = nb.evaluate(blur(real), ref)
    noisy = nb.evaluate((real + 0.5 * torch.randn_like(real)).clamp(0, 1), ref)
    for degraded in (blurred, noisy):
        assert degraded["fid"] > 2 * clean["fid"] + 1.0
        assert degraded["density"] < clean["density"] and degraded["coverage"] < clean["coverage"]
        assert degraded["recall"] < clean["recall"]
    # k-NN precision alone can stay high for a set squeezed into one dense region (a blur does that: its
    # recall and coverage collapse); density and coverage are the fix Naeem et al. proposed, checked above.
    assert noisy["precision"] < clean["precision"]
    assert clean["class_kl_uniform"] < 0.05 and sum(clean["class_hist"]) == 1000


def test_evaluate_rejects_bad_input(nb, yardstick):
    _, ref = yardstick
    with pytest.raises(ValueError, match="finite"):
        nb.evaluate(torch.full((10, 28, 28), float("nan")), ref)
    with pytest.raises(ValueError):
        nb.evaluate(torch.rand(10, 32, 32), ref)
    with pytest.raises(ValueError, match=r"intensities in \[0, 1\]"):
        nb.evaluate(torch.rand(10, 28, 28) * 255, ref)  # uint8-scale images are not silently scored


def test_bits_and_mean_intervals_on_known_input(nb):
    """Bits per dimension and the bootstrap interval of a mean, on inputs whose answer is known."""
    assert nb.bits_per_dim(784 * math.log(2)) == pytest.approx(1.0)
    v = nb.mean_interval(torch.ones(50) * 3.0, 20, 0)
    assert v == {"mean": 3.0, "low": 3.0, "high": 3.0}
    spread = nb.mean_interval(torch.arange(100.0), 200, 0)
    assert spread["low"] < 49.5 < spread["high"] and spread["high"] - spread["low"] == pytest.approx(2 * 1.96 * 2.9, rel=0.25)


def test_full_float32_turns_tf32_off_inside_and_restores_it_after(nb):
    """The yardstick's features run without TF32 (the same numbers on any GPU); training keeps it, even after an error."""
    backends = nb.torch.backends
    saved = backends.cuda.matmul.allow_tf32, backends.cudnn.allow_tf32
    try:
        backends.cuda.matmul.allow_tf32 = backends.cudnn.allow_tf32 = True
        with pytest.raises(RuntimeError, match="inside"):
            with nb.full_float32():
                assert not backends.cuda.matmul.allow_tf32 and not backends.cudnn.allow_tf32
                raise RuntimeError("inside")
        assert backends.cuda.matmul.allow_tf32 and backends.cudnn.allow_tf32
        seen = []

        class Probe(torch.nn.Module):
            def features(self, x):
                seen.append((backends.cuda.matmul.allow_tf32, backends.cudnn.allow_tf32))
                return x.flatten(1)[:, :4]

            def head(self, f):
                return f

        nb.classifier_outputs(Probe(), torch.rand(3, 28, 28))
        assert seen == [(False, False)] and backends.cuda.matmul.allow_tf32
    finally:
        backends.cuda.matmul.allow_tf32, backends.cudnn.allow_tf32 = saved
