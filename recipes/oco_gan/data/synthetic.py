"""SyntheticScenes: procedural outdoor scenes with semantic label maps, rendered on the fly.

The built-in data set of the recipe: ``oco-gan demo`` and the integration tests train on it, so it
needs no download and renders fast (about 1-2 ms for a 64x64 sample on one CPU core; vectorised
numpy, no per-pixel Python loops). It is made to be learnable but not trivial:

* **layouts vary** (unconditional generation has to learn them): horizon height, zero to two
  mountain ranges with random silhouettes, optional sea with a wavy shore and beach, or a pond,
  a road in perspective with a random vanishing point and bend, a cluster of buildings, trees whose
  size follows their depth, boulders, the sun;
* **textures live inside the classes** (conditional generation has to learn them, since the label
  map does not show them): sky gradients and clouds, the sun's glow, snow caps, ripples and the
  sun's reflection on water, grass noise, road markings, window grids (lit or dark), leaves,
  trunks, rock speckle, with per-image colour variation (day, dusk, overcast);
* class 0 is **don't-care**: a few small odd blobs (about 0.5 % of the pixels), like unannotated
  objects in real data sets.

Scenes are deterministic per ``(index, seed, split)``; their geometry lives in normalised
coordinates, so the same scene renders at any resolution (round shapes stay round at other aspect
ratios, e.g. 32x64 for the 2:1 Cityscapes-like shape).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, ClassVar, Dict, List, Optional, Sequence, Tuple

import einops
import numpy as np
import torch
from torch.utils.data import Dataset

from ganblocks.data import (
    FlipRNG,
    colorize_labels,
    fingerprint,
    hflip_pair,
    parse_resolution,
    split_key,
)

__all__ = ["SyntheticScenes", "render_scene"]

DONTCARE, SKY, SUN, MOUNTAIN, WATER, GRASS, SAND, ROAD, BUILDING, TREE, ROCK = range(11)
CLASS_NAMES: Tuple[str, ...] = (
    "dontcare",
    "sky",
    "sun",
    "mountain",
    "water",
    "grass",
    "sand",
    "road",
    "building",
    "tree",
    "rock",
)
PALETTE = np.array(
    [
        [0, 0, 0],  # dontcare
        [110, 170, 240],  # sky
        [255, 220, 60],  # sun
        [130, 90, 160],  # mountain
        [30, 60, 200],  # water
        [60, 170, 60],  # grass
        [230, 200, 130],  # sand
        [90, 90, 90],  # road
        [200, 70, 50],  # building
        [0, 90, 30],  # tree
        [170, 160, 150],  # rock
    ],
    dtype=np.uint8,
)
_SPLITS = {"train": 0, "val": 1}


# ----------------------------------------------------------------------------------------------
# noise fields (resolution independent: a fixed random lattice queried at normalised coordinates)


class _Noise2D:
    """Value noise in [0, 1): a ``(cy+1) x (cx+1)`` random lattice, smoothstep interpolation."""

    def __init__(self, rng: np.random.Generator, cy: int, cx: int) -> None:
        self.cy, self.cx = cy, cx
        self.grid = rng.random((cy + 1, cx + 1), dtype=np.float32)

    def __call__(self, yv: np.ndarray, xv: np.ndarray) -> np.ndarray:
        """``yv: [h]``, ``xv: [w]`` in [0, 1] → ``[h, w]``."""
        fy = np.clip(yv, 0.0, 1.0) * self.cy
        fx = np.clip(xv, 0.0, 1.0) * self.cx
        iy = np.minimum(fy.astype(np.int64), self.cy - 1)
        ix = np.minimum(fx.astype(np.int64), self.cx - 1)
        ty, tx = fy - iy, fx - ix
        ty = (ty * ty * (3 - 2 * ty))[:, None]
        tx = (tx * tx * (3 - 2 * tx))[None, :]
        rows0, rows1 = self.grid[iy], self.grid[iy + 1]  # [h, cx+1]
        top = rows0[:, ix] * (1 - tx) + rows0[:, ix + 1] * tx
        bot = rows1[:, ix] * (1 - tx) + rows1[:, ix + 1] * tx
        return (top * (1 - ty) + bot * ty).astype(np.float32)


def _noise1d(rng: np.random.Generator, cells: int, x: np.ndarray) -> np.ndarray:
    """1-D value noise in [0, 1) with ``cells`` cells over [0, 1], evaluated at ``x``."""
    grid = rng.random(cells + 1)
    f = np.clip(x, 0.0, 1.0) * cells
    i = np.minimum(f.astype(np.int64), cells - 1)
    t = f - i
    t = t * t * (3 - 2 * t)
    return grid[i] * (1 - t) + grid[i + 1] * t


def _smoothstep(a: float, b: float, x: np.ndarray) -> np.ndarray:
    t = np.clip((x - a) / (b - a), 0.0, 1.0)
    return t * t * (3 - 2 * t)


def _jitter(rng: np.random.Generator, colour: Sequence[float], amount: float) -> np.ndarray:
    c = np.asarray(colour, dtype=np.float64) + rng.uniform(-amount, amount, 3)
    return np.clip(c, 0.0, 1.0).astype(np.float32)


# ----------------------------------------------------------------------------------------------
# layout: every random choice of geometry, drawn from one generator before any pixel is touched


def _ridge_params(rng: np.random.Generator) -> Dict[str, Any]:
    return {"grid": [rng.random(c + 1) for c in (3, 7, 15)], "weights": (0.55, 0.3, 0.15)}


def _ridge(params: Dict[str, Any], x: np.ndarray) -> np.ndarray:
    """Mountain profile in [0, 1] (peaky: folded value noise)."""
    out = np.zeros_like(x, dtype=np.float64)
    for grid, w in zip(params["grid"], params["weights"]):
        cells = len(grid) - 1
        f = np.clip(x, 0.0, 1.0) * cells
        i = np.minimum(f.astype(np.int64), cells - 1)
        t = f - i  # linear interpolation: sharp ridges and peaks
        out = out + w * (grid[i] * (1 - t) + grid[i + 1] * t)
    return 1.0 - np.abs(2.0 * out - 1.0) ** 0.8


def _draw_layout(rng: np.random.Generator) -> Dict[str, Any]:
    """A random scene layout: every random draw of a scene, in a fixed order (the painters
    only read it)."""
    lay: Dict[str, Any] = {}
    lay["mode"] = rng.choice(3, p=[0.6, 0.25, 0.15])  # day, dusk, overcast
    lay["horizon"] = float(rng.uniform(0.32, 0.6))
    _layout_sky(lay, rng)
    _layout_mountains(lay, rng)
    _layout_water(lay, rng)
    _layout_road(lay, rng)
    _layout_buildings(lay, rng)
    _layout_trees(lay, rng)
    _layout_rocks(lay, rng)
    _layout_blobs(lay, rng)
    return lay


def _layout_sky(lay: Dict[str, Any], rng: np.random.Generator) -> None:
    """Draw the sun (or none) above the horizon into ``lay``."""
    h = lay["horizon"]
    lay["sun"] = None
    if rng.random() < (0.2 if lay["mode"] == 2 else 0.55):
        r = float(rng.uniform(0.035, 0.07))
        lay["sun"] = (
            float(rng.uniform(0.1, 0.9)),
            float(rng.uniform(0.06, max(0.07, h - 0.1))),
            r,
        )


def _layout_mountains(lay: Dict[str, Any], rng: np.random.Generator) -> None:
    """Draw 0-2 mountain ranges behind the horizon into ``lay``."""
    h = lay["horizon"]
    lay["mountains"] = []
    n_ranges = rng.choice(3, p=[0.35, 0.4, 0.25])
    for k in range(n_ranges):
        lay["mountains"].append(
            {
                "height": float(rng.uniform(0.08, 0.3) * (1.0 - 0.35 * k) * h / 0.45),
                "ridge": _ridge_params(rng),
                "snow": bool(rng.random() < 0.45),
                "far": k == 0 and n_ranges == 2,
            }
        )


def _layout_water(lay: Dict[str, Any], rng: np.random.Generator) -> None:
    """Draw a sea along the horizon, a pond, or neither into ``lay``."""
    h = lay["horizon"]
    lay["sea"] = lay["pond"] = None
    u = rng.random()
    if u < 0.3:
        lay["sea"] = {
            "depth": float(rng.uniform(0.06, 0.4) * (1 - h)),
            "shore_amp": float(rng.uniform(0.01, 0.06)),
            "shore_cells": int(rng.integers(2, 6)),
            "shore": rng.random(6),
            "beach": float(rng.uniform(0.03, 0.09)) if rng.random() < 0.65 else 0.0,
        }
    elif u < 0.45:
        cy = float(rng.uniform(h + 0.12, 0.85))
        lay["pond"] = {
            "cx": float(rng.uniform(0.15, 0.85)),
            "cy": cy,
            "rx": float(rng.uniform(0.12, 0.35)),
            "ry": float(rng.uniform(0.04, 0.1) * (cy - h) / 0.3),
            "beach": float(rng.uniform(0.015, 0.04)) if rng.random() < 0.5 else 0.0,
        }


def _layout_road(lay: Dict[str, Any], rng: np.random.Generator) -> None:
    """Draw a road running to the horizon (or none) into ``lay``."""
    lay["road"] = None
    if rng.random() < 0.5:
        lay["road"] = {
            "vx": float(rng.uniform(0.25, 0.75)),
            "bx": float(rng.uniform(0.15, 0.85)),
            "half": float(rng.uniform(0.12, 0.35)),
            "bend": float(rng.uniform(-0.25, 0.25)),
            "dashes": bool(rng.random() < 0.7),
            "edges": bool(rng.random() < 0.6),
        }


def _layout_buildings(lay: Dict[str, Any], rng: np.random.Generator) -> None:
    """Draw buildings standing on grass, far ones first into ``lay``."""
    h = lay["horizon"]
    # objects standing on the ground: rejected where the ground is water, sand or road
    lay["buildings"] = []
    if rng.random() < 0.55:
        centre, spread = float(rng.uniform(0.1, 0.9)), float(rng.uniform(0.08, 0.35))
        for _ in range(int(rng.integers(1, 8))):
            for _try in range(4):
                bx = float(np.clip(centre + rng.normal(0.0, spread), 0.02, 0.98))
                by = float(h + rng.uniform(0.0, 0.08) * (1 - h))
                if _ground_at(lay, bx, by) == GRASS:
                    break
            else:
                continue
            depth = (by - h) / (1 - h)
            scale = 0.8 + 1.5 * depth
            bw = float(rng.uniform(0.06, 0.16) * scale)
            bh = float(rng.uniform(0.08, 0.33) * scale * h / 0.45)
            cols = int(rng.integers(2, 7))
            lay["buildings"].append(
                {
                    "x": bx,
                    "base": by,
                    "w": bw,
                    "h": bh,
                    "family": int(rng.integers(5)),
                    "cols": cols,
                    "rows": int(np.clip(round(bh * cols / (1.3 * bw)), 2, 10)),
                    "fill": float(rng.uniform(0.45, 0.7)),
                    "roof": bool(rng.random() < 0.4),
                    "lit": rng.random((10, 6)),
                }
            )
        lay["buildings"].sort(key=lambda b: b["base"])


def _layout_trees(lay: Dict[str, Any], rng: np.random.Generator) -> None:
    """Draw trees standing on grass, far ones first into ``lay``."""
    h = lay["horizon"]
    lay["trees"] = []
    if rng.random() < 0.7:
        for _ in range(int(rng.integers(1, 10))):
            for _try in range(4):
                tx = float(rng.uniform(0.0, 1.0))
                ty = float(h + (1 - h) * rng.uniform(0.02, 1.05) ** 1.5)
                if _ground_at(lay, tx, ty) == GRASS:
                    break
            else:
                continue
            depth = (ty - h) / (1 - h)
            r = float(rng.uniform(0.035, 0.07) * (0.35 + 1.6 * depth))
            lay["trees"].append(
                {
                    "x": tx,
                    "base": ty,
                    "r": r,
                    "trunk": float(r * rng.uniform(0.6, 1.4)),
                    "trunk_w": float(r * rng.uniform(0.16, 0.3)),
                    "conifer": bool(rng.random() < 0.35),
                    "lobes": rng.uniform(-1.0, 1.0, (3, 3)),
                    "colour": int(rng.choice(3, p=[0.7, 0.15, 0.15])),
                }
            )
        lay["trees"].sort(key=lambda t: t["base"])


def _layout_rocks(lay: Dict[str, Any], rng: np.random.Generator) -> None:
    """Draw rocks on grass or sand, far ones first into ``lay``."""
    h = lay["horizon"]
    lay["rocks"] = []
    if rng.random() < 0.35:
        for _ in range(int(rng.integers(1, 5))):
            rx = float(rng.uniform(0.0, 1.0))
            ry = float(h + (1 - h) * rng.uniform(0.1, 1.0))
            if _ground_at(lay, rx, ry) not in (GRASS, SAND):
                continue
            depth = (ry - h) / (1 - h)
            w = float(rng.uniform(0.02, 0.06) * (0.4 + 1.4 * depth))
            lay["rocks"].append(
                {"x": rx, "base": ry, "w": w, "h": float(w * rng.uniform(0.5, 1.0))}
            )
        lay["rocks"].sort(key=lambda t: t["base"])


def _layout_blobs(lay: Dict[str, Any], rng: np.random.Generator) -> None:
    """Draw small coloured blobs anywhere (clutter) into ``lay``."""
    lay["blobs"] = []
    for _ in range(int(rng.choice(5, p=[0.25, 0.3, 0.25, 0.12, 0.08]))):
        lay["blobs"].append(
            {
                "x": float(rng.uniform(0.0, 1.0)),
                "y": float(rng.uniform(0.0, 1.0)),
                "rx": float(rng.uniform(0.018, 0.05)),
                "ry": float(rng.uniform(0.018, 0.05)),
                "colour": rng.random(3),
            }
        )


def _sea_shore(lay: Dict[str, Any], x: np.ndarray) -> np.ndarray:
    sea = lay["sea"]
    cells = sea["shore_cells"]
    grid = sea["shore"][: cells + 1]
    f = np.clip(x, 0.0, 1.0) * cells
    i = np.minimum(np.asarray(f).astype(np.int64), cells - 1)
    t = f - i
    t = t * t * (3 - 2 * t)
    wave = grid[i] * (1 - t) + grid[i + 1] * t
    return lay["horizon"] + sea["depth"] + sea["shore_amp"] * (2 * wave - 1)


def _road_geometry(lay: Dict[str, Any], y: np.ndarray) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    road, h = lay["road"], lay["horizon"]
    t = np.clip((y - h) / (1 - h), 0.0, 1.0)
    centre = road["vx"] + (road["bx"] - road["vx"]) * t + road["bend"] * t * (1 - t)
    half = road["half"] * t + 0.002
    return t, centre, half


def _ground_class(lay: Dict[str, Any], x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Class of the ground (below the horizon) at ``(x, y)``: grass, sand, water or road."""
    x, y = np.broadcast_arrays(np.asarray(x, np.float64), np.asarray(y, np.float64))
    out = np.full(x.shape, GRASS, dtype=np.int64)
    wet = np.zeros(x.shape, dtype=bool)
    if lay["sea"] is not None:
        shore = _sea_shore(lay, x)
        beach = (y >= shore) & (y < shore + lay["sea"]["beach"])
        sea = y < shore
        out[beach] = SAND
        out[sea] = WATER
        wet = sea | beach
    if lay["pond"] is not None:
        p = lay["pond"]
        d = ((x - p["cx"]) / p["rx"]) ** 2 + ((y - p["cy"]) / p["ry"]) ** 2
        scale = 1.0 + p["beach"] / p["ry"]
        beach = d < scale * scale
        out[beach] = SAND
        out[d < 1.0] = WATER
        wet = wet | beach
    if lay["road"] is not None:
        _, centre, half = _road_geometry(lay, y)
        out[(np.abs(x - centre) < half) & ~wet] = ROAD
    return out


