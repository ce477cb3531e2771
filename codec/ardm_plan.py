"""Step plans of parallelised ARDMs (Hoogeboom et al. 2022, "parallelized ARDMs" and the dynamic
program of its appendix).

An order codes the D subpixels of an image in D steps; a plan makes at most K network calls
instead. The call at step s, with s - 1 subpixels known, codes steps s .. e - 1 at once, each with
the distribution the network gives at s, so its expected cost is (e - s) L_s, L_t being the
per-step loss (the expected cost of a subpixel coded at step t,
``models.ardm_network.step_loss``). A plan is the steps s_1 = 1 < s_2 < ... < s_n <= D of its
n <= K calls, and the best plan minimises

    sum_i (s_(i+1) - s_i) L_(s_i),   s_(n+1) = D + 1,

which the dynamic program C_k(e) = min_(s < e) C_(k-1)(s) + (e - s) L_s, C_0(1) = 0 (the cost of
coding steps 1 .. e - 1 with k calls) solves in O(K D^2) time; ``plan_steps`` runs it on per-step
losses and ``brute_force_plan`` checks it on small cases.

Images. D is in the millions, so the coder plans from a loss curve: L as a function of the known
fraction f = (t - 1) / (D - 1), sampled at evenly spaced f (``models.ardm_network.loss_curve``,
stored with the model) and interpolated linearly. When D exceeds ``PLAN_GRID`` the calls may start only at
the G = ``PLAN_GRID`` steps 1 + floor(j D / G), j = 0 .. G - 1 (the same dynamic program over these
candidates), which costs O(K G^2) whatever D and, for calls much longer than D / G steps, loses
little against the exact plan.

Upscale ARDMs. An S-stage model codes S D global steps, stage by stage, with one curve per stage;
a call cannot span two stages (the next stage reads the bits this one codes), so the plan is the
same dynamic program over the stages' candidates (at most G / S each) with calls that cross a
stage's end priced at infinity: every stage gets at least one call, and the budget goes where the
curves say it pays.

Determinism. The decoder recomputes the plan, so it must come out the same on every machine: the
curve is quantised to multiples of ``LOSS_QUANTUM`` bits, interpolated in integer arithmetic, and
the dynamic program adds and compares integers (held exactly in float64 below 2**53); ties go to
the earliest step and the fewest calls.
"""

from __future__ import annotations

import itertools

import numpy as np

PLAN_GRID = 1024  # candidate call steps of a large image
LOSS_QUANTUM = 2.0**-16  # bits: the grid of the curve's values
MAX_LOSS_BITS = 64.0  # a curve's values lie in [0, MAX_LOSS_BITS]
MAX_CURVE_POINTS = 1 << 16


def plan_cost(losses: np.ndarray, starts: np.ndarray) -> float:
    """sum_i (s_(i+1) - s_i) L_(s_i) for per-step losses L_1 .. L_D (``losses[t - 1]``) and call
    steps ``starts`` (1-based, ascending, starts[0] = 1)."""
    losses = np.asarray(losses, np.float64)
    s = np.asarray(starts, np.int64)
    widths = np.diff(np.append(s, losses.size + 1))
    return float((widths * losses[s - 1]).sum())


def _optimal(
    positions: np.ndarray, losses: np.ndarray, end: int, budget: int, reach: np.ndarray | None = None
) -> np.ndarray:
    """Indices into ``positions`` (candidate call steps, ascending, the first 1) of the calls of the
    cheapest plan with at most ``budget`` calls covering steps positions[0] .. end - 1, a call at
    positions[i] costing ``losses[i]`` per step and coding no step at or past ``reach[i]`` (its
    stage's end; default ``end``)."""
    n = positions.size
    bounds = np.append(positions, end).astype(np.float64)  # (n + 1,)
    # cost[j, i]: the call at candidate i coding the steps up to bound j (exclusive); rows are
    # contiguous, so the minimum over i is a fast row reduction
    cost = (bounds[:, None] - bounds[None, :n]) * np.asarray(losses, np.float64)[None, :]  # (n + 1, n)
    cost[np.arange(n + 1)[:, None] <= np.arange(n)[None, :]] = np.inf
    if reach is not None:
        cost[bounds[:, None] > np.asarray(reach, np.float64)[None, :]] = np.inf
    best = cost[:, 0].copy()  # best[j]: the cheapest cover of the steps before bound j with k calls
    choices = []  # choices[k - 2][j]: the last call of that cover with k calls
    best_total, best_calls = best[n], 1
    rows = np.arange(n + 1)
    total = np.empty_like(cost)
    for calls in range(2, min(budget, n) + 1):
        np.add(cost, best[None, :n], out=total)
        last = np.argmin(total, axis=1)
        best = total[rows, last]
        choices.append(last)
        if best[n] < best_total:
            best_total, best_calls = best[n], calls
    chosen, j = [], n
    for calls in range(best_calls, 1, -1):
        j = int(choices[calls - 2][j])
        chosen.append(j)
    return np.array([0] + chosen[::-1], np.int64)


