"""§3.5 Generators: draw latent codes of a chosen class from a class density.

With the paper's diagonal density all three draw z_y = (1/n) Σ_i z_i with z_i ~ N(μ_y, θ ⊙ σ_y)
(θ scales the standard deviation); with any density of :mod:`catvae.densities.base` they draw
z = centre + θ ⊙ spread (:func:`~catvae.densities.base.sample_codes`). They differ only in the shape of θ:

- Simple (§3.5.1, eq. 3): one scalar θ;
- Medium-1 (§3.5.2): θ_d, one per latent dimension (a vector of length D);
- Medium-2 (§3.5.3): θ_{y,d}, one per class and dimension (an L×D matrix, row y for label y).

The mean of n draws is distributed as N(μ_y, θσ_y/√n), so θ_eff = θ/√n is what sets the spread.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from omegaconf import OmegaConf

from catvae.core.errors import ArgumentError
from catvae.core.targets import instantiate
from catvae.densities.base import ClassDensity, sample_codes
from catvae.models.networks import ImageDecoder

Theta = float | Sequence | Mapping | None
PlainTheta = float | list | dict | None  # θ as plain Python containers (what _plain returns)


class ThetaError(ValueError):
    """θ, or one entry of it, is not allowed. ``path`` locates the entry (``()`` for θ itself,
    ``(3,)``, ``(7, 3)``), so that a caller can name it in its own terms (a config key)."""

    def __init__(self, path: tuple[int | str, ...], value: object, allowed: str):
        self.path, self.value, self.allowed = path, value, allowed
        super().__init__(f"theta{''.join(f'[{index}]' for index in path)}={value!r} is not allowed: {allowed}")


def _number(value: object, path: tuple = ()) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise ThetaError(path, value, "a number >= 0")
    return float(value)


def _shape_words(shape: tuple[int, ...]) -> str:
    if not shape:
        return "a number >= 0"
    if len(shape) == 1:
        return f"a number or a list of {shape[0]} numbers >= 0"
    return f"a number or a {'×'.join(map(str, shape))} nested list of numbers >= 0"


def theta_tensor(theta: Theta, shape: tuple[int, ...], fill: float, path: tuple = ()) -> torch.Tensor:
    """θ as a tensor of ``shape`` from a scalar (every entry), a nested list of exactly that shape,
    or a nested mapping ``{index: …}`` whose missing entries take ``fill`` (how a search sets one
    entry per parameter, e.g. ``+generator.theta.3=0.2``); ``None`` is ``fill`` everywhere.
    Anything else raises :class:`ThetaError` locating the entry."""
    if theta is None:
        return torch.full(shape, fill, dtype=torch.float64)
    if not isinstance(theta, (Mapping, Sequence)) or isinstance(theta, str):
        return torch.full(shape, _number(theta, path), dtype=torch.float64)
    if not shape:
        raise ThetaError(path, _plain_value(theta), _shape_words(shape))
    if isinstance(theta, Mapping):
        out = torch.full(shape, fill, dtype=torch.float64)
        for index, value in theta.items():
            if not str(index).isdigit() or int(index) >= shape[0]:
                raise ThetaError((*path, index), value, f"an index from 0 to {shape[0] - 1}")
            out[int(index)] = theta_tensor(value, shape[1:], fill, (*path, int(index)))
        return out
    if len(theta) != shape[0]:
        raise ThetaError(path, _plain_value(theta), _shape_words(shape))
    return torch.stack([theta_tensor(value, shape[1:], fill, (*path, i)) for i, value in enumerate(theta)])


def check_theta(theta: Theta, shape: tuple[int, ...]) -> None:
    """Raise :class:`ThetaError` unless θ has entries >= 0 in ``shape`` (a scalar or a partial mapping included)."""
    theta_tensor(theta, shape, 0.0)


def _plain_value(theta: object) -> object:
    """Lists and mappings as plain Python (for messages)."""
    if isinstance(theta, Mapping):
        return {str(k): _plain_value(v) for k, v in theta.items()}
    if isinstance(theta, Sequence) and not isinstance(theta, str):
        return [_plain_value(v) for v in theta]
    return theta


def _plain(theta: Theta, path: tuple = ()) -> PlainTheta:
    """θ as plain Python containers (for JSON and W&B), every entry checked to be a number >= 0."""
    if theta is None:
        return None
    if isinstance(theta, Mapping):
        for index in theta:
            if not str(index).isdigit():
                raise ThetaError((*path, index), theta[index], "an integer index from 0")
        return {str(k): _plain(v, (*path, k)) for k, v in theta.items()}
    if isinstance(theta, Sequence) and not isinstance(theta, str):
        return [_plain(v, (*path, i)) for i, v in enumerate(theta)]
    return _number(theta, path)


def _rounded(theta: float | list) -> float | list:
    """Round away binary noise (0.7000000000000001 → 0.7) in a number or nested list."""
    return [_rounded(v) for v in theta] if isinstance(theta, list) else round(theta, 10)


def _leaves(theta: PlainTheta) -> list[float]:
    if isinstance(theta, dict):
        return [x for v in theta.values() for x in _leaves(v)]
    if isinstance(theta, list):
        return [x for v in theta for x in _leaves(v)]
    return [] if theta is None else [theta]


class Simple:
    """Eq. 3 with a scalar θ ≥ 0 and n ≥ 1 draws averaged."""

    name = "simple"

    def __init__(self, theta: Theta = 0.4, n: int = 2, fill: float = 1.0):
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ArgumentError("n", n, "an integer >= 1")
        if isinstance(fill, bool) or not isinstance(fill, (int, float)) or not math.isfinite(fill) or fill < 0:
            raise ArgumentError("fill", fill, "a number >= 0")
        self.n = n
        self.fill = float(fill)
        self.theta = _plain(theta)  # entries are checked here; the shape once statistics are known

    @staticmethod
    def theta_shape_for(num_classes: int, latent_dim: int) -> tuple[int, ...]:
        """The shape θ has for ``num_classes`` classes in a ``latent_dim``-dimensional latent space: () for Simple."""
        return ()

    def theta_shape(self, stats: ClassDensity) -> tuple[int, ...]:
        """The shape θ has for these statistics."""
        return self.theta_shape_for(stats.num_classes, stats.latent_dim)

    def scale(self, stats: ClassDensity) -> torch.Tensor:
        """θ broadcast to the L×D shape of the density (``theta_full`` of :func:`sample_codes`)."""
        shape = self.theta_shape(stats)
        mean = stats.mean
        return theta_tensor(self.theta, shape, self.fill).to(mean).expand(stats.num_classes, stats.latent_dim)

    def sample(self, stats: ClassDensity, labels: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """One latent code per entry of ``labels`` (K), K×D, on the density's device:
        z = centre + θ[label] ⊙ spread (:func:`~catvae.densities.base.sample_codes`).

        The noise is drawn on the CPU (from ``generator``) and moved in one copy, so a seed gives
        the same codes on every device.
        """
        return sample_codes(stats, self.scale(stats), self.n, labels, generator)

    def params(self, stats: ClassDensity | None = None) -> dict:
        """Parameters as logged: name, θ, n, and θ_eff = θ/√n averaged over θ's entries. With ``stats``,
        θ is given in full (a number, a D-list or an L×D nested list, every unset entry filled in)."""
        theta: PlainTheta
        if stats is not None:
            full = theta_tensor(self.theta, self.theta_shape(stats), self.fill)
            theta, mean_theta = _rounded(full.tolist()), float(full.mean())
        else:
            leaves = _leaves(self.theta)
            theta, mean_theta = self.theta, sum(leaves) / len(leaves) if leaves else self.fill
        return {"name": self.name, "theta": theta, "n": self.n, "theta_eff": round(mean_theta / math.sqrt(self.n), 10)}


class Medium1(Simple):
    """§3.5.2: θ_d per latent dimension (a list of D values, a scalar, or a mapping ``{d: θ_d}``)."""

    name = "medium1"

    @staticmethod
    def theta_shape_for(num_classes: int, latent_dim: int) -> tuple[int, ...]:
        return (latent_dim,)


class Medium2(Simple):
    """§3.5.3: θ_{y,d} per class y and dimension d (L×D nested list, scalar, or ``{y: {d: θ}}``)."""

    name = "medium2"

    @staticmethod
    def theta_shape_for(num_classes: int, latent_dim: int) -> tuple[int, ...]:
        return (num_classes, latent_dim)


def generator_name(node: Mapping) -> str:
    """``catvae.generators.gaussian.Medium1`` → ``medium1``: the name a config's target goes by."""
    return str(node["_target_"]).rsplit(".", 1)[-1].lower()


