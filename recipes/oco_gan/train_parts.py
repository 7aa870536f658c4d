"""Stage-wise training (the paper's Table 4 text: train one branch, freeze it, train the other):
named model parts, freezing them, and starting from another run's weights.

Parts (``train.freeze``): ``uncond_style``, ``cond_style``, ``synthesis`` (the generator's),
``d_encoder``, ``d_image_head``, ``d_seg_head`` (the discriminator's). A frozen part gets no
gradient and is not in its optimiser, so it keeps exactly the weights it started from
(``train.init_from``: another run's ``checkpoint.pt``, or its run directory).
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Dict, Iterator, List, Sequence, Tuple

from torch import nn

from ganblocks.train import load_checkpoint

__all__ = ["PARTS", "freeze_parts", "load_init_weights", "no_grad_params", "part_modules",
           "trainable_parameters"]

#: Part name → (network, its sub-modules).
PARTS: Dict[str, Tuple[str, Tuple[str, ...]]] = {
    "uncond_style": ("G", ("uncond_style",)),
    "cond_style": ("G", ("cond_style",)),
    "synthesis": ("G", ("synthesis",)),
    "d_encoder": ("D", ("encoder",)),
    "d_image_head": ("D", ("head_blocks", "head_conv", "head_fc", "head_out")),
    "d_seg_head": ("D", ("aspp", "decoder", "seg_out")),
}


def part_modules(G: nn.Module, D: nn.Module, name: str) -> List[nn.Module]:
    """The sub-modules of part ``name`` (see :data:`PARTS`)."""
    if name not in PARTS:
        raise ValueError(f"train.freeze: unknown part {name!r}; expected some of {sorted(PARTS)}")
    net, attrs = PARTS[name]
    owner = G if net == "G" else D
    return [getattr(owner, a) for a in attrs]


def freeze_parts(G: nn.Module, D: nn.Module, names: Sequence[str]) -> None:
    """Turn off the gradients of the parts ``names``."""
    for name in names:
        for module in part_modules(G, D, name):
            module.requires_grad_(False)


def trainable_parameters(module: nn.Module) -> List[nn.Parameter]:
    """The parameters of ``module`` that are not frozen."""
    return [p for p in module.parameters() if p.requires_grad]


@contextlib.contextmanager
def no_grad_params(module: nn.Module) -> Iterator[None]:
    """Turn off ``module``'s parameter gradients, then restore each one's flag (frozen parts stay
    frozen)."""
    flags = [p.requires_grad for p in module.parameters()]
    module.requires_grad_(False)
    try:
        yield
    finally:
        for p, flag in zip(module.parameters(), flags):
            p.requires_grad_(flag)


def load_init_weights(path: str | Path, G: nn.Module, D: nn.Module,
                      ema: nn.Module) -> Path:
    """Load ``G``, ``D`` and the EMA generator from another run (``train.init_from``): a
    ``checkpoint.pt`` or a run directory holding one. Optimiser state, step and data streams are
    not taken: the new run starts at step 0. Returns the checkpoint's path."""
    path = Path(path).expanduser()
    if path.is_dir():
        path = path / "checkpoint.pt"
    if not path.is_file():
        raise FileNotFoundError(f"train.init_from: no checkpoint at {path}")
    state = load_checkpoint(path, map_location="cpu")
    for key, module in (("G", G), ("D", D), ("G_ema", ema)):
        if state.get(key) is None:
            raise ValueError(f"train.init_from: {path} has no {key!r} weights")
        try:
            module.load_state_dict(state[key])
        except RuntimeError as exc:
            raise ValueError(f"train.init_from: {path}'s {key} does not fit this run's model "
                             f"config: {exc}") from exc
    return path
