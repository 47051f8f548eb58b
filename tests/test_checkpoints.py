"""Native and official checkpoints load strictly, round-trip, and fail clearly."""

import json

import pytest
import torch
from safetensors.torch import save as safetensors_save

from egtr.checkpoints import load_model, memory_lower_bound, native_to_official, save_model
from egtr.config import EGTRConfig
from egtr.models.egtr import EGTR

from .official_checkpoints import official_config_json, official_vg_key_shapes, write_official_artifact
from .torch_threads import one_torch_thread  # noqa: F401

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_official_key_names_and_shapes_match_spec():
    expected = official_vg_key_shapes()
    official = native_to_official(EGTR(EGTRConfig.visual_genome()))
    assert len(expected) == 633
    assert set(official) == set(expected)
    assert {k: tuple(v.shape) for k, v in official.items()} == expected
    assert sum(v.numel() for v in official.values()) == 43_464_730


def small_config(**overrides):
    return EGTRConfig.small(num_queries=12, **overrides)


def trained_like(config) -> EGTR:
    torch.manual_seed(0)
    model = EGTR(config)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(torch.randn_like(parameter) * 0.01)
        fg = torch.randint(0, 4, (config.num_labels + 1, config.num_labels + 1, config.num_rel_labels))
        model.set_frequency_statistics(fg)
    return model.eval()


def same_outputs(a: EGTR, b: EGTR):
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        out_a, out_b = a(x), b(x)
    for name in ("logits", "pred_boxes", "rel_logits", "pred_connectivity"):
        torch.testing.assert_close(getattr(out_a, name), getattr(out_b, name), rtol=0, atol=0)


def test_native_round_trip(tmp_path):
    model = trained_like(small_config(class_names=[f"thing{i}" for i in range(12)]))
    path = save_model(model, tmp_path / "run")
    assert path.name == "model.safetensors"
    loaded = load_model(tmp_path / "run")
    assert loaded.config == model.config and not loaded.training
    same_outputs(model, loaded)
    same_outputs(model, load_model(path))


def test_official_artifact_dir_and_ckpt_load_highest_epoch(tmp_path):
    model = trained_like(small_config())
    artifact = write_official_artifact(tmp_path, model)
    loaded = load_model(artifact)
    same_outputs(model, loaded)
    assert loaded.config.class_names is None  # LABEL_i placeholders
    same_outputs(model, load_model(artifact / "checkpoints" / "epoch=03-validation_loss=1.71.ckpt"))
    # round trip back to the official names
    again = native_to_official(loaded)
    for key, value in native_to_official(model).items():
        torch.testing.assert_close(again[key], value)


def test_official_pretrained_detector_dir(tmp_path):
    model = trained_like(small_config())
    directory = tmp_path / "detector"
    directory.mkdir()
    detector_keys = {
        k: v
        for k, v in native_to_official(model).items()
        if k.startswith(("model.", "class_embed", "bbox_embed"))
    }
    torch.save(detector_keys, directory / "pytorch_model.bin")
    config = official_config_json(model.config)
    del config["num_rel_labels"]
    (directory / "config.json").write_text(json.dumps(config))
    loaded = load_model(directory)
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x).pred_boxes, model(x).pred_boxes, rtol=0, atol=0)
    assert loaded.frequency_bias.triplet_dist.abs().sum() == 0  # fresh: filled by training


def test_wrong_class_count_names_the_key(tmp_path):
    model = trained_like(small_config())
    artifact = write_official_artifact(tmp_path, model, epochs=(1,))
    config = json.loads((artifact / "config.json").read_text())
    config["id2label"] = {str(i): f"LABEL_{i}" for i in range(150)}
    (artifact / "config.json").write_text(json.dumps(config))
    with pytest.raises(
        ValueError, match=r"mis-shaped.*detector.class_embed.weight \(12, 128\) vs \(150, 128\)"
    ):
        load_model(artifact)


def test_missing_and_unexpected_keys_are_listed(tmp_path):
    model = trained_like(small_config())
    artifact = write_official_artifact(tmp_path, model, epochs=(1,))
    path = artifact / "checkpoints" / "epoch=01-validation_loss=1.71.ckpt"
    content = torch.load(path, weights_only=True)
    del content["state_dict"]["model.rel_predictor_gate.weight"]
    content["state_dict"]["model.extra_head.weight"] = torch.zeros(1)
    torch.save(content, path)
    with pytest.raises(
        ValueError, match=r"missing: relation_head.rel_predictor_gate.weight.*unexpected: extra_head"
    ):
        load_model(path)


