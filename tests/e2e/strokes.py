"""Digits as pen strokes in unit coordinates, replayed with real mouse events on the drawing canvas."""
import math

CANVAS = 280  # the drawing canvas' width and height in canvas pixels


def _ellipse(cx=0.5, cy=0.5, rx=0.3, ry=0.42, n=28):
    return [[(cx + rx * math.sin(2 * math.pi * i / n), cy - ry * math.cos(2 * math.pi * i / n)) for i in range(n + 1)]]


STROKES = {
    0: _ellipse(),
    1: [[(0.55, 0.08), (0.5, 0.5), (0.45, 0.92)]],
    2: [[(0.2, 0.25), (0.45, 0.08), (0.75, 0.2), (0.7, 0.45), (0.2, 0.9), (0.85, 0.9)]],
    3: [[(0.2, 0.15), (0.5, 0.06), (0.78, 0.2), (0.72, 0.4), (0.45, 0.5), (0.75, 0.6), (0.8, 0.8), (0.5, 0.94),
         (0.2, 0.85)]],
    4: [[(0.6, 0.08), (0.15, 0.62), (0.88, 0.62)], [(0.68, 0.3), (0.66, 0.95)]],
    7: [[(0.15, 0.12), (0.85, 0.12), (0.6, 0.5), (0.4, 0.92)]],
}


def draw_digit(page, digit, box, steps=6):
    """Draw `digit` inside box = (left, top, size) in canvas pixels with mouse down/move/up."""
    canvas = page.get_by_test_id("draw-canvas")
    canvas.scroll_into_view_if_needed()
    rect = canvas.bounding_box()
    sx, sy = rect["width"] / CANVAS, rect["height"] / CANVAS
    left, top, size = box
    for stroke in STROKES[digit]:
        points = [(rect["x"] + (left + u * size) * sx, rect["y"] + (top + v * size) * sy) for u, v in stroke]
        page.mouse.move(*points[0])
        page.mouse.down()
        for point in points[1:]:
            page.mouse.move(*point, steps=steps)
        page.mouse.up()
