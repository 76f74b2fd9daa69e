"""A fine-tune in its own process: ``python FineTuneWorker.py SITE OUT --task cord --minutes 5 --device auto``.

Started by ``EngineProcess.startFineTune`` for ``Teaching.FineTuneJob``; imports only the engine (no
Slicer, no Qt). Fine-tunes the task's shipped model on the site folder's corrected cases of the task
(``spineai.learning.finetune.finetune``) into the new model folder OUT. Reports on stdout, one JSON
object per line, as ``EngineWorker``: ``{"pid": 1234}`` first, ``{"progress": 0.42}`` while training
(the fraction of the time budget spent), then ``{"done": {"folder": OUT}}`` or ``{"error": "<message>"}``.

The engine writes the folder beside its final place and renames it at the end, removing it on any
exception: a termination signal (Cancel sends SIGTERM to the process group before SIGKILL) is turned
into that exception here, so a cancelled fine-tune leaves no folder behind.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
from pathlib import Path

PROGRESS_STEP = 0.01  # report progress when it moved by this much (a step may take milliseconds)


def report(**event) -> None:
    print(json.dumps(event, default=str), flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("site", type=Path, help="the site folder of corrected cases")
    parser.add_argument("out", type=Path, help="the new model folder (must not exist)")
    parser.add_argument("--task", default="cord")
    parser.add_argument("--minutes", type=float, default=5.0, help="wall-clock budget of the training")
    parser.add_argument("--device", default="auto")
    args = parser.parse_args(argv)
    report(pid=os.getpid())
    try:
        from spineai.errors import Cancelled, SpineAIError
    except ImportError as error:
        report(error=f"the SpineAI engine cannot start: {error}")
        return 1

    def stop(signalNumber, frame):
        raise Cancelled()

    signal.signal(signal.SIGTERM, stop)
    try:
        from spineai.learning.finetune import finetune
    except ImportError as error:
        report(error=f"fine-tuning needs PyTorch, which cannot be imported here ({error})")
        return 1
    last = [-1.0]

    def progress(fraction: float) -> None:
        if fraction - last[0] >= PROGRESS_STEP or fraction >= 1.0:
            last[0] = fraction
            report(progress=round(float(fraction), 4))

    try:
        folder = finetune(args.task, args.site, args.out, args.minutes, args.device, progress=progress)
        report(done={"folder": str(folder)})
        return 0
    except Cancelled as error:
        report(error=str(error))
        return 3
    except SpineAIError as error:
        report(error=str(error))
        return 2
    except Exception as error:  # anything else still ends with a message the panel can show
        report(error=f"{type(error).__name__}: {error}")
        return 1


if __name__ == "__main__":
    sys.exit(main())
