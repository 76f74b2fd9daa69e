"""How the cord network is run: locating the cord first (the same cord for much less network work),
and slices too far apart for neighbours given as their own context."""

import dataclasses

import numpy as np
import SimpleITK as sitk

from spineai.inference import OnnxRunner, SlicePredictor
from spineai.io import read_image
from spineai.metrics import dice
from spineai.models.registry import model_for_task
from spineai.orientation import canonical_array, to_canonical
from spineai.postprocess import clean_cord_mask


class CountingRunner:
    """The real ONNX runner, counting the pixels the network is run on."""

    def __init__(self, spec):
        self.runner, self.pixels, self.device, self.batches = OnnxRunner(spec), 0, "cpu", []

    def run(self, batch):
        self.pixels += batch.shape[0] * batch.shape[2] * batch.shape[3]
        self.batches.append(batch.copy())
        return self.runner.run(batch)


def predictors(every: int):
    spec = model_for_task("cord")
    whole = dataclasses.replace(spec, locate_every=0)
    located = dataclasses.replace(spec, locate_every=every, locate_margin_mm=20.0)
    return SlicePredictor(whole, CountingRunner(whole)), SlicePredictor(located, CountingRunner(located))


def cord(predictor, image):
    return clean_cord_mask(canonical_array(predictor.probability(image)), 0.5)


def test_locating_first_finds_the_same_cord_with_a_fraction_of_the_work(data_dir):
    folder = data_dir / "sct-legacy/errsm_21/t2"
    image = to_canonical(read_image(folder / "t2.nii.gz"))  # 384x216x52 sagittal T2
    truth = canonical_array(to_canonical(read_image(folder / "t2_manual_segmentation.nii.gz"))) > 0.5
    whole, located = predictors(4)
    found_whole, found_located = cord(whole, image), cord(located, image)
    # Not the same voxels (the network sees less background) but as good against the manual mask.
    assert dice(found_whole, found_located) > 0.95
    assert dice(found_located, truth) >= dice(found_whole, truth) - 0.005
    assert located.runner.pixels < 0.75 * whole.runner.pixels


def test_a_scan_where_the_first_pass_finds_nothing_gets_every_slice_whole(data_dir):
    blank = sitk.Image([64, 64, 30], sitk.sitkFloat32)
    blank.SetSpacing([1.0, 1.0, 1.0])
    noise = sitk.AdditiveGaussianNoise(blank, 1.0, 0.0, 7)
    whole, located = predictors(3)
    assert np.array_equal(canonical_array(whole.probability(noise)), canonical_array(located.probability(noise)))
    assert located.runner.pixels > whole.runner.pixels  # the first pass, then the whole pass


def test_slices_17_mm_apart_are_their_own_context_and_75_mm_apart_keep_their_neighbours(data_dir):
    spec = model_for_task("cord")
    assert spec.context_max_spacing_mm == 7.5  # the thickest slices it learned neighbours from
    channels_equal = {}
    for name in ("mt/mt0.nii.gz", "t2s/t2s.nii.gz"):  # axial MT at 17 mm, axial T2*w at 7.5 mm
        predictor = SlicePredictor(spec, CountingRunner(spec))
        predictor.probability(to_canonical(read_image(data_dir / "sct-testing" / name)))
        batch = np.concatenate(predictor.runner.batches)
        channels_equal[name] = bool(
            np.array_equal(batch[:, 0], batch[:, 1]) and np.array_equal(batch[:, 1], batch[:, 2])
        )
    assert channels_equal == {"mt/mt0.nii.gz": True, "t2s/t2s.nii.gz": False}
