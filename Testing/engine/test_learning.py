"""Learning from corrections on real scans: a site folder of corrected cases, a fine-tune that makes a
model folder, and that model in use (``spineai corrections``, ``spineai finetune``, ``--model``).

The fine-tunes here run for seconds: they check the loop and its records, not accuracy (the
benchmark ``benchmarks/learn_from_corrections.py`` measures that with the default budget).
"""

import csv
import json
import shutil

import numpy as np
import pytest
import SimpleITK as sitk

from spineai.cli import EXIT_USER_ERROR, main
from spineai.errors import Cancelled
from spineai.learning.card import rehearsal_line
from spineai.learning.finetune import KEPT_GAIN, MIN_GAIN, finetune, held_out_start, mix_with_start
from spineai.learning.site import MANIFEST, read_site
from spineai.metrics import dice
from spineai.orientation import canonical_array, to_canonical
from spineai.sample import T2, T2_CORD_MANUAL

SECONDS = 0.2  # minutes of the short fine-tunes here: 12 s


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def site_state(site):
    """Every file of the site folder with its bytes: to show that a refused command changed nothing."""
    return {p.relative_to(site): p.read_bytes() for p in sorted(site.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def first_result(tmp_path_factory):
    """The shipped model's cord result on the bundled sample, as a user would have it before correcting."""
    out = tmp_path_factory.mktemp("first")
    assert main(["segment", str(T2), "--out", str(out), "--device", "cpu"]) == 0
    return out / "t2_cord_seg.nii.gz", out / "t2_cord_seg.json"


def test_a_correction_is_stored_with_its_facts_and_replaced_when_added_again(tmp_path, capsys, first_result):
    site = tmp_path / "site"
    mask, sidecar = first_result
    code, out, err = run(
        capsys, "corrections", "add", T2, T2_CORD_MANUAL, "--task", "cord", "--site", site, "--sidecar", sidecar
    )
    assert code == 0, err
    assert "1 corrected cord case" in out
    (case,) = read_site(site)
    assert (case.task, case.contrast, case.plane, case.model, case.edited) == (
        "cord",
        "T2w",
        "3D",
        "spineai-cord-unet2d",
        "yes",
    )
    stored = sitk.ReadImage(str(case.path(site, "labels")))
    assert np.array_equal(sitk.GetArrayFromImage(stored), sitk.GetArrayFromImage(sitk.ReadImage(str(T2_CORD_MANUAL))))
    # The same scan again (the unedited first result this time): one case, now marked not edited.
    code, out, err = run(capsys, "corrections", "add", T2, mask, "--task", "cord", "--site", site, "--sidecar", sidecar)
    assert code == 0, err
    (again,) = read_site(site)
    assert again.case_id == case.case_id and again.edited == "no"
    assert len(list((site / "cases" / "cord").iterdir())) == 1
    code, out, _ = run(capsys, "corrections", "list", "--site", site)
    assert code == 0 and case.case_id in out and out.count("\n") == 1


@pytest.mark.parametrize(
    "problem, expected",
    [
        ("off the grid", "does not match the geometry"),
        ("lesion values", "not a binary mask"),
        ("empty", "empty image"),
        ("missing", "file not found"),
    ],
)
def test_a_bad_correction_is_refused_in_one_line_and_the_site_is_unchanged(tmp_path, capsys, problem, expected):
    site = tmp_path / "site"
    assert main(["corrections", "add", str(T2), str(T2_CORD_MANUAL), "--task", "cord", "--site", str(site)]) == 0
    before = site_state(site)
    manual = sitk.ReadImage(str(T2_CORD_MANUAL))
    bad = tmp_path / "bad.nii.gz"
    if problem == "off the grid":
        sitk.WriteImage(manual[:, :, 1:], str(bad))
    elif problem == "lesion values":
        sitk.WriteImage(manual * 2, str(bad))
    elif problem == "empty":
        sitk.WriteImage(manual * 0, str(bad))
    capsys.readouterr()
    code, _, err = run(capsys, "corrections", "add", T2, bad, "--task", "cord", "--site", site)
    assert code == EXIT_USER_ERROR
    assert "bad.nii.gz" in err and expected in err.lower() and len(err.strip().splitlines()) == 1
    assert site_state(site) == before


def test_a_damaged_or_incomplete_site_is_refused_before_training(tmp_path, capsys):
    site = tmp_path / "site"
    assert main(["corrections", "add", str(T2), str(T2_CORD_MANUAL), "--task", "cord", "--site", str(site)]) == 0
    (case,) = read_site(site)
    labels = case.path(site, "labels")
    labels.write_bytes(labels.read_bytes()[:-100])  # damaged
    capsys.readouterr()
    code, _, err = run(
        capsys, "finetune", "--task", "cord", "--site", site, "--out", tmp_path / "m", "--minutes", SECONDS
    )
    assert code == EXIT_USER_ERROR and "labels.nii.gz" in err and "damaged" in err
    assert not (tmp_path / "m").exists()
    labels.unlink()  # missing
    code, _, err = run(capsys, "corrections", "list", "--site", site)
    assert code == EXIT_USER_ERROR and "labels.nii.gz" in err and "missing" in err
    (site / MANIFEST).write_text("not,a\nmanifest")
    code, _, err = run(capsys, "corrections", "add", T2, T2_CORD_MANUAL, "--task", "cord", "--site", site)
    assert code == EXIT_USER_ERROR and MANIFEST in err
    code, _, err = run(capsys, "finetune", "--task", "lesion", "--site", tmp_path / "empty", "--out", tmp_path / "m")
    assert code == EXIT_USER_ERROR and "no corrected lesion case" in err


@pytest.fixture(scope="module")
def site_model(tmp_path_factory, data_dir):
    """Three corrected cord scans (so one is held back) and a short fine-tune of the shipped model."""
    root = tmp_path_factory.mktemp("learn")
    site = root / "site"
    scans = [
        (T2, T2_CORD_MANUAL),
        (data_dir / "sct-testing/t2s/t2s.nii.gz", data_dir / "sct-testing/t2s/t2s_seg.nii.gz"),
        (data_dir / "ivadomed-unf01/sub-unf01_T1w.nii.gz", data_dir / "ivadomed-unf01/sub-unf01_T1w_seg-manual.nii.gz"),
    ]
    for image, mask in scans:
        assert main(["corrections", "add", str(image), str(mask), "--task", "cord", "--site", str(site)]) == 0
    out = root / "model"
    assert (
        main(
            [
                "finetune",
                "--task",
                "cord",
                "--site",
                str(site),
                "--out",
                str(out),
                "--minutes",
                str(SECONDS),
                "--device",
                "cpu",
            ]
        )
        == 0
    )
    return site, out


def test_finetune_writes_a_model_folder_with_its_record_and_card(site_model):
    site, folder = site_model
    from spineai.models.registry import model_for_task, sha256_of

    assert sorted(p.name for p in folder.iterdir()) == ["cord.json", "cord.md", "cord.onnx", "cord.safetensors"]
    record = json.loads((folder / "cord.json").read_text())
    shipped = model_for_task("cord")
    block = record["site"]
    share = block["mixing"]["share_of_fine_tuned_weights"]
    assert record["sha256"] == sha256_of(folder / "cord.safetensors")
    assert (record["sha256"] == shipped.sha256) == (share == 0)  # no gain on the site: the starting weights
    assert block["parent"] == {"name": shipped.name, "sha256": shipped.sha256, "folder": str(shipped.folder)}
    assert [c["use"] for c in block["cases"]].count("held back") == 1 and block["evaluated_on"] == "held-back cases"
    assert block["steps"] > 0 and 0 <= block["before"]["site"][0]["dice"] <= 1
    assert len(block["before"]["site"]) == len(block["after"]["site"]) == 1
    assert 0.5 < block["before"]["rehearsal_median_dice"] <= 1 and 0 <= block["after"]["rehearsal_median_dice"] <= 1
    for moment in ("before", "after"):  # each crop's Dice, the median of which is recorded beside them
        by_crop = block[moment]["rehearsal_dice"]
        assert len(by_crop) == 7 and "sct-testing T1w sagittal" in by_crop
        assert block[moment]["rehearsal_median_dice"] == pytest.approx(np.median(list(by_crop.values())), abs=1e-4)
    card = (folder / "cord.md").read_text()
    assert record["name"] in card and block["cases"][0]["case_id"] in card and record["sha256"] in card
    assert rehearsal_line(block) in card


def test_segment_and_batch_use_the_site_model_only_when_chosen(site_model, tmp_path, capsys):
    _, folder = site_model
    record = json.loads((folder / "cord.json").read_text())
    assert main(["segment", str(T2), "--out", str(tmp_path / "site"), "--device", "cpu", "--model", str(folder)]) == 0
    sidecar = json.loads((tmp_path / "site" / "t2_cord_seg.json").read_text())
    assert (sidecar["model"], sidecar["model_sha256"]) == (record["name"], record["sha256"])
    assert sidecar["model_folder"] == str(folder.resolve())
    # Taught on the sample's T2w: a T2w scan is within what it was fine-tuned on.
    assert sidecar["input_check"] | {"note": ""} == {
        "plane": "sagittal",
        "contrast": "T2w",
        "supported": None,
        "taught": True,
        "note": "",
    }
    assert main(["segment", str(T2), "--out", str(tmp_path / "shipped"), "--device", "cpu"]) == 0
    assert json.loads((tmp_path / "shipped" / "t2_cord_seg.json").read_text())["model"] == "spineai-cord-unet2d"
    # A batch made with the shipped model is redone with the site model, then skipped when run again.
    scans = tmp_path / "scans"
    scans.mkdir()
    (scans / "t2.nii.gz").symlink_to(T2)
    out = tmp_path / "cohort"
    assert main(["batch", str(scans), "--out", str(out), "--workers", "1", "--device", "cpu"]) == 0
    assert (
        main(["batch", str(scans), "--out", str(out), "--workers", "1", "--device", "cpu", "--model", str(folder)]) == 0
    )
    assert json.loads((out / "t2" / "t2_cord_seg.json").read_text())["model"] == record["name"]
    capsys.readouterr()
    assert (
        main(["batch", str(scans), "--out", str(out), "--workers", "1", "--device", "cpu", "--model", str(folder)]) == 0
    )
    assert "1 already finished" in capsys.readouterr().out
    with open(out / "cord_summary.csv", newline="") as handle:
        assert [row["model"] for row in csv.DictReader(handle)] == [record["name"]]


def test_a_tampered_or_foreign_model_folder_is_refused(site_model, tmp_path, capsys):
    _, folder = site_model
    code, _, err = run(capsys, "segment", T2, "--task", "lesion", "--out", tmp_path / "o", "--model", folder)
    assert code == EXIT_USER_ERROR and "holds no model of the lesion task; it holds a model of: cord" in err
    tampered = tmp_path / "tampered"
    shutil.copytree(folder, tampered)
    graph = tampered / "cord.onnx"  # what inference loads
    graph.write_bytes(graph.read_bytes()[:-8] + b"\0" * 8)
    code, _, err = run(capsys, "segment", T2, "--out", tmp_path / "o", "--device", "cpu", "--model", tampered)
    assert code == EXIT_USER_ERROR and "does not match the model record" in err and "refusing to load" in err
    assert not (tmp_path / "o").exists()


def canonical_mask(path) -> np.ndarray:
    return canonical_array(to_canonical(sitk.ReadImage(str(path)))) > 0


def test_one_case_is_measured_on_the_top_fifth_of_its_slices_held_back_from_training(tmp_path, capsys):
    """With one case the figures (and the mix chosen on them) are on its top fifth, which training
    did not see: the starting model's Dice there, as ``spineai segment`` finds it, not the whole scan's."""
    site, out = tmp_path / "site", tmp_path / "model"
    assert main(["corrections", "add", str(T2), str(T2_CORD_MANUAL), "--task", "cord", "--site", str(site)]) == 0
    assert main(["finetune", "--task", "cord", "--site", str(site), "--out", str(out), "--minutes", str(SECONDS)]) == 0
    block = json.loads((out / "cord.json").read_text())["site"]
    assert block["held_out"] == "slices" and block["evaluated_on"].startswith("the top fifth of each case's slices")
    assert [c["use"] for c in block["cases"]] == ["trained on, top fifth of slices held back"]
    assert "the top fifth of each case's slices" in capsys.readouterr().out
    assert main(["segment", str(T2), "--out", str(tmp_path / "seg"), "--device", "cpu"]) == 0
    found, truth = canonical_mask(tmp_path / "seg" / "t2_cord_seg.nii.gz"), canonical_mask(T2_CORD_MANUAL)
    top = held_out_start(truth)
    assert top == truth.shape[0] - round(truth.shape[0] / 5)
    held_dice = dice(found[top:], truth[top:])
    assert abs(dice(found, truth) - held_dice) > 0.01  # the two places differ, so the figure says which it is on
    assert block["before"]["site"][0]["dice"] == pytest.approx(held_dice, abs=0.005)


def test_a_case_is_split_only_where_both_parts_hold_its_target():
    cord = np.zeros((20, 8, 8), bool)
    cord[:, 3:5, 3:5] = True  # through every slice: the top four are held back
    assert held_out_start(cord) == 16
    low = np.zeros_like(cord)
    low[2:10, 3:5, 3:5] = True  # a lesion below the cut: nothing of it would be measured
    assert held_out_start(low) is None
    high = np.zeros_like(cord)
    high[17:, 3:5, 3:5] = True  # a lesion wholly above it: nothing of it would be trained on
    assert held_out_start(high) is None
    assert held_out_start(np.ones((2, 4, 4), bool)) is None  # too few slices to hold one back
    assert held_out_start(np.zeros_like(cord)) is None


def test_a_cancelled_or_refused_finetune_leaves_no_model_folder(site_model, tmp_path):
    site, folder = site_model
    calls = []
    out = tmp_path / "cancelled"
    with pytest.raises(Cancelled):
        finetune("cord", site, out, minutes=1.0, device="cpu", should_cancel=lambda: calls.append(1) or len(calls) > 3)
    assert not out.exists() and not list(tmp_path.glob(".partial-*"))
    with pytest.raises(Exception, match="already holds files"):
        finetune("cord", site, folder, minutes=SECONDS, device="cpu")


def test_the_lesion_and_sac_networks_fine_tune_on_their_own_label_maps(tmp_path, data_dir, capsys):
    """The lesion task on the SCT sample's painted lesion (synthetic: wiring only), and the dural sac
    network at the disc levels of a segmented real lumbar scan."""
    site = tmp_path / "site"
    t2 = data_dir / "sct-testing" / "t2"
    cord = sitk.ReadImage(str(t2 / "t2_fake_lesion_sc_seg.nii.gz")) > 0
    lesion = sitk.ReadImage(str(t2 / "t2_fake_lesion_lesion_seg.nii.gz")) > 0
    labels = sitk.Cast(
        sitk.Maximum(sitk.Cast(cord, sitk.sitkUInt8), sitk.Cast(lesion, sitk.sitkUInt8) * 2), sitk.sitkUInt8
    )
    sitk.WriteImage(labels, str(tmp_path / "lesion_labels.nii.gz"))
    image = t2 / "t2_fake_lesion.nii.gz"
    assert (
        main(
            [
                "corrections",
                "add",
                str(image),
                str(tmp_path / "lesion_labels.nii.gz"),
                "--task",
                "lesion",
                "--site",
                str(site),
            ]
        )
        == 0
    )
    lumbar = data_dir / "lumbar-ivd" / "ivd46_t2.nii.gz"
    assert main(["segment", str(lumbar), "--task", "stenosis", "--out", str(tmp_path / "s"), "--device", "cpu"]) == 0
    levels, labels = (
        tmp_path / "s" / "ivd46_t2_stenosis_levels.mrk.json",
        tmp_path / "s" / "ivd46_t2_stenosis_seg.nii.gz",
    )
    capsys.readouterr()
    code, _, err = run(capsys, "corrections", "add", lumbar, labels, "--task", "stenosis", "--site", site)
    assert code == EXIT_USER_ERROR and "needs its disc levels" in err
    assert (
        main(
            [
                "corrections",
                "add",
                str(lumbar),
                str(labels),
                "--task",
                "stenosis",
                "--site",
                str(site),
                "--disc-levels",
                str(levels),
            ]
        )
        == 0
    )
    for task in ("lesion", "stenosis"):
        out = tmp_path / f"{task}_model"
        assert (
            main(
                [
                    "finetune",
                    "--task",
                    task,
                    "--site",
                    str(site),
                    "--out",
                    str(out),
                    "--minutes",
                    "0.1",
                    "--device",
                    "cpu",
                ]
            )
            == 0
        )
        record = json.loads((out / f"{task}.json").read_text())
        assert record["task"] == task and record["site"]["steps"] > 0 and record["site"]["after"]["site"]
        # The painted lesion lies below the top fifth, the sac is scored on level planes: nothing held back.
        assert record["site"]["held_out"] == "none" and "fit check" in record["site"]["evaluated_on"]
    sac = json.loads((tmp_path / "stenosis_model" / "stenosis.json").read_text())["site"]
    assert sac["before"]["site"][0]["dice"] > 0.5  # the shipped sac network's own labels: it agrees with itself
    assert (
        main(
            [
                "segment",
                str(lumbar),
                "--task",
                "stenosis",
                "--out",
                str(tmp_path / "s2"),
                "--device",
                "cpu",
                "--model",
                str(tmp_path / "stenosis_model"),
            ]
        )
        == 0
    )


def _two_state_network():
    """A one-weight network, its starting weights (0) and its fine-tuned ones (1)."""
    import torch

    network = torch.nn.Linear(1, 1, bias=False)
    start = {"weight": torch.zeros(1, 1)}
    with torch.no_grad():
        network.weight.fill_(1.0)
    return network, start


@pytest.mark.parametrize("curve", ["linear", "late"])
def test_mixing_keeps_the_smallest_share_of_fine_tuned_weights_that_keeps_most_of_the_gain(curve):
    network, start = _two_state_network()
    # Site Dice as a function of the share w of fine-tuned weights, read from the network itself.
    dice_of = {"linear": lambda w: 0.1 + 0.8 * w, "late": lambda w: 0.1 + 0.8 * max(0.0, w - 0.5) * 2}[curve]
    scores = lambda model: [{"dice": dice_of(model.weight.item())}]  # noqa: E731
    mixing = mix_with_start(network, start, scores, [{"dice": dice_of(0.0)}])
    share = mixing["share_of_fine_tuned_weights"]
    assert dice_of(share) >= 0.1 + KEPT_GAIN * 0.8 > dice_of(share - 0.05)
    assert network.weight.item() == pytest.approx(share)  # the network is left at the chosen mix
    assert mixing["site_dice_by_share"]["1.00"] == pytest.approx(0.9, abs=1e-4)


def test_mixing_keeps_the_starting_weights_when_the_fine_tune_gained_nothing():
    network, start = _two_state_network()
    scores = lambda model: [{"dice": 0.8 + (MIN_GAIN / 2) * model.weight.item()}]  # noqa: E731
    mixing = mix_with_start(network, start, scores, [{"dice": 0.8}])
    assert mixing["share_of_fine_tuned_weights"] == 0.0 and network.weight.item() == 0.0
    assert list(mixing["site_dice_by_share"]) == ["0.00", "1.00"]


def test_the_rehearsal_line_names_the_crop_that_lost_most():
    def site(before: dict, after: dict) -> dict:
        return {
            moment: {"rehearsal_median_dice": float(np.median(list(scores.values()))), "rehearsal_dice": scores}
            for moment, scores in (("before", before), ("after", after))
        }

    crops = {"sct-testing T1w sagittal": 0.894, "9418 T2starw axial": 0.972, "errsm_11 T2w sagittal": 0.855}
    moved = crops | {"sct-testing T1w sagittal": 0.871, "errsm_11 T2w sagittal": 0.860}
    line = rehearsal_line(site(crops, moved))
    assert line.startswith("What it knew: median Dice on the rehearsal set 0.894 -> 0.871")
    assert line.endswith("the largest loss: sct-testing T1w sagittal 0.894 -> 0.871.")
    assert rehearsal_line(site(crops, crops)).endswith("; no crop lost.")
    painted = {moment: {"rehearsal_median_dice": None, "rehearsal_dice": None} for moment in ("before", "after")}
    assert rehearsal_line(painted) is None