def _ground_at(lay: Dict[str, Any], x: float, y: float) -> int:
    return int(_ground_class(lay, np.array(x), np.array(y)))


# ----------------------------------------------------------------------------------------------
# rendering


def _box(x0: float, x1: float, y0: float, y1: float, hh: int, ww: int):
    """Pixel slices covering the normalised box, or None when it is empty."""
    c0, c1 = max(0, math.floor(x0 * ww)), min(ww, math.ceil(x1 * ww))
    r0, r1 = max(0, math.floor(y0 * hh)), min(hh, math.ceil(y1 * hh))
    if c0 >= c1 or r0 >= r1:
        return None
    return slice(r0, r1), slice(c0, c1)


def _cells(c: int, aspect: float) -> int:
    """Noise cells across the width for ``c`` cells per unit of height (square cells)."""
    return max(1, round(c * aspect))


@dataclass
class _Canvas:
    """A scene being painted: the layout, the colour and noise streams, the pixel grid, the
    scene-wide noise fields, and the image and label map so far.

    The painters below run in a fixed order and each draws its colours from :attr:`rng` (and its
    noise lattices from :attr:`lattice_rng`) in a fixed order: the scene of a seed depends on it.
    """

    lay: Dict[str, Any]
    #: Colours (resolution independent).
    rng: np.random.Generator
    #: Noise lattices (their cell counts depend on the aspect ratio).
    lattice_rng: np.random.Generator
    #: Pixel centres in [0, 1]: rows ``[H]`` and columns ``[W]``.
    yv: np.ndarray
    xv: np.ndarray
    #: Fine and mid-scale value noise, and per-pixel uniform speckle, ``[H, W]``.
    n_fine: np.ndarray
    n_mid: np.ndarray
    speck: np.ndarray
    #: The image ``[H, W, 3]`` (painted first by :func:`_paint_sky`) and the label map
    #: ``[H, W]`` (all sky until painted over).
    img: np.ndarray = field(init=False)
    label: np.ndarray = field(init=False)
    #: The sky's colour at the horizon (haze and water reflect it) and the sun's colour, set by
    #: :func:`_paint_sky` and :func:`_paint_sun`.
    hor: np.ndarray = field(init=False)
    sun_col: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        self.img = np.zeros((self.hh, self.ww, 3), dtype=np.float32)
        self.label = np.full((self.hh, self.ww), SKY, dtype=np.int64)
        self.hor = self.sun_col = np.zeros(3, dtype=np.float32)

    @property
    def hh(self) -> int:
        return len(self.yv)

    @property
    def ww(self) -> int:
        return len(self.xv)

    @property
    def aspect(self) -> float:
        return self.ww / self.hh

    @property
    def yy(self) -> np.ndarray:
        return self.yv[:, None]

    @property
    def xx(self) -> np.ndarray:
        return self.xv[None, :]

    def cells(self, c: int) -> int:
        """``c`` noise cells per unit of height → cells across the width."""
        return _cells(c, self.aspect)

    def box(self, x0: float, x1: float, y0: float, y1: float):
        """Pixel slices covering the normalised box, or None when it is empty."""
        return _box(x0, x1, y0, y1, self.hh, self.ww)


