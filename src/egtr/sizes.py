"""The official pipeline's image sizes (architecture.md §5.10), in pixels.

Torch-free, so that training settings and command-line defaults name them without importing torch;
`egtr.data.transforms` applies them.
"""

from __future__ import annotations

EVAL_SIZE, EVAL_MAX_SIZE = 800, 1333  # evaluation resize: shorter side, cap of the longer side
TRAIN_SCALES = tuple(range(480, 801, 32))  # training: shorter side drawn from 480, 512, ..., 800
MID_SCALES = (400, 500, 600)  # the resize before the crop of the official random-crop branch
TRAIN_MAX_SIZE = 1333  # training: cap of the longer side
DETECTOR_CROP = (384, 600)  # RandomSizeCrop of the official detector pre-training
