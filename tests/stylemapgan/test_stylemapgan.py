"""StyleMapGAN from our blocks: the original code's weights and outputs (golden), conversions,
errors and shapes.

``tests/golden/stylemapgan.pt`` was made by naver-ai/StyleMapGAN's ``training/model.py`` (see
``tests/golden/stylemapgan.md``): narrow networks with every parameter and buffer perturbed, their
inputs and outputs in float32 (and float64 for the main outputs), and the key → shape tables of
the full-width default networks.
"""

from __future__ import annotations

import pytest
import torch
from testutils import load_golden, rel_err

from ganblocks.convert import StateDictMismatchError
from recipes.stylemapgan import (
    NORMALIZE_MODES,
    Discriminator,
    Encoder,
    Generator,
    stylemapgan_channels,
)
from recipes.stylemapgan.convert import converter_for

GOLDEN = load_golden("stylemapgan")
CASES = {c["name"]: c for c in GOLDEN["cases"]}
G_CASES = [c for c in GOLDEN["cases"] if c["kind"] == "generator"]
E_CASES = [c for c in GOLDEN["cases"] if c["kind"] == "encoder"]
D_CASES = [c for c in GOLDEN["cases"] if c["kind"] == "discriminator"]
TOL = 1e-5  # float32, relative to the largest magnitude of the original's output


def ids(cases):
    return [c["name"] for c in cases]


def as_double(state):
    return {k: v.double() if v.is_floating_point() else v for k, v in state.items()}


def width_kwargs(case):
    """The arguments the state dict cannot show: the width table (and, for G, lr_mul/norm)."""
    kw = {"channel_multiplier": case["kwargs"]["channel_multiplier"],
          "low_res_channels": case["ch_max"]}
    if case["kind"] == "generator":
        kw["lr_mul"] = case["kwargs"]["lr_mul"]
        kw["normalize_mode"] = case["kwargs"]["normalize_mode"]
    return kw


def generator(case, *, double=False):
    state = as_double(case["state"]) if double else case["state"]
    G = Generator.from_stylemapgan(state, **width_kwargs(case))
    return (G.double() if double else G).eval()


# -- golden outputs ---------------------------------------------------------------------------


@pytest.mark.parametrize("case", G_CASES, ids=ids(G_CASES))
def test_generator_reproduces_the_original(case):
    G = generator(case)
    spec = case["kwargs"]
    assert (G.size, G.style_dim, G.latent_spatial_size, G.small_generator) == (
        spec["size"], spec["style_dim"], spec["latent_spatial_size"], spec["small_generator"]
    )
    assert G.norm == NORMALIZE_MODES[spec["normalize_mode"]]
    with torch.no_grad():
        img = G(case["z"])
        assert img.shape == case["img_z"].shape
        assert rel_err(img, case["img_z"]) <= TOL
        assert rel_err(G.style_map(case["z"]), case["stylecode_z"]) <= TOL
        # input_is_stylecode=True: an encoder's style map straight into the synthesis
        assert rel_err(G.synthesis(case["stylecode_in"]), case["img_stylecode"]) <= TOL
        mean = G.mean_style_map(case["z_mean"])
        assert rel_err(mean.flatten(1), case["mean_stylemap"]) <= TOL  # theirs is flat
        truncated = G(case["z"], truncation=case["truncation"], mean_style_map=mean)
        assert rel_err(truncated, case["img_truncated"]) <= TOL


@pytest.mark.parametrize("case", G_CASES, ids=ids(G_CASES))
def test_generator_in_float64_matches_the_original_in_float64(case):
    """In float64 the two agree to rounding: no formula differs, however slightly."""
    G = generator(case, double=True)
    with torch.no_grad():
        assert rel_err(G(case["z"].double()), case["img_z_f64"]) <= 1e-12
        assert rel_err(G.style_map(case["z"].double()), case["stylecode_z_f64"]) <= 1e-12


