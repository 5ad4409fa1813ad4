"""benchmarks/level_changes.py: undoing one-step symbol changes, and the change statistics."""

import numpy as np

from benchmarks.level_changes import change_stats, freeze_small_changes


def test_one_step_changes_are_undone_through_time_but_not_across_chunks():
    s = np.array([3, 4, 5, 5, 7, 8, 2, 3], np.uint8).reshape(8, 1, 1, 1)  # (T', H', W', C)
    out = freeze_small_changes(s, chunk=4)
    # 3 -> 4 is frozen at 3, then 5 is two steps from the frozen 3 and kept; frame 4 starts a chunk
    # (kept: 7); 7 -> 8 is frozen; 8 -> 2 is a big change (kept), 2 -> 3 frozen.
    assert out.reshape(-1).tolist() == [3, 3, 5, 5, 7, 7, 2, 2]
    assert s.reshape(-1).tolist() == [3, 4, 5, 5, 7, 8, 2, 3]  # the input is not modified


def test_change_stats_count_inside_chunks_only():
    s = np.array([0, 1, 1, 4, 9, 9], np.uint8).reshape(6, 1, 1, 1)
    stats = change_stats(s, chunk=3)  # pairs (0,1), (1,2) in chunk 0; (3,4), (4,5) in chunk 1
    assert stats["changed"] == 0.5  # 0->1 and 4->9 change; 1->1 and 9->9 do not
    assert stats["single_step_share_of_changes"] == 0.5
