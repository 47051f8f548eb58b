"""Training objectives (architecture.md §5.5): the EGTR criterion, the detector criterion, the matcher."""

from egtr.training.criterion import EGTRCriterion
from egtr.training.detector_criterion import DetectorCriterion
from egtr.training.matcher import HungarianMatcher

__all__ = ["DetectorCriterion", "EGTRCriterion", "HungarianMatcher"]
