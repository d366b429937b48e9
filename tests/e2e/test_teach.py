"""Teach it your handwriting: "It's a ..." adds a drawing to your digits, the gallery, Fine-tune with
an honest before/after and Undo, kept across reloads, Export/Import with refusals that lose nothing,
a full storage, and a thousand digits. Every test starts from the baseline
(`app`: no digits of yours, an untrained model) and passes alone."""
import io
import json
import re
import zipfile

import numpy as np
import pytest
from playwright.sync_api import expect

from e2e_support import TRAIN_TIMEOUT_MS, draw_digit, draw_strokes, strokes_on_page

from pycnn import datasets, yourdigits

BOX = (40, 30, 200)


def count(app):
    return int(app.attr("my-digits", "data-count"))


def wait_count(app, n):
    expect(app.by_id("my-digits")).to_have_attribute("data-count", str(n), timeout=30_000)


def draw_and_wait(app, digit):
    """Draw `digit` on a clear canvas and wait for the network's answer to the finished drawing."""
    app.by_id("clear-button").click()
    draw_digit(app.page, digit, BOX)
    app.page.wait_for_function("""() => {
        const answer = document.querySelector('[data-testid=prediction]');
        const canvas = document.querySelector('[data-testid=draw-canvas]');
        return answer.dataset.source === 'drawing' && answer.dataset.answeredVersion === canvas.dataset.version; }""")


def teach(app, digit, drawn=None):
    """Draw `drawn` (default: digit) and press "It's a <digit>"; wait until it is one of your digits."""
    before = count(app)
    draw_and_wait(app, digit if drawn is None else drawn)
    expect(app.by_id("teach")).to_be_visible()
    app.by_id(f"teach-{digit}").click()
    wait_count(app, before + 1)


def digits_file(site_dir, path, n, seed=0):
    """A digits file of n bundled digits (every digit when n >= 10) at path."""
    x = datasets.read_idx_images(str(site_dir / "data" / "subset-images-idx3-ubyte.gz"))
    y = datasets.read_idx_labels(str(site_dir / "data" / "subset-labels-idx1-ubyte.gz"))
    pick = np.random.default_rng(seed).permutation(len(y))[:n]
    yourdigits.save(path, x[pick], y[pick])
    return path, y[pick]


def groups(app):
    """{digit: count} as the gallery shows them."""
    return {int(d): int(c) for d, c in app.page.eval_on_selector_all(
        '[data-testid="my-digits"] .my-digit-group', "gs => gs.map(g => [g.dataset.digit, g.dataset.count])")}


def fine_tune(app):
    app.by_id("fine-tune-button").click()
    expect(app.by_id("fine-tune-progress")).to_have_attribute("data-result", "finished", timeout=TRAIN_TIMEOUT_MS)
    app.wait_state("ready")


def test_without_digits_fine_tune_is_disabled_and_says_why(app, seed_model):
    app.load_model(seed_model)
    assert count(app) == 0
    expect(app.by_id("my-digits")).to_contain_text("No digits of yours yet")
    expect(app.by_id("fine-tune-button")).to_be_disabled()
    expect(app.by_id("fine-tune-note")).to_contain_text("Add some of your digits first")
    expect(app.by_id("join-my-digits")).to_be_disabled()
    expect(app.by_id("export-my-digits")).to_be_disabled()
    expect(app.by_id("teach")).to_be_hidden()  # nothing drawn, nothing to teach


def test_one_digit_is_shown_in_its_group_fine_tunes_without_a_score_and_can_be_removed(app, seed_model):
    app.load_model(seed_model)
    teach(app, 7)
    assert groups(app) == {7: 1}
    expect(app.by_id("teach")).to_be_hidden()  # the drawing was cleared for the next one
    expect(app.by_id("fine-tune-button")).to_be_enabled()
    expect(app.by_id("join-my-digits")).to_be_enabled()
    fine_tune(app)
    result = app.by_id("my-digits-accuracy")
    assert 0 <= float(result.get_attribute("data-before")) <= 1
    assert result.get_attribute("data-after") == "" and result.get_attribute("data-method") == "none"
    expect(result).to_contain_text("not measured")
    expect(result).to_contain_text("one drawing is not enough")
    expect(app.by_id("model-state")).to_contain_text("Fine-tuned on 1 of your digits")
    app.page.locator('[data-testid="my-digit"]').first.click()
    wait_count(app, 0)
    expect(app.by_id("fine-tune-button")).to_be_disabled()


