"""The names of every file in a run folder, and the layout's version.

This module is the one place that spells them; everything else imports the
names from here (``from samplescope.store import layout``).
"""

from __future__ import annotations

#: Bumped when a file is renamed or changes meaning. Runs record it in run.json
#: (``layout_version``); runs written before it existed have none and read as 1.
LAYOUT_VERSION = 2
#: The samples database's tables (``meta.schema_version``): 2 keeps the analysis in the
#: samples table, 1 had a separate ``analysis`` table (still read).
SCHEMA_VERSION = 2

RUN_JSON = "run.json"
DATABASE = "samples.duckdb"
#: Trained weights as a safetensors state dict: data only, never code.
WEIGHTS = "model.safetensors"
#: Layout 1's weights: a torch pickle (a state dict, or a whole pickled module for create_run runs).
LEGACY_WEIGHTS = "model.pt"
LATENT = "latent.npy"
#: a no-code integration's arrays (from_arrays, from_dataframe), .npy per subset: data, never code
ARRAYS = "arrays"
#: ... its index of subsets, keys and dtypes, and one file per (subset, key)
ARRAYS_INDEX = "index.json"
ARRAYS_FILE = "{subset}.{key}.npy"
GRADCAM = "heatmaps_gradcam.npy"
HEATMAP_CACHE = "heatmaps"  # on-demand heatmaps, one .npy per (method, sample, target):
HEATMAP_CACHE_FILE = "{method}-{sample}-{target}.npy"
#: tags and saved selections: the user's decisions, kept apart from the analysis (re-analysing keeps them)
ANNOTATIONS = "annotations"
#: ... in it, one file per tag (its sample ids) and one per saved selection (ids and meta)
ANNOTATION_TAGS = "tags"
ANNOTATION_SELECTIONS = "selections"
CHECKPOINT = "checkpoint.pt"  # in the hidden .<name>.partial folder of an unfinished training
#: ``analyze``'s (N, C) logits, memory-mapped in its scratch folder beside the run while it runs (not kept)
SCRATCH_LOGITS = "logits.npy"
#: The latent kNN graph written by analyze: (N, k) int32 neighbour rows, nearest first, self excluded ...
NEIGHBOR_ROWS = "knn_rows.npy"
#: ... and their (N, k) float32 cosine distances (1 - similarity).
NEIGHBOR_DISTANCES = "knn_distances.npy"
#: The approximate engine's faiss IVF index, only above the exact threshold, as three files
#: (samplescope/analysis/ivf_file.py): the index without its lists (faiss's format) ...
NEIGHBOR_IVF = "knn_ivf.faiss"
#: ... its lists' sizes, (nlist,) int64 ...
NEIGHBOR_IVF_SIZES = "knn_ivf_sizes.npy"
#: ... and the lists themselves, each list's vectors then its ids, memory-mapped when read.
NEIGHBOR_IVF_LISTS = "knn_ivf_lists.bin"
#: The same index as one faiss file, lists inline: what a Ray-run ``analyze`` writes (its workers
#: are sent the index whole) and what runs analysed before the three files have.
NEIGHBOR_INDEX = "knn_index.faiss"
#: A large run's map overview, (M,) int64 sample ids, sorted (store/map_queries.overview_ids): made
#: by ``analyze`` with the server's default budget (run.json says which), so ``serve`` need not.
MAP_OVERVIEW = "map_overview.npy"
#: A large run's map index (store/map_index.py), a folder made by ``analyze`` beside the overview:
#: placed samples' ids and positions in grid-cell order, and each cell's first position (its
#: grid and extent are in run.json), so ``serve`` reads it rather than sorting 10M positions.
MAP_INDEX = "map_index"
MAP_INDEX_PARTS = ("ids.npy", "x.npy", "y.npy", "offsets.npy")
#: ... and, in the same folder, the columns every viewport carries (the server's MAP_COLUMNS),
#: each coded as the map payload carries it (server/coding.py), in sample_id order: one file a
#: column, ``column-<name>.npy``; how each is coded is in run.json (``map_index.columns``).
MAP_INDEX_COLUMN = "column-{}.npy"
