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
        assert col == "network" or col in named or col.split(".")[0] in groups, col


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
