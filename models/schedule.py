"""The noise schedule gamma(t) = log(sigma_t^2 / alpha_t^2), monotone increasing in t (VDM eq. 4).

Three forms, all starting at gamma(0) = gamma_min, gamma(1) = gamma_max:

- ``fixed``: gamma(t) = gamma_min + (gamma_max - gamma_min) t, no parameters;
- ``affine``: gamma(t) = b + |w| t with b, w learned (VDM's learned linear schedule);
- ``learned``: VDM's monotone network (appendix "noise schedule"): a linear layer plus a
  1024-unit sigmoid layer whose weights are used through their absolute values.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

SCHEDULES = ("fixed", "affine", "learned")


class DenseMonotone(nn.Module):
    """A dense layer with non-negative weights |W|, hence non-decreasing in each input."""

    features: int
    kernel_init: nn.initializers.Initializer = nn.initializers.lecun_normal()
    bias_init: nn.initializers.Initializer = nn.initializers.zeros

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        kernel = self.param("kernel", self.kernel_init, (x.shape[-1], self.features))
        bias = self.param("bias", self.bias_init, (self.features,))
        return x @ jnp.abs(kernel) + bias


class NoiseSchedule(nn.Module):
    """gamma(t) for t of any shape; returns an array of the same shape."""

    kind: str
    gamma_min: float
    gamma_max: float
    hidden: int = 1024

    @nn.compact
    def __call__(self, t: jax.Array) -> jax.Array:
        t = jnp.asarray(t, jnp.float32)
        span = self.gamma_max - self.gamma_min
        if self.kind == "fixed":
            return self.gamma_min + span * t
        if self.kind not in SCHEDULES:
            raise ValueError(f"unknown schedule {self.kind!r}; choose one of {SCHEDULES}")
        x = t.reshape(-1, 1)
        linear = DenseMonotone(
            1, kernel_init=nn.initializers.constant(span),
            bias_init=nn.initializers.constant(self.gamma_min), name="linear",
        )
        gamma = linear(x)
        if self.kind == "learned":
            h = DenseMonotone(self.hidden, kernel_init=nn.initializers.normal(1.0), name="hidden")(
                2.0 * (x - 0.5)
            )
            h = 2.0 * (nn.sigmoid(h) - 0.5)
            gamma = gamma + DenseMonotone(1, kernel_init=nn.initializers.normal(1.0), name="out")(h) / self.hidden
        return gamma.reshape(t.shape)
