"""Run one task over a cohort on Dask: resumable, one failure never stops the others.

The driver (this process) decides which cases still need work, hands them to Dask workers one
case per task, and records each outcome as it arrives. A worker runs
``pipeline.segment_file`` into ``OUT/<case_id>/`` and renders the case's QC images, so the slow
parts run in parallel and a killed run loses at most the cases that were in flight.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

from .. import __version__
from ..errors import SpineAIError
from ..io import OutputSet
from .discover import Case
from .layout import FAILURE_COLUMNS, FAILURES, MANIFEST, PARTIAL_PREFIX, case_folder, finished_sidecar

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CaseOutcome:
    case_id: str
    image: str
    status: str  # "done", "skipped" (already finished) or "failed"
    error: str = ""
    seconds: float = 0.0


@dataclass
class CohortRun:
    out_dir: Path
    outcomes: list[CaseOutcome] = field(default_factory=list)

    def count(self, status: str) -> int:
        return sum(outcome.status == status for outcome in self.outcomes)

    @property
    def failures(self) -> list[CaseOutcome]:
        return [outcome for outcome in self.outcomes if outcome.status == "failed"]


def run_cohort(
    cases: list[Case],
    out_dir,
    task: str = "cord",
    device: str = "auto",
    workers: int | None = None,
    scheduler: str | None = None,
    source: str = "",
    model_dir: Path | None = None,
) -> CohortRun:
    """Segment and measure every unfinished case of ``cases`` into ``out_dir``; return each case's outcome.

    ``workers``: local Dask worker processes (default: one per CPU core, each with one thread);
    ``scheduler``: address of an existing Dask cluster instead (its workers must see the same paths).
    ``model_dir``: a model folder of the task (a site model); a case made with another model is redone.
    """
    out_dir = Path(out_dir).resolve()
    write_manifest(out_dir, cases, task, source)
    model_dir = Path(model_dir).resolve() if model_dir else None
    pending = [case for case in cases if not is_finished(case, out_dir, task, model_dir)]
    pending.sort(key=stored_bytes, reverse=True)  # largest first: the run does not end waiting on one big case
    pending_ids = {case.case_id for case in pending}
    skipped = [CaseOutcome(c.case_id, str(c.image), "skipped") for c in cases if c.case_id not in pending_ids]
    run = CohortRun(out_dir, list(skipped))
    with _progress_bar(len(cases), len(skipped), task) as bar:
        if pending:
            with dask_client(workers, scheduler, len(pending)) as client:
                for outcome in run_on_cluster(client, pending, out_dir, task, device, model_dir):
                    run.outcomes.append(outcome)
                    if outcome.status == "failed":
                        write_failures(out_dir, run.failures)  # kept current, so a killed run still tells
                    bar.set_postfix(failed=len(run.failures), refresh=False)
                    bar.update(1)
    write_failures(out_dir, run.failures)
    return run


def is_finished(case, out_dir: Path, task: str, model_dir: Path | None = None) -> bool:
    """A folder case: its results for this input and model exist; a PACS case: they exist and the PACS stored them."""
    from .pacs import PacsCase, pacs_case_finished

    case_dir = case_folder(out_dir, case.case_id)
    if isinstance(case, PacsCase):
        return pacs_case_finished(case_dir, case, task, model_dir)
    return finished_sidecar(case_dir, case, task, model_dir) is not None


def run_on_cluster(client, cases: list[Case], out_dir: Path, task: str, device: str, model_dir: Path | None = None):
    """Yield each case's outcome as soon as it finishes, in completion order."""
    from dask.distributed import as_completed

    process = partial(run_case, out_dir=out_dir, task=task, device=device, model_dir=model_dir)
    futures = client.map(process, cases, pure=False)
    case_of = {future.key: case for future, case in zip(futures, cases, strict=True)}
    for future in as_completed(futures):
        yield outcome_of(future, case_of[future.key])


def outcome_of(future, case: Case) -> CaseOutcome:
    """The case's outcome; a failure of the worker itself (it died on this case: KilledWorker) counts too."""
    try:
        return future.result()
    except Exception as error:
        return CaseOutcome(case.case_id, str(case.image), "failed", f"the worker failed: {_describe(error)}")
    finally:
        future.release()  # the scheduler can forget the result now


