"""smallpond.common: the sizes and defaults smallpond programs import (`from smallpond.common import GB`)."""

from __future__ import annotations

import sys

KB = 1024
MB = 1024 * KB
GB = 1024 * MB
TB = 1024 * GB

DEFAULT_MAX_RETRY_COUNT = 5
DEFAULT_MAX_FAIL_COUNT = 3
MAX_ROW_GROUP_SIZE = 10 * 1024 * 1024
MAX_ROW_GROUP_BYTES = 2 * GB
MAX_NUM_ROW_GROUPS = 256
MAX_PARQUET_FILE_BYTES = 8 * GB
DEFAULT_ROW_GROUP_SIZE = 122880
DEFAULT_ROW_GROUP_BYTES = DEFAULT_ROW_GROUP_SIZE * 4 * KB
DEFAULT_BATCH_SIZE = 122880
RAND_SEED_BYTE_LEN = 128
DATA_PARTITION_COLUMN_NAME = "__data_partition__"
PARQUET_METADATA_KEY_PREFIX = "SMALLPOND:"
INPUT_VIEW_PREFIX = "__input"
GENERATED_COLUMNS = ("filename", "file_row_number")


def pytest_running() -> bool:
    return "pytest" in sys.modules


def next_power_of_two(x: int) -> int:
    """The smallest power of two >= x (1 for x <= 1); gray_sort_benchmark sizes its buckets with it."""
    return 1 if x <= 1 else 1 << (x - 1).bit_length()


def clamp_value(val: int, minval: int, maxval: int) -> int:
    return max(minval, min(val, maxval))


class SmallpondError(Exception):
    """Base class for all errors in smallpond."""


class InjectedFault(SmallpondError):
    pass


class OutOfMemory(SmallpondError):
    pass


class NonzeroExitCode(SmallpondError):
    pass
