"""GMM40 variants: each variant's means recomputed or pinned bit for bit."""

import math
import sys
import tomllib
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from boltzkit.targets import DiagonalGaussianMixture
from boltzkit.targets._builtin import BUILTIN_TARGETS, builtin_target
from boltzkit.targets.gaussian_mixture import GMM40_VARIANTS, _variants
from tests._jax_compat import enable_x64

# torch.manual_seed(0); (torch.rand((40, 2)) - 0.5) * 80 in float32, as hex
# strings of the float32 values, as regenerated with torch 2.13.0 on CPU.
FAB_TORCH_MEANS_HEX = (
    ("-0x1.32a9000000000p-2", "0x1.5752ec0000000p+4"),
    ("-0x1.075fdc0000000p+5", "-0x1.d700400000000p+4"),
    ("-0x1.ecff620000000p+3", "0x1.573dce0000000p+3"),
    ("-0x1.95c6200000000p-1", "0x1.fb73040000000p+4"),
    ("-0x1.c65e980000000p+1", "0x1.52b43e0000000p+3"),
    ("-0x1.82d52e0000000p+3", "-0x1.f735180000000p+2"),
    ("-0x1.31b6260000000p+5", "-0x1.a7dc4c0000000p+4"),
    ("-0x1.07d2a20000000p+4", "0x1.7b53800000000p+0"),
    ("0x1.fa07700000000p+3", "0x1.8003bc0000000p+4"),
    ("-0x1.b1e1de0000000p+4", "-0x1.16b23c0000000p+4"),
    ("0x1.d0eafc0000000p+3", "0x1.09b9620000000p+5"),
    ("-0x1.076c9a0000000p+3", "0x1.deeb660000000p+4"),
    ("-0x1.9ca1200000000p+2", "0x1.0ee2540000000p+2"),
    ("0x1.21c09c0000000p+5", "-0x1.28dac20000000p+5"),
    ("-0x1.92e7800000000p+4", "-0x1.440d300000000p+3"),
    ("-0x1.f2f1a60000000p+3", "0x1.147af20000000p+5"),
    ("-0x1.9ed5c00000000p+4", "-0x1.269cf00000000p+4"),
    ("-0x1.bf21400000000p+4", "-0x1.2bb3140000000p+5"),
    ("-0x1.75980a0000000p+4", "0x1.1312460000000p+5"),
    ("0x1.1d946c0000000p+4", "0x1.3630c00000000p+4"),
    ("0x1.0d44d00000000p+1", "-0x1.481e100000000p+4"),
    ("0x1.b11ce00000000p+2", "-0x1.2ac8460000000p+5"),
    ("-0x1.ce71400000000p+4", "-0x1.49f0700000000p+4"),
    ("0x1.93cce00000000p+4", "0x1.773ee00000000p+4"),
    ("-0x1.1bd63a0000000p+4", "-0x1.717bd00000000p+0"),
    ("0x1.9951a00000000p+4", "0x1.3e1f620000000p+5"),
    ("0x1.fc025a0000000p+3", "0x1.59d6740000000p+2"),
    ("0x1.ad1c7c0000000p+4", "-0x1.78d5600000000p+4"),
    ("0x1.dd0a6c0000000p+2", "-0x1.f0320e0000000p+4"),
    ("-0x1.bb933c0000000p+4", "-0x1.4a9d0c0000000p+4"),
    ("0x1.2195300000000p+4", "0x1.0161f60000000p+4"),
    ("-0x1.7b1b080000000p+4", "0x1.82b2740000000p+3"),
    ("0x1.5f57940000000p+4", "-0x1.431dd00000000p+2"),
    ("0x1.86faa00000000p+0", "0x1.2895000000000p+3"),
    ("0x1.8d0a800000000p+4", "0x1.33431a0000000p+5"),
    ("-0x1.ed32f80000000p+4", "-0x1.d514ce0000000p+3"),
    ("0x1.f70d7c0000000p+3", "0x1.0922c40000000p+5"),
    ("0x1.1677620000000p+5", "0x1.1a5aaa0000000p+5"),
    ("0x1.fd7a2c0000000p+2", "-0x1.1644360000000p+5"),
    ("0x1.d700680000000p+1", "-0x1.90632e0000000p+4"),
)

# Rows 0, 1 and 39 of jax.random.uniform(PRNGKey(0), (40, 2), -1, 1) * 40 in
# float32 on each threefry stream, computed with jax 0.10.2.
LEGACY_ROWS_HEX = {
    0: ("-0x1.f843680000000p+3", "0x1.21dd500000000p+4"),
    1: ("-0x1.16789c0000000p+5", "0x1.539b920000000p+4"),
    39: ("0x1.3a7efa0000000p+4", "-0x1.0488a40000000p+3"),
}
CURRENT_ROWS_HEX = {
    0: ("0x1.1e81c40000000p+5", "0x1.324a880000000p+5"),
    1: ("-0x1.ad55740000000p+3", "-0x1.40d5c00000000p+1"),
    39: ("-0x1.0455000000000p-2", "0x1.d20c480000000p+3"),
}

