import json

from dcanalysis.book.speed_summary import speed_summary
from dcanalysis.evaluation.paper import load_paper
from dcanalysis.paths import RESULTS_DIR


def load(name):
    return json.loads((RESULTS_DIR / name).read_text())


def test_the_summary_lines_carry_the_committed_measurements():
    versus, recheck = load("speed/versus_official_h200_b.json"), load("speed/versus_official_h200_c.json")
    capped = load("families/bench_families_h200_fp8_24gib.json")
    lines = speed_summary(bench=load("bench_h100.json"), versus=versus, recheck=recheck,
                          throughput=load("speed/versus_official_h200_a.json"), capped=capped, paper=load_paper())
    assert len(lines) == 5
    assert f"{recheck['datasets']['fashion_mnist']['speedup']:.0f}x" in lines[0]
    assert f"{versus['datasets']['mnist']['speedup']:.0f}x" in lines[0]
    assert f"{capped['models'][0]['weights_gib']:.1f} GiB" in lines[3]
    assert f"{load_paper()['pets_adaptive_schedule']['seconds_per_image']} s" in lines[2]
