"""Load NVlabs StyleGAN2 network pickles (``network-snapshot-*.pkl``) without running their code.

Those pickles are written with NVlabs' ``torch_utils.persistence``: every network module is stored
as a call ``torch_utils.persistence._reconstruct_persistent_obj(meta)`` where ``meta`` is a dict
``{type: 'class', version, module_src, class_name, state}``: the *source code* of the module that
defined the class, the class name, and the instance's ``__dict__`` (``_parameters``, ``_buffers``,
``_modules`` (nested records of the same kind), ``_init_args``, ``_init_kwargs``, ...). The original
loader executes ``module_src``; :func:`load_nvlabs_pickle` never does. Its unpickler resolves a
short list of globals to safe stand-ins (tensor/storage rebuilders, ``OrderedDict``, ``EasyDict`` as
a plain dict, numpy scalars decoded from their bytes) and rejects every other global; each record
becomes an inert :class:`PersistentRecord`, from which the constructor arguments and the state dict
are read and our own modules are built (:meth:`~recipes.stylegan2.Generator.from_nvlabs`).
"""

from __future__ import annotations

import io
import pickle
import struct
from collections import OrderedDict
from pathlib import Path
from typing import Any, BinaryIO, Callable, Dict, Iterator, Tuple, Union

import torch
from torch import nn

from .networks import Discriminator, Generator

__all__ = ["PersistentRecord", "UnsupportedPickleError", "load_nvlabs_pickle", "read_nvlabs_pickle"]


class UnsupportedPickleError(ValueError):
    """The pickle is valid but holds networks this recipe does not build (e.g. StyleGAN3)."""


class PersistentRecord:
    """An NVlabs persistent object as data: ``class_name``, ``state`` (its ``__dict__``), ``meta``.

    The embedded module source is kept as text (``module_src``) and never executed.
    """

    def __init__(self, meta: Dict[str, Any]) -> None:
        if not isinstance(meta, dict) or meta.get("type") != "class":
            raise pickle.UnpicklingError(
                "file: a persistent-object record without type 'class' (not an NVlabs pickle?)"
            )
        self.class_name = str(meta.get("class_name"))
        self.module_src = str(meta.get("module_src", ""))
        self.version = meta.get("version")
        state = meta.get("state") or {}
        if not isinstance(state, dict):
            raise pickle.UnpicklingError(f"file: the state of {self.class_name!r} is not a dict")
        self.state: Dict[str, Any] = state

    @property
    def init_kwargs(self) -> Dict[str, Any]:
        """Constructor keyword arguments, with nested ``EasyDict`` turned into plain dicts."""
        return _plain(self.state.get("_init_kwargs", {}))

    @property
    def init_args(self) -> Tuple[Any, ...]:
        return tuple(_plain(self.state.get("_init_args", ())))

    def children(self) -> Dict[str, Any]:
        return dict(self.state.get("_modules") or {})

    def walk(self, prefix: str = "") -> Iterator[Tuple[str, PersistentRecord]]:
        """``(dotted name, record)`` for this record and every nested one."""
        yield prefix, self
        for name, child in self.children().items():
            if isinstance(child, PersistentRecord):
                yield from child.walk(f"{prefix}{name}.")

    def state_dict(self) -> Dict[str, torch.Tensor]:
        """Parameters and persistent buffers of the whole tree, keyed like ``nn.Module``'s."""
        out: Dict[str, torch.Tensor] = {}
        for prefix, record in self.walk():
            skip = set(record.state.get("_non_persistent_buffers_set") or ())
            for group in ("_parameters", "_buffers"):
                for name, value in (record.state.get(group) or {}).items():
                    if value is None or (group == "_buffers" and name in skip):
                        continue
                    if not isinstance(value, torch.Tensor):
                        raise pickle.UnpicklingError(
                            f"file: {prefix}{name} of {record.class_name!r} is not a tensor"
                        )
                    out[prefix + name] = value.detach()
        return out

    def __repr__(self) -> str:
        return f"PersistentRecord({self.class_name!r})"


