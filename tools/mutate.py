#!/usr/bin/env python
"""Mutation testing for ganblocks: how many realistic one-line bugs do the tests catch?

For each source module, the script generates one-line *mutants* from the module's syntax tree
(a flipped sign or operator, a dropped term, a changed constant, swapped arguments, a removed call
such as a normalisation, a negated condition, a flipped comparison or boolean, a deleted statement),
runs the module's relevant test files against each mutant and reports, per module, how many were
**killed** (a test failed), **survived** (all tests passed), ran into the **timeout**, or hit an
**error** of the test run itself.

The real files are never modified: everything runs on a temporary copy of the worktree (deleted at
the end, and left alone by an interrupted run only in the system temp folder). Each mutant runs in a
fresh process forked from a parent that has already imported torch and pytest, so the per-mutant
cost is mostly the tests themselves.

Survivors judged *equivalent* (no observable behaviour change) are listed with a reason in
``tools/mutants_equivalent.toml`` and reported apart; the score is killed / (all − equivalent).

Usage (from the repository root)::

    /work/venv/bin/python tools/mutate.py ganblocks/nn/mapping.py          # one module
    /work/venv/bin/python tools/mutate.py core                             # every core module
    /work/venv/bin/python tools/mutate.py ganblocks/nn/aspp.py --list      # only list mutants
    /work/venv/bin/python tools/mutate.py recipes/oco_gan/model.py --sample 60 --seed 1
    /work/venv/bin/python tools/mutate.py ganblocks/nn/aspp.py --tests tests/nn/test_resblocks.py

Exit status: 0 when every module reaches ``--fail-under`` (default 0, i.e. always 0 unless asked).
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import copy
import dataclasses
import importlib
import json
import os
import random
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Iterator, Optional

try:
    import tomllib
except ModuleNotFoundError:  # Python < 3.11
    tomllib = None


ROOT = Path(__file__).resolve().parent.parent
EQUIVALENT_FILE = ROOT / "tools" / "mutants_equivalent.toml"

# Test files relevant to each module (paths relative to the repository root). The module file itself
# is always added too, so its doctests run. Keep these lists short: each mutant runs all of them.
TESTS: dict[str, list[str]] = {
    # reference tests first: they are fast and kill most mutants, and -x stops at the first failure
    "ganblocks/nn/aspp.py": [
        "tests/nn/test_aspp_reference.py",
        "tests/nn/test_resblocks.py",
        "tests/nn/test_block_errors.py",
        "tests/nn/test_block_pins.py",
        "tests/nn/test_nn_pins.py",
    ],
    "ganblocks/nn/equalized.py": [
        "tests/nn/test_equalized_pins.py",
        "tests/nn/test_equalized_reference.py",
        "tests/nn/test_equalized.py",
        "tests/nn/test_mapping.py",
        "tests/nn/test_block_errors.py",
        "tests/nn/test_block_pins.py",
        "tests/nn/test_nn_pins.py",
    ],
    "ganblocks/nn/gumbel.py": [
        "tests/nn/test_gumbel_reference.py",
        "tests/nn/test_gumbel.py",
        "tests/nn/test_block_pins.py",
        "tests/nn/test_nn_pins.py",
    ],
    "ganblocks/nn/mapping.py": [
        "tests/nn/test_mapping_reference.py",
        "tests/nn/test_mapping.py",
        "tests/nn/test_block_errors.py",
        "tests/nn/test_block_pins.py",
        "tests/nn/test_nn_pins.py",
    ],
    "ganblocks/nn/minibatch_std.py": [
        "tests/nn/test_minibatch_std.py",
        "tests/nn/test_block_pins.py",
        "tests/nn/test_nn_pins.py",
    ],
    "ganblocks/nn/modulation.py": [
        "tests/nn/test_modulation_reference.py",
        "tests/nn/test_modulation.py",
        "tests/nn/test_block_errors.py",
        "tests/nn/test_block_pins.py",
        "tests/nn/test_nn_pins.py",
    ],
    "ganblocks/nn/resample.py": [
        "tests/nn/test_resample_reference.py",
        "tests/nn/test_resample.py",
        "tests/nn/test_block_pins.py",
        "tests/nn/test_nn_pins.py",
    ],
    "ganblocks/nn/resblocks.py": [
        "tests/nn/test_resblocks.py",
        "tests/nn/test_resblocks_arguments.py",
        "tests/nn/test_block_pins.py",
        "tests/nn/test_nn_pins.py",
    ],
    "ganblocks/nn/spade.py": [
        "tests/nn/test_spade.py",
        "tests/nn/test_block_pins.py",
        "tests/nn/test_nn_pins.py",
    ],
    "ganblocks/nn/spade_resblock.py": [
        "tests/nn/test_spade_resblock.py",
        "tests/nn/test_block_pins.py",
        "tests/nn/test_nn_pins.py",
    ],
    "ganblocks/nn/spectral_norm.py": [
        "tests/nn/test_spectral_norm.py",
        "tests/nn/test_block_pins.py",
        "tests/nn/test_nn_pins.py",
    ],
    "ganblocks/nn/noise.py": [
        "tests/nn/test_noise.py",
        "tests/nn/test_block_pins.py",
        "tests/nn/test_nn_pins.py",
    ],
    "ganblocks/nn/noise3d.py": [
        "tests/nn/test_noise3d.py",
        "tests/nn/test_block_pins.py",
        "tests/nn/test_nn_pins.py",
    ],
    "ganblocks/nn/torgb.py": [
        "tests/nn/test_torgb.py",
        "tests/stylegan2/test_equivalence.py",
        "tests/nn/test_block_pins.py",
        "tests/nn/test_nn_pins.py",
    ],
    "ganblocks/nn/epilogue.py": [
        "tests/nn/test_epilogue.py",
        "tests/stylegan2/test_equivalence.py",
        "tests/nn/test_block_pins.py",
        "tests/nn/test_nn_pins.py",
    ],
    "ganblocks/nn/truncation.py": [
        "tests/nn/test_truncation.py",
        "tests/nn/test_block_pins.py",
        "tests/nn/test_nn_pins.py",
    ],
    "ganblocks/losses/path_length.py": ["tests/losses/test_path_length.py"],
    "ganblocks/convert.py": [
        "tests/convert/test_state_dict_converter.py",
        "tests/convert/test_convert_pins.py",
        "tests/stylegan2/test_convert.py",
        "tests/oasis/test_oasis_convert.py",
        "tests/spade/test_spade_convert.py",
    ],
    "ganblocks/nn/_utils.py": [
        "tests/nn/test_block_errors.py",
        "tests/nn/test_mapping.py",
        "tests/nn/test_block_pins.py",
        "tests/nn/test_nn_pins.py",
    ],
    "ganblocks/nn/checks.py": [
        "tests/nn/test_block_errors.py",
        "tests/nn/test_mapping.py",
        "tests/nn/test_stylemap.py",
        "tests/nn/test_block_pins.py",
        "tests/nn/test_nn_pins.py",
    ],
    "ganblocks/nn/stylemap.py": [
        "tests/nn/test_stylemap.py",
        "tests/recipe/test_model_reference.py",
        "tests/nn/test_block_pins.py",
        "tests/nn/test_nn_pins.py",
    ],
    "ganblocks/nn/discriminator_block.py": [
        "tests/nn/test_discriminator_block.py",
        "tests/stylegan2/test_equivalence.py",
    ],
    "ganblocks/losses/adversarial.py": [
        "tests/losses/test_adversarial.py",
        "tests/losses/test_argument_names.py",
    ],
    "ganblocks/losses/labelmix.py": [
        "tests/losses/test_labelmix.py",
        "tests/losses/test_argument_names.py",
        "tests/losses/test_losses_pins.py",
    ],
    "ganblocks/losses/oasis.py": [
        "tests/losses/test_oasis_reference.py",
        "tests/losses/test_oasis.py",
        "tests/losses/test_argument_names.py",
    ],
    "ganblocks/losses/regularizers.py": [
        "tests/losses/test_regularizers_reference.py",
        "tests/losses/test_regularizers.py",
        "tests/losses/test_argument_names.py",
        "tests/losses/test_losses_pins.py",
    ],
    "ganblocks/losses/_checks.py": [
        "tests/losses/test_losses_pins.py",
        "tests/losses/test_argument_names.py",
        "tests/losses/test_adversarial.py",
        "tests/losses/test_oasis.py",
        "tests/losses/test_labelmix.py",
    ],
    "ganblocks/rng.py": [
        "tests/losses/test_losses_pins.py",
        "tests/losses/test_labelmix.py",
    ],
    "ganblocks/augment/ada.py": [
        "tests/augment/test_ada_reference.py",
        "tests/augment/test_ada.py",
        "tests/augment/test_augment_pins.py",
    ],
    "ganblocks/augment/_checks.py": [
        "tests/augment/test_augment_pins.py",
        "tests/augment/test_diffaugment.py",
        "tests/augment/test_sampling.py",
    ],
    "ganblocks/augment/color.py": [
        "tests/augment/test_color.py",
        "tests/augment/test_augment_pins.py",
    ],
    "ganblocks/augment/cutout.py": [
        "tests/augment/test_diffaugment.py",
        "tests/augment/test_augment_pins.py",
    ],
    "ganblocks/augment/diffaugment.py": [
        "tests/augment/test_diffaugment.py",
        "tests/augment/test_augment_pins.py",
    ],
    "ganblocks/augment/flip.py": [
        "tests/augment/test_diffaugment.py",
        "tests/augment/test_augment_pins.py",
    ],
    "ganblocks/augment/geometric.py": [
        "tests/augment/test_sampling.py",
        "tests/augment/test_augment_pins.py",
    ],
    "ganblocks/augment/sampling.py": [
        "tests/augment/test_sampling.py",
        "tests/augment/test_augment_pins.py",
    ],
    "ganblocks/data/paired.py": [
        "tests/data/test_data_pins.py",
        "tests/recipe/test_data_generic.py",
        "tests/recipe/test_folder_data.py",
    ],
    "ganblocks/data/palette.py": [
        "tests/data/test_data_pins.py",
        "tests/recipe/test_data_generic.py",
    ],
    "ganblocks/data/sampler.py": [
        "tests/data/test_data_pins.py",
        "tests/recipe/test_data_generic.py",
        "tests/recipe/test_data_datasets.py",
    ],
    "ganblocks/data/transforms.py": [
        "tests/data/test_data_pins.py",
        "tests/recipe/test_data_generic.py",
        "tests/recipe/test_folder_data.py",
    ],
    "ganblocks/train/checkpoint.py": [
        "tests/train/test_checkpoint.py",
        "tests/train/test_train_pins.py",
    ],
    "ganblocks/train/distributed.py": ["tests/train/test_train_pins.py"],
    "ganblocks/train/ema.py": ["tests/train/test_train_pins.py"],
    "ganblocks/train/logging.py": ["tests/train/test_train_pins.py"],
    "ganblocks/train/signals.py": ["tests/train/test_train_pins.py"],
    "ganblocks/metrics/fid.py": ["tests/metrics/test_fid.py", "tests/metrics/test_metric_edges.py"],
    "ganblocks/metrics/frechet.py": [
        "tests/metrics/test_frechet.py",
        "tests/metrics/test_metric_edges.py",
        "tests/metrics/test_metrics_pins.py",
    ],
    "ganblocks/metrics/kid.py": [
        "tests/metrics/test_kid.py",
        "tests/metrics/test_metric_edges.py",
        "tests/metrics/test_metrics_pins.py",
    ],
    "ganblocks/metrics/miou.py": [
        "tests/metrics/test_miou.py",
        "tests/metrics/test_metric_edges.py",
        "tests/metrics/test_miou_classes.py",
        "tests/metrics/test_metrics_pins.py",
        "tests/metrics/test_distributed.py",  # the sum of the confusion over ranks
    ],
    "ganblocks/metrics/inception.py": [
        "tests/metrics/test_inception.py",
        "tests/metrics/test_metrics_pins.py",
    ],
    "ganblocks/metrics/_extract.py": [
        "tests/metrics/test_fid.py",
        "tests/metrics/test_kid.py",
        "tests/metrics/test_metrics_pins.py",
    ],
    "ganblocks/metrics/_distributed.py": [
        "tests/metrics/test_metrics_pins.py",
        "tests/metrics/test_distributed.py",
    ],
    # ganblocks.ops: the reference path and argument parsing against the golden outputs first;
    # the native modules against the reference (the kernels are built once, then cached).
    "ganblocks/ops/_params.py": [
        "tests/ops/test_ops_pins.py",
        "tests/ops/test_errors.py",
        "tests/ops/test_golden_ref.py",
    ],
    "ganblocks/ops/_reference.py": [
        "tests/ops/test_golden_ref.py",
        "tests/ops/test_edge_cases.py",
        "tests/ops/test_ops_pins.py",
    ],
    "ganblocks/ops/bias_act.py": [
        "tests/ops/test_ops_pins.py",
        "tests/ops/test_golden_ref.py",
        "tests/ops/test_errors.py",
        "tests/ops/test_native.py",
    ],
    "ganblocks/ops/upfirdn2d.py": [
        "tests/ops/test_golden_ref.py",
        "tests/ops/test_errors.py",
        "tests/ops/test_properties.py",
    ],
    "ganblocks/ops/conv2d_resample.py": [
        "tests/ops/test_ops_pins.py",
        "tests/ops/test_conv2d_resample.py",
        "tests/ops/test_errors.py",
    ],
    "ganblocks/ops/_kernels.py": [
        "tests/ops/test_native.py",
        "tests/ops/test_self_check.py",
        "tests/ops/test_library.py",  # the fake kernels' layout: is_channels_last
    ],
    "ganblocks/ops/_selfcheck.py": [
        "tests/ops/test_native_pins.py",
        "tests/ops/test_self_check.py",
        "tests/ops/test_native.py",
    ],
    "ganblocks/ops/_dispatch.py": ["tests/ops/test_native.py", "tests/ops/test_native_build.py"],
    "ganblocks/ops/_build.py": ["tests/ops/test_native_pins.py", "tests/ops/test_native_build.py"],
    "ganblocks/ops/testing.py": ["tests/ops/test_native_pins.py", "tests/ops/test_native_build.py"],
    "ganblocks/ops/native.py": ["tests/ops/test_native_pins.py", "tests/ops/test_native_build.py"],
    "ganblocks/ops/__main__.py": ["tests/ops/test_ops_main.py", "tests/ops/test_native_build.py"],
    "ganblocks/ops/_upfirdn2d_native.py": [
        "tests/ops/test_native_pins.py",
        "tests/ops/test_native.py",
        "tests/ops/test_library.py",
        "tests/ops/test_self_check.py",
    ],
    "ganblocks/ops/_bias_act_native.py": [
        "tests/ops/test_native_pins.py",
        "tests/ops/test_native.py",
        "tests/ops/test_library.py",
        "tests/ops/test_self_check.py",
    ],
    "recipes/oco_gan/model.py": [
        "tests/recipe/test_model_pins.py",
        "tests/recipe/test_model_reference.py",
        "tests/recipe/test_model.py",
    ],
    # test_train.py is left out: it takes minutes per mutant here (subprocess runs, SIGINT);
    # test_train_semantics.py covers the same run-level behaviour in seconds.
    "recipes/oco_gan/train.py": [
        "tests/recipe/test_train_semantics.py",
        "tests/recipe/test_train_reference.py",
        "tests/recipe/test_train_ema.py",
    ],
}

# The modules the mutation score is tracked for (see docs/development.rst).
CORE = [
    "recipes/oco_gan/model.py",
    "recipes/oco_gan/train.py",
    "ganblocks/nn/aspp.py",
    "ganblocks/nn/equalized.py",
    "ganblocks/nn/gumbel.py",
    "ganblocks/nn/mapping.py",
    "ganblocks/nn/minibatch_std.py",
    "ganblocks/nn/modulation.py",
    "ganblocks/nn/resample.py",
    "ganblocks/nn/resblocks.py",
    "ganblocks/nn/spade.py",
    "ganblocks/nn/spade_resblock.py",
    "ganblocks/nn/spectral_norm.py",
    "ganblocks/nn/noise.py",
    "ganblocks/nn/noise3d.py",
    "ganblocks/nn/torgb.py",
    "ganblocks/nn/epilogue.py",
    "ganblocks/nn/truncation.py",
    "ganblocks/losses/adversarial.py",
    "ganblocks/losses/labelmix.py",
    "ganblocks/losses/oasis.py",
    "ganblocks/losses/regularizers.py",
    "ganblocks/losses/path_length.py",
    "ganblocks/augment/ada.py",
    "ganblocks/metrics/fid.py",
    "ganblocks/metrics/frechet.py",
    "ganblocks/metrics/kid.py",
    "ganblocks/metrics/miou.py",
    "ganblocks/metrics/inception.py",
]

# Calls never removed (removing them is a type change, not a realistic numerical bug).
KEEP_CALLS = {
    "isinstance",
    "len",
    "int",
    "float",
    "str",
    "bool",
    "tuple",
    "list",
    "dict",
    "set",
    "super",
    "range",
    "print",
    "type",
    "getattr",
    "setattr",
    "hasattr",
    "enumerate",
    "zip",
    "sorted",
    "repr",
    "id",
    "iter",
    "next",
    "callable",
    "frozenset",
    "min",
    "max",
    "abs",
    "sum",
    "any",
    "all",
}
# Methods whose removal is a shape/type error rather than a realistic bug.
KEEP_METHODS = {"view", "reshape", "expand", "format", "get", "items", "keys", "values", "split"}
# Names whose attributes are functions or submodules, not tensors with methods.
MODULE_NAMES = {
    "torch",
    "F",
    "math",
    "np",
    "nn",
    "self",
    "cls",
    "os",
    "sys",
    "einops",
    "functional",
    "super",
}
SEQUENCE_LITERALS = (ast.List, ast.Tuple, ast.ListComp, ast.JoinedStr)
# Mode strings swapped with a realistic alternative.
STRING_SWAPS = {
    "nearest": "bilinear",
    "bilinear": "nearest",
    "mean": "sum",
    "sum": "mean",
    "lrelu": "linear",
    "linear": "lrelu",
    "relu": "lrelu",
    "reflect": "zeros",
    "zeros": "reflect",
    "none": "mean",
    "constant": "reflect",
    "bicubic": "bilinear",
}
BINOP_SWAPS: dict[type, type] = {
    ast.Add: ast.Sub,
    ast.Sub: ast.Add,
    ast.Mult: ast.Div,
    ast.Div: ast.Mult,
    ast.FloorDiv: ast.Mult,
    ast.Pow: ast.Mult,
    ast.Mod: ast.FloorDiv,
}
CMP_SWAPS: dict[type, type] = {
    ast.Lt: ast.GtE,
    ast.LtE: ast.Gt,
    ast.Gt: ast.LtE,
    ast.GtE: ast.Lt,
    ast.Eq: ast.NotEq,
    ast.NotEq: ast.Eq,
    ast.Is: ast.IsNot,
    ast.IsNot: ast.Is,
    ast.In: ast.NotIn,
    ast.NotIn: ast.In,
}
CMP_BOUNDARY: dict[type, type] = {
    ast.Lt: ast.LtE,
    ast.LtE: ast.Lt,
    ast.Gt: ast.GtE,
    ast.GtE: ast.Gt,
}
# Examples per property-based test during a mutation run (the suite's default is 40); set the
# environment variable GANBLOCKS_HYPOTHESIS_EXAMPLES to change it.
HYPOTHESIS_EXAMPLES = "10"
TORCH_THREADS = 1
EPSILON = 1e-4  # float constants this small are numerical guards: changing them is not a bug kind


@dataclasses.dataclass
class Mutant:
    """One one-line change of a module: ``line`` (1-based) becomes ``new_line``."""

    module: str
    line: int
    kind: str
    old_line: str
    new_line: str
    status: str = "pending"
    seconds: float = 0.0
    equivalent: Optional[str] = None

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.module, self.old_line.strip(), self.new_line.strip())

    def diff(self) -> str:
        head = f"{self.module}:{self.line} [{self.kind}]"
        return f"{head}\n- {self.old_line.strip()}\n+ {self.new_line.strip()}"


def _parent_map(tree: ast.AST) -> dict[ast.AST, ast.AST]:
    parents = {}
    for node in ast.walk(tree):
        for child in ast.iter_child_nodes(node):
            parents[child] = node
    return parents


def _skipped_nodes(tree: ast.AST) -> set[ast.AST]:
    """Nodes never mutated: docstrings, annotations, raise/assert/warn/log calls, f-strings."""
    skip: set[ast.AST] = set()

    def add(node: Optional[ast.AST]) -> None:
        if node is not None:
            skip.update(ast.walk(node))

    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        first = body[0] if isinstance(body, list) and body else None
        if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
            add(first)
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            add(node.returns)
            for a in node.args.args + node.args.kwonlyargs + node.args.posonlyargs:
                add(a.annotation)
            if node.args.vararg:
                add(node.args.vararg.annotation)
            if node.args.kwarg:
                add(node.args.kwarg.annotation)
            for dec in node.decorator_list:
                add(dec)
        elif isinstance(node, ast.AnnAssign):
            add(node.annotation)
        elif isinstance(node, (ast.Raise, ast.Assert, ast.JoinedStr, ast.Import, ast.ImportFrom)):
            add(node)
        elif isinstance(node, ast.Call):
            name = ast.unparse(node.func)
            if name.startswith(("warnings.", "logger.", "log.", "logging.")):
                add(node)
        elif isinstance(node, ast.Assign):
            if any(isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets):
                add(node)
        elif isinstance(node, ast.If) and ast.unparse(node.test) == "TYPE_CHECKING":
            add(node)
    return skip


def _wrap(expr: str) -> str:
    return expr if expr.isidentifier() else f"({expr})"


def _expr_mutations(node: ast.AST, parents: dict[ast.AST, ast.AST]) -> Iterator[tuple[str, str]]:
    """Yield ``(kind, replacement source)`` for one expression node."""
    if isinstance(node, ast.BinOp):
        if any(isinstance(o, SEQUENCE_LITERALS) for o in (node.left, node.right)):
            # list/tuple/str arithmetic: only drop a term (an operator swap is a TypeError)
            yield "drop term", _wrap(ast.unparse(node.left))
            yield "drop term", _wrap(ast.unparse(node.right))
            return
        new = BINOP_SWAPS.get(type(node.op))
        if new is not None:
            m = copy.deepcopy(node)
            m.op = new()
            yield "operator", _wrap(ast.unparse(m))
        if isinstance(node.op, (ast.Add, ast.Sub, ast.Mult, ast.Div, ast.Pow)):
            yield "drop term", _wrap(ast.unparse(node.left))
        if isinstance(node.op, (ast.Add, ast.Mult)):
            yield "drop term", _wrap(ast.unparse(node.right))
    elif isinstance(node, ast.UnaryOp):
        if isinstance(node.op, ast.USub) and not isinstance(node.operand, ast.Constant):
            yield "sign", _wrap(ast.unparse(node.operand))
        elif isinstance(node.op, ast.Not):
            yield "boolean", _wrap(ast.unparse(node.operand))
    elif isinstance(node, ast.BoolOp):
        m = copy.deepcopy(node)
        m.op = ast.Or() if isinstance(node.op, ast.And) else ast.And()
        yield "boolean", _wrap(ast.unparse(m))
    elif isinstance(node, ast.Compare) and len(node.ops) == 1:
        m = copy.deepcopy(node)
        m.ops = [CMP_SWAPS[type(node.ops[0])]()]
        yield "comparison", _wrap(ast.unparse(m))
        boundary = CMP_BOUNDARY.get(type(node.ops[0]))
        if boundary is not None:
            m = copy.deepcopy(node)
            m.ops = [boundary()]
            yield "comparison", _wrap(ast.unparse(m))
    elif isinstance(node, ast.Constant):
        v = node.value
        parent = parents.get(node)
        negative = isinstance(parent, ast.UnaryOp) and isinstance(parent.op, ast.USub)
        if isinstance(v, bool):
            yield "boolean", repr(not v)
        elif isinstance(v, int):
            yield "constant", repr(v + 1)
            if v > 1:
                yield "constant", repr(v - 1)
            elif v == 1 and not negative:
                yield "constant", "0"
        elif isinstance(v, float):
            if abs(v) < EPSILON and v != 0.0:
                return
            if v == 0.0:
                yield "constant", "1.0"
            elif v == 1.0:
                yield "constant", "0.5"
            else:
                yield "constant", repr(v * 2)
        elif isinstance(v, str) and v in STRING_SWAPS:
            yield "constant", repr(STRING_SWAPS[v])
    elif isinstance(node, ast.Call):
        func = node.func
        name = ast.unparse(func)
        if name in KEEP_CALLS or name.endswith(("Error", "Exception")):
            return
        positional = [a for a in node.args if not isinstance(a, ast.Starred)]
        for i, j in ((0, 1), (1, 2)):
            if len(positional) <= j or len(positional) != len(node.args):
                continue
            pair = (node.args[i], node.args[j])
            if ast.unparse(pair[0]) != ast.unparse(pair[1]) and not any(
                isinstance(a, ast.Constant) and isinstance(a.value, str) for a in pair
            ):
                m = copy.deepcopy(node)
                m.args[i], m.args[j] = m.args[j], m.args[i]
                yield "swap args", ast.unparse(m)
        root = func
        while isinstance(root, (ast.Attribute, ast.Call, ast.Subscript)):
            root = root.func if isinstance(root, ast.Call) else root.value
        module_like = isinstance(root, ast.Name) and root.id in MODULE_NAMES
        # Removed call: f(x, ...) -> x for functions and submodules (a dropped normalisation etc.)
        first_positional = bool(node.args) and not isinstance(node.args[0], ast.Starred)
        if first_positional and (isinstance(func, ast.Name) or module_like):
            yield "remove call", _wrap(ast.unparse(node.args[0]))
        # ... and tensor.method(...) -> tensor (a dropped .mean(), .sqrt(), .flip(), ...)
        if isinstance(func, ast.Attribute) and not module_like and func.attr not in KEEP_METHODS:
            yield "remove call", _wrap(ast.unparse(func.value))


def _stmt_mutations(node: ast.stmt) -> Iterator[tuple[str, str]]:
    """Whole-statement mutants: deletion of a call statement or augmented assignment, op swap."""
    if isinstance(node, ast.Expr) and isinstance(node.value, ast.Call):
        yield "delete statement", "pass"
    elif isinstance(node, ast.AugAssign):
        yield "delete statement", "pass"
        new = BINOP_SWAPS.get(type(node.op))
        if new is not None:
            m = copy.deepcopy(node)
            m.op = new()
            yield "operator", ast.unparse(m)


def generate(module: str, source: str) -> list[Mutant]:
    """All one-line mutants of ``source`` (the text of ``module``), in source order."""
    tree = ast.parse(source)
    parents = _parent_map(tree)
    skip = _skipped_nodes(tree)
    lines = source.splitlines(keepends=True)
    seen: set[tuple[int, str]] = set()
    mutants: list[Mutant] = []
    for node in ast.walk(tree):
        if node in skip or not hasattr(node, "lineno") or node.end_lineno != node.lineno:
            continue
        if isinstance(node, ast.stmt):
            gen = _stmt_mutations(node)
        elif isinstance(node, ast.expr):
            if isinstance(node, ast.Starred):
                continue
            gen = _expr_mutations(node, parents)
        else:
            continue
        line = lines[node.lineno - 1]
        prefix = line.encode()[: node.col_offset].decode()
        suffix = line.encode()[node.end_col_offset :].decode()
        for kind, repl in gen:
            new_line = prefix + repl + suffix
            if new_line == line or (node.lineno, new_line) in seen:
                continue
            candidate = "".join(lines[: node.lineno - 1]) + new_line + "".join(lines[node.lineno :])
            try:
                compile(candidate, module, "exec")
            except SyntaxError:
                continue
            seen.add((node.lineno, new_line))
            mutants.append(
                Mutant(module, node.lineno, kind, line.rstrip("\n"), new_line.rstrip("\n"))
            )
    # Negated conditions: ``if c:`` -> ``if not (c):`` (comparisons have their own flips).
    for node in ast.walk(tree):
        if isinstance(node, (ast.If, ast.While, ast.IfExp)) and node not in skip:
            test = node.test
            if isinstance(test, ast.Compare) or test.lineno != test.end_lineno or test in skip:
                continue
            line = lines[test.lineno - 1]
            b = line.encode()
            new_line = (
                b[: test.col_offset]
                + f"not ({ast.unparse(test)})".encode()
                + b[test.end_col_offset :]
            ).decode()
            key = (test.lineno, new_line)
            if key in seen:
                continue
            seen.add(key)
            mutants.append(
                Mutant(module, test.lineno, "boolean", line.rstrip("\n"), new_line.rstrip("\n"))
            )
    mutants.sort(key=lambda m: (m.line, m.kind, m.new_line))
    return mutants


def load_equivalents() -> dict[tuple[str, str, str], str]:
    """``(module, old line, new line) -> reason`` from ``tools/mutants_equivalent.toml``."""
    if not EQUIVALENT_FILE.exists():
        return {}
    if tomllib is None:
        raise SystemExit(f"reading {EQUIVALENT_FILE.name} needs Python >= 3.11 (tomllib)")
    data = tomllib.loads(EQUIVALENT_FILE.read_text())
    out = {}
    for entry in data.get("mutant", []):
        out[(entry["module"], entry["old"].strip(), entry["new"].strip())] = entry["reason"]
    return out


def make_copy(dest: Path) -> None:
    """Copy the worktree (sources, tests, configs) to ``dest``, without caches and ``.git``."""
    ignore = shutil.ignore_patterns(
        ".git",
        "__pycache__",
        "*.pyc",
        ".hypothesis",
        ".pytest_cache",
        ".ruff_cache",
        "runs",
        "build",
        "dist",
        "*.egg-info",
        "_build",
        "docs",
    )
    shutil.copytree(ROOT, dest, ignore=ignore, symlinks=True)


def _run_pytest_child(root: Path, args: list[str]) -> None:
    """In the forked child: run pytest on the copy and exit with its status."""
    os.setsid()
    os.chdir(root)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    os.dup2(devnull, 2)
    sys.dont_write_bytecode = True
    sys.path.insert(0, str(root))
    os.environ["PYTHONPATH"] = str(root) + os.pathsep + os.environ.get("PYTHONPATH", "")
    os.environ["PYTHONDONTWRITEBYTECODE"] = "1"
    os.environ.setdefault("GANBLOCKS_HYPOTHESIS_EXAMPLES", HYPOTHESIS_EXAMPLES)
    code = 3
    try:
        import pytest
        import torch

        # One torch thread per run: on a loaded machine, OpenMP threads waiting on each other
        # make small convolutions tens of times slower. conftest.py (and the CLI) ask for more;
        # those calls are ignored in this process.
        torch.set_num_threads(TORCH_THREADS)
        torch.set_num_threads = lambda _n: None

        code = int(pytest.main(["-x", "-q", "-p", "no:cacheprovider", "--no-header", *args]))
    finally:
        os._exit(code)


def run_tests(root: Path, args: list[str], timeout: float) -> tuple[str, float]:
    """Run pytest in a forked child; return (passed/failed/timeout/error, seconds)."""
    start = time.monotonic()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        _run_pytest_child(root, args)
    deadline = start + timeout
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        if time.monotonic() > deadline:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            return "timeout", time.monotonic() - start
        time.sleep(0.05)
    elapsed = time.monotonic() - start
    code = os.waitstatus_to_exitcode(status)
    # children that pytest started (data loaders, subprocess tests) go with it
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)
    if code == 0:
        return "passed", elapsed
    if code in (1, 2):  # failed, or collection/import error caused by the mutant
        return "failed", elapsed
    return "error", elapsed


def _score(ms: list[Mutant]) -> tuple[dict[str, int], float]:
    counts = {k: 0 for k in ("killed", "survived", "equivalent", "timeout", "error")}
    for m in ms:
        counts[m.status] += 1
    relevant = counts["killed"] + counts["survived"] + counts["timeout"]
    score = 100.0 * (counts["killed"] + counts["timeout"]) / relevant if relevant else 100.0
    return counts, score


def mutate_module(
    module: str,
    *,
    tests: list[str],
    sample: Optional[int],
    seed: int,
    timeout: Optional[float],
    jobs_root: Path,
    lines: Optional[tuple[int, int]],
    verbose: bool,
    list_only: bool,
    only: Optional[set[tuple[str, str, str]]] = None,
) -> list[Mutant]:
    # Mutate the copy's version: the working tree may change while a long run goes on.
    src_path = ROOT / module if list_only else jobs_root / module
    source = src_path.read_text()
    mutants = generate(module, source)
    if lines is not None:
        mutants = [m for m in mutants if lines[0] <= m.line <= lines[1]]
    if only is not None:
        mutants = [m for m in mutants if m.key in only]
    total = len(mutants)
    if sample is not None and sample < len(mutants):
        rng = random.Random(f"{seed}:{module}")
        mutants = sorted(rng.sample(mutants, sample), key=lambda m: (m.line, m.kind, m.new_line))
    print(
        f"== {module}: {total} mutants"
        + (f", sampled {len(mutants)}" if len(mutants) < total else ""),
        flush=True,
    )
    if list_only:
        for i, m in enumerate(mutants):
            print(f"[{i}] {m.diff()}")
        return mutants
    test_args = [t for t in tests if (jobs_root / t).exists()]
    missing = sorted(set(tests) - set(test_args))
    if missing:
        print(f"   (test files not present, skipped: {', '.join(missing)})")
    args = [*test_args, module]
    target = jobs_root / module
    status, base = run_tests(jobs_root, args, timeout=600)
    if status != "passed":
        raise SystemExit(f"{module}: the unmutated tests do not pass ({status}); fix them first")
    limit = timeout if timeout is not None else max(20.0, 3.0 * base + 10.0)
    print(
        f"   baseline {base:.1f}s, timeout per mutant {limit:.0f}s; tests: {' '.join(test_args)}",
        flush=True,
    )
    equivalents = load_equivalents()
    src_lines = source.splitlines(keepends=True)
    try:
        for i, m in enumerate(mutants):
            mutated = src_lines.copy()
            mutated[m.line - 1] = m.new_line + "\n"
            target.write_text("".join(mutated))
            result, m.seconds = run_tests(jobs_root, args, timeout=limit)
            m.status = {"passed": "survived", "failed": "killed"}.get(result, result)
            if m.status == "survived" and m.key in equivalents:
                m.status, m.equivalent = "equivalent", equivalents[m.key]
            if verbose or m.status not in ("killed",):
                print(
                    f"   [{i + 1}/{len(mutants)}] {m.status:10s} {m.seconds:5.1f}s  "
                    f"line {m.line} {m.kind}: {m.new_line.strip()}",
                    flush=True,
                )
    finally:
        target.write_text(source)
    counts, score = _score(mutants)
    print(
        f"   {module}: "
        + ", ".join(f"{k} {v}" for k, v in counts.items())
        + f"; score {score:.1f}%",
        flush=True,
    )
    return mutants


def _parse_lines(text: Optional[str]) -> Optional[tuple[int, int]]:
    if text is None:
        return None
    a, _, b = text.partition("-")
    return int(a), int(b or a)


def main(argv: Optional[list[str]] = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "modules", nargs="+", help="module paths relative to the repository root, or 'core'"
    )
    p.add_argument(
        "--tests", nargs="+", help="test files to run instead of the module's default list"
    )
    p.add_argument("--sample", type=int, help="run a random sample of this many mutants per module")
    p.add_argument("--seed", type=int, default=0, help="seed of --sample (default 0)")
    p.add_argument(
        "--timeout", type=float, help="seconds per mutant (default 3 × baseline + 10, at least 20)"
    )
    p.add_argument("--lines", help="only mutants on these lines, e.g. 40-80")
    p.add_argument(
        "--rerun",
        type=Path,
        help="only the mutants that survived (or timed out) in this --json file of an earlier run",
    )
    p.add_argument("--list", action="store_true", help="list the mutants without running them")
    p.add_argument("--verbose", action="store_true", help="print killed mutants too")
    p.add_argument("--json", type=Path, help="write every mutant and its status to this file")
    p.add_argument(
        "--fail-under", type=float, default=0.0, help="exit 1 if a module scores below this %%"
    )
    a = p.parse_args(argv)
    modules = [m for arg in a.modules for m in (CORE if arg == "core" else [arg])]
    for m in modules:
        if not (ROOT / m).is_file():
            p.error(f"modules: {m!r} is not a file under {ROOT}")
    if not a.list:
        # imported once here, shared by the forked children
        import pytest  # noqa: F401
        import torch  # noqa: F401

        for name in ("hypothesis", "numpy", "einops", "scipy.linalg", "PIL.Image"):
            with contextlib.suppress(ImportError):
                importlib.import_module(name)
    only = None
    if a.rerun is not None:
        earlier = json.loads(a.rerun.read_text())
        only = {
            (m["module"], m["old_line"].strip(), m["new_line"].strip())
            for ms in earlier.values()
            for m in ms
            if m["status"] in ("survived", "timeout", "error")
        }
    results: dict[str, list[Mutant]] = {}
    tmp = Path(tempfile.mkdtemp(prefix="ganblocks-mutate-"))
    try:
        copy_root = tmp / "wt"
        if not a.list:
            make_copy(copy_root)
        for module in modules:
            tests = a.tests or TESTS.get(module)
            if not tests:
                p.error(f"modules: no test list for {module!r}; pass --tests")
            results[module] = mutate_module(
                module,
                tests=tests,
                sample=a.sample,
                seed=a.seed,
                timeout=a.timeout,
                jobs_root=copy_root,
                lines=_parse_lines(a.lines),
                verbose=a.verbose,
                list_only=a.list,
                only=only,
            )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if a.list:
        return 0
    print("\n== summary")
    worst = 100.0
    for module, ms in results.items():
        counts, score = _score(ms)
        worst = min(worst, score)
        print(
            f"{module:40s} "
            + " ".join(f"{k}={v}" for k, v in counts.items())
            + f"  score={score:.1f}%"
        )
    for module, ms in results.items():
        surv = [m for m in ms if m.status == "survived"]
        if surv:
            print(f"\n== survivors in {module}")
            for m in surv:
                print(m.diff())
    if a.json:
        a.json.write_text(
            json.dumps(
                {k: [dataclasses.asdict(m) for m in v] for k, v in results.items()}, indent=1
            )
        )
    return 1 if worst < a.fail_under else 0


if __name__ == "__main__":
    sys.exit(main())
