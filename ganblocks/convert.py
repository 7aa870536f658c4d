r"""State-dict conversion between two key layouts, with tensor transforms and an exact inverse.

Porting a model onto :mod:`ganblocks` means loading checkpoints written by another code base: the
same tensors under other names, sometimes in another layout (a kernel flipped, two convolutions
stacked into one, a ``[out, in]`` matrix stored as a ``[out, in, 1, 1]`` kernel). A
:class:`StateDictConverter` describes such a conversion once, as an ordered list of :class:`Rule`,
and runs it both ways: :meth:`~StateDictConverter.convert` (their layout → ours) and
:meth:`~StateDictConverter.invert` (ours → theirs, for their code or their tools).

**Key templates.** A rule's keys are templates: literal text with placeholders ``{name}`` (one key
component, the regular expression ``[^.]+``) or ``{name:regex}`` (any regular expression, e.g.
``{i:\d+}``, ``{p:weight|bias}``, ``{prefix:(?:.+\.)?}`` for an optional leading path). The
source and the target templates of a rule use the same placeholders, and a placeholder's
expression is declared once (in any of its templates): the captured values fill the other side.
A template matches whole keys only.

**Rules.** Each key of the input is claimed by the first rule one of whose templates matches it.
A rule with several source templates (``many → one``) gathers, for each set of captured values,
the keys its templates name; several target templates (``one → many``) name the outputs. Its
``transform`` (a :class:`Transform` or a list of them, applied in order) maps the matched tensors
to the outputs: :class:`Flip`, :class:`Transpose`, :class:`Permute`, :class:`Rearrange`,
:class:`Reshape`, :class:`Scale`, :class:`Cast` and :class:`Function` act on each tensor;
:class:`Concat` and :class:`Stack` join all of them into one, :class:`Split` and :class:`Unbind`
cut one into as many as the rule has targets (at most one of these four per rule). Every
transform knows its inverse, so the converter inverts itself (:attr:`StateDictConverter.inverse`).

**Exactness.** Renames keep the very tensors. :func:`~StateDictConverter.invert` undoes
:func:`~StateDictConverter.convert` bit for bit, with two documented exceptions: :class:`Scale`
by a factor that is not a power of two (float rounding, one or two units in the last place) and a
narrowing :class:`Cast` (``float32 → float16``). Both directions check that the rules pair keys
one to one (a converted key is claimed, on the way back, by the rule that produced it).

**Strictness.** A key no rule claims is an error (``passthrough=True`` keeps it under its own
name instead), and so is a group of a many → one rule with a key missing. Given ``expected`` (the
state dict of the network to load into, or its shapes), the output is compared to it: unexpected
and missing keys (named in both layouts) and shape mismatches are reported together in one
:class:`StateDictMismatchError`.

Example:
    Another code base stores the scale and shift of a normalisation layer as two ``[C]`` vectors;
    ours stores one ``[2C]`` vector, and keeps its linear weights as ``[out, in, 1, 1]`` kernels:

    >>> import torch
    >>> converter = StateDictConverter([
    ...     Rule([r"norm{i:\d+}.gamma", "norm{i}.beta"], "blocks.{i}.norm.affine",
    ...          transform=Concat(dim=0)),
    ...     Rule(r"fc{i:\d+}.{p:weight|bias}", "blocks.{i}.proj.{p}"),
    ... ])
    >>> theirs = {"norm0.gamma": torch.ones(3), "norm0.beta": torch.zeros(3),
    ...           "fc0.weight": torch.randn(4, 3), "fc0.bias": torch.zeros(4)}
    >>> ours = converter.convert(theirs)
    >>> {key: tuple(value.shape) for key, value in ours.items()}
    {'blocks.0.norm.affine': (6,), 'blocks.0.proj.weight': (4, 3), 'blocks.0.proj.bias': (4,)}
    >>> back = converter.invert(ours)
    >>> back.keys() == theirs.keys() and all(torch.equal(back[k], theirs[k]) for k in theirs)
    True
    >>> converter.convert({"norm1.gamma": torch.ones(3)})
    Traceback (most recent call last):
    ...
    ganblocks.convert.StateDictMismatchError: state_dict: does not match the conversion rules
      incomplete groups (a rule needs all of its keys): 'norm1.gamma' without 'norm1.beta'
"""

from __future__ import annotations

import math
import re
from typing import (
    Any,
    Callable,
    ClassVar,
    Dict,
    List,
    Mapping,
    Optional,
    Sequence,
    Tuple,
    Union,
)

import einops
import torch

__all__ = [
    "Cast",
    "Concat",
    "Flip",
    "Function",
    "Permute",
    "Rearrange",
    "Reshape",
    "Rule",
    "Scale",
    "Split",
    "Stack",
    "StateDictConverter",
    "StateDictMismatchError",
    "Transform",
    "Transpose",
    "Unbind",
    "check_state_dict",
]

_ELEMENTWISE, _MANY_TO_ONE, _ONE_TO_MANY = "elementwise", "many_to_one", "one_to_many"
_SHOWN = 10  # keys listed per kind of problem in an error message


# --------------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------------


