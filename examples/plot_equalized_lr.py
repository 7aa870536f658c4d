r"""
Equalised learning rate against plain layers
============================================

Adam moves every parameter by roughly the learning rate per step, whatever the scale of
its gradient. With the usual He initialisation a layer's weights have standard deviation
:math:`\sqrt{2 / \text{fan\_in}}`, so the *relative* change per step is about
:math:`\text{lr} \sqrt{\text{fan\_in} / 2}`: wide layers learn faster than narrow ones.
:class:`~ganblocks.nn.EqualLinear` stores :math:`w \sim \mathcal{N}(0, 1)` and
multiplies by :math:`\text{lr\_mul} / \sqrt{\text{fan\_in}}` in the forward pass, so
every layer changes at the same relative rate (``lr_mul`` times the learning rate).

Both networks below compute the same function family (8 → 512 → 512 → 1 with leaky ReLU
and the :math:`\sqrt 2` gain) and are trained on the same regression problem with Adam.
"""

import math

import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F
from torch import nn

from ganblocks.nn import EqualLinear

torch.manual_seed(0)
WIDTHS = [8, 512, 512, 1]
STEPS, LR = 12, 1e-3


class Plain(nn.Module):
    """nn.Linear layers, He-initialised, leaky ReLU with the same sqrt(2) gain."""

    def __init__(self) -> None:
        super().__init__()
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(WIDTHS, WIDTHS[1:]))
        for layer in self.layers:
            nn.init.normal_(layer.weight, std=math.sqrt(2 / layer.in_features))
            nn.init.zeros_(layer.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i < len(self.layers) - 1:
                x = F.leaky_relu(x, 0.2) * math.sqrt(2)
        return x

    def effective_weights(self) -> list:
        return [layer.weight for layer in self.layers]


class Equalized(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        acts = ["lrelu"] * (len(WIDTHS) - 2) + ["linear"]
        self.layers = nn.ModuleList(
            EqualLinear(a, b, activation=act)
            for a, b, act in zip(WIDTHS, WIDTHS[1:], acts)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = layer(x)
        return x

    def effective_weights(self) -> list:
        return [layer.weight * layer.weight_gain for layer in self.layers]


x = torch.randn(128, WIDTHS[0])
y = torch.sin(x.sum(dim=1, keepdim=True))

RATE = "relative change of the effective weight per step"
history = {}
for name, net in [("plain nn.Linear", Plain()), ("EqualLinear", Equalized())]:
    opt = torch.optim.Adam(net.parameters(), lr=LR, betas=(0.0, 0.99))
    rel_change, grad_std, weight_std = [], [], []
    for _ in range(STEPS):
        before = [w.detach().clone() for w in net.effective_weights()]
        loss = F.mse_loss(net(x), y)
        opt.zero_grad()
        loss.backward()
        grad_std.append([layer.weight.grad.std().item() for layer in net.layers])
        weight_std.append([layer.weight.std().item() for layer in net.layers])
        opt.step()
        after = [w.detach() for w in net.effective_weights()]
        rel_change.append([((a - b).norm() / b.norm()).item()
                           for a, b in zip(after, before)])
    history[name] = {RATE: torch.tensor(rel_change),
                     "std of the stored weight": torch.tensor(weight_std),
                     "std of the stored weight's gradient": torch.tensor(grad_std)}

# %%
# Weight and gradient scales over the first steps
# -----------------------------------------------
# Top row: how much each layer's effective weight moves per step, relative to its size.
# Plain layers move at rates set by their fan-in (8 vs 512); equalised ones all move at
# about ``lr``.

quantities = list(history["EqualLinear"])
fig, axes = plt.subplots(len(quantities), 2, figsize=(10, 8), sharex=True)
for col, name in enumerate(history):
    for row, quantity in enumerate(quantities):
        ax = axes[row, col]
        for layer in range(len(WIDTHS) - 1):
            ax.plot(history[name][quantity][:, layer], marker="o", ms=3,
                    label=f"layer {layer} (fan_in {WIDTHS[layer]})")
        ax.set_yscale("log")
        ax.set_title(f"{name}: {quantity}", fontsize=9)
        ax.grid(alpha=0.3)
    axes[-1, col].set_xlabel("Adam step")
axes[0, 0].legend(fontsize=8)
fig.tight_layout()

# %%
# What the plot shows, asserted
# -----------------------------
# After the first few steps (Adam's moment estimates settle), the spread of relative
# update rates across layers is the ratio of the largest to the smallest.

spread = {}
for name in history:
    rates = history[name][RATE][4:].mean(dim=0)
    spread[name] = (rates.max() / rates.min()).item()
    print(f"{name}: relative change per step by layer",
          [f"{r:.2e}" for r in rates.tolist()])
print({k: round(v, 2) for k, v in spread.items()})
assert spread["EqualLinear"] < 2.0      # every layer learns at the same pace
assert spread["plain nn.Linear"] > 4.0  # fan-in 512 moves ~sqrt(512/8) = 8x faster
# Equalised layers keep unit-variance stored weights, so state dicts are plain and
# portable.
assert abs(history["EqualLinear"]["std of the stored weight"][0, 1].item() - 1.0) < 0.05

# %%
# ``lr_mul``: a slower layer without touching the optimiser
# ---------------------------------------------------------
# StyleGAN's mapping network uses ``lr_mul=0.01``: the stored weight is divided by
# ``lr_mul`` at initialisation and multiplied by it in the forward pass, so the same
# Adam step changes the effective weight 100 times less.

fast, slow = EqualLinear(64, 64), EqualLinear(64, 64, lr_mul=0.01)
slow.weight.data.copy_(fast.weight.data / 0.01)  # identical function at the start
assert torch.allclose(fast(x.new_ones(1, 64)), slow(x.new_ones(1, 64)), atol=1e-5)
moves = []
for layer in (fast, slow):
    w0 = (layer.weight * layer.weight_gain).detach().clone()
    opt = torch.optim.Adam(layer.parameters(), lr=LR)
    layer(torch.randn(32, 64)).square().mean().backward()
    opt.step()
    moves.append(((layer.weight * layer.weight_gain).detach() - w0).abs().mean().item())
print(f"effective weight moved by {moves[0]:.2e} (lr_mul=1) "
      f"and {moves[1]:.2e} (lr_mul=0.01)")
assert math.isclose(moves[1] / moves[0], 0.01, rel_tol=0.05)
