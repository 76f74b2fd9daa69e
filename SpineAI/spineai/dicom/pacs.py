"""Segment a series held by a DICOMweb PACS and store the DICOM SEG and SR back in its study.

1. QIDO-RS: list the study's series; take the one asked for, else the study's only MR series.
2. WADO-RS: retrieve its instances into a temporary folder, removed at the end so that no copy of
   the patient's images stays behind (the results reference them by UID).
3. ``pipeline.segment_file(..., dicom_seg=True)``: the usual outputs plus SEG and SR in ``out_dir``.
4. STOW-RS: store the SEG and SR in the same study and check the PACS's answer instance by instance.

Credentials (HTTP basic or bearer token) and the CA to verify TLS against come from
``credentials.pacs_access``. Every failure the user can act on (PACS unreachable, TLS failure,
credentials refused, HTTP error, unknown study or series, a study with several MR series, an
instance the PACS refused) is a one-line ``SpineAIError``.
"""

from __future__ import annotations

import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pydicom
import requests
from dicomweb_client.api import DICOMwebClient

from ..errors import SpineAIError
from .credentials import ENV_PASSWORD, ENV_TOKEN, ENV_USER, PacsAccess, pacs_access

TIMEOUT_SECONDS = 60  # per HTTP request: a silent PACS must not hang a batch job forever
# dicomweb-client retries every failure, "connection refused" included, 5 times over 31 s by default;
# 3 attempts 0.5 s and 1 s apart still ride out a busy PACS (429/503/504) and fail fast when it is down.
ATTEMPTS, BACKOFF_MS = 3, 250
IMAGE_MODALITIES = ("MR",)
SERIES_DESCRIPTION, MODALITY, SERIES_UID, INSTANCES = "0008103E", "00080060", "0020000E", "00201209"


@dataclass(frozen=True)
class SeriesInfo:
    uid: str
    modality: str
    description: str
    instances: int | None

    def __str__(self) -> str:
        count = f"{self.instances} images, " if self.instances is not None else ""
        return f"{self.uid} ({self.modality}, {count}'{self.description}')"


@dataclass(frozen=True)
class StoredInstance:
    kind: str
    sop_instance_uid: str
    path: Path


@dataclass(frozen=True)
class PacsConnection:
    """A DICOMweb client for ``url`` with the credentials and CA of ``access``."""

    url: str
    client: DICOMwebClient
    access: PacsAccess

    def series_reference(self, study_uid: str, series_uid: str) -> str:
        """The series' WADO-RS URL: what a sidecar records as the input of a pulled series."""
        return f"{self.url}/studies/{study_uid}/series/{series_uid}"


def connect(url: str, access: PacsAccess | None = None) -> PacsConnection:
    """A connection to the PACS at ``url`` (no request is made yet)."""
    url = check_url(url)
    access = access or pacs_access()
    client = DICOMwebClient(url, session=access.session(), timeout=TIMEOUT_SECONDS)
    client.set_http_retry_params(max_attempts=ATTEMPTS, wait_exponential_multiplier=BACKOFF_MS)
    return PacsConnection(url, client, access)


def segment_from_pacs(
    url: str,
    study_uid: str,
    series_uid: str | None,
    task: str,
    out_dir,
    device: str = "auto",
    progress=None,
    access: PacsAccess | None = None,
) -> tuple[dict[str, Path], list[StoredInstance]]:
    """Pull, segment, push. Returns the files written to ``out_dir`` and the instances the PACS stored."""
    connection = connect(url, access)
    written = pull_and_segment(connection, study_uid, series_uid, task, out_dir, device, progress)
    return written, store_results(connection, study_uid, written)


