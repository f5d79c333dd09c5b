"""Reproducible dataset streams and the :class:`Dataset` container.

The stream definition, which is a compatibility promise once released:

* ``root = jax.random.key(seed, impl="threefry2x32")``, or the key passed as
  ``seed``.
* ``target.sample(n, seed=root)``: sample ``i`` is drawn from
  ``jax.random.fold_in(root, i)`` for ``i < n``.
* ``target.load_dataset(type, ...)``: the split key is
  ``fold_in(fold_in(root, 2**32 - 1), s)`` with ``s = 0, 1, 2`` for
  ``"train"``, ``"val"``, ``"test"``, and item ``i`` is drawn from
  ``fold_in(split_key, i)``.

Index ``2**32 - 1`` is never a sample index, because streams hold at most
``2**32 - 1`` items, so the dataset keys never coincide with the keys of
``sample``. How one key becomes one sample is defined by each target.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import os
import shutil
import zipfile
from collections.abc import Callable, Iterator
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from boltzkit import _io, _keys
from boltzkit._validation import as_float_array

SPLITS = ("train", "val", "test")
MAX_STREAM_LENGTH = 2**32 - 1
_DATASET_DOMAIN = np.uint32(2**32 - 1)

# Items per jitted block. Smaller requests for samples alone are rounded up
# to a power of two, so a handful of block shapes cover every length.
BLOCK_SIZE = 2**16

# Blocks with log_probs or scores keep (rows, dim + n_components) arrays
# within this many elements, and have at least _MIN_EVALUATION_BLOCK rows.
_MAX_EVALUATION_ELEMENTS = 2**22
_MIN_EVALUATION_BLOCK = 256

_FIELDS = ("samples", "log_probs", "scores")


def split_key(type: str, seed: Any = 0) -> jax.Array:
    """Return the key of a dataset split.

    Args:
        type: ``"train"``, ``"val"`` or ``"test"``.
        seed: an int in ``[0, 2**32)`` or a JAX key.

    Example:
        >>> key = split_key("train", seed=0)
        >>> key.shape
        ()
    """
    if not isinstance(type, str):
        raise TypeError(f"type must be one of {', '.join(SPLITS)}, got {type!r}")
    if type not in SPLITS:
        raise ValueError(f"type must be one of {', '.join(SPLITS)}, got {type!r}")
    root = _keys.as_key(seed)
    domain = jax.random.fold_in(root, _DATASET_DOMAIN)
    return jax.random.fold_in(domain, SPLITS.index(type))


def check_window(offset: int, length: int) -> None:
    """Check that items ``[offset, offset + length)`` lie inside one stream.

    Raises:
        ValueError: if ``offset + length`` exceeds ``2**32 - 1``.

    Example:
        >>> check_window(offset=2**32 - 11, length=10)
        >>> check_window(offset=2**32 - 11, length=11)  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        ValueError: offset + length must be at most 2**32 - 1 = 4294967295, got ...
    """
    if offset + length > MAX_STREAM_LENGTH:
        raise ValueError(
            f"offset + length must be at most 2**32 - 1 = {MAX_STREAM_LENGTH}, got "
            f"offset={offset} and length={length}"
        )


def _as_optional_array(name: str, value: Any) -> jax.Array | None:
    if value is None:
        return None
    return as_float_array(name, value)


@jax.tree_util.register_pytree_node_class
@dataclasses.dataclass(frozen=True, init=False, eq=False)
class Dataset:
    """Samples with, optionally, their log-densities and scores.

    A dataset is a JAX pytree, so it can be passed into jitted functions and
    mapped over with ``jax.tree.map``. Fields that were not requested are
    ``None``.

    Attributes:
        samples: an array of shape ``(n, D)``, or ``None``.
        log_probs: an array of shape ``(n,)``, or ``None``.
        scores: an array of shape ``(n, D)``, or ``None``.

    Example:
        >>> import numpy as np
        >>> dataset = Dataset(samples=np.zeros((3, 2)), log_probs=np.zeros(3))
        >>> len(dataset), dataset.scores is None
        (3, True)
    """

    samples: jax.Array | None
    log_probs: jax.Array | None
    scores: jax.Array | None

    def __init__(self, samples: Any = None, log_probs: Any = None, scores: Any = None) -> None:
        samples = _as_optional_array("samples", samples)
        log_probs = _as_optional_array("log_probs", log_probs)
        scores = _as_optional_array("scores", scores)
        if samples is None and log_probs is None and scores is None:
            raise ValueError("a Dataset needs at least one of samples, log_probs or scores")
        for name, value, ndim in (("samples", samples, 2), ("log_probs", log_probs, 1),
                                  ("scores", scores, 2)):
            if value is not None and value.ndim != ndim:
                shape = "(n, D)" if ndim == 2 else "(n,)"
                raise ValueError(f"{name} must have shape {shape}, got {tuple(value.shape)}")
        lengths = {
            name: value.shape[0]
            for name, value in (("samples", samples), ("log_probs", log_probs), ("scores", scores))
            if value is not None
        }
        if len(set(lengths.values())) > 1:
            raise ValueError(f"dataset fields must have the same length, got {lengths}")
        if samples is not None and scores is not None and samples.shape != scores.shape:
            raise ValueError(
                f"scores must have the shape of samples {tuple(samples.shape)}, "
                f"got {tuple(scores.shape)}"
            )
        object.__setattr__(self, "samples", samples)
        object.__setattr__(self, "log_probs", log_probs)
        object.__setattr__(self, "scores", scores)

    def tree_flatten(self):
        """Return the leaves ``(samples, log_probs, scores)`` and no auxiliary data.

        Example:
            >>> leaves, aux_data = Dataset(samples=[[1.0]]).tree_flatten()
            >>> leaves[0].shape, leaves[1], aux_data
            ((1, 1), None, None)
        """
        return (self.samples, self.log_probs, self.scores), None

    @classmethod
    def tree_unflatten(cls, aux_data, children):
        """Rebuild a dataset from its leaves without checking them, as JAX transforms do.

        Example:
            >>> dataset = Dataset(log_probs=[-1.0, -2.0])
            >>> Dataset.tree_unflatten(*reversed(dataset.tree_flatten())).log_probs.tolist()
            [-1.0, -2.0]
        """
        del aux_data
        dataset = object.__new__(cls)
        for name, value in zip(_FIELDS, children, strict=True):
            object.__setattr__(dataset, name, value)
        return dataset

    def __len__(self) -> int:
        for value in (self.samples, self.log_probs, self.scores):
            if value is not None:
                return int(value.shape[0])
        return 0

    def __getitem__(self, index: slice) -> Dataset:
        """Return the items selected by a slice, as a new dataset."""
        if not isinstance(index, slice):
            raise TypeError(f"a Dataset is indexed by a slice, got {index!r}")
        return jax.tree.map(lambda value: value[index], self)

    def _require(self, name: str, flag: str) -> jax.Array:
        value = getattr(self, name)
        if value is None:
            raise ValueError(f"this dataset has no {name}; load it with {flag}=True")
        return value

    def get_samples(self) -> jax.Array:
        """Return the samples; raises ``ValueError`` if they were not requested.

        Example:
            >>> Dataset(samples=[[1.0, 2.0]]).get_samples().shape
            (1, 2)
        """
        return self._require("samples", "include_samples")

    def get_log_probs(self) -> jax.Array:
        """Return the log-densities; raises ``ValueError`` if they were not requested.

        Example:
            >>> Dataset(log_probs=[-1.0]).get_log_probs().shape
            (1,)
        """
        return self._require("log_probs", "include_log_probs")

    def get_scores(self) -> jax.Array:
        """Return the scores; raises ``ValueError`` if they were not requested.

        Example:
            >>> Dataset(scores=[[0.5]]).get_scores().shape
            (1, 1)
        """
        return self._require("scores", "include_scores")

    def to_dict(self) -> dict[str, np.ndarray]:
        """Return the present fields as NumPy arrays.

        Example:
            >>> sorted(Dataset(samples=[[0.0]], log_probs=[0.0]).to_dict())
            ['log_probs', 'samples']
        """
        return {
            name: np.asarray(getattr(self, name))
            for name in _FIELDS
            if getattr(self, name) is not None
        }

    def save(self, path: str | os.PathLike, *, overwrite: bool = False) -> None:
        """Write the present fields to an uncompressed ``.npz`` file, atomically.

        The file contains the arrays ``samples``, ``log_probs`` and ``scores``
        that are present. It is written to a temporary file beside ``path``
        and renamed into place, so a crash never leaves a partial file.

        Raises:
            FileExistsError: if ``path`` exists and ``overwrite`` is false.
            ValueError: if ``path`` does not end with ``.npz``.

        Example:
            >>> import os, tempfile
            >>> path = os.path.join(tempfile.mkdtemp(), "val.npz")
            >>> Dataset(samples=[[0.0, 1.0]]).save(path)
            >>> len(Dataset.load(path))
            1
        """
        path = _io.check_output_path(path, overwrite=overwrite, suffixes=(".npz",))
        _io.write_npz(path, self.to_dict(), overwrite=overwrite)

    @classmethod
    def load(cls, path: str | os.PathLike) -> Dataset:
        """Read a dataset written by :meth:`save` or by ``boltzkit dataset``.

        Loading never unpickles: object arrays are rejected.

        Raises:
            FileNotFoundError: if ``path`` does not exist.
            ValueError: if the file is not an ``.npz`` archive of a dataset.

        Example:
            >>> import os, tempfile
            >>> path = os.path.join(tempfile.mkdtemp(), "test.npz")
            >>> Dataset(log_probs=[-1.5, -2.5]).save(path)
            >>> Dataset.load(path).log_probs.tolist()
            [-1.5, -2.5]
        """
        arrays = _io.read_npz(path)
        unknown = sorted(set(arrays) - set(_FIELDS))
        if unknown:
            raise ValueError(
                f"{os.fspath(path)} contains arrays {unknown} that are not dataset fields; "
                f"expected some of {list(_FIELDS)}"
            )
        try:
            return cls(**arrays)
        except (TypeError, ValueError) as error:
            raise ValueError(f"{os.fspath(path)} is not a valid dataset: {error}") from None


def block_size_for(length: int) -> int:
    """Return the block size used to generate ``length`` items.

    Example:
        >>> block_size_for(1000), block_size_for(10**6)
        (1024, 65536)
    """
    if length >= BLOCK_SIZE:
        return BLOCK_SIZE
    return max(1, 1 << (max(length, 1) - 1).bit_length())


def evaluation_block_size(target: Any) -> int:
    """Return the largest block of a stream of ``target`` that includes log_probs or scores.

    It is :data:`BLOCK_SIZE`, halved until ``(rows, dim + n_components)``
    has at most 2**22 elements, and at least 1024, so that memory stays
    bounded for wide targets. The values do not depend on the block: each
    row of ``log_prob`` and ``score`` has the same bits in any batch of at
    least 64 rows.

    Example:
        >>> from boltzkit.targets import DiagonalGaussianMixture
        >>> evaluation_block_size(DiagonalGaussianMixture.create_gmm40())
        65536
    """
    width = int(target.dim) + int(getattr(target, "n_components", 0))
    rows = BLOCK_SIZE
    while rows > 1024 and rows * width > _MAX_EVALUATION_ELEMENTS:
        rows //= 2
    return rows


@functools.partial(
    jax.jit, static_argnames=("size", "include_samples", "include_log_probs", "include_scores")
)
def _generate_block(target, key, start, *, size, include_samples, include_log_probs,
                    include_scores):
    indices = start + jnp.arange(size, dtype=jnp.uint32)
    samples = target.sample_at(key, indices)
    # log_prob and score are called separately, not through
    # log_prob_and_score, so that the stored values equal what a user gets
    # from those two methods bit for bit. XLA fuses the combined call
    # differently, which can change the last bit of the log-densities.
    log_probs = target.log_prob(samples) if include_log_probs else None
    scores = target.score(samples) if include_scores else None
    return (samples if include_samples else None), log_probs, scores


def iter_blocks(
    target: Any,
    key: jax.Array,
    offset: int,
    length: int,
    *,
    include_samples: bool = True,
    include_log_probs: bool = False,
    include_scores: bool = False,
    block_size: int | None = None,
) -> Iterator[tuple[jax.Array | None, jax.Array | None, jax.Array | None]]:
    """Yield ``(samples, log_probs, scores)`` for consecutive blocks of a stream.

    Each item depends only on its index, so concatenated blocks equal a
    single call. By default a block has ``block_size_for(length)`` items.
    With log_probs or scores it has at least 256 items and at most
    :func:`evaluation_block_size`. The last block is cut to the requested
    length.

    Example:
        >>> from boltzkit.targets import DiagonalGaussianMixture
        >>> target = DiagonalGaussianMixture.create_gmm40()
        >>> blocks = iter_blocks(target, split_key("train"), 0, 10, block_size=4)
        >>> tuple(samples.shape[0] for samples, _, _ in blocks)
        (4, 4, 2)
    """
    if block_size is None:
        block_size = block_size_for(length)
        if include_log_probs or include_scores:
            # Batches under 64 rows are evaluated unpadded, so their last bit
            # may differ from that of a longer dataset.
            block_size = min(max(block_size, _MIN_EVALUATION_BLOCK), evaluation_block_size(target))
    end = offset + length
    for start in range(offset, end, block_size):
        count = min(block_size, end - start)
        block = _generate_block(
            target,
            key,
            np.uint32(start),
            size=block_size,
            include_samples=include_samples,
            include_log_probs=include_log_probs,
            include_scores=include_scores,
        )
        yield tuple(None if value is None else value[:count] for value in block)


def generate(
    target: Any,
    key: jax.Array,
    offset: int,
    length: int,
    *,
    include_samples: bool = True,
    include_log_probs: bool = False,
    include_scores: bool = False,
) -> Dataset:
    """Return items ``[offset, offset + length)`` of the stream of ``key`` as a dataset.

    Example:
        >>> from boltzkit.targets import DiagonalGaussianMixture
        >>> target = DiagonalGaussianMixture.create_gmm40()
        >>> window = generate(target, split_key("val"), 5, 3)
        >>> bool((window.samples == target.load_dataset("val", 8).samples[5:]).all())
        True
    """
    for name, flag in (("include_samples", include_samples),
                       ("include_log_probs", include_log_probs),
                       ("include_scores", include_scores)):
        if not isinstance(flag, bool | np.bool_):
            raise TypeError(f"{name} must be a bool, got {flag!r}")
    if not (include_samples or include_log_probs or include_scores):
        raise ValueError(
            "at least one of include_samples, include_log_probs and include_scores must be True"
        )

    flags = {
        "include_samples": bool(include_samples),
        "include_log_probs": bool(include_log_probs),
        "include_scores": bool(include_scores),
    }
    if length == 0:
        return _empty_dataset(target, **flags)

    blocks = list(iter_blocks(target, key, offset, length, **flags))
    fields = []
    for position in range(3):
        parts = [block[position] for block in blocks]
        if parts[0] is None:
            fields.append(None)
        elif len(parts) == 1:
            fields.append(parts[0])
        else:
            fields.append(jnp.concatenate(parts))
    return Dataset.tree_unflatten(None, fields)


def _empty_dataset(target, *, include_samples, include_log_probs, include_scores) -> Dataset:
    dtype = target.dtype
    fields = (
        jnp.zeros((0, target.dim), dtype) if include_samples else None,
        jnp.zeros((0,), dtype) if include_log_probs else None,
        jnp.zeros((0, target.dim), dtype) if include_scores else None,
    )
    return Dataset.tree_unflatten(None, fields)


def write_stream(
    target: Any,
    key: jax.Array,
    path: str | os.PathLike,
    offset: int,
    length: int,
    *,
    include_samples: bool = True,
    include_log_probs: bool = False,
    include_scores: bool = False,
    overwrite: bool = False,
    progress: Callable[[int], None] | None = None,
) -> None:
    """Write items ``[offset, offset + length)`` of a stream to ``.npz`` or ``.npy``.

    The items are generated block by block and appended to temporary ``.npy``
    files beside ``path``, so memory stays bounded for any length. The result
    is then moved into place atomically: an ``.npz`` archive (uncompressed)
    with the requested fields, or for ``.npy`` the samples alone. The values
    equal :func:`generate` with the same arguments bit for bit.

    Args:
        progress: called with the number of items written after each block.

    Raises:
        FileExistsError: if ``path`` exists and ``overwrite`` is false.
        ValueError: for a bad extension, or a ``.npy`` path with fields other
            than the samples.

    Example:
        >>> import os, tempfile
        >>> from boltzkit.targets import DiagonalGaussianMixture
        >>> path = os.path.join(tempfile.mkdtemp(), "train.npz")
        >>> write_stream(DiagonalGaussianMixture.create_gmm40(), split_key("train"), path, 0, 100,
        ...              include_log_probs=True)
        >>> Dataset.load(path).log_probs.shape
        (100,)
    """
    path = _io.check_output_path(path, overwrite=overwrite, suffixes=(".npz", ".npy"))
    flags = (include_samples, include_log_probs, include_scores)
    if not any(flags):
        raise ValueError(
            "at least one of include_samples, include_log_probs and include_scores must be True"
        )
    if path.endswith(".npy") and flags != (True, False, False):
        raise ValueError(f"{path}: a .npy file can contain the samples only; write an .npz file instead")

    shapes = {"samples": (length, target.dim), "log_probs": (length,), "scores": (length, target.dim)}
    names = [name for name, flag in zip(_FIELDS, flags, strict=True) if flag]
    directory = os.path.dirname(os.path.abspath(path))

    with _io.scratch_directory(directory) as scratch:
        parts = {name: os.path.join(scratch, f"{name}.npy") for name in names}
        # The stack closes every part even when closing one fails, as it does
        # on a full disk when the last buffered bytes are flushed.
        with contextlib.ExitStack() as stack:
            handles = {name: stack.enter_context(open(part, "wb")) for name, part in parts.items()}
            for name, handle in handles.items():
                _io.write_npy_header(handle, target.dtype, shapes[name])
            done = 0
            blocks = iter_blocks(
                target,
                key,
                offset,
                length,
                include_samples=include_samples,
                include_log_probs=include_log_probs,
                include_scores=include_scores,
            )
            for block in blocks:
                for name, value in zip(_FIELDS, block, strict=True):
                    if value is not None:
                        handles[name].write(np.ascontiguousarray(value).tobytes())
                done += len(next(value for value in block if value is not None))
                if progress is not None:
                    progress(done)

        if path.endswith(".npy"):
            with _io.atomic_output(path, overwrite=overwrite) as out, open(parts["samples"], "rb") as part:
                shutil.copyfileobj(part, out, 2**22)
            return
        with _io.atomic_output(path, overwrite=overwrite) as out:
            with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as archive:
                for name, part in parts.items():
                    archive.write(part, arcname=f"{name}.npy")
