"""Dataset streams of a target and the Dataset container with its files."""

from __future__ import annotations

import os
import pickle

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from boltzkit import Dataset, _io, datasets
from boltzkit.targets import DiagonalGaussianMixture
from tests._jax_compat import enable_x64


@pytest.fixture(scope="module")
def gmm40():
    return DiagonalGaussianMixture.create_gmm40()


@pytest.fixture(scope="module")
def long_train(gmm40):
    """The first BLOCK_SIZE + 4464 training items with log_probs and scores."""
    return gmm40.load_dataset("train", datasets.BLOCK_SIZE + 4464, include_log_probs=True,
                              include_scores=True)


def test_block_size():
    assert datasets.BLOCK_SIZE == 65536


def test_fields_and_shapes(gmm40):
    dataset = gmm40.load_dataset("val", 1000)
    assert isinstance(dataset, Dataset)
    assert dataset.samples.shape == (1000, 2)
    assert dataset.samples.dtype == jnp.float32
    assert dataset.log_probs is None
    assert dataset.scores is None
    assert len(dataset) == 1000

    full = gmm40.load_dataset("val", 1000, include_log_probs=True, include_scores=True)
    assert full.log_probs.shape == (1000,)
    assert full.scores.shape == (1000, 2)
    np.testing.assert_array_equal(full.samples, dataset.samples)

    only_log_probs = gmm40.load_dataset("val", 10, include_samples=False, include_log_probs=True)
    assert only_log_probs.samples is None
    np.testing.assert_array_equal(only_log_probs.log_probs, full.log_probs[:10])


def test_deterministic(gmm40):
    first = gmm40.load_dataset("test", 1000, include_log_probs=True, include_scores=True)
    second = gmm40.load_dataset("test", 1000, include_log_probs=True, include_scores=True)
    np.testing.assert_array_equal(first.samples, second.samples)
    np.testing.assert_array_equal(first.log_probs, second.log_probs)
    rebuilt = DiagonalGaussianMixture.create_gmm40()
    np.testing.assert_array_equal(rebuilt.load_dataset("test", 1000).samples, first.samples)


def test_splits_and_seeds_differ(gmm40):
    samples = {split: np.asarray(gmm40.load_dataset(split, 1000).samples)
               for split in ("train", "val", "test")}
    samples["sample"] = np.asarray(gmm40.sample(1000, seed=0))
    samples["train seed 1"] = np.asarray(gmm40.load_dataset("train", 1000, seed=1).samples)
    names = list(samples)
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            # No item of one stream appears anywhere in another.
            common = set(map(tuple, samples[a])) & set(map(tuple, samples[b]))
            assert not common, f"{a} and {b} share items"


def test_seed_forms_agree(gmm40):
    reference = np.asarray(gmm40.load_dataset("val", 1000, seed=3).samples)
    for seed in (np.int64(3), jax.random.key(3), jax.random.PRNGKey(3)):
        np.testing.assert_array_equal(gmm40.load_dataset("val", 1000, seed=seed).samples,
                                      reference)


def test_prefix_stable_small_lengths(gmm40):
    longest = np.asarray(gmm40.load_dataset("train", 1000).samples)
    # Lengths whose blocks are rounded to 1, 8, 128 and 1024 items.
    for length in (0, 1, 5, 8, 65, 100, 513):
        np.testing.assert_array_equal(gmm40.load_dataset("train", length).samples,
                                      longest[:length])


def test_prefix_stable_across_block_boundary(gmm40, long_train):
    one_block = gmm40.load_dataset("train", datasets.BLOCK_SIZE, include_log_probs=True,
                                   include_scores=True)
    for field in ("samples", "log_probs", "scores"):
        np.testing.assert_array_equal(getattr(long_train, field)[: datasets.BLOCK_SIZE],
                                      getattr(one_block, field))
    shorter = gmm40.load_dataset("train", 1000)
    np.testing.assert_array_equal(long_train.samples[:1000], shorter.samples)


