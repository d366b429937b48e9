"""The handwriting benchmark's canvas replay (bench/strokes.py paint, bench/handwriting.py) on synthetic
strokes: the brush against a per-pixel reference and against Chromium's canvas, the point thinning,
the placement, and the report. The UNIPEN digits themselves are not needed."""
import json
import math

import numpy as np
import pytest

from bench import handwriting, strokes
from bench.browser import harness


def reference_paint(lines, canvas, width, softness):
    """paint() one pixel at a time: each segment's shadow, then its shape, composited over the canvas."""
    radius = width / 2
    sigma = math.hypot(softness * width / 2, math.sqrt(1 / 12))
    reach = radius + 3 * sigma + 1
    quantise = lambda a: round(a * 255) / 255  # noqa: E731
    out = np.zeros((canvas, canvas))
    for r in range(canvas):
        for c in range(canvas):
            px, py, alpha = c + 0.5, r + 0.5, 0.0
            for line in lines:
                segments = [(line[0], line[0])] + list(zip(line[:-1], line[1:]))
                for (x0, y0), (x1, y1) in segments:
                    dx, dy = x1 - x0, y1 - y0
                    t = 0.0
                    if dx or dy:
                        t = min(max(((px - x0) * dx + (py - y0) * dy) / (dx * dx + dy * dy), 0.0), 1.0)
                    d = math.hypot(px - x0 - t * dx, py - y0 - t * dy)
                    shadow = quantise(0.5 * (1 + math.erf((radius - d) / sigma / math.sqrt(2)))) if d < reach else 0.0
                    shape = quantise(min(max(radius + 0.5 - d, 0.0), 1.0))
                    alpha = quantise(shadow + alpha * (1 - shadow))
                    alpha = quantise(shape + alpha * (1 - shape))
            out[r, c] = alpha
    return out


def test_paint_matches_a_per_pixel_reference():
    lines = [[(6.3, 8.1), (20.7, 12.4), (22.0, 30.5), (21.5, 31.0)], [(30.2, 6.6)], [(9.0, 30.0), (34.0, 28.0)]]
    ours = strokes.paint(lines, canvas=40, width=6.0, softness=0.3)
    want = reference_paint(lines, 40, 6.0, 0.3)
    assert np.abs(ours - want).max() <= 1 / 255 + 1e-9  # the erf table may round one level differently
    assert np.count_nonzero(ours) > 300


def test_paint_edge_matches_chromium_canvas():
    # Chromium 156 (headless, this project's page): a stroke from (50, 100.4) to (200, 100.4), alpha
    # of column 125, rows 87-113, read with getImageData after one mouse down / move / up
    chromium = [0, 0, 8, 48, 231] + [255] * 17 + [192, 36, 5, 0, 0]
    ours = np.rint(strokes.paint([[(50, 100.4), (200, 100.4)]], 280)[87:114, 125] * 255)
    assert np.abs(ours - chromium).max() <= 10


def test_paint_darkens_the_soft_edge_where_segments_overlap():
    one = strokes.paint([[(50, 100.4), (200, 100.4)]], 280)
    many = strokes.paint([[(50 + 3 * i, 100.4) for i in range(51)]], 280)
    assert many[90, 125] > one[90, 125] + 0.1  # the canvas composites every segment's shadow
    assert many[100, 125] == one[100, 125] == 1.0


def test_spaced_drops_close_points_and_keeps_both_ends():
    stroke = [(0, 0), (0.5, 0), (1, 0), (3.2, 0), (3.3, 0), (6.5, 0), (7.0, 0)]
    kept = strokes.spaced(stroke, 3.0)
    assert kept[0] == (0, 0) and kept[-1] == (7.0, 0)
    assert all(math.dist(a, b) >= 0.5 for a, b in zip(kept, kept[1:]))
    assert kept == [(0, 0), (3.2, 0), (7.0, 0)]  # 6.5 is replaced by the end, 0.5 px further
    assert strokes.spaced([(4, 4), (4, 4), (4, 4)], 3.0) == [(4, 4)]  # a dot stays a dot


def test_placement_is_seeded_per_digit_and_fits_the_canvas():
    digit = [[(0, 0), (40, 10), (35, 90)], [(10, 50), (60, 50)]]
    a = handwriting.placement(digit, 7, seed=3)
    assert a == handwriting.placement(digit, 7, seed=3)
    assert a != handwriting.placement(digit, 8, seed=3)
    for index in range(200):
        points = np.concatenate([np.asarray(s) for s in handwriting.placement(digit, index, seed=0)])
        size = (points.max(axis=0) - points.min(axis=0)).max()
        assert 280 / 3 - 1 <= size <= 0.88 * 280 + 1
        assert points.min() >= 0.06 * 280 - 1e-9 and points.max() <= 280 * 0.94 + 1e-9


def test_pick_is_a_seeded_subset_of_the_same_digits():
    assert list(handwriting.pick(5, None, 0)) == [0, 1, 2, 3, 4]
    few = handwriting.pick(3000, 100, 0)
    assert len(set(few)) == 100 and list(few) == sorted(few)
    assert list(few) == list(handwriting.pick(3000, 100, 0))


def test_a_painted_one_becomes_an_upright_bar_in_the_model_input():
    from pycnn import preprocess
    x = preprocess.to_mnist(strokes.paint([strokes.spaced([(140, 40 + i) for i in range(200)], 3.0)], 280))
    columns = x[0].sum(axis=0)
    assert columns.argmax() in (13, 14) and columns[:10].sum() == 0 and columns[18:].sum() == 0


def test_report_counts_per_digit_contributor_and_confusion():
    labels = np.array([1, 1, 7, 7, 0])
    reads = np.array([1, 7, 7, -1, 0])
    lines = handwriting.report(labels, reads, np.array(["a", "a", "b", "b", "a"]))
    assert lines[0].startswith("read correctly: **60.00%** (3/5)")
    assert "1 50.0%" in lines[1] and "7 50.0%" in lines[1] and "0 100.0%" in lines[1]
    assert "a 66.7% (3)" in lines[2] and "b 50.0% (2)" in lines[2]
    matrix = handwriting.confusion(labels, reads)
    assert matrix[1, 7] == 1 and matrix[7, 7] == 1 and matrix.sum() == 4  # nothing read is no column
    assert lines[-1] == "nothing read: 1"


def test_load_unipen_names_the_file_when_it_is_not_the_digits_json(tmp_path):
    bad = tmp_path / "other.json"
    bad.write_text(json.dumps({"images": []}))
    with pytest.raises(ValueError, match="other.json: expected the UNIPEN digits JSON"):
        handwriting.load_unipen(bad)
    good = tmp_path / "digits.json"
    good.write_text(json.dumps({"digits": [{"label": 3, "contributor": "x", "writer": "x/1", "strokes": [[[0, 0], [5, 9]]]}]}))
    assert handwriting.load_unipen(good)[0]["label"] == 3


def test_received_strokes_keep_only_what_the_pen_drew():
    events = [["move", 1, 1], ["down", 2, 2], ["move", 3, 3], ["move", 4, 4], ["up", 4, 4],
              ["move", 9, 9], ["down", 5, 5], ["up", 5, 5], ["move", 6, 6]]
    assert harness.received_strokes(events) == [[(2, 2), (3, 3), (4, 4)], [(5, 5)]]