def pull_and_segment(
    connection: PacsConnection,
    study_uid: str,
    series_uid: str | None,
    task: str,
    out_dir,
    device: str = "auto",
    progress=None,
    while_pulled=None,
    model_dir=None,
) -> dict[str, Path]:
    """Choose the series, pull it into a temporary folder, segment it with SEG and SR into ``out_dir``.

    ``while_pulled(written, folder)`` runs before the pulled images are removed (the cohort's QC views);
    ``model_dir``: a site model of the task instead of the shipped one.
    """
    from ..pipeline import check_dicom_output, segment_file

    check_dicom_output(task)  # before any request: the task can be written as DICOM
    series = choose_series(study_series(connection, study_uid), series_uid, study_uid, connection.url)
    with tempfile.TemporaryDirectory(prefix="spineai-pacs-") as temporary:
        folder = Path(temporary) / series.uid  # the folder name becomes the outputs' stem
        retrieve_series(connection, study_uid, series.uid, folder)
        reference = connection.series_reference(study_uid, series.uid)
        written = segment_file(
            folder, out_dir, task, device, progress, dicom_seg=True, input_name=reference, model_dir=model_dir
        )
        if while_pulled is not None:
            while_pulled(written, folder)
    return written


def store_results(connection: PacsConnection, study_uid: str, written: dict[str, Path]) -> list[StoredInstance]:
    """STOW-RS the run's SEG and SR into the study."""
    return store(connection, study_uid, {kind: written[kind] for kind in ("dicom_seg", "dicom_sr")})


def check_url(url: str) -> str:
    if not re.match(r"^https?://[^/]+", url):
        raise SpineAIError(f"{url}: not a DICOMweb URL; expected http(s)://host:port/dicom-web")
    return url.rstrip("/")


def check_access(connection: PacsConnection, study_uid: str) -> None:
    """One QIDO-RS request that fails, as one line, if the PACS cannot be reached or refuses the credentials."""
    _ask(connection, "search a study", connection.client.search_for_series, study_instance_uid=study_uid)


def study_series(connection: PacsConnection, study_uid: str) -> list[SeriesInfo]:
    """The series of the study (QIDO-RS); a study the PACS does not know is an error."""
    fields = [SERIES_DESCRIPTION, INSTANCES]
    search = connection.client.search_for_series
    found = _ask(connection, "search the study", search, study_instance_uid=study_uid, fields=fields)
    if not found:
        raise SpineAIError(f"{connection.url}: study {study_uid} not found on the PACS")
    return [_series_info(attributes) for attributes in found]


def _series_info(attributes: dict) -> SeriesInfo:
    def value(tag, default=None):
        return (attributes.get(tag, {}).get("Value") or [default])[0]

    instances = value(INSTANCES)
    count = int(instances) if instances is not None else None
    return SeriesInfo(value(SERIES_UID), value(MODALITY, ""), value(SERIES_DESCRIPTION, ""), count)


def choose_series(series: list[SeriesInfo], series_uid: str | None, study_uid: str, url: str) -> SeriesInfo:
    """The series asked for, else the only MR series: with several, guessing could measure the wrong one."""
    listing = "; ".join(str(s) for s in series)
    if series_uid is not None:
        for candidate in series:
            if candidate.uid == series_uid:
                return candidate
        raise SpineAIError(f"{url}: series {series_uid} is not in study {study_uid}; its series: {listing}")
    images = [s for s in series if s.modality in IMAGE_MODALITIES]
    if len(images) == 1:
        return images[0]
    if not images:
        raise SpineAIError(f"{url}: study {study_uid} holds no MR series; its series: {listing}")
    choices = "; ".join(str(s) for s in images)
    raise SpineAIError(f"{url}: study {study_uid} holds {len(images)} MR series; choose one with --series: {choices}")


def retrieve_series(connection: PacsConnection, study_uid: str, series_uid: str, folder: Path) -> int:
    """WADO-RS: write every instance of the series into ``folder`` as a Part 10 file; returns their number."""
    folder.mkdir(parents=True)
    client, url = connection.client, connection.url
    instances = _ask(connection, "retrieve the series", lambda: list(client.iter_series(study_uid, series_uid)))
    for dataset in instances:
        dataset.save_as(folder / f"{dataset.SOPInstanceUID}.dcm", enforce_file_format=True)
    if not instances:
        raise SpineAIError(f"{url}: series {series_uid} of study {study_uid} returned no instances")
    return len(instances)