def test_offset_windows_equal_slices(gmm40, long_train):
    boundary = datasets.BLOCK_SIZE
    for offset, length in [(0, 100), (10, 100), (boundary - 50, 100), (boundary, 100),
                           (boundary - 1, 100), (boundary + 1000, 1000), (boundary + 3464, 1000)]:
        window = gmm40.load_dataset("train", length, offset=offset, include_log_probs=True,
                                    include_scores=True)
        assert len(window) == length
        expected = long_train[offset:offset + length]
        for field in ("samples", "log_probs", "scores"):
            np.testing.assert_array_equal(getattr(window, field), getattr(expected, field),
                                          err_msg=f"{field} of {length} items at {offset}")


def _random_mixture(n_components, dim, seed):
    rng = np.random.default_rng(seed)
    return DiagonalGaussianMixture(
        means=jnp.asarray(rng.normal(size=(n_components, dim)), jnp.float32),
        diag_stds=jnp.asarray(rng.uniform(0.5, 1.5, size=(n_components, dim)), jnp.float32),
        logits=jnp.asarray(rng.normal(size=n_components), jnp.float32),
    )


@pytest.mark.parametrize(("n_components", "dim"), [(6, 24), (40, 32)])
def test_derived_values_independent_of_window(n_components, dim):
    # Windows of other lengths run at other batch shapes. Unpadded, XLA
    # rounded some log_probs and scores of these mixtures differently.
    target = _random_mixture(n_components, dim, seed=1)
    block = datasets.evaluation_block_size(target)
    longest = target.load_dataset("train", block + 100, include_log_probs=True,
                                  include_scores=True)
    for offset, length in [(0, 1), (0, 16), (0, 100), (0, 128), (3, 61), (block - 5, 50)]:
        window = target.load_dataset("train", length, offset=offset, include_log_probs=True,
                                     include_scores=True)
        for field in ("samples", "log_probs", "scores"):
            np.testing.assert_array_equal(getattr(window, field),
                                          getattr(longest, field)[offset:offset + length],
                                          err_msg=f"{field} of {length} items at {offset}")


def test_evaluation_block_size_bounds_memory():
    assert datasets.evaluation_block_size(DiagonalGaussianMixture.create_gmm40()) == 65536
    assert datasets.evaluation_block_size(_random_mixture(128, 512, seed=0)) == 4096
    assert datasets.evaluation_block_size(_random_mixture(2, 20000, seed=0)) == 1024


def test_full_block_windows_bit_identical(gmm40, long_train):
    # Windows evaluated with the same block size run the same program.
    boundary = datasets.BLOCK_SIZE
    window = gmm40.load_dataset("train", boundary, offset=4464, include_log_probs=True,
                                include_scores=True)
    for field in ("samples", "log_probs", "scores"):
        np.testing.assert_array_equal(getattr(window, field),
                                      getattr(long_train, field)[4464:])


def test_windows_concatenate_to_the_stream(gmm40):
    whole = np.asarray(gmm40.load_dataset("val", 1000).samples)
    parts = [gmm40.load_dataset("val", 250, offset=start).samples for start in range(0, 1000, 250)]
    np.testing.assert_array_equal(np.concatenate(parts), whole)


def test_far_offset_matches_sample_at(gmm40):
    offset = 2**32 - 11
    window = gmm40.load_dataset("test", 10, offset=offset)
    key = datasets.split_key("test", 0)
    np.testing.assert_array_equal(window.samples,
                                  gmm40.sample_at(key, offset + np.arange(10, dtype=np.uint32)))


def test_derived_values_equal_target_methods(gmm40, long_train):
    # More than one chunk of rows: the dataset calls log_prob and score on
    # the same float32 samples in the same chunks, so equality is exact.
    np.testing.assert_array_equal(long_train.log_probs, gmm40.log_prob(long_train.samples))
    np.testing.assert_array_equal(long_train.scores, gmm40.score(long_train.samples))
    assert np.all(np.isfinite(np.asarray(long_train.log_probs)))
    assert np.all(np.isfinite(np.asarray(long_train.scores)))

    # log_prob_and_score fuses differently and may differ in the last bit.
    log_probs, scores = gmm40.log_prob_and_score(long_train.samples)
    np.testing.assert_array_max_ulp(np.asarray(long_train.log_probs), np.asarray(log_probs), 2)
    np.testing.assert_array_equal(long_train.scores, scores)

    # A short dataset is evaluated in a block rounded up to a power of two,
    # another batch shape than the methods' call on the returned samples.
    for length in (64, 100, 257, 1000):
        dataset = gmm40.load_dataset("val", length, include_log_probs=True, include_scores=True)
        np.testing.assert_array_equal(dataset.log_probs, gmm40.log_prob(dataset.samples))
        np.testing.assert_array_equal(dataset.scores, gmm40.score(dataset.samples))


