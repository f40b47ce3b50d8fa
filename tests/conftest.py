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
