"""The synthetic scene-graph world: seeded images of coloured shapes with geometric predicates.

Image `index` of the world with seed `seed` is the same on every machine: all its random draws come from
`numpy.random.default_rng([seed, index])`. Objects are placed one by one, each either freely or in a
planned relation to an earlier object (one of the predicates, chosen uniformly); a placement is rejected
when it would make any pair ambiguous (see `geometry`), hide more than half of an earlier shape, leave
the image, or give touching shapes the same colour. The annotation is then read off the geometry by the
same rules, so it always matches the picture.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from egtr.data.record import SceneGraphRecord
from egtr.data.synthetic.geometry import PREDICATES, PixelRules, PlacedShape, SceneRules, pair_relation
from egtr.data.synthetic.shapes import DEFAULT_COLOURS, PALETTE, SHAPES, shape_mask

BACKGROUND_GREY = (200, 246)  # the plain background's grey level is drawn from [200, 246)
DEFAULT_RULES = SceneRules()
INNER_RATIO = 2.2  # a planned "inside" shape's side is at most its container's shorter side / 2.2


@dataclass(eq=False)
class SceneObject:
    placed: PlacedShape
    shape_index: int
    colour_index: int


@dataclass(eq=False)
class Scene:
    """Objects in drawing order (later on top) and the background grey level."""

    objects: list[SceneObject]
    background: int


class _Canvas:
    """Which object shows at each pixel, and how many pixels of each object remain visible."""

    def __init__(self, height: int, width: int):
        self.owner = np.full((height, width), -1, dtype=np.int32)
        self.visible: list[int] = []

    def visible_after(self, shape: PlacedShape) -> np.ndarray:
        """int [n]: visible pixels of every object if `shape` were drawn on top."""
        region = self.owner[shape.y0 : shape.y1, shape.x0 : shape.x1][shape.mask]
        covered = np.bincount(region + 1, minlength=len(self.visible) + 1)[1:]
        return np.array(self.visible, dtype=np.int64) - covered

    def draw(self, shape: PlacedShape) -> None:
        self.visible = [*self.visible_after(shape).tolist(), shape.area]
        self.owner[shape.y0 : shape.y1, shape.x0 : shape.x1][shape.mask] = len(self.visible) - 1


class SyntheticWorld:
    """Seeded generator of scene-graph images; classes are "<colour> <shape>", shape-major.

    image_size is (height, width); object_size is the range of a shape's side as a fraction of the
    shorter image side (each shape's aspect ratio is drawn from [0.8, 1.25]); free_placement is the
    chance that an object is placed anywhere rather than in a planned relation; an object may relate to
    at most max_relations_per_object of the objects drawn before it (keeps graphs sparse). A planned
    "inside" object is smaller: at most 1/2.2 of its container's shorter side.
    """

    def __init__(
        self,
        seed: int = 0,
        image_size: tuple[int, int] = (192, 192),
        min_objects: int = 2,
        max_objects: int = 6,
        shapes: Sequence[str] = SHAPES,
        colours: Sequence[str] = DEFAULT_COLOURS,
        predicates: Sequence[str] = PREDICATES,
        object_size: tuple[float, float] = (0.125, 0.4),
        free_placement: float = 0.2,
        max_relations_per_object: int = 2,
        rules: SceneRules = DEFAULT_RULES,
        max_attempts: int = 50,
    ):
        _check_choices("shape", shapes, SHAPES)
        _check_choices("colour", colours, tuple(PALETTE))
        _check_choices("predicate", predicates, PREDICATES)
        if not 1 <= min_objects <= max_objects:
            raise ValueError(f"need 1 <= min_objects <= max_objects, got {min_objects}, {max_objects}")
        if min(image_size) < 32:
            raise ValueError(f"image_size (height, width) must be at least 32 px, got {image_size}")
        if not 0 < object_size[0] <= object_size[1] <= 1:
            raise ValueError(f"object_size must be 0 < low <= high <= 1, got {object_size}")
        self.seed = seed
        self.height, self.width = int(image_size[0]), int(image_size[1])
        self.min_objects, self.max_objects = min_objects, max_objects
        self.shapes, self.colours, self.predicates = list(shapes), list(colours), list(predicates)
        side = min(self.height, self.width)
        self.size_range = (max(4, round(object_size[0] * side)), max(4, round(object_size[1] * side)))
        self.free_placement = free_placement
        self.max_relations_per_object = max_relations_per_object
        self.rules: PixelRules = rules.in_pixels(side)
        self.max_attempts = max_attempts

    @property
    def class_names(self) -> list[str]:
        return [f"{colour} {shape}" for shape in self.shapes for colour in self.colours]

    @property
    def predicate_names(self) -> list[str]:
        return list(self.predicates)

    def sample(self, index: int) -> tuple[Image.Image, SceneGraphRecord]:
        """(RGB image, its annotation) of image `index`; image_path is the file name used on export."""
        scene = self.scene(index)
        return self.render(scene), self.annotate(scene, index)

    def scene(self, index: int) -> Scene:
        rng = np.random.default_rng([self.seed, index])
        background = int(rng.integers(*BACKGROUND_GREY))
        canvas = _Canvas(self.height, self.width)
        objects: list[SceneObject] = []
        for _ in range(int(rng.integers(self.min_objects, self.max_objects + 1))):
            for _ in range(self.max_attempts):
                candidate = self._accepted(self._propose(rng, objects), objects, canvas, rng)
                if candidate is not None:
                    canvas.draw(candidate.placed)
                    objects.append(candidate)
                    break
        return Scene(objects, background)

    def render(self, scene: Scene) -> Image.Image:
        image = Image.new("RGB", (self.width, self.height), (scene.background,) * 3)
        for item in scene.objects:
            shape = item.placed
            mask = Image.fromarray(shape.mask.astype(np.uint8) * 255, mode="L")
            image.paste(PALETTE[self.colours[item.colour_index]], shape.box, mask)
        return image

    def annotate(self, scene: Scene, index: int) -> SceneGraphRecord:
        objects = scene.objects
        relations = []
        for later in range(len(objects)):
            for earlier in range(later):
                outcome = pair_relation(objects[earlier].placed, objects[later].placed, self.rules)
                if outcome.predicate is not None:
                    subject, object_ = (later, earlier) if outcome.subject_is_later else (earlier, later)
                    relations.append((subject, object_, self.predicates.index(outcome.predicate)))
        return SceneGraphRecord(
            image_id=str(index),
            image_path=Path(f"{index:06d}.png"),
            width=self.width,
            height=self.height,
            boxes=[o.placed.box for o in objects],
            labels=[o.shape_index * len(self.colours) + o.colour_index for o in objects],
            relations=sorted(relations),
        )

    def _propose(
        self, rng: np.random.Generator, objects: list[SceneObject]
    ) -> tuple[PlacedShape, int] | None:
        """A candidate shape (and its shape index) placed freely or in a planned relation, or None."""
        shape_index = int(rng.integers(len(self.shapes)))
        plan, anchor = None, None
        if objects and rng.random() >= self.free_placement:
            plan = self.predicates[int(rng.integers(len(self.predicates)))]
            anchors = [o.placed for o in objects]
            if plan == "inside":
                anchors = [a for a in anchors if min(a.mask.shape) / INNER_RATIO >= self.size_range[0]]
            if not anchors:
                return None
            anchor = anchors[int(rng.integers(len(anchors)))]
        low, high = self.size_range
        if plan == "inside":
            high = max(low, int(min(anchor.mask.shape) / INNER_RATIO))
        width, height = _dimensions(rng, low, high)
        mask = shape_mask(self.shapes[shape_index], width, height)
        if plan is None:
            corner = int(rng.integers(self.width - width + 1)), int(rng.integers(self.height - height + 1))
        else:
            corner = _place(plan, anchor, mask, self.rules, rng)
        if corner is None:
            return None
        x0, y0 = corner
        if x0 < 0 or y0 < 0 or x0 + width > self.width or y0 + height > self.height:
            return None
        return PlacedShape(self.shapes[shape_index], x0, y0, mask), shape_index

    def _accepted(
        self,
        proposal: tuple[PlacedShape, int] | None,
        objects: list[SceneObject],
        canvas: _Canvas,
        rng: np.random.Generator,
    ) -> SceneObject | None:
        """The proposal with a colour, if every pair stays unambiguous and every shape visible enough."""
        if proposal is None:
            return None
        candidate, shape_index = proposal
        outcomes = [pair_relation(o.placed, candidate, self.rules) for o in objects]
        related = [o for o in outcomes if o.predicate is not None]
        if len(related) > self.max_relations_per_object or not all(o.valid for o in outcomes):
            return None
        if any(o.predicate not in self.predicates for o in related):
            return None
        visible = canvas.visible_after(candidate)
        areas = np.array([o.placed.area for o in objects])
        if (visible < self.rules.min_visible * areas).any():
            return None
        taken = {objects[i].colour_index for i, outcome in enumerate(outcomes) if outcome.contact}
        allowed = [c for c in range(len(self.colours)) if c not in taken]
        if not allowed:
            return None
        return SceneObject(candidate, shape_index, int(rng.choice(allowed)))


def _check_choices(what: str, chosen: Sequence[str], known: Sequence[str]) -> None:
    unknown = [c for c in chosen if c not in known]
    if unknown or not chosen or len(set(chosen)) != len(chosen):
        raise ValueError(
            f"{what}s must be distinct, non-empty and among {', '.join(known)}; got {list(chosen)}"
        )


def _dimensions(rng: np.random.Generator, low: int, high: int) -> tuple[int, int]:
    """(width, height): side uniform in [low, high], aspect ratio in [0.8, 1.25], both sides >= low."""
    side = rng.uniform(low, high)
    aspect = np.sqrt(rng.uniform(0.8, 1.25))
    return max(low, round(side * aspect)), max(low, round(side / aspect))


def _inside_corner(
    core: np.ndarray, mask: np.ndarray, anchor: PlacedShape, rng: np.random.Generator
) -> tuple[int, int] | None:
    """A top-left corner, drawn uniformly, where `mask` lies wholly inside the anchor's `core`."""
    if core.shape[0] < mask.shape[0] or core.shape[1] < mask.shape[1]:
        return None
    # pixels of the mask that would fall outside the core, for every offset (a correlation, via FFT)
    # scipy is imported when used: `egtr --help` builds every parser
    from scipy.signal import fftconvolve

    outside = fftconvolve((~core).astype(np.float64), mask[::-1, ::-1].astype(np.float64), mode="valid")
    rows, columns = np.nonzero(outside < 0.5)
    if len(rows) == 0:
        return None
    pick = int(rng.integers(len(rows)))
    return anchor.x0 + int(columns[pick]), anchor.y0 + int(rows[pick])


def _place(
    plan: str, anchor: PlacedShape, mask: np.ndarray, rules: PixelRules, rng: np.random.Generator
) -> tuple[int, int] | None:
    """Top-left corner of the shape `mask` in relation `plan` to `anchor` (None if impossible)."""
    height, width = mask.shape
    centre_x, centre_y = (anchor.x0 + anchor.x1) / 2, (anchor.y0 + anchor.y1) / 2
    if plan == "inside":
        return _inside_corner(anchor.eroded(rules.inside_margin), mask, anchor, rng)
    if plan == "in front of":
        angle, reach = rng.uniform(0, 2 * np.pi), rng.uniform(0.35, 0.75)
        x = centre_x + reach * (anchor.mask.shape[1] + width) / 2 * np.cos(angle)
        y = centre_y + reach * (anchor.mask.shape[0] + height) / 2 * np.sin(angle)
        return round(x - width / 2), round(y - height / 2)
    if plan == "near":
        major = int(rng.integers(max(rules.min_gap, rules.projection_margin), rules.near_distance + 1))
        minor = int(rng.integers(rules.projection_margin, major + 1))
        gap_x, gap_y = (major, minor) if rng.random() < 0.5 else (minor, major)
        x = anchor.x1 + gap_x if rng.random() < 0.5 else anchor.x0 - gap_x - width
        y = anchor.y1 + gap_y if rng.random() < 0.5 else anchor.y0 - gap_y - height
        return x, y
    gap = 0 if plan == "on" else int(rng.integers(rules.min_gap, rules.near_distance + 1))
    spread = 0.25 if plan == "on" else 0.3
    aligned = plan == "on" and rng.random() < 0.5
    shift = 0.0 if aligned else rng.uniform(-spread, spread)
    before = rng.random() < 0.5  # the new shape goes above (left of) the anchor
    if plan == "left of":
        x = anchor.x0 - gap - width if before else anchor.x1 + gap
        y = centre_y + shift * min(height, anchor.mask.shape[0]) - height / 2
        return x, round(y)
    x = centre_x + shift * min(width, anchor.mask.shape[1]) - width / 2
    y = anchor.y0 - gap - height if before else anchor.y1 + gap
    return round(x), y
