"""A trained VDM bound for coding: the jitted network calls that encoder and decoder share.

Encoder and decoder must compute the prior p(z_s | z_t) bit for bit alike, so both call the same
jitted functions here, on the same shapes, and nothing else feeds the coded quantities.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from diffc.models import checkpoint, integer_unet, registry, vdm
from diffc.models.configs import VDMConfig
from diffc.models.integer_unet import IntegerUNet


@dataclass(frozen=True, eq=False)
class Denoiser:
    """A VDM prior with its parameters bound: ``name`` and ``weights_sha256`` identify it in streams."""

    config: VDMConfig
    params: Any = field(repr=False)
    name: str
    weights_sha256: str
    integer: IntegerUNet | None = field(default=None, repr=False)  # the exact network, where there is one
    integer_sha256: str = ""  # its file's sha256: how exact streams name it

    @cached_property
    def integer_eps(self):
        """Jitted integer eps_hat(z_t int32 (B, H, W, C) with ``integer_unet.Z_FRAC`` fraction
        bits, gamma codes (B,)) -> int32 with ``EPS_FRAC`` fraction bits: the exact path."""
        if self.integer is None:
            raise ValueError(f"model {self.name} has no integer network")
        return jax.jit(self.integer.eps)

    @property
    def hash8(self) -> bytes:
        """The first 8 bytes of the weights' sha256, as stored in stream headers."""
        return registry.stream_hash(self.weights_sha256)

    @cached_property
    def _fns(self) -> tuple[vdm.GammaFn, vdm.EpsFn]:
        return vdm.bound_fns(self.config, self.params)

    @cached_property
    def gamma_range(self) -> tuple[float, float]:
        """(gamma(0), gamma(1)): the schedule's endpoints, lowest and highest noise."""
        gamma_fn = self._fns[0]
        g = np.asarray(jax.jit(gamma_fn)(jnp.array([0.0, 1.0], jnp.float32)), np.float64)
        return float(g[0]), float(g[1])

    @cached_property
    def eps(self) -> vdm.EpsFn:
        """Jitted eps_hat(z_t (B, H, W, C), gamma_t (B,))."""
        return jax.jit(self._fns[1])

    @cached_property
    def prior_step(self):
        """Jitted (z_t (B, H, W, C), gamma_t, gamma_s) -> (mean, std) of p(z_s | z_t) (VDM eq. 27),
        float32; one noise level for the whole batch."""
        eps_fn = self._fns[1]

        def step(z_t: jax.Array, gamma_t: jax.Array, gamma_s: jax.Array) -> tuple[jax.Array, jax.Array]:
            g_t, g_s = gamma_t.reshape(1), gamma_s.reshape(1)
            eps = eps_fn(z_t, jnp.broadcast_to(g_t, z_t.shape[:1]))
            mean, var = vdm.model_step(z_t, eps, g_s, g_t)
            return mean, jnp.sqrt(var)

        return jax.jit(step)


def load(spec: str | Path) -> Denoiser:
    """The model named ``spec`` (a shipped checkpoint) or stored at path ``spec``, hash checked,
    with its integer network where the card names one (``checkpoint.read_integer``)."""
    from diffc.runtime.compilation_cache import enable_compilation_cache

    enable_compilation_cache()  # a second run on the same image size does not compile again
    path = registry.resolve(spec)
    config, params, card = checkpoint.load_model(path, "vdm")
    net, net_sha256 = checkpoint.load_integer(path, lambda blob: integer_unet.from_bytes(config, blob))
    return Denoiser(config, params, registry.display_name(path, card), card["sha256"], net, net_sha256)
