#!/usr/bin/env bash
# `make bench`: runs the benchmarks in bench/ (release builds) and writes bench/results.json
# and docs/BENCHMARKS.md. Each figure is reported beside a ceiling or baseline measured in
# the same run, never as a bare time. Not part of `make test`.
set -euo pipefail
cd "$(dirname "$0")/.."

# The benchmark executables exist only with MAIL_BENCH set (Package.swift), so `make run`
# and `make test` never build them; they get a build folder of their own.
export MAIL_BENCH=1
build=(swift build -c release --static-swift-stdlib --scratch-path .build-bench)
"${build[@]}"
bin_dir=$("${build[@]}" --show-bin-path)
mkdir -p docs
results=bench/results.json

# The PostgreSQL store's figures (QUEUE_STORE=postgres) come from a private server started
# here and stopped at exit, also when a benchmark fails; each benchmark makes its own
# databases on it (BENCH_DATABASE_URL is the server's URL).
pg_dir=$(mktemp -d /tmp/mail-bench-postgres.XXXXXX)
trap 'bench/postgres.sh stop "$pg_dir"' EXIT
echo "postgres: a private server for the postgres store's figures ..." >&2
BENCH_DATABASE_URL=$(bench/postgres.sh start "$pg_dir")
export BENCH_DATABASE_URL

echo "claims: queue depth 1,000 vs 100,000 ..." >&2
"$bin_dir/claims-bench" > bench/claims.json
echo "claims, postgres store: claim + markSent per second at 1,000 vs 100,000 queued, 1 and 4 threads ..." >&2
claims_databases=$(bench/postgres.sh createdb "$BENCH_DATABASE_URL" claims_1000),$(bench/postgres.sh createdb "$BENCH_DATABASE_URL" claims_100000)
"$bin_dir/claims-bench" --postgres "$claims_databases" --threads 1,4 --claims 500 --runs 3 > bench/claims_postgres.json
echo "index memory: the claim index's heap per pending email at 100,000 and 1,000,000 ..." >&2
# On tmpfs when /dev/shm has room: the index's footprint does not depend on the disk, and a
# million small files on this virtual disk take a quarter of an hour to write.
index_dir=/tmp/index-memory-$$
[ "$(df --output=avail -k /dev/shm 2>/dev/null | tail -1)" -gt 8000000 ] 2>/dev/null && index_dir=/dev/shm/index-memory-$$
for depth in 100000 1000000; do "$bin_dir/claims-bench" --index-memory "$depth" --dir "$index_dir"; done | python3 -c '
import json, sys; text = sys.stdin.read(); decoder = json.JSONDecoder(); rows, i = [], 0
while i < len(text.rstrip()):
    row, i = decoder.raw_decode(text, i); rows.append(row)
    while i < len(text) and text[i].isspace(): i += 1
print(json.dumps({"benchmark": "index_memory", "results": rows}))' > bench/index_memory.json
echo "lookup: GET /email/{request_id}'s store call at 1,000 vs 100,000 stored emails ..." >&2
"$bin_dir/lookup-bench" > bench/lookup.json
echo "compose: templates rendered and messages composed on one core ..." >&2
"$bin_dir/compose-bench" > bench/compose.json
echo "enqueue: POST /email through nginx (wrk), beside nginx alone and the disk's fsync rate; file and postgres stores ..." >&2
command -v wrk >/dev/null || { as_root=(); [ "$(id -u)" -eq 0 ] || as_root=(sudo); "${as_root[@]}" apt-get install -y -qq wrk >/dev/null; }
python3 bench/enqueue.py "$bin_dir" > bench/enqueue.json
echo "lookup through the stack: GET /email/{request_id} via nginx at 1,000 vs 100,000 stored emails ..." >&2
python3 bench/lookup_http.py "$bin_dir" > bench/lookup_http.json
echo "delivery: a 20,000-email backlog into postfix's smtp-sink, beside smtp-source into the same sink; file and postgres stores ..." >&2
python3 bench/delivery.py "$bin_dir" > bench/delivery.json
echo "delivery to a relay 10 ms away: 16, 64 and 256 workers through bench/slow_relay.py ..." >&2
python3 bench/relay_distance.py "$bin_dir" > bench/relay_distance.json
echo "responder memory: mailfcgi's resident set after 50,000 and 500,000 POST /email ..." >&2
python3 bench/responder_memory.py "$bin_dir" > bench/responder_memory.json
echo "large messages: 1 MiB attachments sent, signed and not; memory around a 10 MiB message ..." >&2
python3 bench/large_messages.py "$bin_dir" > bench/large_messages.json
echo "send rate: SMTP_MAX_RATE=50 held over 30 s by 16 workers ..." >&2
python3 bench/send_rate.py "$bin_dir" > bench/send_rate.json

