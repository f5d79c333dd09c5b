"""The PyTorch bridge: values, gradients, errors, memory sharing and a training loop."""

import contextlib
import doctest
import math
import sys

import jax
import numpy as np
import pytest
from scipy.special import softmax

torch = pytest.importorskip("torch")

import boltzkit.interop.torch as torch_interop  # noqa: E402
from boltzkit.interop import _torch_autograd  # noqa: E402
from boltzkit.interop.torch import TorchTarget, to_torch  # noqa: E402
from boltzkit.targets import DiagonalGaussianMixture  # noqa: E402
from tests._reference import assert_close, mixture_log_prob, mixture_score  # noqa: E402

RNG = np.random.default_rng(7)
MEANS = RNG.normal(size=(3, 2)) * 2.0
STDS = RNG.uniform(0.5, 1.5, size=(3, 2))
LOGITS = RNG.normal(size=3)
POINTS = RNG.normal(size=(7, 2)) * 3.0


def mixture_hessian(means, diag_stds, logits, x):
    """Return the Hessian of log p(x) of shape (n, d, d) in float64, for points of shape (n, d).

    With s_k = (mean_k - x) / std_k^2 and r_k = p(k | x), the Hessian is
    sum_k r_k (s_k s_k^T - diag(1 / std_k^2)) - s s^T with s = sum_k r_k s_k.
    """
    means = np.asarray(means, np.float64)
    stds = np.asarray(diag_stds, np.float64)
    x = np.asarray(x, np.float64)
    z = (x[:, None, :] - means[None]) / stds[None]
    log_joints = np.asarray(logits, np.float64) - 0.5 * np.sum(z**2, axis=-1) - np.sum(np.log(stds), axis=-1)
    r = softmax(log_joints, axis=-1)
    s_k = (means[None] - x[:, None, :]) / stds[None] ** 2
    s = np.einsum("nk,nkd->nd", r, s_k)
    outer = np.einsum("nk,nkd,nke->nde", r, s_k, s_k)
    curvature = np.einsum("nk,kd->nd", r, 1.0 / stds**2)
    return outer - np.einsum("nd,de->nde", curvature, np.eye(x.shape[1])) - np.einsum("nd,ne->nde", s, s)


@contextlib.contextmanager
def jax_x64(enabled):
    """Set JAX's 64-bit mode inside the block and restore the previous setting afterwards."""
    previous = jax.config.jax_enable_x64
    jax.config.update("jax_enable_x64", enabled)
    try:
        yield
    finally:
        jax.config.update("jax_enable_x64", previous)


@pytest.fixture
def x64():
    with jax_x64(True):
        yield


@pytest.fixture
def no_x64():
    with jax_x64(False):
        yield


@pytest.fixture
def target():
    return DiagonalGaussianMixture(MEANS, STDS, LOGITS)


@pytest.fixture
def bridge(target):
    return to_torch(target)


def float32_points():
    return torch.tensor(POINTS, dtype=torch.float32)


# ------------------------------------------------------------------- values


def test_log_prob_matches_reference_and_jax(bridge, target):
    x = float32_points()
    values = bridge.log_prob(x)

    assert isinstance(values, torch.Tensor)
    assert values.dtype == torch.float32
    assert values.shape == (7,)
    assert_close(values.numpy(), mixture_log_prob(MEANS, STDS, LOGITS, POINTS), rtol=1e-5, atol=1e-5)
    assert np.array_equal(values.numpy(), np.asarray(target.log_prob(x.numpy())))


def test_score_matches_reference_and_jax(bridge, target):
    x = float32_points()
    scores = bridge.score(x)

    assert scores.dtype == torch.float32
    assert scores.shape == (7, 2)
    assert_close(scores.numpy(), mixture_score(MEANS, STDS, LOGITS, POINTS), rtol=1e-4, atol=1e-5)
    assert np.array_equal(scores.numpy(), np.asarray(target.score(x.numpy())))


