"""The runner's compile-ahead helper: the compiled program is the jitted one, traced once, and an
error raised while tracing reaches the caller that waits for it."""

import jax
import jax.numpy as jnp
import pytest

from wildrobot.train.runner import compile_in_background


def test_compiled_in_background_equals_the_jitted_function_and_traces_once():
    traces = []

    def f(x):
        traces.append(1)
        return {"y": jnp.sin(x["a"]) * 2.0, "n": x["n"] + 1}

    x = {"a": jnp.arange(4.0), "n": jnp.zeros((), jnp.int32)}
    wait = compile_in_background(jax.jit(f), jax.eval_shape(lambda: x))
    compiled = wait()
    out = compiled(x)
    out = compiled(x)  # a compiled executable never traces again
    assert len(traces) == 1
    assert jnp.allclose(out["y"], jnp.sin(x["a"]) * 2.0) and int(out["n"]) == 1


def test_an_error_while_tracing_reaches_the_waiting_caller():
    def bad(x):
        raise ValueError("observation size 7 does not match the policy's 5")

    wait = compile_in_background(jax.jit(bad), jax.ShapeDtypeStruct((3,), jnp.float32))
    with pytest.raises(ValueError, match="does not match"):
        wait()
