"""``boltzkit evaluate``: score samples from any sampler against a target."""

from __future__ import annotations

import argparse
import json
import math
import os
import sys

import numpy as np

from boltzkit import _io, evaluation
from boltzkit.cli import _common
from boltzkit.cli._errors import CommandError
from boltzkit.evaluation._evaluate import check_sample_array

FIGURE_SUFFIXES = (".png", ".pdf", ".svg")

# One line per metric in the printed table, in this order.
DESCRIPTIONS = {
    "n_samples": "model samples used",
    "n_reference": "exact test-split samples used",
    "reverse_ess": "reverse ESS / N (needs --model-log-probs)",
    "logZ_estimate": "importance-sampling log Z estimate",
    "logZ_error": "log Z estimate minus the true log Z",
    "elbo": "ELBO",
    "reverse_kl": "KL(model || target) estimate",
    "mmd_squared": "MMD^2, RBF kernel, median-heuristic bandwidth",
    "w2": "Wasserstein-2 distance",
    "energy_distance": "squared energy distance",
    "log_prob_tv": "TV of target log-density histograms",
    "emc": "entropic mode coverage",
    "modes_covered": "components with >= 10% of their weight",
    "component_weights_tv": "TV of component frequencies and weights",
}


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "evaluate",
        help="score samples from any sampler against a target",
        description="Compare SAMPLES (an .npy array of shape (N, D), or an .npz file with an "
        "array 'samples' or exactly one array) with exact samples of the target's test split "
        "and print the metrics. "
        "All metrics use min(N, --n-reference) samples: a random subset of SAMPLES (chosen with "
        "--seed) when N is larger, or the first N test samples when N is smaller.",
    )
    _common.add_target_argument(parser)
    parser.add_argument("samples", metavar="SAMPLES", help="model samples, .npy or .npz")
    parser.add_argument(
        "--model-log-probs", metavar="FILE",
        help="the model's normalized log density at each row of SAMPLES, shape (N,), .npy or "
        ".npz (array 'log_probs'); adds ESS, log Z, ELBO and reverse KL",
    )
    parser.add_argument("--n-reference", type=_common.int_at_least(evaluation.MIN_SAMPLES),
                        default=2000, metavar="M",
                        help="number of exact test-split samples to compare with (default: 2000)")
    parser.add_argument("--seed", type=_common.seed_int, default=0, metavar="S",
                        help="seed of the test split and of the subset of SAMPLES (default: 0)")
    parser.add_argument("--json", metavar="OUT", help="also write the metrics to this .json file")
    parser.add_argument("--plot", metavar="OUT.png",
                        help="also draw the samples beside exact ones: .png, .pdf or .svg")
    parser.add_argument("--force", action="store_true", help="replace output files that exist")
    parser.set_defaults(run=run)


_COUNTS = ("n_samples", "n_reference", "modes_covered")


def read_array(path: str, *, preferred: str, what: str) -> np.ndarray:
    """Read one numeric array from an .npy file or an .npz archive, without pickle."""
    if not os.path.exists(path):
        raise CommandError(f"{what} file {path} not found")
    if path.endswith(".npz"):
        arrays = _io.read_npz(path)
        if preferred in arrays:
            return arrays[preferred]
        if len(arrays) == 1:
            return next(iter(arrays.values()))
        raise CommandError(
            f"{path} must contain an array named '{preferred}' or exactly one array, found "
            f"{', '.join(sorted(arrays)) or 'none'}"
        )
    if path.endswith(".npy"):
        try:
            return _io.read_npy(path)
        except ValueError as error:
            raise CommandError(str(error)) from None
    raise CommandError(f"{what} file {path} must end with .npy or .npz")


