"""Cancel inside a stage-3 step: a CPU step takes many seconds, so the flag is also checked between the batched
feature passes and between the z pass and its backward. The flag is set from a UNet hook at the exact point
(mechanics only, tiny random-weight models)."""
from __future__ import annotations

import dataclasses
import threading

import torch

from engine.stage3.stylize import stylize
from tests.test_stylize import SHORT, embeds, scene, sd  # noqa: F401 (fixtures)


def stylize_cancelled_in(kind: str, sd, embeds, scene, params=SHORT):
    """Run stage 3 with a cancel flag that a UNet pre-hook sets during the first pass of `kind` ("grad": the z pass,
    "no_grad": a feature pass); the outcome and the number of UNet calls of each kind."""
    content, references, matches = scene
    flag = threading.Event()
    calls = {"no_grad": 0, "grad": 0}

    def hook(module, args):
        current = "grad" if torch.is_grad_enabled() else "no_grad"
        calls[current] += 1
        if current == kind:
            flag.set()

    handle = sd.unet.register_forward_pre_hook(hook)
    try:
        return stylize(sd, embeds, content, references, matches, params, cancel=flag), calls
    finally:
        handle.remove()


def test_cancel_during_the_z_pass_skips_its_backward_and_step(sd, embeds, scene):
    out, calls = stylize_cancelled_in("grad", sd, embeds, scene)
    assert out.cancelled and calls["grad"] == 1
    assert out.steps_done == 0 and out.losses == []  # the step whose backward was skipped is not counted


def test_cancel_between_reference_feature_passes_stops_before_the_next(sd, embeds, scene):
    one_by_one = dataclasses.replace(SHORT, feature_batch=1)  # content, then each reference: three passes
    out, calls = stylize_cancelled_in("no_grad", sd, embeds, scene, one_by_one)
    assert out.cancelled and out.steps_done == 0
    assert calls == {"no_grad": 1, "grad": 0}
