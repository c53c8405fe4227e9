"""The digits integration, slowed down (a short sleep per batch of inputs) so a test can kill a Ray
worker while the job is still running. Everything else is the built-in integration's own code."""

from __future__ import annotations

import time

from samplescope import Integration
from samplescope.integrations import digits as base

DELAY_S = 0.25  # per shard of inputs: the job lasts seconds, long enough to kill a worker mid-way

integration = Integration("digits", classes=[str(d) for d in range(10)], version="1")
integration.preprocess(base.load)
integration.subset("train")(base.train)
integration.subset("validation")(base.validation)
integration.ground_truth_batched(base.label)
integration.metadata("stats", batched=True)(base.stats)


@integration.input("image", batched=True)
def image(batch):
    time.sleep(DELAY_S)
    return base.image(batch)
