"""Write pickles with the structure of NVlabs' ``network-snapshot-*.pkl``, for tests and examples.

No NVlabs code is needed or used. An NVlabs snapshot is a pickled dict (``G``, ``D``, ``G_ema``,
``augment_pipe``, ``training_set_kwargs``, ...) whose networks ``torch_utils.persistence`` reduces
to calls ``_reconstruct_persistent_obj(meta)``, ``meta`` holding the defining module's source
(``module_src``), ``class_name`` and the instance ``state`` (its ``__dict__``: ``_parameters``,
``_buffers``, ``_modules`` nesting further records, ``_init_args``, ``_init_kwargs``, plain
attributes such as numpy scalars). :class:`PersistentStandIn` reduces to the same call: stand-in
modules registered under the names ``torch_utils.persistence`` and ``dnnlib.util`` while pickling
(:func:`dumps`) make :mod:`pickle` write the same global references, so the bytes have the
originals' opcode-level structure and :func:`~recipes.stylegan2.load_nvlabs_pickle` reads them as
it reads real snapshots.

The ``module_src`` written by default is a canary (:data:`CANARY_SOURCE`) that marks
:mod:`builtins` if anything ever executes it: :func:`source_was_executed` says whether that
happened. NVlabs' own loader, which executes ``module_src`` to find the classes, cannot load these
files.
"""

from __future__ import annotations

import builtins
import contextlib
import pickle
import sys
import types
from collections import OrderedDict
from typing import Any, Dict, Iterator, Mapping, Optional

import numpy as np
import torch

__all__ = [
    "CANARY_SOURCE",
    "EasyDict",
    "PersistentStandIn",
    "ada_kwargs",
    "dumps",
    "network_record",
    "network_snapshot",
    "source_was_executed",
]

_CANARY = "_ganblocks_nvlabs_source_was_executed"
#: The default ``module_src``, Python that sets a flag in :mod:`builtins` when run.
CANARY_SOURCE = f"import builtins\nbuiltins.{_CANARY} = True\n"
#: Tensors NVlabs' modules register as buffers (all other tensors are parameters).
_BUFFERS = ("resample_filter", "noise_const", "w_avg")


def _reconstruct_persistent_obj(meta: Any) -> Any:  # only its name is pickled
    raise AssertionError("the stand-in reconstructor is never called")


_reconstruct_persistent_obj.__module__ = "torch_utils.persistence"


class EasyDict(dict):
    """Pickles as ``dnnlib.util.EasyDict`` (a dict subclass) while :func:`dumps` runs."""


EasyDict.__module__ = "dnnlib.util"


class PersistentStandIn:
    """Pickles exactly as an NVlabs persistent object: ``_reconstruct_persistent_obj(meta)``.

    Args:
        class_name: The NVlabs class name (``'Generator'``, ``'SynthesisLayer'``, ...).
        state: The instance ``__dict__`` to store.
        module_src: Source text stored with the record (never meant to be run).

    Attributes:
        meta: ``{type: 'class', version, module_src, class_name, state}``.
    """

    def __init__(
        self, class_name: str, state: Dict[str, Any], *, module_src: str = CANARY_SOURCE
    ) -> None:
        self.meta: Dict[str, Any] = dict(
            type="class", version=6, module_src=module_src, class_name=class_name, state=state
        )

    def __reduce__(self) -> Any:
        return (_reconstruct_persistent_obj, (self.meta,), None)


@contextlib.contextmanager
def _stand_in_modules() -> Iterator[None]:
    """Register the stand-in modules under NVlabs' names while pickling."""
    modules = {name: types.ModuleType(name) for name in
               ("torch_utils", "torch_utils.persistence", "dnnlib", "dnnlib.util")}
    modules["torch_utils.persistence"]._reconstruct_persistent_obj = _reconstruct_persistent_obj
    modules["dnnlib.util"].EasyDict = EasyDict
    saved = {name: sys.modules.get(name) for name in modules}
    sys.modules.update(modules)
    try:
        yield
    finally:
        for name, module in saved.items():
            if module is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = module


