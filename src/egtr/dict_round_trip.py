"""Dict round-trip of settings dataclasses: unknown keys are an error that names them."""

from __future__ import annotations

import dataclasses
from typing import Any, TypeVar

T = TypeVar("T", bound="DictRoundTrip")


class DictRoundTrip:
    """Mixin for dataclasses: `to_dict`, strict `from_dict`, and `replace(**changes)`."""

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)  # type: ignore[call-overload]

    @classmethod
    def from_dict(cls: type[T], data: dict[str, Any]) -> T:
        known = {field.name for field in dataclasses.fields(cls)}  # type: ignore[arg-type]
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown {cls.__name__} key(s): {', '.join(unknown)}")
        return cls(**data)

    def replace(self: T, **changes: Any) -> T:
        """A copy with some fields changed (unknown names are an error naming them)."""
        return self.from_dict({**self.to_dict(), **changes})