pg_version=$(psql -X -At -d "$BENCH_DATABASE_URL/postgres" -c "SHOW server_version")
python3 - "$results" "$pg_version" <<'PY'
import json, os, platform, sys, datetime
claims = json.load(open("bench/claims.json"))
claims_postgres = json.load(open("bench/claims_postgres.json"))
lookup = json.load(open("bench/lookup.json"))
lookup_http = json.load(open("bench/lookup_http.json"))
compose = json.load(open("bench/compose.json"))
enqueue = json.load(open("bench/enqueue.json"))
delivery = json.load(open("bench/delivery.json"))
large = json.load(open("bench/large_messages.json"))
send_rate = json.load(open("bench/send_rate.json"))
index_memory = json.load(open("bench/index_memory.json"))
relay_distance = json.load(open("bench/relay_distance.json"))
responder_memory = json.load(open("bench/responder_memory.json"))
for name in ("bench/index_memory.json", "bench/relay_distance.json", "bench/responder_memory.json", "bench/send_rate.json", "bench/claims.json", "bench/claims_postgres.json", "bench/lookup.json", "bench/lookup_http.json", "bench/compose.json", "bench/enqueue.json", "bench/delivery.json", "bench/large_messages.json"):
    os.remove(name)
report = {
    "date": datetime.date.today().isoformat(),
    "cores": os.cpu_count(),
    "machine": platform.machine(),
    "claims": claims,
    "claims_postgres": claims_postgres,
    "postgres_server_version": sys.argv[2],
    "lookup": lookup,
    "lookup_http": lookup_http,
    "compose": compose,
    "enqueue": enqueue,
    "delivery": delivery,
    "large_messages": large,
    "send_rate": send_rate,
    "index_memory": index_memory,
    "relay_distance": relay_distance,
    "responder_memory": responder_memory,
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
    "| pending files | claims/s | claim + end of claim /s | claims/s scanning the directory per claim (the seed's way) | index build at start | GET /status census |",
    "|---:|---:|---:|---:|---:|---:|",
]
for depth in sorted(rows):
    r = rows[depth]
    lines.append(f"| {depth:,} | {r['claims_per_second']:,.0f} | {r['claim_and_end_per_second']:,.0f} | {r['scan_per_claim_per_second']:,.0f} | {r['index_build_seconds']:.3f} s | {r['status_census_seconds']:.3f} s |")