def _class_name(name: str, kind: str) -> str:
    """NVlabs' class of the submodule called ``name`` in a ``G`` or ``D`` tree."""
    if kind == "G":
        if name.startswith("b"):
            return "SynthesisBlock"
        if name in ("conv0", "conv1"):
            return "SynthesisLayer"
        if name == "skip":
            return "Conv2dLayer"
        table = {"mapping": "MappingNetwork", "synthesis": "SynthesisNetwork",
                 "torgb": "ToRGBLayer"}
    else:
        if name == "b4":
            return "DiscriminatorEpilogue"
        if name.startswith("b"):
            return "DiscriminatorBlock"
        if name in ("fromrgb", "conv0", "conv1", "conv", "skip"):
            return "Conv2dLayer"
        table = {"mapping": "MappingNetwork"}
    return table.get(name, "FullyConnectedLayer")


def _module_state(init_kwargs: Optional[Mapping[str, Any]] = None) -> Dict[str, Any]:
    return {
        "training": False,
        "_parameters": OrderedDict(),
        "_buffers": OrderedDict(),
        "_non_persistent_buffers_set": set(),
        "_modules": OrderedDict(),
        "_init_args": (),
        "_init_kwargs": dict(init_kwargs or {}),
        # real pickles hold numpy scalars as plain attributes (e.g. weight_gain)
        "weight_gain": np.float64(0.125),
        "img_resolution_log2": 4,
    }


def network_record(
    state_dict: Mapping[str, torch.Tensor],
    *,
    kind: str,
    init_kwargs: Mapping[str, Any],
    module_src: str = CANARY_SOURCE,
) -> PersistentStandIn:
    """A tree of records holding ``state_dict`` the way NVlabs' modules hold it.

    Args:
        state_dict: Tensors under NVlabs' key names (e.g. ``Generator.to_nvlabs()``).
        kind: ``'G'`` (a ``Generator``) or ``'D'`` (a ``Discriminator``).
        init_kwargs: The network's constructor keyword arguments (NVlabs' names).
        module_src: Source text stored in every record.

    Returns:
        The root record (``class_name`` ``'Generator'`` or ``'Discriminator'``).
    """
    if kind not in ("G", "D"):
        raise ValueError(f"kind must be 'G' or 'D', got {kind!r}")
    root = PersistentStandIn("Generator" if kind == "G" else "Discriminator",
                             _module_state(init_kwargs), module_src=module_src)
    records: Dict[str, PersistentStandIn] = {"": root}
    for key, value in state_dict.items():
        *path, leaf = key.split(".")
        parent = ""
        for name in path:
            child = f"{parent}.{name}" if parent else name
            if child not in records:
                records[child] = PersistentStandIn(_class_name(name, kind), _module_state(),
                                                   module_src=module_src)
                records[parent].meta["state"]["_modules"][name] = records[child]
            parent = child
        state = records[parent].meta["state"]
        if leaf in _BUFFERS:
            state["_buffers"][leaf] = value.detach().clone()
        else:
            state["_parameters"][leaf] = torch.nn.Parameter(value.detach().clone(),
                                                            requires_grad=False)
    if kind == "D" and "b4" in records:  # the parameter-free minibatch-std layer is a record too
        records["b4"].meta["state"]["_modules"]["mbstd"] = PersistentStandIn(
            "MinibatchStdLayer", _module_state(), module_src=module_src)
    return root


def ada_kwargs(generator_kwargs: Mapping[str, Any]) -> Dict[str, Any]:
    """stylegan2-ada-pytorch's form of ``Generator`` arguments: the synthesis options nested in
    ``synthesis_kwargs`` (StyleGAN3's repository passes them as keywords)."""
    top = ("z_dim", "c_dim", "w_dim", "img_resolution", "img_channels")
    out: Dict[str, Any] = {k: generator_kwargs[k] for k in top}
    out["mapping_kwargs"] = EasyDict(generator_kwargs.get("mapping_kwargs", {}))
    out["synthesis_kwargs"] = EasyDict(
        {k: v for k, v in generator_kwargs.items() if k not in (*top, "mapping_kwargs")}
    )
    return out


