"""Generated digit captions (measurement, tertile levels, phrasing, parsing back) and the loaders
of the user's own captioned images (JSON Lines, a Parquet caption column)."""
from __future__ import annotations

import base64
import io
import json
import os
import re

import numpy as np
import pytest

from gan_core.config import ConfigError, DataConfig, from_dict
from gan_core.data import ArrayData, DataError, load_source
from gan_core.data.captions import (ATTRIBUTES, DIGIT_WORDS, TEMPLATES, caption_digit, caption_levels,
                                    captioned, describe, levels, measure_digits, thresholds)

MNIST_DIR = "/work/shared/data/mnist"
CHARSET = re.compile(r"^[a-z0-9 ,.'-]+$")


def canvas(n=1, h=28, w=28):
    return np.zeros((n, 1, h, w), np.float32)


def bar(width, rows=(4, 24), col=12, h=28, w=28):
    x = canvas(1, h, w)
    x[0, 0, rows[0]:rows[1], col:col + width] = 1.0
    return x


@pytest.fixture(scope="module")
def digits():
    return load_source(DataConfig(source="sklearn_digits"))


@pytest.fixture(scope="module")
def digits_captioned(digits):
    return captioned(digits, seed=0)


# ---------------------------------------------------------------- measurement

def test_thickness_is_stroke_width_at_28_pixels():
    # A w x L bar: 2 * area / perimeter = 2wL / 2(w + L).
    thin, thick = measure_digits(bar(3))["thickness"][0], measure_digits(bar(5))["thickness"][0]
    assert thin == pytest.approx(2 * 60 / 46) and thick == pytest.approx(2 * 100 / 50)
    # The same glyph at half the resolution measures the same at 28-pixel scale.
    half = bar(2, rows=(2, 12), col=6, h=14, w=14)
    assert measure_digits(half)["thickness"][0] == pytest.approx(measure_digits(bar(4))["thickness"][0])


def test_slant_sign_and_size():
    x = canvas(3)
    for r in range(4, 24):  # 0.5 columns right per row up: the top leans right
        c = 14 + int(round(0.5 * (13.5 - r)))
        x[0, 0, r, c:c + 3] = 1.0
    x[1] = x[0, :, :, ::-1]  # mirrored: leans left
    x[2] = bar(3)[0]
    s = measure_digits(x)["slant"]
    assert s[0] == pytest.approx(0.5, abs=0.03) and s[1] == pytest.approx(-0.5, abs=0.03)
    assert s[2] == 0.0
    flat = canvas()
    flat[0, 0, 10, 5:20] = 1.0  # one row of ink: no vertical extent, defined as no slant
    assert measure_digits(flat)["slant"][0] == 0.0


def test_height_and_offset():
    x = np.concatenate([bar(3), bar(3, rows=(10, 18)), bar(4, col=2), bar(4, col=22)])
    m = measure_digits(x)
    np.testing.assert_allclose(m["height"], [20 / 28, 8 / 28, 20 / 28, 20 / 28])
    # Centroid column minus the centre (13.5), over the width.
    np.testing.assert_allclose(m["x_offset"][2:], [(3.5 - 13.5) / 28, (23.5 - 13.5) / 28])
    assert m["x_offset"][0] == pytest.approx((13 - 13.5) / 28)


def test_empty_image_is_nan_and_neutral():
    x = np.concatenate([canvas(), bar(3), bar(5), bar(7)])
    x[0, 0, 5, 5] = 0.4  # faint: below the ink threshold, still "empty"
    m = measure_digits(x)
    for name in ATTRIBUTES:
        assert np.isnan(m[name][0]) and np.isfinite(m[name][1:]).all()
    thr = thresholds(m)  # ignores the unmeasured image
    assert all(np.isfinite(v).all() for v in thr.values())
    assert thr["thickness"] == pytest.approx(tuple(np.quantile(m["thickness"][1:], [1 / 3, 2 / 3])))
    assert all(lv[0] == 0 for lv in levels(m, thr).values())
    caps = describe([3, 3, 3, 3], m, thr, seed=0, per_image=5)
    assert all(caption_levels(c) == dict.fromkeys(ATTRIBUTES, 0) for c in caps[0])
    with pytest.raises(DataError, match="no image has ink"):
        thresholds(measure_digits(canvas(2)))