class Custom:
    pass


def test_pickled_objects_are_refused_with_advice(tmp_path):
    path = tmp_path / "checkpoints" / "model.ckpt"
    path.parent.mkdir()
    (tmp_path / "config.json").write_text("{}")
    torch.save({"state_dict": {}, "object": Custom()}, path)
    with pytest.raises(ValueError, match=r"refused to load.*If you trust the file"):
        load_model(path)


def test_truncated_and_wrong_files(tmp_path):
    model = trained_like(small_config())
    path = save_model(model, tmp_path / "m.safetensors")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="m.safetensors"):
        load_model(path)
    artifact = write_official_artifact(tmp_path, model, epochs=(2,))
    ckpt = artifact / "checkpoints" / "epoch=02-validation_loss=1.71.ckpt"
    ckpt.write_bytes(ckpt.read_bytes()[:5000])
    with pytest.raises(ValueError, match="truncated"):
        load_model(ckpt)
    text = tmp_path / "notes.ckpt"
    text.write_text("hello")
    with pytest.raises(ValueError, match="notes.ckpt"):
        load_model(text)
    with pytest.raises(FileNotFoundError):
        load_model(tmp_path / "nothing.safetensors")
    with pytest.raises(ValueError, match="not a model directory"):
        load_model(tmp_path)
    lonely = tmp_path / "lonely" / "x.ckpt"
    lonely.parent.mkdir()
    torch.save({"state_dict": {}}, lonely)
    with pytest.raises(ValueError, match="config.json"):
        load_model(lonely)


def test_unsupported_official_settings(tmp_path):
    model = trained_like(small_config())
    artifact = write_official_artifact(tmp_path, model, epochs=(1,))
    config = json.loads((artifact / "config.json").read_text()) | {"two_stage": True}
    (artifact / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match="two_stage"):
        load_model(artifact)


def test_official_checkpoint_trained_without_frequency_bias_loads(tmp_path):
    """The official model always carries triplet_dist and rel_dist, also with use_freq_bias=false."""
    model = trained_like(small_config(use_freq_bias=False))
    artifact = write_official_artifact(tmp_path, model, epochs=(1,))
    assert "model.triplet_dist" in torch.load(next((artifact / "checkpoints").glob("*.ckpt")))["state_dict"]
    loaded = load_model(artifact)
    assert not loaded.config.use_freq_bias
    same_outputs(model, loaded)
    torch.testing.assert_close(loaded.frequency_bias.rel_dist, model.frequency_bias.rel_dist)


def lightning_1_6_checkpoint(model: EGTR) -> dict:
    """Everything PyTorch Lightning 1.6 writes beside the weights of an official EGTR run."""
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(
        [{"params": trainable[:5], "lr": 2e-7}, {"params": trainable[5:], "lr": 2e-6}], weight_decay=1e-4
    )
    sum(p.sum() for p in trainable).backward()
    optimizer.step()
    best = "/data/runs/egtr/checkpoints/epoch=03-validation_loss=1.71.ckpt"
    return {
        "epoch": 3,
        "global_step": 4242,
        "pytorch-lightning_version": "1.6.4",
        "state_dict": {"model." + k: v for k, v in native_to_official(model).items()},
        "loops": {
            "fit_loop": {
                "state_dict": {},
                "epoch_loop.state_dict": {"_batches_that_stepped": 4242},
                "epoch_loop.batch_progress": {
                    "total": {"ready": 8484, "completed": 8484, "started": 8484, "processed": 8484},
                    "current": {"ready": 12, "completed": 12, "started": 12, "processed": 12},
                    "is_last_batch": False,
                },
                "epoch_progress": {"total": {"ready": 4, "completed": 3}, "current": {"ready": 4}},
            },
            "validate_loop": {"state_dict": {}, "dataloader_progress": {"total": {"ready": 1}}},
        },
        "callbacks": {
            "ModelCheckpoint{'monitor': 'validation_loss', 'mode': 'min', 'every_n_train_steps': 0, "
            "'every_n_epochs': 1, 'train_time_interval': None, 'save_on_train_epoch_end': True}": {
                "monitor": "validation_loss",
                "best_model_score": torch.tensor(1.7134),
                "best_model_path": best,
                "current_score": torch.tensor(1.7301),
                "dirpath": "/data/runs/egtr/checkpoints",
                "best_k_models": {best: torch.tensor(1.7134)},
                "kth_best_model_path": best,
                "kth_value": torch.tensor(1.7134),
                "last_model_path": "/data/runs/egtr/checkpoints/last.ckpt",
            },
            "EarlyStopping{'monitor': 'validation_loss', 'mode': 'min'}": {
                "wait_count": 1,
                "stopped_epoch": 0,
                "best_score": torch.tensor(1.7134),
                "patience": 15,
            },
        },
        "optimizer_states": [optimizer.state_dict()],
        "lr_schedulers": [],
        "native_amp_scaling_state": torch.amp.GradScaler("cpu", enabled=True).state_dict(),
    }


