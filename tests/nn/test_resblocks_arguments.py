"""ResBlockD / ResBlockU name their bad arguments and inputs."""

from __future__ import annotations

import pytest
import torch

from ganblocks.nn import ResBlockD, ResBlockU


@pytest.mark.parametrize("block", [ResBlockD, ResBlockU])
@pytest.mark.parametrize(("args", "match"), [((0, 4), "in_channels"), ((4, 0), "out_channels")])
def test_channel_counts_are_checked_by_name(block, args, match):
    with pytest.raises(ValueError, match=match):
        block(*args)


@pytest.mark.parametrize("block", [ResBlockD, ResBlockU])
def test_input_channels_are_checked_by_name(block):
    with pytest.raises(ValueError, match=r"^x: "):
        block(4, 4)(torch.randn(1, 3, 8, 8))


def test_former_names_are_the_oasis_blocks():
    """``ResBlockD``/``ResBlockU`` stay importable as the same classes (checkpoints and code that
    used them keep working)."""
    import ganblocks.nn as gn
    from ganblocks.nn.resblocks import OASISResBlockDown, OASISResBlockUp

    assert gn.ResBlockD is OASISResBlockDown and gn.ResBlockU is OASISResBlockUp
    assert gn.OASISResBlockDown is OASISResBlockDown and gn.OASISResBlockUp is OASISResBlockUp
    assert set(ResBlockD(2, 3).state_dict()) == set(OASISResBlockDown(2, 3).state_dict())