def test_rejects_non_grayscale_shape():
    with pytest.raises(ValueError, match="N, 1, H, W"):
        measure_digits(np.zeros((2, 3, 8, 8)))


# ---------------------------------------------------------------- levels and captions

def test_tertile_levels():
    v = np.arange(9.0)
    attrs = {k: v for k in ATTRIBUTES}
    thr = thresholds(attrs)
    assert thr["slant"] == pytest.approx((8 / 3, 16 / 3))
    np.testing.assert_array_equal(levels(attrs, thr)["slant"], [-1, -1, -1, 0, 0, 0, 1, 1, 1])
    const = {k: np.ones(5) for k in ATTRIBUTES}  # ties with both bounds stay neutral
    assert all((lv == 0).all() for lv in levels(const, thresholds(const)).values())


def test_templates_with_only_the_digit():
    assert [t("eight", []) for t in TEMPLATES] == [
        "an eight", "the digit eight", "a handwritten eight", "the number eight", "this is an eight."]
    assert TEMPLATES[0]("one", []) == "a one"
    assert TEMPLATES[0]("seven", [("slant", "leaning right"), ("thickness", "thick")]) == \
        "a thick seven leaning right"


def test_captions_name_digit_and_true_levels(digits, digits_captioned):
    attrs = measure_digits(digits.x)
    lv = levels(attrs, thresholds(attrs))
    text = digits_captioned.text
    assert len(text) == len(digits.x) and all(len(c) == 3 for c in text)
    sizes, named_any = [], set()
    partial = 0  # captions of images with >= 2 attribute words that name only some of them
    for i, caps in enumerate(text):
        truth = {k: int(lv[k][i]) for k in ATTRIBUTES}
        n_words = sum(map(bool, truth.values()))
        assert len(set(caps)) == 3  # three templates per image
        for c in caps:
            assert CHARSET.match(c), c
            assert caption_digit(c) == digits.y[i]
            got = caption_levels(c)
            named = {k for k, v in got.items() if v}
            assert all(got[k] == truth[k] for k in named), (c, truth)
            # Non-empty subset when anything is non-neutral; only the digit otherwise.
            assert bool(named) == any(truth.values())
            sizes.append(len(named))
            partial += 0 < len(named) < n_words
            named_any |= {ATTRIBUTES[k][got[k] > 0] for k in named}
    assert set(sizes) >= {1, 2, 3} and partial > len(text) // 2  # random subsets of several sizes
    # Every word of the data's non-empty levels appears ("large" cannot: the 8x8 digits all
    # fill their box, so the upper height tertile bound is the maximum).
    assert named_any == {w for pair in ATTRIBUTES.values() for w in pair} - {"large"}
    assert thresholds(attrs)["height"][1] == attrs["height"].max()


def test_at_least_four_phrasings(digits_captioned):
    attr_words = r"\b(" + "|".join(w for p in ATTRIBUTES.values() for w in p) + r")\b"
    openings = set()
    for caps in digits_captioned.text:
        for c in caps:
            words = re.sub(attr_words, "", c).replace("an ", "a ").split()
            openings.add(tuple("<d>" if t.strip(".,") in DIGIT_WORDS else t for t in words[:2]))
    # a <d> / the digit / a handwritten / <d> written / the number / this <d> / this is
    assert len(openings) >= 4 and {("the", "digit"), ("a", "handwritten")} <= openings


