"""The OCO-GAN model against a reference forward written in this file from OCO_GAN_SPEC §2–3.

The reference uses plain torch ops and the modules' parameters only (never their settings or
gains): equalised LR as ``W / sqrt(fan_in)`` (``· lr_mul`` for the mapping), ``lrelu(0.2)·√2``
after every activated layer, up-convs as zero insertion + FIR ``[1, 3, 3, 1]`` (gain 4) + conv,
instance norm then ``x·γ + β`` for the spatial modulation, the style-map order of the spec, the
residual ``(main + skip) / √2``, nearest resizing of integer label maps (then an exact one-hot),
and the discriminator's two heads. The blocks that have their own reference tests
(ResBlockD/ResBlockU, ASPP) are called as black boxes; how the model wires them is checked here.
Double precision, 16×16 and 16×32 (2:1) tiny configs.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from oco_tiny import tiny_config
from torch.nn.utils import parametrize

from ganblocks.nn import EqualConv2d
from recipes.oco_gan.model import Discriminator, Generator

SQRT2 = math.sqrt(2.0)
FIR = torch.tensor([1.0, 3.0, 3.0, 1.0], dtype=torch.float64)
FIR2D = torch.outer(FIR, FIR) / FIR.sum() ** 2  # unit DC gain


def lrelu(x):
    return F.leaky_relu(x, 0.2) * SQRT2


def eff(weight: torch.Tensor, lr_mul: float = 1.0) -> torch.Tensor:
    return weight * (lr_mul / math.sqrt(weight[0].numel()))


def conv(layer, x, *, act=True):
    """Equalised same-padding conv (+ bias) (+ lrelu·√2)."""
    w = eff(layer.weight)
    y = F.conv2d(x, w, layer.bias, padding=w.shape[-1] // 2)
    return lrelu(y) if act else y


def fir2d(taps) -> torch.Tensor:
    """Separable 2-D FIR of a symmetric 1-D filter, unit DC gain."""
    f = torch.tensor(taps, dtype=torch.float64)
    return torch.outer(f, f) / f.sum() ** 2


def up_conv(layer, x, *, act=True, fir=FIR2D):
    """×2 up-conv: zero insertion, FIR ``fir`` (gain 4), then the conv with no padding.

    An ``fw``-tap filter and a ``k``-wide kernel pad the zero-stuffed grid by
    ``k // 2 + (fw + 1) // 2`` before and ``k // 2 + (fw - 2) // 2`` after (``H → 2H``)."""
    n, c, h, w = x.shape
    k = layer.weight.shape[-1]
    fw = fir.shape[-1]
    z = x.new_zeros(n, c, 2 * h, 2 * w)
    z[:, :, ::2, ::2] = x
    p0, p1 = k // 2 + (fw + 1) // 2, k // 2 + (fw - 2) // 2
    z = F.pad(z, (p0, p1, p0, p1))
    z = F.conv2d(z, (4 * fir).expand(c, 1, fw, fw), groups=c)
    y = F.conv2d(z, eff(layer.weight), layer.bias)
    return lrelu(y) if act else y


