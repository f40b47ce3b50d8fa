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


TOY_DOMAINS = ["books", "cc", "stack"]


@pytest.fixture
def toy_runs():
    """A small olmix-style (ratios, metrics) pair of DataFrames: 40 Dirichlet mixtures over
    TOY_DOMAINS, two smooth losses ("books", "cc")."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(0)
    X = rng.dirichlet(np.ones(3), 40).round(4)
    X[:, -1] = 1 - X[:, :-1].sum(axis=1)
    losses = {"books": 3 + 0.5 / (X[:, 0] + 0.1) + 0.2 * X[:, 1],
              "cc": 3.5 + 0.4 / (X[:, 1] + 0.1) + 0.1 * X[:, 2]}
    keys = {"run": [f"r{i:03d}" for i in range(40)], "name": "toy", "index": np.arange(40)}
    return pd.DataFrame({**keys, **dict(zip(TOY_DOMAINS, X.T))}), pd.DataFrame({**keys, **losses})


@pytest.fixture
def csvs(tmp_path, toy_runs):
    """The toy runs as ratios.csv and metrics.csv (metrics rows in another order)."""
    ratios, metrics = toy_runs
    ratios.to_csv(tmp_path / "ratios.csv", index=False)
    metrics.sample(frac=1, random_state=0).to_csv(tmp_path / "metrics.csv", index=False)
    return tmp_path / "ratios.csv", tmp_path / "metrics.csv"


@pytest.fixture
def pool_ev(csvs):
    """A replay evaluator in pool mode over the toy runs."""
    from bomix.evaluators import get_evaluator

    return get_evaluator("replay", ratios=csvs[0], metrics=csvs[1])


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


@pytest.fixture
def one_thread():
    """torch on one thread for the test (restored after): training runs are then deterministic and
    leave the other core to the rest of the suite."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
