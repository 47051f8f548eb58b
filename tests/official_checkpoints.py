"""Official EGTR files written from the spec of their format: state-dict names and shapes, the artifact
directory (config.json + checkpoints/epoch=*.ckpt) and its config.json."""

import json
from pathlib import Path

import torch

from egtr.checkpoints import native_to_official
from egtr.config import EGTRConfig
from egtr.models.egtr import EGTR


def official_vg_key_shapes() -> dict[str, tuple]:
    """Official EGTR state-dict names and shapes for Visual Genome, written from architecture.md §5.9"""
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
        "use_log_softmax": config.frequency_bias_mode == "log_softmax",
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
        "logit_adjustment",
        "logit_adj_tau",
        "freq_bias_eps",
    ):
        data[key] = getattr(config, key)
    return data


def write_official_artifact(
    tmp_path: Path, model: EGTR, epochs=(1, 3), config_changes: dict | None = None
) -> Path:
    """`tmp_path/egtr_artifact` with config.json (changed by `config_changes`) and one Lightning .ckpt per
    epoch; the highest holds the model's weights, the others zeros."""
    artifact = tmp_path / "egtr_artifact"
    (artifact / "checkpoints").mkdir(parents=True)
    config = official_config_json(model.config) | (config_changes or {})
    (artifact / "config.json").write_text(json.dumps(config))
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