def test_ten_digits_fine_tune_shows_before_and_after_and_undo_brings_the_model_back_exactly(app, seed_model):
    app.load_model(seed_model)
    for digit in range(10):
        teach(app, digit)
    assert groups(app) == {d: 1 for d in range(10)}
    accuracy_before = app.attr("accuracy", "data-val-accuracy")
    fine_tune(app)
    result = app.by_id("my-digits-accuracy")
    before, after = float(result.get_attribute("data-before")), float(result.get_attribute("data-after"))
    mnist_before, mnist_after = float(result.get_attribute("data-mnist-before")), float(result.get_attribute("data-mnist-after"))
    print(f"\nyour 10 digits: {before:.0%} -> {after:.0%} (3-fold cross-validation); "
          f"held-out MNIST {mnist_before:.2%} -> {mnist_after:.2%}")
    assert 0 <= before <= 1 and 0 <= after <= 1
    assert result.get_attribute("data-method") == "cross-validation"
    expect(app.by_id("fine-tune-progress")).to_contain_text(re.compile(r"Done in \d+\.\d s\."))
    expect(result).to_contain_text("3-fold cross-validation")
    expect(result).to_contain_text(f"Your digits: {before * 100:.1f}% → {after * 100:.1f}%")
    expect(result).to_contain_text("Held-out MNIST digits (1,500, never trained on)")
    assert mnist_before == pytest.approx(float(accuracy_before))
    assert float(app.attr("accuracy", "data-val-accuracy")) == pytest.approx(mnist_after)
    assert abs(mnist_before - mnist_after) < 0.03  # mixing in the bundled digits keeps them read
    app.wait_saves(2)  # the loaded model, then the fine-tuned one, kept
    app.by_id("undo-fine-tune").click()
    expect(app.by_id("accuracy")).to_have_attribute("data-val-accuracy", accuracy_before)
    expect(app.by_id("undo-fine-tune")).to_be_disabled()
    expect(app.by_id("model-state")).not_to_contain_text("Fine-tuned")
    assert count(app) == 10  # your digits stay


def test_undo_gives_the_same_readings_as_before_the_fine_tune(app, seed_model, site_dir, tmp_path):
    app.load_model(seed_model)
    path, _ = digits_file(site_dir, tmp_path / "mine.npz", 20)
    app.by_id("import-my-digits").set_input_files(str(path))
    wait_count(app, 20)
    draw_and_wait(app, 4)
    read = "() => [...document.querySelectorAll('[data-testid=probabilities] > *')].map(r => r.dataset.probability)"
    before = app.page.evaluate(read)
    fine_tune(app)
    app.page.wait_for_function(f"(b) => JSON.stringify(({read})()) !== JSON.stringify(b)", arg=before)
    app.by_id("undo-fine-tune").click()
    app.page.wait_for_function(f"(b) => JSON.stringify(({read})()) === JSON.stringify(b)", arg=before)


def test_a_fine_tuned_model_and_its_undo_are_kept_across_a_reload(app, seed_model, site_dir, tmp_path):
    app.load_model(seed_model)
    accuracy_before = app.attr("accuracy", "data-val-accuracy")
    path, _ = digits_file(site_dir, tmp_path / "mine.npz", 20)
    app.by_id("import-my-digits").set_input_files(str(path))
    wait_count(app, 20)
    fine_tune(app)
    accuracy_tuned = app.attr("accuracy", "data-val-accuracy")
    app.wait_saves(2)  # the loaded model, then the fine-tuned one, kept
    app.page.reload()
    app.wait_state("ready")
    expect(app.by_id("model-state")).to_contain_text("Fine-tuned on 20 of your digits")
    expect(app.by_id("accuracy")).to_have_attribute("data-val-accuracy", accuracy_tuned)
    expect(app.by_id("undo-fine-tune")).to_be_enabled()
    app.by_id("undo-fine-tune").click()
    expect(app.by_id("accuracy")).to_have_attribute("data-val-accuracy", accuracy_before)
    expect(app.by_id("model-state")).not_to_contain_text("Fine-tuned")