def test_stream_definition_matches_sample_at(gmm40):
    # Item i of a split is drawn from fold_in(fold_in(fold_in(root, 2**32 - 1), s), i).
    root = jax.random.key(5, impl="threefry2x32")
    split_key = jax.random.fold_in(jax.random.fold_in(root, 2**32 - 1), 1)
    expected = gmm40.sample_at(split_key, np.arange(30))
    np.testing.assert_array_equal(gmm40.load_dataset("val", 30, seed=5).samples, expected)
    np.testing.assert_array_equal(gmm40.sample(30, seed=5), gmm40.sample_at(root, np.arange(30)))


def test_empty_dataset(gmm40):
    empty = gmm40.load_dataset("train", 0, include_log_probs=True, include_scores=True)
    assert len(empty) == 0
    assert empty.samples.shape == (0, 2)
    assert empty.log_probs.shape == (0,)
    assert empty.scores.shape == (0, 2)


def test_load_dataset_writes_no_files(gmm40, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    gmm40.load_dataset("train", 100, include_log_probs=True)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("kwargs", "error", "name"),
    [
        (dict(type="training", length=3), ValueError, "type"),
        (dict(type="Train", length=3), ValueError, "type"),
        (dict(type=0, length=3), TypeError, "type"),
        (dict(type=None, length=3), TypeError, "type"),
        (dict(type="val", length=-1), ValueError, "length"),
        (dict(type="val", length=2.0), TypeError, "length"),
        (dict(type="val", length=True), TypeError, "length"),
        (dict(type="val", length="10"), TypeError, "length"),
        (dict(type="val", length=3, offset=-1), ValueError, "offset"),
        (dict(type="val", length=3, offset=1.5), TypeError, "offset"),
        (dict(type="val", length=3, offset=False), TypeError, "offset"),
        (dict(type="val", length=3, offset=2**32 - 3), ValueError, "offset"),
        (dict(type="val", length=3, seed=-1), ValueError, "seed"),
        (dict(type="val", length=3, seed=0.5), TypeError, "seed"),
        (dict(type="val", length=3, include_samples=1), TypeError, "include_samples"),
        (dict(type="val", length=3, include_log_probs="yes"), TypeError, "include_log_probs"),
        (dict(type="val", length=3, include_scores=None), TypeError, "include_scores"),
        (dict(type="val", length=3, include_samples=False), ValueError, "include_samples"),
    ],
)
def test_load_dataset_rejects_bad_arguments(gmm40, kwargs, error, name):
    with pytest.raises(error, match=name):
        gmm40.load_dataset(**kwargs)


# ---------------------------------------------------------- Dataset


def test_accessors():
    samples = np.arange(6, dtype=np.float32).reshape(3, 2)
    dataset = Dataset(samples=samples, log_probs=[-1.0, -2.0, -3.0])
    np.testing.assert_array_equal(dataset.get_samples(), samples)
    np.testing.assert_array_equal(dataset.get_log_probs(), np.float32([-1, -2, -3]))
    with pytest.raises(ValueError, match="include_scores"):
        dataset.get_scores()
    with pytest.raises(ValueError, match="include_samples"):
        Dataset(log_probs=[1.0]).get_samples()
    with pytest.raises(ValueError, match="include_log_probs"):
        Dataset(samples=[[1.0]]).get_log_probs()
    assert len(dataset) == 3
    assert len(Dataset(scores=np.zeros((4, 2)))) == 4


def test_dataset_accessors_match_fields(gmm40):
    dataset = gmm40.load_dataset("val", 1000, include_log_probs=True, include_scores=True)
    assert dataset.get_samples() is dataset.samples
    assert dataset.get_log_probs() is dataset.log_probs
    assert dataset.get_scores() is dataset.scores