lines += [
    "",
    f"Claims at {max(rows):,} run at {ratio:.0%} of the rate at {min(rows):,} "
    f"(target: at least 90%: {'met' if ratio >= 0.9 else 'NOT met'}); claim + end of claim at "
    f"{claims['cycle_ratio_last_to_first']:.0%}. The index makes choosing the next email O(1); the "
    "claim's rename inserts into the small `queue/active/`, so what still grows with depth is "
    "removing one name from the queue directory.",
    "",
    "## Lookups by request id against stored emails",
    "",
    "Half of the stored emails delivered (in the trash) and half pending. Through the whole stack:",
    f"GET /email/{{request_id}} via nginx (TLS + basic auth) and mailfcgi, wrk at {lookup_http['connections']} "
    f"connections, two stacks (one per depth) measured in {lookup_http['slices']} alternating slices of "
    f"{lookup_http['seconds_per_slice']} s; and the store's call alone (`FileQueue.lookup`, one thread), "
    "in alternating slices too.",
    "",
    "| stored emails | GET /email/{id} req/s (slowest, fastest slice) | p99 | store lookups/s |",
    "|---:|---:|---:|---:|",
    *[f"| {h['depth']:,} | {h['lookups_per_second']:,.0f} ({h['min']:,}, {h['max']:,}) | {h['p99_ms']:.1f} ms "
      f"| {s['lookups_per_second']:,.0f} |" for h, s in zip(lookup_http["results"], lookup["results"])],
    "",
    f"Through the stack, a lookup at {lookup_http['results'][-1]['depth']:,} runs at "
    f"{lookup_http['ratio_last_to_first']:.0%} of the rate at {lookup_http['results'][0]['depth']:,} "
    f"(target: flat); the store's call alone at {lookup['ratio_last_to_first']:.0%}. No folder is listed: "
    "each lookup opens the names its id leads to, in the order an email moves through them (so an email "
    "moving during the lookup is still found), always the same few system calls. What grows in the "
    "store's call is the memory hierarchy, not the work: names never asked before are looked up in "
    "ext4's hashed directory blocks (the dentry cache knows only names asked before), and the "
    "inodes and pages of 100 times as many files are colder in the CPU's caches. Decoding and encoding "
    "the JSON cost the same at both depths and dominate the request.",
    "",
    "## Messages rendered and composed per second, one core",
    "",
    "| what | messages/s |",
    "|---|---:|",
    f"| `welcome` template (text + HTML, swift-mustache) composed as multipart/alternative | {compose['template_rendered_and_composed_per_second']:,.0f} |",
    f"| raw plain-text email composed, no template (the ceiling for composition) | {compose['raw_composed_per_second']:,.0f} |",
    f"| the same composed and DKIM-signed, rsa-sha256 (2048 bits) | {compose['raw_composed_and_signed_rsa_sha256_per_second']:,.0f} |",
    f"| the same composed and DKIM-signed, ed25519-sha256 | {compose['raw_composed_and_signed_ed25519_sha256_per_second']:,.0f} |",
    f"| an email with a 1 MiB attachment ({compose['attachment_1mib_message_bytes']:,} bytes composed) composed | {compose['attachment_1mib_composed_per_second']:,.1f} |",
    f"| the same composed and signed, rsa-sha256 | {compose['attachment_1mib_composed_and_signed_rsa_per_second']:,.1f} |",
    "",
    f"Signing's own cost, compose + sign less compose alone: rsa-sha256 {compose['rsa_sha256_sign_microseconds']:.0f} µs "
    f"and ed25519-sha256 {compose['ed25519_sha256_sign_microseconds']:.0f} µs a message (the private-key operation; "
    "the body hash adds about 1 ms per MiB of message).",
    "",
    "## Send rate limit",
    "",
    f"mailworkerd ({send_rate['workers']} workers) empties a backlog of {send_rate['emails']:,} emails into smtp-sink with "
    f"SMTP_MAX_RATE={send_rate['limit_per_second']}; counted from the first email sent to the last "
    f"(about {send_rate['emails'] // send_rate['limit_per_second']} s). Runs: "
    + ", ".join(f"{r:.2f}" for r in send_rate["runs_emails_per_second"])
    + f" emails/s; median {send_rate['emails_per_second']:.2f}, {send_rate['ratio']:.1%} of the limit "
    f"(target: within 10%: {'met' if send_rate['target_met'] else 'NOT met'}).",
    "",
    "## Large messages",
    "",
    f"mailworkerd ({large['send']['workers']} workers) empties a backlog of {large['send']['backlog']} emails, each with a "
    f"1 MiB attachment ({large['send']['message_bytes']:,} bytes on the wire), into smtp-sink; beside it smtp-source "
    f"sends as many messages of the same size over as many sessions; {large['send']['rounds']} alternating rounds, medians.",
    "",
    "| sender | emails/s | MiB/s | CPU per email | peak RSS |",
    "|---|---:|---:|---:|---:|",
    *[f"| mailworkerd, {name} | {large['send'][key]['emails_per_second']:,.1f} | {large['send'][key]['mib_per_second']:,.1f} | "
      f"{large['send'][key]['cpu_ms_per_email']:.1f} ms | {large['send'][key]['peak_rss_mib']:.1f} MiB |"
      for name, key in (("unsigned", "unsigned"), ("DKIM rsa-sha256", "signed"))],
    f"| smtp-source (the ceiling) | {large['send']['smtp_source_emails_per_second']:,.1f} | "
    f"{large['send']['smtp_source_emails_per_second'] * large['send']['message_bytes'] / 2**20:,.1f} | | |",
    "",
    f"One POST /email with a {large['memory']['attachment_bytes']:,}-byte attachment (a composed message just under "
    "MAX_MESSAGE_BYTES, 10 MiB; a 13.6 MB request body), through nginx, accepted by mailfcgi and delivered, DKIM-signed, "
    "by mailworkerd: each daemon's peak resident set before and after.",
    "",
    "| daemon | peak RSS before | peak RSS after | growth |",
    "|---|---:|---:|---:|",
    *[f"| {name} | {large['memory']['before'][name]['peak_rss_mib']:.1f} MiB | {large['memory']['after'][name]['peak_rss_mib']:.1f} MiB "
      f"| {large['memory']['peak_growth_mib'][name]:.1f} MiB |" for name in ("mailfcgi", "mailworkerd")],
    "",
    "mailfcgi holds the request body, the attachment's text decoded from the JSON and the queue file's JSON being "
    "written: about three times the body, once per message (no copy per part); mailworkerd holds the email read from "
    "its file and the composed message, which DKIM signs in place.",
    "",
    "## Enqueue: POST /email through nginx (TLS + basic auth) into the durable queue",
    "",
    f"wrk, 2 threads, delivery off, mailfcgi with FCGI_THREADS={enqueue['fcgi_threads']} (its default on this machine). "
    f"The ceiling is the disk's rate of durable file creation by {enqueue['ceiling_writer_threads']} writer threads "
    "(as many as mailfcgi's), each writing a file, fsync, rename, directory fsync: an enqueue that shares nothing. "
    f"Ceiling and POST /email run in turns, {enqueue['pairs']} rounds of a {enqueue['seconds_per_slice']} s slice each "
    "(which goes first alternating), at each concurrency; nginx alone (`return 200` on the same TLS + auth location) "
    "in the same rounds. Medians, with the slowest and fastest slice; the ratio is the median of each round's "
    "POST / ceiling. Group commit: concurrent enqueues share the queue directory's fsync (`DirectorySync`), so one "
    "request's own cost is its file's fsync; this virtual disk's fsync rate swings several-fold within seconds, "
    "which the spread shows.",
    "",
    "| connections | POST /email req/s (slowest, fastest) | p50 | p99 (worst slice) | durable files/s (slowest, fastest) | POST / ceiling (lowest, highest round) | nginx alone req/s | target |",
    "|---:|---:|---:|---:|---:|---:|---:|---|",
]
for c, r in sorted(enqueue["by_connections"].items(), key=lambda kv: int(kv[0])):
    e, f, q = r["enqueue"], r["durable_files_per_second"], r["enqueue_vs_durable_files"]
    target = ""
    if c == "64":
        met = enqueue["targets"]
        target = (f"at least 1.5x the ceiling: {'met' if met['enqueue_at_64_vs_ceiling_at_least_1_5'] else 'NOT met'}; "
                  f"p99 no worse than {enqueue['p99_before_group_commit_ms']} ms before group commit: "
                  f"{'met' if met['p99_at_64_no_worse_than_before'] else 'NOT met'}")
    lines.append(f"| {c} | {e['median']:,.0f} ({e['min']:,.0f}, {e['max']:,.0f}) | {e['p50_ms']:.1f} ms | "
                 f"{e['p99_ms']:.1f} ms ({e['p99_ms_worst_slice']:.0f} ms) | {f['median']:,.0f} ({f['min']:,.0f}, {f['max']:,.0f}) | "
                 f"{q['median']:.2f}x ({q['min']:.2f}, {q['max']:.2f}) | {r['nginx_only']['median']:,.0f} | {target} |")
