"""Scheduling: the patches of an image, the groups they form and the order of groups on one stack.

A single image pays its own initial bits: it is cut into ``patch_size`` squares coded in raster
order on one stack. Consecutive patches are chained together as a group (``bitswap``), and a group
needs about one step's pops for all its patches beneath it; so groups grow as the stack does, each
at most half as many patches as were coded before it and at most ``max_group``. A group is a
rectangle of pixels: a run of patches within one row of patches, or whole rows (``Grid``). A group
the stack cannot serve (its pops run dry) is halved; a single patch it cannot serve is coded
directly (``direct``). After each group a flag says which coder it used and, for a chained group,
its size. The first patch is always direct; the rest chain with bits-back once the stack is deep
enough.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from diffc.codec import entropy
from diffc.codec.bitsback import bitswap, direct
from diffc.codec.bitsback.coding import Coding
from diffc.codec.bitsback.windows import Window, window

FLAG = entropy.uniform(2, 1)  # per group: 0 a patch coded directly, 1 patches chained with bits-back

Rect = tuple[slice, slice]


def extent(rect: Rect) -> tuple[int, int]:
    """(height, width) of a rectangle of pixels."""
    return rect[0].stop - rect[0].start, rect[1].stop - rect[1].start


@dataclass(frozen=True)
class Grid:
    """An image's ``size`` x ``size`` patches in raster order (smaller at the bottom and right
    edges), and the groups they form: a run of patches within one row of patches, or whole rows,
    so that every group is a rectangle of pixels."""

    height: int
    width: int
    size: int

    @property
    def rows(self) -> int:
        return -(-self.height // self.size)

    @property
    def cols(self) -> int:
        return -(-self.width // self.size)

    def __len__(self) -> int:
        return self.rows * self.cols

    def fits(self, first: int, count: int) -> bool:
        """Whether ``count`` patches from patch ``first`` form a group."""
        if first < 0 or count < 1 or first + count > len(self):
            return False
        column = first % self.cols
        return count <= self.cols - column or (column == 0 and count % self.cols == 0)

    def rect(self, first: int, count: int) -> Rect:
        """The pixels of the group of ``count`` patches from patch ``first``."""
        row, column = divmod(first, self.cols)
        if count <= self.cols - column:
            bottom, left, right = row + 1, column, column + count
        else:
            bottom, left, right = row + count // self.cols, 0, self.cols
        s = self.size
        return slice(row * s, min(bottom * s, self.height)), slice(left * s, min(right * s, self.width))

    def window(self, first: int, count: int, context: int) -> Rect:
        """The group's rectangle with ``context`` more pixels below and to the right: only pixels
        of patches after the group."""
        rows, cols = self.rect(first, count)
        bottom, right = min(rows.stop + context, self.height), min(cols.stop + context, self.width)
        return slice(rows.start, bottom), slice(cols.start, right)

    def largest_group(self, first: int, max_group: int) -> int:
        """The most patches a chained group from patch ``first`` may try: at most ``max_group`` and
        at most half the ``first`` patches coded before it (the stack grows with them); the rest
        of the row, or whole rows when it starts one and that many fit."""
        limit = min(max_group, max(first // 2, 1))
        row, column = divmod(first, self.cols)
        if column or limit < self.cols:
            return min(limit, self.cols - column)
        return min(limit // self.cols, self.rows - row) * self.cols

    def smaller_group(self, count: int) -> int:
        """The group to try when ``count`` patches are too many: half the rows, or half the run
        (0: code a patch directly)."""
        if count > self.cols:
            return count // self.cols // 2 * self.cols
        return count // 2


@dataclass(frozen=True)
class GroupCost:
    """A group's ideal cost: information pushed minus popped, its flag and size included."""

    patches: int
    dims: int
    bits: float
    chained: bool


@dataclass(frozen=True)
class ImageStats:
    """The ideal costs of an image's groups, in coding order."""

    groups: tuple[GroupCost, ...]

    def _sum(self, chained: bool) -> tuple[int, float]:
        chosen = [g for g in self.groups if g.chained == chained]
        return sum(g.dims for g in chosen), sum(g.bits for g in chosen)

    @property
    def dims(self) -> int:
        return sum(g.dims for g in self.groups)

    @property
    def patches(self) -> int:
        return sum(g.patches for g in self.groups)

    @property
    def ideal_bits(self) -> float:
        return sum(g.bits for g in self.groups)

    @property
    def seed_patches(self) -> int:
        """Patches coded directly, because the stack could not yet serve their pops."""
        return sum(g.patches for g in self.groups if not g.chained)

    @property
    def seed_dims(self) -> int:
        return self._sum(False)[0]

    @property
    def seed_bits(self) -> float:
        return self._sum(False)[1]

    @property
    def steady_bpd(self) -> float:
        """Bits per subpixel of the chained patches: the rate once the stack is seeded (NaN if none)."""
        dims, bits = self._sum(True)
        return bits / dims if dims else math.nan

    @property
    def seed_cost_bits(self) -> float:
        """What seeding cost: the direct patches' bits beyond the steady rate (NaN if none chained)."""
        return self.seed_bits - self.steady_bpd * self.seed_dims


