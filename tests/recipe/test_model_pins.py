"""Fixed-weights golden outputs of the OCO-GAN generator and discriminator (issue 23).

What a checkpoint means is pinned: a tiny model (8 x 16 images, 3 classes) loads a stored state
dict (strict) and must reproduce the stored outputs of both generator branches, the conditional
style maps and both discriminator heads. The conditional style network is also derived here with
plain ``torch.nn.functional`` code: its input is ``concat(z_c replicated, one_hot(label))`` in
that channel order, resized per style-map resolution by nearest neighbour, then two equalised 3x3
convolutions with ``lrelu(0.2)·√2`` per map.

Regenerate (only for an intended change of meaning)::

    python tests/recipe/test_model_pins.py
"""

from __future__ import annotations

import dataclasses
import math
import re
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from recipes.oco_gan.config import get_preset
from recipes.oco_gan.model import Discriminator, Generator, one_hot_label

GOLDEN = Path(__file__).resolve().parent.parent / "golden" / "pins_oco_model.pt"


def tiny_config():
    return dataclasses.replace(
        get_preset("demo").model,
        resolution=(8, 16),
        num_classes=3,
        style_size=(4, 8),
        z_dim=4,
        style_channels=4,
        mapping_layers=2,
        channel_multiplier=1 / 64,
        max_channels=4,
        cond_hidden_channels=3,
        d_channel_multiplier=1 / 64,
        d_max_channels=8,
        d_bottleneck=2,
    )


def _seeded_state(module, seed):
    gen = torch.Generator().manual_seed(seed)
    state = {}
    for key, value in module.state_dict().items():
        if value.is_floating_point():
            value = torch.randn(value.shape, generator=gen, dtype=torch.float64)
        state[key] = value
    return state


def _models(golden=None):
    cfg = tiny_config()
    G, D = Generator(cfg).double().eval(), Discriminator(cfg).double().eval()
    if golden is None:
        return G, D
    G.load_state_dict(golden["G"], strict=True)
    D.load_state_dict(golden["D"], strict=True)
    return G, D


def _outputs(G, D, inputs):
    with torch.no_grad():
        d = D(inputs["x"])
        return {
            "uncond": G(z=inputs["z_u"]),
            "cond": G(label=inputs["label"], z=inputs["z_c"]),
            "cond_maps": G.style_maps(label=inputs["label"], z=inputs["z_c"]),
            "d_image": d.image,
            "d_seg": d.seg,
        }


def make_golden():
    torch.manual_seed(0)
    G, D = _models()
    G.load_state_dict(_seeded_state(G, 1), strict=True)
    D.load_state_dict(_seeded_state(D, 2), strict=True)
    gen = torch.Generator().manual_seed(3)
    inputs = {
        "z_u": torch.randn(2, 4, generator=gen, dtype=torch.float64),
        "z_c": torch.randn(2, 4, generator=gen, dtype=torch.float64),
        "label": torch.randint(0, 3, (2, 8, 16), generator=gen),
        "x": torch.randn(2, 3, 8, 16, generator=gen, dtype=torch.float64),
    }
    return {"G": G.state_dict(), "D": D.state_dict(), "inputs": inputs, **_outputs(G, D, inputs)}


@pytest.fixture(scope="module")
def golden():
    return torch.load(GOLDEN, weights_only=True)


def test_generator_and_discriminator_reproduce_their_golden_outputs(golden):
    G, D = _models(golden)
    got = _outputs(G, D, golden["inputs"])
    for key in ("uncond", "cond", "d_image", "d_seg"):
        assert got[key].shape == golden[key].shape, key
        torch.testing.assert_close(got[key], golden[key], rtol=1e-9, atol=1e-9, msg=key)
    assert len(got["cond_maps"]) == len(golden["cond_maps"])
    for a, b in zip(got["cond_maps"], golden["cond_maps"]):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-9)


def _equal_conv_lrelu(x, w, b):
    y = F.conv2d(x, w / math.sqrt(w.shape[1] * w.shape[2] * w.shape[3]), b, padding=1)
    return F.leaky_relu(y, 0.2) * math.sqrt(2.0)