def test_batch_norm_generator_in_training_mode():
    """BatchNorm2d mode: batch statistics in train(), and the running statistics move alike."""
    case = CASES["G_batchnorm_16"]
    G = generator(case).train()
    with torch.no_grad():
        img = G(case["z"])
    assert rel_err(img, case["img_z_train"]) <= TOL
    after = G.to_stylemapgan()
    stats = [k for k in after if ".norm.running_" in k]
    assert len(stats) == 2 * (2 + 2 * len(G.blocks))  # conv1, two per block, to_rgb
    for key in stats:
        assert not torch.equal(after[key], case["state"][key]), key  # they moved
        assert rel_err(after[key], case["state_after_train"][key]) <= TOL, key
    for key in (k for k in after if k.endswith("num_batches_tracked")):
        assert torch.equal(after[key], case["state_after_train"][key]), key


@pytest.mark.parametrize("case", E_CASES, ids=ids(E_CASES))
def test_encoder_reproduces_the_original(case):
    E = Encoder.from_stylemapgan(case["state"], size=case["kwargs"]["size"],
                                 **width_kwargs(case)).eval()
    assert (E.style_dim, E.latent_spatial_size) == (
        case["kwargs"]["style_dim"], case["kwargs"]["latent_spatial_size"]
    )
    with torch.no_grad():
        out = E(case["img"])
        assert out.shape == case["stylecode"].shape
        assert rel_err(out, case["stylecode"]) <= TOL
        E64 = Encoder.from_stylemapgan(as_double(case["state"]), size=case["kwargs"]["size"],
                                       **width_kwargs(case)).double()
        assert rel_err(E64(case["img"].double()), case["stylecode_f64"]) <= 1e-12


@pytest.mark.parametrize("case", D_CASES, ids=ids(D_CASES))
def test_discriminator_reproduces_the_original(case):
    D = Discriminator.from_stylemapgan(case["state"], **width_kwargs(case)).eval()
    assert D.size == case["kwargs"]["size"]
    D64 = Discriminator.from_stylemapgan(as_double(case["state"]), **width_kwargs(case)).double()
    with torch.no_grad():
        for b in case["batches"]:  # minibatch-std groups of min(4, N)
            logits = D(case[f"img_{b}"])
            assert logits.shape == (b, 1)
            assert rel_err(logits, case[f"logits_{b}"]) <= TOL
            assert rel_err(D64(case[f"img_{b}"].double()), case[f"logits_{b}_f64"]) <= 1e-12


# -- round trips --------------------------------------------------------------------------------


def load(case):
    cls = {"generator": Generator, "encoder": Encoder, "discriminator": Discriminator}
    kw = width_kwargs(case)
    if case["kind"] == "encoder":
        kw["size"] = case["kwargs"]["size"]
    return cls[case["kind"]].from_stylemapgan(case["state"], **kw)


@pytest.mark.parametrize("case", GOLDEN["cases"], ids=ids(GOLDEN["cases"]))
def test_to_stylemapgan_gives_back_the_original_state_dict(case):
    back = load(case).to_stylemapgan()
    assert set(back) == set(case["state"])
    for key, value in case["state"].items():
        assert back[key].dtype == value.dtype, key
        assert torch.equal(back[key], value), key


@pytest.mark.parametrize(
    "make",
    [
        lambda: Generator(16, style_dim=4, latent_spatial_size=4, mapping_layers=2,
                          low_res_channels=8, norm="batch"),
        lambda: Generator(32, style_dim=4, latent_spatial_size=8, mapping_layers=1,
                          low_res_channels=8, small_generator=True, resample_filter=(1, 2, 1)),
        lambda: Encoder(16, style_dim=4, latent_spatial_size=2, low_res_channels=8),
        lambda: Discriminator(16, low_res_channels=8, resample_filter=(1, 2, 1)),
    ],
    ids=["G_batch", "G_small_filter121", "E", "D_filter121"],
)
def test_round_trip_of_our_weights(make):
    """Our weights → the original's names → a new network: the same tensors and outputs."""
    torch.manual_seed(0)
    net = make()
    with torch.no_grad():
        for p in net.parameters():
            p.add_(torch.randn_like(p))  # biases and γ away from their constant init
    if isinstance(net, Generator):
        with torch.no_grad():
            net.train()(torch.randn(4, net.style_dim))  # moves the batch-norm statistics
    net.eval()
    again = type(net).from_stylemapgan(net.to_stylemapgan(), **{
        k: v for k, v in net.config.items() if k not in ("size",)
    }).eval()
    assert again.config == net.config
    a, b = net.state_dict(), again.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    size = net.size
    x = torch.randn(4, net.style_dim) if isinstance(net, Generator) else \
        torch.randn(4, 3, size, size)
    with torch.no_grad():
        assert torch.equal(net(x), again(x))


