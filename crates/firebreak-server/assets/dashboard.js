// firebreak's dashboard script: CSRF for htmx, plots, live updates from the
// ledger's event stream, the in-browser inclusion-proof check, "verify now",
// and signing decisions with WebCrypto Ed25519 from a key file the person
// picks (the private key never leaves this page).
"use strict";

const firebreak = (window.firebreak = { history: [], errors: [] });
const csrf = () => document.querySelector('meta[name="csrf-token"]')?.content || "";

document.addEventListener("htmx:configRequest", (e) => {
  e.detail.headers["X-CSRF-Token"] = csrf();
});

const enc = new TextEncoder();
const hex = (bytes) => Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
const unhex = (text) => new Uint8Array(text.match(/../g).map((h) => parseInt(h, 16)));
const b64 = (bytes) => btoa(String.fromCharCode(...bytes));
const unb64 = (text) => Uint8Array.from(atob(text), (c) => c.charCodeAt(0));
const concat = (...parts) => {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) { out.set(p, at); at += p.length; }
  return out;
};

// ---- signing decisions -------------------------------------------------

// The exact bytes a decision signs (docs/ledger-format.md): the domain line,
// then the JCS form of {decision, reason, request, v}: members sorted, strings
// as JSON.stringify writes them (RFC 8785 uses the same escaping).
function decisionMessage(verdict, requestHash, reason) {
  const body = `{"decision":${JSON.stringify(verdict)},"reason":${JSON.stringify(reason)},` +
    `"request":${JSON.stringify(requestHash)},"v":1}`;
  return enc.encode("firebreak decision v1\n" + body);
}

// An Ed25519 signing key from a PKCS#8 PEM file: the 32-byte seed is taken
// from the file and wrapped as a version-1 PKCS#8 structure, which every
// WebCrypto implementation imports.
async function signingKey(pem) {
  const body = pem.replace(/-----[^-]+-----/g, "").replace(/\s+/g, "");
  const der = unb64(body);
  let seed = null;
  for (let i = 0; i + 36 <= der.length; i++) {
    if (der[i] === 0x04 && der[i + 1] === 0x22 && der[i + 2] === 0x04 && der[i + 3] === 0x20) {
      seed = der.slice(i + 4, i + 36);
      break;
    }
  }
  if (!seed) throw new Error("the file is not an Ed25519 private key (PKCS#8 PEM)");
  const v1 = concat(unhex("302e020100300506032b657004220420"), seed);
  return crypto.subtle.importKey("pkcs8", v1, { name: "Ed25519" }, false, ["sign"]);
}

async function decide(form, verdict) {
  const out = form.querySelector(".result");
  const id = form.dataset.request;
  const by = form.elements.by.value.trim();
  const reason = form.elements.reason.value.trim();
  let signature = form.elements.signature.value.trim();
  out.className = "result pending";
  try {
    if (verdict === "reject" && !reason) throw new Error("a rejection needs a reason");
    if (!signature) {
      const file = form.elements.key.files[0];
      if (!file) throw new Error("pick your key file, or paste a signature made with `firebreak sign`");
      const key = await signingKey(await file.text());
      const message = decisionMessage(verdict, form.dataset.hash, reason);
      signature = b64(new Uint8Array(await crypto.subtle.sign({ name: "Ed25519" }, key, message)));
    }
    out.textContent = "sending…";
    const response = await fetch(`/api/v1/requests/${encodeURIComponent(id)}/decision`, {
      method: "POST",
      headers: { "content-type": "application/json", "x-csrf-token": csrf() },
      body: JSON.stringify({ by, verdict, reason, signature }),
    });
    const answer = await response.json();
    if (!response.ok) throw new Error(answer.error || response.statusText);
    out.className = "result ok";
    out.textContent = `recorded: ${verdict} by ${by}; request is ${answer.state} ` +
      `(${answer.approvals.length} approval(s))`;
  } catch (error) {
    out.className = "result bad";
    out.textContent = String(error.message || error);
  }
}

