"""The benchmark suite: its FLOP counter gives the known numbers, and every suite's code path runs.

No test here asserts a timing: a benchmark is never a timed test. The runs use ``--smoke`` settings (tiny
batches, one repeat), so their numbers are meaningless; what is checked is that they are produced and saved.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import benchmarks
from benchmarks import cli, flops, markdown
from benchmarks.context import Settings
from benchmarks.environment import cpu_flags
from benchmarks.report import format_number, format_table, write_json
from benchmarks.timing import Summary, time_call
from benchmarks.tutorial import build_tutorial_model
from tinynet.kernels import im2col_reference
from tinynet.layers import Conv2D, Dense, Flatten

REPOSITORY = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def tutorial_model():
    return build_tutorial_model()


# ------------------------------------------------------------------------------------------------ FLOP counts
def test_tutorial_forward_flops_per_layer_are_the_known_numbers(tutorial_model):
    costs = {cost.name: cost for cost in flops.model_costs(tutorial_model, 1)}
    assert costs["conv2d_1"].forward_flops == 2 * 26 * 26 * 9 * 64 == 778_752
    assert costs["conv2d_2"].forward_flops == 2 * 11 * 11 * 576 * 32 == 4_460_544
    dense = sum(costs[name].forward_flops for name in ("dense_1", "dense_2", "dense_3"))
    assert dense == 2 * (800 * 512 + 512 * 256 + 256 * 10) == 1_086_464
    assert flops.forward_flops_per_image(tutorial_model) == 6_325_760 == flops.TUTORIAL_FORWARD_FLOPS_PER_IMAGE


def test_training_step_costs_three_forwards_minus_the_first_convolutions_input_gradient(tutorial_model):
    assert flops.training_flops_per_image(tutorial_model) == 3 * 6_325_760 - 778_752 == 18_198_528


def test_backward_counts_dx_only_where_a_training_step_computes_it(tutorial_model):
    costs = flops.model_costs(tutorial_model, 4)
    by_name = {cost.name: cost for cost in costs}
    assert not by_name["conv2d_1"].computes_input_gradient
    assert by_name["conv2d_1"].backward_flops == by_name["conv2d_1"].forward_flops
    for name in ("conv2d_2", "dense_1", "dense_2", "dense_3"):
        assert by_name[name].backward_flops == 2 * by_name[name].forward_flops
    assert flops.input_gradient_flags(tutorial_model) == [False] + [True] * (len(tutorial_model.layers) - 1)


def test_layers_without_a_matrix_product_have_no_flops_but_count_their_elements(tutorial_model):
    costs = {cost.name: cost for cost in flops.model_costs(tutorial_model, 3)}
    for name in ("max_pooling2d_1", "activation_1", "dropout_1", "flatten_1"):
        assert costs[name].forward_flops is None and costs[name].training_flops is None
    assert costs["max_pooling2d_1"].input_elements == 3 * 26 * 26 * 64
    assert costs["flatten_1"].input_elements == 3 * 800


@given(batch=st.integers(1, 1024))
def test_flops_are_linear_in_the_batch(tutorial_model, batch):
    one = flops.model_costs(tutorial_model, 1)
    many = flops.model_costs(tutorial_model, batch)
    for single, batched in zip(one, many, strict=True):
        if single.forward_flops is not None:
            assert batched.forward_flops == batch * single.forward_flops
            assert batched.backward_flops == batch * single.backward_flops


@given(
    height=st.integers(3, 12), width=st.integers(3, 12), channels=st.integers(1, 4), filters=st.integers(1, 5),
    kernel=st.integers(1, 3), stride=st.integers(1, 2), padding=st.sampled_from(["valid", "same"]),
    batch=st.integers(1, 3),
)
def test_conv_flops_are_twice_the_multiply_adds_of_its_im2col_product(height, width, channels, filters, kernel,
                                                                       stride, padding, batch):
    layer = Conv2D(filters, kernel, strides=stride, padding=padding)
    layer.build((height, width, channels))
    # An independent count: the im2col matrix (one row per output pixel, one column per kernel weight per
    # channel) times the (columns x filters) kernel is rows * columns * filters multiply-adds.
    x = np.zeros((batch, height, width, channels), dtype=np.float32)
    cols = im2col_reference(x, kernel, kernel, stride, stride, layer.pad_top, layer.pad_left, layer.out_h,
                            layer.out_w)
    assert flops.layer_cost(layer, batch).forward_flops == 2 * cols.shape[0] * cols.shape[1] * filters


def test_dense_flops_count_every_leading_axis():
    layer = Dense(7)
    layer.build((3, 5))
    assert flops.layer_cost(layer, 2).forward_flops == 2 * (2 * 3) * 5 * 7


def test_layer_cost_rejects_an_unbuilt_layer_and_a_bad_batch():
    with pytest.raises(ValueError, match="must be built"):
        flops.layer_cost(Dense(3), 1)
    layer = Flatten()
    layer.build((2, 2))
    with pytest.raises(ValueError, match="batch must be a positive int"):
        flops.layer_cost(layer, 0)


# --------------------------------------------------------------------------------------- timing and output
def test_summary_median_and_quartiles():
    summary = Summary.of([5.0, 1.0, 3.0, 2.0, 4.0])
    assert (summary.median, summary.minimum, summary.p25, summary.p75, summary.count) == (3.0, 1.0, 2.0, 4.0, 5)
    assert summary.spread == pytest.approx(2.0 / 3.0)
    with pytest.raises(ValueError, match="at least one"):
        Summary.of([])


def test_time_call_runs_warmup_plus_repeats():
    calls = []
    summary = time_call(lambda: calls.append(1), repeats=4, warmup=2)
    assert len(calls) == 6 and summary.count == 4
    with pytest.raises(ValueError, match="repeats"):
        time_call(lambda: None, repeats=0, warmup=0)


def test_numbers_and_tables_are_formatted_for_reading():
    assert format_number(None) == "n/a"
    assert format_number(6325760) == "6,325,760"
    assert format_number(0.012345) == "0.0123"
    assert format_number(245.93) == "246"
    table = format_table(["layer", "ms"], [["conv2d_1", 1.5], ["dense_1", None]]).splitlines()
    assert table[0].split() == ["layer", "ms"] and table[2].split() == ["conv2d_1", "1.50"]
    assert table[3].split() == ["dense_1", "n/a"]


def test_write_json_turns_numpy_values_into_plain_json(tmp_path):
    path = write_json(tmp_path / "deep" / "out.json", {"value": np.float32(1.5), "array": np.arange(3)})
    assert json.loads(path.read_text()) == {"value": 1.5, "array": [0, 1, 2]}


# ------------------------------------------------------------------------------------------- command line
def test_suites_run_in_a_fixed_order_with_torch_last():
    assert cli.selected_suites(["torch", "peak", "layers"]) == ["peak", "layers", "torch"]
    assert cli.selected_suites([]) == cli.selected_suites(["all"]) == list(cli.SUITE_NAMES)
    assert cli.SUITE_NAMES[-2:] == ("torch", "peers")
    with pytest.raises(ValueError, match="unknown suite"):
        cli.selected_suites(["peak", "speed"])


@pytest.mark.parametrize("arguments", [["nonsense"], ["--threads", "0"], ["--threads", "two"]])
def test_bad_command_lines_exit_with_a_usage_error(arguments, capsys):
    with pytest.raises(SystemExit) as exit_info:
        benchmarks.main(arguments)
    assert exit_info.value.code == 2
    assert "error" in capsys.readouterr().err


def test_main_runs_the_in_process_suites_and_writes_json_and_charts(tmp_path, capsys):
    report = tmp_path / "report.json"
    code = benchmarks.main(["peak", "layers", "step", "--smoke", "--output-dir", str(tmp_path), "--json",
                            str(report)])
    printed = capsys.readouterr().out
    assert code == 0, printed
    assert "peak =" in printed and "time share per layer" in printed
    data = json.loads(report.read_text())
    assert set(data["suites"]) == {"peak", "layers", "step"}
    environment = data["environment"]
    assert environment["cpu"]["model"] and environment["versions"]["numpy"] == np.__version__
    assert "numba_threading_layer" in environment["threads"] and environment["load_average"] is not None
    smoke = Settings.smoke()
    layer_rows = data["suites"]["layers"]["results"]["batches"][str(smoke.layer_batches[0])]
    assert [row["layer"] for row in layer_rows][:2] == ["conv2d_1", "max_pooling2d_1"]
    assert layer_rows[0]["forward_flops"] == smoke.layer_batches[0] * 778_752
    step = data["suites"]["step"]["results"]
    measured = {(row["kind"], row["batch"]) for row in step["measurements"]}
    assert measured >= ({("train", batch) for batch in smoke.train_batches}
                        | {("predict", batch) for batch in smoke.inference_batches})
    assert all(row["ms"] > 0 and row["images_per_s"] > 0 for row in step["measurements"])
    shares = step["time_shares"][0]["pieces"]
    assert sum(piece["share_percent"] for piece in shares) == pytest.approx(100.0)
    for name in ("peak", "layers", "step"):
        assert json.loads((tmp_path / f"{name}.json").read_text())["suite"] == name
    for chart in ("layers.png", "step.png"):
        assert (tmp_path / chart).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    rendered = markdown.render(data)
    assert "### `layers`" in rendered and "| conv2d_1 |" in rendered and "Peak: **" in rendered


def test_python_dash_m_benchmarks_runs_the_subprocess_and_torch_suites(tmp_path):
    # peak, layers and step are covered in-process above; these three start processes or import torch.
    completed = subprocess.run(
        [sys.executable, "-m", "benchmarks", "torch", "memory", "coldstart", "--smoke", "--no-charts",
         "--output-dir", str(tmp_path)],
        capture_output=True, text=True, cwd=REPOSITORY, timeout=300, check=False,
    )
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]
    data = json.loads((tmp_path / "report.json").read_text())
    assert list(data["suites"]) == ["coldstart", "memory", "torch"]
    coldstart = data["suites"]["coldstart"]["results"]
    for cache in ("warm", "empty"):
        assert coldstart[cache]["first_call_s"] >= coldstart[cache]["first_step_s"] > 0
    memory = data["suites"]["memory"]["results"]
    assert memory["peak_rss_mib"] >= memory["rss_mib"]["after_import"] > 0
    torch_result = data["suites"]["torch"]["results"]
    if torch_result["skipped"]:
        assert "torch: skipped" in completed.stdout
    else:
        assert torch_result["parameters"]["torch"] == torch_result["parameters"]["tinynet"] == 563_114
        assert all(row["ratio_tinynet_over_torch"] > 0 for row in torch_result["measurements"])


def test_a_failing_suite_is_reported_and_the_others_still_run(tmp_path, monkeypatch, capsys):
    import types

    import benchmarks.suites

    real_load = benchmarks.suites.load

    def broken_peak(context):
        raise RuntimeError("no BLAS today")

    def load(name):
        return types.SimpleNamespace(run=broken_peak) if name == "peak" else real_load(name)

    monkeypatch.setattr(benchmarks.suites, "load", load)
    code = benchmarks.main(["peak", "step", "--smoke", "--no-charts", "--output-dir", str(tmp_path)])
    printed = capsys.readouterr().out
    assert code == 1
    assert "peak: FAILED (RuntimeError: no BLAS today)" in printed and "FAILED suites: peak" in printed
    data = json.loads((tmp_path / "report.json").read_text())
    assert data["suites"]["peak"]["results"] == {"failed": True, "error": "RuntimeError: no BLAS today"}
    assert data["suites"]["step"]["results"]["measurements"]


def test_the_distributed_suite_runs_under_mpiexec(tmp_path):
    pytest.importorskip("mpi4py")
    completed = subprocess.run(
        [sys.executable, "-m", "benchmarks", "distributed", "--smoke", "--no-charts", "--output-dir", str(tmp_path)],
        capture_output=True, text=True, cwd=REPOSITORY, timeout=300, check=False,
    )
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]
    result = json.loads((tmp_path / "report.json").read_text())["suites"]["distributed"]["results"]
    assert [run["ranks"] for run in result["runs"]] == [1, 2]
    assert result["runs"][1]["exchange_s"] > 0 and result["runs"][0]["gradient_bytes"] == 563_114 * 4
    assert [row["machines"] for row in result["projections"]["10 GbE"]][:3] == [1, 2, 4]


# ------------------------------------------------------------------------------------------------- peers
def test_peers_rounds_rotate_the_engines_and_take_the_median_over_rounds():
    from benchmarks.suites import peers

    order = []
    calls = {name: (lambda name=name: order.append(name)) for name in ("a", "b", "c")}
    timings = peers.run_rounds(calls, rounds=4, repeats_per_round=2, pause_seconds=0.0, ramp_seconds=0.0)
    rounds = [order[start:start + 6:2] for start in range(0, len(order), 6)]
    assert rounds == [["a", "b", "c"], ["b", "c", "a"], ["c", "a", "b"], ["a", "b", "c"]]
    for figures in timings.values():
        assert len(figures["round_seconds"]) == 4 and figures["calls"]["repeats"] == 8
        assert figures["seconds"] == statistics.median(figures["round_seconds"])
    assert peers.run_rounds({}, rounds=2, repeats_per_round=1) == {}


def _measurement(kind, batch, tinynet_ms, peer_ms):
    engines = {name: {"ms": None, "reason": "not installed"} for name in ("torch_eager", "jax", "onnxruntime")}
    engines["tinynet"] = {"ms": tinynet_ms}
    engines["jax"] = {"ms": peer_ms}
    return {"kind": kind, "batch": batch, "engines": engines, "fastest_peer": "jax",
            "ratio_tinynet_over_fastest_peer": tinynet_ms / peer_ms}


def test_peers_targets_pass_and_fail_at_their_limits():
    from benchmarks.suites import peers

    measurements = [_measurement("train", 32, 6.0, 10.0), _measurement("train", 128, 7.0, 10.0),
                    _measurement("predict", 100, 9.0, 10.0)]  # b1000 not measured
    training_flops = 18_198_528
    peak = 32 * training_flops / 6.0e-3 / 1e9 / 0.5  # the b32 step is exactly 50 % of it
    checks = peers.check_targets(measurements, peak, training_flops)
    assert [check["passed"] for check in checks] == [True, False, True, None, True]
    assert checks[-1]["value"] == pytest.approx(50.0)
    assert checks[3]["value"] is None


def test_cpu_caches_are_read_from_sysfs_and_summarised(tmp_path):
    from benchmarks import environment

    sysfs = [(1, "Data", "48K", "0"), (1, "Instruction", "32K", "0"), (2, "Unified", "2048K", "0"),
             (3, "Unified", "64M", "0-7,16")]
    for index, (level, kind, size, shared) in enumerate(sysfs):
        folder = tmp_path / f"index{index}"
        folder.mkdir()
        for name, value in (("level", level), ("type", kind), ("size", size), ("shared_cpu_list", shared)):
            (folder / name).write_text(f"{value}\n")
    caches = environment.cpu_caches(tmp_path)
    assert [cache["size_kib"] for cache in caches] == [48, 32, 2048, 65536]
    assert caches[3]["shared_by_cpus"] == 9
    assert environment.cache_summary(caches) == ("L1d 48 KiB per core, L2 2048 KiB per core, "
                                                 "L3 65536 KiB shared by 9 CPUs")
    assert environment.cpu_caches(tmp_path / "missing") == []


def test_the_peers_suite_runs_whatever_peers_are_installed_and_explains_the_missing_ones(tmp_path):
    # PyTorch is hidden from the run (the CI test environment has none, and torch.compile would take minutes);
    # JAX and ONNX Runtime run when installed, else their columns say why.
    hidden = tmp_path / "hidden"
    (hidden / "torch").mkdir(parents=True)
    (hidden / "torch" / "__init__.py").write_text("raise ImportError('torch hidden by the test')\n")
    output = tmp_path / "out"
    environment = dict(os.environ, PYTHONPATH=os.pathsep.join([str(hidden), str(REPOSITORY)]))
    completed = subprocess.run(
        [sys.executable, "-m", "benchmarks", "peers", "--smoke", "--no-charts", "--output-dir", str(output)],
        capture_output=True, text=True, cwd=REPOSITORY, timeout=300, check=False, env=environment,
    )
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]
    result = json.loads((output / "peers.json").read_text())["results"]
    from benchmarks.peer_engines import LABELS, PEERS

    engines = result["engines"]
    assert set(engines) == set(LABELS) and engines["tinynet"]["available"]
    for name in ("torch_eager", "torch_channels_last", "torch_compile"):
        assert not engines[name]["available"] and "torch hidden by the test" in engines[name]["reason"]
        assert f"{LABELS[name]}: not run (ImportError: torch hidden by the test)" in completed.stdout
    smoke = Settings.smoke()
    assert [(row["kind"], row["batch"]) for row in result["measurements"]] == (
        [("train", batch) for batch in smoke.train_batches] + [("predict", batch) for batch in smoke.inference_batches])
    for row in result["measurements"]:
        assert row["engines"]["tinynet"]["ms"] > 0
        for name in PEERS:
            figures = row["engines"][name]
            assert (figures["ms"] is not None and figures["ms"] > 0) or figures["reason"]
        if row["kind"] == "train" and engines["onnxruntime"]["available"]:
            assert row["engines"]["onnxruntime"]["reason"] == "inference only"
    available_peers = {name for name in PEERS if engines[name]["available"]}
    assert set(result["cross_check_max_abs_difference"]) == available_peers
    assert all(difference < 1e-4 for difference in result["cross_check_max_abs_difference"].values())
    assert len(result["targets"]) == 5 and all(check["passed"] is None for check in result["targets"])
    assert result["peak"]["peak_gflops"] > 0 and result["load_average"]["before"] is not None
    assert result["cpu"]["model"] and isinstance(result["cpu"]["caches"], list)
    assert "| tutorial CNN | tinynet | PyTorch eager |" in completed.stdout
    report = json.loads((output / "report.json").read_text())
    # A suite with no Markdown tables of its own (onnxruntime, distributed) must not stop the rendering.
    report["suites"]["onnxruntime"] = report["suites"]["peers"] | {"results": {"skipped": False}}
    rendered = markdown.render(report)
    assert "### `peers`" in rendered and "| tutorial CNN | tinynet |" in rendered and "- CPU: " in rendered
    assert "no Markdown tables for `onnxruntime`" in rendered


def test_isa_avx2_sets_each_engines_limit_before_numpy_and_refuses_otherwise(monkeypatch):
    from benchmarks import isa

    environment = {"XLA_FLAGS": "--xla_force_host_platform_device_count=1"}
    monkeypatch.setattr(os, "environ", environment)
    isa.limit_code_paths("native")
    assert environment == {"XLA_FLAGS": "--xla_force_host_platform_device_count=1"} and isa.describe_limit() is None
    with pytest.raises(ValueError, match="before NumPy loads"):  # this process has NumPy: OpenBLAS has chosen
        isa.limit_code_paths("avx2", {"avx2", "fma", "avx512f"})
    with pytest.raises(ValueError, match="one of native, avx2"):
        isa.limit_code_paths("avx512")
    with pytest.raises(ValueError, match="no AVX2"):
        isa.limit_code_paths("avx2", {"sse4_2", "avx"})
    monkeypatch.delitem(sys.modules, "numpy")  # as in python -m benchmarks before it imports NumPy
    isa.limit_code_paths("avx2", {"avx2", "fma", "avx512f"})
    isa.limit_code_paths("avx2", {"avx2", "fma", "avx512f"})  # twice: XLA's flag is added once
    assert environment["OPENBLAS_CORETYPE"] == "Haswell" and environment["NUMBA_CPU_NAME"] == "haswell"
    assert environment["ONEDNN_MAX_CPU_ISA"] == "AVX2" and environment["MKL_ENABLE_INSTRUCTIONS"] == "AVX2"
    assert environment["XLA_FLAGS"].split() == ["--xla_force_host_platform_device_count=1",
                                                "--xla_cpu_max_isa=AVX2"]
    assert isa.describe_limit().startswith("AVX2 code paths only") and "ONNX Runtime" in isa.describe_limit()


def test_isa_avx2_runs_openblas_on_its_avx2_kernels_and_says_so(tmp_path):
    if not {"avx2", "fma"} <= (cpu_flags() or set()):
        pytest.skip("this CPU has no AVX2 and FMA")
    environment = {name: value for name, value in os.environ.items()
                   if name not in ("OPENBLAS_CORETYPE", "NUMBA_CPU_NAME", "TINYNET_BENCH_ISA")}
    completed = subprocess.run(
        [sys.executable, "-m", "benchmarks", "peak", "--isa", "avx2", "--smoke", "--no-charts", "--output-dir",
         str(tmp_path)],
        capture_output=True, text=True, cwd=REPOSITORY, timeout=300, check=False, env=environment,
    )
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]
    data = json.loads((tmp_path / "report.json").read_text())["environment"]
    assert data["code_paths"].startswith("AVX2 code paths only")
    assert data["threads"]["environment"]["OPENBLAS_CORETYPE"] == "Haswell"
    assert data["blas"]["runtime"][0]["corename"].lower() == "haswell"
    assert "Code paths: AVX2 code paths only" in completed.stdout
