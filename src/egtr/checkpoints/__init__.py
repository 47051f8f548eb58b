"""Save and load models: this project's format and the official EGTR / pretrained-detector files.

Native format: one `.safetensors` file holding the weights, with the EGTRConfig as JSON in its metadata
(no pickle). Official files (architecture.md §5.9) are read with `torch.load(weights_only=True)` only:
- an official EGTR Lightning `.ckpt` (keys `model.<official name>`), with `config.json` in its artifact
  directory (the `.ckpt` lives in `<artifact>/checkpoints/`), or the artifact directory (highest epoch);
- an official pretrained-detector directory (`config.json` + `pytorch_model.bin`, as Hugging Face's
  `save_pretrained` writes them; architecture.md §10): detector weights, freshly initialized relation head;
- a `.ckpt` written by this project's trainer (state dict under `model.`, config under `egtr_config`).
Loading is strict: missing, unexpected or mis-shaped keys raise a ValueError listing them. Files written
by older versions of this project may lack the frequency tables when both `use_freq_bias` and
`logit_adjustment` were off; they load with empty tables.

Nothing in a file decides which other file is read: the config in a safetensors file's metadata is JSON
text only, an official `config.json` is found by its place beside the checkpoint. A file's config is
checked before any of the model's tensors exist: sizes within `egtr.config.SIZE_LIMITS`, and at most
MAX_MODEL_BYTES for the largest weights plus one image's relation scores (`memory_lower_bound`);
checkpoint files above MAX_CHECKPOINT_FILE_BYTES are refused unread, and a safetensors file's tensor
names and shapes are compared with the model's before its tensors are read.
"""

from egtr.checkpoints.loading import load_backbone_file, load_model
from egtr.checkpoints.native import NATIVE_WEIGHTS, save_model
from egtr.checkpoints.official import native_to_official, official_to_native
from egtr.checkpoints.safety import (
    MAX_CHECKPOINT_FILE_BYTES,
    MAX_MODEL_BYTES,
    ModelTooLargeError,
    memory_lower_bound,
    torch_load_safely,
)
from egtr.checkpoints.strict import load_state_strictly

__all__ = [
    "MAX_CHECKPOINT_FILE_BYTES",
    "MAX_MODEL_BYTES",
    "NATIVE_WEIGHTS",
    "ModelTooLargeError",
    "load_backbone_file",
    "load_model",
    "load_state_strictly",
    "memory_lower_bound",
    "native_to_official",
    "official_to_native",
    "save_model",
    "torch_load_safely",
]