def test_log_prob_gradient_is_weighted_score(bridge, target):
    x = float32_points().requires_grad_()
    weights = torch.linspace(-1.0, 2.0, 7)

    bridge.log_prob(x).backward(weights)

    expected = weights.numpy()[:, None].astype(np.float64) * mixture_score(MEANS, STDS, LOGITS, POINTS)
    assert x.grad.dtype == torch.float32
    assert_close(x.grad.numpy(), expected, rtol=1e-4, atol=1e-5)
    jax_gradient = weights.numpy()[:, None] * np.asarray(target.score(POINTS.astype(np.float32)))
    assert_close(x.grad.numpy(), jax_gradient, rtol=1e-6, atol=1e-7)


def test_batch_shape_kept(bridge):
    x = torch.tensor(RNG.normal(size=(3, 4, 2)), dtype=torch.float32, requires_grad=True)

    values = bridge.log_prob(x)
    values.sum().backward()

    assert values.shape == (3, 4)
    assert bridge.score(x.detach()).shape == (3, 4, 2)
    expected = mixture_log_prob(MEANS, STDS, LOGITS, x.detach().numpy())
    assert_close(values.detach().numpy(), expected, rtol=1e-5, atol=1e-5)
    assert x.grad.shape == (3, 4, 2)


def test_empty_batch(bridge):
    x = torch.zeros((0, 2), requires_grad=True)

    values = bridge.log_prob(x)
    values.sum().backward()

    assert values.shape == (0,)
    assert bridge.score(x.detach()).shape == (0, 2)
    assert x.grad.shape == (0, 2)


def test_no_graph_without_requires_grad(bridge):
    plain = bridge.log_prob(float32_points())
    assert not plain.requires_grad
    assert plain.grad_fn is None

    with torch.no_grad():
        inside_no_grad = bridge.score(float32_points().requires_grad_())
    assert not inside_no_grad.requires_grad


@pytest.mark.parametrize(
    ("target_dtype", "x_dtype", "result_dtype"),
    [
        ("float32", "float32", "float32"),
        ("float32", "float64", "float64"),
        ("float64", "float32", "float64"),
        ("float64", "float64", "float64"),
    ],
)
def test_dtype_combinations(x64, target_dtype, x_dtype, result_dtype):
    target = DiagonalGaussianMixture(*(np.asarray(p, target_dtype) for p in (MEANS, STDS, LOGITS)))
    assert target.dtype == np.dtype(target_dtype)
    bridge = to_torch(target)
    x = torch.tensor(POINTS, dtype=getattr(torch, x_dtype), requires_grad=True)

    values = bridge.log_prob(x)
    values.sum().backward()
    scores = bridge.score(x.detach())

    assert bridge.dtype == getattr(torch, target_dtype)
    assert values.dtype == getattr(torch, result_dtype)
    assert scores.dtype == getattr(torch, result_dtype)
    assert x.grad.dtype == x.dtype
    # The reference uses the parameters and points as the bridge saw them.
    params = [np.asarray(p, np.float64) for p in (target.means, target.diag_stds, target.logits)]
    points = x.detach().numpy().astype(np.float64)
    rtol = 1e-12 if result_dtype == "float64" else 1e-5
    assert_close(values.detach().numpy(), mixture_log_prob(*params, points), rtol=rtol, atol=rtol)
    assert_close(scores.numpy(), mixture_score(*params, points), rtol=100 * rtol, atol=rtol)
    assert_close(x.grad.numpy(), mixture_score(*params, points), rtol=max(100 * rtol, 1e-6), atol=1e-6)


# -------------------------------------------------------------- derivatives


def test_gradcheck_float64(x64):
    bridge = to_torch(DiagonalGaussianMixture(MEANS, STDS, LOGITS))
    x = torch.tensor(POINTS[:5] / 3.0, dtype=torch.float64, requires_grad=True)

    assert torch.autograd.gradcheck(bridge.log_prob, (x,))
    assert torch.autograd.gradcheck(bridge.score, (x,))
    assert torch.autograd.gradgradcheck(bridge.log_prob, (x,))


