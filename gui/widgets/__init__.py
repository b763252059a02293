"""Widgets: each shows and edits part of the model and holds no state of its own."""
