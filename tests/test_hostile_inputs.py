"""Invalid arguments, invalid files and failing disks, through the Python API and the command line.

Every error names the argument (or file), what arrived and what is expected.
The command line prints one line, exits with status 2 and leaves no partial
or temporary file behind.
"""

from __future__ import annotations

import contextlib
import functools
import gc
import io
import json
import os
import pickle
import resource
import shutil
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from boltzkit import Dataset, datasets
from boltzkit.cli import _signals, main
from boltzkit.targets import DiagonalGaussianMixture, load_target, save_target
from boltzkit.targets.gaussian_mixture import functional
from tests._reference import mixture_log_prob

SCRIPT = Path(sys.executable).parent / "boltzkit"
GMM = DiagonalGaussianMixture.create_isotropic([[0.0, 0.0], [3.0, 1.0]], std=0.5)


# ----------------------------------------------------------------- Python API

def _mixture(**overrides):
    arguments = {"means": [[0.0, 1.0]], "diag_stds": [[1.0, 2.0]], "logits": [0.0]}
    arguments.update(overrides)
    return DiagonalGaussianMixture(**arguments)


# (call, exception type, fragments of the message: the argument, what arrived, what is expected)
API_CASES = {
    "means 1-D": (lambda: _mixture(means=[0.0, 1.0]), ValueError,
                  ["means", "(2,)", "(n_components, dim)"]),
    "means empty": (lambda: _mixture(means=np.zeros((0, 2)), diag_stds=np.zeros((0, 2))),
                    ValueError, ["means", "(0, 2)", "at least 1"]),
    "means strings": (lambda: _mixture(means=[["a", "b"]]), TypeError, ["means", "str", "real numbers"]),
    "means ragged": (lambda: _mixture(means=[[0.0], [1.0, 2.0]]), TypeError,
                     ["means", "list", "real numbers"]),
    "means complex": (lambda: _mixture(means=np.ones((1, 2)) * 1j), TypeError,
                      ["means", "complex128", "real numbers"]),
    "means bool": (lambda: _mixture(means=np.ones((1, 2), bool)), TypeError,
                   ["means", "bool", "real numbers"]),
    "means None": (lambda: _mixture(means=None), TypeError, ["means", "object", "real numbers"]),
    "means NaN": (lambda: _mixture(means=[[0.0, np.nan]]), ValueError, ["means", "nan", "(0, 1)", "finite"]),
    "means inf": (lambda: _mixture(means=[[np.inf, 0.0]]), ValueError, ["means", "inf", "finite"]),
    "stds negative": (lambda: _mixture(diag_stds=[[1.0, -2.0]]), ValueError,
                      ["diag_stds", "-2.0", "> 0"]),
    "stds zero": (lambda: _mixture(diag_stds=[[0.0, 1.0]]), ValueError, ["diag_stds", "0.0", "> 0"]),
    "stds NaN": (lambda: _mixture(diag_stds=[[np.nan, 1.0]]), ValueError, ["diag_stds", "nan", "finite"]),
    "stds inf": (lambda: _mixture(diag_stds=[[np.inf, 1.0]]), ValueError, ["diag_stds", "inf", "finite"]),
    "stds shape": (lambda: _mixture(diag_stds=[[1.0]]), ValueError, ["diag_stds", "(1, 1)", "(1, 2)"]),
    "logits shape": (lambda: _mixture(logits=[0.0, 1.0]), ValueError, ["logits", "(2,)", "(1,)"]),
    "logits all -inf": (lambda: _mixture(logits=[-np.inf]), ValueError,
                        ["logits", "-inf", "positive weight"]),
    "logits +inf": (lambda: _mixture(logits=[np.inf]), ValueError, ["logits", "inf", "not be +inf"]),
    "logits NaN": (lambda: _mixture(logits=[np.nan]), ValueError, ["logits", "nan", "not be NaN"]),
    "isotropic std negative": (lambda: DiagonalGaussianMixture.create_isotropic([[0.0]], std=-1.0),
                               ValueError, ["std", "-1.0", "> 0"]),
    "isotropic std shape": (lambda: DiagonalGaussianMixture.create_isotropic([[0.0]], std=[1.0, 2.0]),
                            ValueError, ["std", "(2,)", "(1,)"]),
    "isotropic means 1-D": (lambda: DiagonalGaussianMixture.create_isotropic([0.0]), ValueError,
                            ["means", "(1,)", "(n_components, dim)"]),
    "uniform std zero": (lambda: DiagonalGaussianMixture.create_isotropic_uniform(std=0.0),
                         ValueError, ["std", "0.0", "> 0"]),
    "uniform n_components zero": (lambda: DiagonalGaussianMixture.create_isotropic_uniform(n_components=0),
                                  ValueError, ["n_components", "0", ">= 1"]),
    "uniform dim float": (lambda: DiagonalGaussianMixture.create_isotropic_uniform(dim=2.5),
                          TypeError, ["dim", "2.5", "integer"]),
    "uniform dim bool": (lambda: DiagonalGaussianMixture.create_isotropic_uniform(dim=True),
                         TypeError, ["dim", "True", "integer"]),
    "uniform range reversed": (lambda: DiagonalGaussianMixture.create_isotropic_uniform(mean_range=(1, -1)),
                               ValueError, ["mean_range", "(1.0, -1.0)", "low < high"]),
    "uniform range triple": (lambda: DiagonalGaussianMixture.create_isotropic_uniform(mean_range=(1, 2, 3)),
                             TypeError, ["mean_range", "(1, 2, 3)", "pair"]),
    "uniform seed negative": (lambda: DiagonalGaussianMixture.create_isotropic_uniform(seed=-1),
                              ValueError, ["seed", "-1", ">= 0"]),
    "gmm40 loc_scaling": (lambda: DiagonalGaussianMixture.create_gmm40(loc_scaling=-1.0),
                          ValueError, ["loc_scaling", "-1.0", "> 0"]),
    "gmm40 scale string": (lambda: DiagonalGaussianMixture.create_gmm40(scale="1"),
                           TypeError, ["scale", "'1'", "real number"]),
    "log_prob wrong dim": (lambda: GMM.log_prob(np.zeros((4, 3))), ValueError, ["x", "(4, 3)", "(..., 2)"]),
    "log_prob scalar": (lambda: GMM.log_prob(1.0), ValueError, ["x", "()", "(..., 2)"]),
    "score wrong dim": (lambda: GMM.score(np.zeros(3)), ValueError, ["x", "(3,)", "(..., 2)"]),
    "log_prob_and_score strings": (lambda: GMM.log_prob_and_score(["a", "b"]), TypeError,
                                   ["x", "str", "real numbers"]),
    "sample negative": (lambda: GMM.sample(-1), ValueError, ["n_samples", "-1", ">= 0"]),
    "sample float": (lambda: GMM.sample(2.5), TypeError, ["n_samples", "2.5", "integer"]),
    "sample too many": (lambda: GMM.sample(2**33), ValueError, ["n_samples", str(2**33), "2**32"]),
    "sample seed negative": (lambda: GMM.sample(3, seed=-1), ValueError, ["seed", "-1", "[0, 2**32)"]),
    "sample seed float": (lambda: GMM.sample(3, seed=1.5), TypeError, ["seed", "1.5", "int or a JAX key"]),
    "sample seed key array": (lambda: GMM.sample(3, seed=jax.random.split(jax.random.key(0))),
                              ValueError, ["seed", "(2,)", "shape ()"]),
    "sample seed raw key shape": (lambda: GMM.sample(3, seed=np.zeros(3, np.uint32)), TypeError,
                                  ["seed", "(3,)", "shape (2,)"]),
    "sample_at float indices": (lambda: GMM.sample_at(0, [0.5]), TypeError, ["indices", "float", "integers"]),
    "sample_at negative index": (lambda: GMM.sample_at(0, [3, -1]), ValueError,
                                 ["indices", "-1", "[0, 4294967294]"]),
    "sample_at index too large": (lambda: GMM.sample_at(0, [2**32 - 1]), ValueError,
                                  ["indices", str(2**32 - 1), "[0, 4294967294]"]),
    "sample_at key string": (lambda: GMM.sample_at("k", [0]), TypeError, ["key", "'k'", "int or a JAX key"]),
    "load_dataset type": (lambda: GMM.load_dataset("training", 3), ValueError,
                          ["type", "'training'", "train, val, test"]),
    "load_dataset length": (lambda: GMM.load_dataset("train", -3), ValueError, ["length", "-3", ">= 0"]),
    "load_dataset offset": (lambda: GMM.load_dataset("train", 3, offset=-1), ValueError,
                            ["offset", "-1", ">= 0"]),
    "load_dataset window": (lambda: GMM.load_dataset("train", 3, offset=2**32 - 2), ValueError,
                            ["offset + length", str(2**32 - 2), "at most"]),
    "load_dataset flag": (lambda: GMM.load_dataset("train", 3, include_scores=1), TypeError,
                          ["include_scores", "1", "bool"]),
    "load_dataset nothing": (lambda: GMM.load_dataset("train", 3, include_samples=False), ValueError,
                             ["include_samples", "must be True"]),
    "split_key type": (lambda: datasets.split_key("dev"), ValueError, ["type", "'dev'", "train, val, test"]),
    "Dataset no fields": (lambda: Dataset(), ValueError, ["samples, log_probs or scores"]),
    "Dataset lengths": (lambda: Dataset(samples=np.zeros((3, 2)), log_probs=np.zeros(2)), ValueError,
                        ["log_probs", "3", "2", "same length"]),
    "Dataset samples 1-D": (lambda: Dataset(samples=np.zeros(3)), ValueError, ["samples", "(3,)", "(n, D)"]),
    "Dataset index": (lambda: Dataset(samples=np.zeros((3, 2)))[0], TypeError, ["0", "slice"]),
    "load_target unknown": (lambda: load_target("gmm41"), ValueError, ["'gmm41'", "gmm40", ".npz or .json"]),
    "load_target int": (lambda: load_target(3), TypeError, ["spec", "3", "int", "target name or a path"]),
    "save_target not a target": (lambda: save_target("gmm40", "x.json"), TypeError,
                                 ["target", "'gmm40'", "DiagonalGaussianMixture"]),
    "save_target extension": (lambda: save_target(GMM, "x.txt"), ValueError, ["'x.txt'", ".npz or .json"]),
    "save_target overwrite": (lambda: save_target(GMM, "x.json", overwrite="no"), TypeError,
                              ["overwrite", "'no'", "bool"]),
    "Dataset.save overwrite": (lambda: Dataset(samples=[[0.0]]).save("x.npz", overwrite=1), TypeError,
                               ["overwrite", "1", "bool"]),
}


