"""Keyboard and screen readers: axe-core (WCAG 2.2 AA, target size included) finds no violations in
the ready, training, trained, drawn and error states; every control can be reached and used with the keyboard, with the focus
visible; a digit can be read without drawing; milestones are announced without flooding."""
import pytest
from playwright.sync_api import expect

from e2e_support import READY_TIMEOUT_MS, ROOT, draw_digit

AXE = ROOT / "node_modules" / "axe-core" / "axe.min.js"  # installed by the build (npm ci), read when first used
TINY_RUN = {"epochs-input": "1", "train-size-input": "512", "batch-size-input": "32", "learning-rate-input": "0.01"}


def violations(app):
    """axe-core's violations on the page as it is now: [(rule id, impact, [selectors])]."""
    if not app.page.evaluate("typeof window.axe !== 'undefined'"):
        app.page.evaluate(AXE.read_text(encoding="utf-8") + "\n;undefined")  # DevTools evaluation: not an inline script, the CSP allows it
    # every rule axe-core runs by default, plus WCAG 2.2's target size (24 px), which axe 4.x leaves off
    result = app.page.evaluate(
        "() => axe.run(document, { resultTypes: ['violations'], rules: { 'target-size': { enabled: true } } })")
    return [(v["id"], v["impact"], [n["target"] for n in v["nodes"]][:5]) for v in result["violations"]]


def announcements(app):
    return int(app.attr("announcer", "data-count") or 0), app.by_id("announcer").text_content()


def test_no_accessibility_violations_when_ready_training_trained_and_drawn(app):
    assert violations(app) == [], "ready"  # (rule, impact, where) of each violation
    app.fill({"epochs-input": "2", "train-size-input": "8500"})
    app.by_id("train-button").click()
    app.wait_state("training", timeout=10_000)
    app.page.wait_for_function("() => Number(document.querySelector('[data-testid=progress]').dataset.step) >= 5")
    assert violations(app) == [], "training"
    app.by_id("stop-button").click()
    app.wait_run_result("stopped")
    app.train(TINY_RUN)
    app.page.wait_for_selector('[data-testid="confusion-matrix"][data-total="1500"]', state="attached")
    assert violations(app) == [], "trained"
    draw_digit(app.page, 7, (40, 30, 210))
    app.page.wait_for_function("() => document.querySelector('[data-testid=prediction]').dataset.answeredVersion"
                               " === document.querySelector('[data-testid=draw-canvas]').dataset.version")
    assert violations(app) == [], "drawn"


def test_no_accessibility_violations_in_the_error_state(open_site):
    app = open_site()
    app.context.route("**/worker.js", lambda route: route.fulfill(status=200, content_type="text/javascript",
                                                                  body="throw new Error('simulated worker crash');"))
    app.page.goto(app.url)
    app.wait_state("error", timeout=READY_TIMEOUT_MS)
    expect(app.by_id("retry-button")).to_be_visible()
    assert violations(app) == [], "error"


def press_until_focused(app, testid, limit=200):
    """Tab through the page until the element `testid` has the focus; every stop must show a focus ring."""
    for _ in range(limit):
        app.page.keyboard.press("Tab")
        focus = app.page.evaluate("""() => {
            const el = document.activeElement, style = getComputedStyle(el);
            return { testid: el.dataset.testid ?? el.closest('[data-testid]')?.dataset.testid ?? null,
                     tag: el.tagName, outline: style.outlineStyle, width: parseFloat(style.outlineWidth) };
        }""")
        if focus["tag"] == "BODY":
            continue  # past the last control: the focus left the page for a moment
        assert focus["outline"] != "none" and focus["width"] >= 2, f"no visible focus on {focus}"
        if focus["testid"] == testid:
            return
    pytest.fail(f"{testid} was not reached with Tab")


def test_a_learner_can_train_and_read_digits_with_the_keyboard_alone(app):
    page = app.page
    press_until_focused(app, "epochs-input")
    page.keyboard.press("Control+a")
    page.keyboard.type("1")
    press_until_focused(app, "batch-size-input")
    page.keyboard.press("Control+a")
    page.keyboard.type("16")  # 32 batches of 16: well past chance
    press_until_focused(app, "train-size-input")
    page.keyboard.press("Control+a")
    page.keyboard.type("512")
    press_until_focused(app, "train-button")
    page.keyboard.press("Enter")
    app.wait_run_result("finished")
    assert float(app.attr("accuracy", "data-val-accuracy")) > 0.5
    # a digit without drawing: choose one of the held-out digits
    press_until_focused(app, "heldout-digit-select")
    page.keyboard.press("ArrowDown")  # "any digit" -> 0
    press_until_focused(app, "heldout-next-button")
    page.keyboard.press("Enter")
    expect(app.by_id("prediction")).to_have_attribute("data-source", "heldout")
    expect(app.by_id("prediction-note")).to_contain_text("labelled 0")
    expect(app.by_id("announcer")).to_contain_text("Held-out digit number")
    first = app.by_id("prediction-note").inner_text()
    page.keyboard.press("Enter")  # the next 0
    expect(app.by_id("prediction-note")).not_to_have_text(first)
    expect(app.by_id("prediction-note")).to_contain_text("labelled 0")
    # a cell of the confusion matrix opens its digits; a digit of the gallery opens above
    app.page.wait_for_selector('[data-testid="confusion-matrix"][data-total="1500"]', state="attached")
    cell = app.page.locator('[data-testid="confusion-matrix"] td.off button').first
    label, predicted = cell.get_attribute("data-true"), cell.get_attribute("data-predicted")
    cell.focus()
    page.keyboard.press("Enter")
    expect(app.by_id("mistakes")).to_have_attribute("data-cell", f"{label},{predicted}")
    expect(app.by_id("gallery-title")).to_contain_text(f"held-out {label}s read as {predicted}")
    expect(app.by_id("prediction-note")).to_contain_text(f"labelled {label}")
    second = app.page.locator('[data-testid="mistakes"] button').nth(0)
    second.focus()
    page.keyboard.press("Enter")
    expect(app.by_id("prediction")).to_have_text(predicted)
    press_until_focused(app, "gallery-back")
    page.keyboard.press("Enter")
    expect(app.by_id("gallery-title")).to_have_text("Mistakes, most confident first")


def test_milestones_are_announced_once_each_and_drawing_does_not_flood(trained_app):
    app = trained_app
    before, _ = announcements(app)
    app.train({"epochs-input": "2", "train-size-input": "256", "batch-size-input": "32", "learning-rate-input": "0.001"})
    after, text = announcements(app)
    assert "Finished: held-out accuracy" in text
    assert after - before == 4  # started, epoch 1, epoch 2, finished
    # one drawing of a 4 in two strokes, with many answers while it is drawn: one answer is announced per stroke end
    before, _ = announcements(app)
    app.by_id("clear-button").click()
    draw_digit(app.page, 4, (40, 40, 200), steps=20)
    app.page.wait_for_function("() => document.querySelector('[data-testid=prediction]').dataset.answeredVersion"
                               " === document.querySelector('[data-testid=draw-canvas]').dataset.version")
    expect(app.by_id("announcer")).to_contain_text("The network reads 4")
    after, _ = announcements(app)
    answers = app.measurements()["predictions"]["answered"]
    assert 1 <= after - before <= 2 < answers  # the strokes' ends, not every answer
