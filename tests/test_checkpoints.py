"""Native and official checkpoints load strictly, round-trip, and fail clearly."""

import json
from pathlib import Path

import pytest
import torch

from egtr.checkpoints import load_model, native_to_official, save_model
from egtr.config import EGTRConfig
from egtr.models.egtr import EGTR


def official_vg_key_shapes() -> dict[str, tuple]:
    """Official EGTR state-dict names and shapes for Visual Genome, written from spec §7.1."""
    keys: dict[str, tuple] = {}
    bb = "model.backbone.conv_encoder.model."

    def frozen_bn(prefix, c):
        for name in ("weight", "bias", "running_mean", "running_var"):
            keys[f"{prefix}.{name}"] = (c,)

    keys[bb + "conv1.weight"] = (64, 3, 7, 7)
    frozen_bn(bb + "bn1", 64)
    in_c = 64
    for stage, (blocks, width) in enumerate(zip((3, 4, 6, 3), (64, 128, 256, 512)), start=1):
        for block in range(blocks):
            p = f"{bb}layer{stage}.{block}"
            keys[f"{p}.conv1.weight"] = (width, in_c if block == 0 else width * 4, 1, 1)
            keys[f"{p}.conv2.weight"] = (width, width, 3, 3)
            keys[f"{p}.conv3.weight"] = (width * 4, width, 1, 1)
            for i, c in ((1, width), (2, width), (3, width * 4)):
                frozen_bn(f"{p}.bn{i}", c)
            if block == 0:
                keys[f"{p}.downsample.0.weight"] = (width * 4, in_c, 1, 1)
                frozen_bn(f"{p}.downsample.1", width * 4)
                keys[f"{p}.downsample.1.num_batches_tracked"] = ()
        in_c = width * 4
    for level, c in enumerate((512, 1024, 2048)):
        keys[f"model.input_proj.{level}.0.weight"] = (256, c, 1, 1)
        keys[f"model.input_proj.{level}.0.bias"] = (256,)
        keys[f"model.input_proj.{level}.1.weight"] = keys[f"model.input_proj.{level}.1.bias"] = (256,)
    keys["model.input_proj.3.0.weight"] = (256, 2048, 3, 3)
    keys["model.input_proj.3.0.bias"] = (256,)
    keys["model.input_proj.3.1.weight"] = keys["model.input_proj.3.1.bias"] = (256,)
    keys["model.query_position_embeddings.weight"] = (200, 512)
    keys["model.level_embed"] = (4, 256)
    keys["model.reference_points.weight"], keys["model.reference_points.bias"] = (2, 256), (2,)

    def linear(prefix, out, inp):
        keys[f"{prefix}.weight"], keys[f"{prefix}.bias"] = (out, inp), (out,)

    def norm(prefix):
        keys[f"{prefix}.weight"] = keys[f"{prefix}.bias"] = (256,)

    def deformable(prefix):
        linear(prefix + ".sampling_offsets", 256, 256)
        linear(prefix + ".attention_weights", 128, 256)
        linear(prefix + ".value_proj", 256, 256)
        linear(prefix + ".output_proj", 256, 256)

    for i in range(6):
        e, d = f"model.encoder.layers.{i}", f"model.decoder.layers.{i}"
        deformable(e + ".self_attn")
        norm(e + ".self_attn_layer_norm")
        linear(e + ".fc1", 1024, 256)
        linear(e + ".fc2", 256, 1024)
        norm(e + ".final_layer_norm")
        for proj in ("q_proj", "k_proj", "v_proj", "out_proj"):
            linear(f"{d}.self_attn.{proj}", 256, 256)
        norm(d + ".self_attn_layer_norm")
        deformable(d + ".encoder_attn")
        norm(d + ".encoder_attn_layer_norm")
        linear(d + ".fc1", 1024, 256)
        linear(d + ".fc2", 256, 1024)
        norm(d + ".final_layer_norm")
        linear(f"class_embed.{i}", 150, 256)
        linear(f"bbox_embed.{i}.layers.0", 256, 256)
        linear(f"bbox_embed.{i}.layers.1", 256, 256)
        linear(f"bbox_embed.{i}.layers.2", 4, 256)
        linear(f"proj_q.{i}", 256, 256)
        linear(f"proj_k.{i}", 256, 256)
    keys["triplet_dist"], keys["rel_dist"] = (151, 151, 50), (50,)
    linear("final_sub_proj", 256, 256)
    linear("final_obj_proj", 256, 256)
    linear("rel_predictor_gate", 1, 512)
    for head, out in (("rel_predictor", 50), ("connectivity_layer", 1)):
        linear(f"{head}.layers.0", 256, 512)
        linear(f"{head}.layers.1", 256, 256)
        linear(f"{head}.layers.2", out, 256)
    return keys


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


def official_config_json(config: EGTRConfig) -> dict:
    data = {
        "model_type": "deformable_detr",
        "backbone": f"resnet{config.backbone_depth}",
        "id2label": {str(i): f"LABEL_{i}" for i in range(config.num_labels)},
        "two_stage": False,
        "with_box_refine": False,
        "position_embedding_type": "sine",
        "activation_function": "relu",
        "architecture": "SenseTime/deformable-detr",
        "use_log_softmax": False,
        "output_attention_states": False,
    }
    for key in (
        "num_rel_labels",
        "num_queries",
        "d_model",
        "encoder_layers",
        "decoder_layers",
        "encoder_attention_heads",
        "decoder_attention_heads",
        "encoder_ffn_dim",
        "decoder_ffn_dim",
        "num_feature_levels",
        "encoder_n_points",
        "decoder_n_points",
        "use_freq_bias",
        "smoothing",
    ):
        data[key] = getattr(config, key)
    return data


def write_official_artifact(tmp_path: Path, model: EGTR, epochs=(1, 3)) -> Path:
    artifact = tmp_path / "egtr_artifact"
    (artifact / "checkpoints").mkdir(parents=True)
    (artifact / "config.json").write_text(json.dumps(official_config_json(model.config)))
    state = {"model." + k: v.clone() for k, v in native_to_official(model).items()}
    for epoch in epochs:
        content = {
            "state_dict": state
            if epoch == max(epochs)
            else {k: torch.zeros_like(v) for k, v in state.items()},
            "epoch": epoch,
            "global_step": 10 * epoch,
            "pytorch-lightning_version": "1.6.4",
            "callbacks": {
                "ModelCheckpoint{'monitor': 'validation_loss'}": {"best_model_score": torch.tensor(1.71)}
            },
        }
        torch.save(content, artifact / "checkpoints" / f"epoch={epoch:02d}-validation_loss=1.71.ckpt")
    return artifact


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
