"""The command line, through its entry point function and through the installed script."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from boltzkit import Dataset
from boltzkit.cli import main
from boltzkit.targets import DiagonalGaussianMixture, load_target
from tests._reference import assert_close, mixture_log_prob, mixture_score

SCRIPT = Path(sys.executable).parent / "boltzkit"

MIXTURE = {
    "means": [[-2.0, -2.0], [2.0, 2.0], [0.0, 5.0]],
    "diag_stds": [[0.8, 0.8], [0.5, 0.9], [1.0, 1.0]],
    "logits": [0.4, 0.6, float("-inf")],
}


def run_script(*args, cwd):
    assert SCRIPT.exists(), f"console script not installed next to {sys.executable}"
    return subprocess.run(
        [str(SCRIPT), *args], cwd=cwd, capture_output=True, text=True, timeout=300, check=False
    )


def run_main(capsys, *args):
    status = main(list(args))
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def assert_one_line_error(status, err, *fragments):
    assert status == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("boltzkit"), err
    assert "Traceback" not in err
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])


@pytest.fixture
def mixture_json(tmp_path):
    path = tmp_path / "my_mixture.json"
    path.write_text(json.dumps(MIXTURE))
    return path


def test_dataset_on_user_file_equals_load_dataset(tmp_path, mixture_json):
    result = run_script(
        "dataset", str(mixture_json), "--split", "train", "--length", "100000",
        "-o", "train.npz", "--log-probs", "--scores", cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert "train split" in result.stdout

    loaded = Dataset.load(tmp_path / "train.npz")
    expected = load_target(mixture_json).load_dataset(
        "train", 100000, include_log_probs=True, include_scores=True
    )
    for field in ("samples", "log_probs", "scores"):
        np.testing.assert_array_equal(np.asarray(getattr(loaded, field)),
                                      np.asarray(getattr(expected, field)))

    means, stds, logits = (np.asarray(MIXTURE[k]) for k in ("means", "diag_stds", "logits"))
    samples = np.asarray(loaded.samples[:500])
    assert_close(loaded.log_probs[:500], mixture_log_prob(means, stds, logits, samples),
                 rtol=1e-5, atol=1e-5)
    assert_close(loaded.scores[:500], mixture_score(means, stds, logits, samples),
                 rtol=1e-4, atol=1e-4)


def test_dataset_offset_window(tmp_path, capsys):
    status, _, err = run_main(capsys, "dataset", "gmm40", "--split", "val", "--length", "70",
                              "--offset", "30", "-o", str(tmp_path / "w.npz"))
    assert status == 0, err
    window = Dataset.load(tmp_path / "w.npz")
    full = DiagonalGaussianMixture.create_gmm40().load_dataset("val", 100)
    np.testing.assert_array_equal(np.asarray(window.samples), np.asarray(full.samples[30:]))
    assert window.log_probs is None
    assert window.scores is None


def test_dataset_refuses_to_overwrite(tmp_path, capsys):
    output = tmp_path / "d.npz"
    output.write_bytes(b"keep me")
    status, _, err = run_main(capsys, "dataset", "gmm40", "--split", "test", "--length", "5",
                              "-o", str(output))
    assert_one_line_error(status, err, "already exists", "--force")
    assert output.read_bytes() == b"keep me"

    status, _, err = run_main(capsys, "dataset", "gmm40", "--split", "test", "--length", "5",
                              "-o", str(output), "--force")
    assert status == 0, err
    assert len(Dataset.load(output)) == 5
    assert sorted(os.listdir(tmp_path)) == ["d.npz"]


@pytest.mark.parametrize("suffix", [".npy", ".npz"])
def test_sample_writes_prefix_stable_samples(tmp_path, capsys, suffix):
    output = tmp_path / f"s{suffix}"
    status, out, err = run_main(capsys, "sample", "gmm40", "-n", "1e3", "--seed", "7",
                                "-o", str(output))
    assert status == 0, err
    assert "1000 samples" in out
    if suffix == ".npy":
        samples = np.load(output, allow_pickle=False)
    else:
        samples = Dataset.load(output).samples
    expected = DiagonalGaussianMixture.create_gmm40().sample(1000, seed=7)
    np.testing.assert_array_equal(np.asarray(samples), np.asarray(expected))


def test_info_prints_shape_and_box(capsys, mixture_json):
    status, out, err = run_main(capsys, "info", str(mixture_json))
    assert status == 0, err
    assert "dim:          2" in out
    assert "n_components: 3" in out
    assert "zero-weight components: 1" in out
    assert "x[1]: [-2, 5]" in out


def test_info_builtin_equal_weights(capsys):
    status, out, _ = run_main(capsys, "info", "gmm40")
    assert status == 0
    assert "equal, 1/40" in out


def test_plot_writes_png(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    output = tmp_path / "gmm.png"
    status, out, err = run_main(capsys, "plot", "gmm40", "-o", str(output), "-n", "200")
    assert status == 0, err
    assert out == f"wrote {output}\n"
    assert output.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    status, out, err = run_main(capsys, "plot", "gmm40", "-o", str(output), "--force", "--quiet")
    assert status == 0, err
    assert out == ""


def test_plot_grid_for_higher_dimension(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    params = tmp_path / "d5.npz"
    rng = np.random.default_rng(0)
    np.savez(params, means=rng.normal(size=(3, 5)), diag_stds=np.ones((3, 5)),
             logits=np.zeros(3))
    output = tmp_path / "grid.png"
    status, _, err = run_main(capsys, "plot", str(params), "-o", str(output), "-n", "50")
    assert status == 0, err
    assert output.stat().st_size > 0


def test_demo_writes_its_files(tmp_path):
    result = run_script("demo", "--out", "out", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    files = sorted(os.listdir(tmp_path / "out"))
    assert files == ["gmm40.json", "gmm40.png", "mala.npy", "mala.png", "summary.json", "test.npz",
                     "train.npz", "val.npz"]
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["splits"]["train"]["length"] == 100_000
    assert summary["test_modes_visited"] == 40
    mala = summary["mala"]["metrics"]
    assert mala["n_samples"] == 2000
    assert 0.5 < mala["emc"] <= 1.0
    assert np.load(tmp_path / "out" / "mala.npy").shape == (2000, 2)

    rerun = run_script("demo", "--out", "out", cwd=tmp_path)
    assert rerun.returncode == 2
    assert "already exists" in rerun.stderr
    assert len(rerun.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        ('{"means": [[0, 1]], "diag_stds": [[1, -1]]}', "diag_stds must be finite and > 0"),
        ('{"means": [[0, 1]], "diag_stds": [[1, NaN]]}', "diag_stds must be finite and > 0"),
        ('{"means": [[0, NaN]], "diag_stds": [[1, 1]]}', "means must be finite"),
        ('{"means": [[0, 1]], "diag_stds": [[1, 1]], "logits": [NaN]}', "logits must not be NaN"),
        ('{"means": [[0, 1]], "diag_stds": [[1, 1, 1]]}', "diag_stds must have the shape"),
        ('{"means": [0, 1], "diag_stds": [1, 1]}', "means must have shape"),
        ('{"means": [[0, 1]]}', "missing diag_stds"),
        ('{"means": [[0, 1]], "diag_stds": [[1, 1]], "diag_std": 1}', "unexpected entries"),
        ('{"means": [["a", 1]], "diag_stds": [[1, 1]]}', "must hold numbers"),
        ('{"means": [[true, 1]], "diag_stds": [[1, 1]]}', "must hold numbers"),
        ("[1, 2]", "expected a JSON object"),
        ("garbage", "invalid JSON"),
    ],
)
def test_bad_json_parameter_files(tmp_path, capsys, content, fragment):
    path = tmp_path / "bad.json"
    path.write_text(content)
    status, _, err = run_main(capsys, "info", str(path))
    assert_one_line_error(status, err, "bad.json", fragment)


def test_npz_with_object_array_is_not_unpickled(tmp_path, capsys):
    path = tmp_path / "obj.npz"
    np.savez(path, means=np.array([object()], dtype=object), diag_stds=np.ones((1, 1)))
    status, _, err = run_main(capsys, "info", str(path))
    assert_one_line_error(status, err, "object arrays")


def test_npz_that_is_not_a_zip(tmp_path, capsys):
    path = tmp_path / "fake.npz"
    path.write_text("not a zip archive")
    status, _, err = run_main(capsys, "info", str(path))
    assert_one_line_error(status, err, "fake.npz", "not a zip archive")


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["info", "nothere.json"], "no such file"),
        (["info", "gmm41"], "unknown target 'gmm41'"),
        (["dataset", "gmm40", "--split", "foo", "--length", "1", "-o", "x.npz"], "invalid choice"),
        (["dataset", "gmm40", "--split", "val", "--length", "-3", "-o", "x.npz"],
         "--length: expected an integer in [0, 4294967295], got '-3'"),
        (["dataset", "gmm40", "--split", "val", "--length", "2.5", "-o", "x.npz"],
         "--length: expected an integer in [0, 4294967295], got '2.5'"),
        (["dataset", "gmm40", "--split", "val", "--length", "3", "-o", "x.npy"], ".npz"),
        (["dataset", "gmm40", "--split", "val", "--length", "3", "-o", "/nonexistent/x.npz"],
         "does not exist"),
        (["dataset", "gmm40", "--split", "val", "--length", "3", "--offset", str(2**32),
          "-o", "x.npz"], f"--offset: expected an integer in [0, {2**32 - 1}], got '{2**32}'"),
        (["dataset", "gmm40", "--split", "val", "--length", "10", "--offset", str(2**32 - 5),
          "-o", "x.npz"], "--offset + --length must be at most"),
        (["dataset", "gmm40", "--split", "val", "--length", "1e40", "-o", "x.npz"],
         "--length: expected an integer in [0, 4294967295], got '1e40'"),
        (["plot", "gmm40", "-n", "1e12", "-o", "x.png"],
         "-n/--n-samples: expected an integer in [0, 4294967295], got '1e12'"),
        (["sample", "gmm40", "-n", "10", "-o", "s.txt"], ".npz or .npy"),
        (["sample", "gmm40", "-n", "10", "-o", ".npy"], "needs a name before .npy"),
        (["demo", "--out", "/proc/boltzkit-demo"],
         "cannot create the --out directory /proc/boltzkit-demo"),
        (["sample", "gmm40", "-n", "10", "--seed", "-1", "-o", "s.npy"],
         "expected a seed in [0, 2**32), got '-1'"),
        (["sample", "gmm40", "-n", "10", "--seed", "nan", "-o", "s.npy"], "seed"),
        (["dataset", "gmm40", "--split", "val", "--length", "3", "--bogus", "-o", "x.npz"],
         "boltzkit dataset: error: unrecognized arguments: --bogus (see 'boltzkit dataset --help')"),
        (["--bogus", "info", "gmm40"],
         "boltzkit: error: unrecognized arguments: --bogus (see 'boltzkit --help')"),
        (["info", "gmm40", "info"], "boltzkit info: error: unrecognized arguments: info"),
        (["evaluate", "gmm40", "x.npy", "--n-reference", "-4"],
         "--n-reference: expected an integer of at least 2, got '-4'"),
        (["sample", "gmm40", "-n", "10", "--seed", str(2**32), "-o", "s.npy"], "2**32"),
        (["sample", "gmm40", "-o", "s.npy"], "required"),
        (["sample", "gmm40", "-n", str(2**32), "-o", "s.npy"],
         f"-n/--n-samples: expected an integer in [0, 4294967295], got '{2**32}'"),
        ([], "required"),
    ],
)
def test_usage_errors_are_one_line(tmp_path, capsys, monkeypatch, args, fragment):
    monkeypatch.chdir(tmp_path)
    try:
        status, _, err = run_main(capsys, *args)
    except SystemExit as exit_:
        status, err = exit_.code, capsys.readouterr().err
    assert_one_line_error(status, err, fragment)
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize(
    "args",
    [
        ["dataset", "gmm40", "--split", "val", "--length", "3", "-o"],
        ["sample", "gmm40", "-n", "3", "-o"],
        ["plot", "gmm40", "-o"],
    ],
)
def test_unwritable_output_names_the_output(tmp_path, capsys, args):
    # /proc does not let anyone create files, so creating the temporary file fails.
    suffix = ".png" if args[0] == "plot" else ".npz"
    output = f"/proc/boltzkit-test{suffix}"
    status, _, err = run_main(capsys, *args, output)
    assert_one_line_error(status, err, "directory /proc does not accept new files",
                          f"{output} cannot be written")
    assert ".boltzkit-" not in err
    assert ".tmp" not in err


def test_builtin_target_is_float32_with_x64(tmp_path):
    # JAX_ENABLE_X64 makes a built-in target float64 in Python. The command
    # keeps it float32, so its files match those of any other process.
    args = ("dataset", "gmm40", "--split", "train", "--length", "70", "--log-probs", "--scores",
            "--quiet")
    plain = run_script(*args, "-o", "plain.npz", cwd=tmp_path)
    environment = {**os.environ, "JAX_ENABLE_X64": "1"}
    wide = subprocess.run(
        [str(SCRIPT), *args, "-o", "x64.npz"], cwd=tmp_path, env=environment,
        capture_output=True, text=True, timeout=300, check=False,
    )
    assert plain.returncode == 0, plain.stderr
    assert wide.returncode == 0, wide.stderr
    with np.load(tmp_path / "plain.npz") as first, np.load(tmp_path / "x64.npz") as second:
        assert sorted(first) == sorted(second) == ["log_probs", "samples", "scores"]
        for name in first:
            assert second[name].dtype == np.float32, name
            np.testing.assert_array_equal(second[name], first[name])


def test_output_that_is_a_device_is_refused(tmp_path, capsys):
    link = tmp_path / "full.npz"
    link.symlink_to("/dev/full")
    status, _, err = run_main(capsys, "dataset", "gmm40", "--split", "val", "--length", "3",
                              "-o", str(link), "--force")
    assert_one_line_error(status, err, "not a regular file")
    assert link.is_symlink()
    assert sorted(os.listdir(tmp_path)) == ["full.npz"]


def test_script_reports_errors_without_traceback(tmp_path):
    result = run_script("info", "missing.npz", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip() == "boltzkit: error: missing.npz: no such file"
    assert result.stdout == ""


def test_script_version():
    result = run_script("--version", cwd=".")
    assert result.returncode == 0
    assert result.stdout.startswith("boltzkit ")


def test_closed_stdout_pipe_exits_quietly(tmp_path):
    # The read end is closed before the command runs, as if the reader had already exited.
    reader, writer = os.pipe()
    os.close(reader)
    with os.fdopen(writer, "wb") as stdout:
        result = subprocess.run(
            [str(SCRIPT), "sample", "gmm40", "-n", "5", "-o", "s.npy"], cwd=tmp_path,
            stdout=stdout, stderr=subprocess.PIPE, text=True, timeout=300, check=False,
        )
    assert result.returncode == 141
    assert result.stderr == ""
    assert not (tmp_path / "s.npy").exists() or np.load(tmp_path / "s.npy").shape == (5, 2)
