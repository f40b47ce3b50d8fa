"""The chunked linear + cross-entropy (bomix.train.fused_ce) against the plain F.cross_entropy(h @ W.T).

Everything here is float32 on CPU. Tolerances: losses within 1e-6 relative and gradients within 1e-6
absolute (gradient entries here are up to ~0.5): the two paths add the same terms in a different
order (logsumexp by chunks, the head's gradient summed over chunks), so they agree to float32
rounding, measured at about 2e-7; any real mistake (a chunk dropped, an ignored token counted, the
incoming gradient not applied) is orders of magnitude larger.
"""

import pytest
import torch
import torch.nn.functional as F

from bomix.train.fused_ce import CHUNK_ELEMENTS, FUSED_CE_MIN_VOCAB, chunk_rows, linear_cross_entropy
from bomix.train import model
from bomix.train.model import GPT, get_preset
from bomix.train.trainer import TrainConfig, train, use_fused_ce

GRAD_ATOL = 1e-6
LOSS_RTOL = 1e-6


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def leaves(*shapes, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(*s, generator=g).requires_grad_() for s in shapes]


@pytest.mark.parametrize("chunk", [1, 7, 64, None])
def test_loss_and_gradients_match_the_plain_path(chunk):
    N, C, V = 37, 16, 50
    h, W = leaves((N, C), (V, C))
    targets = torch.randint(0, V, (N,), generator=torch.Generator().manual_seed(1))
    targets[::5] = -100  # padding: counts in neither the mean nor the gradients
    loss = linear_cross_entropy(h, W, targets, chunk=chunk)
    (2.5 * loss).backward()  # the incoming gradient must scale both gradients
    fused = (loss.detach(), h.grad.clone(), W.grad.clone())
    h.grad = W.grad = None
    plain = F.cross_entropy(h @ W.T, targets)
    (2.5 * plain).backward()
    assert loss.shape == () and fused[0].item() == pytest.approx(plain.item(), rel=LOSS_RTOL)
    torch.testing.assert_close(fused[1], h.grad, rtol=0, atol=GRAD_ATOL)
    torch.testing.assert_close(fused[2], W.grad, rtol=0, atol=GRAD_ATOL)
    assert fused[1][::5].abs().max() == 0  # an ignored token gets no gradient


def test_a_model_axis_gives_each_model_its_own_mean_and_gradient():
    M, N, C, V = 3, 20, 8, 30
    h, W = leaves((M, N, C), (M, V, C), seed=2)
    targets = torch.randint(0, V, (M, N), generator=torch.Generator().manual_seed(3))
    targets[1, :15] = -100  # model 1 averages over its 5 real tokens only
    losses = linear_cross_entropy(h, W, targets, chunk=6)
    g = torch.tensor([1.0, -2.0, 0.5])  # a different incoming gradient per model
    (losses * g).sum().backward()
    fused = (losses.detach(), h.grad.clone(), W.grad.clone())
    h.grad = W.grad = None
    plain = torch.stack([F.cross_entropy(h[m] @ W[m].T, targets[m]) for m in range(M)])
    (plain * g).sum().backward()
    assert losses.shape == (M,)
    torch.testing.assert_close(fused[0], plain.detach(), rtol=LOSS_RTOL, atol=0)
    torch.testing.assert_close(fused[1], h.grad, rtol=0, atol=GRAD_ATOL)
    torch.testing.assert_close(fused[2], W.grad, rtol=0, atol=GRAD_ATOL)


def test_without_gradients_the_loss_is_the_same():
    h, W = leaves((33, 8), (40, 8), seed=4)
    targets = torch.randint(0, 40, (33,), generator=torch.Generator().manual_seed(5))
    targets[-3:] = -100
    with torch.no_grad():
        loss = linear_cross_entropy(h, W, targets, chunk=4)
        plain = F.cross_entropy(h @ W.T, targets)
    assert not loss.requires_grad and loss.item() == pytest.approx(plain.item(), rel=LOSS_RTOL)
    with pytest.raises(ValueError, match="shapes must be"):
        linear_cross_entropy(h, W[:, :4], targets)


def test_chunks_respect_the_element_budget():
    assert chunk_rows(1, 50304) * 50304 <= CHUNK_ELEMENTS < (chunk_rows(1, 50304) + 1) * 50304
    assert chunk_rows(8, 8192) * 8 * 8192 <= CHUNK_ELEMENTS < (chunk_rows(8, 8192) + 1) * 8 * 8192
    assert chunk_rows(1, 10 ** 9) == 1


@pytest.mark.parametrize("tied", [True, False])
def test_gpt_with_the_fused_head_matches_the_plain_one(tied):
    config = get_preset("tiny", vocab_size=300, tie_embeddings=tied)
    torch.manual_seed(0)
    plain = GPT(config)
    fused = GPT(config, fused_ce=True)
    fused.load_state_dict(plain.state_dict())
    x, y = torch.randint(0, 300, (2, 3, 17), generator=torch.Generator().manual_seed(6))
    logits, loss = fused(x, y)
    loss.backward()
    _, ref = plain(x, y)
    ref.backward()
    assert logits is None and loss.item() == pytest.approx(ref.item(), rel=LOSS_RTOL)
    for (name, p), q in zip(fused.named_parameters(), plain.parameters()):
        torch.testing.assert_close(p.grad, q.grad, rtol=0, atol=GRAD_ATOL, msg=name)


def test_the_trainer_chunks_large_vocabularies_by_default(bpe_data, monkeypatch):
    assert use_fused_ce(TrainConfig(), FUSED_CE_MIN_VOCAB) and use_fused_ce(TrainConfig(), 50304)
    assert not use_fused_ce(TrainConfig(), 8192) and not use_fused_ce(TrainConfig(), 512)
    assert use_fused_ce(TrainConfig(fused_ce=True), 512) and not use_fused_ce(TrainConfig(fused_ce=False), 50304)
    calls = []

    def counted(h, weight, targets, **kwargs):
        calls.append((tuple(h.shape), torch.is_grad_enabled()))
        return linear_cross_entropy(h, weight, targets, **kwargs)

    monkeypatch.setattr(model, "linear_cross_entropy", counted)
    common = dict(tokens=8 * 16 * 128, eval_every=4, threads=1, eval_tokens=4096)
    fused = train(bpe_data, {"code": 0.5, "legal": 0.5}, TrainConfig(fused_ce=True, **common))
    assert (16 * 128, 48) in [shape for shape, _ in calls]  # a step's (B * T, width) hidden states
    assert {grad for _, grad in calls} == {True, False}  # training steps and evaluations both use it
    calls.clear()
    plain = train(bpe_data, {"code": 0.5, "legal": 0.5}, TrainConfig(**common))  # vocabulary 512: plain
    assert not calls and fused.extra["fused_ce"] and not plain.extra["fused_ce"]
    for d in plain.losses:  # 8 steps: float32 rounding, grown a little through training
        assert [v for _, v in fused.curves[d]] == pytest.approx([v for _, v in plain.curves[d]], abs=1e-5)