def test_x64_setting_restored():
    before = jax.config.jax_enable_x64

    with jax_x64(not before):
        assert jax.config.jax_enable_x64 == (not before)

    assert jax.config.jax_enable_x64 == before


def test_hessian_matches_reference(x64):
    bridge = to_torch(DiagonalGaussianMixture(MEANS, STDS, LOGITS))
    x = torch.tensor(POINTS, dtype=torch.float64, requires_grad=True)
    expected = mixture_hessian(MEANS, STDS, LOGITS, POINTS)

    (gradient,) = torch.autograd.grad(bridge.log_prob(x).sum(), x, create_graph=True)
    rows_from_log_prob = [torch.autograd.grad(gradient[:, d].sum(), x, retain_graph=True)[0]
                          for d in range(2)]
    hessian_from_log_prob = torch.stack(rows_from_log_prob, dim=1)

    scores = bridge.score(x)
    rows_from_score = [torch.autograd.grad(scores[:, d].sum(), x, retain_graph=True)[0]
                       for d in range(2)]
    hessian_from_score = torch.stack(rows_from_score, dim=1)

    assert_close(hessian_from_log_prob.numpy(), expected, rtol=1e-10, atol=1e-12)
    assert_close(hessian_from_score.numpy(), expected, rtol=1e-10, atol=1e-12)


def test_third_derivative_raises(bridge):
    x = float32_points().requires_grad_()
    (gradient,) = torch.autograd.grad(bridge.log_prob(x).sum(), x, create_graph=True)
    (second,) = torch.autograd.grad(gradient.sum(), x, create_graph=True)

    with pytest.raises(RuntimeError, match="third derivatives of log_prob are not supported"):
        second.sum().backward()


def test_score_double_backward_raises(bridge):
    x = float32_points().requires_grad_()
    weights = torch.ones(7, 2, requires_grad=True)
    (product,) = torch.autograd.grad((bridge.score(x) * weights).sum(), x, create_graph=True)

    with pytest.raises(RuntimeError, match=r"TorchTarget\.score can be differentiated only once"):
        product.sum().backward()


def test_in_place_change_before_backward_raises(bridge):
    leaf = float32_points().requires_grad_()
    x = leaf * 1.0
    values = bridge.log_prob(x)
    x.add_(1.0)

    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        values.sum().backward()


# ------------------------------------------------------------------- errors


def test_rejects_non_tensor(bridge):
    for value in (POINTS, POINTS.tolist()):
        with pytest.raises(TypeError, match=r"x must be a torch\.Tensor"):
            bridge.log_prob(value)
        with pytest.raises(TypeError, match=r"x must be a torch\.Tensor"):
            bridge.score(value)


@pytest.mark.parametrize(
    "dtype", ["float16", "bfloat16", "int32", "int64", "complex64", "complex128", "bool"]
)
def test_rejects_dtype(bridge, dtype):
    x = torch.zeros((4, 2), dtype=getattr(torch, dtype))

    with pytest.raises(TypeError, match=f"torch.float32 or torch.float64, got torch.{dtype}"):
        bridge.log_prob(x)
    with pytest.raises(TypeError, match=f"got torch.{dtype}"):
        bridge.score(x)


def test_float64_without_x64_raises(no_x64, bridge):
    x = torch.zeros((4, 2), dtype=torch.float64)

    with pytest.raises(TypeError, match="64-bit mode is disabled"):
        bridge.log_prob(x)
    with pytest.raises(TypeError, match="jax_enable_x64"):
        bridge.score(x)


def test_rejects_non_contiguous(bridge):
    wide = torch.zeros((2, 6))
    cases = {
        "transposed": torch.zeros((2, 6)).t(),
        "strided slice": wide.reshape(6, 2)[::2],
        "expanded": torch.zeros((1, 2)).expand(5, 2),
    }
    for label, x in cases.items():
        assert not x.is_contiguous(), label
        with pytest.raises(ValueError, match=r"x must be contiguous.*x\.contiguous\(\)"):
            bridge.log_prob(x)
        with pytest.raises(ValueError, match="x must be contiguous"):
            bridge.score(x)


