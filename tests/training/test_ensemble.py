"""The logit-averaging ensemble (needs the training extra: torch)."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from affectlens.training.ensemble import LogitEnsemble  # noqa: E402
from affectlens.training.nets import create_net  # noqa: E402


def _net(seed: int):
    torch.manual_seed(seed)
    return create_net("vgg48_s", num_classes=7).eval()


def test_ensemble_is_the_weighted_mean_of_members_with_their_own_normalisation():
    a, b = _net(0), _net(1)
    raw = torch.rand(4, 1, 48, 48)
    stats = [(0.5, 0.25), (0.4, 0.2)]
    ens = LogitEnsemble([a, b], stats, [1.0, 3.0], mean=0.5, std=0.25).eval()
    with torch.no_grad():
        got = ens((raw - 0.5) / 0.25)
        want = 0.25 * a((raw - 0.5) / 0.25) + 0.75 * b((raw - 0.4) / 0.2)
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)


def test_single_member_ensemble_equals_the_member():
    a = _net(2)
    x = torch.randn(3, 1, 48, 48)
    with torch.no_grad():
        torch.testing.assert_close(LogitEnsemble([a], [(0.5, 0.25)], [2.0], 0.5, 0.25)(x), a(x), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("weights", [[0.0, 0.0], [1.0, -0.5], [1.0]])
def test_bad_weights_are_refused(weights):
    with pytest.raises(ValueError):
        LogitEnsemble([_net(0), _net(1)], [(0.5, 0.25)] * 2, weights, 0.5, 0.25)