def test_a_drawing_is_answered_while_fine_tuning(app, cli_model, site_dir, tmp_path):
    app.load_model(cli_model)  # the default network: its fine-tune lasts longer than a drawing
    path, _ = digits_file(site_dir, tmp_path / "mine.npz", 30)
    app.by_id("import-my-digits").set_input_files(str(path))
    wait_count(app, 30)
    app.by_id("fine-tune-button").click()
    app.page.wait_for_function("() => Number(document.querySelector('[data-testid=fine-tune-progress]').dataset.step) > 0")
    draw_and_wait(app, 7)
    # answered during the fine-tune, not after it
    assert app.body("state") == "training" and app.attr("fine-tune-progress", "data-result") is None
    expect(app.by_id("prediction")).to_have_text("7")
    app.by_id("fine-tune-stop").click()
    expect(app.by_id("fine-tune-progress")).to_have_attribute("data-result", "stopped", timeout=30_000)
    app.wait_state("ready")
    expect(app.by_id("undo-fine-tune")).to_be_disabled()  # stopped: nothing changed, nothing to undo


def test_your_digits_are_kept_across_a_reload(app, seed_model):
    app.load_model(seed_model)
    teach(app, 3)
    teach(app, 1)
    teach(app, 3, drawn=2)  # the learner decides what a drawing is
    app.page.wait_for_function("() => window.pycnnProbe.read().my_digits_kept === 3")
    expect(app.by_id("my-digits-storage")).to_have_attribute("data-kept", "true")
    app.page.reload()
    app.wait_state("ready")
    wait_count(app, 3)
    assert groups(app) == {1: 1, 3: 2}


def test_exported_digits_import_back(app, seed_model, tmp_path):
    app.load_model(seed_model)
    for digit in (0, 4, 4):
        teach(app, digit)
    with app.page.expect_download() as info:
        app.by_id("export-my-digits").click()
    download = info.value
    assert download.suggested_filename == "my-digits.npz"
    path = tmp_path / "exported.npz"
    download.save_as(path)
    x, y = yourdigits.load(path)  # the file the CLI's --extra reads
    assert y.tolist() == [0, 4, 4] and x.shape == (3, 1, 28, 28)
    for left in (2, 1, 0):
        app.page.locator('[data-testid="my-digit"]').first.click()
        wait_count(app, left)
    app.by_id("import-my-digits").set_input_files(str(path))
    wait_count(app, 3)
    assert groups(app) == {0: 1, 4: 2}
    expect(app.by_id("status")).to_contain_text("Imported 3 digits from exported.npz")


def newer_version_file(path):
    """A digits file as a later pycnn might write it: version 2."""
    good = yourdigits.to_bytes(np.zeros((2, 28, 28), np.uint8), [1, 2])
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(good)) as src, zipfile.ZipFile(out, "w") as dst:
        for info in src.infolist():
            data = src.read(info)
            if info.filename == "digits.json":
                data = json.dumps({**json.loads(data), "version": 2}).encode()
            dst.writestr(info.filename, data)
    path.write_bytes(out.getvalue())
    return path


@pytest.mark.parametrize("kind, message", [
    ("corrupt", "not a valid pycnn digits file"),
    ("newer", "this digits file is from a newer pycnn (version 2)"),
    ("model", "this is a pycnn model file, not a digits file"),
])
def test_a_bad_file_is_refused_and_nothing_kept_is_lost(app, seed_model, site_dir, tmp_path, kind, message):
    path, labels = digits_file(site_dir, tmp_path / "mine.npz", 12)
    app.by_id("import-my-digits").set_input_files(str(path))
    wait_count(app, 12)
    before = groups(app)
    broken = tmp_path / "broken.npz"
    if kind == "newer":
        newer_version_file(broken)
    else:
        broken.write_bytes(b"PK\x03\x04 this was a digits file" if kind == "corrupt" else seed_model.read_bytes())
    app.by_id("import-my-digits").set_input_files(str(broken))
    banner = app.by_id("message")
    expect(banner).to_have_attribute("data-kind", "error")
    expect(banner).to_contain_text(f"Could not import broken.npz: {message}")
    expect(banner).to_contain_text("Your digits are unchanged")
    assert count(app) == 12 and groups(app) == before
    app.page.reload()  # and the kept ones are still kept
    app.wait_state("ready")
    wait_count(app, 12)
    assert groups(app) == {int(d): int(c) for d, c in zip(*np.unique(labels, return_counts=True))}


