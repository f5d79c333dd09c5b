"""Parameter files of targets: ``.npz`` and ``.json``, read without running code."""

from __future__ import annotations

import json
import os
from typing import Any

import numpy as np

from boltzkit import _io
from boltzkit.targets._builtin import BUILTIN_TARGETS, builtin_target
from boltzkit.targets.gaussian_mixture import DiagonalGaussianMixture

_REQUIRED = ("means", "diag_stds")
_KNOWN = ("means", "diag_stds", "logits")
_FLOAT_DTYPES = ("float32", "float64")


def load_target(spec: str | os.PathLike) -> DiagonalGaussianMixture:
    """Return a built-in target by name, or the mixture stored in a parameter file.

    A parameter file is ``.npz`` or ``.json`` and contains ``means`` of shape
    ``(K, D)``, ``diag_stds`` of shape ``(K, D)`` and, optionally, ``logits``
    of shape ``(K,)`` (equal weights when absent). A JSON file is one object
    with those keys as nested lists of numbers, and may name a ``dtype``
    (``"float32"`` or ``"float64"``). ``-Infinity`` is a valid logit in JSON.
    Loading never unpickles or evaluates anything.

    Raises:
        FileNotFoundError: if a path is given and does not exist.
        ValueError: for an unknown name or extension, a malformed file, or
            parameters the target rejects; the message names the file.

    Example:
        >>> load_target("gmm40").dim
        2
    """
    if not isinstance(spec, str | os.PathLike):
        raise TypeError(
            f"spec must be a built-in target name or a path to a .npz or .json file, got "
            f"{spec!r} of type {type(spec).__name__}"
        )
    spec = os.fspath(spec)
    if isinstance(spec, bytes):
        spec = os.fsdecode(spec)
    if spec in BUILTIN_TARGETS:
        return builtin_target(spec)

    lower = spec.lower()
    if not lower.endswith((".npz", ".json")):
        if os.path.exists(spec):
            raise ValueError(
                f"{spec}: unknown parameter file extension; use .npz or .json"
            )
        return builtin_target(spec)
    if not os.path.exists(spec):
        raise FileNotFoundError(f"{spec}: no such file")
    if os.path.isdir(spec):
        raise ValueError(f"{spec}: is a directory, not a parameter file")

    if lower.endswith(".npz"):
        arrays = _io.read_npz(spec)
        dtype = None
    else:
        arrays, dtype = _read_json(spec)

    missing = [name for name in _REQUIRED if name not in arrays]
    if missing:
        raise ValueError(
            f"{spec}: missing {', '.join(missing)}; a parameter file contains means, diag_stds "
            "and optionally logits"
        )
    unknown = sorted(set(arrays) - set(_KNOWN))
    if unknown:
        raise ValueError(
            f"{spec}: unexpected entries {unknown}; a parameter file contains means, diag_stds "
            "and optionally logits"
        )
    if dtype is not None:
        arrays = {name: np.asarray(value, dtype=dtype) for name, value in arrays.items()}
    try:
        return DiagonalGaussianMixture(
            arrays["means"], arrays["diag_stds"], arrays.get("logits")
        )
    except (TypeError, ValueError) as error:
        raise ValueError(f"{spec}: {error}") from None


def _read_json(path: str) -> tuple[dict[str, Any], str | None]:
    try:
        with open(path, encoding="utf-8") as handle:
            content = json.load(handle)
    except UnicodeDecodeError:
        raise ValueError(f"{path}: not a UTF-8 text file") from None
    except json.JSONDecodeError as error:
        raise ValueError(f"{path}: invalid JSON: {error}") from None
    if not isinstance(content, dict):
        raise ValueError(
            f"{path}: expected a JSON object with means, diag_stds and logits, "
            f"got a {type(content).__name__}"
        )
    dtype = content.pop("dtype", None)
    if dtype is not None and dtype not in _FLOAT_DTYPES:
        raise ValueError(f"{path}: dtype must be one of {', '.join(_FLOAT_DTYPES)}, got {dtype!r}")
    arrays = {}
    for name, value in content.items():
        if name in _KNOWN:
            _check_numbers(path, name, value)
            arrays[name] = np.asarray(value, dtype=np.float64)
        else:
            arrays[name] = value
    return arrays, dtype


def _check_numbers(path: str, name: str, value: Any) -> None:
    """Check that a JSON value is a number or nested lists of numbers."""
    if isinstance(value, bool) or value is None or isinstance(value, str | dict):
        raise ValueError(f"{path}: {name} must hold numbers, got {value!r}")
    if isinstance(value, list):
        for item in value:
            _check_numbers(path, name, item)
    elif not isinstance(value, int | float):
        raise ValueError(f"{path}: {name} must hold numbers, got {value!r}")


def save_target(
    target: DiagonalGaussianMixture, path: str | os.PathLike, *, overwrite: bool = False
) -> None:
    """Write a target's parameters to ``.npz`` or ``.json``, atomically.

    Loading the file with :func:`load_target` gives bit-identical parameters:
    JSON stores each float with enough digits to round-trip and records the
    dtype.

    Raises:
        FileExistsError: if ``path`` exists and ``overwrite`` is false.
        ValueError: if the extension is not ``.npz`` or ``.json``.

    Example:
        >>> import os, tempfile
        >>> from boltzkit.targets import DiagonalGaussianMixture
        >>> path = os.path.join(tempfile.mkdtemp(), "gmm.json")
        >>> save_target(DiagonalGaussianMixture.create_gmm40(), path)
        >>> load_target(path).n_components
        40
    """
    if not isinstance(target, DiagonalGaussianMixture):
        raise TypeError(
            f"target must be a DiagonalGaussianMixture, got {target!r} of type "
            f"{type(target).__name__}; load a built-in target by name with load_target"
        )
    path = _io.check_output_path(path, overwrite=overwrite, suffixes=(".npz", ".json"))
    arrays = target.to_dict()
    if path.endswith(".npz"):
        _io.write_npz(path, arrays, overwrite=overwrite)
        return

    content: dict[str, Any] = {"dtype": str(arrays["means"].dtype)}
    for name, value in arrays.items():
        content[name] = _to_json_numbers(value)
    text = json.dumps(content, indent=1, allow_nan=True) + "\n"
    _io.write_bytes(path, lambda handle: handle.write(text.encode("utf-8")), overwrite=overwrite)


def _to_json_numbers(value: np.ndarray) -> Any:
    if value.ndim == 0:
        return float(value)
    return [_to_json_numbers(item) for item in value]