@pytest.mark.parametrize("name", sorted(API_CASES))
def test_api_rejects_invalid_argument(name, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    call, error_type, fragments = API_CASES[name]
    with pytest.raises(error_type) as raised:
        call()
    message = str(raised.value)
    for fragment in fragments:
        assert fragment in message, (fragment, message)
    assert os.listdir(tmp_path) == []


def _invalid_targets():
    """Targets rebuilt from leaves, as inside jit, with invalid diag_stds."""
    means = jnp.array([[0.0, 0.0], [3.0, 1.0]])
    logits = jnp.zeros(2)
    for std in (-0.5, 0.0, -0.0, np.nan, -np.inf):
        stds = jnp.array([[0.5, 0.5], [0.5, std]])
        yield std, DiagonalGaussianMixture.tree_unflatten(None, (means, stds, logits))


@pytest.mark.parametrize("method", ["log_prob", "score", "log_prob_and_score"])
def test_jit_invalid_stds_give_no_plausible_density(method):
    x = jnp.array([[0.2, -0.1], [3.0, 1.0], [2.5, 1.5]])
    abs_density = mixture_log_prob([[0.0, 0.0], [3.0, 1.0]], [[0.5, 0.5], [0.5, 0.5]], [0.0, 0.0], x)
    evaluate = jax.jit(lambda target, points: getattr(target, method)(points))
    for std, target in _invalid_targets():
        outputs = evaluate(target, x)
        outputs = outputs if isinstance(outputs, tuple) else (outputs,)
        for output in outputs:
            values = np.asarray(output)
            assert np.isnan(values).all(), (std, method, values)
    # A negative std is not read as its absolute value, which would give this density.
    values = np.asarray(jax.jit(lambda t, p: t.log_prob(p))(next(_invalid_targets())[1], x))
    assert not np.allclose(values, abs_density, equal_nan=False)


@pytest.mark.parametrize("method", ["auto", "direct", "matmul"])
def test_invalid_stds_nan_score_many_components(method):
    # With more than 16 components in more than 16 dimensions, the score
    # comes from a checked matrix product and the exact pull where its bound
    # fails. Invalid stds must still give NaN through both.
    rng = np.random.default_rng(3)
    means = jnp.asarray(rng.normal(size=(17, 17)), jnp.float32)
    x = means[:3] + 0.1
    evaluate = jax.jit(functools.partial(functional.log_prob_and_score, method=method))
    for std in (-0.5, 0.0, np.nan, -np.inf):
        stds = jnp.full((17, 17), 0.5).at[1, 4].set(std)
        log_probs, scores = evaluate(means, stds, jnp.zeros(17), x)
        assert np.isnan(np.asarray(log_probs)).all(), (std, log_probs)
        assert np.isnan(np.asarray(scores)).all(), (std, scores)


@pytest.mark.parametrize("method", ["auto", "direct", "matmul"])
def test_negative_std_nan_score_every_method(method):
    # The score of the matrix products uses 1 / std**2, which is positive
    # for a negative std too.
    x = jnp.array([[0.0], [1.5], [-3.0]])
    score = jax.jit(functools.partial(functional.score, method=method))
    values = np.asarray(score(jnp.zeros((1, 1)), jnp.array([[-1.0]]), jnp.zeros(1), x))
    assert np.isnan(values).all(), values


def test_functional_invalid_parameters_nan_under_jit():
    x = jnp.array([[0.2, -0.1]])
    log_prob = jax.jit(functional.log_prob)
    means = jnp.array([[0.0, 0.0]])
    stds = jnp.array([[1.0, 1.0]])
    cases = {
        "negative std": (means, -stds, jnp.zeros(1)),
        "NaN mean": (means.at[0, 0].set(jnp.nan), stds, jnp.zeros(1)),
        "+inf logit": (means, stds, jnp.array([jnp.inf])),
        "all logits -inf": (means, stds, jnp.array([-jnp.inf])),
    }
    for name, (m, s, logits) in cases.items():
        value = float(log_prob(m, s, logits, x)[0])
        assert np.isnan(value), (name, value)
        assert np.isnan(np.asarray(jax.jit(functional.score)(m, s, logits, x))).all(), name


# --------------------------------------------------------------- command line

def run_main(capsys, *args):
    status = main([str(arg) for arg in args])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def run_script(*args, cwd):
    assert SCRIPT.exists(), f"console script not installed next to {sys.executable}"
    return subprocess.run(
        [str(SCRIPT), *[str(arg) for arg in args]], cwd=cwd, capture_output=True, text=True,
        timeout=300, check=False,
    )


def assert_one_line_error(status, err, *fragments):
    assert status == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("boltzkit"), err
    assert "Traceback" not in err
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])


