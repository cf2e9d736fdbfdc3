"""Chapter 10's results and summary: the committed benchmark results it reads (``RESULTS``), and its sentences, each
built from them (so the text cannot drift from the measurements it reports)."""
from __future__ import annotations

import json

from ..bench.families import FAMILIES
from ..paths import RESULTS_DIR

# what chapter 10 reads, under data/results; the job that made each is in dcanalysis/bench/README.md
RESULTS = {
    "bench": "bench_h100.json",  # python -m dcanalysis.bench (data/jobs/bench_h100.sh)
    "probe": "probes/probe2_variants_h100.json",  # python -m dcanalysis.bench --probe
    "pets": "bench_pets_h100.json",  # --pets-only --share-prefix --images-per-call 4
    "fair": "speed/versus_official_h200_h_both.json",  # versus_official, the official loop at both batches, refilled test
    "versus": "speed/versus_official_h200_b.json",  # python -m dcanalysis.bench.versus_official, both lab models
    "recheck": "speed/versus_official_h200_c.json",  # Fashion-MNIST again, the official loop warmed up first
    "throughput": "speed/versus_official_h200_a.json",  # the same job with --throughput
    "capped": "families/bench_families_h200_fp8_24gib.json",  # bench --families flux-schnell-1024 --memory-cap-gib 24
    "compile_cold": "speed/compile_and_peer_h200_compile_cold.json",  # bench --sweep, inductor's cache empty
    "compile_warm": "speed/compile_and_peer_h200_compile_warm.json",  # the same, a second process reading that cache
    "peer": "speed/bench_pets_peer_h100.json",  # bench --pets-only --peer --share-prefix (the loop at both batches)
}


def load_result(name: str) -> dict:
    """One of ``RESULTS``, parsed."""
    return json.loads((RESULTS_DIR / RESULTS[name]).read_text())


def _row(rows: list[dict], **match) -> dict:
    for r in rows:
        if all(r.get(k) == v for k, v in match.items()):
            return r
    raise KeyError(f"no row with {match} in the results")


def speed_summary(*, bench: dict, fair: dict, versus: dict, recheck: dict, throughput: dict, peer: dict,
                  capped: dict, paper: dict) -> list[str]:
    """The lines at the top of chapter 10: one per lab dataset from ``fair`` (``versus_sentences``), then five.

    bench : ``python -m dcanalysis.bench.bench`` JSON (SD-2 rows and the Pets schedule end to end); fair : a
    ``versus_official`` JSON that timed the official loop at both batches and the refilled test; versus /
    recheck : ``versus_official`` JSONs (both datasets; Fashion-MNIST with the official loop warmed up);
    throughput : a ``versus_official --throughput`` JSON; peer : a ``bench --pets-only --peer`` JSON (the official loop and ours in one run); capped :
    a ``bench --families ... --memory-cap-gib`` JSON; paper : ``evaluation.paper.load_paper()``.
    """
    fm, mn, warm = versus["datasets"]["fashion_mnist"], versus["datasets"]["mnist"], recheck["datasets"]["fashion_mnist"]
    lines = versus_sentences(fair) + [
        f"The earlier runs timed the official loop at its batch of 32 only: there, on the Fashion-MNIST lab model "
        f"the sequential test, every image sharing each network call in lockstep, classified in {1e3 * warm['dcanalysis']['seconds_per_image']:.2f} ms per image at "
        f"{100 * warm['dcanalysis']['accuracy']:.1f} %, the official algorithm's loop in "
        f"{1e3 * warm['official']['seconds_per_image']:,.0f} ms at {100 * warm['official_decisions']['accuracy']:.1f} %: "
        f"{warm['speedup']:.0f}x ({fm['speedup']:.0f}x and {mn['speedup']:.0f}x on Fashion-MNIST and MNIST in the "
        f"first run, whose official timing includes its warm-up image; {versus['device']})."]
    tp = throughput["datasets"]["fashion_mnist"]["throughput"]
    bare = _row(tp, task="bare forward", variant="compiled")
    # the profiled row (with the kernel time): the overlapped calls where a run timed both ways
    ours = [r for r in tp if r.get("variant") == "compiled" and r.get("images_per_call") == 256
            and "kernel_seconds_per_call" in r][0]
    lines.append(f"On that small model the exhaustive classifier (every image's rows known up front) runs at {ours['evals_per_s']:,.0f} evaluations/s, "
                 f"{100 * ours['evals_per_s'] / bare['evals_per_s']:.0f} % of the bare compiled network's "
                 f"{bare['evals_per_s']:,.0f} (batch {bare['batch']:,}), with the GPU busy "
                 f"{100 * ours['kernel_seconds_per_call'] / ours['wall_seconds_per_call']:.0f} % of the time "
                 f"({throughput['device']}).")
    unet = _row(bench["models"], model="sd2-unet-512", variant="compiled")
    pets = [r for r in bench["end_to_end"] if r["task"] == "Pets schedule, SD-2-base"][0]
    ref = paper["pets_adaptive_schedule"]
    lines.append(f"On the 512 px SD-2 UNet (random weights) the compiled engine reaches {100 * unet['ratio_to_matmul']:.0f} % "
                 f"of the same run's sustained bf16 matmul; the Pets schedule takes {pets['seconds_per_image']:.1f} s "
                 f"per image on an {bench['device']} (the paper: {ref['seconds_per_image']} s on an {ref['gpu']}). "
                 + peer_sentence(peer))
    flux = capped["models"][0]
    published = FAMILIES[flux["model"]][1]
    lines.append(f"Flux.1-schnell's {published:g} B-parameter transformer fits a {flux['memory_cap_gib']:g} GiB card with "
                 f"8-bit linear weights: {flux['weights_gib']:.1f} GiB instead of {flux['weights_bf16_gib']:.1f}, "
                 f"peak {flux['peak_mem_gib']:.1f} GiB allocated ({flux['peak_reserved_gib']:.1f} reserved under the "
                 f"cap) at batch {flux['batch']}, {flux['evals_per_s']:.1f} evaluations/s, output "
                 f"{100 * flux['rel_err_vs_bf16']:.1f} % from bf16's (random weights: speed and memory only).")
    lines.append(f"Compilation is paid once per run: {unet['first_call_s']:.0f} s for the 512 px UNet's first batch, "
                 "which the rows above leave out; the sections below show where the remaining time goes.")
    return lines