for (const form of document.querySelectorAll("form.decide")) {
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    decide(form, e.submitter ? e.submitter.value : "approve");
  });
}

// ---- the inclusion proof, checked here ---------------------------------

async function sha256(bytes) {
  return new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
}

// RFC 9162 section 2.1.3.2: the root an audit path leads to.
async function rootFrom(index, size, leaf, path) {
  let fn = BigInt(index), sn = BigInt(size) - 1n, r = leaf;
  for (const p of path) {
    if (sn === 0n) return null;
    if ((fn & 1n) === 1n || fn === sn) {
      r = await sha256(concat([1], p, r));
      while ((fn & 1n) === 0n && fn !== 0n) { fn >>= 1n; sn >>= 1n; }
    } else {
      r = await sha256(concat([1], r, p));
    }
    fn >>= 1n; sn >>= 1n;
  }
  return sn === 0n ? r : null;
}

async function checkProof() {
  const holder = document.getElementById("proof-data");
  const out = document.getElementById("proof-check");
  if (!holder || !out) return;
  const proof = JSON.parse(holder.textContent);
  try {
    const root = await rootFrom(proof.seq, proof.tree_size, unhex(proof.leaf_hash),
      proof.proof.map(unhex));
    if (!root || hex(root) !== proof.root) throw new Error("the audit path does not lead to the root");
    const cp = proof.checkpoint;
    if (!cp) {
      out.className = "pending";
      out.textContent = `the path leads to the ledger's root ${proof.root.slice(0, 16)}… (no signed checkpoint covers this entry yet)`;
      return;
    }
    if (cp.root !== proof.root || cp.tree_size !== proof.tree_size) throw new Error("the proof is not for the checkpoint's tree");
    const message = enc.encode("firebreak checkpoint v1\n" +
      `{"at":${JSON.stringify(cp.at)},"root":${JSON.stringify(cp.root)},"tree_size":${cp.tree_size},"v":${cp.v}}`);
    const key = await crypto.subtle.importKey("raw", unb64(cp.key.replace(/^ed25519:/, "")),
      { name: "Ed25519" }, false, ["verify"]);
    if (!(await crypto.subtle.verify({ name: "Ed25519" }, key, unb64(cp.signature), message))) {
      throw new Error("the checkpoint's signature does not verify");
    }
    out.className = "ok";
    out.textContent = `verified in this browser: entry ${proof.seq} is in the tree of ${cp.tree_size} entries ` +
      `whose root ${cp.root.slice(0, 16)}… is signed by ${cp.key} at ${cp.at}`;
  } catch (error) {
    out.className = "bad";
    out.textContent = "NOT verified: " + (error.message || error);
  }
}

// ---- plots -------------------------------------------------------------

let data = null;
const plots = {};

function better(direction) {
  return direction === "maximize" ? Math.max : Math.min;
}

function drawHistory() {
  const el = document.getElementById("plot-history");
  if (!el || !window.uPlot) return;
  const done = data.trials.filter((t) => typeof t.v === "number");
  firebreak.history = done.map((t) => ({ n: t.n, v: t.v }));
  const pick = better(data.direction);
  let best = null;
  const xs = [], ys = [], bs = [];
  for (const t of done) {
    best = best === null ? t.v : pick(best, t.v);
    xs.push(t.n); ys.push(t.v); bs.push(best);
  }
  plots.history?.destroy();
  plots.history = new uPlot({
    width: el.clientWidth || 560, height: 260,
    scales: { x: { time: false } },
    series: [{ label: "trial" },
      { label: data.metric, stroke: "#3867d6", width: 0, points: { show: true, size: 5, fill: "#3867d6" } },
      { label: "best so far", stroke: "#b3401a", width: 2, points: { show: false } }],
  }, [xs, ys, bs], el);
}