def push_group_size(stack: entropy.Stack, coding: Coding, count: int) -> None:
    """Push a chained group's size in patches, uniform over 1 .. max_group (nothing when
    max_group is 1)."""
    if coding.max_group > 1:
        stack.push(np.array([count - 1]), _sizes(coding))


def pop_group_size(stack: entropy.Stack, coding: Coding) -> int:
    """Undo ``push_group_size``: the size in patches."""
    return 1 if coding.max_group == 1 else 1 + int(stack.pop(_sizes(coding))[0])


def _sizes(coding: Coding) -> entropy.Uniform:
    return entropy.uniform(coding.max_group, 1)


def _window(coding: Coding, pixels: np.ndarray, grid: Grid, first: int, count: int) -> Window:
    """The ``Window`` of the group of ``count`` patches from patch ``first`` of ``pixels``."""
    return window(coding.seed, pixels[grid.window(first, count, coding.context)], first, coding.chain.exact)


def _copy(stack: entropy.Stack) -> entropy.Stack:
    twin = entropy.Stack(stack.to_words())
    twin.ideal_bits = stack.ideal_bits
    return twin


Progress = Callable[[int, int], None]
"""Called with (patches done, patches in all) after each group."""


def _push_group(
    stack: entropy.Stack, pixels: np.ndarray, grid: Grid, first: int, coding: Coding
) -> tuple[entropy.Stack, int, bool]:
    """Push the group from patch ``first`` with its flag: chained at its largest size if the stack
    can serve its pops (tried on a copy), smaller while it cannot, a single patch coded directly
    when even that fails. Returns the stack that holds it (``stack`` itself may be spent), its
    size in patches and whether it is chained."""
    count = grid.largest_group(first, coding.max_group)
    while count:
        trial = _copy(stack)
        try:
            values = pixels[grid.rect(first, count)]
            bitswap.push_group(trial, values, _window(coding, pixels, grid, first, count), first, coding)
        except entropy.EmptyStackError:
            count = grid.smaller_group(count)
        else:
            push_group_size(trial, coding, count)
            trial.push(np.array([1]), FLAG)
            return trial, count, True
    direct.push_patch(stack, pixels[grid.rect(first, 1)], coding.chain.exact)
    stack.push(np.array([0]), FLAG)
    return stack, 1, False


def push_image(
    stack: entropy.Stack, pixels: np.ndarray, coding: Coding, progress: Progress | None = None
) -> tuple[entropy.Stack, ImageStats]:
    """Push a (H, W, C) uint8 image group by group (``_push_group``); returns the stack that holds
    it (``stack`` itself is spent) and the groups' costs."""
    costs = []
    grid = Grid(pixels.shape[0], pixels.shape[1], coding.patch_size)
    first = 0
    while first < len(grid):
        before = stack.ideal_bits
        stack, count, chained = _push_group(stack, pixels, grid, first, coding)
        dims = math.prod(extent(grid.rect(first, count))) * pixels.shape[2]
        costs.append(GroupCost(count, dims, stack.ideal_bits - before, chained))
        first += count
        if progress:
            progress(first, len(grid))
    return stack, ImageStats(tuple(costs))


def pop_image(
    stack: entropy.Stack, shape: tuple[int, int, int], coding: Coding, progress: Progress | None = None
) -> tuple[np.ndarray, int]:
    """Pop the (H, W, C) image that ``push_image`` pushed last; returns it and the number of its
    patches that were coded directly."""
    pixels = np.zeros(shape, np.uint8)
    direct_patches = 0
    grid = Grid(shape[0], shape[1], coding.patch_size)
    end = len(grid)
    while end:
        if stack.pop(FLAG)[0]:
            count = pop_group_size(stack, coding)
            first = end - count
            if not grid.fits(first, count):
                raise entropy.EntropyCodingError(f"a group of {count} patches does not fit before patch {end}")
            rect, context = grid.rect(first, count), _window(coding, pixels, grid, first, count)
            pixels[rect] = bitswap.pop_group(stack, (*extent(rect), shape[2]), context, first, coding)
        else:
            first = end - 1
            rect = grid.rect(first, 1)
            pixels[rect] = direct.pop_patch(stack, (*extent(rect), shape[2]), coding.chain.exact)
            direct_patches += 1
        end = first
        if progress:
            progress(len(grid) - end, len(grid))
    return pixels, direct_patches
