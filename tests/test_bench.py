import json


def test_tiny_benchmark_writes_ratios_to_the_same_run_matmul(tmp_path):
    from dcanalysis import bench

    out = tmp_path / "bench.json"
    res = bench.main(["--tiny", "--batch", "2", "--no-end-to-end", "--out", str(out)])
    saved = json.loads(out.read_text())
    assert saved["matmul_tflops"] > 0 and saved["note"].startswith("random weights")
    names = {r["model"] for r in saved["models"]}
    assert names == {"sd2-unet-512", "sd2-unet-256", "dit-xl-2-256"}
    for r in res["models"]:
        assert abs(r["ratio_to_matmul"] - r["tflops"] / saved["matmul_tflops"]) < 1e-9 and r["gflop_per_eval"] > 0
