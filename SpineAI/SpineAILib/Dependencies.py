"""Installing the engine's Python packages inside Slicer, after asking the user.

torch is installed through the PyTorch extension's PyTorchUtils (it picks the build that fits the
computer's GPU); the other packages of ``Resources/requirements.txt`` with pip, under a constraints
file that pins the numpy and SimpleITK Slicer ships, so pip fails rather than replace them.
"""

from __future__ import annotations

import importlib.metadata
import re
import tempfile
from collections.abc import Callable
from pathlib import Path

from spineai.errors import SpineAIError

REQUIREMENTS_TXT = Path(__file__).resolve().parent.parent / "Resources" / "requirements.txt"
# Slicer's own packages: pinned during installation, never upgraded or replaced.
PROTECTED_PACKAGES = ("numpy", "SimpleITK")


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


def _slicerPipInstall(arguments: str) -> None:
    import slicer.util

    slicer.util.pip_install(arguments)


def _pyTorchUtilsInstall(requirement: str) -> None:
    try:
        import PyTorchUtils
    except ModuleNotFoundError:
        raise DependencyError(
            "SpineAI needs the PyTorch extension: install 'PyTorch' from the Extensions "
            "Manager, restart Slicer and try again"
        ) from None
    specifier = requirement[len(packageName(requirement)) :].strip()
    torchLogic = PyTorchUtils.PyTorchUtilsLogic()
    if torchLogic.installTorch(askConfirmation=False, torchVersionRequirement=specifier or None) is None:
        raise DependencyError("PyTorch could not be installed by the PyTorch extension; see the Python console")


class DependencyInstaller:
    """Checks and installs the requirements; the installers are injectable for tests."""

    def __init__(
        self,
        requirements: list[str] | None = None,
        isSatisfied: Callable[[str], bool] = isSatisfied,
        pipInstall: Callable[[str], None] = _slicerPipInstall,
        torchInstall: Callable[[str], None] = _pyTorchUtilsInstall,
    ):
        self.requirements = readRequirements() if requirements is None else requirements
        self.isSatisfied = isSatisfied
        self.pipInstall = pipInstall
        self.torchInstall = torchInstall

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

    def install(self, confirm: Callable[[str], bool]) -> None:
        """Ask ``confirm`` once, then install what is missing; raise ``DependencyError`` on refusal or failure."""
        missing = self.missing()
        if not missing:
            return
        question = (
            f"SpineAI needs these Python packages: {', '.join(missing)}.\n\nInstall them now? This downloads "
            "them from the internet and may take several minutes. Slicer's own numpy and SimpleITK are "
            "not changed."
        )
        if not confirm(question):
            raise DependencyError(f"installation of {', '.join(missing)} was declined; SpineAI cannot run without them")
        torch = [requirement for requirement in missing if packageName(requirement) == "torch"]
        others = [requirement for requirement in missing if requirement not in torch]
        try:
            for requirement in torch:
                self.torchInstall(requirement)
            if others:
                self._pipInstallConstrained(others)
        except DependencyError:
            raise
        except Exception as error:  # pip's CalledProcessError, network errors, ...
            raise DependencyError(
                f"installing {', '.join(missing)} failed ({_firstLine(error)}); see the Python "
                "console for pip's output. Slicer's numpy and SimpleITK were not changed."
            ) from error
        stillMissing = self.missing()
        if stillMissing:
            raise DependencyError(
                f"{', '.join(stillMissing)} still missing after installation; restart Slicer and try again"
            )

    def _pipInstallConstrained(self, requirements: list[str]) -> None:
        with tempfile.TemporaryDirectory(prefix="SpineAI-pip-") as folder:
            constraints = Path(folder) / "constraints.txt"
            constraints.write_text(constraintsText())
            quoted = " ".join(f'"{requirement}"' for requirement in requirements)
            self.pipInstall(f'{quoted} --constraint "{constraints}"')


def _firstLine(error: Exception) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
