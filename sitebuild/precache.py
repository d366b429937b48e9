"""What the service worker (web/sw.js) keeps for offline use: every file of the site with its
sha256 and size, and a version derived from them, so a new build is a new cache and an
unchanged file is never downloaded twice."""
import hashlib
import json

from .files import sha256_file

SERVICE_WORKER = "sw.js"
PRECACHE_FILE = "precache.js"

def precache_list(plan):
    """PRECACHE_FILE's contents for a plan {dist path: (group, bytes or Path)}: every file but the
    service worker with its sha256 and size, and the build's version (a hash over all of them and
    the service worker), as the JavaScript statement `self.PRECACHE = {...};`."""
    files, lines = {}, []
    for rel in sorted(plan):
        src = plan[rel][1]
        data_sha = hashlib.sha256(src).hexdigest() if isinstance(src, bytes) else sha256_file(src)
        lines.append(f"{rel} {data_sha}\n")
        if rel != SERVICE_WORKER:
            files[rel] = {"sha256": data_sha, "bytes": len(src) if isinstance(src, bytes) else src.stat().st_size}
    version = hashlib.sha256("".join(lines).encode()).hexdigest()[:16]
    entries = ",\n".join(f"    {json.dumps(rel)}: {json.dumps(entry)}" for rel, entry in files.items())
    return (f"// Written by build.py: what the service worker ({SERVICE_WORKER}) caches for offline use.\n"
            f'self.PRECACHE = {{\n  "version": "{version}",\n  "files": {{\n{entries}\n  }}\n}};\n').encode()