def test_checkpoint_kernels_are_loaded_into_the_layers():
    """The original's blur kernels are buffers of its checkpoints: ours follow them."""
    case = CASES["G_layernorm_16_blur121"]  # blur_kernel=[1, 2, 1] in the styled up-convs
    G = generator(case)
    assert G.blocks[0].conv1.conv.resample_filter.shape == (3, 3)
    assert G.blocks[0].skip.resample_filter.shape == (4, 4)  # the original keeps [1, 3, 3, 1]
    kernel = case["state"]["decoder.convs.0.conv1.conv.blur.kernel"]
    assert torch.equal(G.blocks[0].conv1.conv.resample_filter * 4, kernel)
    fresh = Generator(16, style_dim=8, latent_spatial_size=4, mapping_layers=2, low_res_channels=8)
    fresh.load_state_dict(G.state_dict())  # our own state dict carries no kernels
    with torch.no_grad():
        assert rel_err(fresh(case["z"]), case["img_z"]) > 1e-3  # so they do matter


# -- errors ---------------------------------------------------------------------------------------


def test_missing_and_unknown_keys_are_named_in_both_layouts():
    case = CASES["G_layernorm_32"]
    state = dict(case["state"])
    del state["decoder.convs.1.conv2.activate.bias"]
    state["decoder.convs.1.conv2.activate.weight"] = torch.zeros(3)
    with pytest.raises(StateDictMismatchError) as err:
        generator({**case, "state": state})
    message = str(err.value)
    assert "'decoder.convs.1.conv2.activate.weight'" in message
    assert "'blocks.1.conv2.conv.bias'" in message  # missing, ours
    assert "'decoder.convs.1.conv2.activate.bias'" in message  # and theirs


def test_a_lone_gamma_is_an_incomplete_pair():
    case = CASES["G_nonorm_16_small"]
    state = dict(case["state"])
    del state["decoder.to_rgb.conv.beta.weight"]
    with pytest.raises(StateDictMismatchError, match=r"incomplete.*to_rgb\.conv\.beta\.weight"):
        generator({**case, "state": state})


def test_wrong_widths_are_reported_as_shape_mismatches():
    case = CASES["D_32"]
    with pytest.raises(StateDictMismatchError, match=r"shape mismatches: .*expected") as err:
        Discriminator.from_stylemapgan(case["state"], low_res_channels=32)
    assert err.value.mismatched


def test_wrong_norm_is_reported():
    """LayerNorm weights look like InstanceNorm ones, but not like BatchNorm ones."""
    case = CASES["G_batchnorm_16"]
    with pytest.raises(StateDictMismatchError, match=r"norm\.running_mean"):
        Generator.from_stylemapgan(case["state"], norm="layer", **{
            k: v for k, v in width_kwargs(case).items() if k != "normalize_mode"
        })


