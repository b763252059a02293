"""Cancel inside a stage-3 step: a CPU step takes many seconds, so the flag is also checked between the batched
feature passes and between the z pass and its backward. The flag is set from a UNet hook at the exact point
(mechanics only, tiny random-weight models)."""
from __future__ import annotations

import dataclasses
import threading

import torch

from engine.stage3.stylize import stylize
from tests.test_stylize import SHORT, embeds, scene, sd  # noqa: F401 (fixtures)


def _count_passes(unet, flag: threading.Event, set_on: str):
    """Counts UNet calls with and without grad; sets `flag` during the first call of kind `set_on`."""
    calls = {"no_grad": 0, "grad": 0}

    def hook(module, args):
        kind = "grad" if torch.is_grad_enabled() else "no_grad"
        calls[kind] += 1
        if kind == set_on:
            flag.set()

    return calls, unet.register_forward_pre_hook(hook)


def test_cancel_during_the_z_pass_skips_its_backward_and_step(sd, embeds, scene):
    content, references, matches = scene
    flag = threading.Event()
    calls, handle = _count_passes(sd.unet, flag, "grad")
    try:
        out = stylize(sd, embeds, content, references, matches, SHORT, cancel=flag)
    finally:
        handle.remove()
    assert out.cancelled and calls["grad"] == 1
    assert out.steps_done == 0 and out.losses == []  # the step whose backward was skipped is not counted


def test_cancel_between_reference_feature_passes_stops_before_the_next(sd, embeds, scene):
    content, references, matches = scene
    one_by_one = dataclasses.replace(SHORT, feature_batch=1)  # content, then each reference: three passes
    flag = threading.Event()
    calls, handle = _count_passes(sd.unet, flag, "no_grad")
    try:
        out = stylize(sd, embeds, content, references, matches, one_by_one, cancel=flag)
    finally:
        handle.remove()
    assert out.cancelled and out.steps_done == 0
    assert calls == {"no_grad": 1, "grad": 0}
