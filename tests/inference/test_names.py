"""Where class and predicate names come from: --names file or dataset, the config, the VG lists."""

import json

import pytest

from egtr import EGTRConfig
from egtr.data import SceneGraphRecord, write_coco_dataset
from egtr.inference.names import packaged_visual_genome_names, read_names, resolve_vocabulary

from .conftest import write_rgb

CLASSES = [f"thing{i}" for i in range(12)]
PREDICATES = ["on", "near", "has", "under", "in", "behind"]


def test_visual_genome_lists_are_the_default_for_150_50_models():
    vocabulary = resolve_vocabulary(EGTRConfig.visual_genome())
    packaged = packaged_visual_genome_names()
    assert vocabulary.class_names == packaged["objects"] and len(packaged["objects"]) == 150
    assert vocabulary.predicate_names == packaged["predicates"] and len(packaged["predicates"]) == 50
    assert vocabulary.class_names[:3] == ["airplane", "animal", "arm"]
    assert vocabulary.predicate_names[:3] == ["above", "across", "against"]
    assert vocabulary.note is None and "Visual Genome" in vocabulary.source


def test_names_stored_in_the_config_win_over_placeholders():
    config = EGTRConfig.small(class_names=CLASSES, predicate_names=PREDICATES)
    vocabulary = resolve_vocabulary(config)
    assert (vocabulary.class_names, vocabulary.predicate_names) == (CLASSES, PREDICATES)
    assert vocabulary.source == "model config"


def test_placeholders_come_with_a_note():
    vocabulary = resolve_vocabulary(EGTRConfig.small())
    assert vocabulary.class_names[11] == "class_11" and vocabulary.predicate_names[0] == "predicate_0"
    assert "--names" in vocabulary.note


@pytest.mark.parametrize(
    "content",
    [
        {"objects": CLASSES, "predicates": PREDICATES},
        {"obj": CLASSES, "rel": PREDICATES},
        {"class_names": CLASSES, "predicate_names": PREDICATES},
        {
            "idx_to_label": {str(i + 1): n for i, n in enumerate(CLASSES)},
            "idx_to_predicate": {str(i + 1): n for i, n in enumerate(PREDICATES)},
        },
    ],
)
def test_names_files_in_every_supported_format(tmp_path, content):
    path = tmp_path / "names.json"
    path.write_text(json.dumps(content))
    vocabulary = resolve_vocabulary(EGTRConfig.small(), path)
    assert (vocabulary.class_names, vocabulary.predicate_names) == (CLASSES, PREDICATES)
    assert vocabulary.source == str(path)


def test_a_file_with_only_object_names_keeps_the_other_source(tmp_path):
    path = tmp_path / "objects.json"
    path.write_text(json.dumps({"objects": CLASSES}))
    vocabulary = resolve_vocabulary(EGTRConfig.small(predicate_names=PREDICATES), path)
    assert (vocabulary.class_names, vocabulary.predicate_names) == (CLASSES, PREDICATES)
    assert "model config" in vocabulary.source and str(path) in vocabulary.source


def test_open_images_dataset_directory_reads_categories_dict_only(tmp_path):
    (tmp_path / "annotations").mkdir()
    (tmp_path / "annotations" / "categories_dict.json").write_text(
        json.dumps({"obj": CLASSES, "rel": PREDICATES})
    )
    vocabulary = resolve_vocabulary(EGTRConfig.small(), tmp_path)
    assert (vocabulary.class_names, vocabulary.predicate_names) == (CLASSES, PREDICATES)


def test_coco_layout_dataset_directory(tmp_path):
    image = write_rgb(tmp_path / "data" / "images" / "1.png", 16, 16)
    record = SceneGraphRecord("1", image, 16, 16, [[1, 1, 8, 8], [4, 4, 12, 12]], [0, 3], [[0, 1, 2]])
    write_coco_dataset(tmp_path / "data", {"test": [record]}, CLASSES, PREDICATES, copy_images=False)
    assert read_names(tmp_path / "data") == {"objects": CLASSES, "predicates": PREDICATES}


def test_wrong_counts_and_bad_files_are_clear_errors(tmp_path):
    short = tmp_path / "short.json"
    short.write_text(json.dumps({"objects": CLASSES[:5]}))
    with pytest.raises(ValueError, match=r"short.json: 5 object names, but the model has 12 classes"):
        resolve_vocabulary(EGTRConfig.small(), short)
    empty = tmp_path / "empty.json"
    empty.write_text("{}")
    with pytest.raises(ValueError, match="no names found"):
        read_names(empty)
    broken = tmp_path / "broken.json"
    broken.write_text("{")
    with pytest.raises(ValueError, match="not a JSON names file"):
        read_names(broken)
    with pytest.raises(ValueError, match="list of names"):
        read_names_from({"objects": [1, 2]}, tmp_path)
    with pytest.raises(ValueError, match="holds no supported dataset layout"):
        read_names(tmp_path)
    with pytest.raises(FileNotFoundError):
        read_names(tmp_path / "nothing.json")


def read_names_from(content, folder):
    path = folder / "content.json"
    path.write_text(json.dumps(content))
    return read_names(path)


def test_names_given_as_a_dict():
    vocabulary = resolve_vocabulary(EGTRConfig.small(), {"objects": CLASSES, "predicates": PREDICATES})
    assert vocabulary.predicate_names == PREDICATES