def _paint_sky(c: _Canvas) -> None:
    """Vertical gradient from the top colour to the horizon colour, then clouds."""
    lay, rng, mode = c.lay, c.rng, c.lay["mode"]
    top, hor = [
        ((0.22, 0.42, 0.85), (0.68, 0.82, 0.96)),
        ((0.2, 0.2, 0.5), (0.98, 0.58, 0.32)),
        ((0.52, 0.55, 0.6), (0.78, 0.78, 0.8)),
    ][mode]
    top, hor = _jitter(rng, top, 0.07), _jitter(rng, hor, 0.06)
    t = np.clip(c.yy / lay["horizon"], 0.0, 1.0)[..., None]
    img = np.broadcast_to(top * (1 - t) + hor * t, (c.hh, c.ww, 3)).astype(np.float32)
    cloud_field = 0.6 * _Noise2D(c.lattice_rng, 4, c.cells(2))(c.yv, c.xv) + 0.4 * c.n_mid
    cover = float(rng.uniform(0.35, 0.75)) - (0.2 if mode == 2 else 0.0)
    cloud = _smoothstep(cover, cover + 0.18, cloud_field)[..., None] * float(rng.uniform(0.5, 0.95))
    cloud_col = _jitter(rng, [(0.97, 0.97, 0.98), (0.95, 0.72, 0.7), (0.9, 0.9, 0.92)][mode], 0.03)
    c.img = img * (1 - cloud) + cloud_col * (cloud * (0.85 + 0.15 * c.n_fine[..., None]))
    c.hor = hor


