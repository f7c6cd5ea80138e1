"""Re-ordering a stream of rows larger than memory: a bucket sort through local spill files.

Tables keyed by a column are loaded fastest in key order (InnoDB appends to its clustered index
instead of splitting pages all over it; at millions of rows in a small buffer pool the difference
is several times the load). A stream that arrives in another order (customers in file order, scored
rows in customer order) goes through :func:`bucket_sorted`: each arriving chunk is split by bucket
(a key range) and appended to that bucket's file, then the buckets are read back one at a time and
sorted. Memory: about one chunk plus one bucket; disk: one copy of the stream, removed as it is read.
"""

from __future__ import annotations

import os
import pickle
import tempfile
from collections.abc import Callable, Iterable, Iterator

import numpy as np
import pandas as pd


def bucket_sorted(chunks: Iterable[pd.DataFrame], bucket_of: Callable[[pd.DataFrame], np.ndarray], buckets: int,
                  sort_by: list[str], prefix: str = "churn-spill-") -> Iterator[pd.DataFrame]:
    """The rows of ``chunks`` sorted by ``sort_by``, one bucket per yielded frame (index reset).

    ``bucket_of(chunk)`` gives each row's bucket in ``0..buckets-1``, and every key of bucket ``b``
    must sort before every key of bucket ``b + 1`` (contiguous key ranges). Empty buckets are skipped.
    """
    with tempfile.TemporaryDirectory(prefix=prefix) as folder:
        paths = [os.path.join(folder, f"{b:06d}.pickle") for b in range(max(1, buckets))]
        for chunk in chunks:
            if not len(chunk):
                continue
            bucket = np.asarray(bucket_of(chunk))
            if bucket.min() < 0 or bucket.max() >= len(paths):
                raise ValueError(f"bucket outside 0..{len(paths) - 1} for the rows being re-ordered")
            for b in np.unique(bucket):
                with open(paths[b], "ab") as spill:
                    pickle.dump(chunk[bucket == b], spill, protocol=pickle.HIGHEST_PROTOCOL)
        for path in paths:
            if not os.path.exists(path):
                continue
            pieces = []
            with open(path, "rb") as spill:
                while True:
                    try:
                        pieces.append(pickle.load(spill))  # noqa: S301 - our own spill file, written above
                    except EOFError:
                        break
            os.unlink(path)
            yield pd.concat(pieces, ignore_index=True).sort_values(sort_by, kind="stable").reset_index(drop=True)


def range_bounds(sample: np.ndarray, buckets: int) -> np.ndarray:
    """``buckets - 1`` boundaries splitting the sorted ``sample`` of keys into equal parts: bucket of a
    key = ``np.searchsorted(bounds, key, side="right")``. Fewer (and fewer buckets) if keys repeat."""
    if buckets <= 1 or not len(sample):
        return sample[:0]
    ordered = np.sort(sample)
    cuts = ordered[(np.arange(1, buckets) * len(ordered)) // buckets]
    return np.unique(cuts)
