"""SceneGraphPredictor: images in, scene graphs out (architecture.md §4), on CPU or GPU.

    predictor = SceneGraphPredictor.from_checkpoint("model.safetensors")
    graph = predictor.predict("photo.jpg")           # one SceneGraph
    graphs = predictor.predict(["a.jpg", pil_image])  # a list

Per image: read (images.py, the one image reader; by default as the official loader) -> the official
evaluation preprocessing (shorter side `size`, longer at most `max_size`, ImageNet normalization;
architecture.md §5.10) -> batches padded with pixel masks -> the model -> the official post-processing
(architecture.md §5.6) -> triplets and objects (triplets.py). Images are read and preprocessed on
`workers` background threads while the model runs.

The network runs in a backend (backend.py): PyTorch eager by default, or an exported model (egtr.export).
Batches hold images of one size only, unless `pad_mixed_sizes` is set: padding changes a DETR-style
model's outputs slightly, so equal-size images batch exactly and the others keep their unpadded results.

A caller with its own reading and batching (the server) uses the steps one by one: `preprocess` an image
already read by `egtr.data.images.load_rgb`, then `predict_prepared` on a batch of them, each with
its own `selection` of triplets.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Hashable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, NamedTuple

import torch
from PIL import Image
from torch import Tensor

from egtr.data.collate import collate
from egtr.data.images import ImageReadError, ImageReading, source_name
from egtr.data.transforms import eval_transform
from egtr.inference.backend import Backend, RawOutputs, TorchBackend
from egtr.inference.explain import explain_triplet
from egtr.inference.names import Vocabulary, resolve_vocabulary
from egtr.inference.postprocess import PostprocessOptions, postprocess
from egtr.inference.progress import track
from egtr.inference.scene_graph import SceneGraph
from egtr.inference.triplets import TripletOptions, build_scene_graph
from egtr.memory import trim_freed_memory
from egtr.models.egtr import logit_adjusted
from egtr.sizes import EVAL_MAX_SIZE, EVAL_SIZE


@dataclass
class PredictionResult:
    """One input's outcome: a graph, or an error message (the other fields stay None)."""

    index: int  # position in the input sequence
    source: str  # the input's name (path, '<image i>', '<array i>')
    graph: SceneGraph | None = None
    image: Image.Image | None = None  # the upright RGB image the graph refers to (for drawings)
    error: str | None = None
    prediction: dict | None = None  # the post-processed prediction (`iter_predictions` only)


@dataclass
class PreparedImage:
    """One input read and preprocessed (or its error message, the other fields then None)."""

    index: int
    source: str
    image: Image.Image | None = None  # upright RGB original
    pixel_values: Tensor | None = None  # float [3,H,W], resized and normalized
    error: str | None = None


class Selection(NamedTuple):
    """Which of the model's pairs become a scene graph's triplets and objects (see `selection`)."""

    triplets: TripletOptions
    postprocess: PostprocessOptions


