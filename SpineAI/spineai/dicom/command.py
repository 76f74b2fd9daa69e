"""The ``spineai pacs`` command, registered by ``cli.build_parser`` through ``add_pacs_command``."""

from __future__ import annotations

from pathlib import Path

from ..devices import DEVICES
from ..tasks import TASKS


def add_pacs_command(commands) -> None:
    """Add ``pacs`` to the CLI's subparsers."""
    pacs = commands.add_parser(
        "pacs", help="segment a series from a DICOMweb PACS and store the DICOM SEG and SR back in its study"
    )
    pacs.add_argument("--url", required=True, help="DICOMweb root, e.g. http://host:8042/dicom-web")
    pacs.add_argument("--study", required=True, help="StudyInstanceUID")
    pacs.add_argument("--series", help="SeriesInstanceUID (default: the study's only MR series)")
    pacs.add_argument("--task", choices=sorted(TASKS), default="cord")
    pacs.add_argument("--out", type=Path, required=True, help="output folder (mask, tables, SEG, SR, sidecar)")
    pacs.add_argument("--device", choices=DEVICES, default="auto")
    pacs.set_defaults(run=run_pacs)


def run_pacs(args) -> None:
    from . import require_dicom_extra

    require_dicom_extra("dicomweb_client")
    from .pacs import segment_from_pacs

    written, stored = segment_from_pacs(args.url, args.study, args.series, args.task, args.out, args.device)
    for path in written.values():
        print(path)
    for instance in stored:
        label = {"dicom_seg": "DICOM SEG", "dicom_sr": "DICOM SR"}[instance.kind]
        print(f"stored {label} {instance.sop_instance_uid} ({instance.path.name}) in study {args.study} at {args.url}")
