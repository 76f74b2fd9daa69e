"""The engine in a separate process, so Slicer stays responsive and Cancel stops it at once.

``EngineProcess.start`` launches ``EngineWorker.py`` with Slicer's Python (``PythonSlicer``, or the
current interpreter outside Slicer); a reader thread moves the worker's stdout lines into a queue,
and ``events()`` hands them over without blocking, to be called from a timer on the main thread.
``cancel()`` terminates the process (killing it if it does not stop within a few seconds).
"""

from __future__ import annotations

import json
import os
import queue
import shutil
import subprocess
import sys
import threading
from pathlib import Path

WORKER = Path(__file__).resolve().parent / "EngineWorker.py"
MODULE_DIR = Path(__file__).resolve().parent.parent  # holds SpineAILib and the engine package spineai


def pythonExecutable() -> str:
    """Slicer's stand-alone Python launcher inside Slicer, else this interpreter."""
    return shutil.which("PythonSlicer") or sys.executable


class EngineProcess:
    def __init__(self, python: str | None = None):
        self.python = python or pythonExecutable()
        self._process: subprocess.Popen | None = None
        self._lines: queue.Queue[str] = queue.Queue()
        self._reader: threading.Thread | None = None

    def start(
        self, inputPath: Path, outputPath: Path, task: str, device: str, source: str, levels: Path | None = None
    ) -> None:
        """``levels``: the stenosis task's disc levels, a JSON list of the engine's level records."""
        environment = dict(os.environ)
        environment["PYTHONPATH"] = os.pathsep.join(filter(None, [str(MODULE_DIR), environment.get("PYTHONPATH")]))
        environment["PYTHONUNBUFFERED"] = "1"
        command = [
            self.python,
            str(WORKER),
            str(inputPath),
            str(outputPath),
            "--task",
            task,
            "--device",
            device,
            "--source",
            source,
        ]
        if levels is not None:
            command += ["--levels", str(levels)]
        self._process = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=environment, bufsize=1
        )
        self._reader = threading.Thread(target=self._read, args=(self._process.stdout,), daemon=True)
        self._reader.start()

    def _read(self, stream) -> None:
        for line in stream:
            self._lines.put(line)
        stream.close()

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    @property
    def exitCode(self) -> int | None:
        return None if self._process is None else self._process.poll()

    def events(self) -> list[dict]:
        """Events reported since the last call; lines that are not events come as {"log": line}.

        Once the process has ended, waits for the reader so that no line is lost.
        """
        if self._reader is not None and not self.running:
            self._reader.join(timeout=5)
        events = []
        while True:
            try:
                line = self._lines.get_nowait().strip()
            except queue.Empty:
                return events
            if line:
                events.append(_parse(line))

    def cancel(self, graceSeconds: float = 3.0) -> None:
        if not self.running:
            return
        self._process.terminate()
        try:
            self._process.wait(graceSeconds)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()


def _parse(line: str) -> dict:
    try:
        event = json.loads(line)
    except json.JSONDecodeError:
        return {"log": line}
    return event if isinstance(event, dict) else {"log": line}
