"""Spectral-norm state dicts: legacy hook layout ↔ parametrization layout; σ = uᵀ W v."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from ganblocks.nn import spectral_norm_from_legacy, spectral_norm_to_legacy, spectral_sigma

legacy_sn = torch.nn.utils.spectral_norm
param_sn = torch.nn.utils.parametrizations.spectral_norm


def make_layer(kind: str, cin: int, cout: int, k: int) -> torch.nn.Module:
    if kind == "linear":
        return torch.nn.Linear(cin, cout)
    return torch.nn.Conv2d(cin, cout, k, padding=k // 2)


@given(
    kind=st.sampled_from(["conv", "linear"]),
    cin=st.integers(1, 5),
    cout=st.integers(1, 5),
    k=st.sampled_from([1, 3]),
    seed=st.integers(0, 2**16),
)
def test_legacy_weights_compute_the_same_in_our_layout(kind, cin, cout, k, seed):
    torch.manual_seed(seed)
    old = legacy_sn(make_layer(kind, cin, cout, k))
    old(torch.randn(2, cin, 4, 4) if kind == "conv" else torch.randn(2, cin))  # move u, v
    new = param_sn(make_layer(kind, cin, cout, k))
    new.load_state_dict(spectral_norm_from_legacy(old.state_dict()))
    x = torch.randn(3, cin, 5, 5) if kind == "conv" else torch.randn(3, cin)
    old.eval()
    new.eval()
    torch.testing.assert_close(new(x), old(x))
    # Training mode: the two run their power-iteration step in opposite orders (legacy v then u,
    # parametrization u then v), so they agree once u, v are the top singular vectors.
    u, _, vh = torch.linalg.svd(old.weight_orig.detach().flatten(1).double())
    with torch.no_grad():
        old.weight_u.copy_(u[:, 0])
        old.weight_v.copy_(vh[0])
    new.load_state_dict(spectral_norm_from_legacy(old.state_dict()))
    old.train()
    new.train()
    torch.testing.assert_close(new(x), old(x), rtol=1e-4, atol=1e-5)


@given(cin=st.integers(1, 4), cout=st.integers(1, 4), seed=st.integers(0, 2**16))
def test_our_weights_load_into_the_legacy_layout(cin, cout, seed):
    torch.manual_seed(seed)
    new = param_sn(torch.nn.Conv2d(cin, cout, 3)).eval()
    old = legacy_sn(torch.nn.Conv2d(cin, cout, 3))
    old.load_state_dict(spectral_norm_to_legacy(new.state_dict()))
    old.eval()
    x = torch.randn(2, cin, 6, 6)
    torch.testing.assert_close(old(x), new(x))


def test_round_trip_and_untouched_keys():
    net = torch.nn.Sequential(
        legacy_sn(torch.nn.Conv2d(3, 4, 3)), torch.nn.BatchNorm2d(4), torch.nn.Conv2d(4, 2, 1)
    )
    sd = net.state_dict()
    sd["lonely_u"] = torch.ones(1)  # not part of a triple: left alone
    ours = spectral_norm_from_legacy(sd)
    assert "0.parametrizations.weight.original" in ours and "0.weight_orig" not in ours
    assert "1.running_var" in ours and "2.weight" in ours and "lonely_u" in ours
    back = spectral_norm_to_legacy(ours)
    assert list(back) == list(sd)
    assert all(back[k] is sd[k] for k in sd)


def test_other_parametrizations_are_left_alone():
    conv = torch.nn.utils.parametrizations.weight_norm(torch.nn.Conv2d(2, 3, 3))
    sd = conv.state_dict()
    assert spectral_norm_to_legacy(sd).keys() == sd.keys()


@given(rows=st.integers(1, 6), cols=st.integers(1, 6), seed=st.integers(0, 2**16))
def test_sigma_of_top_singular_vectors_is_the_spectral_norm(rows, cols, seed):
    torch.manual_seed(seed)
    w = torch.randn(rows, cols, dtype=torch.float64)
    u, s, vh = torch.linalg.svd(w)
    torch.testing.assert_close(spectral_sigma(w, u[:, 0], vh[0]), s[0])
    # 4-D weights flatten to [out, in·kh·kw]
    w4 = w.reshape(rows, cols, 1, 1)
    torch.testing.assert_close(spectral_sigma(w4, u[:, 0], vh[0]), s[0])


def test_errors():
    with pytest.raises(TypeError, match="state_dict"):
        spectral_norm_from_legacy([1, 2])
    with pytest.raises(ValueError, match="u: expected shape"):
        spectral_sigma(torch.ones(3, 2), torch.ones(2), torch.ones(2))
    with pytest.raises(ValueError, match="v: expected shape"):
        spectral_sigma(torch.ones(3, 2, 3, 3), torch.ones(3), torch.ones(2))


def test_sigma_of_a_rank_one_weight_and_rank_checks():
    # A 1-D weight [out] is the matrix [out, 1]: σ = uᵀ w v with v of length 1.
    w = torch.tensor([3.0, -4.0])
    u = w / 5
    torch.testing.assert_close(spectral_sigma(w, u, torch.ones(1)), torch.tensor(5.0))
    with pytest.raises(TypeError, match="weight: expected a tensor of rank >= 1"):
        spectral_sigma(torch.tensor(2.0), torch.ones(1), torch.ones(1))
    with pytest.raises(TypeError, match="weight"):
        spectral_sigma([[1.0]], torch.ones(1), torch.ones(1))
