"""Several proxies trained at once, stacked on a model axis (bomix.train.stacked), and the proxy
evaluator's batches built on it. Run: pytest tests/test_stacked.py

Tolerance for "the same losses as alone": 1e-4 nats on every point of every loss curve, in float32
on one CPU thread, over 16 steps of the tiny preset. The stacked and solo runs do the same arithmetic
in another order (batched matmuls, LayerNorm's scale applied after normalising, per-model gradient
norms), so they start equal to float32 rounding (~1e-7) and the difference grows through training:
measured up to 2e-6 over 16-100 steps on this byte-level data, up to 3e-5 over 20 steps on a
512-id BPE. It grows fastest where a run is unstable: a noise-heavy mixture
on a 512-id BPE at lr 1e-3 reached 0.1 nats at 100 steps, and so did the same solo run with the
chunked loss in place of the plain one, so the tests use short, stable runs. A real mistake (a wrong
seed, another batch order, clipping the stack's norm instead of each model's) moves losses by 1e-2
or more within these 16 steps.
"""

import json

import pytest
import torch

from bomix.errors import ConfigError, EvaluationError
from bomix.evaluators import get_evaluator
from bomix.evaluators.base import TrialContext
from bomix.train import stacked
from bomix.train.__main__ import main as train_main
from bomix.train.model import GPT, get_preset
from bomix.train.stacked import StackedGPT, clip_grad_norm_per_model, train_many
from bomix.train.trainer import TrainConfig, TrainResult, train
from bomix.trial import Evaluation

TOL = 1e-4
MIXTURES = [{"code": 0.6, "legal": 0.3, "noise": 0.1}, {"code": 0.1, "legal": 0.2, "noise": 0.7},
            {"code": 1 / 3, "legal": 1 / 3, "noise": 1 / 3}]
SEEDS = [3, 0, 7]
RUN = dict(tokens=16 * 16 * 128, eval_every=4, threads=1, eval_tokens=4096)  # 16 steps of tiny, 5 evaluations


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


@pytest.fixture(scope="module")
def solo(byte_data):
    """Each mixture trained alone with its seed, as train() does."""
    return [train(byte_data, m, TrainConfig(seed=s, **RUN)) for m, s in zip(MIXTURES, SEEDS)]


def assert_same_run(stacked_result, solo_result):
    assert isinstance(stacked_result, TrainResult), stacked_result
    for d, curve in solo_result.curves.items():
        assert [s for s, _ in stacked_result.curves[d]] == [s for s, _ in curve]
        assert [v for _, v in stacked_result.curves[d]] == pytest.approx([v for _, v in curve], abs=TOL), d
    # the same batches: its sampler drew the same windows, so the same tokens of each domain
    assert stacked_result.extra["tokens_drawn"] == solo_result.extra["tokens_drawn"]


# -- the model -------------------------------------------------------------------------------------

@pytest.mark.parametrize("tied", [True, False])
def test_stacked_gpt_gives_each_model_its_own_loss_and_gradients(tied):
    config = get_preset("tiny", vocab_size=64, tie_embeddings=tied)
    models = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        models.append(GPT(config))
    stack = StackedGPT(models)
    x, y = torch.randint(0, 64, (2, 2, 3, 16), generator=torch.Generator().manual_seed(0))  # a batch per model
    losses = stack(x, y)
    losses.sum().backward()
    for k, model in enumerate(models):
        _, loss = model(x[k], y[k])
        loss.backward()
        assert losses[k].item() == pytest.approx(loss.item(), rel=1e-6)
        torch.testing.assert_close(stack.wte.grad[k], model.wte.weight.grad, rtol=0, atol=1e-6)
        torch.testing.assert_close(stack.blocks[1].fc.grad[k], model.blocks[1].mlp.fc.weight.grad, rtol=0, atol=1e-6)
        head = stack.wte if tied else stack.lm_head
        assert head.grad is not None and (tied or stack.lm_head.shape == (2, 64, 48))
    with pytest.raises(ValueError, match="idx must be"):
        stack(x[:1], y[:1])


def test_gradient_clipping_is_per_model():
    g = torch.Generator().manual_seed(0)
    params = [torch.nn.Parameter(torch.zeros(3, 4, 5)), torch.nn.Parameter(torch.zeros(3, 7))]
    grads = [torch.randn(3, 4, 5, generator=g), torch.randn(3, 7, generator=g)]
    grads[0][1] *= 0.01
    grads[1][1] *= 0.01  # model 1's norm is below the limit: left alone
    for p, gr in zip(params, grads):
        p.grad = gr.clone()
    norms = clip_grad_norm_per_model(params, 1.0)
    for k in range(3):
        alone = [torch.nn.Parameter(torch.zeros_like(gr[k])) for gr in grads]
        for p, gr in zip(alone, grads):
            p.grad = gr[k].clone()
        norm = torch.nn.utils.clip_grad_norm_(alone, 1.0)
        assert norms[k].item() == pytest.approx(norm.item(), rel=1e-6)
        for p, q in zip(params, alone):
            torch.testing.assert_close(p.grad[k], q.grad, rtol=1e-6, atol=0)
    assert norms[1] < 1 < norms[0]


# -- training --------------------------------------------------------------------------------------

def test_each_stacked_model_gets_the_losses_it_gets_alone(byte_data, solo):
    results = train_many(byte_data, MIXTURES, TrainConfig(**RUN), seeds=SEEDS)
    for k, (result, alone) in enumerate(zip(results, solo)):
        assert_same_run(result, alone)
        assert result.extra["stack"] == 3 and result.extra["stack_index"] == k and result.cost["stack"] == 3
        assert result.extra["config"]["seed"] == SEEDS[k] and result.cost["tokens"] == alone.cost["tokens"]
    json.dumps(results[0].to_dict())


