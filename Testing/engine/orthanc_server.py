"""A real Orthanc with its DICOMweb plugin, started by a test on loopback, and what goes with it:
registered users (HTTP basic, checked by Orthanc itself), a test CA with a server certificate, and a
small gateway in front of Orthanc for TLS and for bearer tokens.

Why a gateway: Debian 12's Orthanc 1.10.1 crashes (SIGSEGV in a civetweb worker thread, seen in gdb)
on every HTTPS connection when ``SslEnabled`` is on: libcivetweb1 1.15 resolves
``SSL_get_peer_certificate`` at run time, a symbol that OpenSSL 3's libssl.so.3 no longer exports
(it has ``SSL_get1_peer_certificate``), and calls the null pointer. And Orthanc checks no bearer
tokens without its authorization plugin and a token service. So TLS is terminated, and tokens are
checked, in a Python ``http.server`` on loopback that forwards each request to Orthanc, as a
hospital's reverse proxy would.

``start_orthanc`` writes a temporary configuration (free HTTP port on 127.0.0.1, DICOM server off,
remote access off, storage in the test's folder, the DICOMweb plugin found through dpkg), starts
``Orthanc`` as a subprocess, waits until ``/system`` answers and stops it at the end; a system-wide
Orthanc service, running or not, plays no part. Studies are uploaded through Orthanc's own REST API,
not through the code under test.
"""

from __future__ import annotations

import http.server
import json
import shutil
import socket
import ssl
import subprocess
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from io import BytesIO
from pathlib import Path

import pydicom
import pytest
import requests
from dicom_series import MRSeries

STARTUP_SECONDS = 30


@dataclass
class Orthanc:
    url: str  # REST root
    auth: tuple[str, str] | None = None  # a registered user, for the test's own REST calls
    log: Path | None = None

    @property
    def dicomweb(self) -> str:
        return f"{self.url}/dicom-web"

    def rest(self, method: str, path: str, **kwargs) -> requests.Response:
        response = requests.request(method, f"{self.url}{path}", auth=self.auth, timeout=20, **kwargs)
        response.raise_for_status()
        return response

    def upload(self, series: MRSeries) -> None:
        for path in series.files:
            self.rest("POST", "/instances", data=path.read_bytes())

    def find(self, level: str, query: dict) -> list[str]:
        return self.rest("POST", "/tools/find", json={"Level": level, "Query": query}).json()

    def instance(self, sop_instance_uid: str) -> pydicom.Dataset:
        """The stored instance with this SOPInstanceUID, as Orthanc serves its file."""
        (found,) = self.find("Instance", {"SOPInstanceUID": sop_instance_uid})
        return pydicom.dcmread(BytesIO(self.rest("GET", f"/instances/{found}/file").content))

    def study_instances(self, study_uid: str) -> list[str]:
        """Orthanc ids of every instance of the study (to tell that nothing was stored)."""
        return self.find("Instance", {"StudyInstanceUID": study_uid})


def dicomweb_plugin() -> Path | None:
    """The plugin library that the Debian package orthanc-dicomweb installed."""
    listing = subprocess.run(["dpkg", "-L", "orthanc-dicomweb"], capture_output=True, text=True)
    for line in listing.stdout.splitlines():
        if "/plugins/" in line and Path(line).name.startswith("libOrthancDicomWeb") and Path(line).is_file():
            return Path(line)
    return None


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def orthanc_config(storage: Path, port: int, plugin: Path) -> dict:
    return {
        "Name": "spineai-test",
        "StorageDirectory": str(storage),
        "IndexDirectory": str(storage),
        "HttpPort": port,
        "DicomServerEnabled": False,
        "DicomPort": free_port(),  # unused while the DICOM server is off, but never a port in use
        "RemoteAccessAllowed": False,
        "AuthenticationEnabled": False,
        "Plugins": [str(plugin)],
        "DicomWeb": {"Enable": True, "Root": "/dicom-web/"},
    }


@contextmanager
def start_orthanc(folder: Path, users: dict[str, str] | None = None):
    """Orthanc on a free loopback port (HTTP); with ``users`` its authentication is on (HTTP basic), and
    the test's own REST calls use the first user."""
    binary = shutil.which("Orthanc") or shutil.which("Orthanc", path="/usr/sbin:/usr/local/sbin")  # Debian: sbin
    plugin = dicomweb_plugin()
    if binary is None or plugin is None:
        pytest.fail("the PACS tests need Orthanc and its DICOMweb plugin: apt-get install orthanc orthanc-dicomweb")
    port = free_port()
    config = orthanc_config(folder / "storage", port, plugin)
    if users:
        config |= {"AuthenticationEnabled": True, "RegisteredUsers": users}
    (folder / "orthanc.json").write_text(json.dumps(config, indent=2))
    log_path = folder / "orthanc.log"
    server = Orthanc(f"http://127.0.0.1:{port}", auth=next(iter(users.items())) if users else None, log=log_path)
    with open(log_path, "w") as log:
        process = subprocess.Popen(
            [binary, str(folder / "orthanc.json")], stdout=log, stderr=subprocess.STDOUT, cwd=folder
        )
        try:
            wait_until_answering(server, process, log_path)
            yield server
        finally:
            process.terminate()
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def wait_until_answering(server: Orthanc, process: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"Orthanc exited with status {process.returncode}:\n{log.read_text()[-2000:]}")
        try:
            if requests.get(f"{server.url}/system", auth=server.auth, timeout=1).ok:
                return
        except requests.ConnectionError:
            time.sleep(0.2)
    pytest.fail(f"Orthanc did not answer within {STARTUP_SECONDS} s:\n{log.read_text()[-2000:]}")