def listing(directory):
    return sorted(os.listdir(directory))


def _write_npz(path, **arrays):
    with open(path, "wb") as handle:
        np.savez(handle, **arrays)


GOOD = {"means": np.zeros((2, 3)), "diag_stds": np.ones((2, 3)), "logits": np.zeros(2)}

# name: (file name, writer, fragments of the error)
BAD_FILES = {
    "missing": ("absent.npz", None, ["absent.npz", "no such file"]),
    "missing json": ("absent.json", None, ["absent.json", "no such file"]),
    "unknown extension": ("params.txt", lambda p: p.write_text("means"), ["params.txt", "extension",
                                                                          ".npz or .json"]),
    "object array": ("obj.npz", lambda p: _write_npz(p, means=np.array([object()], dtype=object),
                                                     diag_stds=np.ones((1, 1))),
                     ["obj.npz", "object arrays", "pickle"]),
    "pickle in npz member": ("pickled.npz", lambda p: _write_pickled_member(p),
                             ["pickled.npz", "object arrays"]),
    "not a zip": ("text.npz", lambda p: p.write_text("hello"), ["text.npz", "not a zip archive"]),
    "raw pickle": ("raw.npz", lambda p: p.write_bytes(b"\x80\x04K\x01."), ["raw.npz", "not a zip archive"]),
    "non-npy member": ("member.npz", lambda p: _write_raw_member(p), ["member.npz", "not a .npy array"]),
    "wrong keys": ("keys.npz", lambda p: _write_npz(p, mu=GOOD["means"], diag_stds=GOOD["diag_stds"]),
                   ["keys.npz", "missing means"]),
    "extra key": ("extra.npz", lambda p: _write_npz(p, **GOOD, weights=np.ones(2)),
                  ["extra.npz", "unexpected entries ['weights']"]),
    "NaN mean": ("nan.npz", lambda p: _write_npz(p, **{**GOOD, "means": np.full((2, 3), np.nan)}),
                 ["nan.npz", "means must be finite", "nan"]),
    "inf std": ("inf.npz", lambda p: _write_npz(p, **{**GOOD, "diag_stds": np.full((2, 3), np.inf)}),
                ["inf.npz", "diag_stds", "inf", "> 0"]),
    "+inf logit json": ("logit.json", lambda p: p.write_text(json.dumps(
        {"means": [[0.0]], "diag_stds": [[1.0]], "logits": [float("inf")]})),
        ["logit.json", "logits must not be +inf"]),
    "NaN std json": ("nan.json", lambda p: p.write_text(
        '{"means": [[0.0]], "diag_stds": [[NaN]]}'), ["nan.json", "diag_stds", "nan"]),
    "stds shape": ("shape.npz", lambda p: _write_npz(p, **{**GOOD, "diag_stds": np.ones((2, 2))}),
                   ["shape.npz", "diag_stds", "(2, 2)", "(2, 3)"]),
    "logits shape": ("lshape.npz", lambda p: _write_npz(p, **{**GOOD, "logits": np.zeros(3)}),
                     ["lshape.npz", "logits", "(3,)", "(2,)"]),
    "means 1-D json": ("flat.json", lambda p: p.write_text('{"means": [0, 1], "diag_stds": [1, 1]}'),
                       ["flat.json", "means", "(2,)"]),
    "directory": ("folder.npz", lambda p: p.mkdir(), ["folder.npz", "directory"]),
}


