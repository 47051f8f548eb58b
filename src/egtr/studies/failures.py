"""Where the model fails on a ground-truth triplet: detection (subject / object missed) or relation.

For each ground-truth triplet (s, o, p) of an image, against the graph-constrained top-K triplets of the
prediction (the VG protocol's candidate list, +1-pixel IoU >= 0.5 with the right class for a box):
- `recalled`: a top-K triplet hits it (what R@K counts);
- `subject and object missed`, `subject missed`, `object missed`: no predicted box (of all queries, with
  its label) matches that ground-truth box, so no predicate could have recalled it;
- `wrong predicate`: both boxes are detected and a top-K triplet pairs them, with another predicate;
- `pair ranked below top K`: both boxes are detected but no top-K triplet pairs them.
"""

from __future__ import annotations

from collections.abc import Mapping

from egtr.evaluation.candidates import graph_constrained_triplets
from egtr.evaluation.inputs import read_groundtruth, read_prediction
from egtr.evaluation.matching import box_label_matches, first_hit_ranks

CATEGORIES = (
    "recalled",
    "wrong predicate",
    "pair ranked below top K",
    "subject missed",
    "object missed",
    "subject and object missed",
)


def failure_counts(
    groundtruth: Mapping,
    prediction: Mapping,
    num_predicates: int,
    top_k: int = 50,
    iou_threshold: float = 0.5,
) -> dict[str, int]:
    """Counts per category (CATEGORIES) of one image's ground-truth triplets (architecture.md §4 dicts)."""
    truth = read_groundtruth(groundtruth, num_predicates)
    predicted = read_prediction(prediction, num_predicates)
    counts = dict.fromkeys(CATEGORIES, 0)
    if len(truth.relations) == 0:
        return counts
    matches = box_label_matches(predicted, truth, iou_threshold)  # [K,M]
    triplets = graph_constrained_triplets(predicted, top_k)
    recalled = first_hit_ranks(triplets, truth.relations, matches) < top_k
    detected = matches.any(axis=0)  # [M]
    paired = (
        matches[triplets.subjects][:, truth.relations[:, 0]]
        & matches[triplets.objects][:, truth.relations[:, 1]]
    )  # [C,T]: candidate c pairs the two boxes of relation t
    for index, (subject, object_, _) in enumerate(truth.relations):
        if recalled[index]:
            category = "recalled"
        elif not detected[subject] and not detected[object_]:
            category = "subject and object missed"
        elif not detected[subject]:
            category = "subject missed"
        elif not detected[object_]:
            category = "object missed"
        elif paired[:, index].any():
            category = "wrong predicate"
        else:
            category = "pair ranked below top K"
        counts[category] += 1
    return counts