def store(connection: PacsConnection, study_uid: str, files: dict[str, Path]) -> list[StoredInstance]:
    """STOW-RS the files into the study; every instance must come back as stored."""
    url = connection.url
    datasets = {kind: pydicom.dcmread(path) for kind, path in files.items()}
    instances = list(datasets.values())
    answer = _ask(connection, "store the results", connection.client.store_instances, instances, study_uid)
    failed = [str(item.ReferencedSOPInstanceUID) for item in answer.get("FailedSOPSequence", [])]
    stored_uids = {str(item.ReferencedSOPInstanceUID) for item in answer.get("ReferencedSOPSequence", [])}
    missing = [kind for kind, dataset in datasets.items() if str(dataset.SOPInstanceUID) not in stored_uids]
    if failed or missing:
        kept = ", ".join(str(path) for path in files.values())
        raise SpineAIError(f"{url}: the PACS did not store {', '.join(missing or failed)}; the results are in {kept}")
    return [StoredInstance(kind, str(datasets[kind].SOPInstanceUID), files[kind]) for kind in datasets]


def _ask(connection: PacsConnection, action: str, call, *args, **kwargs):
    """Run one DICOMweb call; network, TLS, credential and HTTP failures become one-line errors naming the PACS."""
    url = connection.url
    try:
        return call(*args, **kwargs)
    except requests.exceptions.HTTPError as error:
        response = error.response
        if response is not None and response.status_code == 401:
            raise SpineAIError(f"{url}: {refused(connection.access, response, action)}") from None
        status = f"HTTP {response.status_code} {response.reason}" if response is not None else str(error)
        raise SpineAIError(f"{url}: the PACS answered {status} when asked to {action}") from None
    except requests.exceptions.SSLError as error:
        given = connection.access.verify is not True
        hint = "check the CA bundle given" if given else "if it uses an internal CA, give it with --ca-bundle"
        raise SpineAIError(f"{url}: TLS failure when asked to {action} ({_tls_reason(error)}); {hint}") from None
    except requests.exceptions.RequestException as error:
        raise SpineAIError(f"{url}: cannot reach the PACS to {action} ({_network_reason(error)})") from None


def refused(access: PacsAccess, response, action: str) -> str:
    """Why a PACS answered 401, in words: no credentials, or which ones it refused (never their value)."""
    status = f"HTTP 401 {response.reason}"
    challenge = response.headers.get("WWW-Authenticate", "")
    detail = re.search(r'error_description="([^"]*)"', challenge)
    if detail:
        status += f": {detail.group(1)}"
    if access.kind is None:
        return (
            f"the PACS asks for credentials ({status}) when asked to {action}; set {ENV_USER} and {ENV_PASSWORD}, "
            f"or {ENV_TOKEN}, or give --pacs-config"
        )
    what = "token" if access.kind == "token" else "user name and password"
    return f"the PACS refused the {what} from {access.source} ({status}) when asked to {action}"


def _tls_reason(error: Exception) -> str:
    """'certificate verify failed: unable to get local issuer certificate' rather than urllib3's nesting."""
    text = str(error)
    match = re.search(r"(certificate verify failed: [^(\"')]+)", text)
    match = match or re.search(r"\[SSL: [A-Z_]+\] ([^(\"')]+)", text)
    if match:
        return match.group(1).strip().rstrip(",")
    match = re.search(r"(hostname '[^']+' doesn't match [^\"')]+|wrong version number|EOF occurred[^\"')]*)", text)
    return match.group(1).strip() if match else type(error).__name__


def _network_reason(error: Exception) -> str:
    """'Connection refused' rather than urllib3's nested retry report."""
    match = re.search(r"\[Errno -?\d+\] ([^')\"]+)", str(error))
    return match.group(1).strip() if match else type(error).__name__