function drawCurves() {
  const el = document.getElementById("plot-curves");
  if (!el || !window.uPlot) return;
  const withCurves = data.trials.filter((t) => t.c.length > 1).slice(-60);
  const steps = [...new Set(withCurves.flatMap((t) => t.c.map((p) => p[0])))].sort((a, b) => a - b);
  const series = [{ label: "step" }];
  const columns = [steps];
  for (const t of withCurves) {
    const byStep = new Map(t.c.map((p) => [p[0], p[1]]));
    columns.push(steps.map((s) => (byStep.has(s) ? byStep.get(s) : null)));
    series.push({ label: `#${t.n}`, stroke: t.state === "pruned" ? "#9aa5b1" : "#3867d6",
      dash: t.state === "pruned" ? [4, 4] : undefined, spanGaps: true, points: { show: false } });
  }
  plots.curves?.destroy();
  if (steps.length === 0) { el.textContent = "no intermediate reports yet"; return; }
  plots.curves = new uPlot({ width: el.clientWidth || 560, height: 260, legend: { show: false },
    scales: { x: { time: false } }, series }, columns, el);
}

function numeric(values) {
  // Categorical values become their index among the sorted distinct ones.
  if (values.every((v) => v === null || typeof v === "number")) return values;
  const keys = [...new Set(values.filter((v) => v !== null).map(String))].sort();
  return values.map((v) => (v === null ? null : keys.indexOf(String(v))));
}

function drawParallel() {
  const canvas = document.getElementById("plot-parallel");
  if (!canvas) return;
  canvas.width = Math.max(300, canvas.parentElement.clientWidth - 16);
  const ctx = canvas.getContext("2d");
  const done = data.trials.filter((t) => typeof t.v === "number");
  const axes = [...data.params, data.metric];
  const columns = axes.map((_, i) => numeric(done.map((t) => (i < data.params.length ? t.p[i] : t.v))));
  const w = canvas.width, h = canvas.height, pad = 30;
  ctx.clearRect(0, 0, w, h);
  const x = (i) => pad + (i * (w - 2 * pad)) / Math.max(1, axes.length - 1);
  const ranges = columns.map((col) => {
    const vals = col.filter((v) => v !== null);
    return [Math.min(...vals), Math.max(...vals)];
  });
  const y = (i, v) => {
    const [lo, hi] = ranges[i];
    return h - pad - ((v - lo) / (hi - lo || 1)) * (h - 2 * pad);
  };
  const values = done.map((t) => t.v);
  const [vlo, vhi] = [Math.min(...values), Math.max(...values)];
  done.forEach((t, row) => {
    const q = (t.v - vlo) / (vhi - vlo || 1);
    const good = data.direction === "maximize" ? q : 1 - q;
    ctx.strokeStyle = `rgba(${Math.round(200 - 150 * good)}, ${Math.round(80 + 100 * good)}, 200, 0.5)`;
    ctx.beginPath();
    let started = false;
    axes.forEach((_, i) => {
      const v = columns[i][row];
      if (v === null) return;
      if (started) ctx.lineTo(x(i), y(i, v)); else { ctx.moveTo(x(i), y(i, v)); started = true; }
    });
    ctx.stroke();
  });
  ctx.fillStyle = "#1d232a";
  ctx.font = "11px system-ui";
  axes.forEach((name, i) => {
    ctx.fillRect(x(i), pad, 1, h - 2 * pad);
    ctx.fillText(name, Math.max(0, x(i) - 20), pad - 10);
  });
}

function drawSlice() {
  const el = document.getElementById("plot-slice");
  const select = document.getElementById("slice-param");
  if (!el || !select || !window.uPlot) return;
  const i = data.params.indexOf(select.value);
  const done = data.trials.filter((t) => typeof t.v === "number" && i >= 0 && t.p[i] !== null);
  const xs = numeric(done.map((t) => t.p[i]));
  const order = xs.map((_, k) => k).sort((a, b) => xs[a] - xs[b]);
  plots.slice?.destroy();
  plots.slice = new uPlot({ width: el.clientWidth || 560, height: 240, scales: { x: { time: false } },
    series: [{ label: select.value }, { label: data.metric, stroke: "#3867d6", width: 0,
      points: { show: true, size: 5, fill: "#3867d6" } }] },
  [order.map((k) => xs[k]), order.map((k) => done[k].v)], el);
}

