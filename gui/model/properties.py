"""Observable properties for model QObjects, and two-way binding of a property to a widget.

After KAD's `model/properties.py`: assigning an equal value does nothing, any other value emits
`<name>_changed(value)` (declared by the class) and, for persisted properties, `modified(name)`.
Bindings keep a widget and the model in sync without the widget keeping state of its own.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, Slot

_VALUE_TYPES = (int, float, str, bool, tuple, Path, type(None))


def same_value(old: Any, new: Any) -> bool:
    """Equal plain values, or the very same object (arrays and results compare by identity)."""
    if old is new:
        return True
    if isinstance(old, _VALUE_TYPES) and isinstance(new, _VALUE_TYPES):
        return type(old) is type(new) and old == new
    return False


class Property:
    """A data descriptor on a QObject that emits `<name>_changed` when its value really changes."""

    def __init__(self, default: Any = None, persist: bool = False):
        self.default = default
        self.persist = persist
        self.name = ""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, obj: QObject | None, owner: type) -> Any:
        if obj is None:
            return self
        return obj.__dict__.get(self.name, self.default)

    def __set__(self, obj: QObject, value: Any) -> None:
        if same_value(self.__get__(obj, type(obj)), value):
            return
        obj.__dict__[self.name] = value
        getattr(obj, f"{self.name}_changed").emit(value)
        if self.persist:
            obj.modified.emit(self.name)


class Binding(QObject):
    """Keeps `model.<name>` and `widget.<qt_property>` equal in both directions; dies with the widget."""

    def __init__(self, model: QObject, name: str, widget: QObject, qt_property: str):
        super().__init__(widget)
        self.model, self.name, self.widget, self.qt_property = model, name, widget, qt_property
        meta = widget.metaObject()
        index = meta.indexOfProperty(qt_property)
        if index < 0:
            raise AttributeError(f"{type(widget).__name__} has no Qt property {qt_property!r}")
        notify = bytes(meta.property(index).notifySignal().name()).decode()
        getattr(model, f"{name}_changed").connect(self.model_changed)
        getattr(widget, notify).connect(self.widget_changed)
        self.model_changed(getattr(model, name))

    @Slot(object)
    def model_changed(self, value: Any) -> None:
        if self.widget.property(self.qt_property) != value:
            self.widget.setProperty(self.qt_property, value)

    @Slot()
    def widget_changed(self) -> None:
        setattr(self.model, self.name, self.widget.property(self.qt_property))


def bind(model: QObject, name: str, widget: QObject, qt_property: str) -> Binding:
    """`bind(session, "opacity", slider, "value")`: the slider shows and edits `session.opacity`."""
    return Binding(model, name, widget, qt_property)