def test_conditional_style_input_is_latent_then_one_hot(golden):
    """Derived independently: ``cat([z_c, one_hot])`` (z first), nearest-resized per map."""
    s, inputs = golden["G"], golden["inputs"]
    onehot = F.one_hot(inputs["label"], 3).permute(0, 3, 1, 2).to(torch.float64)
    z = inputs["z_c"]
    maps = []
    for k, (_, h, w) in enumerate(tiny_config().style_map_shapes()):
        x = torch.cat(
            [z[:, :, None, None].expand(-1, -1, h, w), F.interpolate(onehot, size=(h, w))], dim=1
        )
        x = _equal_conv_lrelu(x, s[f"cond_style.first.{k}.weight"], s[f"cond_style.first.{k}.bias"])
        x = _equal_conv_lrelu(
            x, s[f"cond_style.second.{k}.weight"], s[f"cond_style.second.{k}.bias"]
        )
        maps.append(x)
    for a, b in zip(golden["cond_maps"], maps):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-9)
    # the model's own one-hot encoding agrees with F.one_hot (class c -> channel c)
    torch.testing.assert_close(one_hot_label(inputs["label"], 3).to(torch.float64), onehot)


def test_the_two_branches_share_the_synthesis(golden):
    """Both branches render through the same synthesis network: feeding the conditional maps to
    it gives the conditional images."""
    G, _ = _models(golden)
    with torch.no_grad():
        cond = G.synthesis(golden["cond_maps"])
    torch.testing.assert_close(cond, golden["cond"], rtol=1e-9, atol=1e-9)


if __name__ == "__main__":  # pragma: no cover - regenerates the golden file
    torch.save(make_golden(), GOLDEN)
    print(f"wrote {GOLDEN}")


def test_truncation_centre_is_the_mean_over_4096_seeded_latents(golden):
    """The default truncation centre: the mapping network's mean output over 4096 latents drawn
    with a CPU generator of seed 0 (StyleGAN's w_avg estimate, here on the base style map)."""
    G, _ = _models(golden)
    z = torch.randn(4096, 4, generator=torch.Generator().manual_seed(0)).to(torch.float64)
    with torch.no_grad():
        expected = G.uncond_style.base_map(z).mean(dim=0, keepdim=True)
        torch.testing.assert_close(G.mean_base_map(), expected)
        # and it is what truncation pulls towards by default
        z_u = golden["inputs"]["z_u"]
        base = G.uncond_style.base_map(z_u)
        maps = G.style_maps(z=z_u, truncation=0.5)
        torch.testing.assert_close(
            maps[0], G.uncond_style.resize(expected + 0.5 * (base - expected))[0]
        )


# -- argument checks, defaults and the parts of the model (hardening before seed 11) ------------


def test_one_hot_label_checks_with_messages_and_boundaries():
    assert one_hot_label(torch.zeros(1, 2, 2, dtype=torch.long), 3).dtype == torch.float32
    with pytest.raises(TypeError, match=r"^label: expected a torch\.Tensor, got list$"):
        one_hot_label([[[0]]], 3)
    for bad in (torch.zeros(1, 2, 2, 2), torch.zeros(2, 3, 4)):
        msg = (f"label: a floating-point label must be one-hot [B, 3, H, W], got shape "
               f"{tuple(bad.shape)}")
        with pytest.raises(ValueError, match="^" + re.escape(msg) + "$"):
            one_hot_label(bad, 3)
    for bad in (torch.zeros(2, 4, dtype=torch.long), torch.zeros(1, 1, 2, 2, dtype=torch.long)):
        msg = (f"label: expected integer class ids [B, H, W] (or one-hot [B, N, H, W] floats), "
               f"got shape {tuple(bad.shape)}")
        with pytest.raises(ValueError, match="^" + re.escape(msg) + "$"):
            one_hot_label(bad, 3)
    # ids 0 and N - 1 are the ends of the range; -1 and N are out of it
    ends = one_hot_label(torch.tensor([[[0, 2]]]), 3, dtype=torch.float64)
    assert ends.dtype == torch.float64 and ends.shape == (1, 3, 1, 2)
    assert ends[0, :, 0, 0].tolist() == [1.0, 0.0, 0.0] and ends[0, :, 0, 1].tolist() == [0, 0, 1]
    for ids, lo, hi in (([[[0, 3]]], 0, 3), ([[[-1, 1]]], -1, 1), ([[[-2, 4]]], -2, 4)):
        msg = (f"label: class ids must be in [0, 3) (num_classes=3, don't-care included), got "
               f"values in [{lo}, {hi}]")
        with pytest.raises(ValueError, match="^" + re.escape(msg) + "$"):
            one_hot_label(torch.tensor(ids), 3)
    empty = one_hot_label(torch.zeros(0, 2, 5, dtype=torch.long), 3)  # nothing to range-check
    assert empty.shape == (0, 3, 2, 5)
    # uint8 ids are taken as class ids too; a one-hot float map is only cast
    assert torch.equal(one_hot_label(torch.tensor([[[1]]], dtype=torch.uint8), 3),
                       torch.tensor([0.0, 1.0, 0.0]).view(1, 3, 1, 1))
    soft = torch.rand(2, 3, 2, 2, dtype=torch.float64)
    assert torch.equal(one_hot_label(soft, 3), soft.float())
    assert one_hot_label(soft, 3, size=(2, 2)).shape == (2, 3, 2, 2)
    for lab in (soft, torch.zeros(2, 2, 2, dtype=torch.long)):
        msg = "label: expected spatial size (2, 3) (the model's resolution), got (2, 2)"
        with pytest.raises(ValueError, match="^" + re.escape(msg) + "$"):
            one_hot_label(lab, 3, size=[2, 3])


