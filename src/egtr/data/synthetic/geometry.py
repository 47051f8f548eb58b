"""The synthetic world's predicates: a deterministic function of two placed shapes.

Objects are drawn in list order (later ones on top). For a pair, with box gaps gx, gy (pixels between the
boxes along x and y, negative when their projections overlap) and gap = max(gx, gy), the rules in
priority order are:

- boxes overlap (gx < 0 and gy < 0):
  the later box inside the earlier one and its shape inside the earlier shape, `inside_margin` from its
  border -> (later, "inside", earlier); else shapes overlapping by >= `min_occlusion` of the smaller
  shape -> (later, "in front of", earlier); anything else is ambiguous.
- touching (gap = 0): one box's bottom on the other's top (gy = 0, x projections overlapping by
  >= `projection_margin`) with the two shapes in contact -> (upper, "on", lower); else ambiguous.
- close (`min_gap` <= gap <= `near_distance`): projections overlapping by >= `projection_margin` along
  the other axis -> (upper, "above", lower) or (left, "left of", right); projections apart by
  >= `projection_margin` (diagonal) -> (left, "near", right); else ambiguous.
- far (gap >= `far_distance`): no relation. Gaps in (0, min_gap) and (near_distance, far_distance) are
  ambiguous.

Ambiguous pairs never appear in a generated scene: the generator rejects placements that make one, so
every annotated predicate is unambiguous from the image and every pair has at most one.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

PREDICATES = ("inside", "on", "in front of", "above", "left of", "near")


@dataclass(frozen=True)
class SceneRules:
    """Thresholds of the rules, as fractions of the shorter image side (see the module doc)."""

    min_gap: float = 0.05
    near_distance: float = 0.15
    far_distance: float = 0.25
    projection_margin: float = 0.05
    inside_margin: float = 0.02
    min_occlusion: float = 0.1  # fraction of the smaller shape's area (not of the side)
    min_visible: float = 0.5  # fraction of every shape left visible (not of the side)

    def in_pixels(self, side: int) -> PixelRules:
        def pixels(fraction: float) -> int:
            return max(1, round(fraction * side))

        return PixelRules(
            min_gap=pixels(self.min_gap),
            near_distance=pixels(self.near_distance),
            far_distance=pixels(self.far_distance),
            projection_margin=pixels(self.projection_margin),
            inside_margin=pixels(self.inside_margin),
            min_occlusion=self.min_occlusion,
            min_visible=self.min_visible,
        )


@dataclass(frozen=True)
class PixelRules:
    """`SceneRules` for one image size: distances in whole pixels."""

    min_gap: int
    near_distance: int
    far_distance: int
    projection_margin: int
    inside_margin: int
    min_occlusion: float
    min_visible: float


@dataclass(eq=False)
class PlacedShape:
    """A shape at integer pixel position; box (x0, y0, x1, y1) = (x0, y0, x0 + width, y0 + height)."""

    shape: str
    x0: int
    y0: int
    mask: np.ndarray  # bool [height, width], filling its box
    _eroded: dict[int, np.ndarray] = field(default_factory=dict, repr=False)

    @property
    def x1(self) -> int:
        return self.x0 + self.mask.shape[1]

    @property
    def y1(self) -> int:
        return self.y0 + self.mask.shape[0]

    @property
    def box(self) -> tuple[int, int, int, int]:
        return self.x0, self.y0, self.x1, self.y1

    @property
    def area(self) -> int:
        return int(self.mask.sum())

    def eroded(self, pixels: int) -> np.ndarray:
        """The mask without the pixels within `pixels` (4-connected steps) of the shape's border."""
        if pixels not in self._eroded:
            # scipy is imported when used: `egtr --help` builds every parser
            from scipy.ndimage import binary_erosion

            self._eroded[pixels] = binary_erosion(self.mask, iterations=pixels, border_value=0)
        return self._eroded[pixels]


@dataclass(frozen=True)
class PairOutcome:
    """Result of the rules for (earlier, later): ambiguous (`valid` False), no relation (`predicate`
    None) or a predicate with its subject; `contact` when the shapes touch or overlap."""

    valid: bool
    predicate: str | None = None
    subject_is_later: bool = False
    contact: bool = False


