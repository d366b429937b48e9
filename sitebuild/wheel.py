"""The pycnn wheel, built from pycnn/*.py and pyproject.toml without pip or setuptools: the same
sources give the same bytes, so an unchanged library is never downloaded again."""
import base64
import csv
import hashlib
import io
import re
import tomllib
import zipfile

from .files import ROOT, BuildError

ZIP_DATE = (1980, 1, 1, 0, 0, 0)  # earliest zip timestamp: makes the wheel byte-reproducible


def read_project(root=ROOT):
    """(name, version, summary, requires_python, dependencies) from pyproject.toml."""
    path = root / "pyproject.toml"
    project = {}
    if path.is_file():
        try:
            project = tomllib.loads(path.read_text()).get("project", {})
        except tomllib.TOMLDecodeError as e:
            raise BuildError(f"{path}: invalid TOML ({e}); fix it and rerun") from None
    return (project.get("name", "pycnn"), project.get("version", "0.1.0"),
            project.get("description", ""), project.get("requires-python", ""),
            project.get("dependencies") or ["numpy"])


def build_wheel(root=ROOT):
    """The pycnn wheel built from root/pycnn/*.py: (file name, bytes); byte-reproducible."""
    name, version, summary, requires_python, deps = read_project(root)
    dist_name = re.sub(r"[-_.]+", "_", name).lower()
    dist_info = f"{dist_name}-{version}.dist-info"
    sources = sorted(p for p in (root / "pycnn").rglob("*.py")
                     if "__pycache__" not in p.parts and not p.name.startswith("."))
    metadata = ["Metadata-Version: 2.1", f"Name: {name}", f"Version: {version}"]
    metadata += [f"Summary: {summary}"] if summary else []
    metadata += [f"Requires-Python: {requires_python}"] if requires_python else []
    metadata += [f"Requires-Dist: {dep}" for dep in deps]
    wheel = ["Wheel-Version: 1.0", "Generator: pycnn build.py", "Root-Is-Purelib: true",
             "Tag: py3-none-any"]
    entries = [(p.relative_to(root).as_posix(), p.read_bytes()) for p in sources]
    entries += [(f"{dist_info}/METADATA", ("\n".join(metadata) + "\n").encode()),
                (f"{dist_info}/WHEEL", ("\n".join(wheel) + "\n").encode())]
    record = io.StringIO()
    writer = csv.writer(record, lineterminator="\n")
    for arcname, data in entries:
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        writer.writerow([arcname, f"sha256={digest}", len(data)])
    writer.writerow([f"{dist_info}/RECORD", "", ""])
    entries.append((f"{dist_info}/RECORD", record.getvalue().encode()))
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for arcname, data in entries:
            info = zipfile.ZipInfo(arcname, ZIP_DATE)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.create_system = 3  # Unix everywhere, so the bytes do not depend on the OS
            info.external_attr = 0o644 << 16
            zf.writestr(info, data, compresslevel=6)
    return f"{dist_name}-{version}-py3-none-any.whl", buf.getvalue()
