"""From images to scene graphs: post-processing, the predictor, drawings and explanations.

- `postprocess.postprocess`: model outputs -> per-image predictions (the official rules of
  architecture.md §5.6);
- `SceneGraphPredictor` (predictor.py): images (paths, PIL, numpy) -> `SceneGraph`s (scene_graph.py);
- `draw_scene_graph` (visualize.py): photo with boxes beside the graph;
- `explain_triplet` / `draw_explanation` (explain.py): per-layer attention and relation-source gates.
Heavy pieces import lazily: `import egtr.inference` stays cheap.
"""

from __future__ import annotations

from egtr.lazy import lazy_attributes

_LAZY = {
    "PostprocessOptions": "egtr.inference.postprocess",
    "SceneGraphPredictor": "egtr.inference.predictor",
    "PredictionResult": "egtr.inference.predictor",
    "SceneGraph": "egtr.inference.scene_graph",
    "Triplet": "egtr.inference.scene_graph",
    "ImageReadError": "egtr.data.images",
    "draw_scene_graph": "egtr.inference.visualize",
    "explain_triplet": "egtr.inference.explain",
    "draw_explanation": "egtr.inference.explain",
}

__all__ = list(_LAZY)


__getattr__ = lazy_attributes(__name__, _LAZY)
