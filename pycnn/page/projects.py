"""Projects of your own classes: the learner names 2 to 20 classes, draws examples of each, and trains a network
to tell them apart, by transfer from the page's digit network or from scratch (pycnn.classes).

The page has the digits open, or one project. While a project is open, drawings are read by its model (the one
trained last), "It's a ..." adds to its classes and its gallery is shown; the digit model, your digits and the
other projects stay as they are. A project's two ways of training are each measured on drawings the network
was not trained on (cross-validation, as pycnn.classes does it), and the page shows both scores side by side.
The page keeps each project as its file (pycnn.project: names, drawings, model) and brings it back with
load_project.
"""
import numpy as np

from ..checks import number
from ..classes import FromScratch, ScratchConfig, Transfer, TransferConfig
from ..project import MAX_CLASSES, MAX_DRAWINGS, MIN_CLASSES, Project, check_names
from ..project import MAX_FILE_BYTES as MAX_PROJECT_BYTES
from .protocol import request
from .reading import drawing_image

MAX_PROJECTS = 50
HOW = {"transfer": TransferConfig, "scratch": ScratchConfig}  # the ways to train a project, and their recipes


class Projects:
    """The learner's projects (id -> Project) and which one is open (None: the digits)."""

    def __init__(self, session):
        self.session = session
        self.projects = {}
        self.results = {}  # id -> {"transfer": job.result(), "scratch": ...}: the latest of each way of training
        self.open = None
        self._next_id = 1

    # ---- which one --------------------------------------------------------------------------------
    @request(during_run="answer")
    def create_project(self, names):
        """A new project of the classes `names` (a list, or one string of names separated by commas), with no
        drawings yet, opened -> project(). 2 to 20 names, each different: ValueError saying which is wrong."""
        if isinstance(names, str):
            names = [name for name in names.split(",")]
            if names and not names[-1].strip():  # "cat, dog," : a trailing comma is not a class
                names = names[:-1]
        names = check_names(names)
        if len(self.projects) >= MAX_PROJECTS:
            raise ValueError(f"you have {MAX_PROJECTS} projects, the most the page keeps: remove one first")
        project_id = self._next_id
        self._next_id += 1
        self.projects[project_id] = Project(names)
        self.open = project_id
        return self.project()

    @request(during_run="answer")
    def open_project(self, project=None):
        """Open project `project` (its id), or the digits (None) -> project()."""
        self.open = None if project is None else self._id(project)
        self.session.current.inspected = None  # a reading is of the network that made it
        return self.project()

    @request(during_run="answer")
    def load_project(self, data, project=None, results=None):
        """Bring back a project from its file (the page kept it), as `project` (its id, when it had one), with the
        scores the page kept with it (`results`, as project() gave them) -> project() of the digits or the
        project open: it is not opened. Not a project file: ValueError, nothing changes."""
        if len(data) > MAX_PROJECT_BYTES:
            raise ValueError(f"the project file is {len(data):,} bytes; at most {MAX_PROJECT_BYTES:,}")
        loaded = Project.from_bytes(data)
        if project is None:
            project = self._next_id
        project = number("project", project, 1, 2 ** 31 - 1, integer=True)
        if project not in self.projects and len(self.projects) >= MAX_PROJECTS:
            raise ValueError(f"you have {MAX_PROJECTS} projects, the most the page keeps: remove one first")
        self.projects[project] = loaded
        self._next_id = max(self._next_id, project + 1)
        summary = (loaded.model.metadata.get("classes") if loaded.model is not None else None) or {}
        how = {"transfer": "transfer", "from scratch": "scratch"}.get(summary.get("method"))
        kept = {}
        if how and isinstance(summary.get("evaluation"), dict):  # the kept model's score, from its file
            kept[how] = {"method": summary["method"], "evaluation": summary["evaluation"], "counts": summary.get("counts")}
        if isinstance(results, dict):  # the other way's score too, when the page kept it (only shown, never used)
            kept = {**{k: v for k, v in results.items() if k in HOW and isinstance(v, dict)}, **kept}
        if kept:
            self.results[project] = kept
        else:
            self.results.pop(project, None)
        return self.project()

    @request(during_run="answer")
    def export_project(self):
        """The open project's file (what `python -m pycnn train --classes FILE` reads) -> {"bytes", "file_name",
        "count"}."""
        project = self.opened()
        stem = "-".join("".join(c for c in name.lower() if c.isalnum()) for name in project.names).strip("-")
        return {"bytes": project.to_bytes(), "file_name": f"{stem[:60].strip('-') or 'project'}.npz",
                "count": len(project)}

    @request(during_run="answer")
    def import_project(self, data):
        """A project file (exported, or made in CPython) as a new project, opened -> project() plus "added". Not a
        project file: ValueError saying what is wrong, and the projects are as they were."""
        if len(self.projects) >= MAX_PROJECTS:
            raise ValueError(f"you have {MAX_PROJECTS} projects, the most the page keeps: remove one first")
        reply = self.load_project(data)
        project_id = reply["projects"][-1]["id"]
        self.open = project_id
        self.session.current.inspected = None
        return {**self.project(), "added": project_id}

    @request(during_run="answer")
    def remove_project(self, project):
        """Remove project `project` and everything in it (the learner confirmed it) -> project() (the digits are
        open if it was)."""
        project = self._id(project)
        del self.projects[project]
        self.results.pop(project, None)
        if self.open == project:
            self.open = None
        return {**self.project(), "removed": project}

    def _id(self, project):
        if not self.projects:
            raise ValueError("there is no project yet: name your classes and create one")
        project = number("project", project, 1, integer=True)
        if project not in self.projects:
            raise ValueError(f"there is no project {project}: it may have been removed")
        return project

    def opened(self):
        """The open Project, or a ValueError that says how to open one."""
        if self.open is None:
            raise ValueError("no project is open: choose one (or create one) first")
        return self.projects[self.open]

    # ---- its drawings --------------------------------------------------------------------------------
    @request(during_run="answer")
    def add_drawing(self, label, data, width, height, project=None):
        """Add the drawing `data` (as predict takes it) to class `label` of project `project` (its id; None: the open
        one) -> project() of that project. The page names the project its drawing was drawn for: another may be
        open by the time the add is answered."""
        project_id = self.open if project is None else self._id(project)
        project = self.opened() if project is None else self.projects[project_id]
        label = number("label", label, 0, len(project.names) - 1, integer=True)
        x = drawing_image(data, width, height, "add_drawing")
        if x is None:
            raise ValueError("there is nothing to add: the drawing is empty (or a dot); draw one first")
        if len(project) >= MAX_DRAWINGS:
            raise ValueError(f"the project has {len(project):,} drawings, the most it keeps: remove some first")
        project.add(np.asarray(x, np.float32)[None], label)
        return self.project(project_id)

    @request(during_run="answer")
    def remove_drawing(self, index, project=None):
        """Remove drawing `index` (its place in project()'s lists) of project `project` (None: the open one) ->
        project() of that project."""
        project_id = self.open if project is None else self._id(project)
        (self.opened() if project is None else self.projects[project_id]).remove(index)
        return self.project(project_id)

    # ---- training ------------------------------------------------------------------------------------
    def job(self, how, config):
        """The job that trains the open project `how` ("transfer": from the page's digit network, whose
        convolutions stay as they are; "scratch": the network in the editor, from fresh weights) -> (job, id)."""
        if how not in HOW:
            raise ValueError(f"how must be one of {', '.join(HOW)}, got {how!r}")
        project = self.opened()
        recipe = HOW[how]
        cfg = recipe.from_dict({} if config is None else config)
        counts = project.counts()
        empty = [name for name, n in zip(project.names, counts) if not n]
        if empty:
            raise ValueError(f"every class needs a drawing to learn from; none yet of {', '.join(empty)}")
        model = self.session.current.model
        if how == "transfer":
            return Transfer(model, project.x, project.y, project.names, cfg), self.open
        return FromScratch(model.get_config(), project.x, project.y, project.names, cfg), self.open

    def trained(self, project_id, job):
        """A training run of project `project_id` ended with `job` done: its model is the project's now, its
        score the latest of its way -> what the page is told (project(), "result")."""
        result = job.result()
        if project_id in self.projects:
            self.projects[project_id].set_model(job.model)
            how = "transfer" if result["method"] == "transfer" else "scratch"
            self.results.setdefault(project_id, {})[how] = result
        return {"result": result, "project_id": project_id, **self.project(project_id)}

    def reading_model(self):
        """The model that reads drawings now: the open project's (None before it is trained), or the digits'."""
        if self.open is None:
            return self.session.current.model
        return self.projects[self.open].model

    # ---- what the page shows ---------------------------------------------------------------------------
    def project(self, project_id=None):
        """{"project": the open project (or project_id's) as the page shows it, or None for the digits;
        "projects": every project [{id, names, count, model}]}. A project: {"id", "names", "count", "counts",
        "labels", "images" (N, 28, 28), "model" (it has one), "results" ({"transfer", "scratch"}: the latest
        score of each way of training), "model_from": the way its model was trained, "file": the project file (what
        the page keeps)}."""
        listing = [{"id": pid, "names": p.names, "count": len(p), "model": p.model is not None}
                   for pid, p in self.projects.items()]
        pid = self.open if project_id is None else project_id
        if pid is None or pid not in self.projects:
            return {"project": None, "projects": listing, "open": self.open}
        p = self.projects[pid]
        summary = (p.model.metadata.get("classes") if p.model is not None else None) or {}
        shown = {"id": pid, "names": p.names, "count": len(p), "counts": p.counts(), "labels": p.labels.tolist(),
                 "images": p.x[:, 0], "model": p.model is not None, "results": self.results.get(pid, {}),
                 "model_from": {"transfer": "transfer", "from scratch": "scratch"}.get(summary.get("method")),
                 "file": p.to_bytes()}
        return {"project": shown, "projects": listing, "open": self.open}

    def limits(self):
        """What the page checks before it asks: class counts, drawings, projects."""
        return {"min_classes": MIN_CLASSES, "max_classes": MAX_CLASSES, "max_drawings": MAX_DRAWINGS,
                "max_projects": MAX_PROJECTS, "max_file_bytes": MAX_PROJECT_BYTES}