def run_case(case: Case, out_dir: Path, task: str, device: str, model_dir: Path | None = None) -> CaseOutcome:
    """One case on a worker: segment + measure via ``segment_file``, then its QC images; never raises.

    A study from a PACS (``pacs.PacsCase``) is pulled, segmented and stored back by ``pacs.run_pacs_case``,
    which renders its QC images while the pulled series still exists.
    """
    from ..pipeline import segment_file
    from ..report.qc import render_case_views
    from ..tasks import get_task
    from .pacs import PacsCase, run_pacs_case

    limit_threads_per_worker()
    case_dir = case_folder(out_dir, case.case_id)
    remove_stale_partials(case_dir)
    started = time.perf_counter()
    from_pacs = isinstance(case, PacsCase)
    try:
        if from_pacs:
            written = run_pacs_case(case, case_dir, task, device, out_dir, model_dir)
        else:
            levels = {f"{get_task(task).levels_input}_path": case.levels}
            written = segment_file(case.image, case_dir, task, device, model_dir=model_dir, **levels)
    except SpineAIError as error:
        return CaseOutcome(case.case_id, str(case.image), "failed", str(error))
    except Exception as error:  # an engine bug on one scan must not stop the cohort; report it instead
        log.exception("case %s failed", case.case_id)
        return CaseOutcome(case.case_id, str(case.image), "failed", f"unexpected error: {_describe(error)}")
    try:
        if not from_pacs:
            render_case_views(written["sidecar"], out_dir, case.case_id)
    except Exception as error:  # the result stands; the report shows the case without pictures
        log.warning("case %s: QC images failed: %s", case.case_id, _describe(error))
    return CaseOutcome(case.case_id, str(case.image), "done", seconds=round(time.perf_counter() - started, 3))


def limit_threads_per_worker() -> None:
    """One ONNX Runtime and one ITK thread per worker: N single-threaded workers use N cores without
    oversubscribing them (both would otherwise start one thread per core in every worker)."""
    import SimpleITK as sitk

    from ..inference import limit_threads

    limit_threads(1)
    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(1)


def stored_bytes(case: Case) -> int:
    """The size of a case's image on disk (a DICOM series: all its files), a cheap proxy for its work."""
    image = Path(case.image)
    try:
        if image.is_dir():
            return sum(path.stat().st_size for path in image.iterdir() if path.is_file())
        return image.stat().st_size
    except OSError:  # unreadable or gone: the case fails when it runs, and says why
        return 0


def remove_stale_partials(case_dir: Path) -> None:
    """Temporary files left by a worker killed mid-write (``OutputSet`` names them ``.partial-*``)."""
    if case_dir.is_dir():
        for path in case_dir.glob(PARTIAL_PREFIX + "*"):
            path.unlink(missing_ok=True)


def _describe(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0]}" if text else type(error).__name__


# --- cluster ------------------------------------------------------------------------------------


@contextmanager
def dask_client(workers: int | None, scheduler: str | None, pending: int):
    """A Dask client: on ``scheduler`` if given, else on a local cluster of single-threaded processes."""
    try:
        import dask
        from dask.distributed import Client, LocalCluster
    except ImportError:
        raise SpineAIError("spineai batch needs Dask: pip install 'spineai[cohort]'") from None
    if scheduler:
        with Client(scheduler) as client:
            yield client
        return
    count = max(1, min(workers or os.cpu_count() or 1, pending))  # more workers than cases only costs start-up
    with (
        _quiet_dask_logs(),
        # One case per worker thread at a time, none queued on the worker: when a case kills its
        # worker (out of memory), Dask blames every task the worker held, so hold only that one.
        dask.config.set({"distributed.scheduler.worker-saturation": 1.0}),
        LocalCluster(
            n_workers=count,
            threads_per_worker=1,
            processes=True,  # ITK and NumPy hold the GIL in places; processes scale, threads would not
            # The scheduler always serves HTTP (health checks); a free port instead of 8787 lets
            # several batch runs share a machine. No dashboard: nobody is there to look at it.
            dashboard_address=":0",
            scheduler_kwargs={"dashboard": False},
            silence_logs=logging.ERROR,
        ) as cluster,
        Client(cluster) as client,
    ):
        yield client


@contextmanager
def _quiet_dask_logs():
    """Dask logs cluster start-up and shut-down at INFO; keep them for ``spineai -v`` only."""
    logger = logging.getLogger("distributed")
    previous = logger.level
    if logging.getLogger().getEffectiveLevel() > logging.INFO:
        logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(previous)


# --- records ------------------------------------------------------------------------------------


def write_manifest(out_dir: Path, cases: list[Case], task: str, source: str) -> None:
    """Record the cases of this run so aggregation and ``spineai qc`` cover exactly these cases."""
    record = {
        "engine_version": __version__,
        "task": task,
        "source": source,
        "cases": [case.as_record() for case in cases],
    }
    with OutputSet(out_dir) as out:
        out.write_json(record, MANIFEST)


def write_failures(out_dir: Path, failures: list[CaseOutcome]) -> Path:
    """failures.csv: one row per failed case; header only when nothing failed (clears an earlier run's list)."""
    rows = [{"case_id": f.case_id, "input": f.image, "error": f.error} for f in failures]
    with OutputSet(out_dir) as out:
        return out.write_csv(rows, FAILURES, FAILURE_COLUMNS)


@contextmanager
def _progress_bar(total: int, done: int, task: str):
    """tqdm on an interactive terminal; silent in logs and batch jobs."""
    from tqdm import tqdm

    with tqdm(total=total, initial=done, desc=f"{task} cases", unit="case", disable=not sys.stderr.isatty()) as bar:
        yield bar
