"""Golden values that pin the GMM40 sample and dataset streams bit for bit.

The values were produced with jax 0.10.2 on the CPU. The stream definition is
a compatibility promise: if one of these tests fails after a JAX upgrade, JAX
changed its random bits, and the library has to restore the old stream rather
than update the numbers.
"""

from __future__ import annotations

import hashlib

import jax
import numpy as np
import pytest
import scipy.special

from boltzkit import datasets
from boltzkit.targets import DiagonalGaussianMixture

# SHA-256 of the float32 bytes (C order, little-endian) of the first 64
# samples, and the first two samples in clear.
GOLDEN = {
    "train": (
        "64f571ef9d197499bb28e57e2fc688f9c0036e9c0e4ae07598eb32a057b0fddd",
        [[-4.443263053894043, 23.741180419921875], [0.7329235076904297, -5.477444648742676]],
    ),
    "val": (
        "32b06bc92691cab01b59faceac3fa87cb12acd696c6f27f8a3c4524543241bfd",
        [[14.638232231140137, 12.044215202331543], [-8.058252334594727, 30.937206268310547]],
    ),
    "test": (
        "7c453c0c182cfe463135ae2ba41ace7586ff73bf753b2269917d80da1483c8f0",
        [[-17.052593231201172, -6.591324806213379], [15.219266891479492, 13.114785194396973]],
    ),
    "sample": (
        "e92425277a474de0bbd7b72445aac3c2d13b17c460dca773ad9fe505632ea462",
        [[-24.94510269165039, 34.62087631225586], [8.92125415802002, -18.211519241333008]],
    ),
}


@pytest.fixture(scope="module")
def gmm40():
    return DiagonalGaussianMixture.create_gmm40()


def first_samples(target, stream, length=64):
    if stream == "sample":
        samples = target.sample(length, seed=0)
    else:
        samples = target.load_dataset(stream, length, seed=0).samples
    return np.asarray(samples)


def fingerprint(samples):
    samples = np.ascontiguousarray(samples[:64], dtype="<f4")
    return hashlib.sha256(samples.tobytes()).hexdigest()


@pytest.mark.parametrize("stream", list(GOLDEN))
def test_golden_first_samples(gmm40, stream):
    digest, head = GOLDEN[stream]
    samples = first_samples(gmm40, stream)
    assert samples.dtype == np.float32
    np.testing.assert_array_equal(samples[:2], np.float32(head))
    assert fingerprint(samples) == digest


@pytest.mark.parametrize("stream", list(GOLDEN))
def test_golden_longer_load(gmm40, stream):
    assert fingerprint(first_samples(gmm40, stream, length=3000)) == GOLDEN[stream][0]


@pytest.mark.parametrize("stream", list(GOLDEN))
def test_golden_with_legacy_threefry(gmm40, stream):
    # The library pins the partitionable threefry layout, so the global
    # setting does not change the streams.
    with jax.threefry_partitionable(False):
        samples = first_samples(gmm40, stream)
    assert fingerprint(samples) == GOLDEN[stream][0]


def test_golden_with_partitionable_threefry(gmm40):
    with jax.threefry_partitionable(True):
        samples = first_samples(gmm40, "train")
    assert fingerprint(samples) == GOLDEN["train"][0]


def test_golden_from_an_equal_target(gmm40):
    # A target with the same parameters from another constructor gives the same stream.
    rebuilt = DiagonalGaussianMixture(
        np.random.default_rng(0).uniform(-40.0, 40.0, (40, 2)), np.ones((40, 2)), np.zeros(40))
    assert fingerprint(first_samples(rebuilt, "val")) == GOLDEN["val"][0]


@pytest.mark.parametrize("stream", ["train", "sample"])
def test_stream_definition_reconstructed(gmm40, stream):
    """Rebuild the first samples from the documented definition, in float64 where possible.

    Sample i uses ``u = uniform(fold_in(key, i), (D + 1,), minval=nextafter(-1, 0),
    maxval=1)`` with the partitionable threefry layout. The component is
    the first k whose cumulative weight exceeds ``(u_0 + 1) / 2`` times the
    total, and the point is ``mean_k + std_k * sqrt(2) * erfinv(u_{1:})``.
    """
    root = jax.random.key(0, impl="threefry2x32")
    if stream == "train":
        key = jax.random.fold_in(jax.random.fold_in(root, 2**32 - 1), 0)
    else:
        key = root
    lowest = np.nextafter(np.float32(-1.0), np.float32(0.0))
    with jax.threefry_partitionable(True):
        uniforms = np.stack([
            np.asarray(jax.random.uniform(jax.random.fold_in(key, i), (3,), minval=lowest,
                                          maxval=1.0))
            for i in range(16)
        ]).astype(np.float64)

    means = np.asarray(gmm40.means, np.float64)
    stds = np.asarray(gmm40.diag_stds, np.float64)
    cumulative = np.cumsum(np.full(40, 1 / 40))
    positions = 0.5 * (uniforms[:, 0] + 1.0) * cumulative[-1]
    components = np.searchsorted(cumulative, positions, side="right")
    expected = means[components] + stds[components] * np.sqrt(2) * scipy.special.erfinv(
        uniforms[:, 1:])

    samples = first_samples(gmm40, stream, length=16).astype(np.float64)
    np.testing.assert_allclose(samples, expected, rtol=0, atol=1e-5)
    assert datasets.SPLITS.index("train") == 0