def test_a_full_lightning_1_6_checkpoint_loads_with_weights_only(tmp_path):
    model = trained_like(small_config())
    artifact = write_official_artifact(tmp_path, model, epochs=(1,))
    path = next((artifact / "checkpoints").glob("*.ckpt"))
    content = lightning_1_6_checkpoint(model)
    assert content["optimizer_states"][0]["param_groups"][0]["betas"] == (0.9, 0.999)
    torch.save(content, path)
    same_outputs(model, load_model(path))


def test_older_native_files_without_frequency_tables_load_when_unused(tmp_path):
    model = trained_like(small_config(use_freq_bias=False))
    tensors = {k: v for k, v in model.state_dict().items() if not k.startswith("frequency_bias.")}
    metadata = {"format": "egtr", "egtr_config": model.config.to_json()}
    old = tmp_path / "old.safetensors"
    old.write_bytes(safetensors_save(tensors, metadata=metadata))
    loaded = load_model(old)
    same_outputs(model, loaded)
    assert not loaded.rel_dist.any()  # empty tables: logit adjustment is refused
    with pytest.raises(ValueError, match="predicate prior"):
        loaded.set_logit_adjustment(True)
    uses_them = model.config.replace(use_freq_bias=True)
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(safetensors_save(tensors, metadata={**metadata, "egtr_config": uses_them.to_json()}))
    with pytest.raises(ValueError, match=r"missing: frequency_bias.rel_dist, frequency_bias.triplet_dist"):
        load_model(bad)


def test_trainer_checkpoint_of_an_older_version_without_tables(tmp_path):
    model = trained_like(small_config(use_freq_bias=False))
    state = {"model." + k: v for k, v in model.state_dict().items() if not k.startswith("frequency_bias.")}
    path = tmp_path / "last.ckpt"
    torch.save({"state_dict": state, "egtr_config": model.config.to_dict()}, path)
    same_outputs(model, load_model(path))


@pytest.mark.parametrize(
    ("config", "share"),
    [
        (EGTRConfig.visual_genome(), 0.3),  # the backbone (not counted) is most of a standard model
        (small_config(relation_function="dot"), 0.05),
        (
            small_config(relation_function="sum", use_connectivity=False, relation_use_final_hidden=False),
            0.05,
        ),
        (EGTRConfig.visual_genome(num_labels=1000, num_rel_labels=200), 0.85),  # the table dominates
        (EGTRConfig.visual_genome(num_queries=3000), 0.9),  # the scores of one image dominate
        (EGTRConfig.visual_genome(d_model=2048, decoder_ffn_dim=8192, encoder_ffn_dim=8192), 0.85),
    ],
    ids=["visual_genome", "small-dot", "small-sum", "many-classes", "many-queries", "wide"],
)
def test_the_memory_bound_counts_a_lower_bound_of_the_real_model(config, share):
    with torch.device("meta"):  # counted, not allocated
        model = EGTR(config)
    tensors = 4 * sum(t.numel() for t in (*model.parameters(), *model.buffers()))
    needed = tensors + 4 * config.num_queries**2 * (config.num_rel_labels + 1)
    assert share * needed < memory_lower_bound(config) <= needed
