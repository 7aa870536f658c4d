"""A tiny OCO-GAN configuration for fast tests (16×16 images, a few channels)."""

from __future__ import annotations

from recipes.oco_gan.config import apply_overrides, get_preset

TINY = [
    "model.resolution=16,16", "model.style_size=4,4", "model.z_dim=8", "model.style_channels=8",
    "model.mapping_layers=2", "model.channel_multiplier=0.03125", "model.max_channels=16",
    "model.cond_hidden_channels=8", "model.d_channel_multiplier=0.0625", "model.d_max_channels=16",
    "model.d_bottleneck=4", "data.synthetic_size=64", "train.batch_uncond=4",
    "train.batch_cond=2", "train.num_samples=2", "train.log_every=1", "train.sample_every=1000",
    "train.checkpoint_every=1000", "loss.r1_interval=2", "train.ema_rampup_steps=2",
]


def tiny_config(*extra: str):
    """The demo preset shrunk to 16×16 with ~16 channels, plus ``extra`` overrides."""
    return apply_overrides(get_preset("demo"), [*TINY, *extra])
