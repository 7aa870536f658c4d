"""OCO-GAN generator/discriminator: shapes, branches, gradient routing, spectral norm, errors."""

from __future__ import annotations

import json

import pytest
import torch
from oco_tiny import tiny_config
from torch.nn.utils import parametrize

from recipes.oco_gan.config import ConfigError, OCOGANConfig, apply_overrides, get_preset
from recipes.oco_gan.model import Discriminator, Generator, part_sizes

SMALL = ["model.channel_multiplier=0.03125", "model.max_channels=16",
         "model.d_channel_multiplier=0.03125", "model.d_max_channels=16",
         "model.cond_hidden_channels=8", "model.style_channels=8", "model.mapping_layers=2"]


def _small(preset: str, *extra: str) -> OCOGANConfig:
    return apply_overrides(get_preset(preset), [*SMALL, *extra])


@pytest.mark.parametrize("preset", ["demo", "cityscapes", "ade20k", "coco_stuff",
                                    "celebamask_hq", "folder"])
def test_every_preset_at_reduced_width(preset):
    cfg = _small(preset).model
    h, w = cfg.resolution
    G, D = Generator(cfg), Discriminator(cfg)
    z = torch.randn(1, cfg.z_dim)
    label = torch.randint(0, cfg.num_classes, (1, h, w))
    with torch.no_grad():
        xu, xc = G(z=z), G(label=label)
        out = D(xc)
    assert xu.shape == xc.shape == (1, 3, h, w)
    assert out.image.shape == (1,)
    assert out.seg.shape == (1, cfg.num_classes + 1, h, w)


@pytest.mark.parametrize("res, style, bottleneck", [
    ((32, 64), (8, 16), 4), ((16, 16), (8, 8), 2), ((64, 128), (4, 8), 8), ((8, 8), (8, 8), 4),
])
def test_odd_but_valid_sizes(res, style, bottleneck):
    cfg = tiny_config(f"model.resolution={res[0]},{res[1]}",
                      f"model.style_size={style[0]},{style[1]}",
                      f"model.d_bottleneck={bottleneck}").model
    G, D = Generator(cfg), Discriminator(cfg)
    label = torch.randint(0, cfg.num_classes, (2, *res))
    maps_u = G.style_maps(z=torch.randn(2, cfg.z_dim))
    maps_c = G.style_maps(label=label)
    assert [m.shape for m in maps_u] == [m.shape for m in maps_c]
    assert [tuple(m.shape[1:]) for m in maps_u] == cfg.style_map_shapes()
    x = G.synthesis(maps_c)
    assert x.shape == (2, 3, *res)
    out = D(x)
    assert out.seg.shape == (2, cfg.num_classes + 1, *res) and out.image.shape == (2,)