def _write_pickled_member(path):
    # A .npy member holding an object array is stored with pickle.
    buffer = io.BytesIO()
    np.lib.format.write_array(buffer, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("means.npy", buffer.getvalue())
        archive.writestr("diag_stds.npy", buffer.getvalue())


def _write_raw_member(path):
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("means.npy", b"not an array")
        archive.writestr("diag_stds.npy", b"not an array")


class _MakeDirectoryWhenUnpickled:
    """A pickle payload that creates a directory if anything ever unpickles it."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return os.mkdir, (self.marker,)


def _write_payload_npz(path, marker):
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        header, {"descr": "|O", "fortran_order": False, "shape": (1,)}
    )
    member = header.getvalue() + pickle.dumps(_MakeDirectoryWhenUnpickled(marker))
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("means.npy", member)
        archive.writestr("diag_stds.npy", member)
    return member


def test_payload_npz_is_never_unpickled(tmp_path, capsys):
    marker = tmp_path / "unpickled"
    member = _write_payload_npz(tmp_path / "payload.npz", marker)
    (tmp_path / "raw.npz").write_bytes(pickle.dumps(_MakeDirectoryWhenUnpickled(marker)))
    (tmp_path / "member.npy").write_bytes(member)

    # The payload works: loading it with pickle allowed creates the marker.
    np.load(tmp_path / "member.npy", allow_pickle=True)
    assert marker.is_dir()
    marker.rmdir()

    for name in ("payload.npz", "raw.npz"):
        status, _, err = run_main(capsys, "info", tmp_path / name)
        assert_one_line_error(status, err, name)
        with pytest.raises(ValueError, match=name):
            load_target(tmp_path / name)
        with pytest.raises(ValueError, match=name):
            Dataset.load(tmp_path / name)
    assert not marker.exists()


def _commands(target):
    return {
        "info": ["info", target],
        "sample": ["sample", target, "-n", "5", "-o", "out.npy"],
        "dataset": ["dataset", target, "--split", "val", "--length", "5", "-o", "out.npz"],
        "plot": ["plot", target, "-n", "5", "-o", "out.png"],
    }


@pytest.mark.parametrize("command", ["info", "sample", "dataset", "plot"])
@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_cli_rejects_bad_parameter_file(case, command, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    name, writer, fragments = BAD_FILES[case]
    if writer is not None:
        writer(tmp_path / name)
    before = listing(tmp_path)
    status, _, err = run_main(capsys, *_commands(name)[command])
    assert_one_line_error(status, err, *fragments)
    assert listing(tmp_path) == before


@pytest.mark.parametrize("case", ["missing", "object array", "not a zip", "NaN std json"])
def test_script_rejects_bad_parameter_file(case, tmp_path):
    name, writer, fragments = BAD_FILES[case]
    if writer is not None:
        writer(tmp_path / name)
    before = listing(tmp_path)
    result = run_script(*_commands(name)["dataset"], cwd=tmp_path)
    assert_one_line_error(result.returncode, result.stderr, *fragments)
    assert result.stdout == ""
    assert listing(tmp_path) == before


def test_cli_output_under_regular_file(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "file").write_text("x")
    for command in (["sample", "gmm40", "-n", "5", "-o", "file/out.npy"],
                    ["dataset", "gmm40", "--split", "val", "--length", "5", "-o", "file/out.npz"],
                    ["plot", "gmm40", "-n", "5", "-o", "file/out.png"]):
        status, _, err = run_main(capsys, *command)
        assert_one_line_error(status, err, "file", "is not a directory")
    assert listing(tmp_path) == ["file"]


def test_cli_refuses_dev_full(tmp_path, capsys):
    status, _, err = run_main(capsys, "sample", "gmm40", "-n", "5", "-o", "/dev/full")
    assert_one_line_error(status, err, "/dev/full", ".npz or .npy")
    link = tmp_path / "full.npy"
    link.symlink_to("/dev/full")
    status, _, err = run_main(capsys, "sample", "gmm40", "-n", "5", "-o", link, "--force")
    assert_one_line_error(status, err, "full.npy", "not a regular file")
    assert listing(tmp_path) == ["full.npy"]
    assert link.is_symlink()


def _mount_tmpfs(directory, options):
    """Mount a tmpfs on ``directory``; return whether it worked (it needs root)."""
    if os.geteuid() != 0 or shutil.which("mount") is None:
        return False
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(directory)],
                            capture_output=True, check=False)
    return result.returncode == 0


def _unmount(directory):
    subprocess.run(["umount", str(directory)], capture_output=True, check=True)


@pytest.fixture
def unwritable_dir(tmp_path):
    """Yield (directory, method): a directory that even root cannot write to.

    Root passes every permission check, so for root the directory is a
    read-only tmpfs, or else an immutable directory (chattr +i). Other users
    get a directory with mode 0o555.
    """
    directory = tmp_path / "locked"
    directory.mkdir()
    if os.geteuid() != 0:
        directory.chmod(0o555)
        try:
            yield directory, "chmod 555"
        finally:
            directory.chmod(0o755)
    elif _mount_tmpfs(directory, "ro,size=64k"):
        try:
            yield directory, "read-only tmpfs"
        finally:
            _unmount(directory)
    else:
        subprocess.run(["chattr", "+i", str(directory)], check=True, capture_output=True)
        try:
            yield directory, "chattr +i"
        finally:
            subprocess.run(["chattr", "-i", str(directory)], check=True, capture_output=True)


def test_cli_unwritable_directory(unwritable_dir, capsys):
    directory, _ = unwritable_dir
    for command in (["sample", "gmm40", "-n", "5", "-o", directory / "out.npy"],
                    ["dataset", "gmm40", "--split", "val", "--length", "5", "-o", directory / "o.npz"],
                    ["plot", "gmm40", "-n", "5", "-o", directory / "out.png"]):
        status, _, err = run_main(capsys, *command)
        assert_one_line_error(status, err, str(directory), "not writable")
    result = run_script("dataset", "gmm40", "--split", "val", "--length", "5",
                        "-o", directory / "out.npz", cwd=directory.parent)
    assert_one_line_error(result.returncode, result.stderr, str(directory), "not writable")
    assert listing(directory) == []


def test_api_unwritable_directory(unwritable_dir):
    directory, _ = unwritable_dir
    with pytest.raises(PermissionError, match="not writable"):
        save_target(GMM, directory / "gmm.json")
    with pytest.raises(PermissionError, match="not writable"):
        Dataset(samples=[[0.0]]).save(directory / "data.npz")
    assert listing(directory) == []


FILE_SIZE_CAP = 64 * 1024


@contextlib.contextmanager
def _small_disk(directory):
    """Make ``directory`` a 64 KiB tmpfs if mounting is permitted, and yield whether it is.

    Without the tmpfs, callers cap the file size at 64 KiB with
    RLIMIT_FSIZE instead, so writes fail with EFBIG ("File too large") the
    way they fail with ENOSPC on a full disk.
    """
    mounted = _mount_tmpfs(directory, "size=64k")
    try:
        yield mounted
    finally:
        if mounted:
            _unmount(directory)


def _capped_script(*args):
    """Return a command that runs the script with the file size capped, set before exec."""
    setup = (
        "import os, resource, sys; "
        f"resource.setrlimit(resource.RLIMIT_FSIZE, ({FILE_SIZE_CAP}, {FILE_SIZE_CAP})); "
        "os.execv(sys.argv[1], sys.argv[1:])"
    )
    return [sys.executable, "-c", setup, str(SCRIPT), *[str(arg) for arg in args]]


FULL_DISK_COMMANDS = {
    # The temporary parts already overflow 64 KiB.
    "dataset": ["dataset", "gmm40", "--split", "train", "--length", "20000", "--log-probs",
                "--scores", "-o", "big.npz"],
    # The temporary part (40 KB) fits; the final copy beside it does not.
    "sample": ["sample", "gmm40", "-n", "5000", "-o", "big.npy"],
    "save": ["sample", "gmm40", "-n", "20000", "-o", "big.npz"],
}


@pytest.mark.parametrize("command", sorted(FULL_DISK_COMMANDS))
def test_script_full_disk(command, tmp_path):
    directory = tmp_path / "small"
    directory.mkdir()
    with _small_disk(directory) as mounted:
        arguments = list(FULL_DISK_COMMANDS[command])
        if mounted:
            result = run_script(*arguments, cwd=directory)
        else:
            if command == "sample":
                # The file-size cap applies per file, so the 40 KB parts would fit; 80 KB do not.
                arguments[arguments.index("5000")] = "10000"
            result = subprocess.run(_capped_script(*arguments), cwd=directory, capture_output=True,
                                    text=True, timeout=300, check=False)
        reason = "No space left on device" if mounted else "File too large"
        assert_one_line_error(result.returncode, result.stderr, "cannot write big.np", reason)
        assert listing(directory) == []


def test_main_full_disk(tmp_path, capsys):
    directory = tmp_path / "small"
    directory.mkdir()
    command = [*FULL_DISK_COMMANDS["dataset"][:-1], directory / "big.npz"]
    with _small_disk(directory) as mounted:
        if not mounted:
            # Without a tmpfs the in-process run gets the file-size cap for the duration of the call.
            previous = resource.getrlimit(resource.RLIMIT_FSIZE)
            resource.setrlimit(resource.RLIMIT_FSIZE, (FILE_SIZE_CAP, previous[1]))
        try:
            status, _, err = run_main(capsys, *command)
        finally:
            if not mounted:
                resource.setrlimit(resource.RLIMIT_FSIZE, previous)
        assert_one_line_error(status, err, f"cannot write {directory / 'big.npz'}")
        assert listing(directory) == []


def _expected_dataset(seed, length):
    return DiagonalGaussianMixture.create_gmm40().load_dataset(
        "train", length, include_log_probs=True, seed=seed
    )


@pytest.mark.parametrize("force", [False, True])
def test_concurrent_dataset_writers(force, tmp_path):
    length = 50_000
    commands = [
        [str(SCRIPT), "dataset", "gmm40", "--split", "train", "--length", str(length), "--log-probs",
         "--seed", str(seed), "-o", "shared.npz", *(["--force"] if force else [])]
        for seed in (0, 1)
    ]
    processes = [subprocess.Popen(command, cwd=tmp_path, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True) for command in commands]
    results = [(process.wait(timeout=300), *process.communicate()) for process in processes]

    assert listing(tmp_path) == ["shared.npz"]
    loaded = Dataset.load(tmp_path / "shared.npz")
    assert len(loaded) == length
    statuses = [status for status, _, _ in results]
    if force:
        assert statuses == [0, 0], results
    else:
        assert sorted(statuses) == [0, 2], results
        loser = results[statuses.index(2)]
        assert_one_line_error(2, loser[2], "shared.npz", "already exists")
    # The file is one writer's complete output, not a mixture of both.
    matches = []
    for seed in (0, 1):
        expected = _expected_dataset(seed, length)
        matches.append(np.array_equal(np.asarray(loaded.samples), np.asarray(expected.samples))
                       and np.array_equal(np.asarray(loaded.log_probs), np.asarray(expected.log_probs)))
    assert sum(matches) == 1
    if not force:
        assert statuses[matches.index(True)] == 0



@pytest.mark.parametrize(("signal_number", "status", "message"), [
    (signal.SIGTERM, 143, "boltzkit: terminated"),
    (signal.SIGINT, 130, "boltzkit: interrupted"),
])
def test_signal_leaves_no_temporary_files(signal_number, status, message, tmp_path):
    command = [str(SCRIPT), "dataset", "gmm40", "--split", "train", "--length", "100000000",
               "--log-probs", "--scores", "-o", "huge.npz"]
    # A shell that runs this suite in the background ignores SIGINT, and a
    # child inherits an ignored signal. A handled one is reset to the default
    # at exec, which is what a user's Ctrl-C meets.
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        process = subprocess.Popen(command, cwd=tmp_path, stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE, text=True)
    finally:
        signal.signal(signal.SIGINT, previous)
    try:
        # Wait until the scratch folder of the write exists, so the signal arrives mid-write.
        deadline = time.monotonic() + 120
        while not listing(tmp_path) and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert listing(tmp_path), "the command never started writing"
        process.send_signal(signal_number)
        _, err = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()

    assert process.returncode == status, err
    assert err.strip() == message
    assert listing(tmp_path) == []


def test_signal_in_gc_callback_deferred():
    # Python prints and drops an exception raised in a garbage-collector
    # callback, so the handler records the signal and raises it later.
    raised_in_callback = []

    def callback(phase, info):
        if phase == "start" and not raised_in_callback:
            try:
                _signals._handle(signal.SIGTERM, sys._getframe())
                raised_in_callback.append(False)
            except _signals.Terminated:
                raised_in_callback.append(True)

    gc.callbacks.append(callback)
    try:
        with pytest.raises(_signals.Terminated):
            with _signals.signals_as_exceptions():
                gc.collect()
                assert raised_in_callback == [False]
    finally:
        gc.callbacks.remove(callback)