def test_generator_z_checks_name_the_form_expected():
    G, _ = _models()
    label = torch.zeros(2, 8, 16, dtype=torch.long)
    with pytest.raises(ValueError, match=r"^z: the unconditional branch needs z \[B, z_dim\] "
                                         r"\(or pass label\)$"):
        G.style_maps()
    for bad in ([[0.0] * 4], torch.zeros(2, 4, dtype=torch.long)):
        for kwargs in ({"z": bad}, {"z": bad, "label": label}):
            with pytest.raises(TypeError, match=r"^z: expected a floating-point tensor$"):
                G.style_maps(**kwargs)
    for shape in ((2, 5), (2, 4, 1), (2,), (2, 4, 8, 16)):
        with pytest.raises(ValueError, match="^" + re.escape(
                f"z: expected [B, 4], got shape {shape}") + "$"):
            G.style_maps(z=torch.zeros(shape, dtype=torch.float64))
    for shape in ((2, 5), (2, 3, 8, 16), (2, 4, 8)):
        with pytest.raises(ValueError, match="^" + re.escape(
                f"z: expected [B, 4] or [B, 4, H, W], got shape {shape}") + "$"):
            G.style_maps(z=torch.zeros(shape, dtype=torch.float64), label=label)
    with pytest.raises(ValueError, match=r"^z: batch size 3 differs from label's 2$"):
        G.style_maps(z=torch.zeros(3, 4, dtype=torch.float64), label=label)
    with pytest.raises(ValueError, match=r"^z: batch size 1 differs from label's 2$"):
        G.style_maps(z=torch.zeros(1, 4, 8, 16, dtype=torch.float64), label=label)
    with pytest.raises(ValueError, match=re.escape(
            "z: a per-pixel z_c must be [B, 4, 8, 16], got (2, 4, 16, 8)")):
        G.style_maps(z=torch.zeros(2, 4, 16, 8, dtype=torch.float64), label=label)
    with pytest.raises(ValueError, match=r"^label: expected spatial size \(8, 16\)"):
        G.style_maps(z=torch.zeros(2, 4, dtype=torch.float64),
                     label=torch.zeros(2, 8, 8, dtype=torch.long))