HAS_PARTITIONABLE_FLAG = hasattr(jax, "threefry_partitionable")
needs_flag = pytest.mark.skipif(
    not HAS_PARTITIONABLE_FLAG,
    reason="jax.threefry_partitionable no longer exists, so the jax < 0.5 stream cannot be "
    "recomputed; the shipped means stay pinned by the hex values in this file",
)


def float32_bits(values):
    return np.asarray(values, dtype=np.float32).view(np.uint32)


def hex_to_float32(rows):
    return np.array([[float.fromhex(h) for h in row] for row in rows], dtype=np.float32)


def jax_uniform_reference(dim, n_components, seed, loc_scaling, *, partitionable):
    """The published expression, run as written with a raw PRNGKey."""
    with jax.threefry_partitionable(partitionable):
        key = jax.random.PRNGKey(seed)
        uniforms = jax.random.uniform(
            key, shape=(n_components, dim), dtype=jnp.float32, minval=-1.0, maxval=1.0
        )
        return np.asarray(uniforms * np.float32(loc_scaling))


# ------------------------------------------------------------------- default


def test_default_means_recomputed_with_numpy():
    expected = np.random.default_rng(0).uniform(-40.0, 40.0, size=(40, 2))
    target = DiagonalGaussianMixture.create_gmm40()
    assert target.dtype == np.float32
    np.testing.assert_array_equal(np.asarray(target.means), expected.astype(np.float32))
    np.testing.assert_array_equal(np.asarray(target.diag_stds), np.ones((40, 2), np.float32))
    np.testing.assert_array_equal(np.asarray(target.logits), np.zeros(40, np.float32))


def test_default_variant_is_the_default():
    explicit = DiagonalGaussianMixture.create_gmm40(variant="default")
    implicit = DiagonalGaussianMixture.create_gmm40()
    np.testing.assert_array_equal(np.asarray(explicit.means), np.asarray(implicit.means))


def test_default_means_float64_under_x64():
    expected = np.random.default_rng(3).uniform(-10.0, 10.0, size=(5, 4))
    with enable_x64():
        target = DiagonalGaussianMixture.create_gmm40(
            dim=4, n_components=5, loc_scaling=10.0, scale=0.5, seed=3
        )
        means = np.asarray(target.means)
        stds = np.asarray(target.diag_stds)
    assert means.dtype == np.float64
    np.testing.assert_array_equal(means, expected)
    np.testing.assert_array_equal(stds, np.full((5, 4), 0.5))


# ----------------------------------------------------------------- fab-torch


def test_fab_torch_means_bit_exact():
    expected = hex_to_float32(FAB_TORCH_MEANS_HEX)
    target = DiagonalGaussianMixture.create_gmm40(variant="fab-torch")
    assert target.means.shape == (40, 2)
    np.testing.assert_array_equal(float32_bits(target.means), float32_bits(expected))


def test_fab_torch_hex_values_are_float32():
    for row in FAB_TORCH_MEANS_HEX:
        for text in row:
            value = float.fromhex(text)
            assert float(np.float32(value)) == value, text


def test_fab_torch_stored_data_bit_exact():
    stored = _variants.stored_means("fab-torch")
    assert stored.dtype == np.float64
    # Widening to float64 must not have changed a float32 value.
    np.testing.assert_array_equal(stored.astype(np.float32).astype(np.float64), stored)
    np.testing.assert_array_equal(
        float32_bits(stored), float32_bits(hex_to_float32(FAB_TORCH_MEANS_HEX))
    )


def test_fab_torch_std_is_float32_softplus_one():
    target = DiagonalGaussianMixture.create_gmm40(variant="fab-torch")
    softplus_one = math.log(1.0 + math.e)
    expected = np.float32(softplus_one)
    np.testing.assert_array_equal(float32_bits(target.diag_stds), np.full((40, 2), expected.view(np.uint32)))
    assert abs(float(expected) - 1.31326162815094) < 1e-15
    np.testing.assert_array_equal(np.asarray(target.logits), np.zeros(40, np.float32))


def test_fab_torch_float64_under_x64():
    with enable_x64():
        target = DiagonalGaussianMixture.create_gmm40(variant="fab-torch")
        means = np.asarray(target.means)
        stds = np.asarray(target.diag_stds)
    assert means.dtype == np.float64
    np.testing.assert_array_equal(means, hex_to_float32(FAB_TORCH_MEANS_HEX).astype(np.float64))
    np.testing.assert_array_equal(stds, np.full((40, 2), float(np.float32(math.log1p(math.e)))))


