"""``boltzkit evaluate`` through the installed console script, on files in a temporary directory."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from boltzkit.cli import main
from boltzkit.targets import DiagonalGaussianMixture

SCRIPT = Path(sys.executable).parent / "boltzkit"


def run_script(*args, cwd):
    assert SCRIPT.exists(), f"console script not installed next to {sys.executable}"
    return subprocess.run(
        [str(SCRIPT), *args], cwd=cwd, capture_output=True, text=True, timeout=300, check=False
    )


def assert_one_line_error(status, stderr, *fragments):
    assert status == 2, stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith(("boltzkit: error: ", "boltzkit evaluate: error: ")), lines[0]
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])


def run_main(capsys, monkeypatch, cwd, *args):
    monkeypatch.chdir(cwd)
    status = main(list(args))
    return status, capsys.readouterr().err


@pytest.fixture(scope="module")
def gmm40():
    return DiagonalGaussianMixture.create_gmm40()


def test_evaluate_exact_samples_with_log_probs(tmp_path, gmm40):
    samples = np.asarray(gmm40.sample(300, seed=3))
    np.savez(tmp_path / "model.npz", samples=samples)
    np.savez(tmp_path / "log_q.npz", log_probs=np.asarray(gmm40.log_prob(samples)))
    result = run_script(
        "evaluate", "gmm40", "model.npz", "--model-log-probs", "log_q.npz", "--n-reference", "200",
        "--json", "metrics.json", "--plot", "metrics.png", cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert "reverse_ess" in result.stdout
    assert "wrote metrics.png" in result.stdout
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["n_samples"] == 200
    assert metrics["n_reference"] == 200
    assert isinstance(metrics["n_samples"], int)
    assert isinstance(metrics["modes_covered"], int)
    assert metrics["reverse_ess"] == pytest.approx(1.0, abs=1e-6)
    assert metrics["logZ_error"] == pytest.approx(0.0, abs=1e-6)
    # At 200 samples a mode expects 5 of them, so one may fall below the threshold.
    assert metrics["modes_covered"] >= 38
    assert "eubo" not in metrics
    assert (tmp_path / "metrics.png").read_bytes()[:4] == b"\x89PNG"


def test_evaluate_far_samples_gives_finite_distances(tmp_path, gmm40):
    # A diverged sampler: a few points at 1e30, whose squared distances
    # overflow float32.
    samples = np.asarray(gmm40.sample(100, seed=2)).copy()
    samples[:3] = 1e30
    np.save(tmp_path / "far.npy", samples)
    np.save(tmp_path / "log_q.npy", np.zeros(100, np.float32))
    result = run_script("evaluate", "gmm40", "far.npy", "--model-log-probs", "log_q.npy",
                        "--json", "m.json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    metrics = json.loads((tmp_path / "m.json").read_text())
    for name in ("mmd_squared", "w2", "energy_distance"):
        assert np.isfinite(metrics[name]), (name, metrics[name])
    # log_prob of the target is -inf in float32 at 1e30, so the ELBO is too,
    # and the command prints a warning.
    assert metrics["elbo"] == -math.inf
    assert "warning: non-finite metrics (elbo, reverse_kl)" in result.stderr
    # Three of 100 points at distance about 1.4e30 from everything else.
    assert metrics["w2"] == pytest.approx(math.sqrt(0.03) * math.sqrt(2) * 1e30, rel=1e-3)


def test_evaluate_dropped_modes_differs_from_exact(tmp_path, gmm40):
    half = DiagonalGaussianMixture(gmm40.means[:20], gmm40.diag_stds[:20], gmm40.logits[:20])
    np.save(tmp_path / "half.npy", np.asarray(half.sample(100, seed=1)))
    result = run_script("evaluate", "gmm40", "half.npy", "--json", "m.json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    metrics = json.loads((tmp_path / "m.json").read_text())
    assert metrics["n_reference"] == 100
    assert metrics["component_weights_tv"] > 0.4
    assert metrics["modes_covered"] <= 24


@pytest.fixture
def bad_files(tmp_path):
    rng = np.random.default_rng(0)
    np.save(tmp_path / "three_d.npy", rng.normal(size=(50, 3)))
    with_nan = rng.normal(size=(50, 2))
    with_nan[7] = np.nan
    np.save(tmp_path / "nan.npy", with_nan)
    np.save(tmp_path / "one.npy", rng.normal(size=(1, 2)))
    np.save(tmp_path / "good.npy", rng.normal(size=(50, 2)))
    np.save(tmp_path / "short_log_q.npy", np.zeros(49))
    nan_log_q = np.zeros(50)
    nan_log_q[4] = np.nan
    np.save(tmp_path / "nan_log_q.npy", nan_log_q)
    np.savez(tmp_path / "two.npz", a=np.zeros((5, 2)), b=np.zeros((5, 2)))
    (tmp_path / "samples.txt").write_text("1 2\n")
    (tmp_path / "existing.json").write_text("{}")
    (tmp_path / "empty.npy").write_bytes(b"")
    (tmp_path / "text.npy").write_text("1 2\n")
    (tmp_path / "cut.npy").write_bytes((tmp_path / "good.npy").read_bytes()[:100])
    np.save(tmp_path / "objects.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    return tmp_path


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (("three_d.npy",), ["SAMPLES must have shape (n_samples, 2)", "(50, 3)"]),
        (("nan.npy",), ["NaN or inf", "row 7"]),
        (("one.npy",), ["at least 2 samples, got 1"]),
        (("missing.npy",), ["missing.npy not found"]),
        (("good.npy", "--n-reference", "1"),
         ["boltzkit evaluate: error:", "--n-reference: expected an integer of at least 2, got '1'"]),
    ],
)
def test_evaluate_bad_input_script(bad_files, args, fragments):
    result = run_script("evaluate", "gmm40", *args, cwd=bad_files)
    assert_one_line_error(result.returncode, result.stderr, *fragments)


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (("samples.txt",), ["must end with .npy or .npz"]),
        (("two.npz",), ["array named 'samples'", "a, b"]),
        (("good.npy", "--model-log-probs", "short_log_q.npy"), ["shape (50,)", "(49,)"]),
        (("good.npy", "--model-log-probs", "absent.npy"), ["--model-log-probs file absent.npy not found"]),
        (("good.npy", "--plot", "figure.gif"), ["must end with .png or .pdf or .svg"]),
        (("good.npy", "--json", "existing.json"), ["existing.json already exists"]),
        (("empty.npy",), ["empty.npy is not a .npy file", "header"]),
        (("text.npy",), ["text.npy is not a .npy file", "header"]),
        (("cut.npy",), ["cut.npy is not a valid .npy file"]),
        (("objects.npy",), ["objects.npy contains object arrays", "pickle"]),
        (("good.npy", "--model-log-probs", "empty.npy"), ["empty.npy is not a .npy file"]),
        (("good.npy", "--model-log-probs", "nan_log_q.npy"),
         ["--model-log-probs has 1 values that are NaN or infinite", "index 4 (nan)"]),
        (("good.npy", "--json", "/proc/metrics.json"),
         ["directory /proc does not accept new files", "/proc/metrics.json cannot be written"]),
        (("good.npy", "--plot", "/proc/metrics.png"),
         ["directory /proc does not accept new files", "/proc/metrics.png cannot be written"]),
    ],
)
def test_evaluate_bad_input_main(bad_files, capsys, monkeypatch, args, fragments):
    status, stderr = run_main(capsys, monkeypatch, bad_files, "evaluate", "gmm40", *args)
    assert_one_line_error(status, stderr, *fragments)
    assert not (bad_files / "figure.gif").exists()
    assert (bad_files / "existing.json").read_text() == "{}"
