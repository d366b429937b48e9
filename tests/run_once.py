"""What a test run makes once, however many pytest-xdist workers share it."""
import fcntl
import os
import shutil


def once_per_run(tmp_path_factory, name, make):
    """A folder that make(folder) fills once per test run: the pytest-xdist workers share the run's
    temporary root, and the first to ask makes it while the others wait for it."""
    root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        root = root.parent  # the run's root, above each worker's own
    folder, made = root / name, root / f"{name}.made"  # made: beside the folder, which stays as make left it
    with open(root / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        if not made.is_file():
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir()
            make(folder)
            made.touch()
    return folder
