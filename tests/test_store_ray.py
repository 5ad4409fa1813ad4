"""``tokenize(..., engine="ray")``: a local Ray with 2 CPUs, 2 actors, writes the same store as the
local engine, resumes (a second run skips the finished clips) and reports and skips a bad file."""

import shutil
import tempfile
from pathlib import Path

import pytest

ray = pytest.importorskip("ray")

from mptvc_latents.store import TokenStore, clip_key, tokenize  # noqa: E402
from mptvc_latents.video import read_video, write_video  # noqa: E402
from tests._tiny import SAMPLE  # noqa: E402
from tests.test_store import _assert_same_store  # noqa: E402

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_torch_thread")]


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("ray_store")


@pytest.fixture(scope="module")
def local_ray():
    # A short temp dir of its own: Ray's socket paths must stay under the 107-byte AF_UNIX limit.
    temp = tempfile.mkdtemp(prefix="ray", dir="/tmp" if Path("/tmp").is_dir() else None)
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("RAY_ADDRESS", raising=False)
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, _temp_dir=temp)
        try:
            yield
        finally:
            ray.shutdown()
            shutil.rmtree(temp, ignore_errors=True)


def test_ray_engine_equals_local_resumes_and_skips_bad_files(model, work, local_ray):
    folder = work / "videos"
    folder.mkdir()
    sample = read_video(SAMPLE, max_frames=16, start=14)
    for i in range(3):
        crop = sample.frames[:, 30 + 8 * i : 70 + 8 * i, 60 + 20 * i : 116 + 20 * i]  # 40x56: pads in h and w
        write_video(folder / f"clip{i}.mp4", crop, sample.fps)
    (folder / "bad.mp4").write_bytes(b"not a video at all")
    good = sorted(clip_key(p, folder) for p in folder.glob("clip*.mp4"))

    local = tokenize([folder], work / "local.zarr", model, progress=False)
    summary = tokenize([folder], work / "ray.zarr", model, workers=2, progress=False, engine="ray")
    assert sorted(summary.written) == sorted(local.written) == good and summary.frames == local.frames == 48
    assert summary.skipped == [] and summary.failed == local.failed
    ((bad, reason),) = summary.failed
    assert bad == str((folder / "bad.mp4").resolve()) and "could not be opened as a video" in reason
    _assert_same_store(work / "ray.zarr", work / "local.zarr")
    assert TokenStore.open(work / "ray.zarr", model).clips() == good  # the consolidated listing too

    again = tokenize([folder], work / "ray.zarr", model, workers=2, progress=False, engine="ray")
    assert again.written == [] and sorted(again.skipped) == good and [p for p, _ in again.failed] == [bad]
    _assert_same_store(work / "ray.zarr", work / "local.zarr")


def test_unknown_engine_is_refused(model, tmp_path):
    with pytest.raises(ValueError, match="engine must be 'local' or 'ray'"):
        tokenize([tmp_path], tmp_path / "s.zarr", model, engine="spark")