def run(args: argparse.Namespace) -> None:
    if args.json is not None:
        _io.check_output_path(args.json, overwrite=args.force, suffixes=(".json",))
    if args.plot is not None:
        _io.check_output_path(args.plot, overwrite=args.force, suffixes=FIGURE_SUFFIXES)
    target = _common.load(args.target)
    samples = read_array(args.samples, preferred="samples", what="SAMPLES")
    model_log_probs = None
    if args.model_log_probs is not None:
        model_log_probs = read_array(args.model_log_probs, preferred="log_probs",
                                     what="--model-log-probs")

    samples, model_log_probs = _check_and_subset(target, samples, model_log_probs, args)
    n_used = samples.shape[0]
    reference = target.load_dataset("test", n_used, seed=args.seed).samples
    metrics = evaluation.evaluate(
        target, samples, model_log_probs=model_log_probs, reference_samples=reference
    )

    print(format_table(metrics))
    not_finite = [name for name, value in metrics.items() if not math.isfinite(value)]
    if not_finite:
        print(
            f"boltzkit evaluate: warning: non-finite metrics ({', '.join(not_finite)}): a value "
            f"overflowed {target.dtype}, so SAMPLES may contain points far from the target",
            file=sys.stderr,
        )
    if args.json is not None:
        # The counts are whole numbers, so the file stores them as integers.
        counts = {name: int(metrics[name]) for name in _COUNTS if name in metrics}
        text = json.dumps({**metrics, **counts}, indent=2) + "\n"
        _io.write_bytes(args.json, lambda handle: handle.write(text.encode()), overwrite=args.force)
        print(f"wrote {args.json}")
    if args.plot is not None:
        draw_comparison(target, samples, reference, args.plot, overwrite=args.force,
                        title=f"{os.path.basename(args.samples)} against {args.target}")
        print(f"wrote {args.plot}")


def _check_and_subset(target, samples, model_log_probs, args):
    samples = check_sample_array("SAMPLES", samples, target.dim)
    samples = np.asarray(samples)
    if model_log_probs is not None:
        model_log_probs = np.asarray(model_log_probs)
        if model_log_probs.shape != (samples.shape[0],):
            raise CommandError(
                f"--model-log-probs must have shape ({samples.shape[0]},), one value per row of "
                f"SAMPLES, got shape {model_log_probs.shape}"
            )
        if model_log_probs.dtype.kind not in "fiu":
            raise CommandError(
                f"--model-log-probs must contain real numbers, got dtype {model_log_probs.dtype}"
            )
        bad = np.flatnonzero(~np.isfinite(model_log_probs))
        if bad.size:
            raise CommandError(
                f"--model-log-probs has {bad.size} values that are NaN or infinite, the first "
                f"at index {bad[0]} ({model_log_probs[bad[0]]}); each must be the model's finite "
                "log density at the row of SAMPLES"
            )
    if samples.shape[0] > args.n_reference:
        rows = np.sort(np.random.default_rng(args.seed).choice(
            samples.shape[0], size=args.n_reference, replace=False))
        samples = samples[rows]
        if model_log_probs is not None:
            model_log_probs = model_log_probs[rows]
    return samples, model_log_probs


def format_table(metrics: dict[str, float]) -> str:
    """Return the metrics as aligned lines of name, value and description."""
    lines = []
    for name, value in metrics.items():
        if name in ("n_samples", "n_reference", "modes_covered") and math.isfinite(value):
            text = f"{int(value)}"
        else:
            text = f"{value:.4g}"
        lines.append(f"{name:<22} {text:>12}   {DESCRIPTIONS.get(name, '')}".rstrip())
    return "\n".join(lines)


def draw_comparison(target, samples, reference, path: str, *, overwrite: bool, title: str,
                    label: str = "model samples") -> None:
    """Draw exact samples and model samples on the density, and their log-density histograms."""
    from boltzkit import plot
    from boltzkit.cli._plot import import_matplotlib

    Figure, FigureCanvasAgg = import_matplotlib()
    figure = Figure(figsize=(15, 4.8))
    axes = figure.subplots(1, 3)
    dims = (0, 1) if target.dim >= 2 else None
    if dims is None:
        plot.plot_marginals(target, reference, axes[:1], label="exact samples")
        plot.plot_marginals(target, samples, axes[1:2], label=label)
    else:
        plot.plot_log_prob_contours(target, reference, axes[0], dims=dims, sample_color="white")
        plot.plot_log_prob_contours(target, samples, axes[1], dims=dims, sample_color="tab:red")
    axes[0].set_title(f"{reference.shape[0]} exact samples")
    axes[1].set_title(f"{samples.shape[0]} {label}")
    plot.plot_log_prob_histograms(target, samples, reference, axes[2], label=label)
    axes[2].set_title("target log density at the samples")
    if target.dim > 2:
        figure.text(0.01, 0.01, f"contours: exact marginal of x[0], x[1] of {target.dim} dimensions",
                    fontsize="small")
    figure.suptitle(title)
    figure.tight_layout()
    FigureCanvasAgg(figure)
    image_format = os.path.splitext(path)[1].lstrip(".").lower()
    _io.write_bytes(path, lambda handle: figure.savefig(handle, format=image_format, dpi=100),
                    overwrite=overwrite)
