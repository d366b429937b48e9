"""Teach it your hand: once a trained model exists, the page asks for each digit once ("Draw a 3"), adds
each drawing to your digits, fine-tunes and shows how well it read the drawings before and after, measured
on drawings each network was not trained on. Drawings are real mouse strokes."""
from playwright.sync_api import expect

from e2e_support import TRAIN_TIMEOUT_MS, draw_digit
from test_accessibility import violations

BOX = (40, 30, 200)


def count(app):
    return int(app.attr("my-digits", "data-count"))


def draw_asked(app, digit):
    """The prompt asks for `digit`: draw it on a clear canvas and wait until the page has read it."""
    expect(app.by_id("guided-prompt")).to_have_attribute("data-digit", str(digit))
    expect(app.by_id("guided-prompt")).to_contain_text(f"Draw a {digit}")
    app.by_id("clear-button").click()
    draw_digit(app.page, digit, BOX)
    expect(app.by_id("guided-add-button")).to_be_enabled()


def test_the_guide_asks_for_each_digit_then_shows_before_and_after_the_fine_tune(app, seed_model):
    expect(app.by_id("guided-teach-button")).to_be_hidden()  # an untrained network has nothing to fine-tune
    app.load_model(seed_model)
    expect(app.by_id("guide")).to_contain_text("Draw each digit once")
    accuracy_before = app.attr("accuracy", "data-val-accuracy")
    app.by_id("guided-teach-button").click()
    for digit in range(10):
        draw_asked(app, digit)
        expect(app.by_id("guided-add-button")).to_have_text(f"Add this {digit}")
        app.by_id("guided-add-button").click()
    expect(app.by_id("guide")).to_have_attribute("data-step", "done", timeout=TRAIN_TIMEOUT_MS)
    assert count(app) == 10 and app.attr("guided-prompt", "data-digit") == ""
    shown = app.by_id("my-digits-accuracy")
    before, after = float(shown.get_attribute("data-before")), float(shown.get_attribute("data-after"))
    assert shown.get_attribute("data-method") == "cross-validation"
    result = app.by_id("guided-result")
    assert (float(result.get_attribute("data-before")), float(result.get_attribute("data-after"))) == (before, after)
    expect(result).to_contain_text(f"Your 10 drawings, read right: {before * 100:.1f}% before → {after * 100:.1f}% after")
    expect(result).to_contain_text("3-fold cross-validation")
    expect(app.by_id("model-state")).to_contain_text("Fine-tuned on 10 of your digits")
    assert app.attr("accuracy", "data-val-accuracy") != accuracy_before  # the fine-tuned network is the page's now
    expect(app.by_id("guided-teach-button")).to_have_text("Teach it your hand again")
    print(f"\nguided round, 10 drawings: {before:.0%} -> {after:.0%} "
          f"(3-fold cross-validation); held-out MNIST {float(shown.get_attribute('data-mnist-before')):.2%} -> "
          f"{float(shown.get_attribute('data-mnist-after')):.2%}")


def test_its_a_moves_the_guide_on_skip_leaves_a_digit_out_and_stop_keeps_what_was_added(app, seed_model):
    app.load_model(seed_model)
    app.by_id("guided-teach-button").click()
    draw_asked(app, 0)
    app.by_id("teach-0").click()  # the "It's a ..." button of the digit asked for does what Add does
    expect(app.by_id("guided-prompt")).to_have_attribute("data-digit", "1")
    app.by_id("guided-skip-button").click()
    draw_asked(app, 2)
    app.by_id("teach-5").click()  # another digit is added as that digit, and the guide still asks for its 2
    expect(app.by_id("my-digits")).to_have_attribute("data-count", "2")
    expect(app.by_id("guided-prompt")).to_have_attribute("data-digit", "2")
    assert violations(app) == [], "a guided round"
    app.by_id("guided-stop-button").click()
    expect(app.by_id("guide")).to_have_attribute("data-step", "stopped")
    expect(app.by_id("guided-note")).to_contain_text("Stopped. The drawing you added stays in your digits")
    assert count(app) == 2
    expect(app.by_id("guided-teach-button")).to_be_enabled()
