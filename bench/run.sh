#!/usr/bin/env bash
# `make bench`: runs the benchmarks in bench/ (release builds) and writes bench/results.json
# and docs/BENCHMARKS.md. Each figure is reported beside a ceiling or baseline measured in
# the same run, never as a bare time. Not part of `make test`.
set -euo pipefail
cd "$(dirname "$0")/.."

bin_dir=$(swift build -c release --show-bin-path)
mkdir -p docs
results=bench/results.json

echo "claims: queue depth 1,000 vs 100,000 ..." >&2
"$bin_dir/claims-bench" > bench/claims.json
echo "compose: templates rendered and messages composed on one core ..." >&2
"$bin_dir/compose-bench" > bench/compose.json

python3 - "$results" <<'PY'
import json, os, platform, sys, datetime
claims = json.load(open("bench/claims.json"))
compose = json.load(open("bench/compose.json"))
for name in ("bench/claims.json", "bench/compose.json"):
    os.remove(name)
report = {
    "date": datetime.date.today().isoformat(),
    "cores": os.cpu_count(),
    "machine": platform.machine(),
    "claims": claims,
    "compose": compose,
}
json.dump(report, open(sys.argv[1], "w"), indent=2, sort_keys=True)

rows = {r["depth"]: r for r in claims["results"]}
low, high = rows[min(rows)], rows[max(rows)]
ratio = claims["ratio_last_to_first"]
lines = [
    "# Benchmarks",
    "",
    f"Measured {report['date']} on {report['cores']} cores ({report['machine']}) by `make bench`;",
    "raw figures in `bench/results.json`. Each figure is a median of several rounds, beside its",
    "ceiling or baseline from the same run.",
    "",
    "## Claims per second against queue depth",
    "",
    "| pending files | claims/s (index) | claims/s (directory scan per claim, as the seed did) | index build at start | GET /status census |",
    "|---:|---:|---:|---:|---:|",
]
for depth in sorted(rows):
    r = rows[depth]
    lines.append(f"| {depth:,} | {r['claims_per_second']:,.0f} | {r['scan_per_claim_per_second']:,.0f} | {r['index_build_seconds']:.3f} s | {r['status_census_seconds']:.3f} s |")
lines += [
    "",
    f"Rate at {max(rows):,} is {ratio:.0%} of the rate at {min(rows):,} "
    f"(target: at least 90%: {'met' if ratio >= 0.9 else 'NOT met'}).",
    "",
    "## Messages rendered and composed per second, one core",
    "",
    "| what | messages/s |",
    "|---|---:|",
    f"| `welcome` template (text + HTML, swift-mustache) composed as multipart/alternative | {compose['template_rendered_and_composed_per_second']:,.0f} |",
    f"| raw plain-text email composed, no template (the ceiling for composition) | {compose['raw_composed_per_second']:,.0f} |",
    "",
]
open("docs/BENCHMARKS.md", "w").write("\n".join(lines))
PY
echo "wrote $results and docs/BENCHMARKS.md" >&2
