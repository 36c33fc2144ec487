#!/usr/bin/env python3
"""Writes BENCHMARKS.md from one run of scripts/bench-report (criterion results, settings the
benchmarks recorded, /usr/bin/time -v outputs, perf profiles). Standard library only.

  bench_report.py --work DIR [--seconds N]   the report, on stdout
  bench_report.py --work DIR --missed        ids (`workload/chatvault`) that miss a target
  bench_report.py --work DIR --seconds N --update-section shred --report BENCHMARKS.md
                                             BENCHMARKS.md with only its "Shred latency"
                                             section replaced (or added), on stdout
"""
import argparse
import datetime
import glob
import json
import os
import platform
import re
import subprocess
import sys

ENGINES = ["chatvault", "rocksdb", "sqlcipher"]
ENGINE_NAMES = {"chatvault": "chatvault", "rocksdb": "RocksDB (raw)", "sqlcipher": "SQLCipher 4"}

# Targets of issue 3: speed ratio = baseline time / chatvault time (1.0 = as fast; above 1 =
# chatvault faster). Never asserted in tests.
TARGETS = {
    "append_1t": {"rocksdb": 0.90, "sqlcipher": 15.0},
    "get_warm": {"rocksdb": 0.90, "sqlcipher": 4.0},
    "page_50": {"rocksdb": 0.60},
}

WORKLOADS = [
    ("append_1t", "Append, one thread",
     "`Vault::append` of the next corpus message (sizes follow the corpus), 1 ms apart within "
     "one epoch (the steady state; epoch-key creation is in the import). RocksDB: one WriteBatch "
     "(message, time-index entry, counter merge), sync=false. SQLCipher: one INSERT in "
     "autocommit mode."),
    ("append_2t_one_conv", "Append, two threads, one conversation",
     "Two threads append at once to the same conversation. One iteration = one message from "
     "each thread (2 messages). SQLCipher: one connection shared under a mutex (two connections "
     "would serialize on SQLite's write lock and its busy handler)."),
    ("append_2t_two_convs", "Append, two threads, two conversations",
     "As above, each thread to its own conversation."),
    ("get_warm", "Get, key cache warm",
     "`Vault::get` of a random message among the read set (20 000 corpus messages, 16 authors, "
     "one epoch, flushed to SST files: reads go through the block cache), keys and DEKs cached. "
     "RocksDB: get + postcard decode. SQLCipher: point SELECT by (conversation, id)."),
    ("get_warm_200k", "Get, key cache warm, 200 000 messages",
     "As `get_warm` with 200 000 messages (about 10x the data): more than SQLCipher's default "
     "page cache (2 000 KiB) holds, so most of its gets read and decrypt a page, while RocksDB's "
     "64 MiB block cache still holds every block."),
    ("get_cold", "Get, key cache cold",
     "The same vault reopened with `key_cache_entries: 1`: every get finds no key in the cache "
     "and unwraps the whole chain (tenant KEK from the root key, conversation key, epoch key, "
     "author key: 4 RocksDB gets of wrapped keys and 4 opens, plus a tenant KEK unwrap again for "
     "the user key) and derives the DEK (HKDF-SHA256) before opening the message. The "
     "baselines have no keys: their figures are `get_warm`'s (same run)."),
    ("page_50", "Page of 50 messages",
     "`Vault::page(t, c, Some(from), Forward, 50)` at a random `from` in the read set. RocksDB: "
     "one iterator seek, 50 values decoded, the key of the 51st read for `Page::next`. "
     "SQLCipher: `WHERE conversation = ? AND id >= ? ORDER BY id LIMIT 50`."),
    ("import_corpus", "Import of the IRC corpus",
     "Each iteration imports the corpus subset into a fresh store: chatvault through "
     "`import::import_irc_file` (what `chatvault import irc` runs); the baselines parse with the "
     "same parser and write the same messages in batches of 512 (RocksDB: the same keys, index "
     "entries and counter merges, plaintext tenant/user/conversation/member records with "
     "sync=false; SQLCipher: one transaction per file's users and conversation, one per 512 "
     "messages)."),
]

BUCKETS = [
    ("AES-GCM-SIV (AES rounds, POLYVAL)", r"aes|polyval|gcm_?siv|Aes256|ghash|ctr::|cipher::"),
    ("HKDF / HMAC / SHA-256", r"sha2|sha256|hmac|hkdf|Sha256|compress256"),
    ("nonce RNG", r"rand_chacha|chacha|Reseed|thread_rng|getrandom|rand_core"),
    ("key cache and locks", r"lru|parking_lot|KeyCache|futex|pthread_mutex|RawMutex|RwLock"),
    ("postcard / serde", r"postcard|serde"),
    ("clock reads", r"clock_gettime|SystemTime|Instant::now|Clock"),
    ("allocator and memcpy", r"malloc|free|realloc|memcpy|memmove|memset|_int_|operator new|operator delete|alloc::|__rust_alloc|__rust_dealloc|cfree"),
    ("RocksDB (C++)", r"rocksdb|leveldb|crc32c|XXH|Hash64|Slice|InlineSkipList|MemTable|BlockIter|BloomFilter|FastRange|std::"),
    ("chatvault (other Rust)", r"chatvault"),
]