def test_craft_shares_fab_torch_means():
    craft = DiagonalGaussianMixture.create_gmm40(variant="craft")
    np.testing.assert_array_equal(
        float32_bits(craft.means), float32_bits(hex_to_float32(FAB_TORCH_MEANS_HEX))
    )
    softplus_tenth = math.log(1.0 + math.exp(0.1))
    np.testing.assert_array_equal(
        np.asarray(craft.diag_stds), np.full((40, 2), np.float32(softplus_tenth))
    )
    assert abs(float(craft.diag_stds[0, 0]) - 0.7443967) < 1e-7


def test_scale_overrides_variant_std():
    target = DiagonalGaussianMixture.create_gmm40(variant="fab-torch", scale=0.25)
    np.testing.assert_array_equal(np.asarray(target.diag_stds), np.full((40, 2), 0.25, np.float32))


@pytest.mark.parametrize("variant", ["fab-torch", "craft"])
@pytest.mark.parametrize(
    ("argument", "value"), [("dim", 3), ("n_components", 10), ("loc_scaling", 20.0), ("seed", 1)]
)
def test_torch_variants_reject_other_shapes(variant, argument, value):
    with pytest.raises(ValueError, match=rf"{argument} must be .* for variant '{variant}'"):
        DiagonalGaussianMixture.create_gmm40(variant=variant, **{argument: value})


# ------------------------------------------------------------------- fab-jax


def test_fab_jax_rows_pinned():
    target = DiagonalGaussianMixture.create_gmm40(variant="fab-jax")
    for row, values in LEGACY_ROWS_HEX.items():
        expected = np.array([float.fromhex(h) for h in values], np.float32)
        np.testing.assert_array_equal(float32_bits(target.means[row]), float32_bits(expected))
    assert np.all(np.asarray(target.diag_stds) == 1.0)


def test_fab_jax_current_rows_pinned():
    target = DiagonalGaussianMixture.create_gmm40(variant="fab-jax-current")
    for row, values in CURRENT_ROWS_HEX.items():
        expected = np.array([float.fromhex(h) for h in values], np.float32)
        np.testing.assert_array_equal(float32_bits(target.means[row]), float32_bits(expected))


@needs_flag
@pytest.mark.parametrize("dim", [2, 50])
def test_fab_jax_shipped_means_recomputed(dim):
    expected = jax_uniform_reference(dim, 40, 0, 40.0, partitionable=False)
    target = DiagonalGaussianMixture.create_gmm40(dim=dim, variant="fab-jax")
    assert target.means.shape == (40, dim)
    np.testing.assert_array_equal(float32_bits(target.means), float32_bits(expected))
    stored = _variants.stored_means(f"fab-jax-dim{dim}")
    np.testing.assert_array_equal(float32_bits(stored), float32_bits(expected))


@needs_flag
@pytest.mark.parametrize(
    ("dim", "n_components", "seed", "loc_scaling"), [(3, 40, 0, 40.0), (2, 8, 5, 10.0)]
)
def test_fab_jax_other_shapes_recomputed(dim, n_components, seed, loc_scaling):
    target = DiagonalGaussianMixture.create_gmm40(
        dim=dim, n_components=n_components, seed=seed, loc_scaling=loc_scaling, variant="fab-jax"
    )
    legacy = jax_uniform_reference(dim, n_components, seed, loc_scaling, partitionable=False)
    np.testing.assert_array_equal(float32_bits(target.means), float32_bits(legacy))
    current = DiagonalGaussianMixture.create_gmm40(
        dim=dim,
        n_components=n_components,
        seed=seed,
        loc_scaling=loc_scaling,
        variant="fab-jax-current",
    )
    expected_current = jax_uniform_reference(
        dim, n_components, seed, loc_scaling, partitionable=True
    )
    np.testing.assert_array_equal(float32_bits(current.means), float32_bits(expected_current))


@needs_flag
def test_fab_jax_current_recomputed():
    expected = jax_uniform_reference(2, 40, 0, 40.0, partitionable=True)
    target = DiagonalGaussianMixture.create_gmm40(variant="fab-jax-current")
    np.testing.assert_array_equal(float32_bits(target.means), float32_bits(expected))
    legacy = DiagonalGaussianMixture.create_gmm40(variant="fab-jax")
    assert not np.array_equal(np.asarray(legacy.means), np.asarray(target.means))


