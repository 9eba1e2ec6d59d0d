"""The LeRobot v3.0 dataset format, written down once: paths, defaults, features, schemas.

Everything here follows huggingface/lerobot ``src/lerobot/datasets/`` (``utils.py``,
``feature_utils.py``, ``io_utils.py``, ``dataset_metadata.py``), re-implemented without
LeRobot, ``datasets`` or pandas:

- a dataset root holds ``meta/info.json``, ``meta/stats.json``, ``meta/tasks.parquet``,
  ``meta/episodes/chunk-XXX/file-YYY.parquet``, ``data/chunk-XXX/file-YYY.parquet`` and
  ``videos/<video key>/chunk-XXX/file-YYY.mp4``; a chunk folder holds at most
  ``chunks_size`` (1000) files, a data file grows to about ``data_files_size_in_mb`` (100)
  and a video file to ``video_files_size_in_mb`` (200) before the next one starts;
- features are ``{dtype, shape, names[, info]}``: numeric dtypes are numpy names, cameras are
  ``video`` with shape ``(height, width, channels)``; every dataset also has the five default
  per-frame features ``timestamp`` (float32), ``frame_index``, ``episode_index``, ``index``,
  ``task_index`` (int64), added after the user's;
- in the data parquet a feature of shape ``(1,)`` is a scalar column and ``(D,)`` a
  ``fixed_size_list<D>`` column; the schema carries the Hugging Face ``datasets`` features
  (``huggingface`` metadata key) that ``datasets.Dataset.from_parquet`` would write;
- ``meta/tasks.parquet`` is what pandas writes for a frame indexed by ``task`` with one column
  ``task_index`` (the pandas metadata makes ``pd.read_parquet`` restore that index).

Only 1-D numeric features and RGB video features are supported (no ``image``, ``string`` or
multi-dimensional numeric features): that is what robot_brain exports.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from robot_brain.errors import UserError
from robot_brain.storage.files import read_json_file

CODEBASE_VERSION = "v3.0"
DEFAULT_CHUNK_SIZE = 1000
DEFAULT_DATA_FILE_SIZE_IN_MB = 100
DEFAULT_VIDEO_FILE_SIZE_IN_MB = 200
# LeRobot's default timestamp tolerance: a video frame further than this from its query is an error.
TIMESTAMP_TOLERANCE_S = 1e-4

INFO_PATH = "meta/info.json"
STATS_PATH = "meta/stats.json"
TASKS_PATH = "meta/tasks.parquet"
EPISODES_DIR = "meta/episodes"
CHUNK_FILE_PATTERN = "chunk-{chunk_index:03d}/file-{file_index:03d}"
EPISODES_PATH = EPISODES_DIR + "/" + CHUNK_FILE_PATTERN + ".parquet"
DATA_PATH = "data/" + CHUNK_FILE_PATTERN + ".parquet"
VIDEO_PATH = "videos/{video_key}/" + CHUNK_FILE_PATTERN + ".mp4"

# Present while an export is unfinished (robot_brain's, not LeRobot's): readers refuse the folder.
INCOMPLETE_MARKER = "INCOMPLETE.json"
STAGING_DIR = ".staging"

CAMERA_PREFIX = "observation.images."
DEFAULT_FEATURES: dict[str, dict[str, Any]] = {
    "timestamp": {"dtype": "float32", "shape": [1], "names": None},
    "frame_index": {"dtype": "int64", "shape": [1], "names": None},
    "episode_index": {"dtype": "int64", "shape": [1], "names": None},
    "index": {"dtype": "int64", "shape": [1], "names": None},
    "task_index": {"dtype": "int64", "shape": [1], "names": None},
}
NUMERIC_DTYPES = ("float32", "float64", "int8", "int16", "int32", "int64", "uint8", "bool")
VIDEO_NAMES = ["height", "width", "channels"]

Features = dict[str, dict[str, Any]]


class DatasetFormatError(UserError):
    """A LeRobot dataset is missing a file, unfinished, or its files disagree (one line naming what)."""


def camera_key(camera: str) -> str:
    """The feature key of a camera: ``observation.images.<camera>`` (a full key is returned unchanged)."""
    return camera if camera.startswith(CAMERA_PREFIX) else CAMERA_PREFIX + camera


def vector_feature(names: Sequence[str], dtype: str = "float32") -> dict[str, Any]:
    """A numeric per-frame feature with one value per name (e.g. joint names), in LeRobot's form."""
    return {"dtype": dtype, "shape": [len(names)], "names": list(names)}


