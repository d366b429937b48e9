"""Projects of your own classes: name them (comma-separated), draw examples of each with the mouse, train by
transfer and from scratch, each scored on drawings it was not trained on and shown side by side; drawings are
read by class name; switching between the digits and a project loses nothing, and a reload keeps them all."""
import math

from playwright.sync_api import expect

from pycnn.project import Project

from e2e_support import TRAIN_TIMEOUT_MS, draw_digit, draw_strokes
from test_accessibility import violations

NAMES = ["circle", "cross", "tick"]
SHAPES = {  # unit strokes, as e2e_support.STROKES are for digits
    "circle": [[(0.5 + 0.35 * math.sin(2 * math.pi * i / 24), 0.5 - 0.35 * math.cos(2 * math.pi * i / 24))
                for i in range(25)]],
    "cross": [[(0.2, 0.2), (0.8, 0.8)], [(0.8, 0.2), (0.2, 0.8)]],
    "tick": [[(0.15, 0.55), (0.4, 0.85), (0.85, 0.15)]],
}
BOXES = [(40, 30, 200), (70, 60, 150), (20, 50, 230), (90, 20, 170)]  # where and how big, in canvas pixels


def draw_shape(app, name, box):
    """Draw SHAPES[name] in box = (left, top, size) of the canvas, with the mouse; wait until the page has read it."""
    app.by_id("clear-button").click()
    canvas = app.by_id("draw-canvas")
    canvas.scroll_into_view_if_needed()
    rect = canvas.bounding_box()
    left, top, size = box
    scale = rect["width"] / 280
    strokes = [[(rect["x"] + (left + u * size) * scale, rect["y"] + (top + v * size) * scale) for u, v in stroke]
               for stroke in SHAPES[name]]
    draw_strokes(app.page, strokes)
    app.page.wait_for_function("""() => {
        const answer = document.querySelector('[data-testid=prediction]');
        const canvas = document.querySelector('[data-testid=draw-canvas]');
        return answer.dataset.source === 'drawing' && answer.dataset.answeredVersion === canvas.dataset.version; }""")


def count(app):
    return int(app.attr("my-digits", "data-count"))


def make_project(app, rounds=len(BOXES)):
    """Create the project of NAMES through the page and teach it `rounds` drawings of each class."""
    app.by_id("class-names-input").fill(", ".join(NAMES))
    app.by_id("create-project-button").click()
    expect(app.by_id("project-select")).to_have_attribute("data-projects", "1")
    expect(app.by_id("my-digits")).to_have_attribute("data-count", "0")
    for box in BOXES[:rounds]:
        for label, name in enumerate(NAMES):
            draw_shape(app, name, box)
            expect(app.by_id(f"teach-{label}")).to_have_text(name)
            app.by_id(f"teach-{label}").click()
    expect(app.by_id("my-digits")).to_have_attribute("data-count", str(rounds * len(NAMES)))


def train(app, button):
    """Press `button` and wait until the project's run finished -> what its progress says ("...: done in 2.1 s.")."""
    app.by_id(button).click()
    expect(app.by_id("project-progress")).to_have_attribute("data-result", "finished", timeout=TRAIN_TIMEOUT_MS)
    app.wait_state("ready")
    return app.by_id("project-progress").text_content().strip()


def test_a_project_trained_by_transfer_reads_drawings_by_class_name(seed_app):
    app = seed_app
    make_project(app)
    expect(app.by_id("fine-tune-button")).to_have_text("Train by transfer")
    train(app, "fine-tune-button")
    after = float(app.attr("my-digits-accuracy", "data-after"))
    assert 0 <= after <= 1
    expect(app.by_id("my-digits-accuracy")).to_contain_text("3-fold cross-validation")
    print(f"\n{len(NAMES)} classes, {count(app)} drawings, by transfer: {after:.0%} of drawings not trained on read right")
    for name, box in zip(NAMES, [(50, 40, 180), (35, 45, 190), (55, 35, 185)]):
        draw_shape(app, name, box)
        expect(app.by_id("prediction")).to_have_text(name)
    bars = app.page.eval_on_selector_all('[data-testid=probabilities] .prob', "rows => rows.map(r => r.dataset.name)")
    assert bars == NAMES