def _paint_sun(c: _Canvas) -> None:
    """The sun's disk and glow (when the layout has a sun); sets :attr:`_Canvas.sun_col`."""
    c.sun_col = np.array((1.0, 0.96, 0.75) if c.lay["mode"] != 1 else (1.0, 0.78, 0.45))
    if c.lay["sun"] is None:
        return
    sx, sy, sr = c.lay["sun"]
    d = np.sqrt(((c.xx - sx) * c.aspect) ** 2 + (c.yy - sy) ** 2)
    glow = np.exp(-np.maximum(d - sr, 0) / (2.5 * sr))[..., None] * 0.45
    c.img = c.img * (1 - glow) + c.sun_col * glow
    disk = d < sr
    c.img[disk] = c.sun_col
    c.label[disk] = SUN


def _paint_mountains(c: _Canvas) -> None:
    """Silhouettes over the horizon, shaded with depth, with snow caps."""
    h, yy, n_fine = c.lay["horizon"], c.yy, c.n_fine
    for m in c.lay["mountains"]:
        top_y = h - m["height"] * (0.35 + 0.65 * _ridge(m["ridge"], c.xv))  # [W]
        mask = (yy > top_y[None, :]) & (yy < h + 0.01)
        base = (0.5, 0.55, 0.68) if m["far"] else (0.36, 0.36, 0.3)
        base = _jitter(c.rng, base, 0.06)
        if c.lay["mode"] == 1:
            base = base * np.array((0.8, 0.65, 0.75))
        rel = ((yy - top_y[None, :]) / max(m["height"], 1e-3))[..., None]
        shade = 1.0 - 0.25 * np.clip(rel, 0, 1) + 0.25 * (n_fine[..., None] - 0.5)
        col = base * shade
        if m["snow"]:
            snow_line = h - m["height"] * (0.6 + 0.25 * c.n_mid)
            snow = ((yy < snow_line) & mask)[..., None]
            col = np.where(
                snow, np.array((0.93, 0.94, 0.97)) * (0.9 + 0.1 * n_fine[..., None]), col
            )
        c.img = np.where(mask[..., None], col, c.img)
        c.label[mask] = MOUNTAIN


