"""Collection rules for the whole repository."""

# The examples in these modules need PyTorch, an optional extra, so
# tests/test_interop_torch.py runs them after pytest.importorskip("torch")
# instead of --doctest-modules.
collect_ignore = ["boltzkit/interop/torch.py", "boltzkit/interop/_torch_autograd.py"]