class _EasyDict(dict):
    """Stand-in for ``dnnlib.util.EasyDict``: a plain dict (attribute access is not needed)."""

    def __setstate__(self, state: Any) -> None:
        if state:
            raise pickle.UnpicklingError("file: an EasyDict with unexpected attribute state")


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, tuple):
        return tuple(_plain(v) for v in value)
    return value


_NUMPY_CODES = {
    "f8": "d",
    "f4": "f",
    "f2": "e",
    "i8": "q",
    "i4": "i",
    "i2": "h",
    "i1": "b",
    "u8": "Q",
    "u4": "I",
    "u2": "H",
    "u1": "B",
    "b1": "?",
}


class _NumpyDType:
    """Stand-in for ``numpy.dtype`` holding only the type code and byte order."""

    def __init__(self, code: str, align: bool = False, copy: bool = True) -> None:
        if code not in _NUMPY_CODES:
            raise pickle.UnpicklingError(f"file: numpy dtype {code!r} is not supported")
        self.code, self.byteorder = code, "<"

    def __setstate__(self, state: Any) -> None:
        if isinstance(state, tuple) and len(state) > 1 and state[1] in ("<", ">", "|", "="):
            self.byteorder = "<" if state[1] in ("|", "=") else state[1]


def _numpy_scalar(dtype: Any, data: bytes = b"") -> Union[int, float, bool]:
    """Decode a pickled numpy scalar into the equivalent Python number."""
    if not isinstance(dtype, _NumpyDType) or not isinstance(data, bytes):
        raise pickle.UnpicklingError("file: a numpy scalar of an unsupported kind")
    (value,) = struct.unpack(dtype.byteorder + _NUMPY_CODES[dtype.code], data)
    return value


def _load_storage(data: bytes) -> Any:
    # A storage pickled by torch is itself a (legacy-format) torch.save file: read it with torch's
    # own restricted loader, which admits tensors and storages only.
    return torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)


def _latin1_bytes(text: str, encoding: str = "latin1") -> bytes:
    # Protocol 2 writes bytes objects as _codecs.encode(text, 'latin1'); allow exactly that.
    if not isinstance(text, str) or encoding.replace("-", "") != "latin1":
        raise pickle.UnpicklingError("file: _codecs.encode is admitted for latin-1 bytes only")
    return text.encode("latin1")


def _reconstruct(meta: Dict[str, Any]) -> PersistentRecord:
    return PersistentRecord(meta)


_ALLOWED: Dict[Tuple[str, str], Callable[..., Any]] = {
    ("torch_utils.persistence", "_reconstruct_persistent_obj"): _reconstruct,
    ("torch._utils", "_rebuild_tensor_v2"): torch._utils._rebuild_tensor_v2,
    ("torch._utils", "_rebuild_tensor"): torch._utils._rebuild_tensor,
    ("torch._utils", "_rebuild_parameter"): torch._utils._rebuild_parameter,
    ("torch._utils", "_rebuild_parameter_with_state"): torch._utils._rebuild_parameter_with_state,
    ("torch._tensor", "_rebuild_from_type_v2"): torch._tensor._rebuild_from_type_v2,
    ("torch.nn.parameter", "Parameter"): nn.Parameter,
    ("torch", "Tensor"): torch.Tensor,
    ("torch.storage", "_load_from_bytes"): _load_storage,
    ("torch", "Size"): torch.Size,
    ("collections", "OrderedDict"): OrderedDict,
    ("builtins", "set"): set,
    ("builtins", "frozenset"): frozenset,
    ("__builtin__", "set"): set,  # protocol 2 writes Python 2 names
    ("__builtin__", "frozenset"): frozenset,
    ("_codecs", "encode"): _latin1_bytes,
    ("dnnlib.util", "EasyDict"): _EasyDict,
    ("dnnlib", "EasyDict"): _EasyDict,
    ("numpy", "dtype"): _NumpyDType,
    ("numpy.core.multiarray", "scalar"): _numpy_scalar,
    ("numpy._core.multiarray", "scalar"): _numpy_scalar,
}