def test_forward_mixed_equals_separate_calls():
    cfg = tiny_config().model
    G = Generator(cfg)
    z_u, z_c = torch.randn(3, cfg.z_dim), torch.randn(2, cfg.z_dim)
    label = torch.randint(0, cfg.num_classes, (2, 16, 16))
    mixed = G.forward_mixed(z_u, label, z_c)
    torch.testing.assert_close(mixed[:3], G(z=z_u), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(mixed[3:], G(label=label, z=z_c), rtol=1e-5, atol=1e-5)


def test_conditional_noise_forms_and_dontcare():
    cfg = tiny_config().model
    G = Generator(cfg)
    label = torch.zeros(2, 16, 16, dtype=torch.long)  # all don't-care (class 0)
    label[:, 8:] = 3
    z = torch.randn(2, cfg.z_dim)
    per_pixel = z[:, :, None, None].expand(-1, -1, 16, 16).contiguous()
    torch.testing.assert_close(G(label=label, z=z), G(label=label, z=per_pixel))
    onehot = torch.nn.functional.one_hot(label, cfg.num_classes).permute(0, 3, 1, 2).float()
    torch.testing.assert_close(G(label=label, z=z), G(label=onehot, z=z))
    # Noise is redrawn per call unless given, and a generator makes it reproducible.
    assert not torch.equal(G(label=label), G(label=label))
    a = G(label=label, generator=torch.Generator().manual_seed(1))
    b = G(label=label, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(a, b)


def _grads(module):
    return {n: p.grad for n, p in module.named_parameters()}


@pytest.mark.parametrize("branch", ["uncond", "cond"])
def test_gradients_reach_exactly_the_branch_in_use(branch):
    cfg = tiny_config().model
    G = Generator(cfg)
    if branch == "uncond":
        x = G(z=torch.randn(2, cfg.z_dim))
    else:
        x = G(label=torch.randint(0, cfg.num_classes, (2, 16, 16)))
    x.square().mean().backward()
    used, unused = ((G.uncond_style, G.cond_style) if branch == "uncond"
                    else (G.cond_style, G.uncond_style))
    for module in (used, G.synthesis):
        missing = [n for n, g in _grads(module).items() if g is None or not g.abs().sum() > 0]
        assert not missing, f"no gradient reached {missing}"
    assert all(g is None for g in _grads(unused).values())


def test_discriminator_heads_and_gradients():
    cfg = tiny_config().model
    D = Discriminator(cfg)
    x = torch.randn(2, 3, 16, 16)
    only_img = D(x, heads=("image",))
    assert only_img.seg is None and only_img.image.shape == (2,)
    only_seg = D(x, heads=("seg",))
    assert only_seg.image is None
    torch.testing.assert_close(D(x).image, only_img.image)
    out = D(x)
    (out.image.sum() + out.seg.square().mean()).backward()
    missing = [n for n, p in D.named_parameters() if p.grad is None]
    assert not missing
    with pytest.raises(ValueError, match="heads"):
        D(x, heads=("bogus",))


def test_spectral_norm_exactly_on_decoder_and_aspp():
    cfg = tiny_config().model
    D = Discriminator(cfg)
    convs = [(n, m) for n, m in D.named_modules()
             if isinstance(m, torch.nn.Conv2d) or type(m).__name__ == "EqualConv2d"]
    assert convs
    for name, m in convs:
        in_seg_head = name.startswith(("aspp", "decoder"))  # not the final 1×1 (as OASIS)
        has_sn = isinstance(m, torch.nn.Conv2d) and parametrize.is_parametrized(m, "weight")
        assert has_sn == in_seg_head, name
    G = Generator(cfg)
    assert not any(parametrize.is_parametrized(m) for m in G.modules())


@pytest.mark.parametrize("bad, match", [
    (lambda c: torch.full((1, 16, 16), c.num_classes), r"label: class ids must be in \[0, "),
    (lambda c: torch.full((1, 16, 16), -1), r"label: class ids"),
    (lambda c: torch.zeros(16, 16, dtype=torch.long), r"label: expected integer class ids"),
    (lambda c: torch.zeros(1, 8, 8, dtype=torch.long), r"label: expected spatial size \(16, 16\)"),
    (lambda c: torch.zeros(1, 3, 16, 16), r"label: a floating-point label must be one-hot"),
])
def test_bad_label_is_a_clear_error(bad, match):
    cfg = tiny_config().model
    G = Generator(cfg)
    with pytest.raises(ValueError, match=match):
        G(label=bad(cfg))


def test_bad_latents_and_images():
    cfg = tiny_config().model
    G, D = Generator(cfg), Discriminator(cfg)
    with pytest.raises(ValueError, match="z: expected"):
        G(z=torch.randn(2, cfg.z_dim + 1))
    with pytest.raises(ValueError, match="z:"):
        G()
    with pytest.raises(ValueError, match=r"x: expected images \[B, 3, 16, 16\]"):
        D(torch.randn(1, 3, 8, 8))


def test_full_width_sizes_match_the_spec():
    """Synthesis + unconditional branch ≈ 80 M, conditional branch 7–9 M, D 35–50 M."""
    for preset in ("ade20k", "cityscapes"):
        cfg = get_preset(preset).model
        sizes = part_sizes(Generator(cfg), Discriminator(cfg))
        g_main = sizes["G synthesis"] + sizes["G unconditional style net"]
        assert 75e6 < g_main < 85e6
        assert 6.5e6 < sizes["G conditional style net"] < 9e6
        d = sum(v for k, v in sizes.items() if k.startswith("D"))
        assert 35e6 < d < 50e6


def test_channels_last_and_bf16_autocast():
    cfg = tiny_config().model
    G, D = Generator(cfg), Discriminator(cfg)
    z = torch.randn(2, cfg.z_dim)
    ref = G(z=z)
    Gc = Generator(cfg).to(memory_format=torch.channels_last)
    Gc.load_state_dict(G.state_dict())
    torch.testing.assert_close(Gc(z=z), ref, rtol=1e-4, atol=1e-4)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        x = G(z=z)
        out = D(x)
    assert torch.isfinite(out.seg.float()).all()
    assert (x.float() - ref).abs().max() < 0.25 * ref.abs().max() + 0.1


# -- configuration -------------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".json", ".yaml"])
def test_config_round_trip(tmp_path, suffix):
    cfg = apply_overrides(get_preset("cityscapes"), ["train.batch_cond=4", "loss.r1_gamma=2.5"])
    path = tmp_path / f"cfg{suffix}"
    cfg.save(path)
    again = OCOGANConfig.load(path)
    assert again == cfg
    assert again.model.style_size == (8, 16)
    assert json.loads(json.dumps(cfg.to_dict())) == again.to_dict()


@pytest.mark.parametrize("override, match", [
    ("model.resolution=48,48", "power-of-two multiple"),
    ("model.resolution=32,48", "power-of-two multiple"),
    ("model.num_classes=1", "num_classes must be >= 2"),
    ("train.mode=both", "train.mode"),
    ("data.regime=partial", "data.regime"),
    ("model.nonsense=1", "has no field 'nonsense'"),
    ("train.batch_cond=abc", "cannot read 'abc'"),
    ("loss.uncond_seg_loss=maybe", "uncond_seg_loss"),
])
def test_config_validation_names_the_field(override, match):
    with pytest.raises(ConfigError, match=match):
        apply_overrides(get_preset("demo"), [override])


def test_unknown_preset():
    with pytest.raises(ConfigError, match="preset must be one of"):
        get_preset("imagenet")
