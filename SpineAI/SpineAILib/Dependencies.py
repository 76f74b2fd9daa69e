"""Installing the engine's Python packages inside Slicer: asked for first, run in the background.

Two stages, each a requirements file in ``Resources``:

- ``requirements.txt``: what segmenting and measuring need, installed on the first click that needs
  them (a Segment button, Update measurements);
- ``requirements-training.txt``: what fine-tuning needs on top (torch), installed only when the
  user first fine-tunes (``SpineAILogic.ensureTrainingPackages``).

Every package goes through pip (``python -m pip install``, with Slicer's own Python) under a
constraints file that pins the numpy and SimpleITK Slicer ships, so pip fails rather than replace
them. torch is the exception when the PyTorch extension is installed: then it is installed as that
extension does, with light-the-torch, which picks the build that fits the computer's NVIDIA driver;
without it pip installs PyPI's torch. The commands run one after the other in a background process
(``InstallJob``, polled from the panel's timer like a segmentation run), so Slicer stays responsive,
the panel shows which step runs and pip's last line, and Cancel stops pip.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import logging
import re
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from spineai.errors import Cancelled, SpineAIError

from .EngineProcess import BackgroundProcess, JobState, pythonCommand
from .Signal import Signal

RESOURCES = Path(__file__).resolve().parent.parent / "Resources"
REQUIREMENTS_TXT = RESOURCES / "requirements.txt"
TRAINING_REQUIREMENTS_TXT = RESOURCES / "requirements-training.txt"
# Slicer's own packages: pinned during installation, never upgraded or replaced.
PROTECTED_PACKAGES = ("numpy", "SimpleITK")
LIGHT_THE_TORCH = "light-the-torch>=0.5"  # as the PyTorch extension (PyTorchUtils) installs it


class DependencyError(SpineAIError):
    """A missing Python package, a declined or failed installation."""


def readRequirements(path: Path = REQUIREMENTS_TXT) -> list[str]:
    lines = (line.split("#", 1)[0].strip() for line in path.read_text().splitlines())
    return [line for line in lines if line]


def packageName(requirement: str) -> str:
    return re.split(r"[\s<>=!~;\[]", requirement, maxsplit=1)[0]


def isSatisfied(requirement: str) -> bool:
    """Whether an installed distribution meets ``requirement`` (name and, when checkable, version)."""
    try:
        installed = importlib.metadata.version(packageName(requirement))
    except importlib.metadata.PackageNotFoundError:
        return False
    try:
        from packaging.requirements import Requirement
    except ImportError:  # no way to compare versions: presence is the best check available
        return True
    return Requirement(requirement).specifier.contains(installed, prereleases=True)


def constraintsText() -> str:
    """pip constraints pinning Slicer's own numpy and SimpleITK at their installed versions."""
    pins = []
    for name in PROTECTED_PACKAGES:
        try:
            pins.append(f"{name}=={importlib.metadata.version(name)}")
        except importlib.metadata.PackageNotFoundError:
            continue
    return "\n".join(pins) + "\n"


def pyTorchExtensionInstalled() -> bool:
    return importlib.util.find_spec("PyTorchUtils") is not None


def missingModuleError(error: ImportError, action: str) -> DependencyError:
    """The message for an ImportError met while doing ``action`` (e.g. 'measuring'): which module, and what to do."""
    name = getattr(error, "name", None) or str(error)
    return DependencyError(
        f"{action} needs the engine's Python packages, and '{name}' cannot be imported ({error}); "
        "click the button again to install them, or restart Slicer if they were just installed"
    )


class InstallStep:
    """One command of an installation, with what the panel says while it runs."""

    def __init__(self, label: str, command: list[str]):
        self.label, self.command = label, command


