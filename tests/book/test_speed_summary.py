from dcanalysis.book.speed_summary import RESULTS, load_result, speed_summary
from dcanalysis.evaluation.paper import load_paper
from dcanalysis.paths import RESULTS_DIR


def test_every_result_chapter_10_reads_is_committed():
    missing = [name for name in RESULTS.values() if not (RESULTS_DIR / name).is_file()]
    assert not missing, missing


def test_the_summary_lines_carry_the_committed_measurements():
    versus, recheck, capped, peer = (load_result(k) for k in ("versus", "recheck", "capped", "peer"))
    throughput = load_result("throughput")
    fair = load_result("fair")
    lines = speed_summary(bench=load_result("bench"), fair=fair, versus=versus, recheck=recheck,
                          throughput=throughput, peer=peer, capped=capped, paper=load_paper())
    assert len(lines) == 7
    # the official loop at its best batch first, per dataset, then its default batch, from the one run
    for line, (name, r) in zip(lines, fair["datasets"].items()):
        assert line.startswith(name.replace("_", "-"))
        assert line.index(f"**{r['speedup']:.0f}x**") < line.index(f"{r['speedup_default_batch']:.0f}x against its default")
        assert f"{1e3 * r['official']['seconds_per_image']:,.0f} ms with its batch raised" in line
    lines = lines[2:]
    assert f"{recheck['datasets']['fashion_mnist']['speedup']:.0f}x" in lines[0]
    assert f"{versus['datasets']['mnist']['speedup']:.0f}x" in lines[0]
    assert f"{capped['models'][0]['weights_gib']:.1f} GiB" in lines[3]
    assert f"{load_paper()['pets_adaptive_schedule']['seconds_per_image']} s" in lines[2]
    # the loop at its best batch first, then at its default of 32, both from the one run
    official = min(r["seconds_per_image"] for r in peer["end_to_end"] if r.get("peer"))
    default = [r["seconds_per_image"] for r in peer["end_to_end"] if r.get("peer") and r["batch"] == 32][0]
    ours = min(r["seconds_per_image"] for r in peer["end_to_end"] if not r.get("peer"))
    assert official < default
    assert lines[2].index(f"({official / ours:.2f}x less wall time") < lines[2].index(f"{default / ours:.2f}x)")
    bare = [r for r in throughput["datasets"]["fashion_mnist"]["throughput"]
            if r["task"] == "bare forward" and r["variant"] == "compiled"][0]
    assert f"{bare['evals_per_s']:,.0f} (batch" in lines[1]


def test_a_refilled_run_says_how_long_its_loop_waited_for_the_gpu_and_older_runs_say_nothing():
    from dcanalysis.book.speed_summary import waiting

    row = {"waited_seconds": 0.04, "seconds_per_image": 0.002, "images": 4000}
    assert waiting(row) == "; its loop waited 0.0 s of 8.0 s for the GPU"
    assert waiting({"seconds_per_image": 0.002, "images": 4000}) == ""
    row.update(calls=100, host_seconds={"admit": 0.5, "launch": 1.0, "decide": 0.25})
    assert waiting(row).endswith("for the GPU (host per call: admit 5.0 ms, launch 10.0 ms, decide 2.5 ms)")
    row.update(call_graphs=True, host_seconds={"admit": 0.5, "launch": 0.2, "decide": 0.25, "graph_capture": 0.15})
    assert waiting(row).endswith("launch 2.0 ms, decide 2.5 ms; the calls were CUDA graphs, captured in 0.15 s)")
