"""Model families: the kinds of model diffc trains and codes with (VDM, ARDM), as the training loop
and the checkpoints see them; where a checkpoint is found is the ``registry``'s part.

A family ties a config type to its parameters, its training loss and what its checkpoint stores.
A VDM checkpoint stores the parameters. An ARDM checkpoint stores them with the per-step loss
curve measured on the validation crops at save time: the coder plans its network calls with that
curve (ARDM appendix, "dynamic programming"), so it lives in the payload, under the weights' hash,
where encoder and decoder cannot be handed different ones.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import jax
import numpy as np

from diffc.models import ardm_network, vdm
from diffc.models.configs import ARDMConfig, Recipe, VDMConfig

Loss = Callable[[Any, Any, jax.Array, jax.Array], tuple[jax.Array, dict[str, jax.Array]]]
"""(params, config, batch k (B, H, W, C) uint8, key) -> (mean bits/dim to minimise, metrics)."""

CURVE_POINTS = 33  # known fractions 0, 1/32, ..., 1 of each stage in an ARDM checkpoint's loss curve
CURVE_CROPS = 128  # validation crops it is measured on (about 40 s per stage on 2 CPU cores, small config)
CURVE_BATCH = 32  # crops per network call when measuring it


@dataclass(frozen=True)
class Family:
    """One model family: its configs, parameters, loss and checkpoint payload.

    The payload is the parameter tree alone, or, for a family with ``extras``, ``{"params": ...}``
    plus the named 1-D arrays that ``extras(config)`` lists (name -> length), which ``measure``
    computes at save time from the parameters and the validation crops.
    """

    name: str  # the word in ``diffc train NAME`` and ``--prior NAME``
    model_format: str  # the checkpoint card's ``format``
    config_type: type[Recipe]
    init_params: Callable[[Any, int], Any]
    loss: Loss
    extras: Callable[[Any], dict[str, int]] | None = None
    measure: Callable[[Any, Any, np.ndarray | None], dict[str, np.ndarray]] | None = None

    @property
    def needs_validation(self) -> bool:
        """Whether a checkpoint cannot be written without validation crops."""
        return self.extras is not None

    def payload(self, config: Any, params: Any, val: np.ndarray | None) -> Any:
        """The tree a checkpoint stores for ``params``."""
        if self.extras is None:
            return params
        return {"params": params, **self.measure(config, params, val)}

    def payload_target(self, config: Any) -> Any:
        """A zero tree of the payload's structure and shapes, to restore a checkpoint into."""
        shapes = jax.eval_shape(lambda: self.init_params(config, 0))
        params = jax.tree.map(lambda s: np.zeros(s.shape, np.float32), shapes)
        if self.extras is None:
            return params
        return {"params": params, **{name: np.zeros(n, np.float32) for name, n in self.extras(config).items()}}


def _vdm_loss(params: Any, config: VDMConfig, k: jax.Array, key: jax.Array) -> tuple[jax.Array, dict]:
    """The continuous-time negative ELBO in bits/dim (VDM eq. 11, 17), and its terms."""
    gamma_fn, eps_fn = vdm.bound_fns(config, params)
    means = {name: v.mean() for name, v in vdm.elbo_terms(k, key, gamma_fn, eps_fn).items()}
    return means["bpd"], means


def _ardm_loss(params: Any, config: ARDMConfig, k: jax.Array, key: jax.Array) -> tuple[jax.Array, dict]:
    """ARDM's one-step estimate of the bound (section 3) in bits/dim."""
    loss = ardm_network.ardm_loss(params, config, k, key)
    return loss, {"bpd": loss}


def ardm_loss_curve(config: ARDMConfig, params: Any, val: np.ndarray | None) -> np.ndarray:
    """The per-step loss curve (``ardm_network.loss_curve``, ``CURVE_POINTS`` points per stage) averaged
    over the first ``CURVE_CROPS`` validation crops in batches of ``CURVE_BATCH``, with fixed keys
    so a save is reproducible."""
    if val is None:
        raise ValueError("an ARDM checkpoint needs validation crops to measure its loss curve")
    val = val[:CURVE_CROPS]
    key = jax.random.PRNGKey(4321)
    chunks = [val[i : i + CURVE_BATCH] for i in range(0, len(val), CURVE_BATCH)]
    curves = [
        len(c) * ardm_network.loss_curve(params, config, c, jax.random.fold_in(key, i), CURVE_POINTS)
        for i, c in enumerate(chunks)
    ]
    return (np.sum(curves, axis=0) / len(val)).astype(np.float32)


VDM = Family(
    name="vdm", model_format="diffc-vdm/1", config_type=VDMConfig, init_params=vdm.init_params,
    loss=_vdm_loss,
)
ARDM = Family(
    name="ardm", model_format="diffc-ardm/1", config_type=ARDMConfig, init_params=ardm_network.init_params,
    loss=_ardm_loss, extras=lambda config: {"loss_curve": config.stages * CURVE_POINTS},
    measure=lambda config, params, val: {"loss_curve": ardm_loss_curve(config, params, val)},
)
FAMILIES: dict[str, Family] = {f.name: f for f in (VDM, ARDM)}


def of(config: Recipe) -> Family:
    """The family of a config."""
    return next(f for f in FAMILIES.values() if isinstance(config, f.config_type))


def by_format(model_format: Any) -> Family | None:
    """The family whose checkpoints have this ``format``, if any."""
    return next((f for f in FAMILIES.values() if f.model_format == model_format), None)