def test_storage_full_keeps_the_digits_in_the_page_and_says_they_are_not_kept(first_visit, site_dir, tmp_path):
    """A real QuotaExceededError (Chromium's quota for the origin set to 1 byte, as tests/e2e/test_faults.py
    does): the page says so, the digits stay in the page and can still be exported. A first visit: in an
    origin that already keeps records, Chromium may let a write that replaces one through."""
    app = first_visit
    cdp = app.context.new_cdp_session(app.page)
    cdp.send("Storage.overrideQuotaForOrigin", {"origin": app.url.rstrip("/"), "quotaSize": 1})
    try:
        path, _ = digits_file(site_dir, tmp_path / "mine.npz", 25)
        app.by_id("import-my-digits").set_input_files(str(path))
        wait_count(app, 25)
        note = app.by_id("my-digits-storage")
        expect(note).to_have_attribute("data-kept", "false")
        expect(note).to_contain_text("Could not keep your digits in this browser (the browser's storage for this page is full)")
        expect(note).to_contain_text("Use Export")
        with app.page.expect_download() as info:
            app.by_id("export-my-digits").click()
        saved = tmp_path / "exported.npz"
        info.value.save_as(saved)
        assert len(yourdigits.load(saved)[1]) == 25
        expect(app.by_id("message")).to_be_hidden()
        assert app.log.page_errors == []
    finally:
        cdp.send("Storage.overrideQuotaForOrigin", {"origin": app.url.rstrip("/")})
        cdp.detach()


def test_a_thousand_digits_import_the_gallery_still_works_and_they_fine_tune(app, seed_model, site_dir, tmp_path):
    path, labels = digits_file(site_dir, tmp_path / "many.npz", 1000)
    app.by_id("import-my-digits").set_input_files(str(path))
    wait_count(app, 1000)
    expected = {int(d): int(c) for d, c in zip(*np.unique(labels, return_counts=True))}
    assert groups(app) == expected
    assert app.page.locator('[data-testid="my-digit"]').count() == 1000
    first = app.page.locator('[data-testid="my-digits"] .my-digit-group[data-digit="5"] [data-testid="my-digit"]').first
    first.click()
    wait_count(app, 999)
    assert groups(app) == {**expected, 5: expected[5] - 1}
    app.page.wait_for_function("() => window.pycnnProbe.read().my_digits_kept === 999")
    app.page.reload()
    app.wait_state("ready")
    wait_count(app, 999)
    expect(app.by_id("fine-tune-note")).to_contain_text("Train the model (or load one) first")
    app.load_model(seed_model)
    fine_tune(app)  # many digits: scored on a held-back third instead of cross-validation
    result = app.by_id("my-digits-accuracy")
    assert result.get_attribute("data-method") == "held-back"
    expect(result).to_contain_text("held-back part (333 drawings)")
    assert float(result.get_attribute("data-after")) > 0.9  # bundled digits: read well before and after


