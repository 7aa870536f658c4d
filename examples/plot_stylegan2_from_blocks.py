r"""
StyleGAN2 built from the blocks, loading an NVlabs network pickle
=================================================================

:mod:`recipes.stylegan2` assembles StyleGAN2's generator and discriminator from
:mod:`ganblocks.nn` (:class:`~ganblocks.nn.MappingNetwork`,
:class:`~ganblocks.nn.ModulatedConv2d`, :class:`~ganblocks.nn.NoiseInjection`,
:class:`~ganblocks.nn.ToRGB`, ...). Its constructors take the arguments of NVlabs'
``networks_stylegan2.py``, and :func:`~recipes.stylegan2.load_nvlabs_pickle` reads a
``network-snapshot-*.pkl`` into them without running the code the pickle carries.

The weights are the project's golden test data: small networks of both architectures
(``skip`` and ``resnet``) created and run with the original NVlabs code, stored under
that code's key names together with its inputs and outputs. This page packs them into a
pickle with the structure of a real snapshot
(:mod:`recipes.stylegan2.testing.nvlabs_pickle`: no NVlabs code involved), loads it, and
checks that the networks built from our blocks compute NVlabs' images.
"""

import pickletools
import pprint
import tempfile
from collections import Counter
from pathlib import Path

import matplotlib.pyplot as plt
import torch

import recipes
from recipes.stylegan2 import load_nvlabs_pickle
from recipes.stylegan2.nvlabs_pickle import read_nvlabs_pickle
from recipes.stylegan2.testing.nvlabs_pickle import (
    dumps,
    network_snapshot,
    source_was_executed,
)

root = Path(recipes.__file__).resolve().parents[1]
golden = root / "tests" / "golden" / "baselines.pt"
cases = [c for c in torch.load(golden, weights_only=False)["cases"]
         if c["kind"] == "nvlabs_stylegan2"]
print([(c["name"], c["generator_kwargs"]["architecture"]) for c in cases])

# %%
# A network snapshot as NVlabs' training loop writes it
# -----------------------------------------------------
# The pickle is a dict of networks, each stored by ``torch_utils.persistence`` as
# ``_reconstruct_persistent_obj({'module_src': <source>, 'class_name': ..., 'state':
# ...})``. The global references it makes are those of a real snapshot; the
# ``module_src`` written here is a canary that would flag itself if anything ran it.

folder = Path(tempfile.mkdtemp())
files = {}
for case in cases:
    snapshot = network_snapshot(case["G_state"], case["D_state"],
                                generator_kwargs=case["generator_kwargs"],
                                discriminator_kwargs=case["discriminator_kwargs"],
                                form="ada")  # stylegan2-ada-pytorch's arguments
    files[case["name"]] = folder / f"network-snapshot-{case['name']}.pkl"
    files[case["name"]].write_bytes(dumps(snapshot))


def pickled_globals(data: bytes) -> list:
    """``module.name`` of every global a pickle references (what loading imports)."""
    found, memo, top = set(), {}, [None, None]  # top: the last two values pushed
    for op, arg, _ in pickletools.genops(data):
        if op.name == "STACK_GLOBAL":  # pops module and name
            found.add(f"{top[0]}.{top[1]}")
        elif op.name == "GLOBAL":
            found.add(arg.replace(" ", "."))
        elif op.name in ("MEMOIZE", "BINPUT", "LONG_BINPUT", "PUT"):
            memo[len(memo) if arg is None else arg] = top[1]
            continue
        value = memo.get(arg) if op.name.endswith("GET") else arg
        top = [top[1], value if isinstance(value, str) else None]
    return sorted(found)


data = files[cases[0]["name"]].read_bytes()
print(f"{len(data) / 1024:.0f} KiB; globals:", *pickled_globals(data), sep="\n  ")
assert "torch_utils.persistence._reconstruct_persistent_obj" in pickled_globals(data)