def test_rejects_sparse(bridge):
    x = float32_points().to_sparse()

    with pytest.raises(ValueError, match="dense"):
        bridge.log_prob(x)


def test_rejects_meta_device(bridge):
    x = torch.empty((3, 2), device="meta")

    with pytest.raises(ValueError, match="x is on device meta"):
        bridge.log_prob(x)


def test_cuda_device_checked_against_jax(monkeypatch):
    cpu_devices = jax.devices("cpu")

    def devices_without_gpu(backend=None):
        if backend == "gpu":
            raise RuntimeError("Unknown backend gpu")
        return cpu_devices

    monkeypatch.setattr(jax, "devices", devices_without_gpu)
    with pytest.raises(ValueError, match="JAX has no GPU backend"):
        torch_interop._check_device(torch.device("cuda:0"))

    monkeypatch.setattr(jax, "devices", lambda backend=None: ["gpu0"])
    torch_interop._check_device(torch.device("cuda:0"))
    torch_interop._check_device(torch.device("cuda"))
    with pytest.raises(ValueError, match="JAX sees only 1 GPU"):
        torch_interop._check_device(torch.device("cuda:1"))


@pytest.mark.parametrize("shape", [(4, 3), (4, 1), (3,), ()])
def test_wrong_dimension_raises_library_error(bridge, target, shape):
    with pytest.raises(ValueError) as jax_error:
        target.log_prob(np.zeros(shape, np.float32))

    for method in (bridge.log_prob, bridge.score):
        with pytest.raises(ValueError) as torch_error:
            method(torch.zeros(shape))
        assert str(torch_error.value) == str(jax_error.value)


def test_rejects_non_target():
    with pytest.raises(TypeError, match="without log_prob, score, sample, dim"):
        to_torch(object())
    with pytest.raises(TypeError, match="got a ndarray without"):
        TorchTarget(np.zeros(3))

    class NotAPytree:
        dim = 2

        def log_prob(self, x):
            return x

        score = sample = log_prob

    with pytest.raises(TypeError, match="must be registered as a JAX pytree, got a NotAPytree"):
        to_torch(NotAPytree())


def test_missing_torch_raises_import_error(monkeypatch, target):
    monkeypatch.setitem(sys.modules, "torch", None)

    with pytest.raises(ImportError, match=r'pip install "boltzkit\[torch\]"'):
        to_torch(target)


# ----------------------------------------------------------------- sampling


def test_sample_matches_jax(bridge, target):
    samples = bridge.sample(16, seed=3)

    assert samples.shape == (16, 2)
    assert samples.dtype == torch.float32
    assert not samples.requires_grad
    assert np.array_equal(samples.numpy(), np.asarray(target.sample(16, seed=3)))
    from_key = bridge.sample(16, seed=jax.random.key(5))
    assert np.array_equal(from_key.numpy(), np.asarray(target.sample(16, seed=jax.random.key(5))))
    assert bridge.sample(0).shape == (0, 2)


def test_sample_argument_errors(bridge):
    with pytest.raises(ValueError, match="n_samples must be an integer >= 0"):
        bridge.sample(-1)
    with pytest.raises(TypeError, match="n_samples must be an integer"):
        bridge.sample(2.5)
    with pytest.raises(ValueError, match=r"seed must be an int in \[0, 2\*\*32\)"):
        bridge.sample(3, seed=-1)


# ------------------------------------------------------------ memory sharing


def test_outputs_share_jax_memory():
    array = jax.numpy.arange(6.0).reshape(3, 2)

    tensor = _torch_autograd.jax_to_tensor(array)

    assert tensor.data_ptr() == array.unsafe_buffer_pointer()
    assert tensor.tolist() == [[0.0, 1.0], [2.0, 3.0], [4.0, 5.0]]