class StateDictMismatchError(KeyError, ValueError):
    """A state dict does not fit a conversion or the network it is meant for.

    Both a :class:`KeyError` and a :class:`ValueError`. The message lists every problem; the
    attributes hold them for programs:

    Attributes:
        unexpected: Keys of the input that nothing expects (written ``'theirs' → 'ours'`` when
            the conversion renamed them).
        missing: Expected keys that the input does not provide.
        mismatched: ``(key, got_shape, expected_shape)`` triples.
        incomplete: ``(present_key, missing_partner_keys)`` of groups that a rule needs whole.
    """

    def __init__(
        self,
        message: str,
        *,
        unexpected: Sequence[str] = (),
        missing: Sequence[str] = (),
        mismatched: Sequence[Tuple[str, Tuple[int, ...], Tuple[int, ...]]] = (),
        incomplete: Sequence[Tuple[str, Tuple[str, ...]]] = (),
    ) -> None:
        super().__init__(message)
        self.message = message
        self.unexpected = list(unexpected)
        self.missing = list(missing)
        self.mismatched = list(mismatched)
        self.incomplete = list(incomplete)

    def __str__(self) -> str:  # KeyError would print the repr of the message
        return self.message


def _listing(items: Sequence[str]) -> str:
    shown = ", ".join(items[:_SHOWN])
    return shown + (f" … and {len(items) - _SHOWN} more" if len(items) > _SHOWN else "")


# --------------------------------------------------------------------------------------------
# Transforms
# --------------------------------------------------------------------------------------------


class Transform:
    """An invertible map from the tensors a :class:`Rule` matched to the tensors it writes.

    Subclasses set :attr:`arity` and implement :meth:`forward` and :meth:`inverse`, which take and
    return lists of tensors. ``n_out`` is the number of tensors the call must return (the rule's
    target count in :meth:`forward`, its source count in :meth:`inverse`); element-wise
    transforms ignore it.

    Attributes:
        arity: ``'elementwise'`` (each tensor on its own), ``'many_to_one'`` or
            ``'one_to_many'``.
    """

    arity: str = _ELEMENTWISE

    def forward(self, tensors: List[torch.Tensor], n_out: int) -> List[torch.Tensor]:
        """Their layout → ours."""
        raise NotImplementedError

    def inverse(self, tensors: List[torch.Tensor], n_out: int) -> List[torch.Tensor]:
        """Ours → theirs: ``inverse(forward(ts, n), len(ts))`` gives ``ts`` back."""
        raise NotImplementedError

    def inverted(self) -> Transform:
        """The same transform run backwards (its :meth:`forward` is this one's :meth:`inverse`)."""
        return _Inverted(self)


class _Inverted(Transform):
    _SWAP: ClassVar[Dict[str, str]] = {
        _ELEMENTWISE: _ELEMENTWISE,
        _MANY_TO_ONE: _ONE_TO_MANY,
        _ONE_TO_MANY: _MANY_TO_ONE,
    }

    def __init__(self, inner: Transform) -> None:
        self.inner = inner
        self.arity = self._SWAP[inner.arity]

    def forward(self, tensors: List[torch.Tensor], n_out: int) -> List[torch.Tensor]:
        return self.inner.inverse(tensors, n_out)

    def inverse(self, tensors: List[torch.Tensor], n_out: int) -> List[torch.Tensor]:
        return self.inner.forward(tensors, n_out)

    def inverted(self) -> Transform:
        return self.inner

    def __repr__(self) -> str:
        return f"{self.inner!r}.inverted()"


