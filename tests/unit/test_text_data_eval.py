"""The text-to-image parts between the data and the pipeline: captions as per-sample token
stacks, one caption drawn per image per step, the checks that run before Ray, the evaluation
caption set, D's mismatched-pair accuracy and the attribute rank correlation."""
import numpy as np
import pytest
import torch

from gan_core.config import ConfigError, load_config
from gan_core.data import ArrayData, DataError, caption_tokens, check_data, load_source
from gan_core.data.captions import measure_digits
from gan_core.evaluation import caption_eval_set, mismatch_accuracy, mismatched, sample
from gan_core.metrics import evaluate
from gan_core.models import build_models
from gan_core.text import decode, encode, encode_per_sample, pick_captions

TEXT = ["model.text_max_len=80", "data.captions_per_image=3"]


def test_per_sample_tokens_pad_missing_captions():
    tokens, counts = encode_per_sample([["a one"], ["two", "a two", "the two"]], 8)
    assert tokens.shape == (2, 3, 8) and counts.tolist() == [1, 3]
    assert decode(tokens[0]) == ["a one", "", ""] and decode(tokens[1]) == ["two", "a two", "the two"]
    with pytest.raises(ValueError, match="sample 1: caption 0 .* characters outside"):
        encode_per_sample([["ok"], ["bad!"]], 8)


def test_pick_draws_each_samples_own_captions_uniformly():
    tokens, counts = encode_per_sample([["a"], ["b", "c"], ["d", "e", "f"]], 2)
    tokens, counts = torch.from_numpy(tokens), torch.from_numpy(counts)
    gen = torch.Generator().manual_seed(0)
    seen = [[], [], []]
    for _ in range(600):
        for i, t in enumerate(decode(pick_captions(tokens, counts, gen).numpy())):
            seen[i].append(t)
    assert set(seen[0]) == {"a"}  # never a padding row
    for i, caps in ((1, "bc"), (2, "def")):
        shares = [seen[i].count(c) / 600 for c in caps]
        assert all(abs(s - 1 / len(caps)) < 0.07 for s in shares), shares
    # a seeded generator replays the same draw: exact resume at an epoch boundary
    a = pick_captions(tokens, counts, torch.Generator().manual_seed(5))
    b = pick_captions(tokens, counts, torch.Generator().manual_seed(5))
    assert torch.equal(a, b)


def test_generated_captions_reach_check_data():
    cfg = load_config(None, TEXT)
    data = load_source(cfg.data, seed=cfg.seed)
    assert len(data.text) == len(data.x) and all(len(c) == 3 for c in data.text)
    check_data(cfg, data)
    tokens, counts = caption_tokens(cfg, data)
    assert tokens.shape == (len(data.x), 3, 80) and (counts == 3).all()


def test_caption_problems_are_caught_before_training():
    x = np.zeros((4, 1, 8, 8), np.float32)
    cfg = load_config(None, ["model.text_max_len=10", "data.captions_per_image=1", "train.batch_size=2",
                             "ray.num_workers=1"])
    long = ArrayData(x, None, "image", "four blanks", text=[["a one"]] * 3 + [["a very long caption"]])
    with pytest.raises(ConfigError) as e:
        check_data(cfg, long, prefix="base.")
    assert e.value.key == "base.model.text_max_len" and "sample 3" in str(e.value)
    odd = ArrayData(x, None, "image", "four blanks", text=[["a one"]] * 3 + [["#"]])
    with pytest.raises(DataError, match="sample 3: caption 0 .*outside the vocabulary.*four blanks"):
        check_data(cfg, odd)
    with pytest.raises(ConfigError) as e:
        check_data(cfg, ArrayData(x, None, "image", "four blanks"))
    assert e.value.key == "model.text_max_len"


@pytest.mark.parametrize("overrides, key", [
    (["model.text_max_len=80"], "model.text_max_len"),  # digits bring no captions unless asked
    (["data.captions_per_image=3", "data.source=ring", "model.family=mlp"], "data.captions_per_image"),
    (["data.captions_per_image=-1"], "data.captions_per_image"),
    (["eval.metrics=[attr_corr]"], "eval.metrics"),
    (["model.text_max_len=80", "data.source=jsonl", f"data.path={__file__}",
      "eval.metrics=[attr_corr]"], "eval.metrics"),  # attr_corr reads generated digit captions
])
def test_text_config_errors_name_the_key(overrides, key):
    with pytest.raises(ConfigError) as e:
        load_config(None, overrides)
    assert e.value.key == key


