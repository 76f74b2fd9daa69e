"""The ``spineai pacs`` command, registered by ``cli.build_parser`` through ``add_pacs_command``."""

from __future__ import annotations

import sys
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
    add_access_arguments(pacs)
    pacs.set_defaults(run=run_pacs)


def add_access_arguments(command) -> None:
    """--pacs-config and --ca-bundle; credentials themselves are never arguments (other users see those)."""
    command.add_argument(
        "--pacs-config",
        type=Path,
        help="JSON file with the PACS credentials (user and password, or token), mode 600; default: "
        "$SPINEAI_PACS_USER/$SPINEAI_PACS_PASSWORD or $SPINEAI_PACS_TOKEN, else ~/.config/spineai/pacs.json",
    )
    command.add_argument(
        "--ca-bundle", type=Path, help="PEM file of the CA(s) that the PACS's TLS certificate is verified against"
    )


def access_from_args(args, url: str):
    """The credentials and CA of the command line's options and the environment; warns on plain http."""
    from .credentials import pacs_access

    access = pacs_access(args.pacs_config, args.ca_bundle)
    warning = access.plain_http_warning(url)
    if warning:
        print(f"spineai: warning: {warning}", file=sys.stderr)
    return access


def run_pacs(args) -> None:
    from . import require_dicom_extra

    require_dicom_extra("dicomweb_client")
    from .pacs import segment_from_pacs

    access = access_from_args(args, args.url)
    written, stored = segment_from_pacs(
        args.url, args.study, args.series, args.task, args.out, args.device, access=access
    )
    for path in written.values():
        print(path)
    for instance in stored:
        label = {"dicom_seg": "DICOM SEG", "dicom_sr": "DICOM SR"}[instance.kind]
        print(f"stored {label} {instance.sop_instance_uid} ({instance.path.name}) in study {args.study} at {args.url}")