class _Elementwise(Transform):
    def apply(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def unapply(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, tensors: List[torch.Tensor], n_out: int) -> List[torch.Tensor]:
        return [self.apply(x) for x in tensors]

    def inverse(self, tensors: List[torch.Tensor], n_out: int) -> List[torch.Tensor]:
        return [self.unapply(x) for x in tensors]


def _iterable_or_one(value: Any) -> Tuple[Any, ...]:
    """``value``'s items, or ``value`` alone when it has none (a scalar, ``None``)."""
    try:
        return tuple(value)
    except TypeError:
        return (value,)


def _dims(value: Union[int, Sequence[int]], name: str) -> Tuple[int, ...]:
    items = (value,) if isinstance(value, int) else _iterable_or_one(value)
    if not items or not all(isinstance(d, int) and not isinstance(d, bool) for d in items):
        raise TypeError(f"{name}: expected an int or a non-empty sequence of ints, got {value!r}")
    return items


class Flip(_Elementwise):
    """Reverse the order along ``dims`` (its own inverse), e.g. a convolution kernel's taps.

    Example:
        >>> Flip(-1).forward([torch.arange(3)], 1)
        [tensor([2, 1, 0])]
    """

    def __init__(self, dims: Union[int, Sequence[int]]) -> None:
        self.dims = _dims(dims, "dims")

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        return x.flip(self.dims)

    unapply = apply

    def __repr__(self) -> str:
        return f"Flip({list(self.dims)})"


class Transpose(_Elementwise):
    """Swap dimensions ``dim0`` and ``dim1`` (its own inverse); the result is contiguous.

    Example:
        >>> Transpose(0, 1).forward([torch.zeros(2, 3)], 1)[0].shape
        torch.Size([3, 2])
    """

    def __init__(self, dim0: int, dim1: int) -> None:
        self.dim0, self.dim1 = _dims([dim0, dim1], "dim0, dim1")

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        return x.transpose(self.dim0, self.dim1).contiguous()

    unapply = apply

    def __repr__(self) -> str:
        return f"Transpose({self.dim0}, {self.dim1})"


class Permute(_Elementwise):
    """Reorder the dimensions: output dimension ``i`` is input dimension ``dims[i]``; the result
    is contiguous.

    Example:
        >>> Permute([2, 0, 1]).forward([torch.zeros(2, 3, 4)], 1)[0].shape
        torch.Size([4, 2, 3])
    """

    def __init__(self, dims: Sequence[int]) -> None:
        self.dims = _dims(dims, "dims")
        if sorted(self.dims) != list(range(len(self.dims))):
            raise ValueError(f"dims: expected a permutation of 0..{len(self.dims) - 1}, got {dims}")
        self._back = tuple(sorted(range(len(self.dims)), key=self.dims.__getitem__))

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        return x.permute(self.dims).contiguous()

    def unapply(self, x: torch.Tensor) -> torch.Tensor:
        return x.permute(self._back).contiguous()

    def __repr__(self) -> str:
        return f"Permute({list(self.dims)})"


class Rearrange(_Elementwise):
    """:func:`einops.rearrange` with ``pattern``; the inverse swaps its two sides.

    ``axes_lengths`` give the sizes einops cannot infer (in either direction).

    Example:
        >>> t = Rearrange("o i -> o i 1 1")
        >>> t.forward([torch.zeros(4, 3)], 1)[0].shape
        torch.Size([4, 3, 1, 1])
        >>> t.inverse([torch.zeros(4, 3, 1, 1)], 1)[0].shape
        torch.Size([4, 3])
    """

    def __init__(self, pattern: str, **axes_lengths: int) -> None:
        if not isinstance(pattern, str) or pattern.count("->") != 1:
            raise ValueError(f"pattern: expected an einops pattern 'a b -> b a', got {pattern!r}")
        left, right = (side.strip() for side in pattern.split("->"))
        self.pattern, self._back = f"{left} -> {right}", f"{right} -> {left}"
        self.axes_lengths = dict(axes_lengths)

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        return einops.rearrange(x, self.pattern, **self.axes_lengths).contiguous()

    def unapply(self, x: torch.Tensor) -> torch.Tensor:
        return einops.rearrange(x, self._back, **self.axes_lengths).contiguous()

    def __repr__(self) -> str:
        extra = "".join(f", {k}={v}" for k, v in self.axes_lengths.items())
        return f"Rearrange({self.pattern!r}{extra})"


class Reshape(_Elementwise):
    """Reshape to ``shape``; the inverse reshapes to ``inverse_shape`` (each may hold one -1).

    Example:
        >>> t = Reshape((-1,), inverse_shape=(2, -1))
        >>> t.inverse(t.forward([torch.zeros(2, 3)], 1), 1)[0].shape
        torch.Size([2, 3])
    """

    def __init__(self, shape: Sequence[int], *, inverse_shape: Sequence[int]) -> None:
        self.shape = _dims(shape, "shape")
        self.inverse_shape = _dims(inverse_shape, "inverse_shape")

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        return x.reshape(self.shape)

    def unapply(self, x: torch.Tensor) -> torch.Tensor:
        return x.reshape(self.inverse_shape)

    def __repr__(self) -> str:
        return f"Reshape({list(self.shape)}, inverse_shape={list(self.inverse_shape)})"


class Scale(_Elementwise):
    """Multiply by ``factor``; the inverse divides by it.

    Bit-exact both ways when ``factor`` is a power of two (and nothing overflows or turns
    subnormal); otherwise the round trip is exact up to float rounding (one or two units in the
    last place), e.g. for an equalised-learning-rate gain ``1 / sqrt(fan_in)``.

    Example:
        >>> Scale(0.5).forward([torch.tensor([2.0, -6.0])], 1)
        [tensor([ 1., -3.])]
    """

    def __init__(self, factor: float) -> None:
        if not isinstance(factor, (int, float)) or not math.isfinite(factor) or factor == 0:
            raise ValueError(f"factor: expected a finite non-zero number, got {factor!r}")
        self.factor = float(factor)

    @property
    def exact(self) -> bool:
        """Whether the factor is a power of two (a bit-exact round trip)."""
        return math.frexp(abs(self.factor))[0] == 0.5

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.factor

    def unapply(self, x: torch.Tensor) -> torch.Tensor:
        return x / self.factor

    def __repr__(self) -> str:
        return f"Scale({self.factor!r})"


class Cast(_Elementwise):
    """Convert to ``dtype``; the inverse converts to ``inverse_dtype``.

    The round trip is exact when the first conversion widens (``float16 → float32 → float16``).

    Example:
        >>> t = Cast(torch.float32, inverse_dtype=torch.float16)
        >>> t.forward([torch.ones(2, dtype=torch.float16)], 1)[0].dtype
        torch.float32
    """

    def __init__(self, dtype: torch.dtype, *, inverse_dtype: torch.dtype) -> None:
        for name, value in (("dtype", dtype), ("inverse_dtype", inverse_dtype)):
            if not isinstance(value, torch.dtype):
                raise TypeError(f"{name}: expected a torch.dtype, got {value!r}")
        self.dtype, self.inverse_dtype = dtype, inverse_dtype

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        return x.to(self.dtype)

    def unapply(self, x: torch.Tensor) -> torch.Tensor:
        return x.to(self.inverse_dtype)

    def __repr__(self) -> str:
        return f"Cast({self.dtype}, inverse_dtype={self.inverse_dtype})"


class Function(_Elementwise):
    """Any tensor map given as a pair of functions, ``forward`` and its ``inverse``.

    Example:
        >>> t = Function(torch.neg, torch.neg)
        >>> t.forward([torch.tensor([1.0])], 1)
        [tensor([-1.])]
    """

    def __init__(
        self,
        forward: Callable[[torch.Tensor], torch.Tensor],
        inverse: Callable[[torch.Tensor], torch.Tensor],
    ) -> None:
        for name, fn in (("forward", forward), ("inverse", inverse)):
            if not callable(fn):
                raise TypeError(f"{name}: expected a callable tensor -> tensor, got {fn!r}")
        self._forward, self._inverse = forward, inverse

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        return self._forward(x)

    def unapply(self, x: torch.Tensor) -> torch.Tensor:
        return self._inverse(x)

    def __repr__(self) -> str:
        return f"Function({self._forward!r}, {self._inverse!r})"


def _sizes(sizes: Optional[Sequence[int]]) -> Optional[Tuple[int, ...]]:
    if sizes is None:
        return None
    items = _dims(sizes, "sizes")
    if any(s < 0 for s in items):
        raise ValueError(f"sizes: expected non-negative sizes, got {list(items)}")
    return items


def _cut(x: torch.Tensor, dim: int, sizes: Optional[Tuple[int, ...]], n: int) -> List[torch.Tensor]:
    """``x`` cut along ``dim`` into ``sizes``, or into ``n`` equal parts."""
    length = x.shape[dim]
    if sizes is None:
        if length % n:
            raise ValueError(
                f"split: a tensor of shape {tuple(x.shape)} does not cut into {n} equal parts "
                f"along dim {dim}"
            )
        sizes = (length // n,) * n
    if len(sizes) != n or sum(sizes) != length:
        raise ValueError(
            f"split: sizes {list(sizes)} do not cut a tensor of shape {tuple(x.shape)} along dim "
            f"{dim} into {n} parts"
        )
    return [part.contiguous() for part in torch.split(x, list(sizes), dim=dim)]


class Concat(Transform):
    """Many → one: concatenate along ``dim``; the inverse cuts into ``sizes`` (default: equal).

    Example:
        >>> Concat(dim=0).forward([torch.ones(2), torch.zeros(2)], 1)
        [tensor([1., 1., 0., 0.])]
        >>> Concat(dim=0, sizes=[1, 3]).inverse([torch.arange(4)], 2)
        [tensor([0]), tensor([1, 2, 3])]
    """

    arity = _MANY_TO_ONE

    def __init__(self, *, dim: int = 0, sizes: Optional[Sequence[int]] = None) -> None:
        (self.dim,) = _dims(dim, "dim")
        self.sizes = _sizes(sizes)

    def forward(self, tensors: List[torch.Tensor], n_out: int) -> List[torch.Tensor]:
        return [torch.cat(tensors, dim=self.dim)]

    def inverse(self, tensors: List[torch.Tensor], n_out: int) -> List[torch.Tensor]:
        return _cut(tensors[0], self.dim, self.sizes, n_out)

    def __repr__(self) -> str:
        return f"Concat(dim={self.dim}, sizes={self.sizes})"


class Split(Transform):
    """One → many: cut along ``dim`` into ``sizes`` (default: equal); the inverse concatenates.

    Example:
        >>> Split(dim=0).forward([torch.arange(4)], 2)
        [tensor([0, 1]), tensor([2, 3])]
    """

    arity = _ONE_TO_MANY

    def __init__(self, *, dim: int = 0, sizes: Optional[Sequence[int]] = None) -> None:
        (self.dim,) = _dims(dim, "dim")
        self.sizes = _sizes(sizes)

    def forward(self, tensors: List[torch.Tensor], n_out: int) -> List[torch.Tensor]:
        return _cut(tensors[0], self.dim, self.sizes, n_out)

    def inverse(self, tensors: List[torch.Tensor], n_out: int) -> List[torch.Tensor]:
        return [torch.cat(tensors, dim=self.dim)]

    def __repr__(self) -> str:
        return f"Split(dim={self.dim}, sizes={self.sizes})"


def _unbind(x: torch.Tensor, dim: int, n: int) -> List[torch.Tensor]:
    if x.shape[dim] != n:
        raise ValueError(
            f"unbind: a tensor of shape {tuple(x.shape)} has {x.shape[dim]} entries along dim "
            f"{dim}, expected {n}"
        )
    return [part.contiguous() for part in x.unbind(dim)]


class Stack(Transform):
    """Many → one: stack along a new dimension ``dim``; the inverse unbinds it.

    Example:
        >>> Stack(dim=0).forward([torch.ones(2), torch.zeros(2)], 1)[0].shape
        torch.Size([2, 2])
    """

    arity = _MANY_TO_ONE

    def __init__(self, *, dim: int = 0) -> None:
        (self.dim,) = _dims(dim, "dim")

    def forward(self, tensors: List[torch.Tensor], n_out: int) -> List[torch.Tensor]:
        return [torch.stack(tensors, dim=self.dim)]

    def inverse(self, tensors: List[torch.Tensor], n_out: int) -> List[torch.Tensor]:
        return _unbind(tensors[0], self.dim, n_out)

    def __repr__(self) -> str:
        return f"Stack(dim={self.dim})"


class Unbind(Transform):
    """One → many: the slices along ``dim`` (one per target); the inverse stacks them.

    Example:
        >>> Unbind(dim=1).forward([torch.zeros(4, 2)], 2)[0].shape
        torch.Size([4])
    """

    arity = _ONE_TO_MANY

    def __init__(self, *, dim: int = 0) -> None:
        (self.dim,) = _dims(dim, "dim")

    def forward(self, tensors: List[torch.Tensor], n_out: int) -> List[torch.Tensor]:
        return _unbind(tensors[0], self.dim, n_out)

    def inverse(self, tensors: List[torch.Tensor], n_out: int) -> List[torch.Tensor]:
        return [torch.stack(tensors, dim=self.dim)]

    def __repr__(self) -> str:
        return f"Unbind(dim={self.dim})"


# --------------------------------------------------------------------------------------------
# Key templates and rules
# --------------------------------------------------------------------------------------------

_NAME = re.compile(r"[A-Za-z_]\w*")
_DEFAULT_EXPR = r"[^.]+"


def _parse_template(text: str, what: str) -> List[Union[str, Tuple[str, Optional[str]]]]:
    """``'a.{i:\\d+}.b'`` → ``['a.', ('i', '\\d+'), '.b']`` (braces nest inside an expression)."""
    parts: List[Union[str, Tuple[str, Optional[str]]]] = []
    literal, pos = [], 0
    while pos < len(text):
        char = text[pos]
        if char == "}":
            raise ValueError(f"{what}: unbalanced '}}' at position {pos} of {text!r}")
        if char != "{":
            literal.append(char)
            pos += 1
            continue
        depth, end = 0, pos
        while end < len(text):
            depth += {"{": 1, "}": -1}.get(text[end], 0)
            if depth == 0:
                break
            end += 1
        if depth:
            raise ValueError(f"{what}: unclosed '{{' at position {pos} of {text!r}")
        body = text[pos + 1 : end]
        name, _, expr = body.partition(":")
        if not _NAME.fullmatch(name):
            raise ValueError(
                f"{what}: placeholder {{{body}}} of {text!r}: expected {{name}} or "
                f"{{name:regex}} with a Python identifier as the name"
            )
        if literal:
            parts.append("".join(literal))
            literal = []
        parts.append((name, expr if ":" in body else None))
        pos = end + 1
    if literal:
        parts.append("".join(literal))
    return parts


class _Template:
    def __init__(self, text: str, exprs: Mapping[str, str]) -> None:
        self.text = text
        self.parts = _parse_template(text, "template")
        pieces, seen = [], set()
        for part in self.parts:
            if isinstance(part, str):
                pieces.append(re.escape(part))
            elif part[0] in seen:
                pieces.append(f"(?P={part[0]})")
            else:
                seen.add(part[0])
                pieces.append(f"(?P<{part[0]}>{exprs[part[0]]})")
        self.regex = re.compile("".join(pieces))

    def match(self, key: str) -> Optional[Dict[str, str]]:
        m = self.regex.fullmatch(key)
        return None if m is None else m.groupdict()

    def format(self, values: Mapping[str, str]) -> str:
        return "".join(p if isinstance(p, str) else values[p[0]] for p in self.parts)


def _strings(value: Union[str, Sequence[str]], name: str) -> Tuple[str, ...]:
    items = (value,) if isinstance(value, str) else _iterable_or_one(value)
    if not items or not all(isinstance(s, str) and s for s in items):
        raise TypeError(
            f"{name}: expected a key template or a non-empty list of them, got {value!r}"
        )
    if len(set(items)) != len(items):
        raise ValueError(f"{name}: the same template twice in {list(items)}")
    return items


class Rule:
    r"""One conversion rule: source key templates → target key templates, with a transform.

    Args:
        source: The key template (or templates, for many → one) in the input layout.
        target: The key template (or templates, for one → many) in the output layout. Every
            template of both uses the same placeholders.
        transform: A :class:`Transform` or a list of them applied in order (none: a rename). With
            no many → one / one → many transform, ``source`` and ``target`` pair up by position.
        optional: When :meth:`StateDictConverter.convert` is given ``expected``, outputs of this
            rule that it lacks are dropped instead of reported (e.g. buffers that the other code
            stores in every layer but our blocks only where they are used); the same holds for
            the inverse.

    Example:
        >>> rule = Rule(r"conv{i:\d+}.weight", "body.{i}.weight", transform=Flip([2, 3]))
        >>> rule
        Rule('conv{i:\\d+}.weight' -> 'body.{i}.weight', transform=[Flip([2, 3])])
        >>> rule.inverse()
        Rule('body.{i}.weight' -> 'conv{i:\\d+}.weight', transform=[Flip([2, 3]).inverted()])
    """

    def __init__(
        self,
        source: Union[str, Sequence[str]],
        target: Union[str, Sequence[str]],
        *,
        transform: Union[Transform, Sequence[Transform], None] = None,
        optional: bool = False,
    ) -> None:
        self.source = _strings(source, "source")
        self.target = _strings(target, "target")
        if transform is None:
            transforms: Tuple[Transform, ...] = ()
        elif isinstance(transform, Transform):
            transforms = (transform,)
        else:
            transforms = tuple(transform)
        bad = [t for t in transforms if not isinstance(t, Transform)]
        if bad:
            raise TypeError(f"transform: expected Transform instances, got {bad[0]!r}")
        self.transforms = transforms
        self.optional = bool(optional)
        self._check_arity()
        exprs = self._placeholders()
        self._sources = [_Template(t, exprs) for t in self.source]
        self._targets = [_Template(t, exprs) for t in self.target]

    def _placeholders(self) -> Dict[str, str]:
        exprs: Dict[str, str] = {}
        names_of = {}
        for text in self.source + self.target:
            parts = _parse_template(text, "source" if text in self.source else "target")
            names_of[text] = {p[0] for p in parts if not isinstance(p, str)}
            for part in parts:
                if isinstance(part, str) or part[1] is None:
                    continue
                if exprs.setdefault(part[0], part[1]) != part[1]:
                    raise ValueError(
                        f"{self._label()}: placeholder {part[0]!r} is declared twice with "
                        f"different expressions ({exprs[part[0]]!r}, {part[1]!r})"
                    )
        first = self.source[0]
        for text, names in names_of.items():
            if names != names_of[first]:
                raise ValueError(
                    f"{self._label()}: every template must use the same placeholders; "
                    f"{first!r} has {sorted(names_of[first])}, {text!r} has {sorted(names)}"
                )
        for name in names_of[first]:
            exprs.setdefault(name, _DEFAULT_EXPR)
        return exprs

    def _check_arity(self) -> None:
        changing = [t for t in self.transforms if t.arity != _ELEMENTWISE]
        n_src, n_tgt = len(self.source), len(self.target)
        if len(changing) > 1:
            raise ValueError(
                f"{self._label()}: at most one many-to-one or one-to-many transform per rule, "
                f"got {changing}"
            )
        if not changing and n_src != n_tgt:
            raise ValueError(
                f"{self._label()}: {n_src} source and {n_tgt} target templates need a "
                f"many-to-one (Concat, Stack) or one-to-many (Split, Unbind) transform"
            )
        if changing and changing[0].arity == _MANY_TO_ONE and n_tgt != 1:
            raise ValueError(f"{self._label()}: {changing[0]!r} writes one target, got {n_tgt}")
        if changing and changing[0].arity == _ONE_TO_MANY and n_src != 1:
            raise ValueError(f"{self._label()}: {changing[0]!r} reads one source, got {n_src}")

    def _label(self) -> str:
        return f"rule {list(self.source)} -> {list(self.target)}"

    def apply(self, tensors: List[torch.Tensor]) -> List[torch.Tensor]:
        """The rule's transforms applied to the tensors of its source keys, in order."""
        out = list(tensors)
        for t in self.transforms:
            out = t.forward(out, len(self.target) if t.arity != _ELEMENTWISE else len(out))
        return out

    def inverse(self) -> Rule:
        """The rule from ``target`` back to ``source`` (transforms inverted, in reverse order)."""
        return Rule(
            self.target,
            self.source,
            transform=[t.inverted() for t in reversed(self.transforms)],
            optional=self.optional,
        )

    def __repr__(self) -> str:
        def side(items: Tuple[str, ...]) -> str:
            return repr(items[0]) if len(items) == 1 else repr(list(items))

        extra = f", transform={list(self.transforms)}" if self.transforms else ""
        extra += ", optional=True" if self.optional else ""
        return f"Rule({side(self.source)} -> {side(self.target)}{extra})"


# --------------------------------------------------------------------------------------------
# The converter
# --------------------------------------------------------------------------------------------

_Match = Tuple[int, int, Dict[str, str]]  # (rule index, template index, captured values)
Expected = Mapping[str, Union[torch.Tensor, Sequence[int]]]


def _shape_of(value: Any) -> Optional[Tuple[int, ...]]:
    if isinstance(value, torch.Tensor):
        return tuple(value.shape)
    if isinstance(value, (tuple, list, torch.Size)):
        return tuple(int(v) for v in value)
    return None


def check_state_dict(
    state_dict: Mapping[str, Any], expected: Expected, *, what: str = "state_dict"
) -> None:
    """Raise :class:`StateDictMismatchError` unless ``state_dict`` has the ``expected`` keys/shapes.

    Args:
        state_dict: The tensors to check.
        expected: The keys wanted, each with a tensor or a shape (e.g. ``model.state_dict()``).
        what: The name used in the message.

    Example:
        >>> check_state_dict({"w": torch.zeros(2, 3)}, {"w": (2, 3)})
        >>> check_state_dict({"w": torch.zeros(2, 3), "b": torch.zeros(2)},
        ...                  {"w": (3, 2), "v": (1,)})
        Traceback (most recent call last):
        ...
        ganblocks.convert.StateDictMismatchError: state_dict: not the expected keys and shapes
          unexpected keys: 'b'
          missing keys: 'v'
          shape mismatches: 'w' has (2, 3), expected (3, 2)
    """
    _check_mapping(state_dict, "state_dict")
    _check_mapping(expected, "expected")
    unexpected = [repr(k) for k in state_dict if k not in expected]
    missing = [repr(k) for k in expected if k not in state_dict]
    _raise_if(
        f"{what}: not the expected keys and shapes",
        unexpected=unexpected,
        missing=missing,
        mismatched=_mismatched(state_dict, expected),
    )


def _check_mapping(value: Any, name: str) -> None:
    if not isinstance(value, Mapping):
        raise TypeError(f"{name}: expected a mapping of key names to tensors, got "
                        f"{type(value).__name__}")


def _mismatched(
    state_dict: Mapping[str, Any], expected: Expected
) -> List[Tuple[str, Tuple[int, ...], Tuple[int, ...]]]:
    out = []
    for key, value in state_dict.items():
        if key not in expected:
            continue
        got, want = _shape_of(value), _shape_of(expected[key])
        if got is not None and want is not None and got != want:
            out.append((key, got, want))
    return out


def _raise_if(
    headline: str,
    *,
    unexpected: Sequence[str] = (),
    missing: Sequence[str] = (),
    mismatched: Sequence[Tuple[str, Tuple[int, ...], Tuple[int, ...]]] = (),
    incomplete: Sequence[Tuple[str, Tuple[str, ...]]] = (),
) -> None:
    lines = []
    if incomplete:
        lines.append("incomplete groups (a rule needs all of its keys): " + _listing(
            [f"{k!r} without {', '.join(map(repr, partners))}" for k, partners in incomplete]
        ))
    if unexpected:
        lines.append("unexpected keys: " + _listing(list(unexpected)))
    if missing:
        lines.append("missing keys: " + _listing(list(missing)))
    if mismatched:
        lines.append("shape mismatches: " + _listing(
            [f"{k!r} has {got}, expected {want}" for k, got, want in mismatched]
        ))
    if lines:
        raise StateDictMismatchError(
            "\n  ".join([headline, *lines]),
            unexpected=unexpected,
            missing=missing,
            mismatched=mismatched,
            incomplete=incomplete,
        )


class StateDictConverter:
    """Converts state dicts between two key layouts, both ways, by an ordered list of rules.

    Args:
        rules: The :class:`Rule` list, from the input layout ("theirs") to the output layout
            ("ours"); each key is claimed by the first rule that matches it.
        passthrough: Keep the keys that no rule claims under their own names (default: they are
            an error).

    Tensors: every transform keeps dtype and device unless it says otherwise (:class:`Cast`);
    a renamed tensor is the input tensor itself (no copy).

    Example:
        >>> converter = StateDictConverter(
        ...     [Rule("to_rgb.{p}", "torgb.conv.{p}")], passthrough=True)
        >>> sorted(converter.convert({"to_rgb.weight": torch.zeros(1), "const": torch.ones(1)}))
        ['const', 'torgb.conv.weight']
        >>> sorted(converter.invert({"torgb.conv.weight": torch.zeros(1), "const": torch.ones(1)}))
        ['const', 'to_rgb.weight']
    """

    def __init__(self, rules: Sequence[Rule], *, passthrough: bool = False) -> None:
        rules = list(rules)
        bad = [r for r in rules if not isinstance(r, Rule)]
        if bad:
            raise TypeError(f"rules: expected Rule instances, got {bad[0]!r}")
        self.rules: List[Rule] = rules
        self.passthrough = bool(passthrough)
        self._inverse: Optional[StateDictConverter] = None

    @property
    def inverse(self) -> StateDictConverter:
        """The converter from the output layout back to the input layout."""
        if self._inverse is None:
            self._inverse = StateDictConverter(
                [r.inverse() for r in self.rules], passthrough=self.passthrough
            )
            self._inverse._inverse = self
        return self._inverse

    def _match(self, key: str) -> Optional[_Match]:
        for i, rule in enumerate(self.rules):
            for j, template in enumerate(rule._sources):
                values = template.match(key)
                if values is not None:
                    return i, j, values
        return None

    def convert_key(self, key: str) -> Optional[Tuple[str, ...]]:
        """The output key(s) written from input key ``key`` (itself under ``passthrough``).

        ``None`` when no rule claims it (and ``passthrough`` is off).

        Example:
            >>> StateDictConverter([Rule("fc{i}.w", "layers.{i}.weight")]).convert_key("fc3.w")
            ('layers.3.weight',)
        """
        found = self._match(key)
        if found is None:
            return (key,) if self.passthrough else None
        rule = self.rules[found[0]]
        return tuple(t.format(found[2]) for t in rule._targets)

    def convert(
        self, state_dict: Mapping[str, Any], *, expected: Optional[Expected] = None
    ) -> Dict[str, Any]:
        """``state_dict`` in the input layout → a new dict in the output layout.

        Args:
            state_dict: Tensors under the input layout's keys.
            expected: Optional; the output's keys with a tensor or a shape each (typically the
                target network's ``state_dict()``): the result must have exactly these keys and
                shapes (outputs of ``optional`` rules that it lacks are dropped).

        Raises:
            StateDictMismatchError: Keys no rule claims (without ``passthrough``), incomplete
                groups, and, given ``expected``, unexpected or missing keys and shape
                mismatches; all of them named in one message.
            ValueError: The rules do not pair these keys one to one (the inverse would not give
                them back); reorder or tighten the rules.
        """
        _check_mapping(state_dict, "state_dict")
        if expected is not None:
            _check_mapping(expected, "expected")
        groups: Dict[Tuple[int, Tuple[Tuple[str, str], ...]], Dict[int, str]] = {}
        group_of: Dict[str, Tuple[int, Tuple[Tuple[str, str], ...]]] = {}
        unclaimed: List[str] = []
        for key in state_dict:
            found = self._match(key)
            if found is None:
                unclaimed.append(key)
                continue
            i, j, values = found
            group = (i, tuple(sorted(values.items())))
            groups.setdefault(group, {})[j] = key
            group_of[key] = group

        out: Dict[str, Any] = {}
        origin: Dict[str, str] = {}  # output key → the input key(s) it comes from, for messages
        optional: set = set()
        incomplete: List[Tuple[str, Tuple[str, ...]]] = []
        unexpected: List[str] = []

        # No two inputs can write one output: the round-trip check below would claim it back
        # for one of them only, and a passed-through key matches no rule's output.
        def put(key: str, value: Any, source: str) -> None:
            out[key] = value
            origin[key] = source

        for key in state_dict:
            if key not in group_of:
                if self.passthrough:
                    self._check_passthrough(key)
                    put(key, state_dict[key], repr(key))
                else:
                    unexpected.append(repr(key))
                continue
            group = group_of[key]
            members = groups.get(group)
            if members is None:  # already written
                continue
            del groups[group]
            i, values = group[0], dict(group[1])
            rule = self.rules[i]
            names = [t.format(values) for t in rule._sources]
            absent = tuple(n for j, n in enumerate(names) if j not in members)
            if absent:
                incomplete.append((key, absent))
                continue
            tensors = [state_dict[n] for n in names]
            results = self._apply(rule, tensors, names)
            source = " + ".join(map(repr, names))
            for j, (template, value) in enumerate(zip(rule._targets, results)):
                new = template.format(values)
                self._check_round_trip(new, i, j, values, rule)
                put(new, value, source)
                if rule.optional:
                    optional.add(new)

        missing: List[str] = []
        mismatched: List[Tuple[str, Tuple[int, ...], Tuple[int, ...]]] = []
        if expected is not None:
            for key in list(out):
                if key in expected:
                    continue
                if key in optional:
                    del out[key]
                else:
                    from_ = origin[key]
                    unexpected.append(from_ if from_ == repr(key) else f"{from_} → {key!r}")
            for key in expected:
                if key not in out:
                    theirs = self.inverse.convert_key(key)
                    known = theirs is not None and theirs != (key,)
                    missing.append(f"{key!r} (from {', '.join(map(repr, theirs))})" if known
                                   else repr(key))
            mismatched = _mismatched(out, expected)
        _raise_if(
            "state_dict: does not match the conversion rules" if expected is None
            else "state_dict: does not match the expected keys after conversion",
            unexpected=unexpected,
            missing=missing,
            mismatched=mismatched,
            incomplete=incomplete,
        )
        return out

    def invert(
        self, state_dict: Mapping[str, Any], *, expected: Optional[Expected] = None
    ) -> Dict[str, Any]:
        """``state_dict`` in the output layout → the input layout (:meth:`convert` undone).

        Same arguments and errors as :meth:`convert`, with the layouts swapped.
        """
        return self.inverse.convert(state_dict, expected=expected)

    def _apply(self, rule: Rule, tensors: List[Any], names: List[str]) -> List[Any]:
        if not rule.transforms:
            return tensors
        for name, value in zip(names, tensors):
            if not isinstance(value, torch.Tensor):
                raise TypeError(
                    f"state_dict: {name!r} is a {type(value).__name__}; {rule!r} transforms "
                    f"tensors"
                )
        try:
            results = rule.apply(tensors)
        except (RuntimeError, ValueError, IndexError, einops.EinopsError) as err:
            shapes = ", ".join(f"{n!r} {tuple(t.shape)}" for n, t in zip(names, tensors))
            raise StateDictMismatchError(
                f"state_dict: {rule!r} cannot transform {shapes}: {err}"
            ) from None
        if len(results) != len(rule.target):
            raise ValueError(
                f"{rule!r}: its transforms returned {len(results)} tensors for "
                f"{len(rule.target)} targets"
            )
        return results

    def _check_round_trip(
        self, key: str, i: int, j: int, values: Mapping[str, str], rule: Rule
    ) -> None:
        back = self.inverse._match(key)
        if back is None or back[0] != i or back[1] != j or back[2] != dict(values):
            other = "no rule" if back is None else repr(self.rules[back[0]])
            raise ValueError(
                f"rules: {rule!r} writes {key!r}, which the inverse conversion would give to "
                f"{other}: the conversion is not invertible on this key; put the more specific "
                f"rule first or narrow a placeholder's expression"
            )

    def _check_passthrough(self, key: str) -> None:
        back = self.inverse._match(key)
        if back is not None:
            raise ValueError(
                f"state_dict: {key!r} matches no rule, and under its own name it would read as "
                f"the output of {self.rules[back[0]]!r}: the conversion could not be undone "
                f"(a key of another layout, or a state dict converted already?)"
            )

    def __repr__(self) -> str:
        rules = "".join(f"\n    {r!r}," for r in self.rules)
        return f"StateDictConverter([{rules}\n], passthrough={self.passthrough})"
