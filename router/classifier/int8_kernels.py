"""Exact int8 products on CPUs whose signed-weight int8 kernel saturates.

The shipped model multiplies uint8 activations by int8 weights. On x86 CPUs without VNNI (AVX2
only, or AVX-512 without VNNI), ONNX Runtime's kernel for that pair adds two products into a
16-bit lane, which saturates: the model then computes something other than what was built and
evaluated. On one such CPU, 2.3% of task labels changed and difficulty moved by up to 0.18 against
the same model run without the integer kernels; "Design a URL shortener…" read 0.42 instead of 0.31.

The same weights stored as uint8 with zero point 128 are the same numbers exactly, and the
unsigned-weight kernel widens to 32 bits first, so it does not saturate (7-35% slower on a
120-token prompt on that CPU, about a tenth on short ones). CPUs with VNNI or AMX, and ARM, compute the
signed pair exactly and fast, so they keep the model as shipped.
"""

from __future__ import annotations

import platform
from pathlib import Path

import numpy as np

INT8_MODES: tuple[str, ...] = ("auto", "exact", "native")
# /proc/cpuinfo flags under which ONNX Runtime's signed-weight kernel does not saturate.
EXACT_FLAGS = frozenset({"avx512_vnni", "avx_vnni", "amx_int8"})
X86 = frozenset({"x86_64", "amd64", "i386", "i686", "x86"})


def cpu_flags(cpuinfo: Path = Path("/proc/cpuinfo")) -> frozenset[str] | None:
    """The first processor's feature flags, or None where the file cannot be read (not Linux)."""
    try:
        text = cpuinfo.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip() == "flags":
            return frozenset(value.split())
    return None


def signed_int8_saturates(machine: str | None = None, flags: frozenset[str] | None = None,
                          *, read_flags: bool = True) -> bool:
    """Whether ONNX Runtime's uint8 x int8 product may saturate here: an x86 CPU that lacks every
    flag of EXACT_FLAGS, or an x86 CPU whose flags cannot be read (the exact path is never wrong)."""
    if (machine or platform.machine()).lower() not in X86:
        return False
    if flags is None and read_flags:
        flags = cpu_flags()
    return flags is None or not (flags & EXACT_FLAGS)


def use_exact(mode: str) -> bool:
    if mode not in INT8_MODES:
        raise ValueError(f"ROUTER_CLASSIFIER_INT8 must be one of {', '.join(INT8_MODES)}, got {mode!r}")
    return mode == "exact" or (mode == "auto" and signed_int8_saturates())


def unsigned_weights(model_bytes: bytes) -> tuple[bytes, int]:
    """The model with every int8 weight of zero point 0 that a DequantizeLinear reads stored as
    uint8 with zero point 128 (the same values), and how many weights changed. Needs `onnx`."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load_from_string(model_bytes)
    graph = model.graph
    inits = {init.name: init for init in graph.initializer}
    readers: dict[str, int] = {}
    for node in graph.node:
        for name in node.input:
            readers[name] = readers.get(name, 0) + 1
    changed = 0
    for node in graph.node:
        if node.op_type != "DequantizeLinear" or len(node.input) < 3:
            continue
        weight, zero = inits.get(node.input[0]), inits.get(node.input[2])
        if weight is None or zero is None or weight.data_type != onnx.TensorProto.INT8:
            continue
        if readers[node.input[0]] != 1 or readers[node.input[2]] != 1:  # shared: leave alone
            continue
        if np.any(numpy_helper.to_array(zero) != 0):
            continue
        for init in (weight, zero):
            values = numpy_helper.to_array(init).astype(np.int16) + 128
            init.CopyFrom(numpy_helper.from_array(values.astype(np.uint8), init.name))
        changed += 1
    return model.SerializeToString(), changed