def test_a_diverged_or_invalid_model_fails_alone(byte_data, solo, monkeypatch):
    class Poisoned(GPT):  # the model seeded 13 starts with a NaN weight, so its loss is NaN at once
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            if torch.initial_seed() == 13:
                with torch.no_grad():
                    self.blocks[0].mlp.fc.weight[0, 0] = float("nan")

    monkeypatch.setattr(stacked, "GPT", Poisoned)
    mixtures = [MIXTURES[0], MIXTURES[1], {"code": 0.5, "books": 0.5}, MIXTURES[2]]
    results = train_many(byte_data, mixtures, TrainConfig(**RUN), seeds=[SEEDS[0], 13, 5, SEEDS[2]])
    assert isinstance(results[1], FloatingPointError) and "must stay finite, got nan at step 4" in str(results[1])
    assert isinstance(results[2], ValueError) and "unknown ['books']" in str(results[2])
    assert_same_run(results[0], solo[0])  # the others train on, untouched by the NaNs
    assert_same_run(results[3], solo[2])
    assert results[0].extra["stack"] == 3  # the invalid mixture never joined the stack


def test_a_time_limit_fails_the_models_still_training(byte_data):
    results = train_many(byte_data, MIXTURES[:2], TrainConfig(**RUN), seeds=[0, 1], time_limit_s=1e-9)
    assert all(isinstance(r, TimeoutError) and "time_limit_s" in str(r) for r in results)
    with pytest.raises(ValueError, match="seeds must be one integer >= 0 per mixture"):
        train_many(byte_data, MIXTURES, TrainConfig(**RUN), seeds=[0])


def test_python_m_bomix_train_trains_several_mixtures_at_once(byte_data, tmp_path, capsys):
    args = [str(byte_data.path), "--tokens", "4096", "--eval-tokens", "2048", "--threads", "1"]
    for i, mix in enumerate([MIXTURES[0], MIXTURES[1], {"code": 0.5, "books": 0.5}]):
        (tmp_path / f"m{i}.json").write_text(json.dumps({"weights": mix, "seed": i, "trial": 10 + i}))
        args += ["--mixture", str(tmp_path / f"m{i}.json"), "--metrics", str(tmp_path / f"out{i}.json")]
    assert train_main(args) == 2  # the one failure is bad input
    assert "out2.json not written" in capsys.readouterr().err and not (tmp_path / "out2.json").exists()
    for i in (0, 1):
        metrics = json.loads((tmp_path / f"out{i}.json").read_text())
        assert metrics["extra"]["trial"] == 10 + i and metrics["extra"]["config"]["seed"] == i
        assert metrics["extra"]["stack"] == 2
    assert train_main(args[:-4] + ["--metrics", str(tmp_path / "extra.json")]) == 2
    assert "must come in pairs" in capsys.readouterr().err


# -- the proxy evaluator ---------------------------------------------------------------------------

def test_the_proxy_evaluator_trains_a_batch_stacked_as_separate_trials(byte_data, tmp_path):
    ev = get_evaluator("proxy", data=str(byte_data.path), tokens=8 * 16 * 128, stack=3,
                       extra_args="--threads 1 --eval-tokens 4096 --eval-every 4")
    assert ev.max_batch == 3 and ev.get_params()["stack"] == 3 and get_evaluator("proxy", **ev.get_params()).stack == 3
    contexts = [TrialContext(number=n, seed=s, directory=tmp_path / str(n)) for n, s in ((0, 4), (1, 9), (2, 2))]
    out = ev.evaluate_many([MIXTURES[0], {"code": 0.5, "legal": 0.5}, MIXTURES[1]], contexts)
    assert isinstance(out[1], EvaluationError) and "takes mixtures over ['code', 'legal', 'noise']" in str(out[1])
    for i in (0, 2):
        assert isinstance(out[i], Evaluation) and out[i].cost["stack"] == 2
        files = {p.name for p in (tmp_path / str(i)).iterdir()}
        assert {"mixture.json", "metrics.json", "stdout.log"} <= files
        assert (tmp_path / str(i) / "stdout.log").read_text().count("| val code") == 2
        assert json.loads((tmp_path / str(i) / "metrics.json").read_text())["extra"]["trial"] == i
        # the same trial run alone, as `python -m bomix.train` in a child process, gives the same losses
        alone = ev.evaluate(MIXTURES[0] if i == 0 else MIXTURES[1],
                            TrialContext(number=i, seed=contexts[i].seed, directory=tmp_path / f"solo{i}"))
        assert out[i].losses == pytest.approx(alone.losses, abs=TOL)
    assert ev.evaluate_many([MIXTURES[2]], [TrialContext(directory=tmp_path / "one")])[0].cost.get("stack") is None
    with pytest.raises(ConfigError, match="stack"):
        get_evaluator("proxy", data=str(byte_data.path), stack=0)


def test_a_process_runner_campaign_trains_its_trials_stacked(byte_data, tmp_path):
    import bomix
    from bomix.trial import TrialState

    ev = get_evaluator("proxy", data=str(byte_data.path), tokens=4 * 16 * 128, stack=2,
                       extra_args="--threads 1 --eval-tokens 2048")
    study = bomix.create_study(tmp_path / "s", space=bomix.MixtureSpace(list(ev.domains)), optimizer="sobol")
    study.optimize(ev, 3, 2, runner="process", show_progress=False)
    assert [t.state for t in study.trials] == [TrialState.COMPLETED] * 3
    assert [t.cost.get("stack") for t in study.trials] == [2, 2, None]  # a batch of 2, then one alone (a command)
    for t in study.trials:
        assert json.loads((study.trial_dir(t.number) / "metrics.json").read_text())["extra"]["trial"] == t.number
