"""Test configuration: strict dtype and rank promotion, which the library must work under."""

import jax

jax.config.update("jax_numpy_dtype_promotion", "strict")
jax.config.update("jax_numpy_rank_promotion", "raise")