def test_slicing_and_pytree(gmm40):
    dataset = gmm40.load_dataset("val", 1000, include_log_probs=True, include_scores=True)
    head = dataset[:10]
    assert len(head) == 10
    np.testing.assert_array_equal(head.log_probs, dataset.log_probs[:10])
    np.testing.assert_array_equal(head.scores, dataset.scores[:10])
    with pytest.raises(TypeError, match="slice"):
        dataset[3]
    assert len(jax.tree.leaves(dataset)) == 3
    assert len(jax.tree.leaves(Dataset(samples=[[1.0]]))) == 1
    total = jax.jit(lambda d: jnp.sum(d.log_probs))(dataset)
    np.testing.assert_allclose(total, np.sum(np.asarray(dataset.log_probs, np.float64)),
                               rtol=1e-5)


@pytest.mark.parametrize(
    ("kwargs", "error", "name"),
    [
        (dict(), ValueError, "at least one"),
        (dict(samples=np.zeros(3)), ValueError, "samples"),
        (dict(log_probs=np.zeros((3, 1))), ValueError, "log_probs"),
        (dict(scores=np.zeros(3)), ValueError, "scores"),
        (dict(samples=np.zeros((3, 2)), log_probs=np.zeros(4)), ValueError, "same length"),
        (dict(samples=np.zeros((3, 2)), scores=np.zeros((3, 1))), ValueError, "scores"),
        (dict(samples=[["a"]]), TypeError, "samples"),
    ],
)
def test_dataset_rejects_bad_fields(kwargs, error, name):
    with pytest.raises(error, match=name):
        Dataset(**kwargs)


def test_save_load_round_trip_bit_identical(gmm40, tmp_path):
    dataset = gmm40.load_dataset("test", 1000, include_log_probs=True, include_scores=True)[:777]
    path = tmp_path / "test.npz"
    dataset.save(path)
    loaded = Dataset.load(path)
    assert len(loaded) == 777
    for field in ("samples", "log_probs", "scores"):
        original = np.asarray(getattr(dataset, field))
        again = np.asarray(getattr(loaded, field))
        assert again.dtype == original.dtype
        assert again.tobytes() == original.tobytes()
    with np.load(path, allow_pickle=False) as archive:
        assert sorted(archive.files) == ["log_probs", "samples", "scores"]

    partial = Dataset(samples=dataset.samples[:5])
    partial.save(str(tmp_path / "partial.npz"))
    loaded = Dataset.load(str(tmp_path / "partial.npz"))
    assert loaded.log_probs is None
    assert loaded.scores is None
    assert np.asarray(loaded.samples).tobytes() == np.asarray(partial.samples).tobytes()


def test_save_float64_round_trip_under_x64(tmp_path):
    with enable_x64():
        dataset = Dataset(samples=np.random.default_rng(0).normal(size=(5, 3)))
        assert dataset.samples.dtype == jnp.float64
        dataset.save(tmp_path / "f64.npz")
        loaded = Dataset.load(tmp_path / "f64.npz")
        assert np.asarray(loaded.samples).tobytes() == np.asarray(dataset.samples).tobytes()


def test_save_does_not_overwrite(tmp_path):
    path = tmp_path / "data.npz"
    Dataset(samples=[[1.0]]).save(path)
    before = path.read_bytes()
    with pytest.raises(FileExistsError, match="exists"):
        Dataset(samples=[[2.0]]).save(path)
    assert path.read_bytes() == before
    Dataset(samples=[[2.0]]).save(path, overwrite=True)
    np.testing.assert_array_equal(Dataset.load(path).samples, [[2.0]])
    assert sorted(os.listdir(tmp_path)) == ["data.npz"]


def test_save_rejects_bad_paths(tmp_path):
    with pytest.raises(ValueError, match=r"\.npz"):
        Dataset(samples=[[1.0]]).save(tmp_path / "data.npy")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        Dataset(samples=[[1.0]]).save(tmp_path / "missing" / "data.npz")
    assert list(tmp_path.iterdir()) == []


def test_failed_save_leaves_no_file(tmp_path, monkeypatch):
    def failing_savez(handle, **arrays):
        handle.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(_io.np, "savez", failing_savez)
    path = tmp_path / "data.npz"
    with pytest.raises(OSError, match="disk full"):
        Dataset(samples=[[1.0]]).save(path)
    assert list(tmp_path.iterdir()) == []


