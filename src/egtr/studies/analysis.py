"""Dataset-level analysis of a trained model: does the decoder's self-attention know which objects relate?

Over a split, every ground-truth object is assigned to a query by the training Hungarian matcher
(`egtr.training.HungarianMatcher` with the model's matching costs, smoothing off). For ordered pairs of
ground-truth objects (all related pairs, and at most `max_unrelated_per_image` unrelated pairs per image,
drawn at random) the analysis collects, at the two matched queries (i = subject, j = object):
- the gate of each relation source (`relation_gates` [B,N,N,S]);
- the pair features of each source as the relation head builds them, ungated: the projected subject
  feature a_i, object feature b_j and their elementwise product, [a_i; b_j; a_i * b_j], for a linear
  probe (the product lets a linear probe read how the two objects interact, not only per-object terms);
- the decoder self-attention weight of query i on key j (and of j on i) per layer, averaged over heads,
  recomputed exactly from the `attention_queries` / `attention_keys` by-products.
It also runs the standard post-processing and evaluation (per-predicate recall), tallies where each
ground-truth triplet fails (`egtr.studies.failures`) and counts, for each triplet, the predicate the model
scores highest at its two matched queries (the confusion between predicates).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from torch.utils.data import DataLoader

from egtr.boxes import iou_plus_one_pixel
from egtr.data.collate import collate
from egtr.data.dataset import SceneGraphDataset
from egtr.data.record import SceneGraphRecord
from egtr.data.transforms import eval_transform
from egtr.evaluation import evaluate_split
from egtr.inference.explain import attention_from, gate_source_names
from egtr.inference.postprocess import PostprocessOptions, postprocess, to_numpy
from egtr.inference.progress import track
from egtr.models.egtr import EGTR
from egtr.sizes import EVAL_MAX_SIZE, EVAL_SIZE
from egtr.studies.failures import CATEGORIES, failure_counts
from egtr.studies.probe import linear_probe
from egtr.studies.statistics import cohen_d, roc_auc
from egtr.training import HungarianMatcher


@dataclass(frozen=True)
class AnalysisOptions:
    size: int = EVAL_SIZE
    max_size: int = EVAL_MAX_SIZE
    batch_size: int = 1
    device: str = "cpu"
    workers: int = 0
    max_images: int | None = None  # the first images of the split only
    max_unrelated_per_image: int = 20
    probe_images: int = 300  # images whose pairs feed the probes (memory: pairs x sources x 3d floats)
    top_k: int = 50  # K of the failure analysis and of the per-predicate recall shown
    protocol: str = "vg"
    seed: int = 0
    progress: bool = True


@dataclass
class PairSamples:
    """Per analysed pair (P pairs): which image, related or not, gates, attention and probe features."""

    image: list[int] = field(default_factory=list)
    related: list[np.ndarray] = field(default_factory=list)  # [P] bool, in chunks
    gates: list[np.ndarray] = field(default_factory=list)  # [P,S]
    forward: list[np.ndarray] = field(default_factory=list)  # [P,L] attention of subject i on object j
    backward: list[np.ndarray] = field(default_factory=list)  # [P,L] attention of j on i
    probe_image: list[int] = field(default_factory=list)
    probe_related: list[np.ndarray] = field(default_factory=list)
    probe_features: list[np.ndarray] = field(default_factory=list)  # [P',S,3d] float32

    def arrays(self) -> dict[str, np.ndarray]:
        def joined(parts: list[np.ndarray], width: tuple[int, ...]) -> np.ndarray:
            return np.concatenate(parts) if parts else np.zeros((0, *width))

        return {
            "image": np.asarray(self.image, dtype=np.int64),
            "related": joined(self.related, ()).astype(bool),
            "gates": joined(self.gates, (0,)),
            "forward": joined(self.forward, (0,)),
            "backward": joined(self.backward, (0,)),
            "probe_image": np.asarray(self.probe_image, dtype=np.int64),
            "probe_related": joined(self.probe_related, ()).astype(bool),
            "probe_features": joined(self.probe_features, (0, 0)),
        }


def image_pairs(
    relations: np.ndarray, num_objects: int, max_unrelated: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Ordered object pairs of one image: every related (subject, object) pair once, then at most
    `max_unrelated` of the other pairs (i != j), drawn at random. -> pairs [P,2], related [P] bool."""
    related = sorted({(int(s), int(o)) for s, o, _ in relations if s != o})
    related_set = set(related)
    unrelated = [
        (i, j) for i in range(num_objects) for j in range(num_objects) if i != j and (i, j) not in related_set
    ]
    if len(unrelated) > max_unrelated:
        chosen = rng.choice(len(unrelated), size=max_unrelated, replace=False)
        unrelated = [unrelated[index] for index in sorted(chosen)]
    pairs = np.asarray(related + unrelated, dtype=np.int64).reshape(-1, 2)
    flags = np.zeros(len(pairs), dtype=bool)
    flags[: len(related)] = True
    return pairs, flags


