"""Reproduce the shipped demo models: `python scripts/train.py [text|image|all] [--data ../shared/data]`."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from shared.settings import PROJECT_ROOT
from worker.training.common import DEFAULT_DATA


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("which", choices=["text", "image", "all"], nargs="?", default="all")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--out", type=Path, default=PROJECT_ROOT / "models")
    parser.add_argument("--seed", type=int, default=13)
    args = parser.parse_args()
    if not args.data.is_dir():
        raise SystemExit(f"no data at {args.data}: pass --data pointing at the kit's shared/data")
    if args.which in ("image", "all"):
        from worker.training import image

        spec = image.train(args.data, args.out / "pneumonia-xray", seed=args.seed)
        print(json.dumps(spec.card.metrics, indent=2))
    if args.which in ("text", "all"):
        from worker.training import text

        spec = text.train(args.data, args.out / "disease-category", seed=args.seed)
        print(json.dumps(spec.card.metrics, indent=2))


if __name__ == "__main__":
    main()
