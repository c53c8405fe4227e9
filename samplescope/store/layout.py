"""The names of every file in a run folder, and the layout's version.

This module is the one place that spells them; everything else imports the
names from here (``from samplescope.store import layout``).
"""

from __future__ import annotations

#: Bumped when a file is renamed or changes meaning. Runs record it in run.json
#: (``layout_version``); runs written before it existed have none and read as 1.
LAYOUT_VERSION = 2

RUN_JSON = "run.json"
DATABASE = "samples.duckdb"
#: Trained weights as a safetensors state dict: data only, never code.
WEIGHTS = "model.safetensors"
#: Layout 1's weights: a torch pickle (a state dict, or a whole pickled module for create_run runs).
LEGACY_WEIGHTS = "model.pt"
LATENT = "latent.npy"
#: a no-code integration's arrays (from_arrays, from_dataframe), .npy per subset: data, never code
ARRAYS = "arrays"
GRADCAM = "heatmaps_gradcam.npy"
HEATMAP_CACHE = "heatmaps"  # on-demand heatmaps, one .npy per (method, sample, target)
#: tags and saved selections: the user's decisions, kept apart from the analysis (re-analysing keeps them)
ANNOTATIONS = "annotations"
CHECKPOINT = "checkpoint.pt"  # in the hidden .<name>.partial folder of an unfinished training
#: The latent kNN graph written by analyze: (N, k) int32 neighbour rows, nearest first, self excluded ...
NEIGHBOR_ROWS = "knn_rows.npy"
#: ... and their (N, k) float32 cosine distances (1 - similarity).
NEIGHBOR_DISTANCES = "knn_distances.npy"
#: The approximate engine's faiss IVF index (faiss's own format), only above the exact threshold.
NEIGHBOR_INDEX = "knn_index.faiss"
