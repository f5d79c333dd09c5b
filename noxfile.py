"""Developer sessions: tests, lint, docs and benchmarks.

Run ``nox -l`` to list them and ``nox -s NAME`` to run one.
"""

import nox

nox.options.sessions = ["tests", "lint", "docs"]
nox.options.default_venv_backend = "venv"


@nox.session(python="3.11")
def tests(session: nox.Session) -> None:
    """Run the test suite and the docstring examples."""
    session.install("-e", ".[test,torch]", "-c", ".ci/constraints.txt")
    session.run("python", "-m", "pytest", *session.posargs)


@nox.session(python="3.11")
def lint(session: nox.Session) -> None:
    """Check style and common errors with ruff."""
    session.install("ruff>=0.6")
    session.run("ruff", "check", ".")


@nox.session(python="3.11")
def docs(session: nox.Session) -> None:
    """Build the documentation with warnings as errors."""
    session.install("-e", ".[docs]")
    session.run("mkdocs", "build", "--strict")


# The oldest JAX release that pyproject.toml admits (jax>=0.5) and whose
# jaxlib wheel installs on Python 3.11.
JAX_OLDEST = "0.5.0"


@nox.session(python="3.11")
def tests_jax_oldest(session: nox.Session) -> None:
    """Run the test suite on the oldest supported JAX release."""
    session.install("-e", ".[test]", f"jax=={JAX_OLDEST}", f"jaxlib=={JAX_OLDEST}")
    session.run("python", "-c", "import jax; print('jax', jax.__version__)")
    session.run("python", "-m", "pytest", *session.posargs)


@nox.session(python="3.11")
def tests_jax_newest(session: nox.Session) -> None:
    """Run the test suite on the newest JAX release on PyPI."""
    session.install("-e", ".[test]")
    session.install("--upgrade", "jax", "jaxlib")
    session.run("python", "-c", "import jax; print('jax', jax.__version__)")
    session.run("python", "-m", "pytest", *session.posargs)


@nox.session(python="3.11")
def bench(session: nox.Session) -> None:
    """Time boltzkit against TFP-JAX, distrax and NumPyro; pass --quick for a short run.

    The peers are installed in this session only; they are not dependencies of boltzkit.
    """
    session.install("-e", ".")
    session.install("tfp-nightly", "distrax", "numpyro")
    session.run("python", "benchmarks/bench_gaussian_mixture.py", *session.posargs)
    if "--quick" not in session.posargs:
        session.run("python", "benchmarks/memory_gaussian_mixture.py")