class SplitAnalysis:
    """Accumulates the analysis over batches; `summary()` turns it into the report's numbers."""

    def __init__(self, model: EGTR, records: Sequence[SceneGraphRecord], options: AnalysisOptions) -> None:
        config = model.config
        self.model, self.config, self.options = model, config, options
        self.records = list(records)
        self.by_id = {str(record.image_id): record for record in self.records}
        self.matcher = HungarianMatcher.from_config(config)
        self.postprocess_options = PostprocessOptions.for_protocol(options.protocol)
        self.rng = np.random.default_rng(options.seed)
        self.pairs = PairSamples()
        self.predictions: list[tuple[str, dict]] = []
        self.failures = dict.fromkeys(CATEGORIES, 0)
        num_predicates = config.num_rel_labels
        self.confusion = np.zeros((num_predicates, num_predicates), dtype=np.int64)
        self.objects = {"ground-truth objects": 0, "matched query detects its object": 0}
        self.skipped = {"unreadable images": 0, "images with more objects than queries": 0}
        self.images = 0

    @torch.inference_mode()
    def add_batch(self, batch: dict) -> None:
        self.skipped["unreadable images"] += batch["skipped"]
        keep = [
            b for b, target in enumerate(batch["targets"]) if len(target["labels"]) <= self.config.num_queries
        ]
        self.skipped["images with more objects than queries"] += len(batch["targets"]) - len(keep)
        if not keep:
            return
        device = self.options.device
        targets = [batch["targets"][b] for b in keep]
        outputs = self.model(batch["pixel_values"][keep].to(device), batch["pixel_mask"][keep].to(device))
        matches = self.matcher(
            outputs.logits,
            outputs.pred_boxes,
            [target["labels"].to(device) for target in targets],
            [target["boxes"].to(device) for target in targets],
        )
        sizes = torch.stack([target["orig_size"] for target in targets])
        predictions = postprocess(outputs, sizes, self.postprocess_options)
        subjects = objects = None
        if self.images < self.options.probe_images:
            subjects, objects = self.model.relation_head.source_features(
                outputs.attention_queries, outputs.attention_keys, outputs.last_hidden_state
            )  # [B,S,N,d]
        for b, (target, match, prediction) in enumerate(zip(targets, matches, predictions)):
            record = self.by_id[str(target["image_id"])]
            query_of = torch.empty(len(record.labels), dtype=torch.long)
            query_of[match.target_index.cpu()] = match.query_index.cpu()
            self._add_pairs(outputs, b, record, query_of, subjects, objects)
            self._add_relations(outputs, b, record, query_of, prediction)
            self.predictions.append((str(target["image_id"]), to_numpy(prediction)))
            self.images += 1

    def _add_pairs(self, outputs, b: int, record: SceneGraphRecord, query_of, subjects, objects) -> None:
        pairs, related = image_pairs(
            record.relations, len(record.labels), self.options.max_unrelated_per_image, self.rng
        )
        if not len(pairs):
            return
        subject_queries, object_queries = query_of[pairs[:, 0]], query_of[pairs[:, 1]]
        gates = outputs.relation_gates[b][subject_queries, object_queries]  # [P,S]
        queries, keys = outputs.attention_queries[b].cpu(), outputs.attention_keys[b].cpu()
        heads = self.config.decoder_attention_heads
        attention = {
            int(q): attention_from(queries, keys, heads, int(q)).mean(1)  # [L,N], mean over heads
            for q in torch.unique(torch.cat([subject_queries, object_queries]))
        }
        forward = np.stack(
            [attention[int(i)][:, int(j)].numpy() for i, j in zip(subject_queries, object_queries)]
        )
        backward = np.stack(
            [attention[int(j)][:, int(i)].numpy() for i, j in zip(subject_queries, object_queries)]
        )
        self.pairs.image += [self.images] * len(pairs)
        self.pairs.related.append(related)
        self.pairs.gates.append(gates.float().cpu().numpy())
        self.pairs.forward.append(forward)
        self.pairs.backward.append(backward)
        if subjects is not None and self.images < self.options.probe_images:
            a = subjects[b][:, subject_queries.to(subjects.device)]  # [S,P,d]
            o = objects[b][:, object_queries.to(objects.device)]
            features = torch.cat([a, o, a * o], -1).transpose(0, 1)  # [P,S,3d]
            self.pairs.probe_image += [self.images] * len(pairs)
            self.pairs.probe_related.append(related)
            self.pairs.probe_features.append(features.float().cpu().numpy())

    def _add_relations(self, outputs, b: int, record: SceneGraphRecord, query_of, prediction: dict) -> None:
        relations = np.unique(record.relations, axis=0) if len(record.relations) else record.relations
        if len(relations):
            scores = outputs.pred_rel[b][query_of[relations[:, 0]], query_of[relations[:, 1]]]  # [T,R]
            np.add.at(self.confusion, (relations[:, 2], scores.argmax(-1).cpu().numpy()), 1)
        boxes = prediction["boxes"][query_of].numpy()
        labels = prediction["labels"][query_of].numpy()
        iou = np.diag(iou_plus_one_pixel(boxes, record.boxes)) if len(boxes) else np.zeros(0)
        self.objects["ground-truth objects"] += len(record.labels)
        self.objects["matched query detects its object"] += int(
            ((iou >= 0.5) & (labels == record.labels)).sum()
        )
        truth = {"boxes": record.boxes, "labels": record.labels, "relations": record.relations}
        counts = failure_counts(truth, prediction, self.config.num_rel_labels, self.options.top_k)
        for category, count in counts.items():
            self.failures[category] += count

    def summary(self, predicate_names: Sequence[str]) -> tuple[dict, dict[str, np.ndarray]]:
        """(JSON-ready analysis, per-pair arrays for the figures)."""
        arrays = self.pairs.arrays()
        related = arrays["related"]
        source_names = gate_source_names(self.config)
        in_train_half = self._probe_halves(arrays["probe_image"])
        sources = []
        for index, name in enumerate(source_names):
            gates = arrays["gates"][:, index] if len(arrays["gates"]) else np.zeros(0)
            probe = None
            if len(in_train_half):
                probe = linear_probe(
                    arrays["probe_features"][:, index], arrays["probe_related"], in_train_half
                )
            sources.append(
                {
                    "source": name,
                    "gate_related": _mean(gates[related]),
                    "gate_unrelated": _mean(gates[~related]),
                    "gate_auc": roc_auc(gates, related) if len(gates) else None,
                    "probe_auc": probe.auc if probe else None,
                    "probe_train_pairs": probe.train_pairs if probe else 0,
                    "probe_test_pairs": probe.test_pairs if probe else 0,
                }
            )
        layers = []
        for layer in range(arrays["forward"].shape[1] if arrays["forward"].ndim == 2 else 0):
            entry = {"layer": layer + 1}
            for direction in ("forward", "backward"):
                values = arrays[direction][:, layer]
                entry[direction] = {
                    "related_mean": _mean(values[related]),
                    "unrelated_mean": _mean(values[~related]),
                    "related_median": _median(values[related]),
                    "unrelated_median": _median(values[~related]),
                    "cohen_d": cohen_d(values[related], values[~related]),
                    "auc": roc_auc(values, related),
                }
            layers.append(entry)
        evaluation = evaluate_split(
            self.records,
            self.predictions,
            self.options.protocol,
            num_classes=self.config.num_labels,
            num_predicates=self.config.num_rel_labels,
            predicate_names=list(predicate_names),
        ).metrics
        column = f"R@{self.options.top_k}" if self.options.protocol == "vg" else "AP_rel"
        analysis = {
            "counts": {
                "images": self.images,
                "related pairs": int(related.sum()),
                "unrelated pairs": int((~related).sum()),
                "probe pairs": len(in_train_half),
                **self.objects,
                **self.skipped,
            },
            "sources": sources,
            "attention": {"uniform": 1.0 / self.config.num_queries, "layers": layers},
            "metrics": {
                key: value
                for key, value in evaluation.items()
                if isinstance(value, int | float) or value is None
            },
            "per_predicate": [
                {"predicate": row["name"], "gt_triplets": row["gt_triplets"], column: row.get(column)}
                for row in evaluation["per_predicate"]
            ],
            "per_predicate_column": column,
            "confusion": {"predicates": list(predicate_names), "counts": self.confusion.tolist()},
            "failures": dict(self.failures),
        }
        return analysis, arrays

    def _probe_halves(self, probe_image: np.ndarray) -> np.ndarray:
        """[P'] bool: the pair's image is in the probe's training half (a seeded half of the images)."""
        images = np.unique(probe_image)
        shuffled = np.random.default_rng(self.options.seed).permutation(images)
        train_images = set(shuffled[: (len(images) + 1) // 2].tolist())
        return np.array([image in train_images for image in probe_image.tolist()], dtype=bool)


def analyze_split(
    model: EGTR, records: Sequence[SceneGraphRecord], predicate_names: Sequence[str], options: AnalysisOptions
) -> tuple[dict, dict[str, np.ndarray]]:
    """Run the analysis over `records` (the first `max_images`); see the module docstring."""
    records = list(records)[: options.max_images] if options.max_images is not None else list(records)
    model = model.to(options.device).eval()
    analysis = SplitAnalysis(model, records, options)
    loader = DataLoader(
        SceneGraphDataset(records, eval_transform(options.size, options.max_size)),
        batch_size=options.batch_size,
        num_workers=options.workers,
        collate_fn=collate,
    )
    for batch in track(loader, len(loader), "analysing", enabled=options.progress):
        analysis.add_batch(batch)
    return analysis.summary(predicate_names)


def _mean(values: np.ndarray) -> float | None:
    return float(np.mean(values)) if len(values) else None


def _median(values: np.ndarray) -> float | None:
    return float(np.median(values)) if len(values) else None
