"""The interop modules import without their optional dependencies."""

import subprocess
import sys

WITHOUT_TORCH = """
import sys
sys.modules["torch"] = None  # makes `import torch` raise ModuleNotFoundError
import boltzkit.interop.torch as bridge
from boltzkit.targets import DiagonalGaussianMixture
print(bridge.__all__)
try:
    bridge.to_torch(DiagonalGaussianMixture.create_gmm40())
except ImportError as error:
    print(error)
"""


def test_torch_bridge_imports_without_torch():
    result = subprocess.run(
        [sys.executable, "-c", WITHOUT_TORCH], capture_output=True, text=True, timeout=300, check=False
    )

    assert result.returncode == 0, result.stderr
    assert "['TorchTarget', 'to_torch']" in result.stdout
    assert 'requires PyTorch, which is not installed; install it with pip install "boltzkit[torch]"' in (
        result.stdout
    )
