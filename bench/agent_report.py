#!/usr/bin/env python3
"""bench/results/agent.md from the campaigns bench/agent.sh ran.

usage: agent_report.py FIREBREAK_BIN MANIFEST START_TXT COMMAND > agent.md

MANIFEST has one JSON line per campaign (mode, sampler, seed, campaign, db, wall,
exit). Every number below is read from `trials --format json`, `audit export`,
`logs` and `audit verify` of those databases; nothing is typed in by hand.
"""
import collections
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys

BIN, MANIFEST, START, COMMAND = sys.argv[1:5]


def fb(db, *args, check=True):
    out = subprocess.run([BIN, "--storage", f"sqlite://{db}", *args],
                         capture_output=True, text=True)
    if check and out.returncode != 0:
        sys.exit(f"agent_report: firebreak {' '.join(args)} failed: {out.stderr}")
    return out


def entries(db):
    """The ledger's payloads, in order."""
    lines = fb(db, "audit", "export").stdout.splitlines()
    records = [json.loads(line) for line in lines if line.strip()]
    return [json.loads(r["payload"]) for r in records if "payload" in r]


def quartiles(values):
    if len(values) < 2:
        return values[0], values[0], values[0]
    q1, q2, q3 = statistics.quantiles(values, n=4, method="inclusive")
    return q1, statistics.median(values), q3


def pct(part, whole):
    return f"{100 * part / whole:.0f} % ({part}/{whole})" if whole else "—"


runs = [json.loads(line) for line in open(MANIFEST) if line.strip()]
for run in runs:
    run["trials"] = json.loads(fb(run["db"], "trials", run["campaign"], "--format", "json").stdout)
    run["ledger"] = entries(run["db"])
    run["answers"] = [p["data"] for p in run["ledger"] if p["kind"] == "agent_answered"]
    run["verify"] = fb(run["db"], "audit", "verify", check=False).returncode

out = []
w = out.append
load = os.getloadavg()
w("# The LLM agent proposer with a real local model")
w("")
w(f"Written by `{COMMAND}` (bench/agent.sh, bench/agent_report.py) on "
  f"{datetime.date.today().isoformat()}: {os.cpu_count()} cores, {platform.system()} "
  f"{platform.release()}, load average {load[0]:.1f} at the end (the machine is shared "
  "with other agents' builds). The model: Gemma 3 270M (the pretrained base model, "
  "Q4_K_M GGUF) served by llama.cpp's `llama-server` from `scripts/local-llm.sh start` "
  "(`-t 1`, one slot, constrained decoding under the JSON schema of each request; "
  "docs/local-llm.md). Release build, one worker per campaign. Every figure is read "
  "from the campaigns' `trials --format json`, `audit export`, `logs` and "
  "`audit verify`.")
w("")
bad = [r["campaign"] for r in runs if r["exit"] != 0]
unverified = [r["campaign"] for r in runs if r["verify"] != 0]
w(f"Campaigns: {len(runs)}; exit status 0 for {len(runs) - len(bad)}"
  + (f" (not: {', '.join(bad)})" if bad else "")
  + f"; `audit verify` passes on {len(runs) - len(unverified)}"
  + (f" (not: {', '.join(unverified)})" if unverified else "") + ".")

# Config mode.
config = [r for r in runs if r["mode"] == "config"]
if config:
    seeds = sorted({r["seed"] for r in config})
    evals = max(len(r["trials"]) for r in config)
    w("")
    w(f"## Config mode: NAS-Bench-201 (CIFAR-10 validation accuracy), {evals} evaluations")
    w("")
    w(f"{len(seeds)} campaign seeds ({', '.join(map(str, seeds))}), the same for every "
      "proposer; the space of examples/nasbench201.toml (six categorical edges, 15,625 "
      "cells); the agent with its defaults (temperature 0.2, history 20, max_invalid 3, "
      "fallback TPE). Best = the campaign's highest val_accuracy; median [quartiles] "
      "over seeds.")
    w("")
    w("| proposer | best val_accuracy, median [q1, q3] | valid answers | trials by the agent / by its fallback | distinct cells among the agent's trials (median) | seconds per answer | tokens per campaign (median) |")
    w("|---|---|---|---|---|---|---|")
    for sampler in ["agent", "tpe", "random"]:
        group = [r for r in config if r["sampler"] == sampler]
        if not group:
            continue
        bests = [max(t["metrics"]["val_accuracy"] for t in r["trials"]
                     if "val_accuracy" in t["metrics"]) for r in group]
        q1, q2, q3 = quartiles(bests)
        cells = f"{q2:.2f} [{q1:.2f}, {q3:.2f}]"
        if sampler == "agent":
            answers = [a for r in group for a in r["answers"]]
            valid = sum(a["outcome"] == "proposal" for a in answers)
            by_agent = sum(t["proposer"] == "agent" for r in group for t in r["trials"])
            total = sum(len(r["trials"]) for r in group)
            distinct = statistics.median(
                len({json.dumps(t["params"], sort_keys=True) for t in r["trials"]
                     if t["proposer"] == "agent"}) for r in group)
            seconds = sum(r["wall"] for r in group) / max(len(answers), 1)
            tokens = statistics.median(
                sum(a["prompt_tokens"] + a["completion_tokens"] for a in r["answers"])
                for r in group)
            w(f"| agent (gemma-3-270m) | {cells} | {pct(valid, len(answers))} | "
              f"{by_agent} / {total - by_agent} | {distinct:g} | {seconds:.2f} | {tokens:,.0f} |")
        else:
            seconds = sum(r["wall"] for r in group) / sum(len(r["trials"]) for r in group)
            w(f"| {sampler} | {cells} | — | — | — | {seconds:.3f} (per trial) | — |")
    agent_runs = [r for r in config if r["sampler"] == "agent"]
    reasons = collections.Counter(a.get("reason", "")[:100] for r in agent_runs
                                  for a in r["answers"] if a["outcome"] != "proposal")
    if reasons:
        w("")
        w("Refused answers of the config agent, by reason (first 100 characters):")
        w("")
        for reason, count in reasons.most_common(8):
            w(f"- {count} × {reason}")
    w("")
    w("Per seed (best val_accuracy):")
    w("")
    w("| seed | " + " | ".join(s for s in ["agent", "tpe", "random"]
                                if any(r["sampler"] == s for r in config)) + " |")
    w("|---|" + "---|" * len({r["sampler"] for r in config}))
    for seed in seeds:
        row = []
        for sampler in ["agent", "tpe", "random"]:
            for r in config:
                if r["sampler"] == sampler and r["seed"] == seed:
                    row.append(f"{max(t['metrics'].get('val_accuracy', float('-inf')) for t in r['trials']):.2f}")
        w(f"| {seed} | " + " | ".join(row) + " |")

