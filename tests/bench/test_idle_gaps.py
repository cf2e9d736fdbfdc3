from dcanalysis.bench.idle_gaps import attribute, idle_intervals, innermost


def test_idle_intervals_merge_overlapping_kernels_and_drop_short_gaps():
    busy = [(0, 10), (5, 20), (21, 30), (100, 110), (200, 250), (240, 260)]
    assert idle_intervals(busy, min_us=20) == [(30, 100), (110, 200)]  # the 1 us gap at 20-21 is launch latency
    assert idle_intervals([], min_us=1) == [] and idle_intervals([(0, 5)], min_us=1) == []


def test_each_gap_goes_to_the_innermost_host_event_at_its_middle():
    host = [("classify_batch", 0, 1000), ("aten::copy_", 20, 90), ("cudaStreamSynchronize", 40, 80),
            ("aten::stack", 150, 190)]
    assert innermost(host, 60) == "cudaStreamSynchronize" and innermost(host, 120) == "classify_batch"
    assert innermost(host, 2000) == "no host event"
    rows = attribute([(30, 100), (110, 200), (45, 75)], host)
    assert [(r["host"], r["gaps"], r["idle_us"], r["longest_us"]) for r in rows] == [
        ("cudaStreamSynchronize", 2, 100, 70), ("aten::stack", 1, 90, 90)]