def network_snapshot(
    G_state: Mapping[str, torch.Tensor],
    D_state: Mapping[str, torch.Tensor],
    *,
    generator_kwargs: Mapping[str, Any],
    discriminator_kwargs: Mapping[str, Any],
    form: str = "ada",
    module_src: str = CANARY_SOURCE,
) -> Dict[str, Any]:
    """The dict an NVlabs training loop pickles as ``network-snapshot-*.pkl``.

    ``G`` and ``G_ema`` both hold ``G_state``.

    Args:
        G_state: Generator tensors under NVlabs' key names.
        D_state: Discriminator tensors under NVlabs' key names.
        generator_kwargs: ``Generator`` arguments, StyleGAN3-repository form (synthesis options
            as keywords, e.g. :attr:`recipes.stylegan2.Generator.init_kwargs`).
        discriminator_kwargs: ``Discriminator`` arguments.
        form: ``'ada'`` (stylegan2-ada-pytorch's arguments) or ``'stylegan3'`` (the StyleGAN3
            repository's StyleGAN2 networks, ``training.networks_stylegan2``).
        module_src: Source text stored in every record.

    Returns:
        ``{'G', 'D', 'G_ema', 'augment_pipe', 'training_set_kwargs'}``; pickle it with
        :func:`dumps`.

    Example:
        >>> import io
        >>> from recipes.stylegan2 import Discriminator, Generator, load_nvlabs_pickle
        >>> G = Generator(8, 0, 8, 8, 3, mapping_kwargs={'num_layers': 2}, channel_base=64,
        ...               channel_max=16)
        >>> D = Discriminator(0, 8, 3, channel_base=64, channel_max=16)
        >>> data = dumps(network_snapshot(G.to_nvlabs(), D.to_nvlabs(),
        ...                               generator_kwargs=G.init_kwargs,
        ...                               discriminator_kwargs=D.init_kwargs))
        >>> nets = load_nvlabs_pickle(io.BytesIO(data))
        >>> z = torch.randn(2, 8)
        >>> torch.equal(nets['G_ema'](z, None, noise_mode='const'), G(z, None, noise_mode='const'))
        True
        >>> source_was_executed()
        False
    """
    if form not in ("ada", "stylegan3"):
        raise ValueError(f"form must be 'ada' or 'stylegan3', got {form!r}")
    g_kwargs = dict(generator_kwargs)
    if form == "ada":
        g_kwargs = ada_kwargs(g_kwargs)
    else:  # the StyleGAN3 repository's StyleGAN2 config adds this option
        g_kwargs.setdefault("fused_modconv_default", "inference_only")
        g_kwargs["mapping_kwargs"] = EasyDict(g_kwargs.get("mapping_kwargs", {}))
    d_kwargs = dict(discriminator_kwargs)
    d_kwargs["block_kwargs"] = EasyDict(d_kwargs.get("block_kwargs") or {"freeze_layers": 0})
    d_kwargs["epilogue_kwargs"] = EasyDict(d_kwargs.get("epilogue_kwargs") or {})

    def generator() -> PersistentStandIn:
        return network_record(G_state, kind="G", init_kwargs=g_kwargs, module_src=module_src)

    return {
        "G": generator(),
        "D": network_record(D_state, kind="D", init_kwargs=d_kwargs, module_src=module_src),
        "G_ema": generator(),
        "augment_pipe": None,
        "training_set_kwargs": {"class_name": "training.dataset.ImageFolderDataset",
                                "xflip": False},
    }


def dumps(data: Any, *, protocol: int = 4) -> bytes:
    """Pickle ``data`` with :class:`PersistentStandIn` and :class:`EasyDict` written under
    NVlabs' module names (``torch_utils.persistence``, ``dnnlib.util``)."""
    with _stand_in_modules():
        return pickle.dumps(data, protocol=protocol)


def source_was_executed() -> bool:
    """Whether anything ever ran :data:`CANARY_SOURCE` in this process."""
    return bool(getattr(builtins, _CANARY, False))