def build_generator(node: Mapping) -> Simple:
    """Instantiate the ``generator`` node (a plain mapping, or a config node resolved here) from its
    values alone. ``from_search=best`` must have been resolved into θ and n by the entry point
    (:func:`catvae.sweep.records.resolve_generator`): a generator never reads a file, so what it
    draws depends on its config only."""
    params: Any = OmegaConf.to_container(node, resolve=True) if OmegaConf.is_config(node) else dict(node)
    source = params.pop("from_search", None)
    if source is not None:
        raise ValueError(
            f"generator.from_search={source!r} reached build_generator unresolved; the entry point "
            "resolves it with catvae.sweep.records.resolve_generator"
        )
    return instantiate(params)


def target_labels(labels: list[int] | int, per_label: int) -> torch.Tensor:
    """``per_label`` copies of each label (all ``labels`` if an int count of classes), grouped: 0,0,…,1,1,…"""
    chosen = torch.arange(labels) if isinstance(labels, int) else torch.tensor(labels, dtype=torch.long)
    return chosen.repeat_interleave(per_label)


def generate_images(
    generator: Simple, stats: ClassDensity, decoder: ImageDecoder, labels: torch.Tensor, seed: int
) -> torch.Tensor:
    """Decoded images (K×784) for the K target ``labels``, reproducible from ``seed``; a conditional
    decoder (CVAE) is given the labels."""
    codes = generator.sample(stats, labels, torch.Generator().manual_seed(seed))
    return decoder.images(codes, labels.to(codes.device))
