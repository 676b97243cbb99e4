"""``whybox sae train | eval | features`` on the zoo's tiny LM (a copy of its saved folder).

The commands are wrappers, so each is checked against an independent path to the same
numbers: the SAE ``train`` writes equals :func:`whybox.sae.train` called directly with the
same settings (bit for bit, seeded, one thread); the ``eval --json`` table equals
:func:`whybox.sae.evaluate` on a token stream the test builds itself, with L0 at most k (a
TopK bound) and the token count read off the stream; the latents ``features`` prints are the
purest by a numpy count written here. Bad input follows the command line's rule
(:func:`tests.test_cli_bad_input.check_bad_input`): one line, exit code 2, nothing written.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from typer.testing import CliRunner  # noqa: E402

import whybox as wb  # noqa: E402
from tests.test_cli_bad_input import BadInput, check_bad_input  # noqa: E402
from whybox.cli import app  # noqa: E402
from whybox.zoo.tinylm import tiny_lm_corpus, tiny_lm_path  # noqa: E402

runner = CliRunner()
WIDE = {"COLUMNS": "250"}
SITE = "blocks.1.resid_post"
TRAIN = ("--site", SITE, "--width", "128", "--k", "8", "--tokens", "4096", "--batch-size", "1024")


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """A copy of the tiny LM's folder, a text file, an SAE of the wrong width, other files."""
    from whybox.sae.models import SAE, SAEConfig

    root = tmp_path_factory.mktemp("cli-sae")
    shutil.copytree(tiny_lm_path(), root / "lm")
    docs = tiny_lm_corpus("train")[:12]
    (root / "docs.txt").write_text("\n\n".join(docs), "utf-8")
    (root / "notes.txt").write_text("not a model\n")
    (root / "other").mkdir()
    (root / "other" / "keep.txt").write_text("keep\n")
    (root / "pickled").mkdir()  # the same model with pickled weights
    for f in (root / "lm").iterdir():
        if not f.name.endswith(".safetensors"):
            shutil.copy(f, root / "pickled" / f.name)
    from safetensors.torch import load_file

    state = load_file(next((root / "lm").glob("*.safetensors")))
    torch.save(state, root / "pickled" / "pytorch_model.bin")
    cfg = SAEConfig(d_in=64, d_sae=32, architecture="topk", k=4, hook_name=SITE)
    SAE.create(cfg, random_state=0).save(root / "wrong_width")
    return root


@pytest.fixture(scope="module")
def trained(folder, tmp_path_factory):
    out = tmp_path_factory.mktemp("cli-sae-out") / "sae"
    res = runner.invoke(
        app,
        ["sae", "train", str(folder / "lm"), *TRAIN, "--text", str(folder / "docs.txt"),
         "--seed", "3", "--lr", "1e-3", "--out", str(out)],
        env=WIDE,
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    return out, res


def load_lm(folder: Path):
    model = transformers.AutoModelForCausalLM.from_pretrained(
        folder / "lm", attn_implementation="eager"
    )
    return model.eval(), transformers.AutoTokenizer.from_pretrained(folder / "lm")


def test_train_writes_the_sae_the_library_trains(folder, trained):
    out, res = trained
    assert sorted(p.name for p in out.iterdir()) == ["cfg.json", "sae_weights.safetensors"]
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".")]  # no temp left
    sae = wb.sae.load(out)
    assert (sae.d_in, sae.d_sae, sae.cfg.k, sae.cfg.architecture) == (128, 128, 8, "topk")
    assert sae.cfg.hook_name == SITE
    assert "L0" in res.output and "FVU" in res.output and "dead" in res.output
    model, tok = load_lm(folder)
    texts = [d.strip() for d in (folder / "docs.txt").read_text("utf-8").split("\n\n")]
    threads = torch.get_num_threads()
    direct = wb.sae.train(
        model, site=SITE, architecture="topk", width=128, k=8, tokens=texts, tokenizer=tok,
        total_tokens=4096, batch_size=1024, lr=1e-3, random_state=3, progress=False,
        device="cpu",
    )  # fmt: skip
    assert torch.get_num_threads() == threads
    for name in ("W_enc", "b_enc", "W_dec", "b_dec"):
        assert torch.equal(getattr(sae, name).detach(), getattr(direct, name).detach()), name


