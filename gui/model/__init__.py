"""Observable state of the window (no widgets): the gallery, the session (content, matches, pins, runs), undo."""