def sh(cmd):
    try:
        return subprocess.run(cmd, shell=True, capture_output=True, text=True, timeout=30).stdout.strip()
    except Exception:
        return ""


def load_criterion(home):
    res = {}
    for bj in glob.glob(os.path.join(home, "**", "new", "benchmark.json"), recursive=True):
        d = os.path.dirname(bj)
        try:
            b = json.load(open(bj))
            e = json.load(open(os.path.join(d, "estimates.json")))
        except Exception:
            continue
        est = e.get("slope") or e["mean"]
        res[(b["group_id"], b.get("function_id") or "", b.get("value_str") or "")] = {
            "ns": est["point_estimate"],
            "lo": est["confidence_interval"]["lower_bound"],
            "hi": est["confidence_interval"]["upper_bound"],
            "thr": b.get("throughput"),
            "median": (e.get("median") or {}).get("point_estimate"),
            "id": b.get("full_id") or b.get("title"),
        }
    return res


def load_info(path):
    info = {}
    if os.path.exists(path):
        for line in open(path):
            if "\t" in line:
                k, v = line.rstrip("\n").split("\t", 1)
                info[k] = v
    return info


def fmt_ns(ns):
    if ns >= 1e9:
        return f"{ns / 1e9:.2f} s"
    if ns >= 1e6:
        return f"{ns / 1e6:.2f} ms"
    if ns >= 1e3:
        return f"{ns / 1e3:.2f} µs"
    return f"{ns:.0f} ns"


def elements(r):
    t = r.get("thr") or {}
    return t.get("Elements") or 1


def per_msg_rate(r):
    return elements(r) / (r["ns"] / 1e9)


def ratio_str(x):
    return "–" if x is None else (f"{x:.2f}x" if x < 10 else f"{x:.1f}x")


def speed_ratio(res, workload, baseline):
    cv = res.get((workload, "chatvault", ""))
    base_wl = "get_warm" if workload == "get_cold" else workload
    b = res.get((base_wl, baseline, ""))
    if not cv or not b:
        return None
    return b["ns"] / cv["ns"]


def missed(res):
    out = []
    for wl, tg in TARGETS.items():
        for base, want in tg.items():
            r = speed_ratio(res, wl, base)
            if r is not None and r < want:
                out.append(f"{wl}/chatvault")
                break
    return out


def parse_time_v(path):
    d = {}
    if not os.path.exists(path):
        return d
    for line in open(path):
        line = line.strip()
        m = re.match(r"Maximum resident set size \(kbytes\): (\d+)", line)
        if m:
            d["rss_kb"] = int(m.group(1))
        m = re.match(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): (.*)", line)
        if m:
            parts = [float(p) for p in m.group(1).split(":")]
            s = 0.0
            for p in parts:
                s = s * 60 + p
            d["wall"] = s
        m = re.match(r"Exit status: (\d+)", line)
        if m:
            d["exit"] = int(m.group(1))
    return d


def parse_result(path):
    if not os.path.exists(path):
        return {}
    for line in open(path):
        if line.startswith("result "):
            parts = line.split()
            d = {"mode": parts[1], "engine": parts[2]}
            for kv in parts[3:]:
                k, v = kv.split("=", 1)
                d[k] = float(v)
            return d
    return {}


def perf_summary(prefix):
    """Buckets of self time and the top symbols from `perf report --sort symbol`."""
    path = prefix + ".txt"
    if not os.path.exists(path):
        return None
    rows = []
    for line in open(path):
        m = re.match(r"\s+([\d.]+)%\s+\[(.)\]\s+(.*)", line)
        if m:
            # perf pads the symbol column and may print further columns after it.
            sym = re.split(r"\s{2,}", m.group(3).strip())[0]
            rows.append((float(m.group(1)), m.group(2), sym))
    if not rows:
        return None
    buckets = {name: 0.0 for name, _ in BUCKETS}
    buckets["kernel (syscalls, page faults)"] = 0.0
    buckets["other"] = 0.0
    buckets["(symbols under 0.05% each)"] = max(0.0, 100.0 - sum(r[0] for r in rows))
    for pct, kind, sym in rows:
        if kind == "k":
            buckets["kernel (syscalls, page faults)"] += pct
            continue
        for name, rx in BUCKETS:
            if re.search(rx, sym):
                buckets[name] += pct
                break
        else:
            buckets["other"] += pct
    return buckets, rows[:14]


def shorten(sym, n=110):
    sym = re.sub(r"::h[0-9a-f]{16}$", "", sym)
    return sym if len(sym) <= n else sym[: n - 1] + "…"


