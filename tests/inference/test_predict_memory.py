"""The memory claim of `egtr predict` (BENCHMARKS.md, "Memory of egtr predict"): the Visual Genome preset on
one 1333x800 photo (processed at 800/1333), in a fresh process, peaks below PEAK_BOUND_MB of resident
memory. This is a bound, not a timing: before the memory work it peaked at 1.13-1.22 GB, 0.76-0.81 GB before
the banded backbone stages and relation head (2-core Intel Xeon, 2026-12-03), 0.65-0.71 GB before the
in-place stage-2/3 sums, the smaller encoder chunks and bands, the uncopied lone image and the reader's
trimmed heap, 0.57-0.62 GB since (2-core AMD EPYC, Zen 5, 2026-12-04)."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image

import egtr
from egtr.checkpoints import save_model
from egtr.config import EGTRConfig
from egtr.models.egtr import EGTR

PEAK_BOUND_MB = 700
# `egtr COMMAND...` as `python -m egtr` runs it, then the process's own peak resident memory (VmHWM, kB; not
# ru_maxrss, which after fork and exec still holds the parent's peak)
EGTR_WITH_PEAK = (
    "import sys; from pathlib import Path; from egtr.cli import main; code = main(sys.argv[1:]); "
    "status = Path('/proc/self/status').read_text().splitlines(); "
    "hwm = next(line for line in status if line.startswith('VmHWM:')); "
    "print('peak kB', hwm.split()[1], file=sys.stderr); sys.exit(code)"
)


def test_predict_of_the_visual_genome_preset_at_800x1333_stays_under_its_bound(tmp_path):
    torch.manual_seed(0)
    checkpoint = save_model(EGTR(EGTRConfig.visual_genome()).eval(), tmp_path / "vg.safetensors")
    coarse = np.random.default_rng(0).uniform(0, 255, (50, 84, 3)).astype(np.uint8)
    Image.fromarray(coarse).resize((1333, 800), Image.Resampling.BILINEAR).save(tmp_path / "photo.jpg")
    source = str(Path(egtr.__file__).resolve().parents[1])
    environment = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [source, os.environ.get("PYTHONPATH")])),
    }
    command = [sys.executable, "-c", EGTR_WITH_PEAK, "predict", str(tmp_path / "photo.jpg"), "--checkpoint"]
    command += [str(checkpoint), "--out", str(tmp_path / "out"), "--threads", "2", "--no-progress"]
    done = subprocess.run(command, env=environment, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "out" / "photo.json").is_file()
    peak_mb = int(done.stderr.strip().splitlines()[-1].removeprefix("peak kB ")) / 1024
    print(f"egtr predict peaked at {peak_mb:.0f} MB")
    assert peak_mb < PEAK_BOUND_MB, f"egtr predict peaked at {peak_mb:.0f} MB"