def test_bad_arguments_and_inputs_name_what_was_expected():
    G_case = CASES["G_layernorm_32"]
    with pytest.raises(ValueError, match=r"whole training checkpoint.*g_ema"):
        Generator.from_stylemapgan({"g_ema": G_case["state"], "d": {}})
    with pytest.raises(StateDictMismatchError, match=r"mapping_z\.1\.weight"):
        Generator.from_stylemapgan(CASES["D_32"]["state"])
    with pytest.raises(ValueError, match=r"normalize_mode.*GroupNorm"):
        Generator.from_stylemapgan(G_case["state"], normalize_mode="GroupNorm")
    with pytest.raises(TypeError, match="not both"):
        Generator.from_stylemapgan(G_case["state"], normalize_mode="LayerNorm", norm="layer")
    with pytest.raises(ValueError, match="norm"):
        Generator(16, latent_spatial_size=4, norm="group")
    with pytest.raises(ValueError, match="latent_spatial_size"):
        Generator(16, latent_spatial_size=16)
    with pytest.raises(ValueError, match="size: expected a power of two"):
        Discriminator(48)
    G = generator(G_case)
    with pytest.raises(ValueError, match="mean_style_map"):
        G(G_case["z"], truncation=0.5)
    with pytest.raises(ValueError, match=r"style_map: expected \[N, 8, 8, 8\]"):
        G.synthesis(torch.randn(2, 8, 4, 4))
    with pytest.raises(ValueError, match="maps: expected 6 style maps, got 5"):
        G.render(G.style_maps(torch.randn(2, 8, 8, 8))[:-1])
    with pytest.raises(ValueError, match=r"img: expected \[N, 3, 32, 32\]"):
        load(CASES["D_32"])(torch.randn(2, 3, 16, 16))
    with pytest.raises(TypeError, match="Generator, Encoder or Discriminator"):
        converter_for(torch.nn.Linear(2, 2))


# -- shapes and the width table ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "make"),
    [
        ("generator_256", lambda: Generator()),
        ("generator_256_small_batchnorm",
         lambda: Generator(small_generator=True, norm="batch")),
        ("generator_1024_c1",
         lambda: Generator(1024, latent_spatial_size=16, channel_multiplier=1, norm="instance")),
        ("encoder_256", lambda: Encoder()),
        ("discriminator_256", lambda: Discriminator()),
    ],
)
def test_default_networks_have_the_originals_keys_and_shapes(name, make):
    """Full width (512 channels): every key and shape of the original's default networks."""
    theirs = GOLDEN["shapes"][name]
    ours = {k: list(v.shape) for k, v in make().to_stylemapgan().items()}
    assert ours == theirs


def test_width_table():
    original = {4: 512, 8: 512, 16: 512, 32: 512, 64: 256, 128: 128, 256: 64, 512: 32, 1024: 16}
    for m in (1, 2, 4):
        assert {r: stylemapgan_channels(r, channel_multiplier=m) for r in original} == {
            r: c * m if r >= 64 else c for r, c in original.items()
        }
    assert stylemapgan_channels(64, channel_multiplier=1 / 32, low_res_channels=16) == 8
    with pytest.raises(ValueError, match="channel_multiplier"):
        stylemapgan_channels(64, channel_multiplier=0)


@pytest.mark.parametrize(
    ("size", "latent", "small"), [(8, 4, False), (32, 4, True), (64, 16, False)]
)
def test_generator_shapes(size, latent, small):
    G = Generator(size, style_dim=6, latent_spatial_size=latent, mapping_layers=1,
                  low_res_channels=8, small_generator=small)
    z = torch.randn(3, 6)
    s = G.style_map(z)
    assert s.shape == (3, 6, latent, latent)
    maps = G.style_maps(s)
    doublings = (size // latent).bit_length() - 1
    assert len(maps) == 2 + 2 * doublings == 2 + 2 * len(G.blocks)
    assert [m.shape[-1] for m in maps] == [latent * 2 ** (k // 2) for k in range(len(maps))]
    if small:
        assert {m.shape[1] for m in maps} == {6}
    img = G(z)
    assert img.shape == (3, 3, size, size)
    assert torch.equal(G.render(maps), img)


@pytest.mark.parametrize(("size", "latent"), [(16, 1), (16, 16), (64, 4)])
def test_encoder_shapes_and_inference_of_sizes(size, latent):
    E = Encoder(size, style_dim=5, latent_spatial_size=latent, low_res_channels=8,
                channel_multiplier=1 / 16)
    assert E(torch.randn(2, 3, size, size)).shape == (2, 5, latent, latent)
    state = E.to_stylemapgan()
    again = Encoder.from_stylemapgan(state, size=size, low_res_channels=8,
                                     channel_multiplier=1 / 16)
    assert again.latent_spatial_size == latent
    again = Encoder.from_stylemapgan(state, latent_spatial_size=latent, low_res_channels=8,
                                     channel_multiplier=1 / 16)
    assert again.size == size