lines += [
    "",
    "POST /emails/batch with 100 of the same emails per request, in the same rounds (each batch",
    "shares its directory sync with whatever else was renamed meanwhile):",
    "",
    "| connections | batches/s | emails/s in batches | p99 | against single POSTs' emails/s |",
    "|---:|---:|---:|---:|---:|",
]
for c, r in sorted(enqueue["by_connections"].items(), key=lambda kv: int(kv[0])):
    b = r["batch_of_100"]
    lines.append(f"| {c} | {b['median']:,.0f} | {b['emails_per_second']:,.0f} | {b['p99_ms']:.1f} ms | "
                 f"{r['batch_vs_single_emails_per_second']:.2f}x |")
lines += [
    "",
    "## Delivery into postfix's smtp-sink",
    "",
    f"mailworkerd empties a backlog of {delivery['backlog']:,} queued emails ({delivery['message_bytes']}-byte messages) into",
    "`smtp-sink` over plain SMTP; a run counts from mailworkerd's start to the last email recorded",
    "as sent. Ceiling from the same run: `smtp-source` sending as many messages of the same size",
    "into the same sink over as many sessions, each reusing its connection (`-d`) as a worker does.",
    "smtp-sink discards what it receives and smtp-source reads no queue: the ceiling is the SMTP",
    "exchange alone.",
    "",
    "| workers | emails/s | smtp-source emails/s (same sessions) | ratio | target at 16 |",
    "|---:|---:|---:|---:|---|",
]
for n, r in sorted(delivery["by_workers"].items(), key=lambda kv: int(kv[0])):
    target = ("at least 50%: " + ("met" if delivery["target_at_16_met"] else "NOT met")) if n == "16" else ""
    lines.append(f"| {n} | {r['emails_per_second']:,.0f} | {r['smtp_source_emails_per_second']:,.0f} | {r['ratio']:.0%} | {target} |")