def versus_sentences(versus: dict) -> list[str]:
    """The official algorithm against dcanalysis in one run (a ``versus_official`` JSON that timed the official loop
    at its default batch and at one call per stage): the fair ratio first, per dataset, then how close the refilled
    sequential test runs to the compiled network."""
    lines = []
    for name, r in versus["datasets"].items():
        if "official_default" not in r:
            continue
        ours, best, default = r["dcanalysis"], r["official"], r["official_default"]
        refill = min(r["refill"], key=lambda row: row["seconds_per_image"])
        lines.append(
            f"{name.replace('_', '-')}: dcanalysis's sequential test, {refill['in_flight']:,} images in flight, "
            f"classifies in {1e3 * ours['seconds_per_image']:.2f} ms per image at {100 * ours['accuracy']:.1f} %; the "
            f"official algorithm ({100 * r['official_decisions']['accuracy']:.1f} %) takes "
            f"{1e3 * best['seconds_per_image']:,.0f} ms with its batch raised to one network call per stage "
            f"({best['batch']:,} rows) and {1e3 * default['seconds_per_image']:,.0f} ms at its default batch of 32: "
            f"**{r['speedup']:.0f}x** less wall time against the official loop at its best, {r['speedup_default_batch']:.0f}x "
            f"against its default; the refilled test runs at {100 * refill['of_network']:.0f} % of the compiled "
            f"network's evaluations/s at {refill['rows']:,} rows a call (every image in lockstep: "
            f"{100 * r['lockstep']['of_network']:.0f} %){waiting(refill)} ({versus['device']}).")
    return lines


def waiting(refill: dict) -> str:
    """How long a refilled run's loop waited for the GPU, of its wall time (near zero when the host set the pace),
    and, where the run recorded it, where its host time went per network call. Empty for runs that recorded
    neither."""
    if "waited_seconds" not in refill:
        return ""
    wall = refill["seconds_per_image"] * refill["images"]
    out = f"; its loop waited {refill['waited_seconds']:.1f} s of {wall:.1f} s for the GPU"
    if "host_seconds" in refill:
        split = dict(refill["host_seconds"])
        capture = split.pop("graph_capture", 0.0)  # part of launch, paid once per padded size
        split.pop("admit_waiting_for_workers", None)  # part of admit
        out += " (host per call: " + ", ".join(f"{name} {1e3 * s / refill['calls']:.1f} ms" for name, s in split.items())
        out += (f"; the calls were CUDA graphs, captured in {capture:.2f} s)" if refill.get("call_graphs") else ")")
    return out


def peer_sentence(peer: dict) -> str:
    """The Pets schedule against the official loop re-stated, measured in one run on one model and image: against
    the loop at its best batch first, then at its default of 32 where the run timed both."""
    rows = peer["end_to_end"]
    peers = sorted((r for r in rows if r.get("peer")), key=lambda r: r["seconds_per_image"])
    official, default = peers[0], [r for r in peers if r.get("batch", 32) == 32]
    best = min((r for r in rows if not r.get("peer")), key=lambda r: r["seconds_per_image"])
    ratio = official["seconds_per_image"] / best["seconds_per_image"]
    text = (f"In one run on an {peer['device']}, the official loop re-stated took {official['seconds_per_image']:.2f} s "
            f"per Pets image at batch {official.get('batch', 32):,} and dcanalysis {best['seconds_per_image']:.2f} s "
            f"({ratio:.2f}x less wall time")
    if default and default[0] is not official:
        text += (f"; {default[0]['seconds_per_image']:.2f} s at the loop's default batch of 32, "
                 f"{default[0]['seconds_per_image'] / best['seconds_per_image']:.2f}x")
    return text + ")."


def throughput_frame(rows: list[dict]) -> "pandas.DataFrame":  # noqa: F821
    """``versus_official --throughput`` rows (the bare network and ``classify_batch``, eager and compiled) as chapter
    10 shows them: one row per (task, variant), "-" where a measure does not apply (a bare forward has no images per
    call; the GPU's busy share was measured on the largest calls only)."""
    import pandas as pd

    def busy(r):
        if not r.get("kernel_seconds_per_call") or not r.get("wall_seconds_per_call"):
            return "-"
        return f"{100 * r['kernel_seconds_per_call'] / r['wall_seconds_per_call']:.0f}"

    return pd.DataFrame([{"task": r["task"].replace(", exhaustive 100 trials x 10 classes", ""),
                          "variant": r["variant"],
                          "images / call": f"{r['images_per_call']:,}" if r.get("images_per_call") else "-",
                          "evaluations/s": f"{r['evals_per_s']:,.0f}",
                          "% of the matmul": f"{100 * r['ratio_to_matmul']:.1f}", "GPU busy (%)": busy(r)}
                         for r in rows]).set_index(["task", "variant"])