def test_words_follow_measurements(digits, digits_captioned):
    # What scoring will do: the measured attribute ranks with the words that name it.
    attrs = measure_digits(digits.x)
    for name, (neg, pos) in ATTRIBUTES.items():
        if name == "height":
            continue  # no "large" in this data (see above)
        said = np.array([[caption_levels(c)[name] for c in caps] for caps in digits_captioned.text])
        lo = attrs[name][(said < 0).any(1)]
        hi = attrs[name][(said > 0).any(1)]
        assert len(lo) > 100 and len(hi) > 100 and lo.max() < hi.min(), name


def test_deterministic_by_seed(digits, digits_captioned):
    assert captioned(digits, seed=0).text == digits_captioned.text
    other = captioned(digits, seed=1).text
    assert sum(a != b for a, b in zip(other, digits_captioned.text)) > len(other) // 2


def test_describe_per_image_and_labels():
    m = measure_digits(np.concatenate([bar(3), bar(5), bar(7)]))
    caps = describe([0, 1, 2], m, thresholds(m), seed=0, per_image=7)
    assert [len(c) for c in caps] == [7, 7, 7]
    assert len(set(caps[0][:5])) == 5  # all five templates before any repeats
    with pytest.raises(DataError, match="0..9"):
        describe([0, 1, 10], m, thresholds(m), seed=0)
    with pytest.raises(ValueError, match="per_image"):
        describe([0, 1, 2], m, thresholds(m), seed=0, per_image=0)


def test_parse_back():
    assert caption_digit("a thick seven leaning right") == 7
    assert caption_digit("The digit ZERO, thin.") == 0
    assert caption_digit("a seven or a one") is None and caption_digit("a thick stroke") is None
    assert caption_digit("seventeen") is None  # whole words only
    assert caption_levels("this two is on the left, thin and leaning right.") == {
        "thickness": -1, "slant": 1, "height": 0, "x_offset": -1}
    assert caption_levels("a large three, on the right") == {
        "thickness": 0, "slant": 0, "height": 1, "x_offset": 1}
    assert caption_levels("thin yet thick")["thickness"] == 0  # contradiction: unnamed


def test_captioned_needs_labels_and_grayscale(digits):
    with pytest.raises(DataError, match="no labels.*unlabelled"):
        captioned(ArrayData(digits.x, None, "image", "unlabelled"), seed=0)
    with pytest.raises(DataError, match="grayscale"):
        captioned(ArrayData(np.zeros((2, 3, 8, 8), np.float32), np.zeros(2), "image", "rgb"), seed=0)


@pytest.mark.skipif(not os.path.isdir(MNIST_DIR), reason=f"{MNIST_DIR} not present")
def test_captioned_mnist():
    from gan_core.data.mnist_idx import load_mnist
    m = load_mnist(MNIST_DIR)
    m = ArrayData(m.x[:1000], m.y[:1000], "image", m.description)
    c = captioned(m, seed=0, per_image=2)
    assert "2 generated captions per image (seed 0)" in c.description
    assert all(caption_digit(t) == y for caps, y in zip(c.text, m.y) for t in caps)


# ---------------------------------------------------------------- ArrayData.text checks

@pytest.mark.parametrize("text,msg", [
    ([["a one"]], "1 caption lists for 2 samples"),
    ([["a one"], []], "sample 1 has no caption"),
    ([["a one"], ["ok", "  "]], "sample 1 caption 1 is empty"),
    (["a one", "a two"], "sample 0 has str captions"),
])
def test_text_checked_for_every_source(monkeypatch, text, msg):
    import gan_core.data.digits as digits_mod
    x = np.zeros((2, 1, 8, 8), np.float32)
    monkeypatch.setattr(digits_mod, "load_digits", lambda: ArrayData(x, None, "image", "fake", text))
    with pytest.raises(DataError, match=f"{msg}.*fake"):
        load_source(DataConfig(source="sklearn_digits"))


# ---------------------------------------------------------------- JSON Lines

def _png(a: np.ndarray) -> bytes:
    from PIL import Image
    buf = io.BytesIO()
    Image.fromarray(a).save(buf, format="PNG")
    return buf.getvalue()