def plan_steps(losses: np.ndarray, budget: int) -> np.ndarray:
    """The optimal call steps (1-based) for per-step losses L_1 .. L_D (``losses[t - 1]``) and at
    most ``budget`` calls: the exact dynamic program over every step, O(budget D^2)."""
    losses = np.asarray(losses, np.float64)
    if losses.ndim != 1 or not losses.size or budget < 1:
        raise ValueError(
            f"need a non-empty 1-D loss array and a positive budget, not {losses.shape}, {budget}"
        )
    positions = np.arange(1, losses.size + 1)
    return positions[_optimal(positions, losses, losses.size + 1, budget)]


def brute_force_plan(losses: np.ndarray, budget: int) -> np.ndarray:
    """The cheapest plan by trying every set of at most ``budget`` call steps (small D only)."""
    d = len(losses)
    plans = (
        np.array((1,) + rest)
        for n in range(min(budget, d))
        for rest in itertools.combinations(range(2, d + 1), n)
    )
    return min(plans, key=lambda s: plan_cost(losses, s))


def _quantised_curve(curve: np.ndarray) -> np.ndarray:
    c = np.asarray(curve, np.float64)
    if c.ndim != 1 or not 2 <= c.size <= MAX_CURVE_POINTS:
        raise ValueError(f"a loss curve is 2 to {MAX_CURVE_POINTS} values, not an array of shape {c.shape}")
    if not (np.isfinite(c).all() and (c >= 0).all() and (c <= MAX_LOSS_BITS).all()):
        raise ValueError(f"a loss curve's values must lie in [0, {MAX_LOSS_BITS}] bits")
    return np.round(c / LOSS_QUANTUM).astype(np.int64)


def step_losses(curve: np.ndarray, dims: int, steps: np.ndarray) -> np.ndarray:
    """The curve interpolated at ``steps`` (1-based) of an image of ``dims`` subpixels, in units of
    ``LOSS_QUANTUM`` (int64): L_t = curve at fraction (t - 1) / (D - 1), rounded down exactly."""
    q = _quantised_curve(curve)
    q = np.append(q, q[-1])  # the right neighbour of the last point, for t = D
    span = max(dims - 1, 1)
    x = (np.asarray(steps, np.int64) - 1) * (q.size - 2)  # fraction * (points - 1) * span
    i, rem = np.divmod(x, span)
    return (q[i] * (span - rem) + q[i + 1] * rem) // span


def plan(curve: np.ndarray, dims: int, budget: int, grid: int = PLAN_GRID, stages: int = 1) -> np.ndarray:
    """The call steps (1-based, ascending, the first 1) of the best plan with at most ``budget``
    calls for an image of ``dims`` subpixels, from a loss ``curve`` over evenly spaced known
    fractions: exact over every step when ``dims <= grid / stages``, else over that many evenly
    spaced candidate steps per stage. With ``stages`` S the curve is S curves end to end and the
    steps are global, stage s's step t being s D + t (module docstring)."""
    if dims < 1 or grid < 1 or stages < 1 or budget < stages:
        raise ValueError(
            f"dims, grid and stages must be positive and the budget at least the stages, not "
            f"{dims}, {grid}, {stages}, {budget}"
        )
    curve = np.asarray(curve)
    if curve.ndim != 1 or curve.size % stages:
        raise ValueError(f"a loss curve of {stages} stages has a multiple of {stages} values, not shape {curve.shape}")
    per_stage = max(grid // stages, 1)
    if dims <= per_stage:
        local = np.arange(1, dims + 1, dtype=np.int64)
    else:
        local = 1 + np.arange(per_stage, dtype=np.int64) * dims // per_stage
    positions = np.concatenate([s * dims + local for s in range(stages)])
    losses = np.concatenate([step_losses(c, dims, local) for c in np.split(curve, stages)])
    reach = np.repeat((np.arange(stages) + 1) * dims + 1, local.size)
    return positions[_optimal(positions, losses, stages * dims + 1, budget, reach)]
