"""Former home of tinynet's worker threads, kept so that code written for it keeps working.

The threads are part of the engine now: :mod:`tinynet.engine.threads` (``tinynet.engine.set_num_threads``).
"""

from tinynet.engine.threads import num_threads, parallel_ranges, set_num_threads, split_range

__all__ = ["num_threads", "set_num_threads", "split_range", "parallel_ranges"]