def test_eval_json_is_the_library_table(folder, trained, tmp_path):
    out, _ = trained
    js = tmp_path / "sub" / "eval.json"
    res = runner.invoke(
        app,
        ["sae", "eval", str(out), str(folder / "lm"), "--pydoc", "--tokens", "2048",
         "--json", str(js)],
        env=WIDE,
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    assert "ce_loss_score" in res.output and "kl_div_with_sae" in res.output
    table = json.loads(js.read_text("utf-8"))
    model, tok = load_lm(folder)
    ids: list[int] = []
    for doc in tiny_lm_corpus("test"):  # the held-out topics, end-of-text between documents
        ids += [tok.eos_token_id, *tok(doc)["input_ids"]]
    stream = torch.tensor(ids[:2048])
    ev = wb.sae.evaluate(wb.sae.load(out), model, stream, tokenizer=tok)
    for group, metrics in ev.metrics().items():
        for name, value in metrics.items():
            got = table["metrics"][group][name]
            assert got == pytest.approx(value, rel=1e-6, abs=1e-9), (group, name)
    m = table["metrics"]
    assert m["token_stats"]["n_tokens"] == 2048 - int((stream == tok.eos_token_id).sum())
    assert 0 < m["sparsity"]["l0"] <= 8 + 1e-9  # TopK: at most k latents per token
    assert 0 <= m["reconstruction_quality"]["fvu"] < 1


def purest(fd, min_contexts: int, max_density: float = 0.05) -> tuple[float, set[int]]:
    """Highest share of top contexts peaking on one (stripped, lower-cased) token string, and
    the latents reaching it: counted here with numpy."""
    centre = fd.meta["context_window"][0]
    toks = np.asarray(fd.array("top_tokens"))[:, :, centre]
    seqs = np.asarray(fd.array("top_seq"))
    dens = np.asarray(fd.array("density"))
    vocab = np.array([s.strip().lower() for s in fd.vocab], dtype=object)
    best, who = -1.0, set()
    for j in range(len(fd)):
        t = toks[j][seqs[j] >= 0]
        if len(t) < min_contexts or dens[j] > max_density:
            continue
        _, counts = np.unique(vocab[t].astype(str), return_counts=True)
        p = counts.max() / len(t)
        if p > best + 1e-12:
            best, who = p, {j}
        elif abs(p - best) <= 1e-12:
            who.add(j)
    return best, who


def test_features_writes_the_folder_and_shows_the_purest_latents(folder, trained, tmp_path):
    out, _ = trained
    feats = tmp_path / "features"
    res = runner.invoke(
        app,
        ["sae", "features", str(out), str(folder / "lm"), "--out", str(feats), "--pydoc",
         "--tokens", "4096", "--show", "3", "--n-top", "10"],
        env=WIDE,
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    fd = wb.sae.FeatureData.load(feats)
    assert len(fd) == 128 and fd.meta["site"] == SITE and fd.meta["has_logits"]
    _, tok = load_lm(folder)
    ids: list[int] = []
    for doc in tiny_lm_corpus("test"):
        ids += [tok.eos_token_id, *tok(doc)["input_ids"]]
    assert fd.meta["n_tokens"] == 4096 - ids[:4096].count(tok.eos_token_id)  # specials left out
    rows = re.findall(r"^│\s+(\d+) │", res.stdout, flags=re.M)
    assert len(rows) == 3, res.stdout
    best, who = purest(fd, 10)
    assert int(rows[0]) in who
    assert f"{best:.0%}" in res.stdout
    assert "written to" in res.stdout


_NEW = "{d}/new-out"
_T = ("sae", "train", "{d}/lm", *TRAIN, "--pydoc", "--out", _NEW)
BAD_INPUTS = [
    BadInput(
        "missing-model-folder",
        ("sae", "train", "{d}/nope", *TRAIN, "--pydoc", "--out", _NEW),
        r"model folder '.*nope' does not exist",
    ),
    BadInput(
        "model-folder-is-a-file",
        ("sae", "train", "{d}/notes.txt", *TRAIN, "--pydoc", "--out", _NEW),
        r"is a file",
    ),
    BadInput(
        "wrong-site",
        (
            "sae",
            "train",
            "{d}/lm",
            "--site",
            "blocks.1.resid_middle",
            "--width",
            "64",
            "--tokens",
            "2048",
            "--batch-size",
            "1024",
            "--pydoc",
            "--out",
            _NEW,
        ),
        r"--site 'blocks\.1\.resid_middle' is not a site of this model: .*'blocks\.1\.resid_mid'",
    ),
    BadInput(
        "site-past-the-last-block",
        (
            "sae",
            "train",
            "{d}/lm",
            "--site",
            "blocks.9.resid_post",
            "--width",
            "64",
            "--tokens",
            "2048",
            "--batch-size",
            "1024",
            "--pydoc",
            "--out",
            _NEW,
        ),
        r"the model has 4 blocks",
    ),
    BadInput(
        "pickled-weights-without-trust-model",
        ("sae", "train", "{d}/pickled", *TRAIN, "--pydoc", "--out", _NEW),
        r"refusing to load .*pickle files.*--trust-model",
    ),
    BadInput(
        "k-larger-than-width",
        (
            "sae",
            "train",
            "{d}/lm",
            "--site",
            SITE,
            "--width",
            "16",
            "--k",
            "32",
            "--pydoc",
            "--out",
            _NEW,
        ),
        r"--k 32 is larger than --width 16.*at most 16",
    ),
    BadInput(
        "unknown-architecture",
        (*_T, "--architecture", "gated"),
        r"--architecture 'gated' is not supported; choose one of standard, relu, topk",
    ),
    BadInput("no-text", (*_T[:-3], "--out", _NEW), r"exactly one source of text"),
    BadInput("text-and-pydoc", (*_T, "--text", "{d}/docs.txt"), r"exactly one source of text"),
    BadInput(
        "missing-text-file",
        (*_T[:-3], "--text", "{d}/nope.txt", "--out", _NEW),
        r"--text file '.*nope\.txt' does not exist",
    ),
    BadInput(
        "tokens-below-one-batch",
        ("sae", "train", "{d}/lm", "--site", SITE, "--tokens", "100", "--pydoc", "--out", _NEW),
        r"--tokens 100 is less than one batch",
    ),
    BadInput(
        "out-holds-other-files",
        (*_T[:-1], "{d}/other"),
        r"--out '.*other' is a folder that holds other files",
    ),
    BadInput(
        "out-under-a-file",
        (*_T[:-1], "{d}/notes.txt/sae"),
        r"--out '.*notes\.txt/sae' is inside '.*notes\.txt', which is a file",
    ),
    BadInput(
        "quickstart-sae-and-text",
        ("quickstart", "--sae", "--text", "--out", _NEW),
        r"--sae and --text are different quickstarts; pass one",
    ),
    BadInput(
        "sae-width-does-not-fit-the-site",
        ("sae", "eval", "{d}/wrong_width", "{d}/lm", "--pydoc", "--tokens", "512"),
        r"d_in=64, but the site 'blocks\.1\.resid_post' of this model has width 128",
    ),
    BadInput(
        "missing-sae-folder",
        ("sae", "eval", "{d}/no_sae", "{d}/lm", "--pydoc"),
        r"SAE folder '.*no_sae' does not exist",
    ),
    BadInput(
        "features-out-holds-other-files",
        ("sae", "features", "{d}/wrong_width", "{d}/lm", "--pydoc", "--out", "{d}/other"),
        r"--out '.*other' is a folder that holds other files",
    ),
    BadInput(
        "eval-json-is-a-folder",
        ("sae", "eval", "{d}/wrong_width", "{d}/lm", "--pydoc", "--json", "{d}/other"),
        r"--json",
    ),
]


@pytest.mark.parametrize("case", BAD_INPUTS, ids=[c.id for c in BAD_INPUTS])
def test_bad_input_is_one_line_exit_2_and_nothing_written(case, folder):
    check_bad_input(case, folder)


def test_help_lists_the_commands():
    res = runner.invoke(app, ["sae", "--help"], env=WIDE)
    assert res.exit_code == 0
    for cmd in ("train", "eval", "features"):
        assert cmd in res.stdout


def test_quickstart_sae_writes_the_demo_page(tmp_path, monkeypatch):
    import whybox.sae.demo as demo

    small = demo.demo_sae  # the quick tiny-LM build stands in for both demo models
    monkeypatch.setattr(demo, "demo_sae", lambda name, seed=0: small("tiny_lm", tokens=8192))
    res = runner.invoke(app, ["quickstart", "--sae", "--out", str(tmp_path / "q")], env=WIDE)
    assert res.exit_code == 0, res.output
    html = (tmp_path / "q" / "index.html").read_text("utf-8")
    for sid in ("tiny_lm-evaluation", "tiny_lm-features", "minilm-density", "minilm-features"):
        assert f'id="{sid}"' in html
    assert "tiny_lm" in res.stdout and "report written to" in res.stdout