class DependencyInstaller:
    """Checks and installs one stage's requirements (``requirements``: default ``requirements.txt``).

    ``isSatisfied``, ``python`` (the interpreter that runs pip) and ``pipOptions`` (appended to every
    pip command, e.g. an offline package folder) can be injected, for scripts and tests.
    """

    def __init__(
        self,
        requirements: list[str] | None = None,
        isSatisfied: Callable[[str], bool] = isSatisfied,
        python: list[str] | None = None,
        pipOptions: list[str] | None = None,
        useLightTheTorch: Callable[[], bool] = pyTorchExtensionInstalled,
    ):
        self.requirements = readRequirements() if requirements is None else list(requirements)
        self.isSatisfied = isSatisfied
        self.python = python
        self.pipOptions = list(pipOptions or [])
        self.useLightTheTorch = useLightTheTorch

    @classmethod
    def training(cls, **options) -> DependencyInstaller:
        """The fine-tuning stage: its requirements on top of the inference ones."""
        requirements = readRequirements() + readRequirements(TRAINING_REQUIREMENTS_TXT)
        return cls(requirements=list(dict.fromkeys(requirements)), **options)

    def missing(self) -> list[str]:
        return [requirement for requirement in self.requirements if not self.isSatisfied(requirement)]

    def missingMessage(self, missing: list[str]) -> str:
        return (
            f"SpineAI needs Python packages that are not installed in Slicer: {', '.join(missing)}. "
            "Click a task button in the SpineAI panel to install them, or call "
            "SpineAILogic().installDependencies()."
        )

    def requireInstalled(self) -> None:
        missing = self.missing()
        if missing:
            raise DependencyError(self.missingMessage(missing))

    @staticmethod
    def question(missing: list[str]) -> str:
        return (
            f"SpineAI needs these Python packages: {', '.join(missing)}.\n\nInstall them now? This downloads "
            "them from the internet and may take several minutes; Slicer stays usable meanwhile. Slicer's own "
            "numpy and SimpleITK are not changed."
        )

    def steps(self, missing: list[str], constraints: Path) -> list[InstallStep]:
        """The commands that install ``missing``: torch first (its own way), then the rest in one pip call."""
        python = self.python or pythonCommand()
        pip = [*python, "-m", "pip", "install", "--constraint", str(constraints), *self.pipOptions]
        torch = [requirement for requirement in missing if packageName(requirement).lower() == "torch"]
        others = [requirement for requirement in missing if requirement not in torch]
        steps = []
        for requirement in torch:
            if self.useLightTheTorch():
                steps.append(InstallStep("light-the-torch", [*pip, LIGHT_THE_TORCH]))
                ltt = [*python, "-m", "light_the_torch", "install", "--constraint", str(constraints)]
                steps.append(InstallStep(f"{requirement} (build for this computer's GPU)", [*ltt, requirement]))
            else:
                steps.append(InstallStep(requirement, [*pip, requirement]))
        if others:
            steps.append(InstallStep(", ".join(others), [*pip, *others]))
        return steps

    def startInstall(self, confirm: Callable[[str], bool]) -> InstallJob | None:
        """Ask ``confirm`` once, then start installing what is missing in the background.

        Returns the running job (poll it), or None when nothing is missing; raises DependencyError when declined.
        """
        missing = self.missing()
        if not missing:
            return None
        if not confirm(self.question(missing)):
            raise DependencyError(f"installation of {', '.join(missing)} was declined; SpineAI cannot run without them")
        job = InstallJob(self, missing)
        job.start()
        return job

    def install(self, confirm: Callable[[str], bool], timeoutSeconds: float = 3600.0) -> None:
        """``startInstall`` and wait for it (for scripts); raises DependencyError on refusal or failure."""
        job = self.startInstall(confirm)
        if job is None:
            return
        job.wait(timeoutSeconds)
        if job.error is not None:
            raise job.error


class InstallJob:
    """The installation commands of one stage, run one after the other in a background process.

    States and signals as a ``SegmentationJob``: ``progressChanged(fraction, text)`` while running,
    then ``finished()`` or ``failed(error)`` once (``Cancelled`` when the user cancelled).
    """

    def __init__(self, installer: DependencyInstaller, missing: list[str], processFactory=BackgroundProcess):
        self.installer = installer
        self.missing = list(missing)
        self.processFactory = processFactory
        self.state: JobState | None = None
        self.error: SpineAIError | None = None
        self.log: list[str] = []
        self.progressChanged = Signal()
        self.finished = Signal()
        self.failed = Signal()
        self._folder: Path | None = None
        self._steps: list[InstallStep] = []
        self._index = 0
        self._process: BackgroundProcess | None = None

    def start(self) -> None:
        self._folder = Path(tempfile.mkdtemp(prefix="SpineAI-pip-"))
        constraints = self._folder / "constraints.txt"
        constraints.write_text(constraintsText())
        self._steps = self.installer.steps(self.missing, constraints)
        self.state = JobState.RUNNING
        self._startStep(0)

    def _startStep(self, index: int) -> None:
        self._index = index
        self._process = self.processFactory()
        self._process.startCommand(self._steps[index].command)
        self._report(f"Installing {self._steps[index].label}...")

    def poll(self) -> JobState:
        if self.state is not JobState.RUNNING:
            return self.state
        running = self._process.running
        for line in self._process.lines():
            self.log.append(line)
            logging.info("pip: %s", line)  # pip's whole output in Slicer's log and Python console
            self._report(line)
        if running:
            return self.state
        if self._process.exitCode != 0:
            return self._end(JobState.FAILED, self._failure())
        if self._index + 1 < len(self._steps):
            self._startStep(self._index + 1)
            return self.state
        importlib.invalidate_caches()  # so that this Slicer imports what was just installed
        stillMissing = self.installer.missing()
        if stillMissing:
            message = f"{', '.join(stillMissing)} still missing after installation; restart Slicer and try again"
            return self._end(JobState.FAILED, DependencyError(message))
        return self._end(JobState.DONE)

    def wait(self, timeoutSeconds: float = 3600.0) -> JobState:
        deadline = time.monotonic() + timeoutSeconds
        while self.poll() is JobState.RUNNING:
            if time.monotonic() > deadline:
                self.cancel()
                break
            time.sleep(0.1)
        return self.state

    def cancel(self) -> None:
        if self.state is JobState.RUNNING:
            self._process.cancel()
            self._end(JobState.CANCELLED, Cancelled())

    @property
    def progress(self) -> float:
        return self._index / max(len(self._steps), 1)

    def _report(self, text: str) -> None:
        step = f"step {self._index + 1} of {len(self._steps)}"
        self.progressChanged(self.progress, f"{step}: {text}")

    def _failure(self) -> DependencyError:
        errors = [line for line in self.log if line.startswith("ERROR")]
        detail = (errors or self.log or [f"exit code {self._process.exitCode}"])[-1]
        return DependencyError(
            f"installing {self._steps[self._index].label} failed ({detail}); see the Python console for pip's "
            "output. Slicer's numpy and SimpleITK were not changed."
        )

    def _end(self, state: JobState, error: SpineAIError | None = None) -> JobState:
        self.state, self.error = state, error
        if self._folder is not None:
            shutil.rmtree(self._folder, ignore_errors=True)
            self._folder = None
        if error is None:
            self.finished()
        else:
            self.failed(error)
        return state
