"""Every block/loss that takes ``generator=`` draws device-agnostically: a CPU generator serves
tensors on any device (here ``meta``, and CUDA when there is one), and the same generator state
gives the same sample whatever the tensors' device."""

from __future__ import annotations

import pytest
import torch
from oco_tiny import tiny_config

from ganblocks.augment import AdaptiveAugment, diff_augment, random_hflip
from ganblocks.losses import labelmix_mask
from ganblocks.nn import GumbelSoftmax, gumbel_softmax
from recipes.oco_gan.model import Generator


def _inputs(device):
    g = torch.Generator().manual_seed(123)
    x = torch.randn(2, 3, 16, 16, generator=g)
    label = torch.randint(0, 5, (2, 16, 16), generator=g)
    logits = torch.randn(2, 5, 16, 16, generator=g)
    return x.to(device), label.to(device), logits.to(device)


def _generator_model(device):
    torch.manual_seed(0)
    return Generator(tiny_config().model).to(device)


def _gumbel(device, gen):
    return gumbel_softmax(_inputs(device)[2], tau=0.5, generator=gen)


def _gumbel_module(device, gen):
    return GumbelSoftmax(0.7, hard=False)(_inputs(device)[2], generator=gen)


def _labelmix(device, gen):
    return labelmix_mask(_inputs(device)[1], num_classes=5, generator=gen)


def _hflip(device, gen):
    x, label, _ = _inputs(device)
    return random_hflip(x, label=label, generator=gen)


def _diffaugment(device, gen):
    x, label, _ = _inputs(device)
    return diff_augment(x, label=label, generator=gen)


def _ada(device, gen):
    x, label, _ = _inputs(device)
    return AdaptiveAugment(p=0.7, target=None).to(device)(x, label, generator=gen)


def _ada_sample(device, gen):
    return AdaptiveAugment(p=0.7, target=None, cutout=1.0).to(device).sample(
        2, 16, 32, device=device, generator=gen)


def _g_conditional(device, gen):  # z_c drawn inside the model
    label = _inputs(device)[1].clamp(max=10)
    return _generator_model(device)(label=label, generator=gen)


CASES = {
    "gumbel_softmax": _gumbel,
    "GumbelSoftmax": _gumbel_module,
    "labelmix_mask": _labelmix,
    "random_hflip": _hflip,
    "diff_augment": _diffaugment,
    "AdaptiveAugment": _ada,
    "AdaptiveAugment.sample": _ada_sample,
    "Generator(label=...)": _g_conditional,
}
# Those whose other ops run on the meta device (a label-range check or a grid sample needs data).
META = ["gumbel_softmax", "GumbelSoftmax", "AdaptiveAugment.sample", "random_hflip"]


def _tensors(out):
    if isinstance(out, torch.Tensor):
        return [out]
    if isinstance(out, (tuple, list)):
        return [t for o in out for t in _tensors(o)]
    return [t for t in vars(out).values() if isinstance(t, torch.Tensor)]  # AugmentDraw


@pytest.mark.parametrize("name", META)
def test_cpu_generator_serves_meta_tensors(name):
    out = _tensors(CASES[name]("meta", torch.Generator().manual_seed(0)))
    assert out and all(t.device.type == "meta" for t in out)


@pytest.mark.parametrize("name", sorted(CASES))
def test_same_generator_same_sample_on_cpu(name):
    a = _tensors(CASES[name]("cpu", torch.Generator().manual_seed(5)))
    b = _tensors(CASES[name]("cpu", torch.Generator().manual_seed(5)))
    c = _tensors(CASES[name]("cpu", torch.Generator().manual_seed(6)))
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    assert not all(torch.equal(x, y) for x, y in zip(a, c))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("name", sorted(CASES))
def test_cpu_generator_serves_cuda_tensors_with_the_same_draws(name):
    want = _tensors(CASES[name]("cpu", torch.Generator().manual_seed(7)))
    got = _tensors(CASES[name]("cuda", torch.Generator().manual_seed(7)))
    assert all(t.is_cuda for t in got)
    for w, g in zip(want, got):
        torch.testing.assert_close(g.cpu(), w, rtol=1e-4, atol=1e-4)
    # A CUDA generator works too.
    out = _tensors(CASES[name]("cuda", torch.Generator(device="cuda").manual_seed(7)))
    assert all(t.is_cuda for t in out)
