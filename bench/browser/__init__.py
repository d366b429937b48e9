"""The page's benchmarks, in headless Chromium (results in bench/browser/RESULTS.md):

    python -m bench.browser.browser       training vs TensorFlow.js, page load, one click on Train, memory
    python -m bench.browser.editor        the network editor and the largest network it allows
    python -m bench.browser.handwriting   UNIPEN pen digits replayed as mouse strokes on the canvas
    python -m bench.browser.inside        see inside one step: pointing, saliency, Step
    python -m bench.browser.offline       the service worker: first visit, offline reloads, updates
    python -m bench.browser.teach         teach it your handwriting: Fine-tune on a writer's drawings
    node bench/browser/firefox.mjs        Firefox ESR next to Chromium

harness holds what they share; steploop and profile_step run in the benchmark page's Pyodide worker
(and in CPython); static/ is the benchmark page and its workers.
"""