class _RestrictedUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(
                f"file: refusing to load the global {module}.{name}; an NVlabs network pickle "
                "holds only tensors, plain containers and torch_utils.persistence records, and "
                "this loader never imports or runs anything else"
            ) from None

    def persistent_load(self, pid: Any) -> Any:
        raise pickle.UnpicklingError("file: persistent ids are not part of NVlabs network pickles")


def read_nvlabs_pickle(file: Union[str, Path, BinaryIO]) -> Any:
    """Unpickle ``file`` with the restricted unpickler: records stay :class:`PersistentRecord`."""
    if isinstance(file, (str, Path)):
        path = Path(file)
        if not path.is_file():
            raise FileNotFoundError(f"path: no such network pickle: {path}")
        with path.open("rb") as f:
            return _RestrictedUnpickler(f).load()
    return _RestrictedUnpickler(file).load()


def _check_supported(name: str, record: PersistentRecord) -> None:
    for _, sub in record.walk():
        if sub.class_name in ("SynthesisInput",) or "class SynthesisInput(" in sub.module_src:
            raise UnsupportedPickleError(
                f"file: {name} is a StyleGAN3 network (training.networks_stylegan3); StyleGAN3 "
                "pickles are not supported, only StyleGAN2 / StyleGAN2-ADA networks "
                "(training.networks, training.networks_stylegan2)"
            )
    expected = {"G": "Generator", "G_ema": "Generator", "D": "Discriminator"}[name]
    if record.class_name != expected:
        raise UnsupportedPickleError(
            f"file: {name} is a {record.class_name!r}, expected an NVlabs {expected!r}"
        )


def _build(name: str, record: PersistentRecord) -> nn.Module:
    _check_supported(name, record)
    if record.init_args:
        raise UnsupportedPickleError(
            f"file: {name} was built with positional arguments {record.init_args!r}; expected "
            "keyword arguments only (as NVlabs' training loop does)"
        )
    cls = Generator if record.class_name == "Generator" else Discriminator
    return cls.from_nvlabs(record.state_dict(), **record.init_kwargs).eval()


def load_nvlabs_pickle(file: Union[str, Path, BinaryIO]) -> Dict[str, nn.Module]:
    """Load the networks of a StyleGAN2(-ADA) ``network-snapshot-*.pkl`` as our modules.

    Reads pickles of stylegan2-ada-pytorch (``training.networks``) and of the StyleGAN3
    repository's StyleGAN2 networks (``training.networks_stylegan2``), without importing or running
    anything stored in the file (see the module docstring).

    Args:
        file: Path or binary file object of the pickle.

    Returns:
        ``{'G': Generator, 'D': Discriminator, 'G_ema': Generator}`` (those present), in eval mode.

    Raises:
        pickle.UnpicklingError: The file references anything but the admitted globals.
        UnsupportedPickleError: StyleGAN3 (``networks_stylegan3``) or other networks.
    """
    data = read_nvlabs_pickle(file)
    if not isinstance(data, dict):
        raise UnsupportedPickleError(
            f"file: expected a dict of networks (G, D, G_ema), got {type(data).__name__}"
        )
    nets = {k: v for k, v in data.items() if k in ("G", "D", "G_ema") and v is not None}
    if not nets:
        raise UnsupportedPickleError(
            f"file: no networks under 'G', 'D' or 'G_ema' (keys: {sorted(map(str, data))})"
        )
    for name, record in nets.items():
        if not isinstance(record, PersistentRecord):
            raise UnsupportedPickleError(f"file: {name} is not an NVlabs persistent network")
    return {name: _build(name, record) for name, record in nets.items()}