def _paint_ground(c: _Canvas) -> None:
    """Below the horizon: grass fading into haze, sea or pond, beach sand, the road."""
    lay, rng = c.lay, c.rng
    h, yy, speck = lay["horizon"], c.yy, c.speck
    below = yy >= h
    ground = np.where(below, _ground_class(lay, c.xx, yy), -1)
    depth = np.clip((yy - h) / (1 - h), 0, 1)[..., None]
    grass = _jitter(
        rng, [(0.3, 0.55, 0.18), (0.55, 0.55, 0.22), (0.25, 0.45, 0.2)][rng.choice(3)], 0.05
    )
    if lay["mode"] == 1:
        grass = grass * np.array((0.85, 0.7, 0.6))
    haze = (1 - depth) * 0.35
    g_tex = 0.75 + 0.35 * c.n_fine[..., None] + 0.15 * (speck[..., None] - 0.5) * depth
    grass_img = (grass * g_tex) * (1 - haze) + c.hor * haze
    c.img = np.where((ground == GRASS)[..., None], grass_img, c.img)
    if lay["sea"] is not None or lay["pond"] is not None:
        c.img = np.where((ground == WATER)[..., None], _water_texture(c), c.img)
    sand = _jitter(rng, (0.84, 0.76, 0.55), 0.05)
    c.img = np.where((ground == SAND)[..., None], sand * (0.85 + 0.25 * speck[..., None]), c.img)
    if lay["road"] is not None:
        c.img = np.where((ground == ROAD)[..., None], _road_texture(c), c.img)
    c.label = np.where(below, ground, c.label)


def _water_texture(c: _Canvas) -> np.ndarray:
    """``[H, W, 3]``: deep colour mixed with the horizon's, ripple streaks, the sun's glint."""
    streak = _Noise2D(c.lattice_rng, 48, c.cells(3))(c.yv, c.xv)
    deep = _jitter(c.rng, (0.08, 0.24, 0.42), 0.05)
    mix = float(c.rng.uniform(0.3, 0.6))
    water = deep * (1 - mix) + c.hor * mix
    ripple = 0.8 + 0.4 * streak[..., None]
    water_img = water * ripple
    if c.lay["sun"] is not None:
        sx = c.lay["sun"][0]
        glint = np.exp(-(((c.xx - sx) * c.aspect / 0.04) ** 2))[..., None] * (
            streak[..., None] > 0.5
        )
        water_img = water_img * (1 - 0.6 * glint) + c.sun_col * 0.6 * glint
    return water_img


def _road_texture(c: _Canvas) -> np.ndarray:
    """``[H, W, 3]``: speckled asphalt with edge lines and centre dashes in perspective."""
    road, ww = c.lay["road"], c.ww
    tt, centre, half = _road_geometry(c.lay, c.yy)
    rel = np.abs(c.xx - centre) / half
    asphalt = _jitter(c.rng, (0.3, 0.3, 0.32), 0.04) * (0.85 + 0.2 * c.speck[..., None])
    paint = np.zeros((c.hh, ww), dtype=bool)
    if road["edges"]:
        paint |= (rel > 0.86) & (rel < 0.93)
    if road["dashes"]:
        phase = 1.0 / (tt + 0.08)
        paint |= (rel < 0.04 + 0.5 / max(half.max() * ww, 1)) & (np.mod(phase * 1.5, 1.0) < 0.5)
    return np.where(paint[..., None], np.array((0.92, 0.92, 0.86)), asphalt)


#: Wall colours of the building families.
_WALLS = ((0.6, 0.3, 0.22), (0.6, 0.6, 0.6), (0.8, 0.72, 0.55), (0.88, 0.88, 0.85),
          (0.35, 0.45, 0.6))


