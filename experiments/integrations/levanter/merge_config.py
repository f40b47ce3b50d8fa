"""Write one Levanter trial config: your base YAML with bomix's mixture and the trial's seed merged in.

    python merge_config.py BASE.yaml MIXTURE.yaml OUT.yaml --seed S --trial-dir D

MIXTURE.yaml is what bomix writes for {mixture:levanter}: data.configs.NAME.train_urls and
data.train_weights. Each NAME's train_urls go into the base's data.configs.NAME (created when
absent), next to the validation_urls the base gives it, so validation data stays fixed across
trials and Levanter reports one "NAME loss" per domain; data.train_weights is replaced whole.
trainer.seed becomes the trial's seed and checkpoints go under the trial directory.
"""

from __future__ import annotations

import argparse
import os

import yaml


def merge(base: dict, mixture: dict, *, seed: int, trial_dir: str) -> dict:
    out = dict(base)
    data = dict(out.get("data") or {})
    configs = {name: dict(c or {}) for name, c in (data.get("configs") or {}).items()}
    for name, source in mixture["data"]["configs"].items():
        configs.setdefault(name, {})["train_urls"] = list(source["train_urls"])
    data["configs"] = configs
    data["train_weights"] = dict(mixture["data"]["train_weights"])
    out["data"] = data
    trainer = dict(out.get("trainer") or {})
    trainer["seed"] = seed
    trainer["checkpointer"] = {**(trainer.get("checkpointer") or {}), "base_path": os.path.join(trial_dir, "checkpoints")}
    out["trainer"] = trainer
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("base")
    p.add_argument("mixture")
    p.add_argument("out")
    p.add_argument("--seed", type=int, required=True)
    p.add_argument("--trial-dir", required=True)
    a = p.parse_args()
    with open(a.base) as f:
        base = yaml.safe_load(f) or {}
    with open(a.mixture) as f:
        mixture = yaml.safe_load(f)
    merged = merge(base, mixture, seed=a.seed, trial_dir=a.trial_dir)
    tmp = a.out + ".tmp"
    with open(tmp, "w") as f:
        yaml.safe_dump(merged, f, sort_keys=False)
    os.replace(tmp, a.out)


if __name__ == "__main__":
    main()
