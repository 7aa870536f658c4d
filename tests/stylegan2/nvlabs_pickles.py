"""Craft NVlabs-style network pickles for the tests, without any NVlabs code.

An NVlabs ``network-snapshot-*.pkl`` is a pickled dict whose networks are reduced by
``torch_utils.persistence`` to ``_reconstruct_persistent_obj(meta)`` calls, ``meta`` holding the
defining module's source (``module_src``), ``class_name`` and the instance ``state`` (its
``__dict__``: ``_parameters``, ``_buffers``, ``_modules`` nesting further records, ``_init_args``,
``_init_kwargs``, plain attributes). Here :class:`Record` reduces to the same call: a stand-in
module registered under the name ``torch_utils.persistence`` lets :mod:`pickle` write the same
global reference, so the bytes have the originals' opcode-level structure. ``module_src`` is a
canary that records in ``builtins`` if it is ever run.
"""

from __future__ import annotations

import builtins
import contextlib
import pickle
import sys
import types
from collections import OrderedDict
from typing import Any, Dict, Iterator, Mapping

import numpy as np
import torch

CANARY = "_ganblocks_nvlabs_source_was_executed"
SOURCE = f"import builtins\nbuiltins.{CANARY} = True\n"
BUFFERS = ("resample_filter", "noise_const", "w_avg")


def _reconstruct_persistent_obj(meta):  # never called: only its name is pickled
    raise AssertionError("the stand-in reconstructor must not be called")


_reconstruct_persistent_obj.__module__ = "torch_utils.persistence"


class EasyDict(dict):
    """Same pickled form as ``dnnlib.util.EasyDict`` (a dict subclass)."""


EasyDict.__module__ = "dnnlib.util"


class Record:
    """Pickles exactly as an NVlabs persistent object: ``_reconstruct_persistent_obj(meta)``."""

    def __init__(self, class_name: str, state: Dict[str, Any], module_src: str = SOURCE) -> None:
        self.meta = dict(
            type="class", version=6, module_src=module_src, class_name=class_name, state=state
        )

    def __reduce__(self):
        return (_reconstruct_persistent_obj, (self.meta,), None)


@contextlib.contextmanager
def stand_in_modules() -> Iterator[None]:
    """Register the stand-in modules under NVlabs' names while pickling."""
    names = {
        "torch_utils": types.ModuleType("torch_utils"),
        "torch_utils.persistence": types.ModuleType("torch_utils.persistence"),
        "dnnlib": types.ModuleType("dnnlib"),
        "dnnlib.util": types.ModuleType("dnnlib.util"),
    }
    names["torch_utils.persistence"]._reconstruct_persistent_obj = _reconstruct_persistent_obj
    names["dnnlib.util"].EasyDict = EasyDict
    saved = {k: sys.modules.get(k) for k in names}
    sys.modules.update(names)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                sys.modules.pop(k, None)
            else:
                sys.modules[k] = v


def _class_name(path: str, name: str, kind: str) -> str:
    if kind == "G":
        table = {
            "mapping": "MappingNetwork",
            "synthesis": "SynthesisNetwork",
            "torgb": "ToRGBLayer",
        }
        if name.startswith("b"):
            return "SynthesisBlock"
        if name in ("conv0", "conv1"):
            return "SynthesisLayer"
        if name == "skip":
            return "Conv2dLayer"
    else:
        table = {"mapping": "MappingNetwork", "b4": "DiscriminatorEpilogue"}
        if name.startswith("b"):
            return "DiscriminatorBlock"
        if name in ("fromrgb", "conv0", "conv1", "conv", "skip"):
            return "Conv2dLayer"
    return table.get(name, "FullyConnectedLayer")


def _node(class_name: str, kwargs: Mapping[str, Any] | None = None) -> Dict[str, Any]:
    return {
        "training": False,
        "_parameters": OrderedDict(),
        "_buffers": OrderedDict(),
        "_non_persistent_buffers_set": set(),
        "_modules": OrderedDict(),
        "_init_args": (),
        "_init_kwargs": dict(kwargs or {}),
        # numpy scalars appear as plain attributes in real pickles (e.g. weight_gain)
        "weight_gain": np.float64(0.125),
        "img_resolution_log2": int(np.log2(16)),
    }


def network_record(
    state_dict: Mapping[str, torch.Tensor],
    kind: str,
    class_name: str,
    init_kwargs: Mapping[str, Any],
    module_src: str = SOURCE,
) -> Record:
    """A record tree holding ``state_dict`` (original key names) like NVlabs' modules do."""
    root = Record(class_name, _node(class_name, init_kwargs), module_src)
    records: Dict[str, Record] = {"": root}
    for key, value in state_dict.items():
        *path, leaf = key.split(".")
        prefix = ""
        for name in path:
            child = f"{prefix}{name}"
            if child not in records:
                rec = Record(_class_name(prefix, name, kind), _node("x"), module_src)
                records[prefix.rstrip(".")].meta["state"]["_modules"][name] = rec
                records[child] = rec
            prefix = child + "."
        state = records[prefix.rstrip(".")].meta["state"]
        if leaf in BUFFERS:
            state["_buffers"][leaf] = value.clone()
        else:
            state["_parameters"][leaf] = torch.nn.Parameter(value.clone(), requires_grad=False)
    if kind == "D":  # the epilogue's parameter-free minibatch-std layer is a record too
        records["b4"].meta["state"]["_modules"]["mbstd"] = Record("MinibatchStdLayer", _node("x"))
    return root


def dumps(data: Any, protocol: int = 4) -> bytes:
    with stand_in_modules():
        return pickle.dumps(data, protocol=protocol)


def ada_kwargs(generator_kwargs: Mapping[str, Any]) -> Dict[str, Any]:
    """stylegan2-ada-pytorch's form: synthesis options nested in ``synthesis_kwargs``."""
    top = ("z_dim", "c_dim", "w_dim", "img_resolution", "img_channels")
    out: Dict[str, Any] = {k: generator_kwargs[k] for k in top}
    out["mapping_kwargs"] = EasyDict(generator_kwargs.get("mapping_kwargs", {}))
    out["synthesis_kwargs"] = EasyDict(
        {k: v for k, v in generator_kwargs.items() if k not in (*top, "mapping_kwargs")}
    )
    return out


def source_was_executed() -> bool:
    return bool(getattr(builtins, CANARY, False))
