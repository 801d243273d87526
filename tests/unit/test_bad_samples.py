"""data.on_bad_sample: "error" stops at the first unreadable or odd-sized image, naming it;
"skip" leaves exactly the bad ones out, keeps every good image with its label and captions, and
says where and why each was skipped."""
import io
import json

import numpy as np
import pytest

from gan_core.config import ConfigError, DataConfig, load_config
from gan_core.data import DataError, load_source


def _png(value: int, h: int = 8, w: int = 8) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.full((h, w), value, np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


GARBAGE = np.random.default_rng(0).bytes(300)
def _noise_png() -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(1).integers(0, 255, (8, 8), dtype=np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


TRUNCATED = _noise_png()[:-30]  # an 8x8 header that opens, pixel data cut off


def _folder(root):
    """Two classes; the good images' values are their class*100 + index."""
    for c in (0, 1):
        d = root / f"c{c}"
        d.mkdir()
        for i in range(3):
            (d / f"{i}.png").write_bytes(_png(c * 100 + i))
    (root / "c0" / "garbage.png").write_bytes(GARBAGE)
    (root / "c1" / "odd.png").write_bytes(_png(50, 9, 8))
    (root / "c1" / "cut.png").write_bytes(TRUNCATED)
    return str(root)


def test_image_folder_skips_exactly_the_bad_files(tmp_path):
    path = _folder(tmp_path)
    with pytest.raises(DataError, match="garbage.png"):
        load_source(DataConfig(source="image_folder", path=path))
    d = load_source(DataConfig(source="image_folder", path=path, on_bad_sample="skip"))
    assert d.x.shape == (6, 1, 8, 8)
    np.testing.assert_allclose(d.x[:, 0, 0, 0] * 255, [0, 1, 2, 100, 101, 102], atol=1e-4)
    assert d.y.tolist() == [0, 0, 0, 1, 1, 1]
    assert len(d.skipped) == 3 and "3 bad samples skipped" in d.description
    reasons = "\n".join(d.skipped)
    for name, why in (("garbage.png", "unreadable"), ("odd.png", "differs from the majority"),
                      ("cut.png", "cannot decode")):
        assert any(name in s and why in s for s in d.skipped), (name, reasons)


def test_parquet_skips_bad_rows_with_their_labels_and_captions(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    images = [_png(10), GARBAGE, _png(30), _png(40, 9, 8), _png(50)]
    table = pa.table({"image": pa.array(images, pa.binary()), "label": [0, 1, 2, 3, 4],
                      "text": [f"caption {i}" for i in range(5)]})
    path = str(tmp_path / "d.parquet")
    pq.write_table(table, path)
    with pytest.raises(DataError, match="row 1 is not a decodable image"):
        load_source(DataConfig(source="parquet", path=path, caption_column="text"))
    d = load_source(DataConfig(source="parquet", path=path, caption_column="text",
                               on_bad_sample="skip"))
    np.testing.assert_allclose(d.x[:, 0, 0, 0] * 255, [10, 30, 50], atol=1e-4)
    assert d.y.tolist() == [0, 2, 4]
    assert d.text == [["caption 0"], ["caption 2"], ["caption 4"]]
    assert [s.split(": ", 1)[1][:24] for s in d.skipped] == ["column 'image' row 1 is ",
                                                           "column 'image' row 3 is "]


def test_jsonl_skips_records_with_missing_or_broken_images(tmp_path):
    import base64

    (tmp_path / "a.png").write_bytes(_png(20))
    (tmp_path / "b.png").write_bytes(GARBAGE)
    lines = [{"image": "a.png", "caption": "a"},
             {"image": "gone.png", "caption": "gone"},
             {"image": "b.png", "caption": "broken"},
             {"image": {"bytes": base64.b64encode(_png(60)).decode()}, "caption": "inline"}]
    path = tmp_path / "c.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in lines))
    with pytest.raises(DataError, match="line 2: image file .*gone.png not found"):
        load_source(DataConfig(source="jsonl", path=str(path)))
    d = load_source(DataConfig(source="jsonl", path=str(path), on_bad_sample="skip"))
    assert d.text == [["a"], ["inline"]]
    np.testing.assert_allclose(d.x[:, 0, 0, 0] * 255, [20, 60], atol=1e-4)
    assert [s.split(": ")[1] for s in d.skipped] == ["line 2", "line 3"]


def test_all_bad_is_still_an_error(tmp_path):
    (tmp_path / "x.png").write_bytes(GARBAGE)
    with pytest.raises(DataError, match="none of the 1 images is readable"):
        load_source(DataConfig(source="image_folder", path=str(tmp_path), on_bad_sample="skip"))


def test_on_bad_sample_is_checked():
    with pytest.raises(ConfigError) as e:
        load_config(None, ["data.on_bad_sample=ignore"])
    assert e.value.key == "data.on_bad_sample"