def _paint_buildings(c: _Canvas) -> None:
    """Rectangles with window grids (lit or dark) and an optional roof band."""
    xv, yv = c.xv, c.yv
    lit_p = 0.5 if c.lay["mode"] == 1 else 0.12
    for b in c.lay["buildings"]:
        x0, x1 = b["x"] - b["w"] / 2, b["x"] + b["w"] / 2
        y0, y1 = b["base"] - b["h"], b["base"]
        wall = _jitter(c.rng, _WALLS[b["family"]], 0.06)
        box = c.box(x0, x1, y0, y1)
        if box is None:
            continue
        ys, xs = box
        u = (xv[xs] - x0) / (x1 - x0)  # [w] in [0, 1] across the facade
        v = (yv[ys] - y0) / (y1 - y0)  # [h] from the top
        grain = 0.9 + 0.15 * (c.n_fine[ys, xs, None] - 0.5)
        col = wall * grain * (0.85 + 0.15 * u[None, :, None])
        roof_h = 0.08 if b["roof"] else 0.0
        fu = u * b["cols"]
        fv = (v - roof_h) / (1 - roof_h - 0.06) * b["rows"]
        in_u = (np.mod(fu, 1.0) > (1 - b["fill"]) / 2) & (np.mod(fu, 1.0) < (1 + b["fill"]) / 2)
        in_v = (np.mod(fv, 1.0) > 0.25) & (np.mod(fv, 1.0) < 0.8) & (fv >= 0) & (fv < b["rows"])
        window = in_v[:, None] & in_u[None, :]
        ci = np.clip(fu.astype(np.int64), 0, 5)
        ri = np.clip(fv.astype(np.int64), 0, 9)
        lit = b["lit"][ri][:, ci] < lit_p
        win_col = np.where(
            lit[..., None], np.array((0.95, 0.85, 0.45)), np.array((0.14, 0.17, 0.25))
        )
        col = np.where(window[..., None], win_col, col)
        if b["roof"]:
            col = np.where((v < roof_h)[:, None, None], wall * 0.55, col)
        c.img[ys, xs] = col
        c.label[ys, xs] = BUILDING


#: Leaf colours of the tree crowns.
_LEAVES = ((0.16, 0.4, 0.14), (0.62, 0.45, 0.12), (0.1, 0.3, 0.16))


def _paint_trees(c: _Canvas) -> None:
    """Trunk and crown (round with lobes, or a conifer), lit from the sun's side."""
    light_x = (c.lay["sun"][0] - 0.5) * 2 if c.lay["sun"] is not None else 0.5
    trunk_col = _jitter(c.rng, (0.33, 0.22, 0.12), 0.04)
    for tr in c.lay["trees"]:
        r, tx, base = tr["r"], tr["x"], tr["base"]
        rx = r / c.aspect  # radius in normalised x
        crown_cy = base - tr["trunk"] - 0.75 * r
        top = crown_cy - (1.6 * r if tr["conifer"] else 1.25 * r)
        leaf = _jitter(c.rng, _LEAVES[tr["colour"]], 0.05)
        box = c.box(tx - 1.3 * rx, tx + 1.3 * rx, top, base)
        if box is None:
            continue
        ys, xs = box
        dx = ((c.xv[xs] - tx) * c.aspect)[None, :]
        dy = (c.yv[ys] - crown_cy)[:, None]
        rows = c.yv[ys][:, None]
        crown = _crown_mask(tr, dx, dy, rows, top=top)
        trunk = (np.abs(dx) < tr["trunk_w"] / 2) & (rows > crown_cy) & (rows < base)
        mask = crown | trunk
        speck = c.speck[ys, xs, None]
        side = np.clip(0.5 + 0.5 * (dx * light_x - dy * 0.6) / r, 0, 1)[..., None]
        crown_col = leaf * (0.55 + 0.45 * side) * (0.7 + 0.6 * c.n_fine[ys, xs, None] * speck)
        col = np.where(crown[..., None], crown_col, trunk_col * (0.85 + 0.3 * speck))
        c.img[ys, xs] = np.where(mask[..., None], col, c.img[ys, xs])
        c.label[ys, xs] = np.where(mask, TREE, c.label[ys, xs])


def _crown_mask(tr: Dict[str, Any], dx: np.ndarray, dy: np.ndarray, rows: np.ndarray, *,
                top: float) -> np.ndarray:
    """The crown of tree ``tr`` in its box: ``dx [1, w]`` (aspect-corrected) and ``dy [h, 1]``
    from the crown's centre, ``rows [h, 1]`` the pixel rows, ``top`` the crown's top."""
    r, base = tr["r"], tr["base"]
    if tr["conifer"]:
        k = np.clip((rows - top) / (base - tr["trunk"] * 0.5 - top), 0, 1)
        crown = np.abs(dx) < r * 0.85 * k * (0.85 + 0.15 * np.cos(k * 40))
        crown &= rows < base - tr["trunk"] * 0.5
        return crown
    crown = (dx / r) ** 2 + (dy / r) ** 2 < 1.0
    for lx, ly, lr in tr["lobes"]:
        cx, cy, rr = 0.55 * lx * r, 0.45 * ly * r - 0.2 * r, r * (0.55 + 0.15 * lr)
        crown |= ((dx - cx) ** 2 + (dy - cy) ** 2) < rr * rr
    return crown


