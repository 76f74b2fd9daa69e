"""``spineai pacs`` against a PACS that asks for credentials and speaks TLS with an internal CA.

One real Orthanc (DICOMweb plugin, authentication on, two registered users) runs on loopback for the
module. TLS is terminated by a gateway in front of it with a certificate from a CA the test makes
(``orthanc_server.py`` says why Orthanc does not do TLS itself here); Orthanc checks the user name
and password. A second gateway checks bearer tokens (one valid, one expired) and passes valid
requests on as an Orthanc user. The study (one real MR series, the axial T2* of ``sct-testing``) is
uploaded through Orthanc's REST API. No test leaves credentials or a config file behind, and the
machine's own (``SPINEAI_PACS_*``, ``~/.config/spineai``, ``REQUESTS_CA_BUNDLE``) play no part.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from pathlib import Path

import pydicom
import pytest
from dicom_series import MRSeries, write_mr_series
from orthanc_server import CertificateAuthority, Gateway, Orthanc, gateway, make_ca, start_orthanc

from spineai.cli import EXIT_USER_ERROR, main

HARNESS, RADIOLOGIST = "harness", "radiologist"


@dataclass
class SecurePacs:
    orthanc: Orthanc
    ca: CertificateAuthority
    tls: Gateway  # HTTPS; Orthanc checks the user name and password
    tokens: Gateway  # HTTPS; the gateway checks the bearer token
    password: str
    token: str
    expired_token: str
    series: MRSeries

    @property
    def study(self) -> str:
        return self.series.study_uid


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch, tmp_path):
    for name in (
        "SPINEAI_PACS_USER",
        "SPINEAI_PACS_PASSWORD",
        "SPINEAI_PACS_TOKEN",
        "REQUESTS_CA_BUNDLE",
        "CURL_CA_BUNDLE",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))


@pytest.fixture(scope="module")
def pacs(data_dir, tmp_path_factory) -> SecurePacs:
    base = tmp_path_factory.mktemp("secure-pacs")
    ca = make_ca(base / "ca")
    password, token, expired = (secrets.token_urlsafe(16) for _ in range(3))
    users = {HARNESS: secrets.token_urlsafe(16), RADIOLOGIST: password}
    with start_orthanc(base, users=users) as orthanc:
        series = write_mr_series(data_dir / "sct-testing" / "t2s" / "t2s.nii.gz", base / "ax", description="T2star ax")
        orthanc.upload(series)
        with gateway(orthanc, tls=ca) as tls, gateway(orthanc, tls=ca, token=token, expired_token=expired) as tokens:
            yield SecurePacs(orthanc, ca, tls, tokens, password, token, expired, series)


def run_pacs(capsys, url: str, study: str, out: Path, *options) -> tuple[int, str, str]:
    argv = ["pacs", "--url", url, "--study", study, "--out", out, "--device", "cpu", *options]
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def stored_uids(stdout: str) -> dict[str, str]:
    return {line.split()[2]: line.split()[3] for line in stdout.splitlines() if line.startswith("stored ")}


def config_file(folder: Path, content: dict, mode: int = 0o600) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "pacs.json"
    path.write_text(json.dumps(content))
    path.chmod(mode)
    return path


# --- credentials accepted -------------------------------------------------------------------------


def test_user_and_password_from_the_environment_over_tls_with_the_internal_ca(pacs, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("SPINEAI_PACS_USER", RADIOLOGIST)
    monkeypatch.setenv("SPINEAI_PACS_PASSWORD", pacs.password)
    code, stdout, err = run_pacs(capsys, pacs.tls.dicomweb, pacs.study, tmp_path / "r", "--ca-bundle", pacs.ca.ca)
    assert code == 0, err
    stored = stored_uids(stdout)
    assert set(stored) == {"SEG", "SR"}
    seg = pacs.orthanc.instance(stored["SEG"])
    assert (
        seg.StudyInstanceUID == pacs.study
        and seg.ReferencedSeriesSequence[0].SeriesInstanceUID == pacs.series.series_uid
    )
    assert pacs.password not in stdout + err


def test_lesion_results_reach_the_pacs_with_credentials_from_an_owner_only_config_file(pacs, tmp_path, capsys):
    """A config file (mode 600) naming the user, password and CA bundle; the lesion task's SEG and SR."""
    config = config_file(
        tmp_path / "cfg", {"user": RADIOLOGIST, "password": pacs.password, "ca_bundle": str(pacs.ca.ca)}
    )
    out = tmp_path / "r"
    code, stdout, err = run_pacs(
        capsys, pacs.tls.dicomweb, pacs.study, out, "--task", "lesion", "--pacs-config", config
    )
    assert code == 0, err
    stored = stored_uids(stdout)
    sr = pacs.orthanc.instance(stored["SR"])
    local = pydicom.dcmread(out / f"{pacs.series.series_uid}_lesion_sr.dcm")
    assert sr.SOPInstanceUID == local.SOPInstanceUID and sr.SeriesDescription == "SpineAI spinal cord injury lesion"
    segments = [s.SegmentLabel for s in pacs.orthanc.instance(stored["SEG"]).SegmentSequence]
    assert segments == ["Spinal cord", "Spinal cord injury lesion"]


