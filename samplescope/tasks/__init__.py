"""Tasks: what the ground truth is, and so what loss, error, metrics and views mean.

    from samplescope.tasks import get_task
    task = get_task("regression", target="progression")   # or Regression(...), Classification(), MultiLabel()
    cols = task.prediction_columns(outputs, labels, classes, reference=is_validation)

Every layer asks the run's task (:func:`task_from_info` reads run.json's ``"task"``;
a run without one is classification) instead of assuming classes. A new task is one
module with a :class:`Task` subclass, added with :func:`register_task`.
"""

from __future__ import annotations

from typing import Any

from samplescope.errors import ParameterError
from samplescope.tasks.base import Task
from samplescope.tasks.classification import Classification
from samplescope.tasks.multilabel import MultiLabel
from samplescope.tasks.regression import Regression

__all__ = [
    "TASKS",
    "Classification",
    "MultiLabel",
    "Regression",
    "Task",
    "get_task",
    "register_task",
    "task_from_info",
]  # fmt: skip

#: task name -> class
TASKS: dict[str, type[Task]] = {}


def register_task(cls: type[Task]) -> type[Task]:
    """Make a Task subclass known by its ``name`` (usable as a class decorator)."""
    if not cls.name:
        raise ParameterError(f"{cls.__name__} has no name; set the class attribute name = '...'.")
    TASKS[cls.name] = cls
    return cls


for _cls in (Classification, Regression, MultiLabel):
    register_task(_cls)


def get_task(task: str | Task | None = None, **params: Any) -> Task:
    """A task object from a name (with its parameters) or a Task; None = classification."""
    if task is None:
        task = "classification"
    if isinstance(task, Task):
        if params:
            raise ParameterError(f"task={task!r} is already an object; pass its parameters to it, not {sorted(params)}.")
        return task
    aliases = {"multi-label": "multilabel", "multi_label": "multilabel"}
    name = aliases.get(str(task), str(task))
    if name not in TASKS:
        raise ParameterError(f"task={task!r} is unknown; use one of {', '.join(TASKS)} or a samplescope.tasks.Task.")
    try:
        return TASKS[name](**params)
    except TypeError as exc:
        raise ParameterError(f"task={name!r} does not take {sorted(params)} ({exc}).") from exc


def task_from_info(info: dict[str, Any]) -> Task:
    """The task a run was made with, from its run.json (classification when it names none)."""
    data = info.get("task") or {"name": "classification"}
    name = data.get("name", "classification")
    if name not in TASKS:
        raise ParameterError(
            f"run {info.get('name')!r} was made for task {name!r}, which this samplescope does not know; "
            f"known tasks: {', '.join(TASKS)}."
        )
    return TASKS[name].from_dict(data)
