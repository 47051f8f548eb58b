"""Make docs/images/serve-page.png: the page of `egtr serve` in headless Chromium, one triplet hovered.

Serves a model (default: the small config with random weights; pass --checkpoint for a trained one, e.g.
the demo's) with the synthetic world's names, uploads one synthetic image and hovers the best triplet.
Uses the browser test's Chromium setup (Debian's chromium; nothing downloaded). From the repo root:

    PYTHONPATH=. python docs/images/serve_page.py [--checkpoint egtr-output/demo/model.safetensors]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import torch
from tests.serve.conftest import LiveServer
from tests.serve.test_page import CHROMIUM_FLAGS, chromium

from egtr import EGTRConfig, SceneGraphPredictor
from egtr.checkpoints import load_model
from egtr.data.synthetic import write_synthetic_dataset
from egtr.models.egtr import EGTR
from egtr.serve import create_app

OUT = Path(__file__).parent / "serve-page.png"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--checkpoint", help="model to serve (default: small config, random weights)")
    parser.add_argument(
        "--image", type=int, default=3, help="which synthetic test image (default: %(default)s)"
    )
    parser.add_argument("--out", type=Path, default=OUT, help="(default: %(default)s)")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as folder:
        world = Path(folder) / "world"
        write_synthetic_dataset(world, 20, seed=1, image_size=(384, 384), min_objects=4, max_objects=6)
        torch.manual_seed(0)
        model = load_model(args.checkpoint) if args.checkpoint else EGTR(EGTRConfig.small()).eval()
        names = None if model.config.class_names else world
        predictor = SceneGraphPredictor(model, names=names, size=128, max_size=128)
        name = Path(args.checkpoint).name if args.checkpoint else "small config, random weights"
        image = sorted((world / "images").iterdir())[args.image]
        with LiveServer(create_app(predictor, model_name=name)) as server, sync_playwright() as playwright:
            context = playwright.chromium.launch_persistent_context(
                str(Path(folder) / "profile"),
                executable_path=chromium(),
                args=CHROMIUM_FLAGS,
                headless=True,
                viewport={"width": 1200, "height": 860},
            )
            page = context.new_page()
            page.goto(f"{server.url}/")
            page.set_input_files("#file", str(image))
            page.wait_for_selector("#triplets tbody tr")
            page.fill("#top-k", "8")
            page.locator("#triplets tbody tr").first.hover()
            page.screenshot(path=str(args.out), full_page=True)
            context.close()
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
