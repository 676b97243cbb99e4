"""``whybox lens`` and ``whybox patch`` on a saved model folder.

The folder is a random GPT-2 (3 layers, d 32, 4 heads, 64 positions) with the offline
byte-level BPE tokenizer of ``tests/internals/conftest.py`` (its vocabulary size), saved with
``save_pretrained`` as a user's model would be. The commands' tables (read back from their
``--html`` pages) are checked against the model itself: the lens against
``lm_head(ln_f(hidden_states))`` of its own run, the patching grid against brute-force
patching with plain torch pre-hooks. Bad input follows the command line's rule
(:func:`tests.test_cli_bad_input.check_bad_input`): one line, exit code 2, nothing written.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from typer.testing import CliRunner  # noqa: E402

from tests.report.test_internals_report import check_safe  # noqa: E402
from tests.test_cli_bad_input import BadInput, check_bad_input  # noqa: E402
from whybox._cli_internals import parse_indices  # noqa: E402
from whybox.cli import app  # noqa: E402
from whybox.errors import InvalidParameterError  # noqa: E402
from whybox.report.internals import show_token  # noqa: E402

runner = CliRunner()
WIDE = {"COLUMNS": "250"}
CLEAN, CORRUPTED = "The cat sat", "The dog sat"


@pytest.fixture(scope="module")
def folder(tmp_path_factory, tiny_tokenizer):
    """The files of the table below: a good model folder, a pickled one, broken ones."""
    root = tmp_path_factory.mktemp("cli-internals")
    tok = tiny_tokenizer
    cfg = transformers.GPT2Config(
        n_layer=3, n_embd=32, n_head=4, n_positions=64, vocab_size=len(tok),
        bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
    )  # fmt: skip
    torch.manual_seed(0)
    model = transformers.GPT2LMHeadModel._from_config(cfg, attn_implementation="eager").eval()
    with torch.no_grad():  # larger logits: top tokens far apart, a visible patching signal
        model.lm_head.weight.mul_(6.0)
    model.save_pretrained(root / "gpt2")
    tok.save_pretrained(root / "gpt2")
    (root / "pickled").mkdir()
    model.config.save_pretrained(root / "pickled")
    tok.save_pretrained(root / "pickled")
    torch.save(model.state_dict(), root / "pickled" / "pytorch_model.bin")
    (root / "no_config").mkdir()
    tok.save_pretrained(root / "no_config")
    (root / "no_weights").mkdir()
    model.config.save_pretrained(root / "no_weights")
    tok.save_pretrained(root / "no_weights")
    (root / "notes.txt").write_text("not a model\n")
    return root


def load(path: Path):
    model = transformers.AutoModelForCausalLM.from_pretrained(path, attn_implementation="eager")
    return model.eval(), transformers.AutoTokenizer.from_pretrained(path)


def one_token(tok, text: str) -> int:
    (i,) = tok.encode(text, add_special_tokens=False)
    return i


# ---------------------------------------------------------------------- lens
def test_lens_table_is_the_models_own_readout(folder, tmp_path):
    model, tok = load(folder / "gpt2")
    text = "def f(x): return x"
    target = one_token(tok, "x")
    ids = tok(text, return_tensors="pt")["input_ids"]
    n = ids.shape[1]
    out = tmp_path / "lens.html"
    args = ["lens", str(folder / "gpt2"), text, "--top-k", "3", "--target", "x"]
    result = runner.invoke(app, [*args, "--positions", f"0:{n}", "--html", str(out)], env=WIDE)
    assert result.exit_code == 0, result.output
    for label in ("embed", "L0", "L1", "L2"):
        assert re.search(rf"│ {label}\s+│", result.stdout)
    (grid,) = check_safe(out.read_text()).grids
    with torch.no_grad():
        run = model(ids, output_hidden_states=True)
    readouts = [model.lm_head(model.transformer.ln_f(h)) for h in run.hidden_states[:-1]]
    readouts.append(run.logits)  # GPT-2's last hidden state is already through ln_f
    assert len(grid) == 1 + len(readouts)
    assert [c["lines"][0] for c in grid[0][1:]] == [str(p) for p in range(n)]
    for e, row in enumerate(grid[1:]):
        logp = torch.log_softmax(readouts[e][0], dim=-1)
        for p, cell in enumerate(row[1:]):
            rank = int((logp[p] > logp[p, target]).sum())
            assert cell["lines"][0] == f"#{rank} p={logp[p, target].exp():.3g}"
            values, top = torch.topk(logp[p], 3)
            want = [
                f"{show_token(tok.decode([int(i)]))} {v.exp():.2f}"
                for v, i in zip(values, top, strict=True)
            ]
            assert cell["lines"][1:] == want, (e, p)
    # the terminal table: the last entry's top token at the last position, with its rank
    last = torch.topk(readouts[-1][0, -1], 1).indices.item()
    rank = int((readouts[-1][0, -1] > readouts[-1][0, -1, target]).sum())
    assert f"#{rank} p=" in result.stdout and show_token(tok.decode([last])) in result.stdout


def test_lens_default_positions_fit_the_terminal(folder):
    text = "def f(x): return x if x else None"
    result = runner.invoke(app, ["lens", str(folder / "gpt2"), text], env={"COLUMNS": "80"})
    assert result.exit_code == 0, result.output
    table = [ln for ln in result.stdout.splitlines() if ln.startswith(("┃", "│", "┏", "└"))]
    assert table and max(len(ln) for ln in table) <= 80
    shown, total = map(int, re.search(r"positions shown: (\d+) of (\d+)", result.stdout).groups())
    assert 1 <= shown < total


def test_pickled_weights_load_only_with_trust_model_and_give_the_same_lens(folder):
    args = ["lens", "hello world", "--top-k", "2", "--positions", "0:4"]
    safe = runner.invoke(app, [args[0], str(folder / "gpt2"), *args[1:]], env=WIDE)
    trusted = runner.invoke(
        app, [args[0], str(folder / "pickled"), *args[1:], "--trust-model"], env=WIDE
    )
    assert safe.exit_code == trusted.exit_code == 0, trusted.output

    def table(s: str) -> str:
        return s[: s.rindex("└")]

    assert table(safe.stdout) == table(trusted.stdout)


# ---------------------------------------------------------------------- patch
def brute_patch(model, clean, corrupted, layer, pos, metric):
    """The corrupted run with block ``layer``'s input at ``pos`` taken from the clean run."""
    with torch.no_grad():
        clean_hidden = model(clean, output_hidden_states=True).hidden_states[layer]

    def pre(module, args, kwargs):
        key = "hidden_states" in kwargs
        h = (kwargs["hidden_states"] if key else args[0]).clone()
        h[:, pos] = clean_hidden[:, pos]
        if key:
            kwargs["hidden_states"] = h
            return args, kwargs
        return (h, *args[1:]), kwargs

    handle = model.transformer.h[layer].register_forward_pre_hook(pre, with_kwargs=True)
    try:
        with torch.no_grad():
            return float(metric(model(corrupted).logits))
    finally:
        handle.remove()


