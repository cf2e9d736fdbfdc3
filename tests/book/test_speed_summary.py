import json

from dcanalysis.book.speed_summary import speed_summary
from dcanalysis.evaluation.paper import load_paper
from dcanalysis.paths import RESULTS_DIR


def load(name):
    return json.loads((RESULTS_DIR / name).read_text())


def test_the_summary_lines_carry_the_committed_measurements():
    versus, recheck = load("speed/versus_official_h200_b.json"), load("speed/versus_official_h200_c.json")
    capped = load("families/bench_families_h200_fp8_24gib.json")
    ceiling = load("speed/peer_and_ceiling_h200_throughput_ceiling.json")
    peer = load("speed/peer_and_ceiling_h200_bench_pets_peer.json")
    lines = speed_summary(bench=load("bench_h100.json"), versus=versus, recheck=recheck,
                          throughput=load("speed/versus_official_h200_a.json"), ceiling=ceiling, peer=peer,
                          capped=capped, paper=load_paper())
    assert len(lines) == 5
    assert f"{recheck['datasets']['fashion_mnist']['speedup']:.0f}x" in lines[0]
    assert f"{versus['datasets']['mnist']['speedup']:.0f}x" in lines[0]
    assert f"{capped['models'][0]['weights_gib']:.1f} GiB" in lines[3]
    assert f"{load_paper()['pets_adaptive_schedule']['seconds_per_image']} s" in lines[2]
    official, ours = peer["end_to_end"][0]["seconds_per_image"], peer["end_to_end"][1]["seconds_per_image"]
    assert f"({official / ours:.2f}x)" in lines[2]
    fused = [r for r in ceiling["datasets"]["fashion_mnist"]["ceiling"]["rows"] if r["ceiling"] == "perfectly fused"]
    assert f"{fused[-1]['evals_per_s']:,.0f} evaluations/s" in lines[1]
