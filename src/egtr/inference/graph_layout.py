"""Node positions for drawing a scene graph: graphviz `dot` when installed, a spring layout otherwise.

`dot` is only asked for coordinates (`-Tplain`); the drawing itself is matplotlib's either way, so the
pictures look alike with or without graphviz, and no system binary is required.
"""

from __future__ import annotations

import shlex
import shutil
import subprocess
import warnings

import numpy as np

LAYOUTS = ("auto", "dot", "spring")
DOT_TIMEOUT_S = 30
SPRING_LENGTH = 1.5  # ideal edge length times sqrt(K): larger spreads the nodes more


def layout_graph(labels: list[str], edges: list[tuple[int, int]], method: str = "auto") -> np.ndarray:
    """[K,2] positions in [0,1] x [0,1] (y up) of K nodes with these labels and directed edges (a, b).

    method: "dot" (graphviz; error when missing), "spring", or "auto" (dot when on PATH, else spring; a
    failing dot run falls back to spring with a warning).
    """
    if method not in LAYOUTS:
        raise ValueError(f"layout must be one of {LAYOUTS}, got {method!r}")
    if len(labels) <= 1:
        return np.full((len(labels), 2), 0.5)
    if method == "spring" or (method == "auto" and shutil.which("dot") is None):
        return spring_layout(len(labels), edges)
    try:
        return dot_layout(labels, edges)
    except (OSError, ValueError, subprocess.SubprocessError) as error:
        if method == "dot":
            raise
        warnings.warn(f"graphviz dot failed ({error}); using the spring layout", stacklevel=2)
        return spring_layout(len(labels), edges)


def dot_source(labels: list[str], edges: list[tuple[int, int]]) -> str:
    """A DOT digraph with nodes n0..n{K-1} labelled `labels` and the given edges."""

    def quoted(text: str) -> str:
        return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'

    lines = ["digraph scene {", "  node [shape=box];"]
    lines += [f"  n{index} [label={quoted(label)}];" for index, label in enumerate(labels)]
    lines += [f"  n{a} -> n{b};" for a, b in edges]
    return "\n".join([*lines, "}"]) + "\n"


def dot_layout(labels: list[str], edges: list[tuple[int, int]]) -> np.ndarray:
    """Positions from `dot -Tplain` (graphviz), normalized to [0,1]."""
    dot = shutil.which("dot")
    if dot is None:
        raise OSError("graphviz 'dot' is not on PATH")
    completed = subprocess.run(
        [dot, "-Tplain"],
        input=dot_source(labels, edges),
        capture_output=True,
        text=True,
        timeout=DOT_TIMEOUT_S,
        check=False,
    )
    if completed.returncode != 0:
        raise ValueError(f"dot exited with code {completed.returncode}: {completed.stderr.strip()[:200]}")
    return normalized(parse_plain_positions(completed.stdout, len(labels)))


def parse_plain_positions(plain: str, num_nodes: int) -> np.ndarray:
    """[K,2] node centres from graphviz plain output (lines `node n<i> x y width height ...`)."""
    positions = np.full((num_nodes, 2), np.nan)
    for line in plain.splitlines():
        fields = shlex.split(line)
        if len(fields) >= 4 and fields[0] == "node" and fields[1].startswith("n") and fields[1][1:].isdigit():
            index = int(fields[1][1:])
            if index < num_nodes:
                positions[index] = float(fields[2]), float(fields[3])
    if np.isnan(positions).any():
        raise ValueError("dot output lacks the position of some nodes")
    return positions


def spring_layout(num_nodes: int, edges: list[tuple[int, int]], iterations: int = 300) -> np.ndarray:
    """Fruchterman-Reingold force layout (deterministic: starts on a circle), normalized to [0,1].

    Every pair of nodes repels with k^2/d, linked nodes attract with d^2/k (k = 1.5/sqrt(K)); the step
    length cools linearly from 0.1 to 0, and nodes stay inside the unit square (so that unlinked nodes
    cannot drift off and squeeze the rest together).
    """
    angles = 2 * np.pi * np.arange(num_nodes) / num_nodes
    positions = 0.5 + 0.4 * np.stack((np.cos(angles), np.sin(angles)), axis=1)
    linked = np.zeros((num_nodes, num_nodes), dtype=bool)
    for a, b in edges:
        linked[a, b] = linked[b, a] = a != b
    k = SPRING_LENGTH / np.sqrt(num_nodes)
    for step in range(iterations):
        delta = positions[:, None, :] - positions[None, :, :]  # [K,K,2]
        distance = np.maximum(np.linalg.norm(delta, axis=-1), 1e-3)  # [K,K]
        force = k * k / distance - np.where(linked, distance * distance / k, 0.0)
        np.fill_diagonal(force, 0.0)
        displacement = (delta / distance[..., None] * force[..., None]).sum(axis=1)  # [K,2]
        length = np.maximum(np.linalg.norm(displacement, axis=1, keepdims=True), 1e-9)
        temperature = 0.1 * (1 - step / iterations)
        positions = np.clip(positions + displacement / length * np.minimum(length, temperature), 0.0, 1.0)
    return normalized(positions)


def normalized(positions: np.ndarray) -> np.ndarray:
    """Scale [K,2] positions uniformly (aspect kept) into [0,1] x [0,1], centred."""
    low, high = positions.min(axis=0), positions.max(axis=0)
    span = float((high - low).max())
    if span == 0:
        return np.full_like(positions, 0.5)
    return (positions - (low + high) / 2) / span + 0.5
