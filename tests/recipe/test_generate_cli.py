"""``oco-gan generate`` end to end on a tiny trained run (in-process CLI calls)."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from oco_tiny import tiny_config
from PIL import Image

from recipes.oco_gan.cli import main
from recipes.oco_gan.config import OCOGANConfig
from recipes.oco_gan.model import Generator
from recipes.oco_gan.train import OCOGANTrainer
from recipes.oco_gan.visualize import to_uint8

RES = 16  # the tiny config's resolution
SCALE = 128 // RES  # grids of small images are enlarged (nearest) by this factor


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A 2-step tiny run: ``(run_dir, checkpoint dict)``."""
    run_dir = tmp_path_factory.mktemp("gen_run")
    OCOGANTrainer(tiny_config(), run_dir, progress=False).fit(steps=2)
    return run_dir, torch.load(run_dir / "checkpoint.pt", weights_only=False)


def _reference_generator(state: dict, *, ema: bool = True) -> Generator:
    """The generator rebuilt by hand from the checkpoint (independently of recipes' loader)."""
    cfg = OCOGANConfig.from_dict(state["config"])
    G = Generator(cfg.model)
    if ema:
        weights = {k.removeprefix("shadow."): v for k, v in state["G_ema"].items()
                   if k.startswith("shadow.")}
    else:
        weights = state["G"]
    G.load_state_dict(weights)
    return G.eval()


def _png(path) -> np.ndarray:
    with Image.open(path) as img:
        assert img.mode == "RGB"
        return np.asarray(img)


def _as_png_pixels(images: torch.Tensor) -> np.ndarray:
    return to_uint8(images).permute(0, 2, 3, 1).numpy()


def _generate(run, out, *args: str) -> int:
    return main(["generate", "--ckpt", str(run[0] / "checkpoint.pt"), "--out", str(out),
                 "--device", "cpu", *args])


def _write_label(path, array) -> None:
    Image.fromarray(np.asarray(array, dtype=np.uint8)).save(path)


