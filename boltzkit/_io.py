"""Atomic file writing and safe loading of user files."""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import uuid
import zipfile
from collections.abc import Callable, Iterator
from typing import IO, Any

import numpy as np


def _exists_error(path: str) -> FileExistsError:
    error = FileExistsError(f"{path} already exists; pass overwrite=True to replace it")
    # The command line reads the path from here to word its own message.
    error.path = path
    return error


def check_output_path(path: str | os.PathLike, *, overwrite: bool, suffixes: tuple[str, ...]):
    """Check an output path before any work is done, and return it as a string.

    Raises:
        ValueError: if the suffix is not one of ``suffixes``.
        TypeError: if ``overwrite`` is not a bool.
        FileExistsError: if the file exists and ``overwrite`` is false.
        NotADirectoryError: if the parent is not a directory.
        FileNotFoundError: if the parent directory does not exist.
        PermissionError: if the parent directory is not writable, for
            example on a read-only file system.
    """
    path = os.fspath(path)
    check_overwrite(overwrite)
    if not path.endswith(suffixes):
        raise ValueError(
            f"output file {path!r} must end with {' or '.join(suffixes)}"
        )
    if os.path.basename(path) in suffixes:
        raise ValueError(
            f"output file {path!r} needs a name before {os.path.basename(path)}, for example "
            f"'samples{os.path.basename(path)}'"
        )
    check_regular_destination(path)
    if os.path.exists(path) and not overwrite:
        raise _exists_error(path)
    parent = os.path.dirname(os.path.abspath(path))
    if os.path.exists(parent) and not os.path.isdir(parent):
        raise NotADirectoryError(f"{parent} is not a directory, so {path} cannot be written")
    if not os.path.isdir(parent):
        raise FileNotFoundError(f"directory {parent} does not exist")
    # access() reports a read-only file system also to root, who passes
    # every permission check.
    if not os.access(parent, os.W_OK | os.X_OK):
        raise PermissionError(f"directory {parent} is not writable, so {path} cannot be written")
    _probe_directory(parent, path)
    return path


def _probe_directory(parent: str, path: str) -> None:
    """Create and remove an empty file in ``parent``, the check that works on every file system.

    Some directories, such as /proc, pass ``os.access`` and still reject new
    files. The probe finds them before any work is done.
    """
    probe = os.path.join(parent, f".boltzkit-probe-{uuid.uuid4().hex[:12]}")
    try:
        descriptor = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except OSError as error:
        reason = error.strerror or str(error)
        raise PermissionError(
            f"directory {parent} does not accept new files ({reason}), so {path} cannot be written"
        ) from None
    os.close(descriptor)
    os.unlink(probe)


def check_overwrite(overwrite: Any) -> None:
    """Check that ``overwrite`` is a bool, so that a string such as "no" is not taken as true."""
    if not isinstance(overwrite, bool | np.bool_):
        raise TypeError(f"overwrite must be a bool, got {overwrite!r} of type {type(overwrite).__name__}")


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike, *, overwrite: bool) -> Iterator[IO[bytes]]:
    """Open a temporary file beside ``path`` and move it into place on success.

    The temporary file is removed if the body raises, so a failed write leaves
    nothing behind. Without ``overwrite`` the final step is a hard link, which
    fails if another writer created ``path`` in the meantime. With it, the
    final step is ``os.replace``. Either way a reader sees the old file or the
    complete new one, never a partial file.

    Raises:
        FileExistsError: if ``path`` exists and ``overwrite`` is false.
    """
    path = os.fspath(path)
    check_overwrite(overwrite)
    directory = os.path.dirname(os.path.abspath(path))
    check_regular_destination(path)
    if os.path.exists(path) and not overwrite:
        raise _exists_error(path)

    # The name is chosen before the try whose finally removes the file, and
    # the file is created inside it, so an interrupt at any point leaves
    # nothing behind. The mode gives the permissions of an ordinarily
    # created file.
    temporary = _unique_hidden_path(directory, f"{os.path.basename(path)}.", ".tmp")
    try:
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        with os.fdopen(descriptor, "wb") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        if overwrite:
            os.replace(temporary, path)
        else:
            _link_no_clobber(temporary, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)


def _unique_hidden_path(parent: str, prefix: str, suffix: str = "") -> str:
    return os.path.join(parent, f".{prefix}{uuid.uuid4().hex[:12]}{suffix}")


@contextlib.contextmanager
def scratch_directory(parent: str) -> Iterator[str]:
    """Create a hidden temporary folder in ``parent`` and remove it with its contents on exit.

    The name is chosen before the ``try`` whose ``finally`` removes the
    folder, and the folder is created inside it, so an interrupt at any
    point leaves nothing behind.
    """
    scratch = _unique_hidden_path(parent, "boltzkit-")
    try:
        os.mkdir(scratch, 0o700)
        yield scratch
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _link_no_clobber(source: str, destination: str) -> None:
    try:
        os.link(source, destination)
    except FileExistsError:
        raise _exists_error(destination) from None
    except OSError:
        # Some file systems have no hard links; fall back to a checked rename,
        # which can race with a concurrent writer.
        if os.path.exists(destination):
            raise _exists_error(destination) from None
        os.replace(source, destination)