class SceneGraphPredictor:
    """Predicts scene graphs with an EGTR model; options are documented in `__init__`."""

    def __init__(
        self,
        model,
        *,
        names: str | Path | dict | None = None,
        device: str | torch.device | None = None,
        precision: str | None = None,
        size: int = EVAL_SIZE,
        max_size: int | None = EVAL_MAX_SIZE,
        batch_size: int = 1,
        pad_mixed_sizes: bool = False,
        top_k: int = 100,
        threshold: float = 0.0,
        graph_constraint: bool = True,
        dedup_iou: float | None = None,
        object_threshold: float | None = None,
        object_score: str = "softmax",
        max_pixels: int | None = None,
        explain_rank: int | None = None,
        workers: int = 1,
        exif: bool = False,
        conversion: str = "official",
        logit_adjustment: bool | None = None,
        logit_adj_tau: float | None = None,
    ) -> None:
        """
        model: an `egtr.EGTR` (put in eval mode and moved to `device`, run by PyTorch in `precision`), or a
            `Backend` (egtr.inference.backend; e.g. an exported model from egtr.export), which brings its own
            device and precision (then `device` and `precision` must be None). Kept as `self.backend`.
        names: class/predicate names: a JSON file, a dataset directory or a dict (see egtr.inference.names);
            default: the model's own names, the packaged Visual Genome lists for 150/50 models, placeholders.
        device: "auto"/None (CUDA if available), "cpu", "cuda", "cuda:1", ...
        precision: "fp32" (default, exact), "bf16" or "fp16" autocast (egtr.precision).
        size, max_size: shorter side and longest-side cap of the resized image (official evaluation:
            800/1333; the official FPS protocol: 600/1000).
        batch_size: images per forward pass. Only images of the same (resized) size share a batch, so every
            image keeps its unpadded result; an image waits at most for `4 * batch_size` later inputs
            before its batch runs part-full.
        pad_mixed_sizes: let images of different sizes share a batch, padded to the largest (faster for
            mixed folders, but padding changes a DETR-style model's outputs slightly: the backbone sees
            the padded border).
        top_k, threshold, graph_constraint, dedup_iou, object_threshold: triplet selection, see
            egtr.inference.triplets (official: top_k 100, graph constraint, no threshold, no merging).
        object_score: "softmax" (official) or "sigmoid" object confidences.
        max_pixels: refuse larger images before decoding them (default: PIL.Image.MAX_IMAGE_PIXELS; PIL
            itself refuses files above twice that global, whatever `max_pixels` says).
        explain_rank: attach an explanation (egtr.inference.explain) of the triplet at this 1-based rank.
        workers: threads reading and preprocessing images ahead of the model; 0 reads them in the
            calling thread, one at a time.
        exif, conversion: how image files are read (egtr.data.images; default: as the official
            loader, pixels as stored, PIL's RGB conversion); exif=True turns photos upright.
        logit_adjustment, logit_adj_tau: override the model config's post-hoc logit adjustment, as the
            official evaluation's flags do (None: keep the config's setting); any backend honours it.
        """
        if batch_size < 1 or workers < 0:
            raise ValueError(f"batch_size must be >= 1 and workers >= 0, got {batch_size} and {workers}")
        if size < 1 or (max_size is not None and max_size < size):
            raise ValueError(f"size must be >= 1 and max_size >= size, got {size} and {max_size}")
        if explain_rank is not None and explain_rank < 1:
            raise ValueError(f"explain_rank is 1-based, got {explain_rank}")
        if isinstance(model, torch.nn.Module):
            self.backend: Backend = TorchBackend(model, device, precision or "fp32")
        elif isinstance(model, Backend):
            if device is not None or precision is not None:
                raise ValueError(f"a {model.name} backend brings its own device and precision")
            self.backend = model
        else:
            raise TypeError(f"model must be an egtr.EGTR or a Backend, got {type(model).__name__}")
        if explain_rank is not None and not self.backend.explains:
            raise ValueError(
                f"explanations need the model's attention by-products, which the {self.backend.name} "
                "backend does not return (use the torch backend)"
            )
        if logit_adjustment is not None or logit_adj_tau is not None:
            enabled = self.backend.config.logit_adjustment if logit_adjustment is None else logit_adjustment
            self.backend.config = logit_adjusted(
                self.backend.config, self.backend.rel_dist, enabled, logit_adj_tau
            )
        self.config = self.backend.config  # scores follow this config (its logit adjustment)
        self.vocabulary: Vocabulary = resolve_vocabulary(self.config, names)
        self.default_selection = self._selection(
            TripletOptions(top_k, threshold, graph_constraint, dedup_iou, object_threshold, object_score)
        )
        self.size, self.max_size = size, max_size
        self.batch_size, self.workers, self.pad_mixed_sizes = batch_size, workers, pad_mixed_sizes
        self.max_pixels, self.explain_rank = max_pixels, explain_rank
        self.reading = ImageReading(exif=exif, conversion=conversion, max_pixels=max_pixels)
        self.transform = eval_transform(size, max_size)

    @property
    def device(self) -> torch.device:
        """Where the backend runs the network."""
        return self.backend.device

    @classmethod
    def from_checkpoint(
        cls,
        path: str | Path,
        device: str | torch.device | None = None,
        names: str | Path | dict | None = None,
        **options: Any,
    ) -> SceneGraphPredictor:
        """A predictor for any checkpoint `egtr.load_model` accepts; `options` as in `__init__`."""
        from egtr.checkpoints import load_model

        return cls(load_model(path), names=names, device=device, **options)

    # ----------------------------------------------------------------------------------------- public
    def predict(self, images: Any) -> SceneGraph | list[SceneGraph]:
        """Scene graph(s) of a path, PIL image or numpy array, or of a list/tuple of them.

        Raises `ImageReadError` (a ValueError naming the input) for an unreadable image; use `iter_predict`
        to go on past bad inputs.
        """
        single = not isinstance(images, (list, tuple))
        graphs = []
        for result in self.iter_predict([images] if single else images):
            if result.error is not None:
                raise ImageReadError(result.source, result.error)
            graphs.append(result.graph)
        return graphs[0] if single else graphs

    def iter_predict(
        self, images: Iterable[Any], progress: bool = False, total: int | None = None
    ) -> Iterator[PredictionResult]:
        """One `PredictionResult` per input, in input order; unreadable inputs give an error result.

        With `progress`, a progress bar on stderr (`total` defaults to len(images) when it has one).
        """
        results = self._results(images, self.run_batch)
        if progress:
            count = total if total is not None else len(images) if hasattr(images, "__len__") else 0
            results = track(results, count, "predicting")
        yield from results

    def iter_predictions(
        self,
        images: Iterable[Any],
        options: PostprocessOptions,
        progress: bool = False,
        total: int | None = None,
    ) -> Iterator[PredictionResult]:
        """Like `iter_predict`, but each result holds the post-processed `prediction` (egtr.inference.
        postprocess, with `options`: e.g. an evaluation protocol's) instead of a scene graph: what the
        evaluators read."""
        results = self._results(images, lambda batch: self._predictions(batch, options))
        if progress:
            count = total if total is not None else len(images) if hasattr(images, "__len__") else 0
            results = track(results, count, "predicting")
        yield from results

    def selection(self, **triplet_options: Any) -> Selection:
        """This predictor's triplet selection with some fields of `TripletOptions` changed (top_k,
        threshold, graph_constraint, dedup_iou, object_threshold, object_score).

        Raises ValueError naming the option for a bad value, TypeError for an unknown option.
        """
        return self._selection(replace(self.default_selection.triplets, **triplet_options))

    def _selection(self, triplets: TripletOptions) -> Selection:
        postprocess = PostprocessOptions(
            top_k=triplets.pairs_needed(self.config.num_queries),
            keep_diagonal=False,
            object_score=triplets.object_score,
        )
        return Selection(triplets, postprocess)

    def preprocess(self, image: Image.Image, source: str, index: int = 0) -> PreparedImage:
        """An upright RGB image (from `load_rgb`) resized and normalized for the model."""
        pixel_values, _ = self.transform(image, {"boxes": torch.zeros((0, 4))})
        return PreparedImage(index, source, image, pixel_values)

    @torch.inference_mode()
    def predict_prepared(
        self, batch: Sequence[PreparedImage], selections: Sequence[Selection] | None = None
    ) -> list[SceneGraph]:
        """Scene graphs of prepared images in one forward pass, each built with its own selection (default:
        the predictor's). Images of different sizes are padded to the largest (see `batch_size`)."""
        selections = list(selections) if selections is not None else [self.default_selection] * len(batch)
        if len(selections) != len(batch):
            raise ValueError(f"{len(batch)} images but {len(selections)} selections")
        raw, predictions = self._forward(batch, [selection.postprocess for selection in selections])
        graphs = []
        for position, (item, prediction) in enumerate(zip(batch, predictions)):
            graph = build_scene_graph(
                prediction,
                selections[position].triplets,
                self.vocabulary,
                item.source,
                item.image.width,
                item.image.height,
            )
            if self.explain_rank is not None and self.explain_rank <= len(graph.triplets):
                graph.explanation = explain_triplet(
                    raw.model_output, position, graph, self.explain_rank, self.config
                )
            graphs.append(graph)
        return graphs

    # ----------------------------------------------------------------------------------------- steps
    def _forward(
        self, batch: Sequence[PreparedImage], options: Sequence[PostprocessOptions]
    ) -> tuple[RawOutputs, list[dict]]:
        """The one forward pass of every path: prepared images -> the backend -> scores -> one
        post-processed prediction per image, image i with `options[i]`."""
        samples = [{"pixel_values": item.pixel_values, "target": {}} for item in batch]
        inputs = collate(samples, share_lone_image=True)
        raw = self.backend.run(inputs["pixel_values"], inputs["pixel_mask"])
        outputs = raw.scored(self.config, self.backend.rel_dist)
        sizes = torch.tensor([[item.image.height, item.image.width] for item in batch])
        predictions: list = [None] * len(batch)
        for chosen in dict.fromkeys(options):
            for position, prediction in enumerate(postprocess(outputs, sizes, chosen)):
                if options[position] == chosen:
                    predictions[position] = prediction
        return raw, predictions

    def _predictions(self, batch: list[PreparedImage], options: PostprocessOptions) -> list[PredictionResult]:
        with torch.inference_mode():
            _, predictions = self._forward(batch, [options] * len(batch))
        return [
            PredictionResult(item.index, item.source, image=item.image, prediction=prediction)
            for item, prediction in zip(batch, predictions)
        ]

    def _results(
        self, images: Iterable[Any], run_batch: Callable[[list[PreparedImage]], list[PredictionResult]]
    ) -> Iterator[PredictionResult]:
        """Results in input order (`run_batch` makes them from a batch of readable images of `batches`)."""
        waiting: deque[int] = deque()  # input indices in input order, not yet reported
        done: dict[int, PredictionResult] = {}  # finished, by input index

        def noted(items: Iterable[PreparedImage]) -> Iterator[PreparedImage]:
            for item in items:
                waiting.append(item.index)
                yield item

        for batch in self.batches(noted(self.prepared(images))):
            results = self.run_batch(batch) if batch[0].error is not None else run_batch(batch)
            done.update((result.index, result) for result in results)
            while waiting and waiting[0] in done:
                yield done.pop(waiting.popleft())

    def batches(self, prepared: Iterable[PreparedImage]) -> Iterator[list[PreparedImage]]:
        """Prepared images (in input order) grouped for the forward pass: images of one batch key (equal
        resized size, see `batch_size` in `__init__`), at most `batch_size` of them; an unreadable image comes
        at once as a batch of its own (with its `error`). A batch runs part-full when its oldest image has
        waited for `4 * batch_size` later inputs."""
        groups: dict[Hashable, list[PreparedImage]] = {}  # batches being filled, by batch key
        unsent: dict[int, PreparedImage] = {}  # readable images not in a batch yet, in input order
        max_waiting = 4 * self.batch_size
        for item in prepared:
            oldest = next(iter(unsent.values()), None)
            if item.error is not None:
                yield [item]
            else:
                key = self._batch_key(item)
                groups.setdefault(key, []).append(item)
                unsent[item.index] = item
                if len(groups[key]) == self.batch_size:
                    yield self._sent(groups.pop(key), unsent)
            if oldest is not None and oldest.index in unsent and item.index - oldest.index >= max_waiting:
                yield self._sent(groups.pop(self._batch_key(oldest)), unsent)
        yield from groups.values()

    @staticmethod
    def _sent(batch: list[PreparedImage], unsent: dict[int, PreparedImage]) -> list[PreparedImage]:
        for item in batch:
            del unsent[item.index]
        return batch

    def _batch_key(self, item: PreparedImage) -> Hashable:
        """Images with equal keys may share a batch: equal (height, width), or all with pad_mixed_sizes."""
        return None if self.pad_mixed_sizes else tuple(item.pixel_values.shape[1:])

    def prepared(self, images: Iterable[Any]) -> Iterator[PreparedImage]:
        """Each input read and preprocessed (on `workers` threads, reading ahead), in input order."""
        if self.workers == 0:
            yield from (self._prepare(index, image) for index, image in enumerate(images))
            return
        lookahead = 2 * self.batch_size + self.workers
        with ThreadPoolExecutor(self.workers, thread_name_prefix="egtr-read") as pool:
            pending: deque = deque()
            for index, image in enumerate(images):
                pending.append(pool.submit(self._read_ahead, index, image))
                if len(pending) > lookahead:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()

    def _read_ahead(self, index: int, image: Any) -> PreparedImage:
        """`_prepare` on a reader thread, then the C heap's free memory handed back: the decoding's
        temporaries (about 30 MB for an 800x1333 photo) stay in that thread's own heap arena, which the
        model, on the calling thread, never reuses (BENCHMARKS.md, "Memory of egtr predict")."""
        prepared = self._prepare(index, image)
        trim_freed_memory()
        return prepared

    def _prepare(self, index: int, image: Any) -> PreparedImage:
        name = source_name(image, index)
        try:
            rgb = self.reading.read(image, name)
        except ImageReadError as error:
            return PreparedImage(index, name, error=error.reason)
        return self.preprocess(rgb, name, index)

    def run_batch(self, batch: list[PreparedImage]) -> list[PredictionResult]:
        """The results of one batch of `batches`: scene graphs, or the error of an unreadable image."""
        if batch[0].error is not None:
            return [PredictionResult(item.index, item.source, error=item.error) for item in batch]
        graphs = self.predict_prepared(batch)
        return [
            PredictionResult(item.index, item.source, graph, item.image) for item, graph in zip(batch, graphs)
        ]