def test_patch_grid_equals_brute_force_patching(folder, tmp_path):
    model, tok = load(folder / "gpt2")
    a, w = one_token(tok, "x"), one_token(tok, "y")

    def metric(logits):
        return logits[:, -1, a] - logits[:, -1, w]

    clean = tok(CLEAN, return_tensors="pt")["input_ids"]
    corrupted = tok(CORRUPTED, return_tensors="pt")["input_ids"]
    out = tmp_path / "patch.html"
    args = ["patch", str(folder / "gpt2"), "--clean", CLEAN, "--corrupted", CORRUPTED]
    args += ["--answer", "x", "--wrong", "y", "--html", str(out)]
    result = runner.invoke(app, args, env=WIDE)
    assert result.exit_code == 0, result.output
    with torch.no_grad():
        m_clean = float(metric(model(clean).logits))
        m_corr = float(metric(model(corrupted).logits))
    assert f"clean: {m_clean:.4g}" in result.stdout
    assert f"corrupted: {m_corr:.4g}" in result.stdout
    (grid,) = check_safe(out.read_text()).grids
    header = [" ".join(c["lines"]) for c in grid[0]]
    n = clean.shape[1]
    assert len(header) == 1 + n
    for row in grid[1:]:
        layer = int(row[0]["lines"][0][1:])
        for p, cell in enumerate(row[1:]):
            got = float(cell["attrs"]["title"].rsplit(": ", 1)[1])
            want = brute_patch(model, clean, corrupted, layer, p, metric)
            assert got == pytest.approx(want, abs=1e-5), (layer, p)
    # the patched positions where the prompts differ are labelled clean / corrupted
    diff = [p for p in range(n) if clean[0, p] != corrupted[0, p]]
    c, k = tok.decode([int(clean[0, diff[0]])]), tok.decode([int(corrupted[0, diff[0]])])
    assert header[1 + diff[0]] == f"{diff[0]}: {show_token(c)} / {show_token(k)}"
    # the terminal table: positions down (with their tokens), layers across
    assert re.search(r"┃ position\s+┃\s+L0 ┃\s+L1 ┃\s+L2 ┃", result.stdout)