if "note" in delivery:
    lines += ["", f"Fewer runs: {delivery['note']}."]
rd = relay_distance
lines += [
    "",
    f"### A relay {rd['round_trip_ms']:.0f} ms away",
    "",
    f"The same delivery into smtp-sink through `bench/slow_relay.py`, which holds every chunk {rd['round_trip_ms'] / 2:.0f} ms in",
    f"each direction (this kernel has no netem qdisc); a NOOP's round trip through it measured {rd['round_trip_ms_measured']:.1f} ms.",
    f"A backlog of {rd['backlog']:,}, {rd['rounds']} rounds, counted from the first email sent to the last. libcurl does not",
    "pipeline SMTP, so each email waits one round trip for each of MAIL FROM, RCPT TO, DATA and the end of data:",
    "the bound is workers / (4 x RTT). smtp-source over as many sessions through the same relay, in the same rounds,",
    "checks the relay.",
    "",
    "| workers | emails/s | bound at 10 ms | against it | bound at the measured round trip | against it | smtp-source through the relay | CPU per email | peak RSS |",
    "|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    *[f"| {n} | {r['emails_per_second']:,} | {r['bound_emails_per_second']:,} | {r['vs_bound']:.0%} | "
      f"{r['bound_at_measured_round_trip']:,} | {r['vs_bound_at_measured_round_trip']:.0%} | {r['smtp_source_emails_per_second']:,} | "
      f"{r['cpu_ms_per_email']:.2f} ms | {r['peak_rss_mib']:.1f} MiB |"
      for n, r in sorted(rd["by_workers"].items(), key=lambda kv: int(kv[0]))],
    "",
    f"1,000 emails/s at this distance needs about {rd['workers_for_1000_per_second']} workers at the per-worker rate measured "
    f"(the largest pool within 80% of its bound), {rd['workers_for_1000_per_second_at_bound']} at the bound itself; pipelining "
    "(RFC 2920: MAIL, RCPT and DATA in one trip) would halve the trips.",
]
memory = enqueue["memory_at_end"]
busiest = max(delivery["by_workers"].values(), key=lambda r: r["peak_rss_mib"])
rows = [("mailfcgi", "enqueue", memory["mailfcgi"]["peak_rss_mib"], memory["mailfcgi"]["rss_anon_mib"], memory["mailfcgi"]["rss_file_mib"]),
        ("mailworkerd", "enqueue (indexing arrivals)", memory["mailworkerd"]["peak_rss_mib"], memory["mailworkerd"]["rss_anon_mib"], memory["mailworkerd"]["rss_file_mib"]),
        ("mailworkerd", "delivery", busiest["peak_rss_mib"], busiest["rss_anon_mib_at_end"], busiest["rss_file_mib_at_end"])]
lines += [
    "",
    "## Memory",
    "",
    "Peak resident set (VmHWM) of each daemon, and its resident set at the end of the run split",
    "into anonymous memory (heap and stacks: what each process costs) and file-backed pages",
    "(program code, shared with any other process mapping the same file). Release builds link",
    "the Swift runtime and Foundation statically.",
    "",
    "| daemon | during | peak RSS | anonymous at end | file-backed at end | target: peak under 32 MiB |",
    "|---|---|---:|---:|---:|---|",
]
for name, during, peak, anon, file in rows:
    lines.append(f"| {name} | {during} | {peak:.1f} MiB | {anon:.1f} MiB | {file:.1f} MiB | {'met' if peak < 32 else 'NOT met'} |")
