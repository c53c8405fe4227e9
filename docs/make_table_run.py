"""A data-frame run without code, the docs screenshots' from_dataframe run:

    .venv/bin/python docs/make_table_run.py runs/wine

scikit-learn's bundled wine table (178 wines, 13 chemical measurements, 3 cultivars) as a
pandas data frame, through ``from_dataframe`` (a seeded 20% of the rows is validation),
the default MLP trained and the run analysed.
"""

import sys
from pathlib import Path

from sklearn.datasets import load_wine

from samplescope.integrations import from_dataframe
from samplescope.pipeline.analyze import analyze_run
from samplescope.pipeline.train import train_run


def main(out: str) -> None:
    wine = load_wine(as_frame=True)
    df = wine.frame.rename(columns={"od280/od315_of_diluted_wines": "od280/od315"})
    df["cultivar"] = [f"cultivar {int(t) + 1}" for t in df.pop("target")]
    inputs = [c for c in df.columns if c != "cultivar"]
    integ = from_dataframe(df, inputs=inputs, target="cultivar", name="wine")
    path = train_run(integ, Path(out), progress=False, threads=1)
    analyze_run(path, progress=False, projection="pca")


if __name__ == "__main__":
    main(sys.argv[1])