def test_caption_sources_need_no_generated_captions():
    for extra in (["data.source=jsonl", f"data.path={__file__}"],
                  ["data.source=parquet", f"data.path={__file__}", "data.caption_column=text"]):
        assert load_config(None, ["model.text_max_len=80", *extra]).model.text_max_len == 80
    cfg = load_config(None, [*TEXT, "eval.metrics=[attr_corr, cond_acc]",
                             "eval.evaluator=models:/e@champion", "mlflow.metric=attr_corr_thickness"])
    assert cfg.mlflow.metric == "attr_corr_thickness"


def test_eval_set_keeps_captions_digits_and_images_together():
    text = [[f"a {w}", f"the {w}"] for w in ("zero", "one", "two")]
    x = np.arange(3, dtype=np.float32)[:, None, None, None] * np.ones((3, 1, 2, 2), np.float32)
    caps, digits, images = caption_eval_set(text, np.array([0, 1, 2]), 7, seed=1, x=x, n_images=5)
    assert len(caps) == 7 and digits.shape == (7,) and images.shape == (5, 1, 2, 2)
    words = ("zero", "one", "two")
    assert all(c.split()[1] == words[d] for c, d in zip(caps, digits))
    assert all(images[i, 0, 0, 0] == digits[i] for i in range(5))
    # unlabelled data: the digit is read from the caption, or unknown
    _, read, _ = caption_eval_set(text, None, 4, seed=1)
    assert read is not None and set(read) <= {0, 1, 2}
    _, unknown, _ = caption_eval_set([["a cat"], ["a dog"]], None, 2, seed=1)
    assert unknown is None


def test_mismatched_pairs_name_another_digit():
    digits = np.array([3, 3, 3, 5, 3, 7])
    wrong = mismatched(digits, 6)
    assert all(digits[w] != d for w, d in zip(wrong, digits))
    assert wrong.tolist() == [3, 3, 3, 4, 5, 0]
    assert mismatched(None, 4).tolist() == [1, 2, 3, 0]


class _MatchingD(torch.nn.Module):
    """Scores +1 when the caption's first token equals the image's value, -1 otherwise."""

    def forward(self, x, tokens):
        return torch.where(x.flatten(1)[:, 0] == tokens[:, 0].float(), 1.0, -1.0)


def test_mismatch_accuracy_of_a_perfect_and_a_blind_discriminator():
    images = torch.arange(1, 5, dtype=torch.float32)[:, None, None, None]
    tokens = torch.arange(1, 5)[:, None].repeat(1, 3)
    wrong = mismatched(None, 4)
    assert mismatch_accuracy(_MatchingD(), images, tokens, wrong) == {"d_mismatch_acc": 1.0,
                                                                      "d_wrong_fake": 1.0}
    blind = lambda x, t: torch.zeros(len(x))  # noqa: E731
    blind_d = type("Blind", (torch.nn.Module,), {"forward": lambda self, x, t: blind(x, t)})()
    assert mismatch_accuracy(blind_d, images, tokens, wrong) == {"d_mismatch_acc": 0.0,
                                                                  "d_wrong_fake": 0.0}


def _strokes(widths):
    """A vertical bar of each width, in [-1, 1]."""
    x = -np.ones((len(widths), 1, 28, 28), np.float32)
    for i, w in enumerate(widths):
        x[i, 0, 4:24, 14 - w // 2:14 - w // 2 + w] = 1
    return x


def test_attribute_correlation_follows_and_ignores_the_words():
    widths = [1, 2, 3, 5, 6, 7]
    caps = ["a thin one"] * 3 + ["a thick one"] * 3
    follows = evaluate("attr_corr", _strokes(widths), captions=caps)
    assert follows["attr_corr_thickness"] > 0.8
    assert np.isnan(follows["attr_corr_slant"])  # no caption names a slant
    ignores = evaluate("attr_corr", _strokes(widths[::-1]), captions=caps)
    assert ignores["attr_corr_thickness"] < -0.8
    assert measure_digits((_strokes([2]) + 1) / 2)["thickness"][0] < \
        measure_digits((_strokes([6]) + 1) / 2)["thickness"][0]
    with pytest.raises(ValueError, match="6 images but 2 captions"):
        evaluate("attr_corr", _strokes(widths), captions=caps[:2])


def test_sample_draws_for_caption_tokens():
    cfg = load_config(None, [*TEXT, "model.z_dim=8", "model.g_width=16", "model.d_width=16"])
    G, _ = build_models(cfg)
    tokens = encode(["a thick one", "a thin seven"] * 2, 80)
    a = sample(G, 4, seed=0, labels=tokens)
    assert a.shape == (4, 1, 16, 16)
    assert np.allclose(a, sample(G, 4, seed=0, labels=tokens))
    with pytest.raises(ValueError, match="4 captions"):
        sample(G, 4, seed=0)
