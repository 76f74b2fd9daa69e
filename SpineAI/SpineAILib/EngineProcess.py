"""Processes that run beside Slicer (the engine, pip), read without blocking and stopped as a whole tree.

``BackgroundProcess.start`` launches a command with its output piped; a reader thread moves the
lines into a queue, and ``lines()`` / ``events()`` hand them over without blocking, to be called
from a timer on the main thread. ``EngineProcess`` runs ``EngineWorker.py`` (a segmentation) or
``FineTuneWorker.py`` (a fine-tune on the site's corrections) with Slicer's Python.

Inside Slicer that Python is the ``PythonSlicer`` *launcher*, which starts the real interpreter as
its child: terminating the launcher alone would leave the engine computing and holding (GPU)
memory. So every process starts as the leader of its own process group (POSIX) or process group
and job of its own (Windows), and ``cancel()`` stops the whole tree: SIGTERM to the group, then
SIGKILL after a grace period (POSIX); ``taskkill /T /F`` (Windows). On Windows the console window
is hidden. The engine runs in Slicer's startup environment (``slicer.util.startupEnvironment``:
the environment before the launcher added Slicer's paths, which PythonSlicer adds again itself).
"""

from __future__ import annotations

import enum
import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import threading
from pathlib import Path

WORKER = Path(__file__).resolve().parent / "EngineWorker.py"
FINETUNE_WORKER = Path(__file__).resolve().parent / "FineTuneWorker.py"
MODULE_DIR = Path(__file__).resolve().parent.parent  # holds SpineAILib and the engine package spineai

# Windows process creation flags (winbase.h); named here because subprocess defines them only on Windows.
CREATE_NEW_PROCESS_GROUP = 0x00000200
CREATE_NO_WINDOW = 0x08000000


class JobState(enum.Enum):
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"


def pythonCommand() -> list[str]:
    """Slicer's stand-alone Python launcher inside Slicer, else this interpreter."""
    return [shutil.which("PythonSlicer") or sys.executable]


def slicerStartupEnvironment() -> dict[str, str]:
    """The environment Slicer was started with (inside Slicer), else this process's environment."""
    try:
        import slicer.util

        return dict(slicer.util.startupEnvironment())
    except Exception:  # not inside the Slicer application (no slicer.app): nothing was added
        return dict(os.environ)


def popenOptions(platform: str = sys.platform) -> dict:
    """Options for subprocess.Popen that make the child the root of a tree ``killTree`` can stop.

    Windows: a new process group and no console window (a console program started from a GUI
    application otherwise opens one). Elsewhere: a new session, so the child leads its own process group.
    """
    if platform == "win32":
        options = {"creationflags": CREATE_NEW_PROCESS_GROUP | CREATE_NO_WINDOW}
        if hasattr(subprocess, "STARTUPINFO"):
            startupInfo = subprocess.STARTUPINFO()
            startupInfo.dwFlags |= subprocess.STARTF_USESHOWWINDOW
            startupInfo.wShowWindow = 0  # SW_HIDE
            options["startupinfo"] = startupInfo
        return options
    return {"start_new_session": True}


def killTree(process: subprocess.Popen, graceSeconds: float = 3.0) -> None:
    """Stop ``process`` and everything it started (launcher, interpreter, its workers)."""
    if sys.platform == "win32":
        subprocess.run(
            ["taskkill", "/PID", str(process.pid), "/T", "/F"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            creationflags=CREATE_NO_WINDOW,
            check=False,
        )
        process.wait()
        return
    _signalGroup(process.pid, signal.SIGTERM)
    try:
        process.wait(graceSeconds)
    except subprocess.TimeoutExpired:
        pass
    # Whether or not the leader stopped, children may still run in its group: make sure they stop.
    _signalGroup(process.pid, signal.SIGKILL)
    process.wait()


def _signalGroup(groupId: int, signalNumber: int) -> None:
    try:
        os.killpg(groupId, signalNumber)
    except (ProcessLookupError, PermissionError):  # the whole group has already gone
        pass


class BackgroundProcess:
    """One command beside Slicer, its stdout and stderr read line by line without blocking."""

    def __init__(self):
        self._process: subprocess.Popen | None = None
        self._lines: queue.Queue[str] = queue.Queue()
        self._reader: threading.Thread | None = None

    def startCommand(self, command: list[str], environment: dict[str, str] | None = None) -> None:
        self._process = subprocess.Popen(
            command,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            text=True,
            encoding="utf-8",
            errors="replace",
            env=environment,
            bufsize=1,
            **popenOptions(),
        )
        self._reader = threading.Thread(target=self._read, args=(self._process.stdout,), daemon=True)
        self._reader.start()

    def _read(self, stream) -> None:
        for line in stream:
            self._lines.put(line)
        stream.close()

    @property
    def pid(self) -> int | None:
        return None if self._process is None else self._process.pid

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    @property
    def exitCode(self) -> int | None:
        return None if self._process is None else self._process.poll()

    def lines(self) -> list[str]:
        """Output lines since the last call (stripped, empty ones dropped); once the process has
        ended, waits for the reader so that no line is lost."""
        if self._reader is not None and not self.running:
            self._reader.join(timeout=5)
        lines = []
        while True:
            try:
                line = self._lines.get_nowait().strip()
            except queue.Empty:
                return lines
            if line:
                lines.append(line)

    def cancel(self, graceSeconds: float = 3.0) -> None:
        if self.running:
            killTree(self._process, graceSeconds)


class EngineProcess(BackgroundProcess):
    """A worker script of the module with Slicer's Python, reporting JSON events line by line."""

    def __init__(self, python: list[str] | str | None = None):
        super().__init__()
        python = python or pythonCommand()
        self.python = [python] if isinstance(python, str) else list(python)

    def start(
        self,
        inputPath: Path,
        outputPath: Path,
        task: str,
        device: str,
        source: str,
        levels: Path | None = None,
        model: Path | None = None,
    ) -> None:
        """Segment: ``levels``: the stenosis task's disc levels, a JSON list of the engine's level
        records; ``model``: a site model folder of the task instead of the shipped model."""
        arguments = [str(inputPath), str(outputPath), "--task", task, "--device", device, "--source", source]
        if levels is not None:
            arguments += ["--levels", str(levels)]
        if model is not None:
            arguments += ["--model", str(model)]
        self.startScript(WORKER, arguments)

    def startFineTune(self, site: Path, outDir: Path, task: str, minutes: float, device: str) -> None:
        """Fine-tune the task's shipped model on the site's corrected cases into the new folder ``outDir``."""
        arguments = [str(site), str(outDir), "--task", task, "--minutes", repr(float(minutes)), "--device", device]
        self.startScript(FINETUNE_WORKER, arguments)

    def startScript(self, script: Path, arguments: list[str]) -> None:
        """``script`` in Slicer's startup environment, with the module folder (SpineAILib, spineai) importable."""
        environment = slicerStartupEnvironment()
        environment["PYTHONPATH"] = os.pathsep.join(filter(None, [str(MODULE_DIR), environment.get("PYTHONPATH")]))
        environment["PYTHONUNBUFFERED"] = "1"
        self.startCommand([*self.python, str(script), *arguments], environment)

    def events(self) -> list[dict]:
        """Events reported since the last call; lines that are not events come as {"log": line}."""
        return [_parse(line) for line in self.lines()]


def _parse(line: str) -> dict:
    try:
        event = json.loads(line)
    except json.JSONDecodeError:
        return {"log": line}
    return event if isinstance(event, dict) else {"log": line}
