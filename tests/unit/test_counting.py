"""Token estimates before a call: media by Gemini's count, text calibrated by its usage."""

from gemini_tasks.media.refs import MediaRef
from gemini_tasks.worker.counting import RATIO_BOUNDS, calibrated, estimate, media_identity

VIDEO = MediaRef("video", "video/mp4", 1000, "a" * 64)


def test_text_that_gemini_counts_higher_raises_the_ratio_towards_its_count():
    ratio = 1.0
    for _ in range(30):  # a language the estimate counts at a third of Gemini's count
        ratio = calibrated(ratio, estimated=100, counted=300)
    assert 2.9 < ratio <= 3.0
    assert estimate(100, ratio, [258]) > 258 + 290


def test_one_odd_answer_moves_the_ratio_only_so_far_and_never_past_its_bounds():
    assert calibrated(1.0, estimated=10, counted=10_000) <= RATIO_BOUNDS[1]
    assert calibrated(1.0, estimated=100, counted=1) >= RATIO_BOUNDS[0]
    assert 1.0 < calibrated(1.0, estimated=100, counted=200) < 1.5


def test_nothing_to_learn_from_an_answer_without_text_tokens():
    assert calibrated(1.5, estimated=0, counted=50) == 1.5
    assert calibrated(1.5, estimated=50, counted=0) == 1.5


def test_a_media_part_is_counted_per_content_frame_rate_and_resolution():
    clipped = MediaRef("video", "video/mp4", 1000, "a" * 64, video_metadata={"fps": 5})
    other = MediaRef("video", "video/mp4", 1000, "b" * 64)
    names = {
        media_identity(VIDEO),
        media_identity(clipped),
        media_identity(other),
        media_identity(VIDEO, "MEDIA_RESOLUTION_LOW"),
    }
    assert len(names) == 4
    assert media_identity(VIDEO) == media_identity(MediaRef("video", "video/mpeg", 9, "a" * 64))


def test_an_estimate_is_never_below_one_token():
    assert estimate(0, 1.0, []) == 1