def write_npz(path: str | os.PathLike, arrays: dict[str, Any], *, overwrite: bool) -> None:
    """Write ``arrays`` to an uncompressed ``.npz`` file atomically."""
    numpy_arrays = {name: np.asarray(value) for name, value in arrays.items()}
    with atomic_output(path, overwrite=overwrite) as handle:
        np.savez(handle, **numpy_arrays)


def write_npy(path: str | os.PathLike, array: Any, *, overwrite: bool) -> None:
    """Write one array to a ``.npy`` file atomically."""
    with atomic_output(path, overwrite=overwrite) as handle:
        np.save(handle, np.asarray(array), allow_pickle=False)


def write_bytes(path: str | os.PathLike, writer: Callable[[IO[bytes]], None], *, overwrite: bool):
    """Call ``writer`` on a temporary file and move it to ``path`` atomically."""
    with atomic_output(path, overwrite=overwrite) as handle:
        writer(handle)


def read_npz(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Read every array of an ``.npz`` file without unpickling anything.

    Raises:
        FileNotFoundError: if ``path`` does not exist.
        ValueError: if the file is not a valid ``.npz`` archive or contains
            object arrays, which would need pickle to load.
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(errno.ENOENT, "no such file", path)
    if os.path.isdir(path):
        raise ValueError(f"{path} is not a valid .npz file: it is a directory")
    # np.load takes anything that is not a zip archive for a .npy file or a
    # pickle, so check the format before calling it.
    if not zipfile.is_zipfile(path):
        raise ValueError(
            f"{path} is not a valid .npz file: it is not a zip archive, and boltzkit never "
            "reads pickled data"
        )
    try:
        handle = open(path, "rb")
    except OSError as error:
        raise ValueError(f"{path} is not a valid .npz file: {error}") from None
    # NumPy closes a file it opened itself only on success, so the handle is
    # owned here to close it on every error as well.
    with handle:
        arrays = _read_npz_handle(path, handle)

    # NpzFile returns the raw bytes of a member that is not in .npy format.
    for name, value in arrays.items():
        if not isinstance(value, np.ndarray):
            raise ValueError(f"{path} is not a valid .npz file: entry {name!r} is not a .npy array")
    return arrays


def _read_npz_handle(path: str, handle: IO[bytes]) -> dict[str, np.ndarray]:
    try:
        loaded = np.load(handle, allow_pickle=False)
    except ValueError as error:
        raise ValueError(f"{path} is not a valid .npz file: {error}") from None
    except (OSError, EOFError, zipfile.BadZipFile) as error:
        raise ValueError(f"{path} is not a valid .npz file: {error}") from None

    if not isinstance(loaded, np.lib.npyio.NpzFile):
        raise ValueError(f"{path} is a .npy file, not an .npz archive")
    try:
        with loaded as archive:
            return {name: archive[name] for name in archive.files}
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as error:
        raise _read_error(path, error, ".npz") from None


def _read_error(path: str, error: Exception, suffix: str) -> ValueError:
    """Return the error for a ``suffix`` file that NumPy failed to read, naming object arrays."""
    if isinstance(error, ValueError) and (
        "allow_pickle" in str(error) or "Object arrays" in str(error)
    ):
        return ValueError(
            f"{path} contains object arrays, which are not loaded because loading "
            "them would run pickle; save plain numeric arrays instead"
        )
    return ValueError(f"{path} is not a valid {suffix} file: {error}")


def read_npy(path: str) -> np.ndarray:
    """Return the array of a ``.npy`` file, without pickle.

    Raises:
        ValueError: naming ``path``, for a file that cannot be opened, has no
            ``.npy`` header, is cut short or contains object arrays.
    """
    try:
        handle = open(path, "rb")
    except OSError as error:
        raise ValueError(f"{path} cannot be read: {error.strerror or error}") from None
    with handle:
        if handle.read(len(np.lib.format.MAGIC_PREFIX)) != np.lib.format.MAGIC_PREFIX:
            raise ValueError(f"{path} is not a .npy file: it does not start with a .npy header")
        handle.seek(0)
        try:
            return np.lib.format.read_array(handle, allow_pickle=False)
        except (ValueError, OSError, EOFError) as error:
            raise _read_error(path, error, ".npy") from None


def check_regular_destination(path: str) -> None:
    """Refuse to replace anything but a regular file, such as a device or a directory."""
    if os.path.lexists(path) and not os.path.isfile(path):
        raise ValueError(f"{path} exists and is not a regular file; choose another output path")


def write_npy_header(handle: IO[bytes], dtype: np.dtype, shape: tuple[int, ...]) -> None:
    """Write the header of a ``.npy`` file whose data will be appended in C order."""
    header = {
        "descr": np.lib.format.dtype_to_descr(np.dtype(dtype)),
        "fortran_order": False,
        "shape": shape,
    }
    np.lib.format.write_array_header_1_0(handle, header)
