"""``spineai corrections add|list`` and ``spineai finetune``: registered on the CLI by ``add_learning_commands``."""

from __future__ import annotations

import sys
from pathlib import Path

from ..devices import DEVICES
from ..tasks import TASKS


def add_learning_commands(commands) -> None:
    corrections = commands.add_parser("corrections", help="collect corrected cases in a site folder")
    actions = corrections.add_subparsers(dest="action", required=True)
    add = actions.add_parser("add", help="add (or replace) a scan and its corrected label map")
    add.add_argument("image", type=Path, help="the scan (NIfTI, NRRD, MHA or a DICOM series folder)")
    add.add_argument("mask", type=Path, help="the corrected label map, on the scan's grid, in the task's label values")
    add.add_argument("--task", choices=sorted(TASKS), required=True)
    add_site_argument(add)
    add.add_argument(
        "--sidecar", type=Path, help="the first result's <stem>_<task>_seg.json: the model that made it, edited or not"
    )
    add.add_argument("--disc-levels", type=Path, help="stenosis: the disc levels the label map was made at")
    add.add_argument(
        "--contrast", help="the scan's contrast, when its file name does not say it (T1w, T2w, T2starw, MT)"
    )
    add.set_defaults(run=run_add)
    listing = actions.add_parser("list", help="list the site's corrected cases")
    add_site_argument(listing)
    listing.add_argument("--task", choices=sorted(TASKS))
    listing.set_defaults(run=run_list)

    finetune = commands.add_parser("finetune", help="fine-tune the task's model on the site's corrected cases")
    finetune.add_argument("--task", choices=sorted(TASKS), required=True)
    add_site_argument(finetune)
    finetune.add_argument(
        "--out", type=Path, help="the new model folder (must not exist or be empty; default SITE/models/<task>-<time>)"
    )
    finetune.add_argument("--minutes", type=float, default=5.0, help="wall-clock budget of the training (default 5)")
    finetune.add_argument("--device", choices=DEVICES, default="auto")
    finetune.add_argument("--start", type=Path, help="a model folder to start from (default: the shipped model)")
    finetune.add_argument("--seed", type=int, default=0)
    finetune.add_argument("--max-steps", type=int, help="stop after this many steps if the time is not up first")
    finetune.set_defaults(run=run_finetune)


def add_site_argument(command) -> None:
    from .site import default_site_dir

    command.add_argument(
        "--site", type=Path, default=None, help=f"the site folder (default $SPINEAI_SITE or {default_site_dir()})"
    )


def _site(args) -> Path:
    from .site import default_site_dir

    return args.site or default_site_dir()


def run_add(args) -> None:
    from .site import add_correction, read_site

    site = _site(args)
    correction = add_correction(site, args.image, args.mask, args.task, args.sidecar, args.disc_levels, args.contrast)
    count = len(read_site(site, args.task, check_files=False))
    print(f"spineai: {args.task} case {correction.case_id} ({correction.contrast}, {correction.plane}) added to {site}")
    print(f"spineai: the site has {count} corrected {args.task} case{'s' if count != 1 else ''}")


def run_list(args) -> None:
    from .site import describe, read_site

    for line in describe(read_site(_site(args), args.task)):
        print(line)


def run_finetune(args) -> None:
    import json

    from ..cli import _progress_bar
    from .card import rehearsal_line
    from .finetune import finetune
    from .site import new_model_folder

    site = _site(args)
    out = args.out or new_model_folder(site, args.task)
    bar, update = _progress_bar(f"fine-tune {args.task}")
    with bar:
        folder = finetune(
            args.task, site, out, args.minutes, args.device, args.start, args.seed, update, max_steps=args.max_steps
        )
    record = json.loads((folder / f"{args.task}.json").read_text(encoding="utf-8"))
    site = record["site"]
    print(f"spineai: {record['name']}: {site['steps']} steps in {site['seconds']} s on {site['device']}")
    for before, after in zip(site["before"]["site"], site["after"]["site"], strict=True):
        print(f"  {before['case_id']} ({before['contrast']}): Dice {before['dice']:.3f} -> {after['dice']:.3f}")
    print(f"  evaluated on {site['evaluated_on']}")
    if (line := rehearsal_line(site)) is not None:
        print(f"  {line[0].lower()}{line[1:]}")
    share = site["mixing"]["share_of_fine_tuned_weights"]
    print(
        f"  weights: {share:.0%} fine-tuned, {1 - share:.0%} the starting model's"
        + (" (the fine-tune gained nothing on the site's cases)" if share == 0 else "")
    )
    print(f"spineai: model written to {folder}; use it with spineai segment --model {folder}", file=sys.stdout)
