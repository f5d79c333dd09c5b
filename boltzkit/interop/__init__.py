"""Bridges from boltzkit targets to other array libraries.

:mod:`boltzkit.interop.torch` turns a target into PyTorch functions. It needs
the optional extra ``torch``: ``pip install "boltzkit[torch]"``. Importing
this package imports no PyTorch.
"""