function drawAll() {
  drawHistory(); drawCurves(); drawParallel(); drawSlice();
}

// ---- live updates ------------------------------------------------------

function live(campaign, onEntry) {
  const url = "/api/v1/events" + (campaign ? `?campaign=${encodeURIComponent(campaign)}` : "");
  const source = new EventSource(url);
  const handle = (e) => onEntry(JSON.parse(e.data));
  for (const kind of ["trial_started", "trial_finished", "trial_requeued", "request_filed",
    "request_decided", "request_closed", "tripwire_tripped", "spec_changed", "run_ended"]) {
    source.addEventListener(kind, handle);
  }
  source.onmessage = handle;
  firebreak.source = source;
}

async function refreshCampaign() {
  const response = await fetch(`/campaigns/${encodeURIComponent(data.campaign)}/data`);
  if (!response.ok) return;
  data = await response.json();
  drawAll();
  const filter = document.getElementById("trial-filter");
  if (filter && window.htmx) htmx.trigger(filter, "refresh");
}

let pending = null;
function soon(fn) {
  if (pending) return;
  pending = setTimeout(() => { pending = null; fn(); }, 400);
}

function start() {
  const holder = document.getElementById("campaign-data");
  if (holder) {
    data = JSON.parse(holder.textContent);
    drawAll();
    document.getElementById("slice-param")?.addEventListener("change", drawSlice);
    live(data.campaign, (entry) => {
      if (entry.kind.startsWith("trial_")) soon(refreshCampaign);
    });
  }
  checkProof();
  const verify = document.getElementById("verify-now");
  if (verify) {
    verify.addEventListener("click", async () => {
      const out = document.getElementById("verify-result");
      out.className = "pending";
      out.textContent = "verifying…";
      let job = await (await fetch("/api/v1/verify", { method: "POST", headers: { "x-csrf-token": csrf() } })).json();
      while (job.state === "running") {
        await new Promise((r) => setTimeout(r, 500));
        job = await (await fetch(`/api/v1/verify/${job.id}`)).json();
      }
      const ok = job.state === "done" && job.result.ok;
      out.className = ok ? "ok" : "bad";
      out.textContent = ok
        ? `verified: ${job.result.entries} entries, root ${job.result.root.slice(0, 16)}…, ${job.result.checkpoints} checkpoints`
        : `FAILED: ${job.error || job.result.reason}`;
    });
  }
  const ledger = document.querySelector("#ledger tbody");
  if (ledger) {
    live(null, (entry) => {
      const row = document.createElement("tr");
      row.dataset.seq = entry.seq;
      for (const text of [entry.seq, entry.campaign, entry.kind, JSON.stringify(entry.payload).slice(0, 300)]) {
        const cell = document.createElement("td");
        cell.textContent = text;
        row.appendChild(cell);
      }
      ledger.appendChild(row);
      const size = document.getElementById("ledger-size");
      if (size) size.textContent = entry.seq + 1;
    });
  }
  if (document.getElementById("inbox")) {
    live(null, (entry) => {
      if (entry.kind.startsWith("request_")) {
        let note = document.getElementById("inbox-changed");
        if (!note) {
          note = document.createElement("p");
          note.id = "inbox-changed";
          note.className = "pending";
          note.innerHTML = 'Requests changed. <a href="/inbox">Reload</a>';
          document.getElementById("inbox").before(note);
        }
      }
    });
  }
}

window.addEventListener("error", (e) => firebreak.errors.push(String(e.message)));
document.readyState === "loading" ? document.addEventListener("DOMContentLoaded", start) : start();
