"""smallpond's test data `tests/data/mock_urls/` (urls*.tsv, urls*.parquet), generated the way
smallpond's tests/datagen.py does it, from a fixed seed: 10 files of 100 rows of each kind."""

from __future__ import annotations

import base64
import os
import random
import string


def _random_string(rng: random.Random, length: int) -> str:
    return "".join(rng.choices(string.ascii_letters + string.digits, k=length))


def _random_url(rng: random.Random) -> str:
    path = _random_string(rng, rng.randint(10, 20))
    return f"com.{rng.randint(10000, 999999)}.{rng.randint(100, 9999)}/{path}.html"


def write_mock_urls(root: str, num_files: int = 10, rows_per_file: int = 100, seed: int = 23) -> str:
    """Write `<root>/tests/data/mock_urls/` and return that folder."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = random.Random(seed)
    folder = os.path.join(root, "tests", "data", "mock_urls")
    os.makedirs(folder, exist_ok=True)
    for i in range(num_files):
        with open(os.path.join(folder, f"urls{i}.tsv"), "w") as handle:
            for _ in range(rows_per_file):
                content = base64.b64encode(_random_string(rng, rng.randint(50, 100)).encode()).decode()
                handle.write(f"{_random_url(rng)}\t{content}\n")
        urls = [_random_url(rng) for _ in range(rows_per_file)]
        table = pa.table({"host": [u.split("/")[0] for u in urls], "url": urls})
        pq.write_table(table, os.path.join(folder, f"urls{i}.parquet"))
    return folder