def _paint_rocks(c: _Canvas) -> None:
    """Half-ellipse boulders with speckle and a lit top."""
    rock_col = _jitter(c.rng, (0.5, 0.49, 0.47), 0.05)
    for rk in c.lay["rocks"]:
        w, hgt = rk["w"], rk["h"]
        box = c.box(rk["x"] - w / c.aspect, rk["x"] + w / c.aspect, rk["base"] - hgt, rk["base"])
        if box is None:
            continue
        ys, xs = box
        dx = ((c.xv[xs] - rk["x"]) * c.aspect / w)[None, :]
        dy = ((c.yv[ys] - rk["base"]) / hgt)[:, None]
        mask = (dx * dx + dy * dy < 1.0) & (dy < 0)
        shade = 0.6 + 0.5 * np.clip(-dy, 0, 1) + 0.3 * (c.speck[ys, xs] - 0.5)
        c.img[ys, xs] = np.where(mask[..., None], rock_col * shade[..., None], c.img[ys, xs])
        c.label[ys, xs] = np.where(mask, ROCK, c.label[ys, xs])


def _paint_dontcare(c: _Canvas) -> None:
    """Small unannotated odd blobs, labelled don't-care."""
    for bl in c.lay["blobs"]:
        rx = bl["rx"] / c.aspect
        box = c.box(bl["x"] - rx, bl["x"] + rx, bl["y"] - bl["ry"], bl["y"] + bl["ry"])
        if box is None:
            continue
        ys, xs = box
        dx = ((c.xv[xs] - bl["x"]) / rx)[None, :]
        dy = ((c.yv[ys] - bl["y"]) / bl["ry"])[:, None]
        mask = dx * dx + dy * dy < 1.0
        col = bl["colour"] * (0.6 + 0.8 * c.speck[ys, xs, None])
        c.img[ys, xs] = np.where(mask[..., None], col, c.img[ys, xs])
        c.label[ys, xs] = np.where(mask, DONTCARE, c.label[ys, xs])


#: The painters in the order they paint (and draw their random numbers).
_PAINTERS = (_paint_sky, _paint_sun, _paint_mountains, _paint_ground, _paint_buildings,
             _paint_trees, _paint_rocks, _paint_dontcare)


def render_scene(
    index: int, *, seed: int = 0, split: str = "train", resolution=(64, 64),
    supersample: int = 1,
) -> Tuple[np.ndarray, np.ndarray]:
    """Render scene ``index`` of SyntheticScenes.

    Args:
        index: Scene number (any non-negative int).
        seed: Seed of the scene family.
        split: ``"train"`` or ``"val"`` (different scenes).
        resolution: ``(H, W)`` or an int.
        supersample: ``k >= 1``: the image is the mean of each ``k × k`` block of the scene
            rendered at ``(k·H, k·W)`` (each pixel integrates its area, as a camera's does, instead
            of sampling the scene's textures at its centre); the label map is the one rendered at
            ``(H, W)``. 1 (default): rendered at ``(H, W)`` directly.

    Returns:
        ``image``: float32 ``[H, W, 3]`` in [0, 1]; ``label``: int64 ``[H, W]`` in ``[0, 11)``.

    Example:
        >>> img, lab = render_scene(0, resolution=(32, 64))
        >>> img.shape, lab.shape, bool(lab.max() < 11)
        ((32, 64, 3), (32, 64), True)
        >>> fine, _ = render_scene(0, resolution=(64, 128))
        >>> soft, lab2 = render_scene(0, resolution=(32, 64), supersample=2)
        >>> blocks = fine.reshape(32, 2, 64, 2, 3).mean((1, 3))
        >>> bool(np.allclose(soft, blocks)), bool((lab2 == lab).all())
        (True, True)
    """
    if isinstance(supersample, bool) or not isinstance(supersample, (int, np.integer)) \
            or supersample < 1:
        raise ValueError(f"supersample must be an int >= 1, got {supersample!r}")
    if supersample > 1:
        hh, ww = parse_resolution(resolution)
        k = int(supersample)
        fine, _ = render_scene(index, seed=seed, split=split, resolution=(k * hh, k * ww))
        _, label = render_scene(index, seed=seed, split=split, resolution=(hh, ww))
        image = einops.reduce(fine, "(h a) (w b) c -> h w c", "mean", a=k, b=k)
        return image.astype(np.float32), label
    if split not in _SPLITS:
        raise ValueError(f"split must be one of {sorted(_SPLITS)}, got {split!r}")
    if isinstance(index, bool) or not isinstance(index, (int, np.integer)) or index < 0:
        raise ValueError(f"index must be a non-negative int, got {index!r}")
    hh, ww = parse_resolution(resolution)
    seq = np.random.SeedSequence([int(seed) & 0xFFFFFFFF, _SPLITS[split], int(index)])
    # independent streams, so that resolution-dependent draws never shift the others: layout,
    # colours (resolution independent), noise lattices (depend on the aspect ratio), pixel noise
    layout_rng, rng, lattice_rng, pixel_rng = map(np.random.default_rng, seq.spawn(4))
    lay = _draw_layout(layout_rng)
    yv = ((np.arange(hh) + 0.5) / hh).astype(np.float32)
    xv = ((np.arange(ww) + 0.5) / ww).astype(np.float32)
    aspect = ww / hh
    n_fine = _Noise2D(lattice_rng, 24, _cells(24, aspect))(yv, xv)
    n_mid = _Noise2D(lattice_rng, 8, _cells(8, aspect))(yv, xv)
    canvas = _Canvas(lay=lay, rng=rng, lattice_rng=lattice_rng, yv=yv, xv=xv, n_fine=n_fine,
                     n_mid=n_mid, speck=pixel_rng.random((hh, ww), dtype=np.float32))
    for paint in _PAINTERS:
        paint(canvas)
    # global colour variation and sensor noise
    gain = _jitter(rng, (1.0, 1.0, 1.0), 0.05) * float(rng.uniform(0.85, 1.1))
    img = canvas.img * gain + pixel_rng.normal(0.0, 0.012, (hh, ww, 1))
    return np.clip(img, 0.0, 1.0).astype(np.float32), canvas.label


