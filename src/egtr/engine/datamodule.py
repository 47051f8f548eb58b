"""LightningDataModule: a dataset directory in any supported layout, or the synthetic world on the fly."""

from __future__ import annotations

import lightning as L
import numpy as np
from torch.utils.data import DataLoader, Dataset

from egtr.data import load_dataset
from egtr.data.collate import collate
from egtr.data.dataset import SceneGraphDataset, SyntheticDataset
from egtr.data.record import SceneGraphRecord
from egtr.data.statistics import fg_matrix
from egtr.data.synthetic.world import SyntheticWorld
from egtr.data.transforms import eval_transform, train_transform
from egtr.engine.settings import TrainSettings


class SceneGraphDataModule(L.LightningDataModule):
    """Train/val/test loaders and the training statistics (fg_matrix) of one dataset.

    Vocabularies (`class_names`, `predicate_names`), `val_records`/`test_records` (ground truth for the
    metrics) and `fg_matrix` [C+1, C+1, R] are available right after construction.
    """

    def __init__(self, settings: TrainSettings) -> None:
        super().__init__()
        self.settings = settings
        if settings.data:
            splits = {name: load_dataset(settings.data, name) for name in ("train", "val", "test")}
            self.class_names = splits["train"].class_names
            self.predicate_names = splits["train"].predicate_names
            self.records = {name: split.records for name, split in splits.items()}
            self.world = None
        else:
            self.world = SyntheticWorld(
                seed=settings.synthetic_seed, image_size=(settings.synthetic_size, settings.synthetic_size)
            )
            self.class_names, self.predicate_names = self.world.class_names, self.world.predicate_names
            sizes = {
                "train": settings.synthetic_images,
                "val": settings.synthetic_val_images,
                "test": settings.synthetic_val_images,
            }
            starts = {"train": 0, "val": sizes["train"], "test": sizes["train"] + sizes["val"]}
            self.synthetic_ranges = {name: (starts[name], sizes[name]) for name in sizes}
            self.records = {
                name: [self.world.sample(i)[1] for i in range(start, start + size)]
                for name, (start, size) in self.synthetic_ranges.items()
                if name != "train"
            }
            self.records["train"] = None  # generated on the fly; statistics from a sample below
        if settings.max_val_images is not None:
            self.records["val"] = self.records["val"][: settings.max_val_images]
        for name in ("val", "test"):
            if not self.records[name]:
                raise ValueError(f"the {name} split is empty")
        self.fg_matrix = fg_matrix(
            self._statistics_records(), len(self.class_names), len(self.predicate_names)
        )

    def _statistics_records(self) -> list[SceneGraphRecord]:
        if self.records["train"] is not None:
            return self.records["train"]
        start, size = self.synthetic_ranges["train"]
        return [self.world.sample(i)[1] for i in range(start, start + min(size, 2000))]

    def _dataset(self, split: str) -> Dataset:
        s = self.settings
        if split == "train":
            transform = train_transform(
                s.train_scales, s.train_max_size, s.train_mid_scales, s.flip_prob, crop_sizes=s.train_crop
            )
        else:
            transform = eval_transform(s.eval_size, s.eval_max_size)
        if self.world is not None:
            start, size = self.synthetic_ranges[split]
            size = size if split == "train" else len(self.records[split])
            return SyntheticDataset(self.world, size, transform, start=start)
        return SceneGraphDataset(
            self.records[split],
            transform,
            single_predicate_per_pair=split == "train" and s.filter_multiple_rels,
        )

    def _loader(self, split: str) -> DataLoader:
        workers = self.settings.num_workers
        return DataLoader(
            self._dataset(split),
            batch_size=self.settings.batch_size,
            shuffle=split == "train",
            num_workers=workers,
            collate_fn=collate,
            persistent_workers=workers > 0,
            drop_last=False,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader("train")

    def val_dataloader(self) -> DataLoader:
        return self._loader("val")

    def test_dataloader(self) -> DataLoader:
        return self._loader("test")

    def training_triplets(self) -> np.ndarray:
        """[K,3] (subject class, object class, predicate) seen in training, for zero-shot recall."""
        return np.argwhere(np.asarray(self.fg_matrix) > 0)