def test_patch_heads_attribution_and_other_metrics(folder):
    base = ["patch", str(folder / "gpt2"), "--clean", CLEAN, "--corrupted", CORRUPTED]
    heads = runner.invoke(
        app,
        [*base, "--answer", "x", "--wrong", "y", "--site", "attn.head_out", "--method",
         "attribution", "--normalize"],
        env=WIDE,
    )  # fmt: skip
    assert heads.exit_code == 0, heads.output
    assert re.search(r"H0 ┃\s+H1 ┃\s+H2 ┃\s+H3 ┃", heads.stdout)
    assert "attribution patching" in heads.stdout and "fractions of the gap" in heads.stdout
    prob = runner.invoke(app, [*base, "--answer", "x", "--metric", "prob"], env=WIDE)
    assert prob.exit_code == 0, prob.output
    assert "p(answer)" in prob.stdout


def test_help_lists_the_commands():
    result = runner.invoke(app, ["--help"], env=WIDE)
    assert result.exit_code == 0
    assert re.search(r"lens\s", result.stdout) and re.search(r"patch\s", result.stdout)


@pytest.mark.parametrize(
    "text, want",
    [("0,3,-1", [0, 3, -1]), ("2:5", [2, 3, 4]), (":2, 7", [0, 1, 7]), (None, None)],
)
def test_parse_indices(text, want):
    assert parse_indices(text, "--positions") == want


def test_parse_indices_refuses_words():
    with pytest.raises(InvalidParameterError, match="comma-separated integers"):
        parse_indices("a,b", "--positions")


# ---------------------------------------------------------------------- bad input
_L = ("lens", "{d}/gpt2")
_P = ("patch", "{d}/gpt2", "--clean", CLEAN, "--corrupted", CORRUPTED, "--answer", "x")
_NEW = "{d}/new/sub/page.html"  # no part of it may be created
LONG = "x = 1; " * 40  # far more than 64 tokens

