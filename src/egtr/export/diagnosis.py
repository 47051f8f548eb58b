"""Which part of the model an export failure comes from.

Three kinds of failure, three ways to name the part:
- the exporter's trace raises inside a sub-module's forward: forward hooks (`ModuleStack`) know which
  sub-modules were running;
- the trace completes but an ATen operator has no ONNX translation (`aten::special_zeta`):
  `operator_callers` runs the model once more with a dispatch mode that records the innermost module
  that first calls each operator;
- OpenVINO cannot read an ONNX node: the exporter names nodes after their module path
  (`/model/relation_head/rel_predictor/layers.0/Gemm`), which `module_of_node` turns back into a module.
"""

from __future__ import annotations

import re

import torch
from torch import Tensor, nn
from torch.utils._python_dispatch import TorchDispatchMode

OPERATOR_PATTERN = re.compile(r"\b(aten|prim)::([A-Za-z0-9_]+)")
NODE_PATTERN = re.compile(r"/model((?:/[A-Za-z_][\w.]*)+)/[A-Za-z]\w*")


class ExportError(RuntimeError):
    """A model could not be exported; the message names the part of the model and the reason."""


def describe_module(root: nn.Module, name: str) -> str:
    """'relation_head.rel_predictor (MLP)' for a sub-module name of `root` ('' = the whole model)."""
    module = dict(root.named_modules()).get(name)
    label = name or "the whole model"
    return label if module is None else f"{label} ({type(module).__name__})"


class ModuleStack:
    """Forward hooks on every sub-module of `root`, keeping the names of the ones running now.

    Use as a context manager; the hooks are removed on exit, the last stack is kept in `names`.
    """

    def __init__(self, root: nn.Module) -> None:
        self.root = root
        self.names: list[str] = []
        self.handles: list = []

    def __enter__(self) -> ModuleStack:
        for name, module in self.root.named_modules():
            self.handles.append(module.register_forward_pre_hook(self._enter(name)))
            self.handles.append(module.register_forward_hook(self._leave(name)))
        return self

    def __exit__(self, *_) -> None:
        for handle in self.handles:
            handle.remove()
        self.handles.clear()

    def _enter(self, name: str):
        def hook(*_):
            self.names.append(name)

        return hook

    def _leave(self, name: str):
        def hook(*_):
            self.names.pop()

        return hook

    def innermost(self) -> str | None:
        return self.names[-1] if self.names else None


class _OperatorCallers(TorchDispatchMode):
    def __init__(self, stack: ModuleStack) -> None:
        super().__init__()
        self.stack = stack
        self.first_caller: dict[str, str | None] = {}

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.first_caller.setdefault(func.__name__.split(".")[0], self.stack.innermost())
        return func(*args, **(kwargs or {}))


def operator_callers(model: nn.Module, inputs: tuple[Tensor, ...]) -> dict[str, str | None]:
    """{ATen operator name: innermost sub-module name that first calls it} over one eager forward."""
    with ModuleStack(model) as stack, torch.no_grad():
        callers = _OperatorCallers(stack)
        with callers:
            model(*inputs)
    return callers.first_caller


def module_of_node(text: str) -> str | None:
    """The module path in an ONNX node name quoted in `text`, e.g. 'relation_head.rel_predictor.layers.0'."""
    match = NODE_PATTERN.search(text)
    return None if match is None else match.group(1).strip("/").replace("/", ".")


def first_line(error: BaseException) -> str:
    text = str(error).strip()
    lines = [line for line in text.splitlines() if line.strip()]
    return lines[0] if lines else type(error).__name__


def onnx_failure(
    model: nn.Module, inputs: tuple[Tensor, ...], error: Exception, running: str | None
) -> ExportError:
    """An ExportError for a failed ONNX export of `model` (the EGTR inside the export wrapper).

    `running` is the sub-module whose forward was running when the trace raised, None when the trace
    finished and the conversion failed (then the operator named in the error is located).
    """
    if running is not None:
        part = describe_module(model, running)
    else:
        match = OPERATOR_PATTERN.search(str(error))
        caller = operator_callers(model, inputs).get(match.group(2)) if match else None
        part = "the model" if caller is None else describe_module(model, caller)
        if match:
            part += f", operator {match.group(1)}::{match.group(2)}"
    return ExportError(f"ONNX export failed in {part}: {first_line(error)}")


def openvino_failure(model: nn.Module, error: Exception) -> ExportError:
    """An ExportError for an ONNX graph OpenVINO cannot read, naming the module of the failing node."""
    name = module_of_node(str(error))
    part = "the model" if name is None else describe_module(model, name)
    return ExportError(f"OpenVINO conversion failed in {part}: {first_line(error)}")