for n, r in sorted(relay_distance["by_workers"].items(), key=lambda kv: int(kv[0])):
    lines.append(f"| mailworkerd | delivery at 10 ms, {n} workers | {r['peak_rss_mib']:.1f} MiB | | | {'met' if r['peak_rss_mib'] < 32 else 'NOT met'} |")
rm = responder_memory
m0, m1 = rm["marks"]["50000"], rm["marks"]["500000"]
lines += [
    "",
    f"mailfcgi over a long run (POST /email at 16 connections, delivery off): resident set {m0['rss_anon_mib'] + m0['rss_file_mib']:.1f} MiB "
    f"after {m0['requests']:,} requests and {m1['rss_anon_mib'] + m1['rss_file_mib']:.1f} MiB after {m1['requests']:,}; anonymous memory "
    f"{m0['rss_anon_mib']:.1f} then {m1['rss_anon_mib']:.1f} MiB ({rm['bytes_per_request']:+.1f} bytes a request; target: within 1 MiB: "
    f"{'met' if rm['target_within_1_mib_met'] else 'NOT met'}). The growth of about 50 bytes a request seen before was the file "
    "queue's claim index in mailfcgi, which never claims: every accepted email was added to it and never taken out.",
    "",
    "The claim index in mailworkerd (`QueueIndex`), by `claims-bench --index-memory`: a queue of pending files, a fresh",
    "FileQueue's index built by its first claim, malloc's bytes in use before and after (mallinfo2), and the process's",
    "resident set (the building process also wrote the files; on tmpfs, whose pages are not in the resident set).",
    f"The index holds at most `QUEUE_ACTIVE_LIMIT` emails (default {index_memory['results'][0]['active_limit']:,}); the rest",
    "of a backlog stays on disk and is read in, in order of name, as room frees; the directory is read as a stream.",
    "",
    "| pending | held in the index | index heap | bytes per entry held | bytes per pending | index build | RSS before build | RSS after | peak RSS |",
    "|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    *[f"| {r['depth']:,} | {r['indexed']:,} | {r['index_heap_mib']:.1f} MiB | {r['index_bytes_per_entry']:.0f} | "
      f"{r['index_bytes_per_pending']:.0f} | {r['index_build_seconds']:.1f} s | "
      f"{r['rss_mib_before_build']:.1f} MiB | {r['rss_mib_after_build']:.1f} MiB | {r['peak_rss_mib']:.1f} MiB |"
      for r in index_memory["results"]],
    "",
]
im = {r["depth"]: r for r in index_memory["results"]}
if len(im) >= 2:
    small, large = im[min(im)], im[max(im)]
    flat = large["index_heap_mib"] <= small["index_heap_mib"] * 1.25 + 0.5
    lines += [
        f"Index heap at {max(im):,} pending against {min(im):,}: {large['index_heap_mib']:.1f} MiB and "
        f"{small['index_heap_mib']:.1f} MiB (target: flat in queue depth: {'met' if flat else 'NOT met'}).",
    ]