def machine(work):
    cp = os.path.join(work, "commit")
    commit = open(cp).read().strip() if os.path.exists(cp) else sh("git rev-parse --short HEAD")
    cpu = sh("grep -m1 'model name' /proc/cpuinfo | cut -d: -f2-").strip()
    flags = sh("grep -m1 '^flags' /proc/cpuinfo").split()
    feats = [f for f in ["aes", "pclmulqdq", "avx2", "avx512f", "vaes", "vpclmulqdq", "sha_ni"] if f in flags]
    mem = sh("free -g | awk '/Mem:/{print $2}'")
    return [
        ("CPU", f"{cpu} ({os.cpu_count()} cores), flags: {' '.join(feats)}"),
        ("memory", f"{mem} GiB"),
        ("OS", f"{platform.system()} {platform.release()}"),
        ("rustc", sh("rustc --version")),
        ("commit", commit),
        ("disk", "`fdatasync` of a small write: see the import notes"),
    ]


# `Vault::shred` must take the same time whatever the data in scope: slowest size / smallest.
SHRED_TARGET_RATIO = 1.2
SHRED_SCOPES = [("conversation", "conversation"), ("user", "user (every message by one author)"),
                ("tenant", "tenant")]
SHRED_HEADING = "## Shred latency"


def run_facts(work):
    """(started, commit, load at start, load at end) of the run in `work`."""
    def read(name):
        p = os.path.join(work, name)
        return open(p).read().strip() if os.path.exists(p) else ""
    load = lambda n: " ".join(read(n).split()[:3])
    return read("started"), read("commit"), load("load-start"), load("load-end")


def render_shred(res, work, seconds, standalone):
    """The "Shred latency" section (a list of lines), from criterion group `shred`."""
    out = []
    w = out.append
    sizes = sorted({int(k[2]) for k in res if k[0] == "shred" and k[2].isdigit()})
    w(SHRED_HEADING)
    w("")
    w("`Vault::shred` of one scope holding *n* messages (`benches/shred.rs`). The template vault "
      "for each size (one tenant, one conversation, one author who wrote all *n* messages one "
      "second apart, a second member who wrote none) is filled once with `append_batch` and "
      "flushed and compacted to SST files; every iteration shreds a fresh copy of it "
      "(`Vault::checkpoint`, hard links; then `Vault::open` and a read of the conversation and "
      "the user, as in a serving vault; then `sync`, so that the shred's fsync does not commit "
      "the set-up's file-system work; all untimed). Only the `shred` call is timed, including "
      "its fsync (the call returns once the shred is durable). The copies are opened with "
      "`rekey_after_shred: false`: this is the destruction alone; the key re-versioning pass a "
      "shred runs next by default is the \"Key re-versioning\" section's figure, which does not "
      "depend on the scope's size. 30 shreds per cell: median, "
      "then criterion's mean with its 95% confidence interval. "
      f"Target: the time does not grow with the data, largest size ÷ smallest ≤ {SHRED_TARGET_RATIO:g}, "
      "judged on the medians: the fsync dominates, and on this VM's shared disk one fsync takes "
      "anywhere from 0.4 to about 12 ms (more under load), so a few slow samples move a mean of "
      "30 a lot; the ratio of the means is shown too. The spread within a cell is far larger "
      "than any difference between sizes.")
    w("")
    if not sizes:
        w("Not measured in this run.")
        w("")
        return out
    started, commit, l0, l1 = run_facts(work)
    if standalone:
        busy = ""
        try:
            if float(l0.split()[0]) > 1.5 or float(l1.split()[0]) > 1.5:
                busy = (" A load above 2 on this 2-core machine means other work (such as "
                        "builds) shared it, which shows in the fsync times.")
        except (ValueError, IndexError):
            pass
        w(f"Measured on its own by `scripts/bench-report --only shred` in a run started {started} "
          f"(commit {commit}, {seconds // 60} min {seconds % 60} s; load average (1, 5, 15 min) "
          f"{l0 or '?'} at the start, {l1 or '?'} at the end), not in the same run as the rest "
          f"of this report; same machine.{busy}")
    else:
        w("Measured in this run (see the machine section for the load).")
    w("")
    lo, hi = sizes[0], sizes[-1]
    name = lambda n: f"{n // 1_000_000}M" if n >= 1_000_000 and n % 1_000_000 == 0 else (
        f"{n // 1000}k" if n >= 1000 and n % 1000 == 0 else str(n))
    w("| scope | " + " | ".join(f"{n:,} messages".replace(",", " ") for n in sizes) +
      f" | {name(hi)} / {name(lo)}, medians | {name(hi)} / {name(lo)}, means | met? (≤ {SHRED_TARGET_RATIO:g}) |")
    w("|---|" + "---:|" * len(sizes) + "---:|---:|---|")
    for fid, title in SHRED_SCOPES:
        cells = []
        for n in sizes:
            r = res.get(("shred", fid, str(n)))
            med = fmt_ns(r["median"]) if r and r.get("median") else "?"
            cells.append(f"{med}; mean {fmt_ns(r['ns'])} ({fmt_ns(r['lo'])} – {fmt_ns(r['hi'])})"
                         if r else "–")
        a, b = res.get(("shred", fid, str(lo))), res.get(("shred", fid, str(hi)))
        if a and b and hi != lo and a.get("median") and b.get("median"):
            ratio = b["median"] / a["median"]
            rs, met = f"{ratio:.2f}", ("**yes**" if ratio <= SHRED_TARGET_RATIO else "**no**")
            rm = f"{b['ns'] / a['ns']:.2f}"
        else:
            rs, rm, met = "–", "–", "not measured"
        w(f"| {title} | " + " | ".join(cells) + f" | {rs} | {rm} | {met} |")
    w("")
    w("Re-run this section alone with `scripts/bench-report --only shred` (about 2 minutes once "
      "built; filling the million-message template takes about 10 s of it).")
    w("")
    return out


