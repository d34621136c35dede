"""What results say about themselves: labels name the accelerator, its dataflow and the data.

Independent expectations: the configuration the run was given (``--set array.dataflow=combined``
must read "combined" everywhere), and the point-id rule of docs/sweeps.md (the same grid from the
command line and from Python is the same set of points).
"""
from __future__ import annotations

import json

from simulator import simulate, sweep
from simulator.cli import main
from workloads import Trace, child_seed, get_network, image_input, synthetic_bias, synthetic_weights


def test_run_header_json_and_csv_name_the_dataflow(tmp_path, capsys):
    js = tmp_path / "r.json"
    assert main(["run", "facedet", "--set", "array.dataflow=combined", "--timing-only", "--json", str(js)]) == 0
    head = capsys.readouterr().out.splitlines()[0]
    assert head.startswith("sparsesim: facedet on nullhop config, combined dataflow (128 MACs @ 500 MHz), ")
    d = json.loads(js.read_text())
    assert (d["accelerator"], d["dataflow"]) == ("nullhop", "combined")
    csv_path = tmp_path / "r.csv"
    assert main(["run", "facedet", "--set", "array.dataflow=combined", "--timing-only", "--quiet",
                 "--csv", str(csv_path)]) == 0
    import csv

    rows = list(csv.DictReader(csv_path.open()))
    assert {(r["accelerator"], r["dataflow"]) for r in rows} == {("nullhop", "combined")}


def test_a_preset_named_after_its_dataflow_is_named_once(capsys):
    assert main(["run", "facedet", "--accel", "rsnn", "--timing-only"]) == 0
    assert capsys.readouterr().out.startswith("sparsesim: facedet on rsnn (128 MACs @ 500 MHz), profile ")


def test_real_data_is_not_reported_as_a_density_profile():
    net = get_network("facedet")
    tr = Trace(network=net.name, image=image_input(net.input_shape))
    for layer in net.layers:
        if layer.op in ("conv", "fc"):
            tr.weights[layer.name] = synthetic_weights(layer.weight_shape, child_seed(1, layer.name, "w"), density=0.5)
            tr.biases[layer.name] = synthetic_bias(layer.out_channels, child_seed(1, layer.name, "b"))
    res = simulate(net, trace=tr, check=False)
    head = res.format_table().splitlines()[0]
    assert "profile" not in head and "trace trace" not in head
    assert head.endswith("real weights and activations (ONNX model or trace file)")
    assert res.to_dict()["profile"] == "none (real data)"


def test_cli_and_python_sweeps_share_their_points(tmp_path, capsys):
    out = tmp_path / "sw"
    assert main(["sweep", "facedet", "--grid", "macs=64,128", "--grid", "dataflow=nullhop,combined",
                 "--timing-only", "--workers", "1", "-o", str(out)]) == 0
    capsys.readouterr()
    res = sweep("facedet", grid={"macs": [64, 128], "dataflow": ["nullhop", "combined"]}, out_dir=out, workers=1,
                trace="synthetic", run_options={"timing_only": True}, progress=False)
    assert (len(res.computed), len(res.reused)) == (0, 4)
    # An option given at its default value is the same point too.
    res2 = sweep("facedet", grid={"macs": [128, 64]}, overrides={"array.dataflow": "combined"}, out_dir=out,
                 workers=1, trace="synthetic", run_options={"timing_only": True, "pruning": "magnitude"},
                 progress=False)
    assert (len(res2.computed), len(res2.reused)) == (0, 2)
    assert len(list((out / "points").glob("*.json"))) == 4
    # ... and the other way round: points Python computed are reused by the command line.
    sweep("facedet", grid={"macs": [32]}, out_dir=out, workers=1, trace="synthetic",
          run_options={"timing_only": True}, progress=False)
    assert main(["sweep", "facedet", "--grid", "macs=32,64", "--timing-only", "--workers", "1", "-o", str(out)]) == 0
    cap = capsys.readouterr()
    assert "computed 0, reused 2" in cap.out
    # stderr is not a terminal here: plain lines instead of a bar.
    assert cap.err.splitlines() == ["sweep facedet: 2/2 loaded from earlier runs"]
    rows = res.totals_rows()
    assert [(r["accelerator"], r["dataflow"]) for r in rows] == [("nullhop", "nullhop"), ("nullhop", "combined")] * 2
    assert res.format_table().startswith("sweep: facedet on nullhop config, dataflows nullhop, combined, 4 points")


