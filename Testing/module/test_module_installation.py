"""Installing the engine's packages: asked first, run by a real pip in the background, two stages.

pip runs for real, offline: the test builds a small wheel and installs it from a local folder into
a temporary target, so the job's progress, the finished and failed outcomes and Cancel are those
of a real pip process.
"""

import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
import tomllib
from SpineAILib import SpineAILogic
from SpineAILib.Dependencies import (
    LIGHT_THE_TORCH,
    DependencyError,
    DependencyInstaller,
    InstallJob,
    constraintsText,
    packageName,
    readRequirements,
)
from SpineAILib.EngineProcess import BackgroundProcess, JobState

from spineai.errors import Cancelled

REPO = Path(__file__).resolve().parents[2]
QUIET_PIP = ["--disable-pip-version-check", "--no-input"]


def build_wheel(folder: Path, name: str = "spineai_probe", version: str = "1.0") -> Path:
    """A minimal pure-Python wheel that pip installs without any index."""
    dist_info = f"{name}-{version}.dist-info"
    files = {
        f"{name}/__init__.py": f"VERSION = {version!r}\n",
        f"{dist_info}/METADATA": f"Metadata-Version: 2.1\nName: {name.replace('_', '-')}\nVersion: {version}\n",
        f"{dist_info}/WHEEL": "Wheel-Version: 1.0\nGenerator: spineai-test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    files[f"{dist_info}/RECORD"] = "".join(f"{path},,\n" for path in [*files, f"{dist_info}/RECORD"])
    path = folder / f"{name}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as wheel:
        for member, text in files.items():
            wheel.writestr(member, text)
    return path


@pytest.fixture
def offline_installer(tmp_path):
    """An installer whose pip installs from a local wheel folder into ``tmp_path / 'target'``."""
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    build_wheel(wheels)
    target = tmp_path / "target"

    def installer(requirements):
        return DependencyInstaller(
            requirements=requirements,
            isSatisfied=lambda requirement: (target / packageName(requirement).replace("-", "_")).is_dir(),
            python=[sys.executable],
            pipOptions=[*QUIET_PIP, "--no-index", "--find-links", str(wheels), "--target", str(target)],
            useLightTheTorch=lambda: False,
        )

    installer.target = target
    return installer


class Recorder:
    def __init__(self, job):
        self.progress, self.finished, self.failed = [], [], []
        job.progressChanged.connect(lambda fraction, text: self.progress.append((fraction, text)))
        job.finished.connect(lambda: self.finished.append(True))
        job.failed.connect(self.failed.append)


def poll_until_done(job, timeout=120.0):
    """What the panel's timer does; returns how long each poll took (none may block)."""
    durations, deadline = [], time.monotonic() + timeout
    while True:
        start = time.monotonic()
        state = job.poll()
        durations.append(time.monotonic() - start)
        if state is not JobState.RUNNING:
            return durations
        assert time.monotonic() < deadline, "installation did not finish"
        time.sleep(0.05)


def test_install_asks_first_and_a_refusal_starts_nothing(offline_installer):
    installer = offline_installer(["spineai-probe>=1.0"])
    questions = []
    with pytest.raises(DependencyError, match="was declined"):
        installer.startInstall(lambda question: questions.append(question) or False)
    assert "spineai-probe>=1.0" in questions[0] and "numpy and SimpleITK are not changed" in questions[0]
    assert not offline_installer.target.exists()  # pip never ran


def test_real_pip_runs_in_the_background_with_progress(offline_installer):
    installer = offline_installer(["spineai-probe>=1.0"])
    job = InstallJob(installer, installer.missing())  # what startInstall starts once the user said yes
    seen = Recorder(job)
    job.start()
    folder = job._folder
    assert job.state is JobState.RUNNING and folder.is_dir()  # returned while pip is still running
    durations = poll_until_done(job)
    assert job.state is JobState.DONE, job.log
    assert seen.finished == [True] and seen.failed == []
    assert max(durations) < 0.5  # each timer tick returns at once: the GUI never waits for pip
    texts = [text for _, text in seen.progress]
    assert texts[0] == "step 1 of 1: Installing spineai-probe>=1.0..."
    assert any("Successfully installed spineai-probe-1.0" in text for text in texts), texts
    assert (offline_installer.target / "spineai_probe" / "__init__.py").is_file()
    assert installer.missing() == [] and not folder.exists()  # the constraints folder is removed


def test_failing_pip_gives_its_error_line_and_the_promise_about_numpy(offline_installer):
    installer = offline_installer(["spineai-no-such-package>=1"])
    job = installer.startInstall(lambda question: True)
    seen = Recorder(job)
    poll_until_done(job)
    assert job.state is JobState.FAILED and seen.finished == []
    (error,) = seen.failed
    assert isinstance(error, DependencyError)
    assert "installing spineai-no-such-package>=1 failed (ERROR: " in str(error)
    assert "numpy and SimpleITK were not changed" in str(error)
    with pytest.raises(DependencyError, match="spineai-no-such-package"):
        installer.install(lambda question: True)  # the blocking form for scripts raises the same


def test_cancel_stops_pip_and_says_cancelled(tmp_path):
    # A 'pip' that prints like pip and then hangs, e.g. on a stalled download.
    hanging_pip = [sys.executable, "-c", "import time; print('Collecting torch', flush=True); time.sleep(120)"]
    installer = DependencyInstaller(requirements=["torch>=2.2"], isSatisfied=lambda r: False, python=hanging_pip)
    processes = []

    def factory():
        processes.append(BackgroundProcess())
        return processes[-1]

    job = InstallJob(installer, ["torch>=2.2"], processFactory=factory)
    seen = Recorder(job)
    job.start()
    deadline = time.monotonic() + 30
    while not any("Collecting torch" in text for _, text in seen.progress):
        job.poll()
        assert time.monotonic() < deadline
        time.sleep(0.05)
    job.cancel()
    assert job.state is JobState.CANCELLED and isinstance(seen.failed[0], Cancelled)
    assert not processes[0].running and job.poll() is JobState.CANCELLED


def test_constraints_pin_slicers_numpy_and_simpleitk(tmp_path):
    import SimpleITK as sitk

    pins = constraintsText().splitlines()
    assert f"numpy=={np.__version__}" in pins
    assert any(pin.startswith("SimpleITK==") and sitk.Version_VersionString().startswith(pin[11:]) for pin in pins)
    installer = DependencyInstaller(requirements=["scipy>=1.10"], python=["python"], useLightTheTorch=lambda: False)
    constraints = tmp_path / "constraints.txt"
    (step,) = installer.steps(["scipy>=1.10"], constraints)
    assert step.command == ["python", "-m", "pip", "install", "--constraint", str(constraints), "scipy>=1.10"]


def test_torch_goes_through_light_the_torch_when_the_pytorch_extension_is_there(tmp_path):
    constraints = tmp_path / "c.txt"
    missing = ["torch>=2.2", "scipy>=1.10", "tqdm>=4.60"]
    with_extension = DependencyInstaller(requirements=missing, python=["py"], useLightTheTorch=lambda: True)
    steps = with_extension.steps(missing, constraints)
    pip = ["py", "-m", "pip", "install", "--constraint", str(constraints)]
    assert [step.command for step in steps] == [
        [*pip, LIGHT_THE_TORCH],
        ["py", "-m", "light_the_torch", "install", "--constraint", str(constraints), "torch>=2.2"],
        [*pip, "scipy>=1.10", "tqdm>=4.60"],
    ]
    without = DependencyInstaller(requirements=missing, python=["py"], useLightTheTorch=lambda: False)
    assert [step.command for step in without.steps(missing, constraints)] == [
        [*pip, "torch>=2.2"],
        [*pip, "scipy>=1.10", "tqdm>=4.60"],
    ]


def test_training_is_a_second_stage_on_top_of_inference():
    inference = readRequirements()
    training = DependencyInstaller.training()
    assert training.requirements[: len(inference)] == inference
    assert "torch>=2.2" in training.requirements
    assert len(set(training.requirements)) == len(training.requirements)
    # Here everything is installed: nothing to ask, nothing started.
    asked = []
    assert SpineAILogic().ensureTrainingPackages(lambda question: asked.append(question)) is None and asked == []


def test_requirements_match_the_engine_package():
    """requirements.txt is what the engine declares (less Slicer's own numpy and SimpleITK); the
    training stage adds only what the engine's optional 'train' extra (or its dependencies) name."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    engine = [r for r in project["dependencies"] if packageName(r) not in ("numpy", "SimpleITK")]
    assert sorted(readRequirements()) == sorted(engine)
    declared = set(project["dependencies"]) | set(project.get("optional-dependencies", {}).get("train", []))
    training = readRequirements(REPO / "SpineAI" / "Resources" / "requirements-training.txt")
    assert set(training) <= declared
