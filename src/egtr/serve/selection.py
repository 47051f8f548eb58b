"""The query parameters of `POST /v1/scene-graph`: one per field of `TripletOptions`, made from the field.

Names, types, defaults (the predictor's), descriptions and bounds come from the dataclass and its field
metadata, as `egtr predict`'s flags do, so the two can never disagree; an unknown parameter is a 422.
"""

from __future__ import annotations

import inspect
import typing
from collections.abc import Callable
from dataclasses import fields
from typing import Literal

from fastapi import Query, Request

from egtr.inference.predictor import SceneGraphPredictor, Selection
from egtr.inference.selection import TripletOptions
from egtr.serve.errors import ApiError

MAX_TOP_K = 10_000  # the server's own cap on top_k, above the dataclass's bounds
OPTION_NAMES = tuple(spec.name for spec in fields(TripletOptions))


def selection_dependency(predictor: SceneGraphPredictor) -> Callable[..., Selection]:
    """A FastAPI dependency: the request's query parameters -> the predictor's `Selection`."""
    defaults = predictor.default_selection.triplets
    types = typing.get_type_hints(TripletOptions)
    parameters = [inspect.Parameter("request", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=Request)]
    for spec in fields(TripletOptions):
        metadata = spec.metadata
        bounds = {key: metadata[key] for key in ("ge", "le", "lt") if key in metadata}
        if spec.name == "top_k":
            bounds["le"] = MAX_TOP_K
        query = Query(getattr(defaults, spec.name), description=metadata["help"], **bounds)
        annotation = Literal[tuple(metadata["choices"])] if "choices" in metadata else types[spec.name]
        parameters.append(
            inspect.Parameter(spec.name, inspect.Parameter.KEYWORD_ONLY, default=query, annotation=annotation)
        )

    def selection(request: Request, **options) -> Selection:
        unknown = sorted(set(request.query_params) - set(OPTION_NAMES))
        if unknown:
            raise ApiError(
                422, f"unknown query parameter(s) {', '.join(unknown)}; known: {', '.join(OPTION_NAMES)}"
            )
        try:
            return predictor.selection(**options)
        except ValueError as error:
            raise ApiError(422, f"bad option: {error}") from error

    selection.__signature__ = inspect.Signature(parameters, return_annotation=Selection)
    return selection