def test_your_digits_join_a_full_training_run_when_ticked(app, site_dir, tmp_path):
    path, _ = digits_file(site_dir, tmp_path / "mine.npz", 10)
    join = app.by_id("join-my-digits")
    expect(join).to_be_disabled()
    app.by_id("import-my-digits").set_input_files(str(path))
    wait_count(app, 10)
    expect(app.by_id("join-my-digits-label")).to_contain_text("Join your digits (10) to the run")
    join.check()
    app.fill({"epochs-input": "1", "train-size-input": "256", "batch-size-input": "32"})
    app.by_id("train-button").click()
    app.page.wait_for_function("() => Number(document.querySelector('[data-testid=progress]').dataset.totalSteps) > 0")
    # 256 bundled digits and the 10 repeated auto_repeat(256, 10) = 1 time: 266 digits, 9 batches of 32
    assert app.attr("progress", "data-total-steps") == str(-(-(256 + 10 * yourdigits.auto_repeat(256, 10)) // 32))
    app.wait_run_result("finished")
    assert app.body("model") == "trained"


INK_ON_CANVAS = """() => { const c = document.querySelector('[data-testid=draw-canvas]');
    const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
    let n = 0; for (let i = 3; i < d.length; i += 4) n += d[i] > 0; return n; }"""


# The worker is sent the next add_digit only when the test says so (as a slow worker would answer it late): a drawing
# begun after the press is then surely begun before the add's reply. The page's own Worker is left as it was after.
HOLD_NEXT_ADD = """() => {
    const send = Worker.prototype.postMessage;
    let held = null;
    Worker.prototype.postMessage = function (message, transfer) {
        if (message?.method !== 'add_digit' || held) return send.call(this, message, transfer);
        held = () => send.call(this, message, transfer);
    };
    window.__releaseAdd = () => { Worker.prototype.postMessage = send; delete window.__releaseAdd; held?.(); };
}"""
RELEASE_ADD = "() => window.__releaseAdd()"


def strokes_in_place(app):
    """Each digit's strokes in page coordinates, placed once the canvas and the "It's a ..." buttons are both in
    view: a press then scrolls nothing, so strokes placed beforehand land on the canvas."""
    draw_and_wait(app, 1)
    app.by_id("teach").scroll_into_view_if_needed()
    app.by_id("clear-button").click()
    return {d: strokes_on_page(app.page, d, BOX) for d in range(10)}


def test_twenty_drawings_taught_as_fast_as_they_are_drawn_are_all_kept(app, seed_model):
    app.load_model(seed_model)
    clicks = [d % 10 for d in range(20)]
    strokes = strokes_in_place(app)
    raced = app.measurements().get("my_digits_added_while_drawing", 0)
    for digit in clicks:  # no waiting for an add's reply: draw, press, draw the next
        draw_strokes(app.page, strokes[digit])
        app.by_id(f"teach-{digit}").click()
    wait_count(app, len(clicks))
    assert groups(app) == {d: 2 for d in range(10)}
    expect(app.by_id("message")).to_be_hidden()
    app.page.wait_for_function("(n) => window.pycnnProbe.read().my_digits_kept === n", arg=len(clicks))
    raced = app.measurements().get("my_digits_added_while_drawing", 0) - raced
    print(f"\n{len(clicks)} drawings taught at speed, all kept; {raced} of the adds answered after the next drawing began")


def test_a_drawing_begun_while_the_last_is_being_added_is_not_wiped(app, seed_model, site_dir, tmp_path):
    app.load_model(seed_model)
    path, _ = digits_file(site_dir, tmp_path / "many.npz", 1000)  # each add's reply carries them all: it takes a while
    app.by_id("import-my-digits").set_input_files(str(path))
    wait_count(app, 1000)
    before = groups(app)
    seven = strokes_in_place(app)[7]
    probe = app.measurements()
    raced, asked = probe.get("my_digits_added_while_drawing", 0), probe.get("my_digits_asked", 0)
    draw_and_wait(app, 3)
    app.page.evaluate(HOLD_NEXT_ADD)
    try:
        box = app.by_id("teach-3").bounding_box()
        app.page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
        draw_strokes(app.page, seven)  # while the 3 is being added
        assert app.measurements().get("my_digits_asked") == asked + 1, "the press on It's a 3 took no drawing"
    finally:
        app.page.evaluate(RELEASE_ADD)
    wait_count(app, 1001)
    assert app.measurements().get("my_digits_added_while_drawing") == raced + 1  # the 7 was begun before the add's reply
    assert app.page.evaluate(INK_ON_CANVAS) > 0  # and the reply left it alone
    expect(app.by_id("prediction")).to_have_text("7")
    app.by_id("teach-7").click()
    wait_count(app, 1002)
    assert groups(app) == {**before, 3: before[3] + 1, 7: before[7] + 1}
