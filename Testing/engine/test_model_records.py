"""The model records: one type reads and writes them, and each names a checked ONNX graph whose
signature is what the record says. No PyTorch here: inference reads records without it."""

import json

import onnxruntime
import pytest

from spineai.models.registry import MODELS_DIR, ModelSpec, model_for_task, sha256_of

SHIPPED = sorted(path.stem for path in MODELS_DIR.glob("*.json"))


def test_every_task_and_the_disc_network_ship_a_record():
    assert SHIPPED == ["cord", "discs", "lesion", "stenosis", "tumor"]


@pytest.mark.parametrize("task", SHIPPED)
def test_a_record_reads_and_writes_back_unchanged(task, tmp_path):
    path = MODELS_DIR / f"{task}.json"
    spec = ModelSpec.from_json(path)
    assert spec.to_record() == json.loads(path.read_text(encoding="utf-8"))
    assert ModelSpec.from_json(spec.write(tmp_path)) == spec
    assert (tmp_path / f"{task}.json").read_text(encoding="utf-8") == path.read_text(encoding="utf-8")


@pytest.mark.parametrize("task", SHIPPED)
def test_the_shipped_files_match_their_checksums(task):
    spec = model_for_task(task)
    assert sha256_of(spec.weights_path) == spec.sha256
    assert sha256_of(spec.onnx_path) == spec.onnx.sha256


@pytest.mark.parametrize("task", SHIPPED)
def test_the_onnx_signature_is_the_recorded_one(task):
    spec = model_for_task(task)
    session = onnxruntime.InferenceSession(str(spec.onnx_path), providers=["CPUExecutionProvider"])
    (graph_input,), (graph_output,) = session.get_inputs(), session.get_outputs()
    assert (graph_input.name, tuple(graph_input.shape)) == (spec.onnx.input_name, spec.onnx.input_shape)
    assert (graph_output.name, tuple(graph_output.shape)) == (spec.onnx.output_name, spec.onnx.output_shape)
    assert spec.onnx.input_shape[1] == spec.in_channels and spec.onnx.output_shape[1] == spec.out_channels
    assert graph_input.type == "tensor(float)" and spec.onnx.opset >= 17


def test_records_of_many_class_networks_carry_no_threshold():
    assert model_for_task("stenosis").threshold is None and model_for_task("discs").threshold is None
    assert model_for_task("cord").threshold == 0.5
    assert "threshold" not in model_for_task("discs").to_record()
