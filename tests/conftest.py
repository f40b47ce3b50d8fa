import ast
import json
import os
import random
from pathlib import Path

import pytest

import bomix


@pytest.fixture
def space5():
    return bomix.MixtureSpace(["books", "cc", "stack", "pes2o", "reddit"])


@pytest.fixture
def regmix_csvs():
    from pathlib import Path

    root = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "regmix-1m"
    if not root.exists():
        pytest.skip("../shared/data/regmix-1m is not beside this checkout")
    return root / "train_mixture_1m.csv", root / "train_pile_loss_1m.csv"


@pytest.fixture
def repo_root():
    from pathlib import Path

    return Path(__file__).resolve().parents[1]


# -- a small 3-domain text corpus and datasets built from it (tests of bomix.train) ---------
STDLIB = Path(os.__file__).parent
LICENSES = Path("/usr/share/common-licenses")


def make_corpus(root: Path, per_domain: int = 150_000) -> Path:
    """root/{code,legal,noise}/ with about per_domain characters each; returns root."""
    code = [p.read_text(errors="replace")[:20_000] for p in sorted(STDLIB.glob("*.py"))]
    if LICENSES.is_dir():
        legal = [p.read_text(errors="replace")[:20_000] for p in sorted(LICENSES.iterdir()) if p.is_file()]
    else:  # no Debian licence folder: English prose from the standard library's docstrings instead
        legal = [ast.get_docstring(ast.parse(p.read_text(errors="replace"))) or "" for p in sorted(STDLIB.glob("*.py"))]
        legal = [d for d in legal if len(d) > 500]
    for name, docs in (("code", code), ("legal", legal)):
        (root / name).mkdir(parents=True)
        total = 0
        for i, doc in enumerate(docs):
            (root / name / f"{i:03d}.txt").write_text(doc)
            total += len(doc)
            if total > per_domain:
                break
    rng = random.Random(0)
    (root / "noise").mkdir()
    with open(root / "noise" / "digits.jsonl", "w") as f:
        for _ in range(per_domain // 5000):
            f.write(json.dumps({"text": "".join(rng.choice("0123456789abcdef \n") for _ in range(5000))}) + "\n")
    return root


@pytest.fixture(scope="session")
def corpus(tmp_path_factory):
    return make_corpus(tmp_path_factory.mktemp("corpus") / "src")


@pytest.fixture(scope="session")
def byte_data(corpus, tmp_path_factory):
    from bomix.train.data import DomainData, build_dataset

    out = tmp_path_factory.mktemp("bytes")
    build_dataset(corpus, out, tokenizer="bytes")
    return DomainData(out)


@pytest.fixture(scope="session")
def bpe_data(corpus, tmp_path_factory):
    from bomix.train.data import DomainData, build_dataset

    out = tmp_path_factory.mktemp("bpe")
    build_dataset(corpus, out, tokenizer="bpe", vocab_size=512)
    return DomainData(out)