def video_feature(height: int, width: int) -> dict[str, Any]:
    """An RGB camera stored as video, in LeRobot's form (``info`` is filled in when the video is written)."""
    return {"dtype": "video", "shape": [height, width, 3], "names": list(VIDEO_NAMES), "info": {"is_depth_map": False}}


def normalize_features(features: Mapping[str, Mapping[str, Any]]) -> Features:
    """Validated user features in canonical form (shape as a list of ints), without the default ones.

    Raises :class:`DatasetFormatError` for a name with ``/`` (LeRobot's rule: episode stats
    columns are ``stats/<feature>/<stat>``), a default feature name, an unsupported dtype, a
    non-1-D numeric shape, names that do not match the shape, or a video that is not
    ``(even height, even width, 3)``.
    """
    if not features:
        raise DatasetFormatError("expected at least one feature, found none")
    result: Features = {}
    for key, spec in features.items():
        if not isinstance(key, str) or not key or "/" in key:
            raise DatasetFormatError(f"expected feature names without '/', found {key!r}")
        if key in DEFAULT_FEATURES:
            raise DatasetFormatError(f"feature {key!r} is added by the format itself; choose another name")
        dtype = spec.get("dtype")
        shape = [int(v) for v in spec.get("shape", ())]
        names = spec.get("names")
        if dtype == "video":
            if len(shape) != 3 or shape[2] != 3 or shape[0] <= 0 or shape[1] <= 0:
                raise DatasetFormatError(f"feature {key!r}: expected a video shape (height, width, 3), found {shape}")
            if shape[0] % 2 or shape[1] % 2:
                raise DatasetFormatError(
                    f"feature {key!r}: yuv420p video needs an even height and width, found {shape}"
                )
            info = dict(spec.get("info") or {})
            info.setdefault("is_depth_map", False)
            result[key] = {"dtype": "video", "shape": shape, "names": list(names or VIDEO_NAMES), "info": info}
            continue
        if dtype not in NUMERIC_DTYPES:
            raise DatasetFormatError(
                f"feature {key!r}: expected dtype 'video' or one of {list(NUMERIC_DTYPES)}, found {dtype!r}"
            )
        if len(shape) != 1 or shape[0] <= 0:
            raise DatasetFormatError(f"feature {key!r}: expected a 1-D shape such as [7], found {shape}")
        if names is not None:
            names = list(names)
            if len(names) != shape[0] or not all(isinstance(n, str) for n in names):
                raise DatasetFormatError(f"feature {key!r}: expected {shape[0]} names (strings), found {names}")
        entry: dict[str, Any] = {"dtype": dtype, "shape": shape, "names": names}
        if spec.get("info"):
            entry["info"] = dict(spec["info"])
        result[key] = entry
    return result


def all_features(user_features: Features) -> Features:
    """User features followed by the five default per-frame features, as ``info.json`` lists them."""
    return {**user_features, **{k: dict(v) for k, v in DEFAULT_FEATURES.items()}}


def video_keys(features: Mapping[str, Mapping[str, Any]]) -> list[str]:
    return [key for key, spec in features.items() if spec.get("dtype") == "video"]


