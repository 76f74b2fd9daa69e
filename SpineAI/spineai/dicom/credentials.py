"""How SpineAI authenticates to a DICOMweb PACS: HTTP basic or a bearer token, and which CA to trust.

Credentials are never taken from a command-line argument (``ps`` shows those to every user of the
machine). They come, first match wins, from:

1. ``--pacs-config PATH``: a JSON file;
2. the environment: ``SPINEAI_PACS_USER`` and ``SPINEAI_PACS_PASSWORD`` (HTTP basic), or
   ``SPINEAI_PACS_TOKEN`` (``Authorization: Bearer <token>``);
3. ``$XDG_CONFIG_HOME/spineai/pacs.json`` (default ``~/.config/spineai/pacs.json``) if it exists;
4. none: the PACS is asked without credentials.

The JSON file holds ``{"user": ..., "password": ...}`` or ``{"token": ...}``, and optionally
``"ca_bundle": "/path/ca.pem"``. Because it holds secrets it must be a regular file owned by the user
and readable by nobody else (mode 600 or 400); otherwise it is refused. ``--ca-bundle PATH`` (or the
file's ``ca_bundle``) names the PEM certificates that a PACS with an internal CA is verified against.

Every problem is a one-line ``SpineAIError`` that names the file or variable and never the secret.
"""

from __future__ import annotations

import ipaddress
import json
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import requests

from ..errors import SpineAIError

ENV_USER, ENV_PASSWORD, ENV_TOKEN = "SPINEAI_PACS_USER", "SPINEAI_PACS_PASSWORD", "SPINEAI_PACS_TOKEN"
CONFIG_KEYS = {"user", "password", "token", "ca_bundle"}


class BearerAuth(requests.auth.AuthBase):
    """``Authorization: Bearer <token>`` on every request (requests drops it on a redirect to another host)."""

    def __init__(self, token: str) -> None:
        self.token = token

    def __call__(self, request):
        request.headers["Authorization"] = f"Bearer {self.token}"
        return request

    def __repr__(self) -> str:  # never the token itself, in a traceback or a log
        return "BearerAuth(<token>)"


@dataclass(frozen=True)
class PacsAccess:
    """How to reach one PACS: ``kind`` "basic", "token" or None, where the credentials came from (a
    file or variable names, never their values), and what ``requests`` verifies TLS against."""

    auth: requests.auth.AuthBase | None
    kind: str | None
    source: str
    verify: str | bool

    def session(self) -> requests.Session:
        session = requests.Session()
        session.auth = self.auth
        session.verify = self.verify
        return session

    def plain_http_warning(self, url: str) -> str | None:
        """A warning when credentials would cross a network unencrypted (http:// to a host that is not loopback)."""
        parts = urlsplit(url)
        if self.auth is None or parts.scheme != "http" or is_loopback(parts.hostname or ""):
            return None
        return f"{url}: sending PACS credentials without TLS; use https:// outside a trusted network"


def pacs_access(config_path: Path | str | None = None, ca_bundle: Path | str | None = None, environ=None) -> PacsAccess:
    """The credentials and CA to use (see the module's docstring for the order)."""
    environ = os.environ if environ is None else environ
    if config_path is not None:
        settings, source = read_config(Path(config_path).expanduser()), str(config_path)
    elif any(environ.get(name) for name in (ENV_USER, ENV_PASSWORD, ENV_TOKEN)):
        settings, source = from_environment(environ)
    elif default_config_path(environ).is_file():
        path = default_config_path(environ)
        settings, source = read_config(path), str(path)
    else:
        settings, source = {}, ""
    auth, kind = credentials(settings, source)
    bundle = ca_bundle if ca_bundle is not None else settings.get("ca_bundle")
    return PacsAccess(auth, kind, source, check_ca_bundle(Path(bundle).expanduser()) if bundle else True)


def default_config_path(environ=None) -> Path:
    environ = os.environ if environ is None else environ
    base = environ.get("XDG_CONFIG_HOME") or str(Path(environ.get("HOME") or Path.home()) / ".config")
    return Path(base) / "spineai" / "pacs.json"


def from_environment(environ) -> tuple[dict, str]:
    user, password, token = (environ.get(name) or "" for name in (ENV_USER, ENV_PASSWORD, ENV_TOKEN))
    if token and (user or password):
        raise SpineAIError(f"set either {ENV_TOKEN} or {ENV_USER} and {ENV_PASSWORD}, not both")
    if token:
        return {"token": token}, ENV_TOKEN
    if not user or not password:
        given, missing = (ENV_USER, ENV_PASSWORD) if user else (ENV_PASSWORD, ENV_USER)
        raise SpineAIError(f"{given} is set but {missing} is not; set both for HTTP basic authentication")
    return {"user": user, "password": password}, f"{ENV_USER} and {ENV_PASSWORD}"


def read_config(path: Path) -> dict:
    """The settings of a PACS config file, which must be owner-only (it holds secrets)."""
    try:
        info = path.stat()
    except FileNotFoundError:
        raise SpineAIError(f"{path}: PACS config file not found") from None
    except OSError as error:
        raise SpineAIError(f"{path}: cannot read the PACS config file ({error.strerror})") from None
    if not stat.S_ISREG(info.st_mode):
        raise SpineAIError(f"{path}: the PACS config is not a regular file")
    if hasattr(os, "getuid") and info.st_uid != os.getuid():
        raise SpineAIError(f"{path}: holds PACS credentials but belongs to another user; use a file of your own")
    if info.st_mode & 0o077:
        mode = stat.S_IMODE(info.st_mode)
        raise SpineAIError(
            f"{path}: holds PACS credentials but other users may read or change it (mode {mode:03o}); "
            f"run: chmod 600 {path}"
        )
    try:
        settings = json.loads(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise SpineAIError(f"{path}: cannot read the PACS config file ({error.strerror})") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        where = f" (line {error.lineno})" if isinstance(error, json.JSONDecodeError) else ""
        raise SpineAIError(f"{path}: the PACS config file is not valid JSON{where}") from None
    if not isinstance(settings, dict):
        raise SpineAIError(f"{path}: the PACS config file must hold a JSON object")
    unknown = sorted(set(settings) - CONFIG_KEYS)
    if unknown:
        raise SpineAIError(f"{path}: unknown key(s) {', '.join(unknown)}; allowed: {', '.join(sorted(CONFIG_KEYS))}")
    if any(not isinstance(value, str) or not value for value in settings.values()):
        raise SpineAIError(f"{path}: every value must be a non-empty string")
    return settings


def credentials(settings: dict, source: str) -> tuple[requests.auth.AuthBase | None, str | None]:
    user, password, token = settings.get("user"), settings.get("password"), settings.get("token")
    if token and (user or password):
        raise SpineAIError(f"{source}: give either a token or a user and password, not both")
    if token:
        return BearerAuth(token), "token"
    if user or password:
        if not (user and password):
            raise SpineAIError(f"{source}: HTTP basic authentication needs both 'user' and 'password'")
        return requests.auth.HTTPBasicAuth(user, password), "basic"
    return None, None


def check_ca_bundle(path: Path) -> str:
    """The path of a readable PEM file holding at least one certificate."""
    try:
        text = path.read_text(encoding="ascii", errors="replace")
    except FileNotFoundError:
        raise SpineAIError(f"{path}: CA bundle not found") from None
    except OSError as error:
        raise SpineAIError(f"{path}: cannot read the CA bundle ({error.strerror})") from None
    if "-----BEGIN CERTIFICATE-----" not in text:
        raise SpineAIError(f"{path}: not a CA bundle: no PEM certificate in it")
    return str(path)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