def test_bearer_token_from_the_environment(pacs, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("SPINEAI_PACS_TOKEN", pacs.token)
    before = len(pacs.tokens.seen)
    code, stdout, err = run_pacs(capsys, pacs.tokens.dicomweb, pacs.study, tmp_path / "r", "--ca-bundle", pacs.ca.ca)
    assert code == 0, err
    assert set(stored_uids(stdout)) == {"SEG", "SR"}
    passed = pacs.tokens.seen[before:]
    assert any(r.startswith("GET /dicom-web/studies/") for r in passed)
    assert any(r.startswith("POST /dicom-web/studies/") for r in passed)  # STOW-RS went through the token check


# --- credentials refused: one line, exit 2, nothing stored ----------------------------------------


def assert_refused(pacs: SecurePacs, code: int, stdout: str, err: str, out: Path, before: list[str]) -> str:
    assert code == EXIT_USER_ERROR and stdout == ""
    assert err.count("\n") == 1 and err.startswith("spineai: error: ")
    assert not out.exists()
    assert pacs.orthanc.study_instances(pacs.study) == before  # nothing stored
    return err


def test_wrong_password_is_one_line_exit_2_and_nothing_stored(pacs, tmp_path, capsys, monkeypatch):
    before = pacs.orthanc.study_instances(pacs.study)
    monkeypatch.setenv("SPINEAI_PACS_USER", RADIOLOGIST)
    monkeypatch.setenv("SPINEAI_PACS_PASSWORD", "not-" + pacs.password)
    out = tmp_path / "r"
    code, stdout, err = run_pacs(capsys, pacs.tls.dicomweb, pacs.study, out, "--ca-bundle", pacs.ca.ca)
    assert_refused(pacs, code, stdout, err, out, before)
    assert err == (
        f"spineai: error: {pacs.tls.dicomweb}: the PACS refused the user name and password from "
        "SPINEAI_PACS_USER and SPINEAI_PACS_PASSWORD (HTTP 401 Unauthorized) when asked to search the study\n"
    )
    assert pacs.password not in err


def test_expired_token_is_one_line_exit_2_and_nothing_stored(pacs, tmp_path, capsys):
    before = pacs.orthanc.study_instances(pacs.study)
    config = config_file(tmp_path / "cfg", {"token": pacs.expired_token})
    out = tmp_path / "r"
    options = ("--pacs-config", config, "--ca-bundle", pacs.ca.ca)
    code, stdout, err = run_pacs(capsys, pacs.tokens.dicomweb, pacs.study, out, *options)
    assert_refused(pacs, code, stdout, err, out, before)
    assert err == (
        f"spineai: error: {pacs.tokens.dicomweb}: the PACS refused the token from {config} "
        "(HTTP 401 Unauthorized: The access token expired) when asked to search the study\n"
    )
    assert pacs.expired_token not in err


def test_no_credentials_says_how_to_give_them(pacs, tmp_path, capsys):
    before = pacs.orthanc.study_instances(pacs.study)
    out = tmp_path / "r"
    code, stdout, err = run_pacs(capsys, pacs.tls.dicomweb, pacs.study, out, "--ca-bundle", pacs.ca.ca)
    assert_refused(pacs, code, stdout, err, out, before)
    assert err == (
        f"spineai: error: {pacs.tls.dicomweb}: the PACS asks for credentials (HTTP 401 Unauthorized) when asked "
        "to search the study; set SPINEAI_PACS_USER and SPINEAI_PACS_PASSWORD, or SPINEAI_PACS_TOKEN, "
        "or give --pacs-config\n"
    )


def test_tls_without_the_internal_ca_is_one_line_exit_2(pacs, tmp_path, capsys, monkeypatch):
    before = pacs.orthanc.study_instances(pacs.study)
    monkeypatch.setenv("SPINEAI_PACS_USER", RADIOLOGIST)
    monkeypatch.setenv("SPINEAI_PACS_PASSWORD", pacs.password)
    out = tmp_path / "r"
    code, stdout, err = run_pacs(capsys, pacs.tls.dicomweb, pacs.study, out)
    assert_refused(pacs, code, stdout, err, out, before)
    assert err == (
        f"spineai: error: {pacs.tls.dicomweb}: TLS failure when asked to search the study (certificate verify "
        "failed: unable to get local issuer certificate); if it uses an internal CA, give it with --ca-bundle\n"
    )


def test_tls_with_another_ca_is_one_line_exit_2(pacs, tmp_path, capsys, monkeypatch):
    before = pacs.orthanc.study_instances(pacs.study)
    other = make_ca(tmp_path / "other", "Another CA")
    monkeypatch.setenv("SPINEAI_PACS_TOKEN", pacs.token)
    out = tmp_path / "r"
    code, stdout, err = run_pacs(capsys, pacs.tokens.dicomweb, pacs.study, out, "--ca-bundle", other.ca)
    assert_refused(pacs, code, stdout, err, out, before)
    assert "TLS failure when asked to search the study (certificate verify failed" in err
    assert err.endswith("; check the CA bundle given\n")


# --- bad settings: refused before any request -----------------------------------------------------


@pytest.mark.parametrize(
    ("content", "mode", "problem"),
    [
        (
            {"token": "x"},
            0o644,
            "holds PACS credentials but other users may read or change it (mode 644); run: chmod 600",
        ),
        ({"token": "x"}, 0o640, "other users may read or change it (mode 640)"),
        ({"user": RADIOLOGIST}, 0o600, "HTTP basic authentication needs both 'user' and 'password'"),
        ({"token": "x", "password": "y", "user": "z"}, 0o600, "give either a token or a user and password, not both"),
        ({"token": "x", "server": "y"}, 0o600, "unknown key(s) server"),
    ],
)
def test_bad_config_file_is_refused_before_any_request(pacs, tmp_path, capsys, content, mode, problem):
    config = config_file(tmp_path / "cfg", content, mode)
    before = len(pacs.tls.seen)
    out = tmp_path / "r"
    code, stdout, err = run_pacs(capsys, pacs.tls.dicomweb, pacs.study, out, "--pacs-config", config)
    assert code == EXIT_USER_ERROR and err.count("\n") == 1 and stdout == ""
    assert err.startswith(f"spineai: error: {config}: ") and problem in err
    assert len(pacs.tls.seen) == before and not out.exists()


def test_default_config_file_is_used_and_checked(pacs, tmp_path, capsys, monkeypatch):
    """~/.config/spineai/pacs.json ($XDG_CONFIG_HOME) when neither --pacs-config nor the environment gives any."""
    folder = tmp_path / "config" / "spineai"
    config = config_file(folder, {"token": pacs.expired_token}, 0o604)
    code, _, err = run_pacs(capsys, pacs.tokens.dicomweb, pacs.study, tmp_path / "r", "--ca-bundle", pacs.ca.ca)
    assert code == EXIT_USER_ERROR and err.startswith(f"spineai: error: {config}: holds PACS credentials")
    config.chmod(0o600)
    code, _, err = run_pacs(capsys, pacs.tokens.dicomweb, pacs.study, tmp_path / "r", "--ca-bundle", pacs.ca.ca)
    assert code == EXIT_USER_ERROR and f"the PACS refused the token from {config}" in err


@pytest.mark.parametrize(
    ("variables", "problem"),
    [
        ({"SPINEAI_PACS_USER": RADIOLOGIST}, "SPINEAI_PACS_USER is set but SPINEAI_PACS_PASSWORD is not"),
        ({"SPINEAI_PACS_TOKEN": "x", "SPINEAI_PACS_USER": "y"}, "set either SPINEAI_PACS_TOKEN or SPINEAI_PACS_USER"),
    ],
)
def test_incomplete_environment_is_refused(pacs, tmp_path, capsys, monkeypatch, variables, problem):
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    code, _, err = run_pacs(capsys, pacs.tls.dicomweb, pacs.study, tmp_path / "r")
    assert code == EXIT_USER_ERROR and err.startswith(f"spineai: error: {problem}") and err.count("\n") == 1


BAD_BUNDLES = [("missing.pem", None, "CA bundle not found"), ("notes.txt", "no certificate", "not a CA bundle")]


@pytest.mark.parametrize(("name", "text", "problem"), BAD_BUNDLES)
def test_bad_ca_bundle_is_refused(pacs, tmp_path, capsys, name, text, problem):
    bundle = tmp_path / name
    if text is not None:
        bundle.write_text(text)
    code, _, err = run_pacs(capsys, pacs.tls.dicomweb, pacs.study, tmp_path / "r", "--ca-bundle", bundle)
    assert code == EXIT_USER_ERROR and err.startswith(f"spineai: error: {bundle}: {problem}") and err.count("\n") == 1


def test_credentials_are_not_a_command_line_option(pacs, tmp_path):
    """Other users see a process's arguments (ps): there is no option to give a password or token."""
    for option in ("--password", "--token", "--user"):
        with pytest.raises(SystemExit) as exit_info:
            main(["pacs", "--url", pacs.tls.dicomweb, "--study", pacs.study, "--out", str(tmp_path), option, "x"])
        assert exit_info.value.code == 2


def test_credentials_over_plain_http_beyond_loopback_are_warned_about():
    from spineai.dicom.credentials import pacs_access

    access = pacs_access(environ={"SPINEAI_PACS_TOKEN": "x", "HOME": "/nonexistent"})
    assert access.kind == "token" and "BearerAuth(<token>)" == repr(access.auth)  # never the token itself
    assert "without TLS" in access.plain_http_warning("http://pacs.example.org:8042/dicom-web")
    for url in ("https://pacs.example.org/dicom-web", "http://127.0.0.1:8042/dicom-web", "http://localhost/dicom-web"):
        assert access.plain_http_warning(url) is None