def test_failed_overwrite_keeps_old_file(tmp_path, monkeypatch):
    path = tmp_path / "data.npz"
    Dataset(samples=[[1.0]]).save(path)
    before = path.read_bytes()

    def failing_savez(handle, **arrays):
        handle.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(_io.np, "savez", failing_savez)
    with pytest.raises(OSError, match="disk full"):
        Dataset(samples=[[2.0]]).save(path, overwrite=True)
    assert path.read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["data.npz"]


def test_save_loses_race_with_concurrent_writer(tmp_path, monkeypatch):
    # A file created between the check and the final link is not replaced.
    path = tmp_path / "data.npz"
    original_savez = np.savez

    def savez_then_competitor(handle, **arrays):
        original_savez(handle, **arrays)
        path.write_bytes(b"competitor")

    monkeypatch.setattr(_io.np, "savez", savez_then_competitor)
    with pytest.raises(FileExistsError):
        Dataset(samples=[[1.0]]).save(path)
    assert path.read_bytes() == b"competitor"
    assert sorted(os.listdir(tmp_path)) == ["data.npz"]


def test_load_rejects_object_arrays(tmp_path):
    path = tmp_path / "pickled.npz"
    np.savez(path, samples=np.array([{"a": 1}, None], dtype=object))
    with pytest.raises(ValueError, match="object arrays"):
        Dataset.load(path)


def test_load_rejects_unknown_keys(tmp_path):
    path = tmp_path / "other.npz"
    np.savez(path, samples=np.zeros((2, 2)), weights=np.ones(2))
    with pytest.raises(ValueError, match="weights"):
        Dataset.load(path)
    np.savez(tmp_path / "empty.npz")
    with pytest.raises(ValueError, match=r"empty\.npz"):
        Dataset.load(tmp_path / "empty.npz")


def test_load_rejects_inconsistent_fields(tmp_path):
    path = tmp_path / "bad.npz"
    np.savez(path, samples=np.zeros((3, 2)), log_probs=np.zeros(4))
    with pytest.raises(ValueError, match=r"bad\.npz.*same length"):
        Dataset.load(path)
    np.savez(path, samples=np.array([["a", "b"]]))
    with pytest.raises(ValueError, match=r"bad\.npz"):
        Dataset.load(path)


def test_load_rejects_other_files(tmp_path):
    npy = tmp_path / "samples.npy"
    np.save(npy, np.zeros((2, 2)))
    with pytest.raises(ValueError, match="npy"):
        Dataset.load(npy)
    garbage = tmp_path / "garbage.npz"
    garbage.write_bytes(b"not a zip file at all")
    with pytest.raises(ValueError, match=r"garbage\.npz"):
        Dataset.load(garbage)
    truncated = tmp_path / "truncated.npz"
    Dataset(samples=np.zeros((100, 2))).save(tmp_path / "whole.npz")
    truncated.write_bytes((tmp_path / "whole.npz").read_bytes()[:200])
    with pytest.raises(ValueError, match=r"truncated\.npz"):
        Dataset.load(truncated)
    with pytest.raises(FileNotFoundError):
        Dataset.load(tmp_path / "missing.npz")
    with pytest.raises(ValueError, match="not a valid"):
        Dataset.load(tmp_path)


class _MakesDirectoryWhenUnpickled:
    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (os.mkdir, (self.path,))


def test_load_never_unpickles(tmp_path):
    marker = tmp_path / "unpickled"
    for name in ("pickle.npz", "pickle.npy"):
        path = tmp_path / name
        with open(path, "wb") as handle:
            pickle.dump(_MakesDirectoryWhenUnpickled(str(marker)), handle)
        with pytest.raises(ValueError, match="pickle"):
            Dataset.load(path)
    archive = tmp_path / "object.npz"
    np.savez(archive, samples=np.array([_MakesDirectoryWhenUnpickled(str(marker))],
                                       dtype=object))
    with pytest.raises(ValueError, match="object arrays"):
        Dataset.load(archive)
    assert not marker.exists()