# %%
# :func:`~recipes.stylegan2.nvlabs_pickle.read_nvlabs_pickle` shows the records as data:
# class names, constructor arguments, tensors, and the stored source as text.

tree = read_nvlabs_pickle(files[cases[0]["name"]])
print(sorted(tree))
record = tree["G_ema"]
print(record.class_name)
pprint.pprint(record.init_kwargs, width=86, sort_dicts=False)
for name, sub in list(record.walk())[:6]:
    params = list(sub.state["_parameters"])
    print(f"  {name.rstrip('.') or '<root>':26s} {sub.class_name:20s} {params}")
print("module_src:", repr(record.module_src))

# %%
# Load it into the networks built from the blocks
# ------------------------------------------------

nets = load_nvlabs_pickle(files[cases[0]["name"]])
print({name: type(net).__qualname__ for name, net in nets.items()})
assert not source_was_executed()  # the stored source was read as text, never run
blocks = Counter(type(m).__name__ for m in nets["G_ema"].modules()
                 if type(m).__module__.startswith("ganblocks"))
print("ganblocks modules in G_ema:")
pprint.pprint(dict(blocks), width=86, sort_dicts=False)
assert blocks["ModulatedConv2d"] > 0 and blocks["MappingNetwork"] == 1

# %%
# The same images as the original code
# ------------------------------------
# ``G_ema`` with the stored truncation and constant noise, and ``D`` scoring the
# original images, against the outputs NVlabs' code computed from the same weights and
# latents. Relative errors are float32 rounding.


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a - b).norm() / b.norm()).item()


fig, axes = plt.subplots(3 * len(cases), 4, figsize=(7, 5.4 * len(cases)),
                         layout="constrained")
for i, case in enumerate(cases):
    nets = load_nvlabs_pickle(files[case["name"]])
    c = case["c"] if case["c"].numel() else None
    cutoff = None if case["truncation_cutoff"] < 0 else case["truncation_cutoff"]
    with torch.no_grad():
        img = nets["G_ema"](case["z"], c, case["truncation_psi"], cutoff,
                            noise_mode="const")
        logits = nets["D"](case["img_noise_const"], c)
    reference = case["img_noise_const"]  # what NVlabs' code computed
    errors = {"images": rel_err(img, reference),
              "D logits": rel_err(logits, case["D_logits"])}
    print(case["name"], {k: f"{v:.1e}" for k, v in errors.items()})
    assert max(errors.values()) < 1e-5
    diff = (img - reference).abs().amax(dim=1)  # [4, R, R], largest over RGB
    arch = case["generator_kwargs"]["architecture"]
    rows = [f"ours ({case['name']}, {arch})", "NVlabs", "|ours − NVlabs|"]
    for k in range(4):
        axes[3 * i, k].imshow(((img[k].permute(1, 2, 0) + 1) / 2).clamp(0, 1))
        axes[3 * i + 1, k].imshow(((reference[k].permute(1, 2, 0) + 1) / 2).clamp(0, 1))
        shown = axes[3 * i + 2, k].imshow(diff[k], cmap="magma", vmin=0,
                                          vmax=diff.max().item())
    for r, title in enumerate(rows):
        axes[3 * i + r, 0].set_title(title, fontsize=9, loc="left")
    fig.colorbar(shown, ax=axes[3 * i + 2, :], fraction=0.03, format="%.0e")
for ax in axes.flat:
    ax.axis("off")
fig.suptitle("Loaded from network pickles: random networks (weights perturbed away\n"
             "from their initialisation), 4 latents each, constant noise", fontsize=10)

# %%
# And back to the original key names
# ----------------------------------
# ``to_nvlabs`` writes a state dict with NVlabs' keys, which the original code (or this
# one) loads.

state = nets["G_ema"].to_nvlabs()
assert set(state) == set(cases[-1]["G_state"])
print(f"{len(state)} tensors, e.g. {sorted(state)[:3]}")
