"""Video discovery: the one search that training, tokenizing and evaluation share."""

import pytest

from mptvc_latents.store import find_sources
from mptvc_latents.video import FoundVideo, find_videos


@pytest.fixture
def tree(tmp_path):
    """``data/b.mp4``, ``data/sub/a.gif``, ``data/notes.txt`` and ``extra/c.MKV``, all empty."""
    for name in ("data/b.mp4", "data/sub/a.gif", "data/notes.txt", "extra/c.MKV"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"")
    return tmp_path


def test_folders_are_searched_recursively_for_video_suffixes_in_sorted_order(tree):
    search = find_videos([tree / "data"])
    assert search.videos == (
        FoundVideo(tree / "data/b.mp4", tree / "data"),
        FoundVideo(tree / "data/sub/a.gif", tree / "data"),
    )
    assert search.unmatched == ()


def test_files_globs_and_folders_keep_the_argument_order_and_each_file_once(tree):
    notes = tree / "data" / "notes.txt"  # named directly, a file counts whatever its suffix
    paths = find_videos([notes, str(tree / "extra" / "*.MKV"), tree / "data", tree / "data" / "b.mp4"]).paths
    assert paths == [notes, tree / "extra/c.MKV", tree / "data/b.mp4", tree / "data/sub/a.gif"]
    assert find_videos([str(tree / "**" / "*.gif")]).paths == [tree / "data/sub/a.gif"]


def test_an_argument_that_matches_nothing_is_an_error_unless_skipped(tree):
    with pytest.raises(ValueError, match="'.*nowhere' matches nothing: no such file or folder"):
        find_videos([tree / "data", tree / "nowhere"])
    with pytest.raises(ValueError, match="the pattern matches no file"):
        find_videos([str(tree / "*.webm")])
    (tree / "empty").mkdir()
    with pytest.raises(ValueError, match=r"the folder holds no video files \(.mp4"):
        find_videos([tree / "empty"])
    search = find_videos([tree / "nowhere", tree / "data"], skip_missing=True)
    assert search.paths == [tree / "data/b.mp4", tree / "data/sub/a.gif"]
    assert search.unmatched == ((str(tree / "nowhere"), "no such file or folder"),)


def test_nothing_found_at_all_is_an_error_that_names_every_argument(tree):
    with pytest.raises(ValueError, match="No video was found: .*nowhere.*no such file.*empty.*no video files"):
        (tree / "empty").mkdir()
        find_videos([tree / "nowhere", tree / "empty"], skip_missing=True)
    with pytest.raises(ValueError, match="No video sources were given"):
        find_videos([])


def test_store_sources_name_clips_relative_to_their_folder_argument(tree):
    sources, unmatched = find_sources([tree / "data", tree / "nowhere"])
    assert [s.path for s in sources] == [(tree / "data/b.mp4").resolve(), (tree / "data/sub/a.gif").resolve()]
    assert [s.key.rsplit("-", 1)[0] for s in sources] == ["b", "sub_a"]
    assert unmatched == [(str(tree / "nowhere"), "no such file or folder")]