REKEY_HEADING = "## Key re-versioning"


def render_rekey(res, work, seconds, standalone):
    """The "Key re-versioning" section (a list of lines), from criterion group `rekey_pass`."""
    out = []
    w = out.append
    sizes = sorted({int(k[1].split("_")[0]) for k in res
                    if k[0] == "rekey_pass" and k[1].split("_")[0].isdigit()})
    w(REKEY_HEADING)
    w("")
    w("`Vault::rekey`, the pass every shred runs before it returns (and `Vault::purge` after "
      "crypto-retention) so that copies of the "
      "data directory taken before cannot open the destroyed data (DESIGN.md §7, \"Old "
      "copies\"), on a vault with *n* tenants (`benches/rekey.rs`): the key file gets a new root "
      "key version (rewritten and fsynced), the key-check file is rewritten, every tenant KEK is "
      "re-wrapped under the new root version, the one tenant with a destroyed key (a user "
      "shredded before each iteration, untimed) gets a new KEK version with its 100 users' keys "
      "and its metadata re-wrapped, all in one fsynced WriteBatch, then the old root version is "
      "retired (the key file rewritten again). Timed alone: the shred before it runs with "
      "`rekey_after_shred: false`. Criterion's mean with its 95% confidence interval.")
    w("")
    if not sizes:
        w("Not measured in this run.")
        w("")
        return out
    started, commit, l0, l1 = run_facts(work)
    if standalone:
        w(f"Measured on its own by `scripts/bench-report --only rekey` in a run started {started} "
          f"(commit {commit}, {seconds // 60} min {seconds % 60} s; load average (1, 5, 15 min) "
          f"{l0 or '?'} at the start, {l1 or '?'} at the end); same machine.")
    else:
        w("Measured in this run (see the machine section for the load).")
    w("")
    w("| tenants | pass | 95% CI | per tenant |")
    w("|---:|---:|---|---:|")
    for n in sizes:
        r = res.get(("rekey_pass", f"{n}_tenants", ""))
        if not r:
            w(f"| {n:,} | – | | |".replace(",", " "))
            continue
        w(f"| {n:,} | {fmt_ns(r['ns'])} | {fmt_ns(r['lo'])} – {fmt_ns(r['hi'])} | "
          f"{fmt_ns(r['ns'] / n)} |".replace(",", " "))
    w("")
    w("Re-run this section alone with `scripts/bench-report --only rekey` (about a minute once "
      "built).")
    w("")
    return out


EXPORT_HEADING = "## Export memory"


def render_export_memory(work, standalone):
    """The "Export memory" section, from the `export-memory:` line the opt-in test prints."""
    out = []
    w = out.append
    w(EXPORT_HEADING)
    w("")
    w("Peak memory of `Vault::export_conversation` (JSON Lines, streamed) on one conversation of "
      "*n* messages of 200 bytes each: the opt-in test `a_large_conversation_exports_with_"
      "bounded_memory` (`tests/export_round_trip.rs`, `CHATVAULT_EXPORT_MESSAGES=n`) appends "
      "them, flushes, resets the process's peak RSS (`/proc/self/clear_refs`), exports to a "
      "writer that only counts bytes, and reads the peak (`VmHWM`) again; it fails if the "
      "growth reaches a quarter of the export's size. The vault has an 8 MiB block cache and "
      "a 1 024-entry key cache. **A debug-profile figure** (the test suite's build, crypto "
      "crates optimised as in `Cargo.toml`), not a release one: the time is far slower than a "
      "release build's; the memory is what the figure is for.")
    w("")
    line = None
    p = os.path.join(work, "export-memory.log")
    if os.path.exists(p):
        line = next((l for l in open(p) if l.startswith("export-memory:")), None)
    if not line:
        w("Not measured in this run.")
        w("")
        return out
    kv = dict(x.split("=", 1) for x in line.split()[1:] if "=" in x)
    n, size = int(kv["messages"]), int(kv["bytes"])
    grew, before = int(kv["peak_growth_kib"]), int(kv["rss_before_kib"])
    started, commit, l0, l1 = run_facts(work)
    secs = ""
    sp = os.path.join(work, "export-memory.seconds")
    if os.path.exists(sp):
        t = int(open(sp).read().strip() or 0)
        secs = f", {t // 60} min {t % 60} s including the build check and the appends"
    if standalone:
        w(f"Measured on its own by `scripts/bench-report --only export-memory` in a run started "
          f"{started} (commit {commit}{secs}; load average (1, 5, 15 min) {l0 or '?'} at the "
          f"start, {l1 or '?'} at the end); same machine.")
    else:
        w("Measured in this run (see the machine section for the load).")
    w("")
    peak = int(kv.get("peak_kib", before + grew))
    w("| messages | export size | RSS before the export | peak RSS during it | growth | growth ÷ size | export time (debug) |")
    w("|---:|---:|---:|---:|---:|---:|---:|")
    w(f"| {n:,} | {size / 2**20:,.1f} MiB | {before / 1024:,.1f} MiB | {peak / 1024:,.1f} MiB | "
      f"{grew / 1024:,.1f} MiB | {grew * 1024 / size:.4f} | {float(kv.get('export_s', 0)):.1f} s |"
      .replace(",", " "))
    w("")
    w("The RSS before the export is the process after appending the messages (RocksDB's "
      "memtables, block cache and the allocator's free lists, which the export may reuse, so "
      "the growth varies between runs: 0 to about 6 MiB at a million messages so far). The "
      "growth does not follow the export's size: the export streams one message at a time "
      "through a 64 KiB buffer (200 000 messages: 6.4 MiB, DESIGN.md §8).")
    w("")
    w("Re-run this section alone with `scripts/bench-report --only export-memory` (a few "
      "minutes at 1 000 000 messages in a debug build, most of it appending; no corpus needed).")
    w("")
    return out


