"""``load_nvlabs_pickle`` reads NVlabs-style network pickles safely and reproduces the golden
outputs; it never runs the embedded source and refuses any other global."""

from __future__ import annotations

import io
import os
import pickle
import pickletools

import pytest
import torch
from testutils import load_golden, rel_err

from recipes.stylegan2.nvlabs_pickle import UnsupportedPickleError, load_nvlabs_pickle
from recipes.stylegan2.testing.nvlabs_pickle import (
    PersistentStandIn,
    dumps,
    network_snapshot,
    source_was_executed,
)

CASES = [c for c in load_golden("baselines")["cases"] if c["kind"] == "nvlabs_stylegan2"]


def _snapshot(case, *, ada: bool):
    return network_snapshot(case["G_state"], case["D_state"],
                            generator_kwargs=case["generator_kwargs"],
                            discriminator_kwargs=case["discriminator_kwargs"],
                            form="ada" if ada else "stylegan3")


VARIANTS = [  # (case, stylegan2-ada form?, pickle protocol): each case, each repository, protocols
    (CASES[0], True, 4),
    (CASES[1], False, 4),
    (CASES[1], True, 2),
]


@pytest.mark.parametrize(
    ("case", "ada", "protocol"),
    VARIANTS,
    ids=[f"{c['name']}-{'ada' if a else 'sg3repo'}-p{p}" for c, a, p in VARIANTS],
)
def test_pickle_loads_and_reproduces_golden(case, ada, protocol, tmp_path):
    path = tmp_path / "network-snapshot-000000.pkl"
    path.write_bytes(dumps(_snapshot(case, ada=ada), protocol=protocol))
    nets = load_nvlabs_pickle(path)
    assert set(nets) == {"G", "D", "G_ema"}
    assert not source_was_executed()
    assert not any(m.training for m in nets.values())
    c = case["c"] if case["c"].numel() else None
    cutoff = None if case["truncation_cutoff"] < 0 else case["truncation_cutoff"]
    with torch.no_grad():
        for name in ("G", "G_ema"):
            img = nets[name](case["z"], c, case["truncation_psi"], cutoff, noise_mode="const")
            assert rel_err(img, case["img_noise_const"]) <= 1e-5
        logits = nets["D"](case["img_noise_const"], c)
    assert rel_err(logits, case["D_logits"]) <= 1e-5


def test_crafted_pickle_has_the_persistence_structure():
    data = dumps(_snapshot(CASES[0], ada=True))
    strings = {arg for op, arg, _ in pickletools.genops(data) if isinstance(arg, str)}
    assert {"torch_utils.persistence", "_reconstruct_persistent_obj", "module_src"} <= strings
    assert {"torch._utils", "_rebuild_tensor_v2", "dnnlib.util", "EasyDict"} <= strings
    assert {"numpy._core.multiarray", "numpy.core.multiarray"} & strings


class _Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


def test_any_other_global_is_refused():
    with pytest.raises(pickle.UnpicklingError, match="refusing to load the global"):
        load_nvlabs_pickle(io.BytesIO(pickle.dumps({"G": _Evil()})))
    snapshot = _snapshot(CASES[0], ada=True)
    snapshot["G"].meta["state"]["hook"] = _Evil()
    with pytest.raises(pickle.UnpicklingError, match="system"):
        load_nvlabs_pickle(io.BytesIO(dumps(snapshot)))


def test_stylegan3_pickles_are_not_supported():
    case = CASES[0]
    snapshot = _snapshot(case, ada=False)
    src = "class SynthesisInput(torch.nn.Module):\n    pass\n"
    synthesis = snapshot["G"].meta["state"]["_modules"]["synthesis"]
    synthesis.meta["state"]["_modules"]["input"] = PersistentStandIn(
        "SynthesisInput", {}, module_src=src
    )
    with pytest.raises(UnsupportedPickleError, match=r"StyleGAN3.*not supported"):
        load_nvlabs_pickle(io.BytesIO(dumps(snapshot)))


def test_bad_files_are_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="path"):
        load_nvlabs_pickle(tmp_path / "missing.pkl")
    with pytest.raises(UnsupportedPickleError, match="no networks"):
        load_nvlabs_pickle(io.BytesIO(pickle.dumps({"x": 1})))


def test_cli_generates_from_a_pickle(tmp_path):
    from recipes.stylegan2.__main__ import main

    case = CASES[1]  # conditional: needs --class
    path = tmp_path / "network-snapshot-000100.pkl"
    path.write_bytes(dumps(_snapshot(case, ada=True)))
    out = tmp_path / "img"
    with pytest.raises(ValueError, match="class_idx"):
        main(["generate", f"--network={path}", f"--out={out}", "--seeds=3"])
    assert main(["generate", f"--network={path}", f"--out={out}", "--seeds=3", "--class=2"]) == 0
    assert [p.name for p in out.glob("*.png")] == ["seed0003.png"]
    assert not source_was_executed()


def test_old_helper_module_is_a_deprecated_alias():
    import warnings

    from recipes.stylegan2 import nvlabs_pickle_testing as old
    from recipes.stylegan2 import testing

    assert sorted(old.__all__) == sorted(testing.__all__)
    for attr in testing.__all__:
        moved = rf"import {attr} from recipes\.stylegan2\.testing"
        with pytest.warns(DeprecationWarning, match=moved):
            assert getattr(old, attr) is getattr(testing, attr), attr
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(AttributeError, match="no_such_helper"):
            old.no_such_helper  # noqa: B018
    assert testing.dumps is dumps and testing.network_snapshot is network_snapshot