class SyntheticScenes(Dataset):
    """Procedural outdoor scenes with semantic label maps (the recipe's built-in data set).

    Items are dicts ``{"image": float32 [3, H, W] in [-1, 1], "label": int64 [H, W],
    "has_label": True, "index": int}``; classes are :attr:`CLASS_NAMES` (11, class 0 is
    don't-care). See the module docstring for what the scenes contain.

    Args:
        resolution: ``(H, W)`` or an int; any size (geometry is resolution independent).
        split: ``"train"`` or ``"val"``: disjoint families of scenes.
        size: Number of distinct scenes (default 10 000 for train, 1 000 for val).
        seed: Seed of the scene family; item ``i`` is the same for the same ``(i, seed, split)``.
        flip: Random horizontal flip of image and label together (keys ``(i, flip)`` fix it).
        supersample: Each pixel is the mean of ``supersample²`` samples of the scene (see
            :func:`render_scene`); 1 (default) samples it once, at the pixel's centre.

    Example:
        >>> ds = SyntheticScenes(resolution=(32, 64), size=8)
        >>> item = ds[3]
        >>> item["image"].shape, item["label"].shape, ds.num_classes
        (torch.Size([3, 32, 64]), torch.Size([32, 64]), 11)
        >>> torch.equal(item["label"], SyntheticScenes(resolution=(32, 64))[3]["label"])
        True
    """

    CLASS_NAMES: Tuple[str, ...] = CLASS_NAMES
    PALETTE: np.ndarray = PALETTE

    #: Number of scenes of each split when ``size`` is not given.
    DEFAULT_SIZES: ClassVar[Dict[str, int]] = {"train": 10_000, "val": 1_000}

    def __init__(
        self,
        *,
        resolution=(64, 64),
        split: str = "train",
        size: Optional[int] = None,
        seed: int = 0,
        flip: bool = False,
        supersample: int = 1,
    ) -> None:
        if split not in _SPLITS:
            raise ValueError(f"split must be one of {sorted(_SPLITS)}, got {split!r}")
        if size is None:
            size = self.DEFAULT_SIZES[split]
        if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 1:
            raise ValueError(f"size must be a positive int, got {size!r}")
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
            raise TypeError(f"seed must be an int, got {type(seed).__name__}")
        if isinstance(supersample, bool) or not isinstance(supersample, (int, np.integer)) \
                or supersample < 1:
            raise ValueError(f"supersample must be an int >= 1, got {supersample!r}")
        self.resolution: Tuple[int, int] = parse_resolution(resolution)
        self.supersample = int(supersample)
        self.split = split
        self.size = int(size)
        self.seed = int(seed)
        self.flip = bool(flip)
        self.num_classes = len(CLASS_NAMES)
        self.class_names: List[str] = list(CLASS_NAMES)
        self.dontcare_index: Optional[int] = DONTCARE
        self.palette = PALETTE
        self.labelled_mask = np.ones(self.size, dtype=bool)
        self._coin = FlipRNG(None)

    def __len__(self) -> int:
        return self.size

    @property
    def item_names(self) -> List[str]:
        """Names identifying each scene (for split fingerprints)."""
        return [f"synthetic/{self.split}/{self.seed}/{i}" for i in range(self.size)]

    @property
    def fingerprint(self) -> str:
        """Hash identifying this family of scenes, its size and its rendering."""
        extra = f"/supersample={self.supersample}" if self.supersample > 1 else ""
        return fingerprint([f"synthetic/{self.split}/{self.seed}/{self.size}{extra}"])

    def has_label(self, index: int) -> bool:
        """Every scene has a label map."""
        return True

    def get_item(
        self, index: int, *, flip: Optional[bool] = None, with_label: bool = True
    ) -> Dict[str, Any]:
        """Scene ``index``; ``flip`` overrides the random flip; ``with_label=False`` zeros labels.

        Returns the item dict described in the class docstring.
        """
        index, _ = split_key(index, self.size)
        img, lab = render_scene(index, seed=self.seed, split=self.split, resolution=self.resolution,
                                supersample=self.supersample)
        image = torch.from_numpy(np.ascontiguousarray(einops.rearrange(img, "h w c -> c h w")))
        image = image.mul_(2.0).sub_(1.0)
        label = torch.from_numpy(lab) if with_label else torch.zeros(lab.shape, dtype=torch.int64)
        if flip is None:
            flip = self.flip and self._coin.coin()
        if flip:
            image, label = hflip_pair(image, label)
        return {"image": image, "label": label, "has_label": bool(with_label), "index": index}

    def __getitem__(self, key) -> Dict[str, Any]:
        index, flip = split_key(key, self.size)
        return self.get_item(index, flip=flip)

    def colorize(self, label: torch.Tensor) -> torch.Tensor:
        """Label map(s) ``[..., H, W]`` → uint8 RGB ``[..., 3, H, W]`` with :attr:`PALETTE`."""
        return colorize_labels(label, self.num_classes, palette=self.palette, channels_first=True)

    def __repr__(self) -> str:
        return (
            f"SyntheticScenes(resolution={self.resolution}, split={self.split!r}, "
            f"size={self.size}, seed={self.seed}, flip={self.flip}"
            + (f", supersample={self.supersample})" if self.supersample > 1 else ")")
        )