def _b64(a: np.ndarray) -> dict:
    return {"bytes": base64.b64encode(_png(a)).decode()}


def _jsonl(path, records) -> str:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in records))
    return str(path)


def _u8(digits, i):
    return np.round(digits.x[i, 0] * 255).astype(np.uint8)


def test_jsonl_round_trip(digits, tmp_path):
    (tmp_path / "imgs").mkdir()
    records, want_text = [], []
    for i in range(6):
        if i % 2:
            image = _b64(_u8(digits, i))
        else:
            (tmp_path / "imgs" / f"{i}.png").write_bytes(_png(_u8(digits, i)))
            image = f"imgs/{i}.png"
        caps = [f"caption {i}", f"another for {i}"] if i % 3 else [f"only {i}"]
        rec = {"image": image, "label": int(digits.y[i])}
        rec.update({"captions": caps} if len(caps) > 1 else {"caption": caps[0]})
        records.append(rec)
        want_text.append(caps)
    records.insert(3, "   ")  # blank lines are skipped
    d = load_source(DataConfig(source="jsonl", path=_jsonl(tmp_path / "data.jsonl", records)))
    want_x = np.stack([_u8(digits, i) for i in range(6)])[:, None].astype(np.float32) / 255
    np.testing.assert_array_equal(d.x, want_x)
    np.testing.assert_array_equal(d.y, digits.y[:6])
    assert d.text == want_text and d.kind == "image"
    assert "6 images 8x8 L, 10 captions, labels" in d.description
    rgb = load_source(DataConfig(source="jsonl", channels=3, path=str(tmp_path / "data.jsonl")))
    assert rgb.x.shape == (6, 3, 8, 8)
    np.testing.assert_array_equal(rgb.x[:, 1], want_x[:, 0])


def test_jsonl_without_labels(tmp_path):
    img = _b64(np.zeros((4, 4), np.uint8))
    d = load_source(DataConfig(source="jsonl", path=_jsonl(tmp_path / "n.jsonl", [
        {"image": img, "caption": "a"}, {"image": img, "caption": "b", "label": None}])))
    assert d.y is None and d.text == [["a"], ["b"]]


GOOD = {"image": {"bytes": base64.b64encode(_png(np.zeros((4, 4), np.uint8))).decode()}, "caption": "ok"}


@pytest.mark.parametrize("bad,msg", [
    ('{"image": "x.png", "caption": ', r"line 2: invalid JSON"),
    ('[1, 2]', r"line 2: expected a JSON object, got list"),
    ({"caption": "no image"}, r"line 2: no 'image'"),
    ({"image": "missing.png", "caption": "c"}, r"line 2: image file .*missing.png not found"),
    ({"image": "notes.png", "caption": "c"}, r"line 2: cannot decode .*notes.png"),
    ({"image": {"bytes": base64.b64encode(b"not an image").decode()}, "caption": "c"},
     r"line 2: cannot decode base64 image"),
    ({"image": {"bytes": "***"}, "caption": "c"}, r"line 2: image bytes are not base64"),
    ({"image": 7, "caption": "c"}, r"line 2: 'image' must be a path"),
    ({"image": GOOD["image"]}, r"line 2: give one of 'caption'"),
    ({"image": GOOD["image"], "caption": "a", "captions": ["b"]}, r"line 2: .*it has both"),
    ({"image": GOOD["image"], "caption": " \t"}, r"line 2: caption 0 is empty"),
    ({"image": GOOD["image"], "captions": []}, r"line 2: has no caption"),
    ({"image": GOOD["image"], "captions": ["a", 3]}, r"line 2: caption 1 is a int"),
    ({"image": _b64(np.zeros((5, 4), np.uint8)), "caption": "c"},
     r"line 2: image is 4x5 but line 1's is 4x4"),
    ({**GOOD, "label": 3}, r"line 2 has a label and line 1 has none"),
    ({**GOOD, "label": "3"}, r"line 2: 'label' must be an integer"),
])
def test_jsonl_bad_line_names_file_and_line(tmp_path, bad, msg):
    (tmp_path / "notes.png").write_text("plain text, not a PNG")
    p = _jsonl(tmp_path / "bad.jsonl", [GOOD, bad, GOOD])
    with pytest.raises(DataError, match=f"bad.jsonl: {msg}"):
        load_source(DataConfig(source="jsonl", path=p))


