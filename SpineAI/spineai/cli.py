"""The ``spineai`` command line: segment, measure, demo, batch, train, export-onnx, pacs.

Errors the user can act on print one line ``spineai: error: <file>: <problem>`` and exit with
status 2; nothing half-written is left in the output folder.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from . import __version__
from .cohort.command import add_batch_command
from .devices import DEVICES
from .dicom.command import add_pacs_command
from .errors import SpineAIError
from .learning.command import add_learning_commands
from .tasks import TASKS, get_task

EXIT_USER_ERROR = 2


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="spineai: %(message)s")
    try:
        return args.run(args) or 0
    except SpineAIError as error:
        print(f"spineai: error: {error}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("spineai: interrupted; no output was written", file=sys.stderr)
        return 130


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="spineai", description="Deep-learning analysis of spine MRI.")
    parser.add_argument("--version", action="version", version=f"spineai {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress details")
    commands = parser.add_subparsers(dest="command", required=True)

    segment = commands.add_parser("segment", help="segment one scan and measure the result")
    segment.add_argument("image", type=Path, help="NIfTI, NRRD, MHA file or a DICOM series folder")
    segment.add_argument("--task", choices=sorted(TASKS), default="cord")
    segment.add_argument("--out", type=Path, required=True, help="output folder")
    segment.add_argument("--device", choices=DEVICES, default="auto")
    add_level_arguments(segment)
    segment.add_argument(
        "--sagittal", type=Path, help="stenosis: a sagittal T2 of the same session to find the disc levels on"
    )
    segment.add_argument(
        "--model", type=Path, help="a model folder of the task (a site model) instead of the shipped one"
    )
    segment.add_argument(
        "--dicom-seg",
        action="store_true",
        help="DICOM series input: also write the mask as DICOM SEG and the measurements as DICOM SR",
    )
    segment.set_defaults(run=run_segment)

    measure = commands.add_parser("measure", help="measurements of an existing (e.g. corrected) mask")
    measure.add_argument(
        "mask", type=Path, help="cord: binary mask (0/1); lesion, tumor, stenosis: the label map the task writes"
    )
    measure.add_argument("--task", choices=sorted(TASKS), default="cord")
    measure.add_argument("--image", type=Path, help="the scan the mask belongs to (geometry check)")
    add_level_arguments(measure)
    measure.add_argument("--out", type=Path, required=True)
    measure.set_defaults(run=run_measure)

    demo = commands.add_parser("demo", help="segment the bundled sample scan")
    demo.add_argument("--out", type=Path, default=Path("spineai-demo"))
    demo.add_argument("--device", choices=DEVICES, default="auto")
    demo.set_defaults(run=run_demo)

    add_batch_command(commands)

    train = commands.add_parser("train", help="train a task's network on labelled scans")
    train.add_argument(
        "--task",
        choices=sorted([*TASKS, "discs"]),
        default="cord",
        help="stenosis: the dural sac network on canal phantoms; discs: the disc-level network on lumbar-ivd",
    )
    train.add_argument("--data", type=Path, default=None, help="data folder (default: $SPINEAI_DATA or ../shared/data)")
    train.add_argument("--manifest", type=Path, help="CSV: image,mask,subject,dataset,contrast,plane,split")
    train.add_argument("--out", type=Path, required=True)
    train.add_argument("--iterations", type=int, default=2000)
    train.add_argument("--batch-size", type=int, default=12)
    train.add_argument("--seed", type=int, default=0)
    train.add_argument(
        "--init",
        type=Path,
        help="start from the task's model in this folder (e.g. SpineAI's shipped one) and fine-tune",
    )
    train.add_argument("--learning-rate", type=float, default=3e-3, help="peak of the one-cycle schedule")
    train.add_argument(
        "--fold",
        help="cross-validation: hold out the subjects of this fold (manifest column fold), train on the rest; "
        "'all': train on every case (the split column is then ignored)",
    )
    train.set_defaults(run=run_train)

    export = commands.add_parser(
        "export-onnx", help="write the ONNX graph inference runs for each model record in a folder (needs torch)"
    )
    export.add_argument("models", type=Path, help="folder of model records (<task>.json + <task>.safetensors)")
    export.add_argument("--task", action="append", help="only this model (repeatable); default: every record")
    export.set_defaults(run=run_export)

    add_pacs_command(commands)
    add_learning_commands(commands)
    return parser


def add_level_arguments(command) -> None:
    """Vertebral levels (per-level cord and tumour tables) and disc levels (stenosis) are different inputs."""
    command.add_argument(
        "--vertebral-levels",
        type=Path,
        help="vertebral levels on the scan's grid: a cord mask labelled with SCT level codes, or SCT disc point labels",
    )
    command.add_argument(
        "--disc-levels",
        type=Path,
        help="stenosis: lumbar disc levels as points (Slicer markups JSON labelled L1-L2 ... L5-S1, or SCT disc "
        "labels 21-25, any grid); for a corrected label map the <stem>_stenosis_levels.mrk.json written with it",
    )
    command.add_argument("--levels", type=Path, help=argparse.SUPPRESS)  # deprecated: one of the two above


def level_paths(args) -> dict:
    """The level files given, by ``TaskInputs`` name; the deprecated --levels becomes what the task takes."""
    paths = {"vertebral_levels_path": args.vertebral_levels, "disc_levels_path": args.disc_levels}
    if args.levels is not None:
        name = get_task(args.task).levels_input
        flag = "--" + name.replace("_", "-")
        print(f"spineai: warning: --levels is deprecated; use {flag}", file=sys.stderr)
        if paths[f"{name}_path"] is None:
            paths[f"{name}_path"] = args.levels
    return paths


def _progress_bar(description: str):
    """A tqdm bar on an interactive terminal; silent when stderr is not a TTY (logs, batch jobs)."""
    from tqdm import tqdm

    bar = tqdm(total=100, desc=description, unit="%", disable=not sys.stderr.isatty(), leave=False)

    def update(fraction: float) -> None:
        bar.update(round(fraction * 100) - bar.n)

    return bar, update


def run_segment(args) -> None:
    from .pipeline import segment_file

    bar, update = _progress_bar(f"{args.task} {args.image.name}")
    with bar:
        written = segment_file(
            args.image,
            args.out,
            args.task,
            args.device,
            update,
            sagittal_path=args.sagittal,
            dicom_seg=args.dicom_seg,
            model_dir=args.model,
            **level_paths(args),
        )
    sidecar = json.loads(written["sidecar"].read_text(encoding="utf-8"))
    warning = get_task(args.task).warning(args.image, sidecar)
    if warning:
        print(f"spineai: warning: {warning}", file=sys.stderr)
    for path in written.values():
        print(path)


def run_measure(args) -> None:
    from .measure import measure_file

    written, flags = measure_file(args.mask, args.out, args.task, args.image, **level_paths(args))
    for path in written.values():
        print(path)
    if flags:
        print(json.dumps(flags))


def run_demo(args) -> None:
    import SimpleITK as sitk

    from .metrics import dice
    from .pipeline import segment_file
    from .sample import T2, T2_CORD_MANUAL

    bar, update = _progress_bar("cord sample")
    with bar:
        written = segment_file(T2, args.out, "cord", args.device, update)
    overlap = dice(
        sitk.GetArrayFromImage(sitk.ReadImage(str(written["mask"]))),
        sitk.GetArrayFromImage(sitk.ReadImage(str(T2_CORD_MANUAL))) > 0,
    )
    seconds = json.loads(written["sidecar"].read_text(encoding="utf-8"))["seconds"]
    print(f"SpineAI demo: segmented the bundled cervical T2 in {seconds:.2f} s; Dice vs manual mask {overlap:.3f}")
    for kind, path in written.items():
        print(f"  {kind:<13}{path}")


def require_torch(command: str) -> None:
    """Training and export need PyTorch, which the core install leaves out: say so in one line."""
    import importlib.util

    if importlib.util.find_spec("torch") is None:
        raise SpineAIError(f"spineai {command} needs PyTorch: pip install 'spineai[train]'")


def run_train(args) -> None:
    import os

    require_torch("train")

    from .training.cases import BUILTIN_MANIFESTS, hold_out_fold, read_manifest
    from .training.train import SPECS, train

    data = args.data or Path(os.environ.get("SPINEAI_DATA", Path.cwd().parent / "shared" / "data"))
    if args.task in ("stenosis", "discs"):
        return _train_lumbar(args, data)
    manifest = args.manifest or BUILTIN_MANIFESTS[args.task]
    cases = read_manifest(manifest, data)
    if args.fold is not None:
        cases = hold_out_fold(cases, None if args.fold == "all" else args.fold, manifest)

    def progress(step, total, loss):
        if step % 50 == 0 or step == total:
            print(f"step {step}/{total} loss {loss:.4f}", flush=True)

    metrics = train(
        cases,
        args.out,
        iterations=args.iterations,
        batch_size=args.batch_size,
        seed=args.seed,
        spec=SPECS[args.task],
        progress=progress,
        initial_model=args.init,
        learning_rate=args.learning_rate,
    )
    print(json.dumps(metrics["validation_summary"], indent=2))
    print(f"model written to {args.out}")


def run_export(args) -> None:
    require_torch("export-onnx")
    from .training.export import export_folder

    for spec in export_folder(args.models, args.task):
        print(f"{spec.onnx_path}  sha256 {spec.onnx.sha256}  (from {spec.weights})")


def _train_lumbar(args, data: Path) -> None:
    """The stenosis task's two networks: sac contents on phantoms, disc levels on the labelled lumbar scans."""
    from .training.discs import DISC_SPEC, evaluate_discs, train_discs
    from .training.multiclass import write_class_model

    def progress(step, total, loss):
        if step % 50 == 0 or step == total:
            print(f"step {step}/{total} loss {loss:.4f}", flush=True)

    if args.task == "stenosis":
        from .training.canal import HELD_OUT_SUBJECTS, SAC_SPEC, evaluate_sac, real_training_planes, train_sac
        from .training.lumbar_ivd import SUBJECTS

        subjects = [s for s in SUBJECTS if s not in HELD_OUT_SUBJECTS]
        real = real_training_planes(data / "lumbar-ivd", subjects) if (data / "lumbar-ivd").is_dir() else []
        model, history = train_sac(args.iterations, args.seed, progress, real)
        metrics = {"training": history, "synthetic_test": evaluate_sac(model)}
        spec = SAC_SPEC
    else:
        from .training.lumbar_ivd import read_lumbar_cases

        cases = read_lumbar_cases(data / "lumbar-ivd")
        model, history = train_discs(cases, args.iterations, args.seed, progress)
        metrics = {"training": history, "training_scans": [evaluate_discs(model, case) for case in cases]}
        spec = DISC_SPEC
    write_class_model(model, spec, args.out, metrics)
    print(json.dumps(metrics, indent=2))
    print(f"model written to {args.out}")


if __name__ == "__main__":
    sys.exit(main())
