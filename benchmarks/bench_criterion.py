"""Speed of the EGTR objective (matcher + detection + sampled relation + connectivity losses).

Times EGTRCriterion forward and forward+backward on random model outputs of Visual Genome sizes, in train
(sampled) and eval (dense) mode, and, for comparison, the forward of the full EGTR model (ResNet-50, random
weights) on a batch of the same size. Reports the median over the repeats.

    python benchmarks/bench_criterion.py                      # B=4, N=200, 20 relations/image, 600x1000 model
    python benchmarks/bench_criterion.py --model-size 0 0     # the objective only
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from collections.abc import Callable

import torch

from egtr.config import EGTRConfig
from egtr.models.outputs import EGTROutput
from egtr.training import EGTRCriterion


def parse_arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--batch-size", type=int, default=4, help="images per batch (default: 4)")
    parser.add_argument("--queries", type=int, default=200, help="object queries N (default: 200)")
    parser.add_argument("--boxes", type=int, default=25, help="ground-truth boxes per image (default: 25)")
    parser.add_argument(
        "--relations", type=int, default=20, help="ground-truth relations per image (default: 20)"
    )
    parser.add_argument("--classes", type=int, default=150, help="object classes C (default: 150)")
    parser.add_argument("--predicates", type=int, default=50, help="predicates R (default: 50)")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per measurement (default: 5)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed runs first (default: 1)")
    parser.add_argument(
        "--threads", type=int, default=0, help="torch CPU threads, 0 = torch default (default: 0)"
    )
    parser.add_argument(
        "--model-size",
        type=int,
        nargs=2,
        default=(600, 1000),
        metavar=("H", "W"),
        help="image size of the model-forward comparison, 0 0 to skip (default: 600 1000)",
    )
    parser.add_argument("--device", default="cpu", help="torch device (default: cpu)")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    return parser.parse_args()


def median_seconds(run: Callable[[], None], repeats: int, warmup: int, device: torch.device) -> float:
    for _ in range(warmup):
        run()
    times = []
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        run()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def random_outputs(args: argparse.Namespace, layers: int, sources: int, device: torch.device) -> EGTROutput:
    b, n, c, r = args.batch_size, args.queries, args.classes, args.predicates

    def leaf(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, device=device).requires_grad_()

    decoder_logits = leaf(b, layers, n, c)
    decoder_boxes = (0.5 * torch.randn(b, layers, n, 4, device=device)).sigmoid().requires_grad_()
    rel_logits, connectivity_logits = leaf(b, n, n, r), leaf(b, n, n)
    return EGTROutput(
        logits=decoder_logits[:, -1],
        pred_boxes=decoder_boxes[:, -1],
        rel_logits=rel_logits,
        connectivity_logits=connectivity_logits,
        pred_rel=rel_logits.detach().sigmoid(),
        pred_connectivity=connectivity_logits.detach().sigmoid(),
        attention_queries=torch.zeros(b, layers, n, 1, device=device),
        attention_keys=torch.zeros(b, layers, n, 1, device=device),
        decoder_logits=decoder_logits,
        decoder_boxes=decoder_boxes,
        last_hidden_state=torch.zeros(b, n, 1, device=device),
        relation_gates=torch.rand(b, n, n, sources, device=device),
    )


def random_targets(args: argparse.Namespace, device: torch.device) -> list[dict[str, torch.Tensor]]:
    targets = []
    for _ in range(args.batch_size):
        m, t = args.boxes, args.relations
        boxes = torch.cat((0.2 + 0.6 * torch.rand(m, 2), 0.05 + 0.3 * torch.rand(m, 2)), dim=1)
        relations = torch.stack(
            (torch.randint(0, m, (t,)), torch.randint(0, m, (t,)), torch.randint(0, args.predicates, (t,))),
            dim=1,
        )
        targets.append(
            {"labels": torch.randint(0, args.classes, (m,)), "boxes": boxes, "relations": relations}
        )
    return [{key: value.to(device) for key, value in target.items()} for target in targets]


def time_objective(args: argparse.Namespace, device: torch.device) -> dict[str, float]:
    config = EGTRConfig.visual_genome(num_labels=args.classes, num_rel_labels=args.predicates)
    criterion = EGTRCriterion(config)
    outputs = random_outputs(args, config.decoder_layers, config.num_relation_sources, device)
    targets = random_targets(args, device)

    def forward() -> None:
        criterion(outputs, targets)

    def forward_backward() -> None:
        criterion(outputs, targets)["loss"].backward()

    results = {}
    for mode in ("train", "eval"):
        criterion.train(mode == "train")
        results[f"criterion_{mode}_forward_s"] = median_seconds(forward, args.repeats, args.warmup, device)
        results[f"criterion_{mode}_forward_backward_s"] = median_seconds(
            forward_backward, args.repeats, args.warmup, device
        )
    return results


def time_model(args: argparse.Namespace, device: torch.device) -> dict[str, float]:
    from egtr.models.egtr import EGTR

    config = EGTRConfig.visual_genome(num_labels=args.classes, num_rel_labels=args.predicates)
    model = EGTR(config).to(device).eval()
    height, width = args.model_size
    pixels = torch.randn(args.batch_size, 3, height, width, device=device)

    def forward() -> None:
        with torch.inference_mode():
            model(pixels)

    return {"model_forward_s": median_seconds(forward, max(1, args.repeats // 2), args.warmup, device)}


def main() -> None:
    args = parse_arguments()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    device = torch.device(args.device)
    results = {
        "settings": {
            **{key: value for key, value in vars(args).items() if key != "json"},
            "torch": torch.__version__,
            "threads": torch.get_num_threads(),
            "machine": platform.processor() or platform.machine(),
        },
        **time_objective(args, device),
    }
    if all(args.model_size):
        results.update(time_model(args, device))
    if args.json:
        print(json.dumps(results, indent=2))
        return
    for key, value in results.items():
        print(f"{key}: {value:.4f}" if isinstance(value, float) else f"{key}: {value}")


if __name__ == "__main__":
    main()
