"""Occlusion under the issue-13 contract: per-row targets (Captum's meaning), keywords,
forward outputs, the model left as it was, NaN outputs. Oracles: Captum's Occlusion,
one-target-at-a-time runs, the model's own outputs."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

torch = pytest.importorskip("torch")
captum_attr = pytest.importorskip("captum.attr")
nn = torch.nn

import whybox as wb  # noqa: E402
from whybox.errors import InvalidParameterError, ModelCallError  # noqa: E402
from whybox.explanation import ROW_KEYS  # noqa: E402


def _cnn(seed: int = 0, bn: bool = False) -> nn.Module:
    torch.manual_seed(seed)
    layers = [nn.Conv2d(1, 4, 3, padding=1)]
    if bn:
        layers.append(nn.BatchNorm2d(4))
    layers += [nn.ReLU(), nn.Flatten(), nn.Linear(4 * 36, 4)]
    return nn.Sequential(*layers).double().eval()


def _x(n: int = 4, seed: int = 0) -> torch.Tensor:
    return torch.rand((n, 1, 6, 6), generator=torch.Generator().manual_seed(seed)).double()


KW = {"window": (1, 2, 2), "stride": (1, 2, 2), "baseline": 0.0}


@pytest.mark.parametrize("kind", ["tensor", "array", "series", "list-of-names"])
def test_per_row_targets_equal_captum_and_one_at_a_time_runs(kind) -> None:
    net, x = _cnn(), _x()
    y = torch.tensor([3, 0, 2, 0])
    names = ["d", "a", "c", "a"]
    occ = wb.Occlusion(net, **KW, output_names=["a", "b", "c", "d"])
    target = {
        "tensor": y,
        "array": y.numpy(),
        "series": pd.Series(y.numpy()),
        "list-of-names": np.array(names),
    }[kind]
    exp = occ.explain(x, target=target)
    ref = captum_attr.Occlusion(net).attribute(
        x, sliding_window_shapes=(1, 2, 2), strides=(1, 2, 2), baselines=0.0, target=y
    )
    assert exp.values.shape == tuple(x.shape)
    # Captum builds its occlusion masks in float32: agreement to ~1e-8 (as test_occlusion.py)
    np.testing.assert_allclose(exp.values, ref.numpy(), rtol=0, atol=1e-7)
    with torch.no_grad():
        np.testing.assert_array_equal(exp.predictions, net(x)[torch.arange(4), y].numpy())
    assert exp.output_names == ["per-example target"]
    assert exp.params["target"] == names and exp.meta["targets"] == names
    assert "targets" in exp.meta[ROW_KEYS] and exp[[0, 2]].meta["targets"] == ["d", "c"]
    for i in range(4):
        one = occ.explain(x[i : i + 1], target=int(y[i]))
        np.testing.assert_allclose(exp.values[i], one.values[0], rtol=1e-12, atol=1e-14)
    with pytest.raises(InvalidParameterError, match=r"length|rows"):
        occ.explain(x, target=torch.tensor([0, 1]))


def test_scalar_list_all_and_names() -> None:
    net, x = _cnn(), _x()
    occ = wb.Occlusion(net, **KW, output_names=["a", "b", "c", "d"])
    two = occ.explain(x, target=["c", 0])
    assert two.output_names == ["c", "a"] and two.values.shape == (*x.shape, 2)
    np.testing.assert_array_equal(two.values[..., 0], occ.explain(x, target=2).values)
    one = occ.explain(x, target=torch.tensor(1))  # a 0-d tensor is one output
    assert one.output_names == ["b"] and one.params["target"] == "b"
    assert one.params["output"] == "output b (raw model output)"
    assert occ.explain(x, target="all").output_names == ["a", "b", "c", "d"]
    with pytest.raises(InvalidParameterError, match=r"unknown target 'z'.*\['a', 'b', 'c', 'd'\]"):
        occ.explain(x, target="z")
    with pytest.raises(InvalidParameterError, match=r"output_names has 2 names .* 4 outputs"):
        wb.Occlusion(net, **KW, output_names=["a", "b"]).explain(x, target=0)


def test_unknown_keywords_are_refused_with_captum_names() -> None:
    occ = wb.Occlusion(_cnn(), **KW)
    x = _x()
    with pytest.raises(InvalidParameterError, match=r"unexpected keyword tpyo="):
        occ.explain(x, target=0, tpyo=1)
    with pytest.raises(InvalidParameterError, match=r"sliding_window_shapes=.*window="):
        occ.explain(x, target=0, sliding_window_shapes=(1, 2, 2))
    with pytest.raises(InvalidParameterError, match=r"strides=.*stride="):
        occ.explain(x, target=0, strides=(1, 2, 2))
    with pytest.raises(InvalidParameterError, match=r"window=, which belongs to the constructor"):
        occ.explain(x, target=0, window=(1, 2, 2))


class _Tuple(nn.Module):
    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, x):
        return torch.zeros(x.shape[0], 2, dtype=x.dtype), self.net(x)


class _Dict(nn.Module):
    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, x):
        return {"aux": x.sum(), "logits": self.net(x)}


def test_tuple_outputs_need_output_and_dicts_use_logits() -> None:
    net, x = _cnn(), _x()
    plain = wb.Occlusion(net, **KW).explain(x, target=1)
    with pytest.raises(InvalidParameterError, match=r"output="):
        wb.Occlusion(_Tuple(net).eval(), **KW).explain(x, target=1)
    sel = wb.Occlusion(_Tuple(net).eval(), **KW, output=1).explain(x, target=1)
    np.testing.assert_array_equal(sel.values, plain.values)
    d = wb.Occlusion(_Dict(net).eval(), **KW).explain(x, target=1)
    np.testing.assert_array_equal(d.values, plain.values)


def _state(net):
    return {k: v.detach().clone() for k, v in net.state_dict().items()}


def test_a_batch_norm_cnn_in_training_mode_is_explained_in_eval_mode_and_left_unchanged() -> None:
    net, x = _cnn(bn=True), _x()
    with torch.no_grad():  # non-trivial running statistics
        net[1].running_mean.uniform_(-0.5, 0.5)
        net[1].running_var.uniform_(0.5, 2.0)
    net.train()
    before = _state(net)
    occ = wb.Occlusion(net, **KW)
    with pytest.warns(UserWarning, match="training mode"):
        first = occ.explain(x, target=2)
    with pytest.warns(UserWarning, match="training mode"):
        second = occ.explain(x, target=2)
    np.testing.assert_array_equal(first.values, second.values)
    after = _state(net)
    assert before.keys() == after.keys()
    for k in before:
        assert torch.equal(before[k], after[k]), k
    assert net.training and all(m.training for m in net.modules())
    # the values are those of the model in eval mode (Captum on the same model in eval mode)
    ref = captum_attr.Occlusion(net.eval()).attribute(
        x, sliding_window_shapes=(1, 2, 2), strides=(1, 2, 2), baselines=0.0, target=2
    )
    np.testing.assert_allclose(first.values, ref.numpy(), rtol=0, atol=1e-7)


class _NaNAfterBN(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = _cnn(bn=True)

    def forward(self, x):
        out = self.net(x)
        bad = (x[:, 0, 0, 0] > 0.9)[:, None]
        return torch.where(bad, torch.full_like(out, float("nan")), out)


def test_nan_outputs_name_the_rows_and_the_mode_is_restored_after_the_error() -> None:
    x = _x(5)
    x[:, 0, 0, 0] = 0.1
    x[3, 0, 0, 0] = 0.95  # row 3 is NaN for the model
    net = _NaNAfterBN().train()
    before = _state(net)
    with pytest.warns(UserWarning, match="training mode"):
        with pytest.raises(ModelCallError, match=r"rows \[3\] of X"):
            wb.Occlusion(net, **KW).explain(x, target=0)
    assert net.training and all(m.training for m in net.modules())
    for k, v in _state(net).items():
        assert torch.equal(v, before[k]), k

    def fn(X):
        out = np.asarray(X).reshape(len(X), -1).sum(1)
        out[np.asarray(X)[:, 0, 0, 0] > 0.9] = np.nan
        return out

    with pytest.raises(ModelCallError, match=r"rows \[3\] of X"):
        wb.Occlusion(fn, **KW).explain(x.numpy())


def test_occlusion_on_a_table_matches_columns_by_name_and_refuses_text_columns():
    import pandas as pd
    from sklearn.linear_model import LinearRegression

    from whybox.errors import InvalidInputError

    rng = np.random.default_rng(0)
    X = pd.DataFrame(rng.normal(size=(40, 3)), columns=["a", "b", "c"])
    model = LinearRegression().fit(X, X["a"] + 2 * X["b"] - X["c"])
    rev = X[["c", "b", "a"]].iloc[:5]
    exp = wb.Occlusion(model, window=(1,), baseline=0.0).explain(rev)
    assert exp.feature_names == ["c", "b", "a"]
    # leave-one-out drop of a linear model, by hand: coef * (x - 0), per name
    coef = dict(zip(X.columns, model.coef_, strict=True))
    expected = np.column_stack([coef[c] * rev[c].to_numpy() for c in rev.columns])
    np.testing.assert_allclose(exp.values, expected, atol=1e-10)
    np.testing.assert_allclose(exp.predictions, model.predict(rev[list(X.columns)]), atol=1e-12)
    with pytest.raises(InvalidInputError, match="non-numeric columns"):
        wb.Occlusion(model, window=(1,)).explain(rev.assign(c=["x"] * 5))