def data_keys(features: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """Features stored in the data parquet (everything but videos), in feature order."""
    return [key for key, spec in features.items() if spec.get("dtype") != "video"]


def _arrow_value_type(dtype: str) -> pa.DataType:
    return pa.bool_() if dtype == "bool" else pa.from_numpy_dtype(np.dtype(dtype))


def arrow_type(spec: Mapping[str, Any]) -> pa.DataType:
    """Scalar column for shape ``(1,)``, ``fixed_size_list<D>`` for ``(D,)`` (``datasets`` Value / List)."""
    value_type = _arrow_value_type(spec["dtype"])
    shape = list(spec["shape"])
    return value_type if shape == [1] else pa.list_(value_type, shape[0])


def _hf_feature(spec: Mapping[str, Any]) -> dict[str, Any]:
    value = {"dtype": spec["dtype"], "_type": "Value"}
    shape = list(spec["shape"])
    return value if shape == [1] else {"feature": value, "length": shape[0], "_type": "List"}


def data_schema(features: Mapping[str, Mapping[str, Any]]) -> pa.Schema:
    """The data parquet schema: non-video features in order, with the ``datasets`` features metadata."""
    keys = data_keys(features)
    hf_metadata = {"info": {"features": {key: _hf_feature(features[key]) for key in keys}}}
    fields = [pa.field(key, arrow_type(features[key])) for key in keys]
    return pa.schema(fields, metadata={"huggingface": json.dumps(hf_metadata)})


def column_to_numpy(column: pa.ChunkedArray | pa.Array, spec: Mapping[str, Any]) -> np.ndarray:
    """A data parquet column as ``(N, *shape)`` (scalar features as ``(N, 1)``) in the feature's dtype."""
    array = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    dtype = np.dtype(spec["dtype"])
    shape = list(spec["shape"])
    if pa.types.is_fixed_size_list(array.type):
        flat = array.flatten().to_numpy(zero_copy_only=False)
        return flat.astype(dtype, copy=False).reshape(len(array), *shape)
    values = array.to_numpy(zero_copy_only=False).astype(dtype, copy=False)
    return values.reshape(len(array), *shape)


def next_chunk_file(chunk_index: int, file_index: int, chunks_size: int) -> tuple[int, int]:
    """The file after ``(chunk, file)``: a new chunk folder every ``chunks_size`` files."""
    if file_index == chunks_size - 1:
        return chunk_index + 1, 0
    return chunk_index, file_index + 1


def json_bytes(data: Any) -> bytes:
    """JSON the way LeRobot writes its metadata files (indent 4, UTF-8 kept as is)."""
    return json.dumps(data, indent=4, ensure_ascii=False).encode("utf-8")


def read_json(path: Path) -> Any:
    """A dataset's JSON file; missing, unreadable or corrupt is a :class:`DatasetFormatError` naming it."""
    return read_json_file(path, what="a JSON file", error=DatasetFormatError)


def tasks_table(tasks: Sequence[str]) -> pa.Table:
    """``meta/tasks.parquet`` content: column ``task_index`` then the ``task`` index, with pandas metadata."""
    pandas_metadata = {
        "index_columns": ["task"],
        "column_indexes": [
            {
                "name": None,
                "field_name": None,
                "pandas_type": "unicode",
                "numpy_type": "object",
                "metadata": {"encoding": "UTF-8"},
            }
        ],
        "columns": [
            {
                "name": "task_index",
                "field_name": "task_index",
                "pandas_type": "int64",
                "numpy_type": "int64",
                "metadata": None,
            },
            {"name": "task", "field_name": "task", "pandas_type": "unicode", "numpy_type": "object", "metadata": None},
        ],
        "attributes": {},
        "creator": {"library": "pyarrow", "version": pa.__version__},
        # The pandas release whose to_parquet output this mirrors (checked with pandas 2.3.3 + pyarrow 26).
        "pandas_version": "2.3.3",
    }
    schema = pa.schema(
        [pa.field("task_index", pa.int64()), pa.field("task", pa.string())],
        metadata={"pandas": json.dumps(pandas_metadata)},
    )
    return pa.table({"task_index": np.arange(len(tasks), dtype=np.int64), "task": list(tasks)}, schema=schema)


def read_parquet(path: Path, columns: Sequence[str] | None = None) -> pa.Table:
    """A parquet file, or :class:`DatasetFormatError` naming it when it is missing or unreadable."""
    if not path.is_file():
        raise DatasetFormatError(f"{path}: expected a parquet file, found none")
    try:
        return pq.read_table(path, columns=list(columns) if columns is not None else None)
    except (OSError, pa.ArrowException) as error:
        raise DatasetFormatError(f"{path}: not a readable parquet file: {error}") from error