AMBIGUOUS = PairOutcome(valid=False)
UNRELATED = PairOutcome(valid=True)


def _overlap_pixels(a: PlacedShape, b: PlacedShape) -> int:
    x0, y0, x1, y1 = max(a.x0, b.x0), max(a.y0, b.y0), min(a.x1, b.x1), min(a.y1, b.y1)
    if x1 <= x0 or y1 <= y0:
        return 0
    region_a = a.mask[y0 - a.y0 : y1 - a.y0, x0 - a.x0 : x1 - a.x0]
    region_b = b.mask[y0 - b.y0 : y1 - b.y0, x0 - b.x0 : x1 - b.x0]
    return int((region_a & region_b).sum())


def _box_inside(inner: PlacedShape, outer: PlacedShape) -> bool:
    return inner.x0 >= outer.x0 and inner.y0 >= outer.y0 and inner.x1 <= outer.x1 and inner.y1 <= outer.y1


def _shape_inside(inner: PlacedShape, outer: PlacedShape, margin: int) -> bool:
    core = outer.eroded(margin)
    top, left = inner.y0 - outer.y0, inner.x0 - outer.x0
    region = core[top : top + inner.mask.shape[0], left : left + inner.mask.shape[1]]
    return not (inner.mask & ~region).any()


def _overlapping(earlier: PlacedShape, later: PlacedShape, rules: PixelRules) -> PairOutcome:
    if _box_inside(later, earlier):
        if _shape_inside(later, earlier, rules.inside_margin):
            return PairOutcome(True, "inside", subject_is_later=True, contact=True)
        return AMBIGUOUS
    if _box_inside(earlier, later):
        return AMBIGUOUS
    smaller_area = min(earlier.area, later.area)
    if _overlap_pixels(earlier, later) >= rules.min_occlusion * smaller_area:
        return PairOutcome(True, "in front of", subject_is_later=True, contact=True)
    return AMBIGUOUS


def _shapes_touch_vertically(upper: PlacedShape, lower: PlacedShape) -> bool:
    """The upper shape's bottom row and the lower shape's top row share a column."""
    bottom = set((np.flatnonzero(upper.mask[-1]) + upper.x0).tolist())
    top = set((np.flatnonzero(lower.mask[0]) + lower.x0).tolist())
    return bool(bottom & top)


def _touching(earlier: PlacedShape, later: PlacedShape, gx: int, gy: int, rules: PixelRules) -> PairOutcome:
    if gy != 0 or gx > -rules.projection_margin:
        return AMBIGUOUS
    later_is_upper = later.y1 == earlier.y0
    upper, lower = (later, earlier) if later_is_upper else (earlier, later)
    if not _shapes_touch_vertically(upper, lower):
        return AMBIGUOUS
    return PairOutcome(True, "on", subject_is_later=later_is_upper, contact=True)


def _close(earlier: PlacedShape, later: PlacedShape, gx: int, gy: int, rules: PixelRules) -> PairOutcome:
    other = min(gx, gy)
    later_is_left = later.x1 <= earlier.x0
    if other <= -rules.projection_margin:
        if gy >= gx:
            return PairOutcome(True, "above", subject_is_later=later.y1 <= earlier.y0)
        return PairOutcome(True, "left of", subject_is_later=later_is_left)
    if other >= rules.projection_margin:
        return PairOutcome(True, "near", subject_is_later=later_is_left)
    return AMBIGUOUS


def pair_relation(earlier: PlacedShape, later: PlacedShape, rules: PixelRules) -> PairOutcome:
    """Apply the rules (module doc) to two shapes, `later` drawn after `earlier`."""
    gx = max(later.x0 - earlier.x1, earlier.x0 - later.x1)
    gy = max(later.y0 - earlier.y1, earlier.y0 - later.y1)
    if gx < 0 and gy < 0:
        return _overlapping(earlier, later, rules)
    gap = max(gx, gy)
    if gap == 0:
        return _touching(earlier, later, gx, gy, rules)
    if gap >= rules.far_distance:
        return UNRELATED
    if gap < rules.min_gap or gap > rules.near_distance:
        return AMBIGUOUS
    return _close(earlier, later, gx, gy, rules)
