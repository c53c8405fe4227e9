"""A synthetic review set as token ids (from_arrays), the docs screenshots' tokens run:

    .venv/bin/python docs/make_tokens_run.py runs/reviews

800 sentences of 5-8 words; "positive" iff a praising word appears, 3% of labels flipped.
"""
import sys
from pathlib import Path

import numpy as np

from samplescope.integrations import from_arrays
from samplescope.pipeline.analyze import analyze_run
from samplescope.pipeline.train import train_run


def main(out: str) -> None:
    vocabulary = ["<pad>", "the", "a", "film", "plot", "actors", "was", "were", "very", "quite", "and", "music",
                  "ending", "good", "great", "bad", "dull", "long", "short", "funny"]
    praise, blame = [13, 14, 19], [15, 16]
    rng = np.random.default_rng(0)
    n, t = 800, 8
    ids = rng.choice([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 17, 18], size=(n, t))
    y = rng.integers(0, 2, n)
    lengths = rng.integers(5, t + 1, n)
    for i in range(n):  # one or two praising (positive) or blaming (negative) words among the sentence's
        k = rng.integers(1, 3)
        ids[i, rng.choice(lengths[i], k, replace=False)] = rng.choice(praise if y[i] else blame, k)
    ids[np.arange(t)[None, :] >= lengths[:, None]] = 0  # padding at the end
    flip = rng.random(n) < 0.03  # a few wrong labels, so the page has errors to show
    y = np.where(flip, 1 - y, y)
    integ = from_arrays(ids[:640], y[:640], ids[640:], y[640:], classes=["negative", "positive"], vocabulary=vocabulary)
    path = train_run(integ, Path(out), progress=False, threads=1, epochs=30)
    analyze_run(path, progress=False, projection="pca")


if __name__ == "__main__":
    main(sys.argv[1])
