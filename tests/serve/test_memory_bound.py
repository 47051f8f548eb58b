"""The constants of the memory bound (egtr.serve.memory_bound), measured.

`decode_charge` says, from an image's header, the most memory reading and resizing it holds. Here each
of the formats and modes a server takes is read and resized, the way the server does (in place from a
buffer, the predictor's image reading and resize), in a fresh process whose C heap returns freed memory
at once (egtr.memory.release_freed_memory), so that its peak resident size is what was live: for every
sample and both conversions, the peak growth must stay within the charge. The connection and chunk
constants are checked against the uvicorn and asyncio values they assume.
"""

from __future__ import annotations

import json
import subprocess
import sys

from egtr.serve.limits import MIB, ServerLimits
from egtr.serve.memory_bound import CONNECTION_BYTES, MAX_CHUNK, READ_SIZE, decode_charge, memory_bound

MEASURE = r"""
import io, json, sys
import numpy as np
from PIL import Image
from egtr.memory import release_freed_memory, trim_freed_memory
from egtr.data.images import ImageReading, WEB_FORMATS
from egtr.data.transforms import eval_transform
from egtr.serve.uploads import BodyFile
import torch

release_freed_memory()
W, H = 3000, 2000
rng = np.random.default_rng(0)
noise = lambda channels: rng.integers(0, 256, (H, W, channels), dtype=np.uint8)
SAMPLES = {
    "RGB JPEG": lambda s: Image.fromarray(noise(3)).save(s, "JPEG", quality=80),
    "CMYK JPEG": lambda s: Image.fromarray(noise(3)).convert("CMYK").save(s, "JPEG", quality=80),
    "RGBA PNG": lambda s: Image.fromarray(noise(4)).save(s, "PNG", compress_level=1),
    "LA PNG": lambda s: Image.fromarray(noise(4)).convert("LA").save(s, "PNG", compress_level=1),
    "L PNG": lambda s: Image.fromarray(noise(1)[..., 0]).save(s, "PNG", compress_level=1),
    "P PNG": lambda s: Image.fromarray(noise(3)).convert("P").save(s, "PNG", compress_level=1),
    "I;16 PNG": lambda s: Image.fromarray(rng.integers(0, 65536, (H, W), dtype=np.uint16)).save(s, "PNG"),
    "1 PNG": lambda s: Image.fromarray(noise(1)[..., 0]).convert("1").save(s, "PNG"),
    "F TIFF": lambda s: Image.fromarray(rng.random((H, W), dtype=np.float32)).save(s, "TIFF"),
    "I TIFF": lambda s: Image.fromarray(rng.integers(0, 2**31, (H, W), dtype=np.int32)).save(s, "TIFF"),
    "RGBA TIFF": lambda s: Image.fromarray(noise(4)).save(s, "TIFF"),
    "RGB BMP": lambda s: Image.fromarray(noise(3)).save(s, "BMP"),
    "P GIF": lambda s: Image.fromarray(noise(3)).convert("P").save(s, "GIF"),
    "RGBA WEBP": lambda s: Image.fromarray(noise(4)).save(s, "WEBP", quality=80),
    "RGB WEBP": lambda s: Image.fromarray(noise(3)).save(s, "WEBP", quality=80),
}
resize = eval_transform(800, 1333)

def status(field):
    for line in open("/proc/self/status"):
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024

results = {}
for name, write in SAMPLES.items():
    stream = io.BytesIO()
    write(stream)
    data = stream.getvalue()
    with Image.open(io.BytesIO(data)) as header:
        found = (header.width, header.height, header.format, header.mode)
    for conversion in ("official", "composite"):
        trim_freed_memory()
        open("/proc/self/clear_refs", "w").write("5")
        before = status("VmRSS")
        with io.BufferedReader(BodyFile(memoryview(data))) as file:
            image = ImageReading(conversion=conversion).read(file, name, WEB_FORMATS)
        tensor, _ = resize(image, {"boxes": torch.zeros((0, 4))})
        results[f"{name} {conversion}"] = (*found, conversion, status("VmHWM") - before)
        del image, tensor
    del data, stream
print(json.dumps(results))
"""


def test_reading_and_resizing_stay_within_the_charge():
    done = subprocess.run(
        [sys.executable, "-c", MEASURE], capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, done.stderr
    results = json.loads(done.stdout.splitlines()[-1])
    assert len(results) == 30  # 15 formats and modes, 2 conversions
    for name, (width, height, format, mode, conversion, growth) in results.items():
        charge, _ = decode_charge(width, height, format, mode, conversion, 800, 1333)
        assert growth <= charge, f"{name}: {growth / 2**20:.1f} MiB > charge {charge / 2**20:.1f} MiB"


def test_the_connection_constants_match_uvicorn_and_asyncio():
    import asyncio.selector_events

    from uvicorn.protocols.http.flow_control import HIGH_WATER_LIMIT

    from egtr.serve.server import H11_MAX_HEAD

    assert asyncio.selector_events._SelectorSocketTransport.max_size >= READ_SIZE
    assert MAX_CHUNK == HIGH_WATER_LIMIT + READ_SIZE
    assert CONNECTION_BYTES >= 2 * MAX_CHUNK + H11_MAX_HEAD


def test_the_bound_adds_up_the_budgets():
    bound = memory_bound(ServerLimits())
    assert bound["terms"] == {
        "bodies": 64 * MIB,
        "connections": 256 * CONNECTION_BYTES,
        "decoded_images": 400 * MIB,
    }
    assert bound["bytes"] == 544 * MIB <= 600_000_000
    smaller = memory_bound(
        ServerLimits(max_connections=10, max_connections_per_client=5, max_decoded_bytes_in_flight=MIB)
    )
    assert smaller["bytes"] == 64 * MIB + 10 * CONNECTION_BYTES + MIB


def test_the_charge_covers_the_decoded_and_the_resized_image():
    decoding, tensor = decode_charge(4000, 3000, "JPEG", "RGB", "official", 800, 1333)
    assert tensor == 800 * 1066 * 12  # the float32 [3, 800, 1066] tensor
    assert decoding == 4000 * 3000 * 9 + 800 * 1066 * 52
    assert decode_charge(3000, 4000, "JPEG", "RGB", "official", 800, 1333)[1] == tensor  # turned: same size
    assert decode_charge(10, 10, "WEBP", "RGB", "official", 800, 1333)[0] == 100 * 15 + 800 * 800 * 52
    assert decode_charge(10, 10, "PNG", "I;16", "composite", 800, 1333)[0] == 100 * 46 + 800 * 800 * 52
