"""Export metadata: stored in both formats, read back exactly, and every bad field named with its file."""

import json
import re

import pytest
import torch

from egtr import EGTRConfig
from egtr.export.exporter import export_metadata
from egtr.export.metadata import KEYS, ExportMetadata, ExportMetadataError
from egtr.export.onnxruntime_backend import OnnxRuntimeBackend
from egtr.export.openvino_export import read_rt_metadata
from egtr.inference.names import packaged_visual_genome_names
from egtr.models.egtr import EGTR


def test_both_files_carry_every_field_and_read_back_to_the_model(small_export):
    import onnx
    import openvino as ov

    stored = {p.key: p.value for p in onnx.load(small_export.folder / "model.onnx").metadata_props}
    assert set(KEYS) <= set(stored)
    read = read_rt_metadata(ov.Core().read_model(small_export.folder / "model.xml"), KEYS)
    assert read == {key: stored[key] for key in KEYS}
    metadata = ExportMetadata.from_strings(stored, "model.onnx")
    model = small_export.model
    assert metadata.config.to_dict() == model.config.to_dict()
    assert torch.equal(metadata.rel_dist_tensor(), model.rel_dist)  # float32 survives JSON exactly
    assert (metadata.size, metadata.max_size, metadata.opset) == (32, 64, 17)
    assert json.loads(stored["egtr.outputs"]) == ["logits", "pred_boxes", "rel_logits", "connectivity_logits"]
    preprocessing = json.loads(stored["egtr.preprocessing"])
    assert preprocessing["mean"] == [0.485, 0.456, 0.406] and preprocessing["std"] == [0.229, 0.224, 0.225]
    assert "bottom and right" in preprocessing["padding"]


def test_real_names_go_into_the_exported_config_placeholders_do_not():
    torch.manual_seed(0)
    visual_genome = EGTR(EGTRConfig.small(num_labels=150, num_rel_labels=50, num_queries=4))
    metadata = export_metadata(visual_genome)
    names = packaged_visual_genome_names()
    assert metadata.class_names == names["objects"] == metadata.config.class_names
    assert metadata.predicate_names == names["predicates"] == metadata.config.predicate_names
    unnamed = export_metadata(EGTR(EGTRConfig.small(num_queries=4)))
    assert unnamed.class_names[0] == "class_0" and unnamed.config.class_names is None
    given = {"objects": [f"o{i}" for i in range(12)], "predicates": [f"p{i}" for i in range(6)]}
    assert export_metadata(EGTR(EGTRConfig.small(num_queries=4)), given).config.predicate_names[5] == "p5"


@pytest.fixture
def strings(small_export):
    model = small_export.model
    return export_metadata(model, size=32, max_size=64).to_strings()


BAD_FIELDS = [
    ("egtr.config", None, "egtr.config: missing"),
    ("egtr.config", "{not json", "egtr.config: not valid JSON"),
    ("egtr.config", '{"num_labels": 12, "colour": 1}', "egtr.config: unknown EGTRConfig key"),
    ("egtr.format", "something-else", "egtr.format: expected 'egtr-export'"),
    ("egtr.format_version", "7", "egtr.format_version: version 7"),
    ("egtr.class_names", '["a", "b"]', "egtr.class_names: 2 names for a model with 12"),
    ("egtr.predicate_names", "[1, 2]", "egtr.predicate_names: expected a list of names"),
    ("egtr.preprocessing", '{"size": 32, "mean": [0.5, 0.5, 0.5]}', "egtr.preprocessing: mean is"),
    ("egtr.rel_dist", "[0.5]", "egtr.rel_dist: expected null or 6 non-negative numbers"),
    ("egtr.outputs", '["logits"]', "egtr.outputs: ['logits'] does not fit the config"),
    ("egtr.opset", "seventeen", "egtr.opset: expected a whole number"),
]


@pytest.mark.parametrize(("key", "value", "message"), BAD_FIELDS, ids=[f[2][:28] for f in BAD_FIELDS])
def test_bad_fields_are_named_with_the_file(strings, key, value, message):
    if value is None:
        del strings[key]
    else:
        strings[key] = value
    expected = re.escape(f"exported/model.onnx: metadata field {message}")
    with pytest.raises(ExportMetadataError, match=f"^{expected}"):
        ExportMetadata.from_strings(strings, "exported/model.onnx")


def test_a_file_without_the_metadata_is_refused_by_name(small_export, tmp_path):
    import onnx

    proto = onnx.load(small_export.folder / "model.onnx")
    kept = [p for p in proto.metadata_props if p.key != "egtr.preprocessing"]
    del proto.metadata_props[:]
    proto.metadata_props.extend(kept)
    onnx.save(proto, tmp_path / "model.onnx")
    with pytest.raises(ExportMetadataError, match=r"model.onnx: metadata field egtr.preprocessing: missing"):
        OnnxRuntimeBackend(tmp_path)