@needs_flag
@pytest.mark.parametrize("global_setting", [False, True])
def test_fab_jax_ignores_global_stream_setting(global_setting):
    with jax.threefry_partitionable(global_setting):
        legacy = DiagonalGaussianMixture.create_gmm40(dim=3, variant="fab-jax")
        current = DiagonalGaussianMixture.create_gmm40(dim=3, variant="fab-jax-current")
    np.testing.assert_array_equal(
        np.asarray(legacy.means), jax_uniform_reference(3, 40, 0, 40.0, partitionable=False)
    )
    np.testing.assert_array_equal(
        np.asarray(current.means), jax_uniform_reference(3, 40, 0, 40.0, partitionable=True)
    )


@needs_flag
def test_fab_jax_ignores_x64():
    expected = jax_uniform_reference(3, 40, 0, 40.0, partitionable=False)
    with enable_x64():
        target = DiagonalGaussianMixture.create_gmm40(dim=3, variant="fab-jax")
        means = np.asarray(target.means)
    np.testing.assert_array_equal(means, expected.astype(np.float64))


def test_fab_jax_without_flag(monkeypatch):
    monkeypatch.delattr(jax, "threefry_partitionable", raising=False)
    shipped = DiagonalGaussianMixture.create_gmm40(dim=50, variant="fab-jax")
    assert shipped.means.shape == (40, 50)
    with pytest.raises(RuntimeError, match=r"jax < 0\.5 random stream"):
        DiagonalGaussianMixture.create_gmm40(dim=3, variant="fab-jax")


# ------------------------------------------------------------ names and input


def test_variant_names_listed():
    assert list(GMM40_VARIANTS) == ["default", "fab-torch", "craft", "fab-jax", "fab-jax-current"]


def test_unknown_variant_rejected():
    with pytest.raises(ValueError, match=r"variant must be one of default, fab-torch.*got 'idem'"):
        DiagonalGaussianMixture.create_gmm40(variant="idem")


def test_variant_type_rejected():
    with pytest.raises(TypeError, match="variant must be a string"):
        DiagonalGaussianMixture.create_gmm40(variant=1)


@pytest.mark.parametrize(
    ("arguments", "error", "message"),
    [
        ({"scale": -1.0}, ValueError, "scale must be > 0, got -1.0"),
        ({"scale": "1"}, TypeError, "scale must be a real number"),
        ({"dim": 0}, ValueError, "dim must be an integer >= 1, got 0"),
        ({"seed": -1}, ValueError, "seed must be an integer >= 0, got -1"),
        ({"seed": 2**32}, ValueError, r"seed must be an int in \[0, 2\*\*32\)"),
        ({"loc_scaling": 0.0}, ValueError, "loc_scaling must be > 0"),
    ],
)
@pytest.mark.parametrize("variant", ["default", "fab-jax"])
def test_bad_arguments_rejected(variant, arguments, error, message):
    with pytest.raises(error, match=message):
        DiagonalGaussianMixture.create_gmm40(variant=variant, **arguments)


@pytest.mark.parametrize(
    ("name", "variant", "dim"),
    [
        ("gmm40", "default", 2),
        ("gmm40-fab-torch", "fab-torch", 2),
        ("gmm40-craft", "craft", 2),
        ("gmm40-fab-jax", "fab-jax", 2),
        ("gmm40-fab-jax-50d", "fab-jax", 50),
        ("gmm40-fab-jax-current", "fab-jax-current", 2),
    ],
)
def test_builtin_names(name, variant, dim):
    assert name in BUILTIN_TARGETS
    target = builtin_target(name)
    expected = DiagonalGaussianMixture.create_gmm40(dim=dim, variant=variant)
    np.testing.assert_array_equal(np.asarray(target.means), np.asarray(expected.means))
    np.testing.assert_array_equal(np.asarray(target.diag_stds), np.asarray(expected.diag_stds))


def test_unknown_builtin_lists_variants():
    with pytest.raises(ValueError, match="gmm40-craft"):
        builtin_target("gmm40-idem")


def test_means_data_declared_as_package_data():
    root = Path(__file__).resolve().parents[1]
    pyproject = tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8"))
    patterns = pyproject["tool"]["setuptools"]["package-data"]["boltzkit"]
    data_file = Path(sys.modules[_variants.__name__].__file__).parent / "data" / "gmm40_means.json"
    assert data_file.is_file()
    relative = data_file.relative_to(root / "boltzkit").as_posix()
    assert any(Path(relative).match(pattern) for pattern in patterns), patterns


@needs_flag
def test_fab_jax_ignores_default_prng_impl():
    expected = jax_uniform_reference(3, 40, 0, 40.0, partitionable=False)
    previous = jax.config.jax_default_prng_impl
    jax.config.update("jax_default_prng_impl", "rbg")
    try:
        target = DiagonalGaussianMixture.create_gmm40(dim=3, variant="fab-jax")
    finally:
        jax.config.update("jax_default_prng_impl", previous)
    np.testing.assert_array_equal(np.asarray(target.means), expected)
