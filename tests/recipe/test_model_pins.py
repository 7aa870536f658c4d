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
