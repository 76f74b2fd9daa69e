"""The engine run in its own process: ``python EngineWorker.py INPUT OUTPUT --task cord --device auto``.

Started by ``EngineProcess``; imports only the engine (no Slicer, no Qt). ``--levels LEVELS.json``
(stenosis task): the disc levels as a JSON list of the engine's level records (``level``,
``point_lps_mm``, ``normal_lps``, ``source``), passed as the task's disc levels; the levels the engine
used come back in the sidecar (``disc_levels``). ``--model FOLDER``: a site model of the task (a
fine-tuned model folder) instead of the shipped model; the engine checks its weights against its record
before loading them, and the sidecar names it. Reports on stdout, one JSON
object per line: ``{"pid": 1234}`` first (this interpreter's process, which under Slicer's
PythonSlicer launcher is the launcher's child), ``{"progress": 0.42}`` while running, then ``{"done": <sidecar>}`` or
``{"error": "<message>"}``. The mask is written all-or-nothing, so a killed run leaves no file.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path


def report(**event) -> None:
    print(json.dumps(event, default=str), flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("input", type=Path, help="scan exported by the module (NRRD)")
    parser.add_argument("output", type=Path, help="mask file to write (NRRD)")
    parser.add_argument("--task", default="cord")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--source", default=None, help="name used in error messages (the volume node's name)")
    parser.add_argument("--levels", type=Path, default=None, help="stenosis: disc levels, JSON level records")
    parser.add_argument("--model", type=Path, default=None, help="a site model folder of the task (default: shipped)")
    args = parser.parse_args(argv)
    report(pid=os.getpid())
    try:
        from spineai.errors import SpineAIError
        from spineai.io import OutputSet, read_image
        from spineai.pipeline import check_model_folder, segment
        from spineai.tasks import TaskInputs
    except ImportError as error:
        report(error=f"the SpineAI engine cannot start: {error}")
        return 1
    try:
        image = read_image(args.input)
        inputs = TaskInputs()
        if args.model is not None:
            check_model_folder(args.task, args.model)
            inputs.model_dir = args.model.resolve()
        if args.levels is not None:
            from spineai.stenosis.levels import levels_from_records

            inputs.disc_levels, _ = levels_from_records(json.loads(args.levels.read_text(encoding="utf-8")))
        result = segment(
            image,
            args.task,
            args.device,
            progress=lambda fraction: report(progress=fraction),
            source=args.source or args.input.name,
            inputs=inputs,
        )
        with OutputSet(args.output.parent) as out:
            out.write_image(result.mask, args.output.name)
        report(done=result.sidecar, segments=result.segments)
        return 0
    except SpineAIError as error:
        report(error=str(error))
        return 2
    except Exception as error:  # anything else still ends with a message the panel can show
        report(error=f"{type(error).__name__}: {error}")
        return 1


if __name__ == "__main__":
    sys.exit(main())
