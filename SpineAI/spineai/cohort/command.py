"""``spineai batch`` and ``spineai qc``: registered on the CLI by ``add_batch_command``.

Exit status of ``batch``: 0 when every case is finished, 1 when some cases failed (listed in
OUT/failures.csv; the others are finished and aggregated), 2 for an unusable INPUT (or study list,
PACS address, credentials), 130 when interrupted (Ctrl-C; the finished cases are kept).
"""

from __future__ import annotations

import sys
from pathlib import Path

from ..devices import DEVICES
from ..dicom.command import add_access_arguments
from ..tasks import TASKS

EXIT_SOME_CASES_FAILED = 1
EXIT_INTERRUPTED = 130


def add_batch_command(commands) -> None:
    """Add the ``batch`` and ``qc`` sub-commands to the CLI's sub-parsers."""
    batch = commands.add_parser(
        "batch",
        help="run a task on a cohort (folder, BIDS dataset or CSV list), resumable, on Dask",
        description="Segment and measure every case of INPUT into OUT/<case id>/, then write the cohort "
        "tables and the QC report. Finished cases are skipped, so an interrupted run is resumed by running "
        "the same command again.",
    )
    batch.add_argument(
        "input", type=Path, nargs="?", help="folder of scans, BIDS dataset or CSV list (image[,id,levels])"
    )
    batch.add_argument(
        "--pacs", metavar="URL", help="instead of INPUT: pull the studies of --studies from this DICOMweb root"
    )
    batch.add_argument(
        "--studies",
        type=Path,
        metavar="FILE",
        help="with --pacs: one StudyInstanceUID per line, optionally followed by a SeriesInstanceUID",
    )
    batch.add_argument("--task", choices=sorted(TASKS), default="cord")
    batch.add_argument("--out", type=Path, required=True, help="output folder")
    batch.add_argument("--workers", type=int, help="local Dask worker processes (default: one per CPU core)")
    batch.add_argument("--scheduler", help="address of an existing Dask scheduler, e.g. tcp://host:8786")
    batch.add_argument("--device", choices=DEVICES, default="auto")
    batch.add_argument(
        "--model", type=Path, help="a model folder of the task (a site model) instead of the shipped one"
    )
    add_access_arguments(batch)
    batch.set_defaults(run=run_batch)

    qc = commands.add_parser("qc", help="(re)write the QC report of a batch output folder")
    qc.add_argument("out", type=Path, help="the --out folder of spineai batch")
    qc.set_defaults(run=run_qc)


def run_batch(args) -> int:
    from ..errors import SpineAIError
    from ..report.qc import write_qc_report
    from .aggregate import aggregate_cohort
    from .discover import discover_cases
    from .run import run_cohort

    if args.workers is not None and args.workers < 1:
        raise SpineAIError(f"--workers must be at least 1 (got {args.workers})")
    if args.model is not None:
        from ..pipeline import check_model_folder

        check_model_folder(args.task, args.model)
    if args.pacs or args.studies:
        cases, source = pacs_cases(args)
    elif args.input is None:
        raise SpineAIError("give INPUT (a folder, BIDS dataset or CSV list) or --pacs URL --studies FILE")
    else:
        if args.pacs_config or args.ca_bundle:
            raise SpineAIError("--pacs-config and --ca-bundle go with --pacs")
        cases, source = discover_cases(args.input, exclude=args.out), str(args.input)
    try:
        run = run_cohort(cases, args.out, args.task, args.device, args.workers, args.scheduler, source, args.model)
    except KeyboardInterrupt:
        # Unlike `segment`, an interrupted batch keeps every case it finished: say how to go on.
        print("spineai batch: interrupted; finished cases are kept, run the same command to resume", file=sys.stderr)
        return EXIT_INTERRUPTED
    tables = aggregate_cohort(args.out, args.task)
    report = write_qc_report(args.out, args.task)
    print(
        f"spineai batch: {len(cases)} cases: {run.count('done')} done, "
        f"{run.count('skipped')} already finished, {run.count('failed')} failed"
    )
    for path in [*tables.values(), report]:
        print(path)
    if run.failures:
        print(f"spineai batch: failed cases are listed in {Path(args.out) / 'failures.csv'}")
        return EXIT_SOME_CASES_FAILED
    return 0


def pacs_cases(args):
    """The studies of --studies on --pacs, after checking, before any case runs, that the task can be written
    as DICOM and that the PACS answers with these credentials (a 401 or TLS failure is exit 2, not N failures)."""
    from ..dicom import require_dicom_extra
    from ..errors import SpineAIError

    if args.input is not None:
        raise SpineAIError(f"{args.input}: give either INPUT or --pacs with --studies, not both")
    if not (args.pacs and args.studies):
        raise SpineAIError("--pacs URL and --studies FILE go together")
    require_dicom_extra("dicomweb_client")
    from ..dicom.command import access_from_args
    from ..dicom.pacs import check_access, connect
    from ..pipeline import check_dicom_output
    from .pacs import read_study_list

    check_dicom_output(args.task)
    cases = read_study_list(args.studies, args.pacs, args.pacs_config, args.ca_bundle)
    check_access(connect(args.pacs, access_from_args(args, args.pacs)), cases[0].study_uid)
    return cases, f"{cases[0].url} (studies of {args.studies})"


def run_qc(args) -> None:
    from ..errors import SpineAIError
    from ..report.qc import write_qc_report

    if not args.out.is_dir():
        raise SpineAIError(f"{args.out}: not a spineai batch output folder")
    print(write_qc_report(args.out))