def test_outputs_not_shared_with_residuals(bridge):
    # Writing into a returned tensor must not change what the backward pass reads.
    x = float32_points().requires_grad_()
    for forward in (_torch_autograd._log_prob_with_pullback, _torch_autograd._score_with_pullback):
        output, pullback = forward(bridge.target, _torch_autograd.tensor_to_jax(x))
        residual_pointers = {leaf.unsafe_buffer_pointer() for leaf in jax.tree.leaves(pullback)}
        assert output.unsafe_buffer_pointer() not in residual_pointers

    values = bridge.log_prob(x)
    values.detach().fill_(0.0)
    values.backward(torch.ones(7))
    assert_close(x.grad.numpy(), mixture_score(MEANS, STDS, LOGITS, POINTS), rtol=1e-4, atol=1e-5)


def test_aligned_inputs_read_in_place():
    x = float32_points()
    assert x.data_ptr() % 64 == 0

    array = _torch_autograd.tensor_to_jax(x)

    assert array.unsafe_buffer_pointer() == x.data_ptr()


def test_unaligned_input_gives_same_values(bridge):
    storage = torch.zeros((8, 2))
    storage[1:] = float32_points()
    x = storage[1:]
    assert x.is_contiguous()
    assert x.data_ptr() % 64 != 0

    assert torch.equal(bridge.log_prob(x), bridge.log_prob(x.clone()))


# ------------------------------------------------------------ training loop


def test_reverse_kl_training_converges():
    # A diagonal Gaussian model q fitted to a one-component target p by the
    # reparameterized reverse KL, E_q[log q - log p]. Its minimum is q = p.
    target_mean = np.array([1.5, -2.0])
    target_std = np.array([0.5, 2.0])
    bridge = to_torch(DiagonalGaussianMixture(target_mean[None], target_std[None]))
    mean = torch.zeros(2, requires_grad=True)
    log_std = torch.zeros(2, requires_grad=True)
    optimizer = torch.optim.Adam([mean, log_std], lr=0.05)
    generator = torch.Generator().manual_seed(0)

    losses = []
    for _ in range(400):
        noise = torch.randn((256, 2), generator=generator)
        x = mean + torch.exp(log_std) * noise
        log_q = (-0.5 * noise**2 - log_std - 0.5 * math.log(2.0 * math.pi)).sum(-1)
        loss = (log_q - bridge.log_prob(x)).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())

    assert np.mean(losses[-50:]) < 0.02
    assert_close(mean.detach().numpy(), target_mean, rtol=0.0, atol=0.1, name="mean")
    assert_close(torch.exp(log_std).detach().numpy(), target_std, rtol=0.05, atol=0.0, name="std")


# TorchDynamo reads .grad of the bridge's non-leaf output when it resumes after
# the graph break, and its own warning filter fails once warnings are errors.
@pytest.mark.filterwarnings("ignore:The .grad attribute of a Tensor that is not a leaf:UserWarning")
def test_torch_compile_runs_bridge_eagerly(bridge):
    def loss(x):
        return -(2.0 * bridge.log_prob(x)).mean()

    compiled = torch.compile(loss, backend="eager")
    x_eager = float32_points().requires_grad_()
    x_compiled = float32_points().requires_grad_()

    loss(x_eager).backward()
    compiled(x_compiled).backward()

    assert torch.equal(x_compiled.grad, x_eager.grad)
    assert torch.equal(compiled(float32_points()), loss(float32_points()))


# ----------------------------------------------------------------- examples


EXAMPLES = [test for test in doctest.DocTestFinder().find(torch_interop) if test.examples]


@pytest.mark.parametrize("example", EXAMPLES, ids=[test.name for test in EXAMPLES])
def test_module_examples(example):
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)

    runner.run(example)

    assert runner.failures == 0, f"{example.name} failed; its output is above"