# Code mode.
code = [r for r in runs if r["mode"] == "code"]
parent = [r for r in runs if r["mode"] == "parent"]
if code:
    answers = [a for r in code for a in r["answers"]]
    applied = sum(a["outcome"] == "proposal" for a in answers)
    ran = scored = 0
    best = None
    for r in code:
        for t in r["trials"]:
            if t["proposer"] != "agent":
                continue
            if t["state"] == "complete":
                ran += 1
                scored += 1
                score = t["metrics"].get("val_accuracy")
                if score is not None and (best is None or score > best[0]):
                    best = (score, r["campaign"], t["number"])
            elif t["state"] == "failed":
                logs = fb(r["db"], "logs", r["campaign"], str(t["number"]), check=False).stdout
                ran += bool(logs.strip())
    fallback = sum(t["proposer"] != "agent" for r in code for t in r["trials"])
    requests = len({a["request_sha256"] for a in answers})
    seconds = sum(r["wall"] for r in code) / max(len(answers), 1)
    tokens = sum(a["prompt_tokens"] + a["completion_tokens"] for a in answers)
    parent_score = None
    for r in parent:
        scores = [t["metrics"].get("val_accuracy") for t in r["trials"] if t["state"] == "complete"]
        parent_score = scores[0] if scores else None
    w("")
    w(f"## Code mode: examples/agent, {len(answers)} candidates")
    w("")
    w(f"examples/agent/code.toml as shipped (temperature 0.7, max_tokens 1500, "
      f"debug_rounds 2, max_invalid 3, sandboxed, scored by the engine), three trials "
      f"per campaign on campaign seeds 1–{len(code)}, until the agent had answered at "
      f"least the number of candidates asked for. A candidate is one answer of the "
      f"model; applied = a proposal (whole files or a diff that applies to editable "
      f"files only); ran = its trial completed, or failed after the program ran and "
      f"logged; scored = complete, with the engine's val_accuracy. The parent is "
      f"examples/agent/program/train.py run unchanged in a one-trial campaign whose "
      f"endpoint does not answer (the fallback runs the workspace as it is).")
    w("")
    w("| candidates | applied | ran | scored | best val_accuracy of a candidate | the parent's val_accuracy | seconds per answer | tokens |")
    w("|---|---|---|---|---|---|---|---|")
    best_text = f"{best[0]:.4f} ({best[1]} trial {best[2]})" if best else "none scored"
    parent_text = f"{parent_score:.4f}" if parent_score is not None else "not scored"
    w(f"| {len(answers)} | {pct(applied, len(answers))} | {pct(ran, len(answers))} | "
      f"{pct(scored, len(answers))} | {best_text} | {parent_text} | {seconds:.2f} | {tokens:,} |")
    w("")
    w(f"Distinct requests among the {len(answers)} answers: {requests}. Trials run by "
      f"the fallback after max_invalid refusals in a row (the parent program, "
      f"unchanged): {fallback}.")
    reasons = collections.Counter(a.get("reason", "")[:100] for a in answers
                                  if a["outcome"] != "proposal")
    failures = collections.Counter((t.get("error") or "")[:100] for r in code for t in r["trials"]
                                   if t["proposer"] == "agent" and t["state"] == "failed")
    if reasons:
        w("")
        w("Refused answers, by reason (first 100 characters):")
        w("")
        for reason, count in reasons.most_common(8):
            w(f"- {count} × {reason}")
    if failures:
        w("")
        w("Failed candidates, by error (first 100 characters):")
        w("")
        for error, count in failures.most_common(8):
            w(f"- {count} × {error}")
print("\n".join(out))
