"""A model that cannot be exported says which part: the sub-module and, for a conversion failure, the
operator. The failures are made by patching one sub-module of the tiny model with something no exporter
handles (an operator without ONNX translation; a construct refused while tracing)."""

import pytest
import torch

from egtr.export.diagnosis import ExportError, module_of_node, openvino_failure
from egtr.export.onnx_export import onnx_bytes

from .conftest import tiny_model


def test_an_operator_without_onnx_translation_is_located_in_its_module():
    model = tiny_model()
    original = model.detector.bbox_embed.forward
    model.detector.bbox_embed.forward = lambda x: torch.special.zeta(original(x), 2.0)
    with pytest.raises(ExportError) as raised:
        onnx_bytes(model)
    message = str(raised.value)
    assert message.startswith("ONNX export failed in detector.bbox_embed (MLP), operator aten::special_zeta")
    assert "is not supported" in message


def test_a_failure_while_tracing_names_the_running_module():
    model = tiny_model()
    original = model.relation_head.forward

    def refuses_tracing(*inputs):
        if torch.jit.is_tracing():
            raise RuntimeError("data-dependent control flow")
        return original(*inputs)

    model.relation_head.forward = refuses_tracing
    with pytest.raises(ExportError, match=r"in relation_head \(RelationHead\): data-dependent control flow"):
        onnx_bytes(model)


def test_openvino_node_names_lead_back_to_modules():
    error = RuntimeError(
        "Check failed: OpConversionFailure\nnode: /model/relation_head/rel_predictor/layers.0/Gemm of type X"
    )
    assert module_of_node(str(error)) == "relation_head.rel_predictor.layers.0"
    message = str(openvino_failure(tiny_model(), error))
    assert message == (
        "OpenVINO conversion failed in relation_head.rel_predictor.layers.0 (Linear): Check failed: "
        "OpConversionFailure"
    )


def test_unsupported_opsets_are_refused():
    with pytest.raises(ValueError, match="opset must be between 17 and 20"):
        onnx_bytes(tiny_model(), opset=16)