BAD_INPUTS = [
    BadInput("missing-folder", ("lens", "{d}/nope", "hi"), r"model folder '.*nope' does not exist"),
    BadInput("folder-is-a-file", ("lens", "{d}/notes.txt", "hi"), r"'.*notes\.txt' is a file"),
    BadInput("no-config", ("lens", "{d}/no_config", "hi"), r"has no config\.json"),
    BadInput("no-weights", ("lens", "{d}/no_weights", "hi"), r"holds no weights"),
    BadInput(
        "pickle-untrusted-lens",
        ("lens", "{d}/pickled", "hi", "--html", _NEW),
        r"refusing to load .*pytorch_model\.bin.* pass(ing)? --trust-model",
    ),
    BadInput(
        "pickle-untrusted-patch",
        (
            "patch",
            "{d}/pickled",
            "--clean",
            "a",
            "--corrupted",
            "b",
            "--answer",
            "x",
            "--metric",
            "logit",
        ),
        r"refusing to load .* pass(ing)? --trust-model",
    ),
    BadInput(
        "text-too-long",
        (*_L, LONG, "--html", _NEW),
        r"TEXT is \d+ tokens long, but the model has only 64 positions",
    ),
    BadInput(
        "corrupted-too-long",
        (
            "patch",
            "{d}/gpt2",
            "--clean",
            "a",
            "--corrupted",
            LONG,
            "--answer",
            "x",
            "--metric",
            "prob",
        ),
        r"--corrupted is \d+ tokens long, but the model has only 64 positions",
    ),
    BadInput("empty-text", (*_L, ""), r"TEXT is empty"),
    BadInput(
        "target-not-one-token",
        (*_L, "hi", "--target", "qzxv wkj"),
        r"--target 'qzxv wkj' is \d+ tokens \[.*\] for this tokenizer; it must be one token",
    ),
    BadInput("bad-positions", (*_L, "hi", "--positions", "a,b"), r"comma-separated integers"),
    BadInput("position-out-of-range", (*_L, "hi", "--positions", "99"), r"99 is out of range"),
    BadInput(
        "unknown-lens-layer",
        (*_L, "hi", "--layers", "L9"),
        r"'L9' is neither an index nor a lens entry; the entries are embed, L0, L1, L2",
    ),
    BadInput(
        "html-is-existing-file",
        (*_L, "hi", "--html", "{d}/notes.txt"),
        r"--html '.*notes\.txt' is an existing file, not a folder",
    ),
    BadInput(
        "html-under-a-file",
        (*_L, "hi", "--html", "{d}/notes.txt/sub/page.html"),
        r"cannot be created: '.*notes\.txt' is a file",
    ),
    BadInput(
        "different-lengths",
        (
            "patch",
            "{d}/gpt2",
            "--clean",
            CLEAN,
            "--corrupted",
            "The cats sat",
            "--answer",
            "x",
            "--wrong",
            "y",
            "--html",
            _NEW,
        ),
        r"--clean is 11 tokens .* and --corrupted is 12 tokens .*--align left .*--align right",
    ),
    BadInput(
        "unknown-site",
        (*_P, "--wrong", "y", "--site", "resid_middle"),
        r"--site 'resid_middle' is not a patching site \(did you mean 'resid_mid'",
    ),
    BadInput("logit-diff-without-wrong", _P, r"--metric logit-diff needs --wrong TOKEN"),
    BadInput("unknown-metric", (*_P, "--metric", "kl"), r"--metric 'kl' is not supported"),
    BadInput(
        "answer-not-one-token",
        (
            "patch",
            "{d}/gpt2",
            "--clean",
            CLEAN,
            "--corrupted",
            CORRUPTED,
            "--answer",
            "qzxv wkj",
            "--metric",
            "logit",
        ),
        r"--answer 'qzxv wkj' is \d+ tokens",
    ),
    BadInput("bad-by", (*_P, "--wrong", "y", "--by", "row"), r"--by 'row' is not supported"),
    BadInput(
        "head-grid-on-a-vector-site",
        (*_P, "--wrong", "y", "--by", "head"),
        r"by='head' needs a site split by heads",
    ),
    BadInput(
        "bad-device", (*_L, "hi", "--device", "nope"), r"--device 'nope' is not a device torch"
    ),
]


@pytest.mark.parametrize("case", BAD_INPUTS, ids=[c.id for c in BAD_INPUTS])
def test_bad_input_is_one_line_exit_2_and_nothing_written(case, folder):
    check_bad_input(case, folder)


def test_table_ids_are_unique():
    assert len({c.id for c in BAD_INPUTS}) == len(BAD_INPUTS)
