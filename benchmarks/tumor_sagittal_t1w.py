"""The tumour recipe on a sagittal T1w it never saw: the only sagittal T1w in the shared data
(sct-testing) is a training host of the shipped model, so a model is trained without that subject
(every one of its scans), from scratch, with the shipped recipe's hosts (half in a random tissue
contrast), and both are run end to end on SYNTHETIC tumours of the test family painted into it, as
``synthetic_accuracy.py`` paints the validation scans. The shipped model's figure is a fit check of
the host (it trained on this scan with other tumours); the held-out model's is the accuracy, of a
model with 8 training scans instead of 13.

    python benchmarks/tumor_sagittal_t1w.py --train 4000 --out runs/tumor-no-sct-testing   # about 15 min, 2 cores
    python benchmarks/tumor_sagittal_t1w.py --model runs/tumor-no-sct-testing
Writes benchmarks/results/tumor_sagittal_t1w.json.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from synthetic_accuracy import evaluate, summary  # benchmarks/ is on the path when run as a script

from spineai.models.registry import model_for_task
from spineai.training.cases import BUILTIN_MANIFESTS, read_manifest
from spineai.training.synthetic_data import SYNTHETIC_TASKS, TEST_SEED, synthetic_test_scans

HELD_OUT = "sct-testing"
RESULTS = Path(__file__).resolve().parent / "results" / "tumor_sagittal_t1w.json"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path(os.environ.get("SPINEAI_DATA", "../shared/data")))
    parser.add_argument("--train", type=int, metavar="STEPS", help="train the held-out model first")
    parser.add_argument("--out", type=Path, help="where --train writes the held-out model")
    parser.add_argument("--model", type=Path, help="the held-out model folder (trained without sct-testing)")
    parser.add_argument("--copies", type=int, default=3)
    args = parser.parse_args()
    cases = read_manifest(BUILTIN_MANIFESTS["tumor"], args.data)
    if args.train:
        train_without_subject(cases, args.train, args.out)
        return
    scan = [c for c in cases if c.subject == HELD_OUT and c.contrast == "T1w"]
    report = {
        "test_set": "SYNTHETIC tumours (test family) in sct-testing's sagittal T1w",
        **{name: run(scan, folder, args.copies) for name, folder in (("held_out", args.model), ("shipped", None))},
    }
    RESULTS.write_text(json.dumps(report, indent=2, default=str) + "\n")
    print(json.dumps({name: report[name]["summary"] for name in ("held_out", "shipped")}, indent=1))


def train_without_subject(cases, steps: int, out: Path) -> None:
    import torch

    from spineai.training.train import train

    torch.set_num_threads(min(2, os.cpu_count() or 1))
    kept = [c for c in cases if c.subject != HELD_OUT]
    train(kept, out, iterations=steps, seed=0, spec=model_for_task("tumor").untrained(), validate_every=10**9)


def run(scan, folder: Path | None, copies: int) -> dict:
    spec = model_for_task("tumor", folder) if folder else model_for_task("tumor")
    rows = [
        evaluate(painted, copy, "tumor", folder)
        for copy in range(copies)
        for painted in synthetic_test_scans(scan, SYNTHETIC_TASKS["tumor"], seed=TEST_SEED + copy)
    ]
    return {"model": spec.name, "sha256": spec.sha256, "summary": summary(rows), "cases": rows}


if __name__ == "__main__":
    main()