def test_a_cli_sweep_logs_one_line_per_point_and_ends_with_its_table(tmp_path, capsys):
    assert main(["sweep", "facedet", "--grid", "macs=32,64", "--timing-only", "--workers", "1",
                 "-o", str(tmp_path)]) == 0
    cap = capsys.readouterr()
    err = cap.err.splitlines()
    assert [l.split(" (")[0] for l in err] == ["sweep facedet: 1/2 macs=32", "sweep facedet: 2/2 macs=64"]
    out = cap.out.splitlines()
    assert out[0] == "sweep: facedet on nullhop, 2 points"
    assert [l.split()[0] for l in out[3:5]] == ["32", "64"]
    assert out[-1].endswith("computed 2, reused 0 (sweep_totals.csv, sweep_layers.csv, points/)")


def test_scale_io_scales_the_streams_with_the_array_except_fields_the_user_set(tmp_path):
    base = sweep("facedet", grid={"macs": [64, 512]}, trace="synthetic", run_options={"timing_only": True},
                 workers=1, progress=False, scale_io=True)
    got = [(r.config["array"]["decoder_values_per_cycle"], r.config["array"]["pre_words_per_cycle"],
            r.config["array"]["encoder_values_per_cycle"], r.config["dma"]["bandwidth_bytes_per_cycle"])
           for r in base.results]
    # nullhop: 128 MACs, decoder 1, PRE 1, encoder 2 values/cycle, 8 B/cycle; x0.5 and x4 (at least 1).
    assert got == [(1, 1, 1, 4.0), (4, 4, 8, 32.0)]
    fixed = sweep("facedet", grid={"macs": [512], "dma.bandwidth_bytes_per_cycle": [2]},
                  overrides={"array.encoder_values_per_cycle": 3}, trace="synthetic",
                  run_options={"timing_only": True}, workers=1, progress=False, scale_io=True)
    a, d = fixed.results[0].config["array"], fixed.results[0].config["dma"]
    assert (a["decoder_values_per_cycle"], a["encoder_values_per_cycle"], d["bandwidth_bytes_per_cycle"]) == (4, 3, 2.0)
    # Wider streams remove the encoder bottleneck at 512 MACs.
    plain = sweep("facedet", grid={"macs": [512]}, trace="synthetic", run_options={"timing_only": True},
                  workers=1, progress=False)
    assert base.results[1].totals["cycles"] < plain.results[0].totals["cycles"]


