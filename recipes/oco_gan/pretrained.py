"""A trained generator of the ``demo`` preset, shipped with the recipe.

``oco-gan demo`` trains a fresh model for a few minutes; a few minutes on a CPU teach the
conditional branch to follow its label maps but leave the unconditional branch at blobs. So that
a first run also shows what the model learns with more time, the recipe ships the EMA generator
of a longer ``demo`` run (float16, ~2.5 MB), and ``oco-gan demo`` writes a sample grid from it
before it starts training (``samples/pretrained.png``).

The file is made by a documented command, which anyone can rerun to check or replace it
(3 000 iterations: about 20 minutes on 2 quiet CPU cores, longer on a shared machine)::

    oco-gan train --preset demo --steps 3000 --out runs/demo-pretrained loss.r1_gamma=0.0128
    python -m recipes.oco_gan.pretrained runs/demo-pretrained/checkpoint.pt

The second command writes :data:`DEMO_GENERATOR` (``--out FILE`` writes elsewhere).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, Dict, Optional, Sequence, Union

import torch

__all__ = ["DEMO_GENERATOR", "GENERATOR_FORMAT", "export_generator", "load_demo_generator",
           "main"]

#: The shipped generator of the ``demo`` preset.
DEMO_GENERATOR = Path(__file__).resolve().parent / "assets" / "demo_generator.pt"
#: ``format`` entry of a file written by :func:`export_generator`.
GENERATOR_FORMAT = "oco-gan-generator"

PathLike = Union[str, Path]


def export_generator(checkpoint: PathLike, out: PathLike, *, half: bool = True) -> Path:
    """Write the EMA generator of an ``oco-gan train`` checkpoint to a small file.

    The file holds the run's config, its step and images seen, and ``G_ema`` (the EMA weights as
    ``shadow.*`` entries, as in a checkpoint), so :func:`~recipes.oco_gan.generate.load_generator`
    and ``oco-gan generate --ckpt FILE`` read it like a checkpoint (float32 on load). It is
    written atomically with a checksum (:func:`ganblocks.train.atomic_save`).

    Args:
        checkpoint: A ``checkpoint.pt`` (or ``best.pt`` / ``best_cfid.pt``) of ``oco-gan train``.
        out: The file to write.
        half: Store the weights as float16 (half the size; the generator's outputs change by
            about 1e-3).

    Returns:
        ``out`` as a :class:`~pathlib.Path`.

    Raises:
        FileNotFoundError: ``checkpoint`` does not exist.
        ValueError: ``checkpoint`` holds no EMA generator.

    Example:
        >>> import os, tempfile
        >>> from recipes.oco_gan.config import apply_overrides, get_preset
        >>> from recipes.oco_gan.generate import load_generator
        >>> from recipes.oco_gan.model import Generator
        >>> from ganblocks.train import ExponentialMovingAverage, atomic_save
        >>> cfg = apply_overrides(get_preset("demo"), ["model.channel_multiplier=0.0625"])
        >>> d = tempfile.mkdtemp()
        >>> ema = ExponentialMovingAverage(Generator(cfg.model), decay=0.9)
        >>> ckpt = atomic_save({"config": cfg.to_dict(), "G_ema": ema.state_dict(), "step": 5},
        ...                    os.path.join(d, "checkpoint.pt"))
        >>> small = export_generator(ckpt, os.path.join(d, "generator.pt"))
        >>> loaded = load_generator(small)
        >>> loaded.step, next(loaded.G.parameters()).dtype
        (5, torch.float32)
    """
    from ganblocks.train import atomic_save, load_checkpoint

    from .generate import ema_generator_state

    checkpoint = Path(checkpoint).expanduser()
    if not checkpoint.is_file():
        raise FileNotFoundError(f"checkpoint: no file at {checkpoint}")
    state = load_checkpoint(checkpoint)
    if not isinstance(state, dict) or state.get("G_ema") is None or "config" not in state:
        raise ValueError(f"checkpoint: {checkpoint} holds no EMA generator ('G_ema' and "
                         "'config' entries of an oco-gan train checkpoint)")
    weights = ema_generator_state(state["G_ema"], checkpoint)
    dtype = torch.float16 if half else torch.float32
    payload: Dict[str, Any] = {
        "format": GENERATOR_FORMAT,
        "config": state["config"],
        "step": int(state.get("step", 0)),
        "images_seen": int(state.get("images_seen", 0)),
        "G_ema": {f"shadow.{k}": (v.to(dtype) if v.is_floating_point() else v).clone()
                  for k, v in weights.items()},
    }
    out = Path(out).expanduser()
    out.parent.mkdir(parents=True, exist_ok=True)
    return atomic_save(payload, out)


def load_demo_generator(model_config: Optional[Any] = None, *,
                        path: Optional[PathLike] = None) -> Optional[Any]:
    """The shipped ``demo`` generator, or ``None`` when there is none to use.

    Args:
        model_config: A :class:`~recipes.oco_gan.config.ModelConfig` the generator must match
            (``None``: any); a run with other model settings gets ``None``.
        path: The file (``None``: :data:`DEMO_GENERATOR`).

    Returns:
        A :class:`~recipes.oco_gan.generate.LoadedGenerator` (float32, eval mode) or ``None``
        when the file is missing or its model differs from ``model_config``.

    Example:
        >>> G = load_demo_generator()
        >>> G is None or G.config.preset == "demo"
        True
    """
    from .generate import load_generator

    path = Path(DEMO_GENERATOR if path is None else path)
    if not path.is_file():
        return None
    loaded = load_generator(path)
    if model_config is not None and loaded.config.model != model_config:
        return None
    return loaded


def main(argv: Optional[Sequence[str]] = None) -> int:
    """``python -m recipes.oco_gan.pretrained CHECKPOINT [--out FILE] [--float32]``."""
    p = argparse.ArgumentParser(prog="python -m recipes.oco_gan.pretrained",
                                description="Export the EMA generator of an oco-gan train "
                                            "checkpoint (default: the shipped demo generator).")
    p.add_argument("checkpoint", help="checkpoint.pt of an oco-gan train run")
    p.add_argument("--out", default=str(DEMO_GENERATOR),
                   help=f"file to write (default {DEMO_GENERATOR})")
    p.add_argument("--float32", action="store_true", help="keep float32 weights")
    args = p.parse_args(argv)
    out = export_generator(args.checkpoint, args.out, half=not args.float32)
    loaded = load_demo_generator(path=out)
    size = out.stat().st_size / 2**20
    print(f"wrote {out} ({size:.1f} MiB): preset {loaded.config.preset!r}, step {loaded.step}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