def test_jsonl_label_missing_after_labelled_lines(tmp_path):
    p = _jsonl(tmp_path / "l.jsonl", [{**GOOD, "label": 1}, {**GOOD, "label": 2}, GOOD])
    with pytest.raises(DataError, match="l.jsonl: line 1 has a label and line 3 has none"):
        load_source(DataConfig(source="jsonl", path=p))


def test_jsonl_empty_and_config(tmp_path):
    p = _jsonl(tmp_path / "e.jsonl", ["", "  "])
    with pytest.raises(DataError, match="e.jsonl: no records"):
        load_source(DataConfig(source="jsonl", path=p))
    with pytest.raises(ConfigError, match="data.path"):
        from_dict({"data": {"source": "jsonl"}})
    assert from_dict({"data": {"source": "jsonl", "path": p}}).data.source == "jsonl"


# ---------------------------------------------------------------- Parquet caption column

def _parquet(path, **cols) -> str:
    import pyarrow as pa
    import pyarrow.parquet as pq
    n = len(next(iter(cols.values())))
    imgs = pa.array([_png(np.full((4, 4), 10 * i, np.uint8)) for i in range(n)], pa.binary())
    pq.write_table(pa.table({"image": imgs, **cols}), path)
    return str(path)


def test_parquet_caption_string_and_list(tmp_path):
    import pyarrow as pa
    p = _parquet(tmp_path / "s.parquet", text=pa.array(["a zero", "a one", "a two"]))
    d = load_source(DataConfig(source="parquet", path=p, caption_column="text"))
    assert d.text == [["a zero"], ["a one"], ["a two"]]
    assert d.x.shape == (3, 1, 4, 4) and d.x[2].max() == pytest.approx(20 / 255)
    assert "3 captions from 'text'" in d.description
    assert load_source(DataConfig(source="parquet", path=p)).text is None  # not asked for
    lists = [["a zero", "nought"], ["a one"], ["two", "a two", "the digit two"]]
    p = _parquet(tmp_path / "l.parquet", caps=pa.array(lists, pa.list_(pa.string())))
    assert load_source(DataConfig(source="parquet", path=p, caption_column="caps")).text == lists


@pytest.mark.parametrize("col,msg", [
    ("missing", r"m.parquet: no caption column 'missing'; columns: image, text"),
    ("text", r"m.parquet: caption column 'text' row 1 is null"),
])
def test_parquet_caption_missing_or_null(tmp_path, col, msg):
    import pyarrow as pa
    p = _parquet(tmp_path / "m.parquet", text=pa.array(["a", None]))
    with pytest.raises(DataError, match=msg):
        load_source(DataConfig(source="parquet", path=p, caption_column=col))


@pytest.mark.parametrize("values,typ,msg", [
    ([["a"], []], "list", r"row 1 has no caption"),
    (["a", "  "], "str", r"row 1 caption 0 is empty"),
    ([1, 2], "int", r"has type int64; expected string or list<string>"),
])
def test_parquet_bad_captions(tmp_path, values, typ, msg):
    import pyarrow as pa
    t = {"list": pa.list_(pa.string()), "str": pa.string(), "int": pa.int64()}[typ]
    p = _parquet(tmp_path / "b.parquet", c=pa.array(values, t))
    with pytest.raises(DataError, match=f"b.parquet: caption column 'c' .*{msg}"):
        load_source(DataConfig(source="parquet", path=p, caption_column="c"))