def test_unconditional_samples_are_the_ema_generator_on_seeded_latents(run, tmp_path):
    assert _generate(run, tmp_path, "--num", "5", "--seed", "3") == 0
    files = sorted((tmp_path / "uncond").glob("*.png"))
    assert [f.name for f in files] == [f"{i:06d}.png" for i in range(5)]
    pixels = np.stack([_png(f) for f in files])
    assert pixels.shape == (5, RES, RES, 3)
    # Reference: the documented protocol (z = randn(num, z_dim) from a generator seeded with
    # --seed) through the EMA weights, decoded as 8-bit images.
    state = run[1]
    z = torch.randn(5, tiny_config().model.z_dim, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        expected = _as_png_pixels(_reference_generator(state)(z=z))
        raw = _as_png_pixels(_reference_generator(state, ema=False)(z=z))
    np.testing.assert_allclose(pixels.astype(int), expected.astype(int), atol=1)
    assert np.abs(raw.astype(int) - expected.astype(int)).max() > 1  # the EMA weights matter
    # The grid: 5 images in a 3 x 2 layout (one blank cell), enlarged SCALE times.
    grid = _png(tmp_path / "uncond_grid.png")
    assert grid.shape == (2 * RES * SCALE, 3 * RES * SCALE, 3)
    np.testing.assert_array_equal(grid[: RES * SCALE: SCALE, RES * SCALE: 2 * RES * SCALE: SCALE],
                                  pixels[1])
    assert not grid[RES * SCALE:, 2 * RES * SCALE:].any()  # the blank cell
    info = json.loads((tmp_path / "generate.json").read_text())
    assert info["seed"] == 3 and info["step"] == 2 and info["generator"] == "ema"


def test_same_seed_same_files_other_seed_other_images(run, tmp_path):
    for name, seed in (("a", "7"), ("b", "7"), ("c", "8")):
        assert _generate(run, tmp_path / name, "--num", "3", "--seed", seed, "--batch", "2") == 0
    names = [f"{i:06d}.png" for i in range(3)]
    for n in names:
        assert (tmp_path / "a" / "uncond" / n).read_bytes() == \
            (tmp_path / "b" / "uncond" / n).read_bytes()
        assert not np.array_equal(_png(tmp_path / "a" / "uncond" / n),
                                  _png(tmp_path / "c" / "uncond" / n))


@pytest.mark.parametrize("init_seed", [0, 21, 23])
def test_batch_size_changes_unconditional_samples_by_rounding_only(init_seed):
    # Randomly initialised generators (larger outputs than a 2-step run, so rounding shows):
    # each sample is G on its own seeded latent whatever the batch split; the grouped modulated
    # convolutions round differently per batch size (measured up to ~1.1e-5 on 40 inits).
    from recipes.oco_gan.generate import generate_unconditional

    torch.manual_seed(init_seed)
    G = Generator(tiny_config().model).eval()
    z = torch.randn(5, G.z_dim, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        single = torch.cat([G(z=z[i: i + 1]) for i in range(5)]).clamp(-1, 1)
    for batch in (1, 2, 3, 5, 8):
        out = generate_unconditional(G, 5, seed=4, batch=batch)
        torch.testing.assert_close(out, single, atol=1e-4, rtol=0)
    assert (generate_unconditional(G, 5, seed=5) - single).abs().max() > 0.1  # seed matters


def test_truncation_zero_gives_the_mean_image(run, tmp_path):
    # ψ = 0 moves every base map onto the mean base map: all samples are the same image.
    assert _generate(run, tmp_path, "--num", "3", "--truncation", "0") == 0
    pixels = [_png(f) for f in sorted((tmp_path / "uncond").glob("*.png"))]
    assert all(np.array_equal(pixels[0], p) for p in pixels[1:])
    assert _generate(run, tmp_path / "free", "--num", "3") == 0
    free = [_png(f) for f in sorted((tmp_path / "free" / "uncond").glob("*.png"))]
    assert not np.array_equal(free[0], free[1])


def test_conditional_samples_from_a_folder_of_labels(run, tmp_path):
    labels = tmp_path / "labels"
    labels.mkdir()
    gen = np.random.default_rng(0)
    first = gen.integers(0, 11, (RES, RES))
    _write_label(labels / "a.png", first)
    # Twice the size, same aspect ratio: resized with nearest-neighbour sampling.
    second = np.kron(gen.integers(0, 11, (RES, RES)), np.ones((2, 2), dtype=np.int64))
    _write_label(labels / "b.png", second)
    (labels / "notes.txt").write_text("not a label map")
    out = tmp_path / "out"
    assert _generate(run, out, "--num", "0", "--labels", str(labels), "--per-label", "3",
                     "--seed", "5") == 0
    files = sorted(p.name for p in (out / "cond").glob("*.png"))
    assert files == [f"{s}_{k:02d}.png" for s in "ab" for k in range(3)]
    assert not (out / "uncond").exists()
    # Reference: z_c = randn(labels, per_label, z_dim) from --seed, through the EMA generator.
    z = torch.randn(2, 3, tiny_config().model.z_dim, generator=torch.Generator().manual_seed(5))
    lab = torch.from_numpy(np.stack([first, second[::2, ::2]]))
    G = _reference_generator(run[1])
    with torch.no_grad():
        for i, stem in enumerate("ab"):
            expected = _as_png_pixels(G(label=lab[i].expand(3, -1, -1), z=z[i]))
            got = np.stack([_png(out / "cond" / f"{stem}_{k:02d}.png") for k in range(3)])
            np.testing.assert_allclose(got.astype(int), expected.astype(int), atol=1)
    # Per-label diversity, and a grid of rows "label | 3 samples".
    a0, a1 = _png(out / "cond" / "a_00.png"), _png(out / "cond" / "a_01.png")
    assert not np.array_equal(a0, a1)
    grid = _png(out / "cond_grid.png")
    assert grid.shape == (2 * RES * SCALE, 4 * RES * SCALE, 3)
    np.testing.assert_array_equal(grid[:RES * SCALE:SCALE, RES * SCALE:2 * RES * SCALE:SCALE], a0)


def test_interpolation_row_joins_the_two_seeded_latents(run, tmp_path):
    labels = tmp_path / "one.png"
    _write_label(labels, np.full((RES, RES), 5))
    assert _generate(run, tmp_path / "interp", "--num", "0", "--interpolate", "4", "--labels",
                     str(labels), "--per-label", "1", "--seed", "11") == 0
    frames = tmp_path / "interp" / "interpolation"
    row = [_png(frames / f"uncond_{t:03d}.png") for t in range(4)]
    cond_row = [_png(frames / f"one_{t:03d}.png") for t in range(4)]
    # The ends of the unconditional row are the two latents that --num 2 draws from that seed.
    assert _generate(run, tmp_path / "ends", "--num", "2", "--seed", "11") == 0
    ends = [_png(tmp_path / "ends" / "uncond" / f"{i:06d}.png") for i in range(2)]
    np.testing.assert_allclose(row[0].astype(int), ends[0].astype(int), atol=1)
    np.testing.assert_allclose(row[-1].astype(int), ends[1].astype(int), atol=1)
    assert not np.array_equal(row[1], row[0]) and not np.array_equal(row[1], row[-1])
    assert not np.array_equal(cond_row[0], cond_row[-1])
    grid = _png(tmp_path / "interp" / "interpolation.png")
    assert grid.shape == (2 * RES * SCALE, 4 * RES * SCALE, 3)


@pytest.mark.parametrize(
    "array, needle",
    [(np.full((RES, RES), 11), "class ids in [11, 11]"),  # N = 11: ids must be < 11
     (np.zeros((RES, 2 * RES)), "different aspect ratio")],
)
def test_bad_label_png_is_a_clear_error_naming_the_file(run, tmp_path, capsys, array, needle):
    bad = tmp_path / "bad_map.png"
    _write_label(bad, array)
    out = tmp_path / "out"
    assert _generate(run, out, "--labels", str(bad)) == 2
    err = capsys.readouterr().err
    assert "bad_map.png" in err and needle in err and "Traceback" not in err
    assert not out.exists()  # checked before anything is written


def test_missing_checkpoint_and_empty_request_are_clear_errors(run, tmp_path, capsys):
    assert main(["generate", "--ckpt", str(tmp_path / "nope.pt"), "--out", str(tmp_path)]) == 2
    assert "nope.pt" in capsys.readouterr().err
    assert _generate(run, tmp_path / "o", "--num", "0") == 2
    assert "nothing to generate" in capsys.readouterr().err


def test_help_does_not_import_torch():
    code = ("import sys; from recipes.oco_gan.cli import build_parser; build_parser(); "
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "False"