# --- TLS: a CA and a server certificate made by the test --------------------------------------------


@dataclass
class CertificateAuthority:
    ca: Path  # the CA certificate (what --ca-bundle names)
    certificate: Path  # the server's certificate for 127.0.0.1, signed by the CA
    key: Path


def make_ca(folder: Path, name: str = "SpineAI test CA") -> CertificateAuthority:
    """A CA and a certificate for 127.0.0.1 signed by it, made with the openssl command (2 days valid)."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.fail("the TLS tests need the openssl command: apt-get install openssl")
    folder.mkdir(parents=True, exist_ok=True)

    def run(*args: str) -> None:
        subprocess.run([openssl, *args], check=True, capture_output=True, cwd=folder)

    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
        "-subj", f"/CN={name}", "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign")  # fmt: skip
    run("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=127.0.0.1")
    (folder / "server.ext").write_text(
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=critical,CA:FALSE\n"
        "keyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n"
        "subjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n"
    )
    run("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
        "-out", "server.crt", "-days", "2", "-extfile", "server.ext")  # fmt: skip
    return CertificateAuthority(folder / "ca.pem", folder / "server.crt", folder / "server.key")


# --- the gateway: TLS and bearer tokens in front of Orthanc ----------------------------------------


@dataclass
class Gateway:
    url: str
    seen: list[str] = field(default_factory=list)  # "METHOD path" of every request passed on to Orthanc

    @property
    def dicomweb(self) -> str:
        return f"{self.url}/dicom-web"


EXPIRED_CHALLENGE = 'Bearer realm="pacs", error="invalid_token", error_description="The access token expired"'
HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "proxy-authorization"}


@contextmanager
def gateway(
    orthanc: Orthanc,
    tls: CertificateAuthority | None = None,
    token: str | None = None,
    expired_token: str | None = None,
):
    """A loopback gateway that passes every request on to ``orthanc``.

    With ``tls`` it speaks HTTPS with the CA's server certificate. Without ``token`` it passes the
    client's Authorization header through, so Orthanc checks the user name and password itself. With
    ``token`` it is a bearer-token proxy: ``token`` passes (as Orthanc's first user), ``expired_token``
    gets 401 invalid_token "The access token expired" (as RFC 6750 servers say it), anything else 401
    asking for a token.
    """
    record = Gateway("")

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):  # quiet
            pass

        def body(self) -> bytes:
            if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                chunks = []
                while True:
                    size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                    if size == 0:
                        self.rfile.readline()
                        return b"".join(chunks)
                    chunks.append(self.rfile.read(size))
                    self.rfile.readline()
            return self.rfile.read(int(self.headers.get("Content-Length") or 0))

        def refuse(self, challenge: str) -> None:
            self.send_response(401, "Unauthorized")
            self.send_header("WWW-Authenticate", challenge)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def forward(self) -> None:
            body = self.body()
            headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP | {"host"}}
            auth = None
            if token is not None:
                given = headers.pop("Authorization", "")
                if expired_token is not None and given == f"Bearer {expired_token}":
                    return self.refuse(EXPIRED_CHALLENGE)
                if given != f"Bearer {token}":
                    return self.refuse('Bearer realm="pacs"')
                auth = orthanc.auth
            answer = requests.request(
                self.command, f"{orthanc.url}{self.path}", data=body or None, headers=headers, auth=auth, timeout=60
            )
            record.seen.append(f"{self.command} {self.path}")
            self.send_response(answer.status_code, answer.reason)
            for key, value in answer.headers.items():
                if key.lower() not in HOP_BY_HOP | {"content-length", "content-encoding"}:
                    self.send_header(key, value)
            self.send_header("Content-Length", str(len(answer.content)))
            self.end_headers()
            self.wfile.write(answer.content)

        do_GET = do_POST = do_PUT = do_DELETE = forward

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    if tls is not None:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(tls.certificate, tls.key)
        server.socket = context.wrap_socket(server.socket, server_side=True)
    record.url = f"{'https' if tls else 'http'}://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield record
    finally:
        server.shutdown()
        server.server_close()
