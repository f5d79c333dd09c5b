r"""Metrics from importance weights: model log densities paired with target log densities.

At a point $x$ the log importance weight is
$\log w(x) = \log \tilde p(x) - \log q(x)$, where $\tilde p$
is the target density up to its normalizing constant
$Z = \int \tilde p$ and $q$ is the model density, which must be
normalized. The *reverse* metrics average over samples of the model
$q$; the *forward* metrics average over samples of the target
$p = \tilde p / Z$.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from boltzkit._validation import check_real
from boltzkit.evaluation import _checks


def _log_mean_exp(values):
    return jax.nn.logsumexp(values) - jnp.log(jnp.asarray(values.shape[0], values.dtype))


def reverse_ess(target_log_probs: Any, model_log_probs: Any) -> jax.Array:
    r"""Return the reverse effective sample size as a fraction of the number of samples.

    $$
    \mathrm{ESS}_q / N = \frac{(\sum_i w_i)^2}{N \sum_i w_i^2},
    \qquad x_i \sim q,\; w_i = \tilde p(x_i) / q(x_i),
    $$

    computed from log weights with log-sum-exp. It lies in ``[1/N, 1]`` and
    is 1 when every weight is equal. The target may be unnormalized, and so
    may the model, because constant factors cancel.

    Sample size: the estimate is biased upward when the weights are
    heavy-tailed, because the samples that would carry large weights are
    rarely drawn; a model that misses modes can show a high reverse ESS.
    Use at least a few thousand samples and read it with the forward ESS.

    Args:
        target_log_probs: $\log \tilde p(x_i)$ at model samples, shape ``(N,)``.
        model_log_probs: $\log q(x_i)$ at the same samples, shape ``(N,)``.

    Example:
        >>> import jax.numpy as jnp
        >>> float(reverse_ess(jnp.array([0.0, 0.0]), jnp.array([-1.0, -1.0])))
        1.0
    """
    target_log_probs, model_log_probs = _checks.log_density_pair(target_log_probs, model_log_probs)
    return _reverse_ess(target_log_probs, model_log_probs)


@jax.jit
def _reverse_ess(target_log_probs, model_log_probs):
    log_weights = target_log_probs - model_log_probs
    n = jnp.asarray(log_weights.shape[0], log_weights.dtype)
    return jnp.exp(2.0 * jax.nn.logsumexp(log_weights) - jax.nn.logsumexp(2.0 * log_weights) - jnp.log(n))


def logZ_estimate(target_log_probs: Any, model_log_probs: Any) -> jax.Array:
    r"""Return the importance-sampling estimate of the log normalizing constant.

    $$
    \widehat{\log Z} = \log \frac{1}{N} \sum_i \frac{\tilde p(x_i)}{q(x_i)},
    \qquad x_i \sim q.
    $$

    The estimate of $Z$ is unbiased when ``q`` is normalized and covers
    the target's support; its logarithm is biased downward by about
    $\operatorname{Var}(w) / (2 N Z^2)$. For a target whose
    $\log Z$ is known (0 for a normalized target), the error
    ``logZ_estimate - logZ`` measures the sampler.

    Args:
        target_log_probs: $\log \tilde p(x_i)$ at model samples, shape ``(N,)``.
        model_log_probs: normalized $\log q(x_i)$ at the same samples.

    Example:
        >>> import jax.numpy as jnp
        >>> round(float(logZ_estimate(jnp.array([1.0, 1.0]), jnp.array([0.0, 0.0]))), 6)
        1.0
    """
    target_log_probs, model_log_probs = _checks.log_density_pair(target_log_probs, model_log_probs)
    return _log_mean_exp(target_log_probs - model_log_probs)


def elbo(target_log_probs: Any, model_log_probs: Any) -> jax.Array:
    r"""Return the evidence lower bound, the mean log weight under the model.

    $$
    \mathrm{ELBO} = \frac{1}{N} \sum_i \log \tilde p(x_i) - \log q(x_i),
    \qquad x_i \sim q,
    $$

    which estimates $\log Z - \mathrm{KL}(q \,\|\, p) \le \log Z$. The
    model must be normalized; the target may be unnormalized. The Monte Carlo
    error is the standard deviation of the log weights over
    $\sqrt{N}$, so a few hundred samples already give a stable value.

    Example:
        >>> import jax.numpy as jnp
        >>> float(elbo(jnp.array([-1.0, -3.0]), jnp.array([-1.0, -1.0])))
        -1.0
    """
    target_log_probs, model_log_probs = _checks.log_density_pair(target_log_probs, model_log_probs)
    return jnp.mean(target_log_probs - model_log_probs)


def reverse_kl(target_log_probs: Any, model_log_probs: Any, logZ: float = 0.0) -> jax.Array:
    r"""Return the Monte Carlo estimate of $\mathrm{KL}(q \,\|\, p)$ from model samples.

    $$
    \widehat{\mathrm{KL}}(q \,\|\, p) = \frac{1}{N} \sum_i \log q(x_i)
    - \log \tilde p(x_i) + \log Z = \log Z - \mathrm{ELBO},
    \qquad x_i \sim q.
    $$

    Both densities must be normalized, or the target's ``logZ`` passed.
    The error is the standard deviation of the log weights over
    $\sqrt{N}$.

    Example:
        >>> import jax.numpy as jnp
        >>> float(reverse_kl(jnp.array([-1.0, -3.0]), jnp.array([-1.0, -1.0])))
        1.0
    """
    target_log_probs, model_log_probs = _checks.log_density_pair(target_log_probs, model_log_probs)
    return _checked_logZ(logZ) - jnp.mean(target_log_probs - model_log_probs)


def eubo(target_log_probs: Any, model_log_probs: Any) -> jax.Array:
    r"""Return the evidence upper bound, the mean log weight under the target.

    $$
    \mathrm{EUBO} = \frac{1}{N} \sum_i \log \tilde p(x_i) - \log q(x_i),
    \qquad x_i \sim p,
    $$

    which estimates $\log Z + \mathrm{KL}(p \,\|\, q) \ge \log Z$. The
    model must be normalized. It needs exact target samples, so it is
    available for targets such as mixtures that can be sampled. The error is
    the standard deviation of the log weights over $\sqrt{N}$.

    Example:
        >>> import jax.numpy as jnp
        >>> float(eubo(jnp.array([-1.0, -1.0]), jnp.array([-2.0, -4.0])))
        2.0
    """
    target_log_probs, model_log_probs = _checks.log_density_pair(target_log_probs, model_log_probs)
    return jnp.mean(target_log_probs - model_log_probs)


def forward_ess(target_log_probs: Any, model_log_probs: Any) -> jax.Array:
    r"""Return the forward effective sample size as a fraction of the number of samples.

    With target samples, $E_q[w] = Z$ and $E_q[w^2] = Z\,E_p[w]$,
    and $1/Z = E_p[1/w]$, so the ESS fraction
    $(E_q w)^2 / E_q[w^2]$ is estimated without knowing $Z$ as

    $$
    \mathrm{ESS}_p / N = \Big( \frac{1}{N} \sum_i w_i \cdot
    \frac{1}{N} \sum_i w_i^{-1} \Big)^{-1},
    \qquad x_i \sim p,\; w_i = \tilde p(x_i) / q(x_i).
    $$

    It is at most 1, equal to 1 for ``q = p``, and unlike the reverse ESS it
    drops when the model misses a mode, because target samples land where the
    model density is small. Neither density needs to be normalized. Use at
    least a thousand samples; with few samples it is biased upward.

    Example:
        >>> import jax.numpy as jnp
        >>> float(forward_ess(jnp.array([0.0, 0.0, 0.0]), jnp.array([-2.0, -2.0, -2.0])))
        1.0
    """
    target_log_probs, model_log_probs = _checks.log_density_pair(target_log_probs, model_log_probs)
    log_weights = target_log_probs - model_log_probs
    return jnp.exp(-(_log_mean_exp(log_weights) + _log_mean_exp(-log_weights)))


def forward_kl(target_log_probs: Any, model_log_probs: Any, logZ: float = 0.0) -> jax.Array:
    r"""Return the Monte Carlo estimate of $\mathrm{KL}(p \,\|\, q)$ from target samples.

    $$
    \widehat{\mathrm{KL}}(p \,\|\, q) = \frac{1}{N} \sum_i \log \tilde p(x_i)
    - \log Z - \log q(x_i) = \mathrm{EUBO} - \log Z,
    \qquad x_i \sim p.
    $$

    Both densities must be normalized, or the target's ``logZ`` passed.

    Example:
        >>> import jax.numpy as jnp
        >>> float(forward_kl(jnp.array([-1.0, -1.0]), jnp.array([-2.0, -4.0])))
        2.0
    """
    target_log_probs, model_log_probs = _checks.log_density_pair(target_log_probs, model_log_probs)
    return jnp.mean(target_log_probs - model_log_probs) - _checked_logZ(logZ)


def nll(model_log_probs: Any) -> jax.Array:
    r"""Return the negative log-likelihood of target samples under the model.

    $$
    \mathrm{NLL} = -\frac{1}{N} \sum_i \log q(x_i), \qquad x_i \sim p,
    $$

    which equals $H(p) + \mathrm{KL}(p \,\|\, q)$. The model must be
    normalized. Values compare only between models evaluated in the same
    coordinates: a change of scale by ``c`` in ``D`` dimensions shifts it by
    $D \log c$.

    Example:
        >>> import jax.numpy as jnp
        >>> float(nll(jnp.array([-1.0, -3.0])))
        2.0
    """
    model_log_probs = _checks.log_densities("model_log_probs", model_log_probs)
    return -jnp.mean(model_log_probs)


def _checked_logZ(logZ: Any) -> Any:
    if isinstance(logZ, jax.Array) and logZ.ndim == 0:
        return logZ
    return check_real("logZ", logZ)