def styled(layer, x, style, *, up=False, act=True, fir=FIR2D):
    """Instance norm → x̂·γ + β with [γ; β] = conv3×3(style) → (up-)conv → bias → lrelu·√2."""
    a = layer.modulation.affine
    gb = F.conv2d(style, eff(a.weight), a.bias, padding=a.weight.shape[-1] // 2)
    c = x.shape[1]
    gamma, beta = gb[:, :c], gb[:, c:]
    mean = x.mean(dim=(2, 3), keepdim=True)
    var = (x - mean).square().mean(dim=(2, 3), keepdim=True)
    h = (x - mean) / torch.sqrt(var + 1e-5) * gamma + beta
    return up_conv(layer.conv, h, act=act, fir=fir) if up else conv(layer.conv, h, act=act)


def uncond_maps_ref(G, z):
    cfg = G.config
    zn = z / torch.sqrt(z.square().mean(dim=1, keepdim=True) + 1e-8)
    for layer in G.uncond_style.mapping.layers:
        zn = lrelu(F.linear(zn, eff(layer.weight, cfg.mapping_lr_mul),
                            layer.bias * cfg.mapping_lr_mul))
    x = zn.reshape(z.shape[0], cfg.style_channels, *cfg.style_size)
    maps = []
    for k, layer in enumerate(G.uncond_style.resizer):
        # maps 0 and 1 at the base size; then per doubling an up-conv, then a conv
        x = up_conv(layer, x, fir=fir2d(cfg.resample_filter)) if k >= 2 and k % 2 == 0 \
            else conv(layer, x)
        maps.append(x)
    return maps


def nearest_label(label, h, w):
    """Nearest resize of integer ids: output pixel i reads input floor(i·H/h)."""
    H, W = label.shape[1:]
    rows = torch.arange(h) * H // h
    cols = torch.arange(w) * W // w
    return label[:, rows][:, :, cols]


def cond_maps_ref(G, label, z):
    cfg = G.config
    maps = []
    for k, (_, h, w) in enumerate(cfg.style_map_shapes()):
        onehot = F.one_hot(nearest_label(label, h, w), cfg.num_classes).permute(0, 3, 1, 2)
        if z.ndim == 2:
            zz = z[:, :, None, None].expand(-1, -1, h, w)
        else:
            H, W = z.shape[2:]
            zz = z[:, :, torch.arange(h) * H // h][:, :, :, torch.arange(w) * W // w]
        x = torch.cat([zz, onehot.to(z.dtype)], dim=1)
        first = G.cond_style.first[k // 2 if cfg.cond_shared_first_conv else k]
        maps.append(conv(G.cond_style.second[k], conv(first, x)))
    return maps


def synthesis_ref(G, maps):
    S = G.synthesis
    fir = fir2d(G.config.resample_filter)  # every up-sampling of the synthesis uses it
    x = S.const.expand(maps[0].shape[0], -1, -1, -1)
    x = styled(S.first, x, maps[0])
    for i, block in enumerate(S.blocks, start=1):
        # style at the input resolution
        main = styled(block.conv1, x, maps[2 * i - 1], up=True, fir=fir)
        main = styled(block.conv2, main, maps[2 * i])  # style at the output resolution
        x = (main + up_conv(block.skip, x, act=False, fir=fir)) / SQRT2
    return styled(S.to_rgb, x, maps[-1], act=False)  # linear to-RGB


def make_models(*extra, seed=0):
    cfg = tiny_config(*extra).model
    torch.manual_seed(seed)
    G, D = Generator(cfg).double(), Discriminator(cfg).double().eval()
    gen = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():  # move every bias and the constant off their initial values
        for name, p in G.named_parameters():
            if name.endswith("bias") or name.endswith("const"):
                p.copy_(torch.randn(p.shape, generator=gen, dtype=p.dtype) * 0.3)
    return cfg, G, D


RES = [(), ("model.resolution=16,32", "model.style_size=4,8")]


@pytest.mark.parametrize("extra", RES, ids=["16x16", "16x32"])
def test_unconditional_generator_matches_reference(extra):
    cfg, G, _ = make_models(*extra)
    z = torch.randn(3, cfg.z_dim, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    maps = uncond_maps_ref(G, z)
    assert [tuple(m.shape[1:]) for m in maps] == cfg.style_map_shapes()
    for got, want in zip(G.style_maps(z=z), maps):
        torch.testing.assert_close(got, want)
    torch.testing.assert_close(G(z=z), synthesis_ref(G, maps))


@pytest.mark.parametrize("extra", [*RES, ("model.cond_shared_first_conv=true",)],
                         ids=["16x16", "16x32", "shared"])
def test_conditional_generator_matches_reference(extra):
    cfg, G, _ = make_models(*extra)
    gen = torch.Generator().manual_seed(6)
    label = torch.randint(0, cfg.num_classes, (2, *cfg.resolution), generator=gen)
    z = torch.randn(2, cfg.z_dim, generator=gen, dtype=torch.float64)
    maps = cond_maps_ref(G, label, z)
    for got, want in zip(G.style_maps(label=label, z=z), maps):
        torch.testing.assert_close(got, want)
    torch.testing.assert_close(G(label=label, z=z), synthesis_ref(G, maps))
    # per-pixel z_c is resized like the label
    zp = torch.randn(2, cfg.z_dim, *cfg.resolution, generator=gen, dtype=torch.float64)
    torch.testing.assert_close(G(label=label, z=zp), synthesis_ref(G, cond_maps_ref(G, label, zp)))
    # forward_mixed: unconditional rows first, then conditional, one synthesis pass
    zu = torch.randn(3, cfg.z_dim, generator=gen, dtype=torch.float64)
    mixed = G.forward_mixed(zu, label, z)
    torch.testing.assert_close(mixed[:3], synthesis_ref(G, uncond_maps_ref(G, zu)))
    torch.testing.assert_close(mixed[3:], synthesis_ref(G, maps))


@pytest.mark.parametrize("taps", ["1,2,1", "1,1"])
def test_a_non_default_resample_filter_reaches_every_up_sampling(taps):
    """``model.resample_filter`` is used by the style-map resizer's up-convs, by the skip *and* by
    the styled up-conv of every synthesis block (the up-conv once kept the default [1, 3, 3, 1])."""
    cfg, G, _ = make_models(f"model.resample_filter={taps}")
    z = torch.randn(2, cfg.z_dim, generator=torch.Generator().manual_seed(7), dtype=torch.float64)
    maps = uncond_maps_ref(G, z)
    torch.testing.assert_close(G(z=z), synthesis_ref(G, maps))
    # Each path of a block, alone, against the reference with the configured filter; the
    # default filter gives a different result, so the comparison can tell them apart.
    block = G.synthesis.blocks[0]
    x = torch.randn(2, block.conv1.modulation.num_features, 4, 4, dtype=torch.float64)
    fir = fir2d(cfg.resample_filter)
    for got, want, default in [
        (block.conv1(x, maps[1]), styled(block.conv1, x, maps[1], up=True, fir=fir),
         styled(block.conv1, x, maps[1], up=True)),
        (block.skip(x), up_conv(block.skip, x, act=False, fir=fir),
         up_conv(block.skip, x, act=False)),
    ]:
        torch.testing.assert_close(got, want)
        assert not torch.allclose(got, default, atol=1e-3)


def test_conditional_input_is_an_exact_one_hot_after_resizing():
    """Random per-pixel labels (the worst case for any smoothing resize): the first conv of every
    style map sees ``[z (replicated), one-hot]`` with entries exactly 0 or 1, one 1 per pixel."""
    cfg, G, _ = make_models()
    gen = torch.Generator().manual_seed(7)
    label = torch.randint(0, cfg.num_classes, (2, *cfg.resolution), generator=gen)
    z = torch.randn(2, cfg.z_dim, generator=gen, dtype=torch.float64)
    seen = []
    hooks = [m.register_forward_pre_hook(lambda _m, args: seen.append(args[0]))
             for m in G.cond_style.first]
    G.style_maps(label=label, z=z)
    for h in hooks:
        h.remove()
    assert len(seen) == len(cfg.style_map_shapes())
    for x, (_, h, w) in zip(seen, cfg.style_map_shapes()):
        assert x.shape == (2, cfg.z_dim + cfg.num_classes, h, w)
        torch.testing.assert_close(x[:, : cfg.z_dim], z[:, :, None, None].expand(-1, -1, h, w))
        onehot = x[:, cfg.z_dim :]
        assert set(onehot.unique().tolist()) <= {0.0, 1.0}
        torch.testing.assert_close(onehot.sum(dim=1), torch.ones(2, h, w, dtype=torch.float64))
        torch.testing.assert_close(onehot.argmax(dim=1), nearest_label(label, h, w))


def discriminator_ref(D, x):
    feats = []
    for block in D.encoder:
        x = block(x)
        feats.append(x)
    h = feats[-1]
    for block in D.head_blocks:
        h = block(h)
    h = conv(D.head_conv, lrelu(h))
    h = lrelu(F.linear(h.flatten(1), eff(D.head_fc.weight), D.head_fc.bias))
    image = F.linear(h, eff(D.head_out.weight), D.head_out.bias).squeeze(1)
    s = D.aspp(feats[-1])
    n = len(D.decoder)
    for i, block in enumerate(D.decoder):
        if i > 0:  # U-Net skip: the encoder feature of the same resolution, after the upsampled
            s = torch.cat([s, feats[n - 1 - i]], dim=1)
        s = block(s)
    seg = F.conv2d(s, D.seg_out.weight, D.seg_out.bias)
    return image, seg


D_CASES = [*RES, ("model.d_head_downsample=true",),
           ("model.d_head_downsample=true", "model.d_bottleneck=8", *RES[1])]


@pytest.mark.parametrize("extra", D_CASES, ids=["16x16", "16x32", "head-down", "head-down-8x16"])
def test_discriminator_matches_reference(extra):
    cfg, _, D = make_models(*extra)
    gen = torch.Generator().manual_seed(8)
    with torch.no_grad():
        for name, p in D.named_parameters():
            if name.endswith("bias"):
                p.copy_(torch.randn(p.shape, generator=gen, dtype=p.dtype) * 0.3)
    x = torch.randn(2, 3, *cfg.resolution, generator=gen, dtype=torch.float64)
    out = D(x)
    image, seg = discriminator_ref(D, x)
    assert out.image.shape == (2,) and out.seg.shape == (2, cfg.num_classes + 1, *cfg.resolution)
    torch.testing.assert_close(out.image, image)
    torch.testing.assert_close(out.seg, seg)
    # the encoder: the first block takes raw images (no pre-activation), every block halves
    assert [b.preactivate for b in D.encoder] == [False] + [True] * (len(D.encoder) - 1)
    feats = D.encode(x)
    h, w = cfg.resolution
    assert [tuple(f.shape[2:]) for f in feats] == [
        (h // 2**k, w // 2**k) for k in range(1, len(D.encoder) + 1)
    ]
    # the image head's extra blocks keep the bottleneck size ([choice] d_head_downsample=False)
    # or halve it twice (never below 1)
    bottleneck = feats[-1]
    for block in D.head_blocks:
        bottleneck = block(bottleneck)
    bh, bw = feats[-1].shape[2:]
    if cfg.d_head_downsample:
        bh, bw = max(bh // 4, 1), max(bw // 4, 1)
    assert bottleneck.shape[2:] == (bh, bw)
    # heads asked for separately give the same values
    torch.testing.assert_close(D(x, heads=("image",)).image, image)
    assert D(x, heads=("image",)).seg is None and D(x, heads=("seg",)).image is None


def test_generator_at_init_statistics():
    """At initialisation (biases as built): γ ≈ 1, β ≈ 0 in every modulation (bias 1 / 0), the
    residual blocks keep the second moment of their input (the 1/√2), and both branches give
    finite images of a moderate scale."""
    cfg = tiny_config().model
    torch.manual_seed(0)
    G = Generator(cfg).double()
    for name, m in G.named_modules():
        if name.endswith("modulation"):
            b = m.affine.bias * m.affine.bias_gain
            c = m.num_features
            torch.testing.assert_close(b[:c], torch.ones_like(b[:c]))
            torch.testing.assert_close(b[c:], torch.zeros_like(b[c:]))
    z = torch.randn(64, cfg.z_dim, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    ratios = []
    hooks = [blk.register_forward_hook(
        lambda _m, args, out: ratios.append((out.square().mean() / args[0].square().mean()).item()))
        for blk in G.synthesis.blocks]
    img = G(z=z)
    for h in hooks:
        h.remove()
    assert torch.isfinite(img).all() and 0.05 < img.std().item() < 20
    # (main + skip) / √2 of two roughly independent unit-scale paths: ratio ≈ 1 (≈ 2 without /√2)
    assert all(0.5 < r < 1.5 for r in ratios), ratios


@pytest.mark.parametrize("shared", [False, True])
def test_every_generator_parameter_is_used(shared):
    """Every parameter gets a gradient from one unconditional plus one conditional sample; with
    the shared first conv there is exactly one first conv per resolution."""
    cfg, G, _ = make_models(f"model.cond_shared_first_conv={str(shared).lower()}")
    n_res = len(cfg.style_map_shapes()) // 2
    assert len(G.cond_style.first) == (n_res if shared else 2 * n_res)
    gen = torch.Generator().manual_seed(9)
    label = torch.randint(0, cfg.num_classes, (1, *cfg.resolution), generator=gen)
    z = torch.randn(1, cfg.z_dim, generator=gen, dtype=torch.float64)
    (G(z=z).square().sum() + G(label=label, z=z).square().sum()).backward()
    unused = [n for n, p in G.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not unused


def test_truncation_interpolates_the_base_map():
    cfg, G, _ = make_models()
    gen = torch.Generator().manual_seed(10)
    z = torch.randn(2, cfg.z_dim, generator=gen, dtype=torch.float64)
    base = G.uncond_style.base_map(z)
    center = torch.randn(1, *base.shape[1:], generator=gen, dtype=torch.float64)
    for psi in (0.0, 0.5, 1.5):
        got = G.style_maps(z=z, truncation=psi, truncation_center=center)
        want = G.uncond_style.resize(center + psi * (base - center))
        for g, w in zip(got, want):
            torch.testing.assert_close(g, w)


def test_latent_errors_say_what_was_expected():
    cfg, G, _ = make_models()
    zd = cfg.z_dim
    with pytest.raises(ValueError, match=rf"^z: expected \[B, {zd}\], got shape \(2, {zd}, 1, 1\)"):
        G(z=torch.randn(2, zd, 1, 1, dtype=torch.float64))
    label = torch.zeros(2, *cfg.resolution, dtype=torch.long)
    with pytest.raises(ValueError, match=rf"^z: expected \[B, {zd}\] or \[B, {zd}, H, W\]"):
        G(label=label, z=torch.randn(2, zd + 1, dtype=torch.float64))


def test_mean_base_map_is_the_seeded_average():
    cfg, G, _ = make_models()
    z = torch.randn(32, cfg.z_dim, generator=torch.Generator().manual_seed(3)).double()
    expected = G.uncond_style.base_map(z).mean(dim=0, keepdim=True)
    torch.testing.assert_close(G.mean_base_map(num=32, seed=3), expected)


@pytest.mark.parametrize(
    ("extra", "equalized", "spectral"),
    [((), True, False), (("model.d_equalized=false",), False, False),
     (("model.d_encoder_spectral_norm=true",), False, True)],
)
def test_encoder_conv_kind_follows_the_config(extra, equalized, spectral):
    """Equalised convs unless d_equalized=false or spectral norm is asked for (they exclude each
    other); spectral norm only when asked (the paper's Table 10), and only in the encoder: the
    image head keeps its convs."""
    _, _, D = make_models(*extra)
    head = (D.head_blocks, "model.d_equalized=false" not in extra, False)
    for blocks, eq, sn in ((D.encoder, equalized, spectral), head):
        for block in blocks:
            convs = [m for m in block.modules() if isinstance(m, (EqualConv2d, torch.nn.Conv2d))]
            assert convs
            assert all(isinstance(c, EqualConv2d) == eq for c in convs)
            assert all(parametrize.is_parametrized(c, "weight") == sn for c in convs
                       if isinstance(c, torch.nn.Conv2d))


@pytest.mark.parametrize("net", [Generator, Discriminator])
def test_networks_validate_their_config(net):
    cfg = tiny_config().model
    cfg.resolution = (16, 24)
    with pytest.raises(ValueError, match="resolution"):
        net(cfg)


def test_discriminator_input_errors_say_what_was_expected():
    cfg, _, D = make_models()
    h, w = cfg.resolution
    with pytest.raises(ValueError, match=rf"x: expected images \[B, 3, {h}, {w}\], got list"):
        D([0.0])
    with pytest.raises(ValueError, match=r"got \(2, 3, 8, 8\)"):
        D(torch.zeros(2, 3, 8, 8, dtype=torch.float64))