def update_section(report_path, section_lines, heading=SHRED_HEADING):
    """The report with its `heading` section replaced, or added before the analysis."""
    lines = open(report_path).read().split("\n")
    try:
        a = lines.index(heading)
        b = next((i for i in range(a + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
    except ValueError:
        a = next((i for i, l in enumerate(lines)
                  if l in ("## Targets missed: where the time goes", "## Analysis",
                           "## Every other benchmark")), len(lines))
        b = a
    return "\n".join(lines[:a] + section_lines + lines[b:])


def render(args):
    res = load_criterion(os.path.join(args.work, "criterion"))
    info = load_info(os.path.join(args.work, "info.tsv"))
    out = []
    w = out.append
    started = os.path.join(args.work, "started")
    now = (open(started).read().strip() if os.path.exists(started) else
           datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"))

    w("# chatvault benchmarks")
    w("")
    w(f"Written by `scripts/bench-report` from a run started {now} (run time {args.seconds // 60} min {args.seconds % 60} s). "
      "Every figure below comes from that one run, on this machine: the ratios compare engines "
      "measured minutes apart, never figures from different runs. Re-run the script after a "
      "change and commit the new report: `./dev bench` (or `scripts/bench-report [OUTPUT.md]`), "
      "about 15 minutes on this machine; it needs the IRC corpus in `../shared/corpus` and stops "
      "without it.")
    w("")
    w("**Ratios** are speed ratios: *baseline time ÷ chatvault time*. 1.00x means as fast as the "
      "baseline; 0.90x means chatvault takes 1/0.9 of the baseline's time; 15x means chatvault "
      "is fifteen times faster. *chatvault/RocksDB* compares with raw RocksDB doing the same "
      "writes and reads without encryption (the limit for value-level encryption); "
      "*chatvault/SQLCipher* with SQLCipher 4. Times are criterion's estimates (slope, or mean "
      "for the import) with their 95% confidence interval.")
    w("")

    w("## Machine")
    w("")
    w("| | |")
    w("|---|---|")
    for k, v in machine(args.work):
        if k == "disk":
            continue
        w(f"| {k} | {v} |")
    loads = []
    for name in ["load-start", "load-end"]:
        p = os.path.join(args.work, name)
        if os.path.exists(p):
            loads.append(" ".join(open(p).read().split()[:3]))
    if len(loads) == 2:
        w(f"| load average (1, 5, 15 min) | {loads[0]} at the start, {loads[1]} at the end: "
          "anything well above 1 at the start means other work shared the 2 cores |")
    w("")

    w("## Engines and settings")
    w("")
    w("- **chatvault**: `VaultOptions::default()`: `Durability::Buffered` (RocksDB `sync = false`), "
      "key cache of 65 536 keys, 64 MiB block cache, no compression, bloom filters (10 bits/key) "
      "on `messages`, `keys`, `meta`; one tenant (`ErasurePolicy::MessagesUnreadable`: each DEK is "
      "derived from the epoch key and the author's key), 16 authors, one UTC-day epoch. "
      "AES-256-GCM-SIV by RustCrypto `aes-gcm-siv` 0.11, built without `target-cpu=native`.")
    w("- **RocksDB (raw)**: the same RocksDB build and options (`cf_options`/`db_options` of "
      "`src/vault.rs`: the same five column families, no compression, the same bloom filters, "
      "block cache size and merge operator), the same keys from `chatvault::codec` (24-byte "
      "message key, 32-byte time-index key, counter merge) in one WriteBatch per message with "
      "`sync = false`, and as values the same postcard payload chatvault seals, unsealed. No "
      "wrapped keys, no key cache, no header.")
    sq = {k[len("sqlcipher."):]: v for k, v in info.items() if k.startswith("sqlcipher.")}
    if sq:
        w(f"- **SQLCipher {sq.get('cipher_version', '?')}** (SQLite {sq.get('sqlite_version()', '?')}) "
          f"through `rusqlite` 0.40 `bundled-sqlcipher`, crypto provider {sq.get('cipher_provider', '?')} "
          f"{sq.get('cipher_provider_version', '')}: opened with `PRAGMA key = '<passphrase>'`, then "
          "`journal_mode=WAL`, `synchronous=NORMAL`; everything else default. A `WITHOUT ROWID` "
          "`messages` table keyed by `(conversation, id)` with the same columns as the payload, "
          "an index on `(conversation, sent_at)`; prepared statements (`prepare_cached`). "
          "As read back in this run:")
        w("")
        w("  | PRAGMA | value |")
        w("  |---|---|")
        for k, v in sq.items():
            w(f"  | `{k}` | {v} |")
    w("")
    w(f"- **Data**: message bodies from {info.get('size_source', '?')}, "
      f"{info.get('size_source.messages', '?')} messages, cycled in order so every engine gets "
      f"the same sequence. Plaintext (postcard payload) bytes: {info.get('payload_bytes', '?')}. "
      f"Read sets: {info.get('read_set', '?')} messages in one conversation (`get_warm`, `get_cold`, `page_50`), "
      f"and {info.get('large_read_set', '?')} (`get_warm_200k`).")
    w("")

    # ---- summary
    w("## Summary")
    w("")
    w("| workload | chatvault | RocksDB | SQLCipher | chatvault/RocksDB | chatvault/SQLCipher | target | met? |")
    w("|---|---:|---:|---:|---:|---:|---|---|")
    for wl, title, _ in WORKLOADS:
        cells = []
        for e in ENGINES:
            base_wl = "get_warm" if (wl == "get_cold" and e != "chatvault") else wl
            r = res.get((base_wl, e, ""))
            cells.append(fmt_ns(r["ns"] / elements(r)) + ("/msg" if elements(r) > 1 else "") if r else "–")
        rr = speed_ratio(res, wl, "rocksdb")
        rs = speed_ratio(res, wl, "sqlcipher")
        tg = TARGETS.get(wl, {})
        tgt = ", ".join(f"≥ {v:g}x {ENGINE_NAMES[k].split()[0]}" for k, v in tg.items()) or "none set"
        met = []
        for k, v in tg.items():
            r = rr if k == "rocksdb" else rs
            if r is None:
                met.append("not measured")
            else:
                met.append(("**yes**" if r >= v else "**no**") + f" ({ENGINE_NAMES[k].split()[0]})")
        w(f"| {title} | {cells[0]} | {cells[1]} | {cells[2]} | {ratio_str(rr)} | {ratio_str(rs)} | {tgt} | {', '.join(met) or '–'} |")
    w("")
    w("Times are per message (the page: per page of 50, also shown per message below; two-thread "
      "appends: per message, both threads together).")
    w("")

    # ---- per workload
    w("## Workloads")
    for wl, title, desc in WORKLOADS:
        w("")
        w(f"### {title} (`{wl}`)")
        w("")
        w(desc)
        w("")
        w("| engine | time per iteration | 95% CI | messages/s | chatvault/engine ratio |")
        w("|---|---:|---|---:|---:|")
        cv = res.get((wl, "chatvault", ""))
        for e in ENGINES:
            base_wl = "get_warm" if (wl == "get_cold" and e != "chatvault") else wl
            r = res.get((base_wl, e, ""))
            if not r:
                w(f"| {ENGINE_NAMES[e]} | not measured | | | |")
                continue
            note = " (from `get_warm`)" if base_wl != wl else ""
            rel = f"{r['ns'] / cv['ns']:.2f}x" if cv and e != "chatvault" else ""
            rate = per_msg_rate(r)
            if wl == "import_corpus":
                msgs = float(info.get("import.messages", "0") or 0)
                rate = msgs / (r["ns"] / 1e9) if msgs else 0
            w(f"| {ENGINE_NAMES[e]}{note} | {fmt_ns(r['ns'])} | {fmt_ns(r['lo'])} – {fmt_ns(r['hi'])} | {rate:,.0f} | {rel} |")
        rr, rs = speed_ratio(res, wl, "rocksdb"), speed_ratio(res, wl, "sqlcipher")
        w("")
        w(f"chatvault/RocksDB **{ratio_str(rr)}**, chatvault/SQLCipher **{ratio_str(rs)}**"
          + (f"; targets: " + ", ".join(f"≥ {v:g}x {ENGINE_NAMES[k]}" for k, v in TARGETS[wl].items()) if wl in TARGETS else "") + ".")
        if wl == "import_corpus":
            w("")
            w(f"Imported: {info.get('import.source', '?')}, {info.get('import.messages', '?')} messages per iteration "
              "(10 iterations per engine).")

    # ---- aws-lc backend
    aws = load_criterion(os.path.join(args.work, "criterion-aws-lc"))
    how_p = os.path.join(args.work, "aws-lc.how")
    how = open(how_p).read().strip() if os.path.exists(how_p) else ""
    w("")
    w("## chatvault with the aws-lc-rs backend")
    w("")
    if not aws:
        w("Not measured in this run (no `aws-lc` feature and no applicable "
          "`benches/aws-lc-backend.patch`).")
    else:
        src = ("the `aws-lc` cargo feature" if how == "feature" else
               f"`benches/aws-lc-backend.patch` applied to a copy of commit {how.split()[-1]} "
               "(the proposed `aws-lc` feature; the working tree's uncommitted changes are not in it)")
        w(f"The `compare` benchmarks again, right after the run above, with chatvault built with {src}. "
          "The three engines are measured together again in this second run, so its ratios are "
          "self-contained; the RustCrypto column repeats the main run's chatvault figure for "
          "reference only (another run).")
        w("")
        w("| workload | chatvault, aws-lc-rs | chatvault, RustCrypto (main run) | RocksDB | SQLCipher | chatvault/RocksDB | chatvault/SQLCipher | targets met? |")
        w("|---|---:|---:|---:|---:|---:|---:|---|")
        for wl, title, _ in WORKLOADS:
            cv = aws.get((wl, "chatvault", ""))
            if not cv:
                continue
            base_wl = "get_warm" if wl == "get_cold" else wl
            rb, sb = aws.get((base_wl, "rocksdb", "")), aws.get((base_wl, "sqlcipher", ""))
            main = res.get((wl, "chatvault", ""))
            rr = rb["ns"] / cv["ns"] if rb else None
            rs = sb["ns"] / cv["ns"] if sb else None
            per = lambda r: (fmt_ns(r["ns"] / elements(r)) + ("/msg" if elements(r) > 1 else "")) if r else "–"
            met = []
            for k, v in TARGETS.get(wl, {}).items():
                r = rr if k == "rocksdb" else rs
                if r is not None:
                    met.append(("**yes**" if r >= v else "**no**") + f" ({ENGINE_NAMES[k].split()[0]} ≥ {v:g}x)")
            w(f"| {title} | {per(cv)} | {per(main)} | {per(rb)} | {per(sb)} | {ratio_str(rr)} | {ratio_str(rs)} | {', '.join(met) or '–'} |")
    w("")

    # ---- AEAD
    w("")
    w("## AES-256-GCM-SIV alone: RustCrypto vs aws-lc-rs")
    w("")
    w("Seal and open of one plaintext (in place, 69-byte AAD like a message record's, nonce given), "
      "per plaintext size. *RustCrypto native* is the same code built with "
      "`RUSTFLAGS=\"-C target-cpu=native\"` in its own target directory (`benches/aead-native/`).")
    w("")
    sizes = sorted({int(k[2]) for k in res if k[0] == "aead_seal" and k[2].isdigit()})
    w("| plaintext bytes | seal RustCrypto | seal RustCrypto native | seal aws-lc-rs | open RustCrypto | open RustCrypto native | open aws-lc-rs | envelope seal (chatvault) | envelope open (chatvault) |")
    w("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for s in sizes:
        def c(g, f):
            r = res.get((g, f, str(s)))
            return fmt_ns(r["ns"]) if r else "–"
        w(f"| {s} | {c('aead_seal', 'rustcrypto')} | {c('aead_native_seal', 'rustcrypto')} | {c('aead_seal', 'aws-lc-rs')} | "
          f"{c('aead_open', 'rustcrypto')} | {c('aead_native_open', 'rustcrypto')} | {c('aead_open', 'aws-lc-rs')} | "
          f"{c('envelope_seal', 'chatvault')} | {c('envelope_open', 'chatvault')} |")
    w("")
    def one(g, f):
        r = res.get((g, f, ""))
        return fmt_ns(r["ns"]) if r else "–"
    w(f"Building a cipher from a key: RustCrypto {one('aead_key_setup', 'rustcrypto')} "
      f"(native {one('aead_native_key_setup', 'rustcrypto')}), aws-lc-rs {one('aead_key_setup', 'aws-lc-rs')}. "
      f"A 12-byte nonce: `rand::thread_rng` {one('nonce', 'thread_rng')}, `getrandom` {one('nonce', 'getrandom')}. "
      "*Envelope* is chatvault's `envelope::seal_record`/`open_record` (header, AAD built from "
      "label, header and RocksDB key, a fresh nonce, output buffer) with RustCrypto.")
    w("")

    # ---- memory
    w("## Peak memory")
    w("")
    w("Each workload in its own process (`benches/peak_memory.rs`), measured by `/usr/bin/time -v` "
      "(maximum resident set size). *Import*: the same corpus subset as above into a new store. "
      "*Read a whole large conversation*: one conversation of "
      f"{int(parse_result(os.path.join(args.work, 'mem', 'build-chatvault.out')).get('messages', 0)):,} "
      "corpus messages (1 s apart: several epochs; written beforehand in another process and "
      "compacted/flushed), streamed oldest first (`Vault::messages`; RocksDB: one iterator; "
      "SQLCipher: one `SELECT … ORDER BY id`), every body decoded.")
    w("")
    w("| workload | engine | peak RSS | wall time | messages | messages/s |")
    w("|---|---|---:|---:|---:|---:|")
    for mode, label in [("import", "import of the corpus"), ("read", "read a whole large conversation")]:
        for e in ENGINES:
            t = parse_time_v(os.path.join(args.work, "mem", f"{mode}-{e}.time"))
            r = parse_result(os.path.join(args.work, "mem", f"{mode}-{e}.out"))
            if not t:
                w(f"| {label} | {ENGINE_NAMES[e]} | not measured | | | |")
                continue
            n = r.get("messages", 0)
            secs = r.get("seconds", 0)
            w(f"| {label} | {ENGINE_NAMES[e]} | {t.get('rss_kb', 0) / 1024:.1f} MiB | {t.get('wall', 0):.2f} s | {n:,.0f} | "
              f"{(n / secs if secs else 0):,.0f} |")
    w("")

    out.extend(render_shred(res, args.work, args.seconds, standalone=False))
    out.extend(render_rekey(res, args.work, args.seconds, standalone=False))
    out.extend(render_export_memory(args.work, standalone=False))

    # ---- misses
    miss = missed(res)
    w("## Targets missed: where the time goes")
    w("")
    if not miss:
        w("Every target is met in this run.")
    extra = [m for m in ["import_corpus/chatvault"]
             if os.path.exists(os.path.join(args.work, "perf-" + m.replace("/", "_") + ".txt"))]
    for mid in miss + extra:
        wl = mid.split("/")[0]
        w(f"### `{wl}`" + ("" if wl in TARGETS else " (no target: profiled for the analysis)"))
        w("")
        parts = []
        for base, want in TARGETS.get(wl, {}).items():
            r = speed_ratio(res, wl, base)
            parts.append(f"chatvault/{ENGINE_NAMES[base]} {ratio_str(r)} (target ≥ {want:g}x)")
        if parts:
            w("; ".join(parts) + ".")
            w("")
        ps = perf_summary(os.path.join(args.work, "perf-" + mid.replace("/", "_")))
        if not ps:
            w("No profile (perf not usable on this machine in this run).")
            w("")
            continue
        buckets, top = ps
        w(f"`perf record -F 1999` of `{mid}` alone for 8 s (criterion `--profile-time`; only that "
          "workload's store is set up, and its set-up is in the profile too, but the 8 s loop dominates). Self time by component "
          "(symbols classified by name; `other` is mostly unresolved frames and libstd):")
        w("")
        w("| component | share of samples |")
        w("|---|---:|")
        for name, pct in sorted(buckets.items(), key=lambda x: -x[1]):
            if pct >= 0.5:
                w(f"| {name} | {pct:.1f}% |")
        w("")
        w("<details><summary>Top symbols (self time)</summary>")
        w("")
        w("| self | symbol |")
        w("|---:|---|")
        for pct, kind, sym in top:
            w(f"| {pct:.1f}% | `{shorten(sym)}`{' (kernel)' if kind == 'k' else ''} |")
        w("")
        w("</details>")
        w("")

    notes = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "benches", "REPORT-NOTES.md")
    if os.path.exists(notes):
        w("## Analysis")
        w("")
        w(open(notes).read().strip())
        w("")

    # ---- everything else
    known = {wl for wl, _, _ in WORKLOADS} | {"aead_seal", "aead_open", "aead_key_setup", "aead_native_seal",
                                             "aead_native_open", "aead_native_key_setup", "nonce",
                                             "envelope_seal", "envelope_open", "shred",
                                             "rekey_pass"}
    others = sorted(k for k in res if k[0] not in known)
    w("## Every other benchmark")
    w("")
    w("Benchmarks in `benches/` that the sections above do not cover (for example those added by "
      "later issues), as criterion measured them in this run.")
    w("")
    if not others:
        w("None.")
    else:
        w("| benchmark | time per iteration | 95% CI |")
        w("|---|---:|---|")
        for k in others:
            r = res[k]
            w(f"| `{'/'.join(p for p in k if p)}` | {fmt_ns(r['ns'])} | {fmt_ns(r['lo'])} – {fmt_ns(r['hi'])} |")
    w("")
    return "\n".join(out)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--work", required=True)
    ap.add_argument("--missed", action="store_true")
    ap.add_argument("--seconds", type=int, default=0)
    ap.add_argument("--update-section", choices=["shred", "rekey", "export-memory"])
    ap.add_argument("--report", help="the existing report whose section --update-section replaces")
    args = ap.parse_args()
    res = load_criterion(os.path.join(args.work, "criterion"))
    if args.update_section:
        if not args.report or not os.path.exists(args.report):
            sys.exit("--update-section needs --report with an existing report")
        if args.update_section == "export-memory":
            sys.stdout.write(update_section(
                args.report, render_export_memory(args.work, True), EXPORT_HEADING))
            return
        if args.update_section == "rekey":
            if not any(k[0] == "rekey_pass" for k in res):
                sys.exit("no rekey_pass results in " + args.work)
            sys.stdout.write(update_section(
                args.report, render_rekey(res, args.work, args.seconds, True), REKEY_HEADING))
            return
        if not any(k[0] == "shred" for k in res):
            sys.exit("no shred results in " + args.work)
        sys.stdout.write(update_section(args.report, render_shred(res, args.work, args.seconds, True)))
        return
    if args.missed:
        print("\n".join(missed(res)))
        return
    if not res:
        sys.exit("no criterion results in " + args.work)
    print(render(args))


if __name__ == "__main__":
    main()