# The postgres store, each figure beside the file store's from the sections above.
pg_enqueue = sorted(enqueue["by_connections"].items(), key=lambda kv: int(kv[0]))
pg_claims = {r["depth"]: r for r in claims_postgres["results"]}
file_claims = {r["depth"]: r for r in claims["results"]}
threads = claims_postgres["threads"]
most = str(max(threads))
pg_delivery = delivery["postgres"]
spread = lambda runs: f"({min(runs):,}, {max(runs):,})"
lines += [
    "",
    "## PostgreSQL store",
    "",
    f"The same measures with `QUEUE_STORE=postgres`, in the same run, each beside the file store's figure. The",
    f"server is PostgreSQL {report['postgres_server_version']} on this machine and disk, private to `make bench`",
    "(`bench/postgres.sh`), with its default durability (fsync, `synchronous_commit` on): an enqueue, a claim and",
    "each outcome return after their commit's WAL flush.",
    "",
    f"POST /email through nginx, a second stack with the postgres store measured in the same",
    f"{enqueue['pairs']} rounds as the file store's above ({enqueue['seconds_per_slice']} s slices); medians, (slowest, fastest slice):",
    "",
    "| connections | file store req/s | postgres req/s | postgres / file | file p99 | postgres p99 |",
    "|---:|---:|---:|---:|---:|---:|",
    *[f"| {c} | {r['enqueue']['median']:,.0f} ({r['enqueue']['min']:,.0f}, {r['enqueue']['max']:,.0f}) "
      f"| {r['postgres_enqueue']['median']:,.0f} ({r['postgres_enqueue']['min']:,.0f}, {r['postgres_enqueue']['max']:,.0f}) "
      f"| {r['postgres_vs_file']:.0%} | {r['enqueue']['p99_ms']:.1f} ms | {r['postgres_enqueue']['p99_ms']:.1f} ms |"
      for c, r in pg_enqueue],
    "",
    f"Claims by `claims-bench --postgres`: one database per depth, filled by COPY with the rows `enqueue` writes,",
    f"topped up by the store's `enqueue(batch:)` before each round; {claims_postgres['claims_per_round']} claims a round",
    f"(at most half the depth) over 1 and {most} threads, then the markSent ending each, timed apart;",
    f"{claims_postgres['runs']} rounds, depths and thread counts alternating, medians. The file store's figures",
    "(from the first section) are one thread's.",
    "",
    "| queued | file claims/s | file claim + end /s | "
    + " | ".join(f"postgres claims/s, {t} thread{'s' if t > 1 else ''} | claim + markSent /s" for t in threads) + " |",
    "|---:|---:|---:|" + "---:|---:|" * len(threads),
    *[f"| {d:,} | {file_claims[d]['claims_per_second']:,.0f} | {file_claims[d]['claim_and_end_per_second']:,.0f} | "
      + " | ".join(f"{pg_claims[d]['by_threads'][str(t)]['claims_per_second']:,.0f} | "
                   f"{pg_claims[d]['by_threads'][str(t)]['claim_and_end_per_second']:,.0f}" for t in threads) + " |"
      for d in sorted(pg_claims)],
    "",
    f"With {most} threads, postgres claims at {max(pg_claims):,} queued run at "
    f"{pg_claims[max(pg_claims)]['by_threads'][most]['claims_per_second'] / pg_claims[min(pg_claims)]['by_threads'][most]['claims_per_second']:.0%} "
    f"of the rate at {min(pg_claims):,}. The claim's choice of row (`ORDER BY priority, created_at, request_id LIMIT 1",
    "FOR UPDATE SKIP LOCKED`), by EXPLAIN ANALYZE after the rounds: "
    + "; ".join(f"at {d:,}, {p['scan']}, {p['buffers']} buffers, {p['execution_ms']:.2f} ms"
                for d, p in ((d, pg_claims[d]['claim_plan_after_rounds']) for d in sorted(pg_claims)))
    + ". The scan stops at the first row it can lock, but steps over the index entries of rows the rounds",
    "claimed, until vacuum removes them. Most of a claim's time is its commit: each claim and each markSent waits",
    "for a WAL flush (the file store's claim and its move to the trash are renames it does not fsync), so one",
    "thread's rate is bounded by the disk's flushes, and more threads share them (group commit).",
    "",
    f"Delivery of the same {delivery['backlog']:,}-email backlog into the same smtp-sink, the postgres store's run right",
    f"after the file store's at the same worker count (its rows copied in, vacuumed and checkpointed before",
    f"mailworkerd starts; counted to the last row's `updated_at`), within a budget of {pg_delivery['budget_seconds']} s of its own:",
    "",
    "| workers | file store emails/s | postgres emails/s | postgres / file | runs | postgres CPU per email (mailworkerd) |",
    "|---:|---:|---:|---:|---:|---:|",
    *[f"| {n} | {delivery['by_workers'][n]['emails_per_second']:,.0f} | {r['emails_per_second']:,.0f} "
      f"{spread(r['runs_emails_per_second'])} | {r['vs_file_store']:.0%} | {r['runs']} | {r['cpu_ms_per_email']:.2f} ms |"
      for n, r in sorted(pg_delivery["by_workers"].items(), key=lambda kv: int(kv[0]))],
    "",
    "Each email costs the postgres store two commits (the claim, the outcome), each a WAL flush, where the file",
    "store's claim and outcome are unsynced renames; with more workers more of those flushes are shared.",
    f"mailfcgi's peak RSS on the postgres store during enqueue: {enqueue['postgres']['memory_at_end']['mailfcgi']['peak_rss_mib']:.1f} MiB "
    f"(file store: {memory['mailfcgi']['peak_rss_mib']:.1f} MiB).",
]
lines.append("")
open("docs/BENCHMARKS.md", "w").write("\n".join(lines))
PY
echo "wrote $results and docs/BENCHMARKS.md" >&2