def test_conditional_z_drawn_from_the_generator_given_in_the_model_dtype():
    G, _ = _models()
    label = torch.randint(0, 3, (2, 8, 16), generator=torch.Generator().manual_seed(1))
    z = torch.randn(2, 4, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    with torch.no_grad():
        drawn = G(label=label, generator=torch.Generator().manual_seed(5))
        given = G(label=label, z=z)
    assert drawn.dtype == torch.float64 and drawn.shape == (2, 3, 8, 16)
    torch.testing.assert_close(drawn, given, rtol=0, atol=0)
    # the same in forward_mixed, for the conditional part
    with torch.no_grad():
        mixed = G.forward_mixed(None, label, generator=torch.Generator().manual_seed(5))
    torch.testing.assert_close(mixed, given, rtol=0, atol=0)


def test_truncation_with_a_given_centre_and_none_at_one():
    G, _ = _models()
    gen = torch.Generator().manual_seed(2)
    z = torch.randn(3, 4, generator=gen, dtype=torch.float64)
    center = torch.randn(1, 4, 4, 8, generator=gen, dtype=torch.float64)
    with torch.no_grad():
        base = G.uncond_style.base_map(z)
        plain = G.style_maps(z=z)
        got = G.style_maps(z=z, truncation=0.25, truncation_center=center.float())
        ref = G.uncond_style.resize(center + 0.25 * (base - center))
        none = G.style_maps(z=z, truncation=1.0, truncation_center=center)
        at_centre = G(z=z, truncation=0.0, truncation_center=center)
    for a, b in zip(got, ref):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-6)  # the centre was float32
    for a, b in zip(none, plain):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert got[0].dtype == torch.float64
    with torch.no_grad():
        expected = G.synthesis(G.uncond_style.resize(center.expand(3, -1, -1, -1)))
    torch.testing.assert_close(at_centre, expected, rtol=1e-9, atol=1e-9)


def test_forward_mixed_concatenates_the_branches_in_order():
    G, _ = _models()
    gen = torch.Generator().manual_seed(4)
    z_u = torch.randn(2, 4, generator=gen, dtype=torch.float64)
    z_c = torch.randn(3, 4, generator=gen, dtype=torch.float64)
    label = torch.randint(0, 3, (3, 8, 16), generator=gen)
    with torch.no_grad():
        mixed = G.forward_mixed(z_u, label, z_c)
        uncond, cond = G(z=z_u), G(label=label, z=z_c)
        torch.testing.assert_close(mixed, torch.cat([uncond, cond]), rtol=1e-9, atol=1e-9)
        torch.testing.assert_close(G.forward_mixed(z_u, None), uncond, rtol=0, atol=0)
        torch.testing.assert_close(G.forward_mixed(None, label, z_c), cond, rtol=0, atol=0)
    with pytest.raises(ValueError, match=r"^forward_mixed: pass z_u, label or both$"):
        G.forward_mixed(None, None, z_c)


def test_synthesis_wants_two_maps_per_block_and_two_more():
    G, _ = _models()
    n = len(tiny_config().style_map_shapes())
    assert n == 2 * len(G.synthesis.blocks) + 2 == 4
    maps = G.style_maps(z=torch.zeros(1, 4, dtype=torch.float64))
    for wrong in (maps[:-1], maps + maps[:1]):
        with pytest.raises(ValueError, match=rf"^styles: expected 4 style maps, got "
                                             rf"{len(wrong)}$"):
            G.synthesis(wrong)


def test_discriminator_heads_and_image_checks():
    _, D = _models()
    x = torch.randn(2, 3, 8, 16, generator=torch.Generator().manual_seed(6), dtype=torch.float64)
    with torch.no_grad():
        both = D(x)
        image = D(x, heads=("image",))
        seg = D(x, heads=["seg"])
        neither = D(x, heads=())
    assert both.image.shape == (2,) and both.seg.shape == (2, 4, 8, 16)
    assert image.seg is None and torch.equal(image.image, both.image)
    assert seg.image is None and torch.equal(seg.seg, both.seg)
    assert neither == (None, None)
    with pytest.raises(ValueError, match=r"^heads: unknown head\(s\) \['img', 'z'\]; expected "
                                         r"'image', 'seg'$"):
        D(x, heads=("z", "image", "img"))
    for bad, shown in ((x[:, :2], "(2, 2, 8, 16)"), (x[:, :, :, :8], "(2, 3, 8, 8)"),
                       (x.transpose(2, 3), "(2, 3, 16, 8)"), (x[0], "(3, 8, 16)"),
                       (x.tolist(), "list")):
        with pytest.raises(ValueError, match=rf"^x: expected images \[B, 3, 8, 16\], got "
                                             rf"{re.escape(shown)}$"):
            D(bad)


