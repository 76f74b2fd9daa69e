"""A cohort pulled from a DICOMweb PACS: ``spineai batch --pacs URL --studies FILE``.

The study list names one study per line (``StudyInstanceUID``, optionally followed by the
``SeriesInstanceUID`` to take; separated by a comma or spaces; ``#`` comments and blank lines are
ignored). Each study is one case, ``OUT/<StudyInstanceUID>/``, run like a folder case (``run.py``):
the worker pulls the series, segments it with DICOM SEG and SR (``dicom.pacs.pull_and_segment``),
renders the QC views while the pulled images still exist, stores the SEG and SR back in the study
(STOW-RS) and then writes ``pacs_stored.json``, the receipt of what the PACS stored.

A case is finished when its results are complete (``layout.find_finished_sidecar``) for this study
and the receipt says the PACS stored them. A case whose results are complete but not stored (the
PACS refused or was down when storing) is not recomputed on the next run: its SEG and SR are stored.

Credentials are not passed to the workers: each reads them where it runs, by the same rules as
``spineai pacs`` (``dicom.credentials``), from the config file path and environment it is given.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from pathlib import Path

from ..errors import SpineAIError
from .discover import unique_ids

log = logging.getLogger(__name__)

RECEIPT = "pacs_stored.json"
UID = re.compile(r"^[0-9]+(\.[0-9]+)*$")  # PS3.5 9.1: digits and dots, at most 64 characters


@dataclass(frozen=True)
class PacsCase:
    case_id: str
    url: str
    study_uid: str
    series_uid: str | None = None
    pacs_config: str | None = None  # a path: workers read the credentials themselves
    ca_bundle: str | None = None
    levels = None  # a study from a PACS comes without a levels file

    @property
    def image(self) -> str:
        """What the case is, as a URL (QIDO/WADO-RS path of the study or of the series asked for)."""
        reference = f"{self.url}/studies/{self.study_uid}"
        return f"{reference}/series/{self.series_uid}" if self.series_uid else reference

    def as_record(self) -> dict:
        return {"case_id": self.case_id, "image": self.image, "levels": "", "study": self.study_uid,
                "series": self.series_uid or ""}  # fmt: skip

    def owns(self, sidecar: dict) -> bool:
        """Whether a sidecar's input (the pulled series' WADO-RS URL) is a series of this case."""
        prefix = f"{self.url}/studies/{self.study_uid}/series/"
        given = str(sidecar.get("input", ""))
        return given.startswith(prefix) and (self.series_uid is None or given == prefix + self.series_uid)


def read_study_list(path, url: str, pacs_config=None, ca_bundle=None) -> list[PacsCase]:
    """The cases of a study list file; a malformed line is a one-line error naming the file and line."""
    from ..dicom.pacs import check_url

    path = Path(path)
    url = check_url(url)
    try:
        lines = path.read_text(encoding="utf-8-sig").splitlines()
    except FileNotFoundError:
        raise SpineAIError(f"{path}: study list not found") from None
    except (OSError, UnicodeDecodeError) as error:
        raise SpineAIError(
            f"{path}: cannot read the study list ({getattr(error, 'strerror', None) or error})"
        ) from None
    entries, seen = [], {}
    for number, line in enumerate(lines, start=1):
        fields = [f for f in re.split(r"[,\s]+", line.split("#", 1)[0].strip()) if f]
        if not fields or (not entries and fields[0].lower() in ("study", "studyinstanceuid")):
            continue  # blank, comment, or a header line
        if len(fields) > 2:
            raise SpineAIError(f"{path}: line {number}: expected a StudyInstanceUID and optionally a SeriesInstanceUID")
        for uid in fields:
            if len(uid) > 64 or not UID.match(uid):
                raise SpineAIError(f"{path}: line {number}: '{uid}' is not a DICOM UID (digits and dots, at most 64)")
        key = tuple(fields)
        if key in seen:
            raise SpineAIError(f"{path}: line {number} repeats line {seen[key]}")
        seen[key] = number
        entries.append((fields[0], fields[1] if len(fields) == 2 else None))
    if not entries:
        raise SpineAIError(f"{path}: the study list names no study")
    ids = unique_ids([study for study, _ in entries])
    config = str(Path(pacs_config).resolve()) if pacs_config else None
    bundle = str(Path(ca_bundle).resolve()) if ca_bundle else None
    return [PacsCase(i, url, study, series, config, bundle) for i, (study, series) in zip(ids, entries, strict=True)]


def pacs_case_finished(case_dir: Path, case: PacsCase, task: str, model_dir: Path | None = None) -> bool:
    """Finished: complete results of this study made with this model, and the PACS's receipt for exactly them."""
    from .layout import find_finished_sidecar, made_with

    sidecar = find_finished_sidecar(case_dir, task)
    if sidecar is None or not case.owns(sidecar) or not made_with(sidecar, model_dir):
        return False
    receipt = read_receipt(case_dir)
    return receipt.get("url") == case.url and receipt.get("sidecar_created") == sidecar.get("created")


def read_receipt(case_dir: Path) -> dict:
    try:
        receipt = json.loads((Path(case_dir) / RECEIPT).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return receipt if isinstance(receipt, dict) else {}


def run_pacs_case(
    case: PacsCase, case_dir: Path, task: str, device: str, out_dir: Path, model_dir: Path | None = None
) -> dict[str, Path]:
    """Pull, segment and store one study (or only store, when its results are complete but not stored)."""
    from ..dicom.credentials import pacs_access
    from ..dicom.pacs import connect, pull_and_segment, store_results
    from ..io import OutputSet
    from .layout import find_finished_sidecar, made_with

    connection = connect(case.url, pacs_access(case.pacs_config, case.ca_bundle))
    sidecar = find_finished_sidecar(case_dir, task)
    complete = sidecar is not None and {"dicom_seg", "dicom_sr"} <= set(sidecar["outputs"])
    if complete and case.owns(sidecar) and made_with(sidecar, model_dir):
        folder = Path(sidecar["folder"])
        written = {kind: folder / name for kind, name in sidecar["outputs"].items()}
        written["sidecar"] = Path(sidecar["sidecar_path"])
    else:

        def render_views(written: dict[str, Path], pulled: Path) -> None:
            from ..report.qc import render_case_views

            try:
                render_case_views(written["sidecar"], out_dir, case.case_id, image=pulled)
            except Exception as error:  # the result stands; the report shows the case without pictures
                log.warning("case %s: QC images failed: %s", case.case_id, error)

        written = pull_and_segment(
            connection,
            case.study_uid,
            case.series_uid,
            task,
            case_dir,
            device,
            while_pulled=render_views,
            model_dir=model_dir,
        )
        sidecar = json.loads(written["sidecar"].read_text(encoding="utf-8"))
    stored = store_results(connection, case.study_uid, written)
    receipt = {
        "url": case.url,
        "study": case.study_uid,
        "series": str(sidecar.get("input", "")).rsplit("/", 1)[-1],
        "sidecar_created": sidecar.get("created"),
        "stored": {instance.kind: instance.sop_instance_uid for instance in stored},
    }
    with OutputSet(case_dir) as out:
        out.write_json(receipt, RECEIPT)
    return written
