"""Training objectives: the EGTR criterion, the detector-only criterion, the Hungarian matcher
(architecture.md §5.5)."""

from egtr.training.criterion import EGTRCriterion
from egtr.training.detector_criterion import DetectorCriterion
from egtr.training.matcher import HungarianMatcher

__all__ = ["DetectorCriterion", "EGTRCriterion", "HungarianMatcher"]