def test_parameter_counts_of_the_parts_cover_each_model_whole():
    from recipes.oco_gan.model import count_parameters, part_sizes

    G, D = _models()
    assert count_parameters(G) == sum(p.numel() for p in G.parameters()) == 4255
    sizes = part_sizes(G, D)
    assert list(sizes) == ["G unconditional style net", "G conditional style net", "G synthesis",
                           "D encoder", "D image head", "D segmentation head (ASPP + decoder)"]
    assert sizes == {"G unconditional style net": 1252, "G conditional style net": 1216,
                     "G synthesis": 1787, "D encoder": 2000, "D image head": 3449,
                     "D segmentation head (ASPP + decoder)": 4652}
    assert sum(v for k, v in sizes.items() if k[0] == "G") == count_parameters(G)
    assert sum(v for k, v in sizes.items() if k[0] == "D") == count_parameters(D) == 10101


def test_a_per_pixel_z_constant_over_the_image_is_the_vector_z():
    """A per-pixel ``z_c [B, z_dim, H, W]`` at the model's resolution is nearest-resized per map;
    the same latent at every pixel gives the maps of that latent as a vector."""
    G, _ = _models()
    gen = torch.Generator().manual_seed(7)
    z = torch.randn(2, 4, generator=gen, dtype=torch.float64)
    label = torch.randint(0, 3, (2, 8, 16), generator=gen)
    with torch.no_grad():
        vector = G.style_maps(z=z, label=label)
        pixels = G.style_maps(z=z[:, :, None, None].expand(-1, -1, 8, 16), label=label)
    assert len(pixels) == len(vector) == 4
    for a, b in zip(pixels, vector):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def _cond_maps_by_hand(G, onehot, z_map, first_of):
    maps = []
    for k, (_, h, w) in enumerate(G.cond_style.shapes):
        x = torch.cat([F.interpolate(z_map, size=(h, w), mode="nearest"),
                       F.interpolate(onehot, size=(h, w), mode="nearest")], dim=1)
        maps.append(G.cond_style.second[k](G.cond_style.first[first_of(k)](x)))
    return maps


def test_shared_first_convs_serve_both_maps_of_a_resolution_and_pixels_resize_nearest():
    cfg = dataclasses.replace(tiny_config(), cond_shared_first_conv=True)
    G = Generator(cfg).double().eval()
    n = len(cfg.style_map_shapes())
    assert len(G.cond_style.first) == n // 2 == 2 and len(G.cond_style.second) == n
    gen = torch.Generator().manual_seed(8)
    z = torch.randn(2, 4, 8, 16, generator=gen, dtype=torch.float64)  # varies per pixel
    label = torch.randint(0, 3, (2, 8, 16), generator=gen)
    onehot = one_hot_label(label, 3, dtype=torch.float64)
    with torch.no_grad():
        got = G.style_maps(z=z, label=label)
        expected = _cond_maps_by_hand(G, onehot, z, lambda k: k // 2)
    for a, b in zip(got, expected):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


def test_a_latent_of_another_dtype_is_cast_to_the_model_dtype():
    G, _ = _models()
    G = G.float()
    gen = torch.Generator().manual_seed(9)
    label = torch.randint(0, 3, (2, 8, 16), generator=gen)
    for z in (torch.randn(2, 4, generator=gen, dtype=torch.float64),
              torch.randn(2, 4, 8, 16, generator=gen, dtype=torch.float64)):
        with torch.no_grad():
            got = G.style_maps(z=z, label=label)
            same = G.style_maps(z=z.float(), label=label)
        assert all(m.dtype == torch.float32 for m in got)
        for a, b in zip(got, same):
            torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_synthesis_blocks_follow_the_channels_of_the_style_map_table():
    """At 128 x 256 the last resolution has half the channels (16 -> 8): each synthesis block
    maps the channels of its first style map to those of its second, and the output is RGB."""
    cfg = dataclasses.replace(tiny_config(), resolution=(128, 256), max_channels=64,
                              channel_multiplier=1 / 32)
    assert [s[0] for s in cfg.style_map_shapes()] == [16] * 10 + [8, 8]
    G = Generator(cfg).eval()
    with torch.no_grad():
        out = G(z=torch.randn(1, 4, generator=torch.Generator().manual_seed(10)))
    assert out.shape == (1, 3, 128, 256) and torch.isfinite(out).all()