def test_transfer_and_from_scratch_stand_side_by_side_and_the_digits_lose_nothing(seed_app):
    app = seed_app
    draw_digit(app.page, 7, (40, 30, 200))
    expect(app.by_id("prediction")).to_have_text("7")
    make_project(app, rounds=3)
    expect(app.by_id("train-button")).to_have_text("Train from scratch")
    took = [train(app, "fine-tune-button"), train(app, "train-button")]
    scores = {box.get_attribute("data-how"): box.get_attribute("data-accuracy")
              for box in app.page.locator('[data-testid=project-results] .project-score').all()}
    assert set(scores) == {"transfer", "scratch"} and all(0 <= float(v) <= 1 for v in scores.values())
    assert app.attr("my-digits-accuracy", "data-after") == scores["scratch"]  # the network trained last reads
    assert violations(app) == [], "a trained project"
    print(f"\n{count(app)} drawings: by transfer {float(scores['transfer']):.0%}, from scratch "
          f"{float(scores['scratch']):.0%} (3-fold cross-validation); {took}")
    project = app.by_id("project-select").input_value()
    app.by_id("project-select").select_option("")  # back to the digits: their network, buttons and gallery
    expect(app.by_id("teach-9")).to_have_count(1)
    expect(app.by_id("train-button")).to_have_text("Train")
    assert app.body("model") == "loaded"
    draw_digit(app.page, 3, (40, 30, 200))
    expect(app.by_id("prediction")).to_have_text("3")
    app.by_id("project-select").select_option(project)  # and back: nothing lost
    expect(app.by_id("my-digits")).to_have_attribute("data-count", "9")
    expect(app.by_id("prediction")).not_to_have_text("3")  # the drawing is read again, as one of the classes


def test_projects_and_the_one_open_are_kept_across_a_reload(seed_app):
    app = seed_app
    make_project(app, rounds=2)
    train(app, "fine-tune-button")
    accuracy = app.attr("my-digits-accuracy", "data-after")
    app.page.wait_for_function("() => (window.pycnnProbe.read().projects_kept ?? 0) > 0")
    app.page.reload()
    app.wait_state("ready")
    expect(app.by_id("my-digits")).to_have_attribute("data-count", "6")
    expect(app.by_id("project-select")).to_have_attribute("data-projects", "1")
    assert app.attr("my-digits-accuracy", "data-after") == accuracy
    draw_shape(app, "cross", (50, 40, 180))
    expect(app.by_id("prediction")).to_have_text("cross")


def test_an_exported_project_is_the_project_file_and_imports_back_and_a_bad_file_changes_nothing(app, cli_model,
                                                                                                    tmp_path):
    make_project(app, rounds=1)
    with app.page.expect_download() as info:
        app.by_id("export-project-button").click()
    assert info.value.suggested_filename == "circle-cross-tick.npz"
    path = tmp_path / "shapes.npz"
    info.value.save_as(path)
    exported = Project.load(path)  # the file `python -m pycnn train --classes` reads
    assert exported.names == NAMES and exported.counts() == [1, 1, 1] and exported.model is None
    app.by_id("import-project").set_input_files(str(cli_model))  # a model file is not a project
    expect(app.by_id("message")).to_contain_text("Could not import model.npz: this is a pycnn model file, not a "
                                                 "project file. Your projects are unchanged")
    assert app.attr("project-select", "data-projects") == "1"
    app.by_id("import-project").set_input_files(str(path))
    expect(app.by_id("project-select")).to_have_attribute("data-projects", "2")
    expect(app.by_id("my-digits")).to_have_attribute("data-count", "3")
    expect(app.by_id("status")).to_contain_text("Imported shapes.npz: circle, cross, tick, 3 drawings")
    assert app.by_id("project-select").input_value() != ""


def test_names_that_make_no_project_say_why_and_are_kept_to_correct(app):
    field = app.by_id("class-names-input")
    for names, why in [("cat", "there must be 2 to 20 classes, got 1"),
                       ("cat, Cat", "'cat' and 'Cat' are the same name")]:
        field.fill(names)
        app.by_id("create-project-button").click()
        expect(app.by_id("class-names-error")).to_contain_text(f"Could not make the project: class names: {why}")
        expect(field).to_have_value(names)
    assert app.attr("project-select", "data-projects") == "0"
    field.fill("cat, dog")
    app.by_id("create-project-button").click()
    expect(app.by_id("class-names-error")).to_be_hidden()
    expect(app.by_id("my-digits")).to_contain_text("No drawings yet: draw a cat")
    expect(app.by_id("fine-tune-button")).to_be_disabled()  # nothing to learn from yet, and it says so
    expect(app.by_id("fine-tune-note")).to_contain_text("Draw at least one of each class first; none yet of cat, dog")
    expect(app.by_id("train-button")).to_be_disabled()
    draw_digit(app.page, 0, (40, 30, 200))  # any drawing: an untrained project shows what it would read
    expect(app.by_id("prediction-note")).to_contain_text("Not trained yet")
    expect(app.by_id("teach-1")).to_have_text("dog")
    assert violations(app) == [], "a new project"
