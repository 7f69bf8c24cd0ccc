"""Builds a training corpus for the static encoder (tokenlearn_encoder.py): one sentence a
line, none of them from the evaluation set.

Usage (from the repository root; the versions the shipped table was fitted with):
    python3 -m venv /tmp/tl && /tmp/tl/bin/pip install --no-deps botocore==1.44.8
    python3 tests/search_eval/build_corpus.py \
        --botocore /tmp/tl/lib/python3.11/site-packages/botocore/data --out /tmp/botocore.txt
    apt-get install wordnet-base    # Debian 12: 1:3.0-37
    python3 tests/search_eval/build_corpus.py --wordnet /usr/share/wordnet --out /tmp/wordnet.txt

Sources, read from local files (nothing is fetched), one per run:
- `--botocore DIR`: AWS operation and parameter documentation from botocore's service
  models (Apache-2.0; DIR is a botocore package's `data` directory): the first two
  sentences of each operation's documentation and the first of each parameter's ("Deletes
  the specified alarm", "The name of the bucket"), the closest public text to tool
  descriptions;
- `--wordnet DIR`: WordNet 3.0's synsets (Princeton University, WordNet 3.0 licence;
  Debian's `wordnet-base`) as "sedate, calm, tranquilize: cause to be calm or quiet", and
  each one's first example sentence. botocore speaks software; these cover the everyday
  words people use when they describe a need in their own words ("which tongue is this
  written in").
Package registries' one-line summaries were tried as a third source and left out: they are
written by thousands of authors under as many licences, and the lists they were read from
are not something a reader can fetch, so a table fitted on them could be neither attributed
nor rebuilt.

Nothing from tests/search_eval: the evaluation's tool texts and queries are excluded by exact
match (lowercased), so the encoder is never fitted to the text it is judged on.

Filters: English-looking (ASCII letters dominate), 4 to 40 words, deduplicated (lowercased),
then a seeded sample of at most `--max` sentences in seeded order, so the output is
reproducible.
"""

from __future__ import annotations

import argparse
import gzip
import html
import json
import random
import re
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
TAG = re.compile(r"<[^>]+>")
SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z])")


def clean(text: str) -> str:
    text = html.unescape(TAG.sub(" ", text))
    return " ".join(text.split())


def english_like(text: str) -> bool:
    words = text.split()
    if not 4 <= len(words) <= 40:
        return False
    letters = sum(c.isascii() and c.isalpha() for c in text)
    return letters >= 0.7 * len(text.replace(" ", ""))


def first_sentences(doc: str, n: int = 2) -> list[str]:
    return SENTENCE_END.split(clean(doc))[:n]


def botocore_docs(data_dir: Path) -> list[str]:
    out = []
    for model in sorted(data_dir.glob("*/*/service-2.json*")):
        opener = gzip.open if model.suffix == ".gz" else open
        with opener(model, "rt", encoding="utf-8") as f:
            service = json.load(f)
        for op in service.get("operations", {}).values():
            out.extend(first_sentences(op.get("documentation", "")))
        for shape in service.get("shapes", {}).values():
            for member in shape.get("members", {}).values():
                out.extend(first_sentences(member.get("documentation", ""), 1))
    return out


def wordnet_sentences(directory: Path) -> list[str]:
    out = []
    for part in ("verb", "adj", "noun", "adv"):
        with open(directory / f"data.{part}", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith("  ") or "|" not in line:
                    continue  # the licence header
                fields, gloss = line.split("|", 1)
                cols = fields.split()
                count = int(cols[3], 16)
                words = [cols[4 + 2 * i].replace("_", " ") for i in range(count)]
                words = [re.sub(r"\([a-z]+\)$", "", w) for w in words]
                parts = [p.strip() for p in gloss.split(";") if p.strip()]
                definition = [p for p in parts if not p.startswith('"')]
                examples = [p.strip('"') for p in parts if p.startswith('"')]
                if definition:
                    out.append(f"{', '.join(words[:4])}: {definition[0]}")
                out.extend(examples[:1])
    return out


def evaluation_texts() -> set[str]:
    texts = set()
    for server in json.loads((HERE / "tools.json").read_text())["servers"]:
        for tool in server["tools"]:
            for key in ("title", "description"):
                if tool.get(key):
                    texts.add(clean(tool[key]).lower())
                    texts.update(s.lower() for s in first_sentences(tool[key], 10))
            for prop in (tool.get("inputSchema") or {}).get("properties", {}).values():
                if isinstance(prop, dict) and isinstance(prop.get("description"), str):
                    texts.add(clean(prop["description"]).lower())
    for q in json.loads((HERE / "queries.json").read_text())["queries"]:
        texts.add(q["query"].lower())
    return texts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--botocore", type=Path, help="botocore's data directory")
    parser.add_argument("--wordnet", type=Path, help="WordNet's dict directory (instead of botocore)")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--max", type=int, default=150_000)
    parser.add_argument("--seed", type=int, default=7)
    opts = parser.parse_args()
    if opts.wordnet:
        sources = {"wordnet": wordnet_sentences(opts.wordnet)}
    elif opts.botocore:
        sources = {"botocore": botocore_docs(opts.botocore)}
    else:
        parser.error("give --botocore (software sentences) or --wordnet")
    excluded = evaluation_texts()
    seen: set[str] = set()
    kept: dict[str, list[str]] = {}
    for name, sentences in sources.items():
        kept[name] = []
        for s in sentences:
            key = s.lower()
            if key in seen or key in excluded or not english_like(s):
                continue
            seen.add(key)
            kept[name].append(s)
        print(f"{name}: {len(sentences)} read, {len(kept[name])} kept", file=sys.stderr)
    rng = random.Random(opts.seed)
    (chosen,) = kept.values()
    chosen = rng.sample(chosen, min(opts.max, len(chosen)))
    rng.shuffle(chosen)
    opts.out.write_text("\n".join(chosen) + "\n", encoding="utf-8")
    print(f"wrote {opts.out}: {len(chosen)} sentences", file=sys.stderr)


if __name__ == "__main__":
    main()
