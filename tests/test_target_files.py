"""Parameter files: save_target then load_target gives bit-identical parameters."""

from __future__ import annotations

import json

import jax
import numpy as np
import pytest

from boltzkit.targets import DiagonalGaussianMixture, load_target, save_target


@pytest.fixture(params=["float32", "float64"])
def dtype(request):
    """Enable x64 for float64 and restore the previous setting afterwards."""
    previous = jax.config.jax_enable_x64
    jax.config.update("jax_enable_x64", request.param == "float64")
    try:
        yield np.dtype(request.param)
    finally:
        jax.config.update("jax_enable_x64", previous)


def _random_bits(rng, shape, dtype):
    """Return floats with uniformly random bit patterns: any exponent, subnormals included."""
    unsigned = np.uint32 if dtype == np.float32 else np.uint64
    info = np.iinfo(unsigned)
    bits = rng.integers(0, info.max, size=shape, dtype=unsigned, endpoint=True)
    return bits.view(dtype)


def _hard_parameters(dtype, seed=0):
    """Return parameters that stress the text format: random bits, extremes, -0.0 and -inf."""
    rng = np.random.default_rng(seed)
    info = np.finfo(dtype)
    means = _random_bits(rng, (6, 5), dtype)
    means[~np.isfinite(means)] = 1.0
    means[0, :] = [info.max, -info.max, info.smallest_subnormal, -0.0, 0.1]
    # Stds must be normal numbers: XLA on the CPU flushes subnormal ones to zero.
    stds = np.abs(_random_bits(rng, (6, 5), dtype))
    stds[~np.isfinite(stds) | (stds < info.tiny)] = 2.0
    stds[1, :] = [info.tiny, np.nextafter(info.tiny, dtype.type(1)), info.max, 1.0 / 3.0, info.eps]
    logits = np.array([-np.inf, 0.1, -np.inf, 1e-30, -50.0, 1.0 / 3.0], dtype)
    return means, stds, logits


def _assert_bit_identical(loaded, original):
    assert loaded.dtype == original.dtype
    for name in ("means", "diag_stds", "logits"):
        actual = np.asarray(getattr(loaded, name))
        expected = np.asarray(getattr(original, name))
        assert actual.dtype == expected.dtype, name
        assert actual.shape == expected.shape, name
        assert actual.tobytes() == expected.tobytes(), name


@pytest.mark.parametrize("suffix", [".npz", ".json"])
def test_round_trip_bit_identical(dtype, suffix, tmp_path):
    original = DiagonalGaussianMixture(*_hard_parameters(dtype))
    assert original.dtype == dtype
    path = tmp_path / f"target{suffix}"
    save_target(original, path)
    _assert_bit_identical(load_target(path), original)
    _assert_bit_identical(load_target(str(path)), original)


@pytest.mark.parametrize("suffix", [".npz", ".json"])
def test_round_trip_random_bits(dtype, suffix, tmp_path):
    for seed in range(1, 6):
        original = DiagonalGaussianMixture(*_hard_parameters(dtype, seed))
        path = tmp_path / f"target{seed}{suffix}"
        save_target(original, path)
        _assert_bit_identical(load_target(path), original)


def test_round_trip_builtin(tmp_path):
    original = load_target("gmm40")
    for suffix in (".npz", ".json"):
        save_target(original, tmp_path / f"gmm40{suffix}")
        _assert_bit_identical(load_target(tmp_path / f"gmm40{suffix}"), original)


def test_json_format(dtype, tmp_path):
    original = DiagonalGaussianMixture([[0.5, -1.0]], [[2.0, 0.25]], [0.0])
    path = tmp_path / "small.json"
    save_target(original, path)
    content = json.loads(path.read_text())
    assert content == {
        "dtype": dtype.name,
        "means": [[0.5, -1.0]],
        "diag_stds": [[2.0, 0.25]],
        "logits": [0.0],
    }


def test_json_neg_inf_logit_is_written_as_text(tmp_path):
    original = DiagonalGaussianMixture([[0.0], [1.0]], [[1.0], [1.0]], [0.0, -np.inf])
    path = tmp_path / "inf.json"
    save_target(original, path)
    assert "-Infinity" in path.read_text()
    assert np.isneginf(np.asarray(load_target(path).logits)[1])


def test_npz_arrays_keep_dtype(dtype, tmp_path):
    original = DiagonalGaussianMixture(*_hard_parameters(dtype))
    path = tmp_path / "target.npz"
    save_target(original, path)
    with np.load(path, allow_pickle=False) as archive:
        assert sorted(archive.files) == ["diag_stds", "logits", "means"]
        for name in archive.files:
            assert archive[name].dtype == dtype, name


def test_save_target_does_not_overwrite(tmp_path):
    first = DiagonalGaussianMixture([[0.0]], [[1.0]])
    second = DiagonalGaussianMixture([[5.0]], [[1.0]])
    path = tmp_path / "target.json"
    save_target(first, path)
    with pytest.raises(FileExistsError, match="already exists"):
        save_target(second, path)
    _assert_bit_identical(load_target(path), first)
    save_target(second, path, overwrite=True)
    _assert_bit_identical(load_target(path), second)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["target.json"]