def test_every_column_is_explained_in_the_readme_and_in_run_help(capsys):
    import re
    from pathlib import Path

    import pytest

    from simulator.report import COLUMN_GLOSSARY, TABLE_HEADER_GLOSSARY

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Output columns", 1)[1].split("\n## ", 1)[0]
    table = dict((m[0], (m[1], m[2])) for m in re.findall(r"^\| `([^`]+)` \| (.*?) \| (.*?) \|$", section, re.M))
    assert table == COLUMN_GLOSSARY
    for head in TABLE_HEADER_GLOSSARY:
        assert f"`{head}` = " in section
    with pytest.raises(SystemExit):
        main(["run", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for col, (unit, _) in COLUMN_GLOSSARY.items():
        assert f"{col} ({unit}):" in text
    # Every column of a real result is in the glossary (nested ones by their group).
    res = simulate("facedet", check=False)
    named = {c.strip() for k in COLUMN_GLOSSARY for c in k.split(",")}
    groups = {c.split(".")[0] for c in named if "." in c}
    for col in res.rows()[0]:
        assert col in named or col.split(".")[0] in groups, col


def test_compare_records_its_setup_and_defaults_its_baseline_to_the_first_dataflow(tmp_path, capsys):
    csv_path = tmp_path / "c.csv"
    assert main(["compare", "facedet", "--dataflows", "nullhop", "combined", "--timing-only", "--set",
                 "dma.bandwidth_bytes_per_cycle=4", "--csv", str(csv_path)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == ("sparsesim compare: facedet on nullhop config (128 MACs @ 500 MHz, DRAM 4 B/cycle shared) "
                      "with dma.bandwidth_bytes_per_cycle=4, profile uniform-0.5, trace synthetic, seed 0")
    assert out[1] == "speedup and energy ratio over nullhop"
    import csv

    rows = list(csv.DictReader(csv_path.open()))
    assert [r["dataflow"] for r in rows] == ["nullhop", "combined"]
    assert float(rows[0]["speedup"]) == 1.0
    assert float(rows[1]["speedup"]) == int(rows[0]["cycles"]) / int(rows[1]["cycles"])
    for r in rows:
        assert (r["network"], r["config"], r["macs"], r["dram_bandwidth_bytes_per_cycle"], r["baseline"]) == (
            "facedet", "nullhop", "128", "4.0", "nullhop")


HEADER = "Layer name, IFMAP Height, IFMAP Width, Filter Height, Filter Width, Channels, Num Filter, Strides,\n"


def test_a_topology_whose_rows_do_not_chain_warns_in_the_result_and_sweep_refuses_it(tmp_path, capsys):
    topo = tmp_path / "res.csv"
    topo.write_text(HEADER + "CB2a_1,14,14,1,1,16,16,1,\nCB2s,28,28,1,1,16,32,1,\n")
    js = tmp_path / "r.json"
    assert main(["run", str(topo), "--no-check", "--json", str(js)]) == 0
    warn = [l for l in capsys.readouterr().out.splitlines() if l.startswith("warning: ")]
    assert len(warn) == 1 and warn[0].startswith(f"warning: {topo}: its rows do not chain, so each row ran as an "
                                                 "independent single-layer network with its own input (")
    assert "IFMAP 28x28x16 does not follow from the previous row's output 14x14x16" in warn[0]
    assert json.loads(js.read_text())["notes"] == [warn[0][len("warning: "):]]
    assert main(["sweep", str(topo), "--grid", "macs=32,64", "-o", str(tmp_path / "sw")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"sparsesim: error: {topo}: its rows do not chain; sparsesim sweep needs one network")
    assert main(["compare", str(topo), "--dataflows", "nullhop", "combined"]) == 2
    assert capsys.readouterr().err.startswith(f"sparsesim: error: {topo}: its rows do not chain; sparsesim compare "
                                              "needs one network")


def _facedet_trace_file(path):
    from workloads import save_trace

    net = get_network("facedet")
    tr = Trace(network=net.name, image=image_input(net.input_shape))
    for layer in net.layers:
        if layer.op in ("conv", "fc"):
            tr.weights[layer.name] = synthetic_weights(layer.weight_shape, child_seed(2, layer.name, "w"), density=0.4)
            tr.biases[layer.name] = synthetic_bias(layer.out_channels, child_seed(2, layer.name, "b"))
    save_trace(tr, path)
    return tr


def test_sweep_and_validate_take_what_run_takes(tmp_path, capsys):
    # A SCALE-Sim topology whose rows chain.
    topo = tmp_path / "chain.csv"
    topo.write_text(HEADER + "c1,16,16,3,3,8,16,1,\nc2,16,16,3,3,16,16,1,\n")
    assert main(["sweep", str(topo), "--grid", "macs=32,64", "--workers", "1", "-o", str(tmp_path / "t")]) == 0
    assert capsys.readouterr().out.startswith("sweep: chain on nullhop, 2 points")
    assert main(["validate", str(topo), "--max-rows", "4"]) == 0
    assert "2/2 layers agree" in capsys.readouterr().out
    # A trace file with real weights: the points hash the data, and Python's sweep shares them.
    npz = tmp_path / "t.npz"
    tr = _facedet_trace_file(npz)
    out = tmp_path / "tf"
    assert main(["sweep", "facedet", "--trace-file", str(npz), "--grid", "macs=64,128", "--workers", "1",
                 "-o", str(out)]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[-1].endswith("computed 2, reused 0 (sweep_totals.csv, sweep_layers.csv, points/)")
    res = sweep("facedet", grid={"macs": [64, 128]}, trace=tr, out_dir=out, workers=1, progress=False)
    assert (len(res.computed), len(res.reused)) == (0, 2)
    assert all(r.trace == "trace" and r.profile == "none (real data)" for r in res.results)
    want = simulate("facedet", trace=tr, check=False, overrides={"array.num_clusters": 4})
    assert res.results[0].totals["cycles"] == want.totals["cycles"]
    other = sweep("facedet", grid={"macs": [64]}, out_dir=out, workers=1, progress=False)
    assert len(other.computed) == 1          # the synthetic-weight point is another point
    assert main(["validate", "facedet", "--trace-file", str(npz), "--layers", "conv1", "--max-rows", "4"]) == 0
    assert "1/1 layers agree" in capsys.readouterr().out
    assert main(["sweep", "facedet", "--trace-file", str(npz), "--timing-only", "-o", str(tmp_path / "x")]) == 2
    assert "--timing-only draws synthetic bitmaps" in capsys.readouterr().err


def test_an_onnx_model_sweeps_validates_and_says_its_data_is_real(tmp_path, capsys):
    import numpy as np
    import pytest

    onnx = pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(3)
    inits = [numpy_helper.from_array(rng.normal(0, 0.3, (16, 3, 3, 3)).astype(np.float32), "w1"),
             numpy_helper.from_array(rng.normal(0, 0.2, (16, 16, 3, 3)).astype(np.float32), "w2")]
    nodes = [helper.make_node("Conv", ["image", "w1"], ["c1"], name="c1", kernel_shape=[3, 3], pads=[1] * 4),
             helper.make_node("Relu", ["c1"], ["r1"], name="r1"),
             helper.make_node("Conv", ["r1", "w2"], ["c2"], name="c2", kernel_shape=[3, 3], pads=[1] * 4),
             helper.make_node("Relu", ["c2"], ["r2"], name="r2")]
    g = helper.make_graph(nodes, "tiny", [helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 3, 32, 32])],
                          [helper.make_tensor_value_info("r2", TensorProto.FLOAT, None)], inits)
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path = tmp_path / "tiny.onnx"
    onnx.save(model, str(path))
    assert main(["run", str(path), "--set", "array.dataflow=combined"]) == 0
    head = capsys.readouterr().out.splitlines()[0]
    assert head.endswith("(128 MACs @ 500 MHz), real weights and activations (ONNX model or trace file)")
    assert "combined dataflow" in head
    assert main(["sweep", str(path), "--grid", "macs=32,64", "--workers", "1", "-o", str(tmp_path / "s")]) == 0
    assert capsys.readouterr().out.splitlines()[-1].endswith("computed 2, reused 0 (sweep_totals.csv, "
                                                             "sweep_layers.csv, points/)")
    assert main(["validate", str(path)]) == 0
    assert "2/2 layers agree" in capsys.readouterr().out


def test_a_host_pool_names_the_condition_that_kept_it_from_being_fused():
    from dataflows import get_preset, schedule_network
    from workloads import NetworkBuilder

    def reason(build) -> str:
        b = NetworkBuilder("n", (9, 9, 4))
        build(b)
        (s,) = [s for s in schedule_network(b.build(), get_preset("nullhop")) if s.layer.name == "p"]
        assert s.where == "host"
        return s.reason

    assert reason(lambda b: (b.conv("c", 8, 3, padding=1), b.maxpool("p"))) == (
        "maxpool 2x2/2: 'c' output 9x9 is not even in both dimensions")
    assert reason(lambda b: b.maxpool("p", 3, 2, 1)) == "maxpool 3x3/2 pad 1 is not the 2x2/2 max pool NullHop fuses"
    assert reason(lambda b: (b.maxpool("p", inputs="input"))) == (
        "maxpool 2x2/2 reads the network input; NullHop fuses a max pool only into the PRE of the conv before it")
    assert reason(lambda b: (b.conv("c", 8, 2, activation=None), b.maxpool("p"))) == (
        "maxpool 2x2/2: 'c' has no ReLU; the PRE pools after the ReLU")
    assert reason(lambda b: (b.conv("c", 8, 2), b.maxpool("p"), b.conv("d", 8, 1, inputs="c"))) == (
        "maxpool 2x2/2: 'c' also feeds 'd', so its output cannot be pooled on the fly")
    assert reason(lambda b: (b.conv("c", 8, 2, padding=1, stride=2), b.maxpool("p", 2, 2))) == (
        "maxpool 2x2/2: 'c' has stride 2; the PRE pools stride-1 conv outputs only")
