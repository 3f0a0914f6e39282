// asm serve: the page. Plain ES module, no build step; everything it shows comes from /api.

const $ = (id) => document.getElementById(id);
const state = { config: null, file: null, target: null, job: null, events: null, result: null, pick: "a" };

// ---- drawing -------------------------------------------------------------------------------------
// A perceptual dark-to-bright colour map (after matplotlib's magma), 256 entries.
const STOPS = [[0, 0, 4], [28, 16, 68], [79, 18, 123], [129, 37, 129], [181, 54, 122], [229, 80, 100],
  [251, 135, 97], [254, 194, 135], [252, 253, 191]];
const LUT = Array.from({ length: 256 }, (_, i) => {
  const t = (i / 255) * (STOPS.length - 1), k = Math.min(STOPS.length - 2, Math.floor(t)), f = t - k;
  return STOPS[k].map((c, j) => Math.round(c + (STOPS[k + 1][j] - c) * f));
});

function fitCanvas(canvas) {
  const r = canvas.getBoundingClientRect();
  const w = Math.max(200, Math.round(r.width || canvas.width)), h = Math.max(60, Math.round(r.height || canvas.height));
  if (canvas.width !== w || canvas.height !== h) { canvas.width = w; canvas.height = h; }
  return canvas.getContext("2d");
}

export function drawSpectrogram(canvas, spec) {
  const ctx = fitCanvas(canvas);
  ctx.fillStyle = "#0b0d12"; ctx.fillRect(0, 0, canvas.width, canvas.height);
  if (!spec) return;
  const bytes = Uint8Array.from(atob(spec.data), (c) => c.charCodeAt(0));
  const img = new ImageData(spec.frames, spec.bins);
  for (let b = 0; b < spec.bins; b++) {
    for (let f = 0; f < spec.frames; f++) {
      const v = bytes[b * spec.frames + f], o = ((spec.bins - 1 - b) * spec.frames + f) * 4, c = LUT[v];
      img.data[o] = c[0]; img.data[o + 1] = c[1]; img.data[o + 2] = c[2]; img.data[o + 3] = 255;
    }
  }
  const off = document.createElement("canvas");
  off.width = spec.frames; off.height = spec.bins;
  off.getContext("2d").putImageData(img, 0, 0);
  ctx.imageSmoothingEnabled = true;
  ctx.drawImage(off, 0, 0, canvas.width, canvas.height);
  ctx.fillStyle = "rgba(230,232,238,.7)"; ctx.font = "11px sans-serif";
  for (const hz of [100, 1000, 5000]) {
    if (hz <= spec.fmin || hz >= spec.fmax) continue;
    const y = canvas.height * (1 - Math.log(hz / spec.fmin) / Math.log(spec.fmax / spec.fmin));
    ctx.fillText(hz >= 1000 ? `${hz / 1000} kHz` : `${hz} Hz`, 6, y + 4);
  }
  ctx.fillText(`${spec.seconds.toFixed(2)} s`, canvas.width - 48, canvas.height - 6);
}

function drawWave(canvas, wave) {
  const ctx = fitCanvas(canvas), h = canvas.height, n = wave.min.length;
  ctx.fillStyle = "#0b0d12"; ctx.fillRect(0, 0, canvas.width, h);
  const peak = Math.max(1e-6, ...wave.max.map(Math.abs), ...wave.min.map(Math.abs));
  ctx.fillStyle = "#54a0ff";
  for (let i = 0; i < n; i++) {
    const x = (i / n) * canvas.width, top = h / 2 - (wave.max[i] / peak) * (h / 2 - 3);
    const bottom = h / 2 - (wave.min[i] / peak) * (h / 2 - 3);
    ctx.fillRect(x, top, Math.max(1, canvas.width / n), Math.max(1, bottom - top));
  }
}

function drawCurve(canvas, curve, budget) {
  const ctx = fitCanvas(canvas), w = canvas.width, h = canvas.height, pad = 34;
  ctx.fillStyle = "#0b0d12"; ctx.fillRect(0, 0, w, h);
  ctx.strokeStyle = "#2a2f3d"; ctx.strokeRect(pad, 8, w - pad - 8, h - pad);
  if (!curve || !curve.length) return;
  const last = curve[curve.length - 1][0];
  const xmax = Math.max(budget || 0, last, 1);
  const ys = curve.map((c) => c[2]), ymax = Math.max(...ys), ymin = Math.min(...ys);
  const span = Math.max(1e-6, ymax - ymin);
  const X = (r) => pad + (r / xmax) * (w - pad - 8), Y = (v) => 8 + (1 - (v - ymin) / span) * (h - pad - 14) + 3;
  ctx.strokeStyle = "#ff9f43"; ctx.lineWidth = 2; ctx.beginPath();
  curve.forEach(([r, , b], i) => {
    if (i === 0) ctx.moveTo(X(r), Y(b)); else { ctx.lineTo(X(r), Y(curve[i - 1][2])); ctx.lineTo(X(r), Y(b)); }
  });
  ctx.lineTo(X(last), Y(ys[ys.length - 1])); ctx.stroke();
  ctx.fillStyle = "#8a90a2"; ctx.font = "11px sans-serif";
  ctx.fillText(ymax.toFixed(3), 2, 16); ctx.fillText(ymin.toFixed(3), 2, h - pad);
  ctx.fillText("0", pad, h - 10); ctx.fillText(`${xmax} renders`, w - 80, h - 10);
}

// ---- API -----------------------------------------------------------------------------------------
async function api(path, options = {}) {
  const res = await fetch(path, options);
  const body = res.headers.get("content-type")?.includes("json") ? await res.json() : await res.text();
  if (!res.ok) throw new Error(body?.detail ? (typeof body.detail === "string" ? body.detail : JSON.stringify(body.detail)) : res.statusText);
  return body;
}

function status(text, cls = "") { const el = $("job-status"); el.textContent = text; el.className = `status ${cls}`; }

async function loadConfig() {
  const c = state.config = await api("/api/config");
  $("synth").innerHTML = c.synths.map((s) => `<option${s === c.defaults.synth ? " selected" : ""}>${s}</option>`).join("");
  $("method").innerHTML = c.methods.map((m) => `<option value="${m}">${m === "auto" ? "auto (best available)" : m}</option>`).join("");
  $("budget").placeholder = `${c.defaults.budget} (default)`;
}

// ---- target --------------------------------------------------------------------------------------
async function upload() {
  if (!state.file) return;
  const form = new FormData();
  form.append("file", state.file);
  if ($("midi").files[0]) form.append("midi", $("midi").files[0]);
  form.append("synth", $("synth").value);
  $("drop-text").textContent = `Reading ${state.file.name}…`;
  $("start").disabled = true;
  try {
    const t = state.target = await api("/api/targets", { method: "POST", body: form });
    showTarget(t);
    $("start").disabled = false;
    status("Ready: choose the settings and press Match.");
  } catch (err) {
    state.target = null;
    $("target-view").hidden = true;
    status(err.message, "failed");
  }
  $("drop-text").textContent = `${state.file.name} · drop another sound to replace it`;
}

function noteName(p) { return ["C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B"][p % 12] + (Math.floor(p / 12) - 1); }

function showTarget(t) {
  $("target-view").hidden = false;
  const p = t.picture;
  $("target-meta").textContent = `${t.name} · ${p.seconds.toFixed(2)} s at ${p.sample_rate} Hz as ${t.synth} hears it`
    + ` · ${p.loudness_db.toFixed(1)} dBFS` + (t.midi ? " · notes from MIDI" : "");
  drawWave($("target-wave"), p.waveform);
  drawSpectrogram($("target-spec"), p.spectrogram);
  $("target-notes").innerHTML = t.notes.map((n) =>
    `<span class="chip">${noteName(n.pitch)} · v${n.velocity} · ${n.start.toFixed(2)}–${(n.start + n.duration).toFixed(2)} s</span>`).join("")
    + (t.notes.length ? `<span class="small muted">${t.notes_from}</span>` : "");
  $("target-warning").hidden = !t.warning;
  $("target-warning").textContent = t.warning ? `${t.warning} Give a note (e.g. C4) below.` : "";
}

function setupDrop() {
  const drop = $("drop");
  drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (e) => {
    e.preventDefault(); drop.classList.remove("over");
    if (e.dataTransfer.files[0]) { state.file = e.dataTransfer.files[0]; upload(); }
  });
  $("file").addEventListener("change", () => { if ($("file").files[0]) { state.file = $("file").files[0]; upload(); } });
  $("midi").addEventListener("change", upload);
  $("synth").addEventListener("change", upload);
}

// ---- job -----------------------------------------------------------------------------------------
async function startJob(e) {
  e.preventDefault();
  if (!state.target) return;
  const form = new FormData();
  form.append("target_id", state.target.id);
  for (const name of ["synth", "method", "budget", "time_limit", "note", "seed"]) {
    const v = $(name).value.trim();
    if (v !== "") form.append(name, v);
  }
  try {
    const job = await api("/api/jobs", { method: "POST", body: form });
    state.job = job.id;
    $("start").disabled = true; $("cancel").disabled = false;
    $("listen-card").hidden = true; $("home-card").hidden = true;
    drawCurve($("curve"), [], 0); drawSpectrogram($("best-spec"), null);
    status(job.waiting > 0 ? `Queued behind ${job.waiting} job(s)…` : "Starting…");
    follow(job.id);
  } catch (err) { status(err.message, "failed"); }
}

function follow(id) {
  if (state.events) state.events.close();
  const es = state.events = new EventSource(`/api/jobs/${id}/events`);
  es.addEventListener("job", (msg) => {
    const job = JSON.parse(msg.data);
    if (job.id !== state.job) return;
    update(job);
    if (["done", "failed", "cancelled"].includes(job.state)) { es.close(); state.events = null; }
  });
  es.onerror = () => { /* the browser reconnects by itself; a finished stream closes above */ };
}

function update(job) {
  const budget = job.budget || 0;
  $("progress-bar").style.width = budget ? `${Math.min(100, (100 * job.renders) / budget)}%` : "0";
  drawCurve($("curve"), job.curve, budget);
  if (job.preview) drawSpectrogram($("best-spec"), job.preview.spectrogram);
  const best = job.best != null && isFinite(job.best) ? ` · best ${job.best.toFixed(4)}` : "";
  const method = job.context ? ` · ${job.context.method}${job.context.model ? ` (${job.context.model})` : ""}` : "";
  if (job.state === "done") {
    status(`Done: ${job.result.renders} renders in ${job.result.seconds.toFixed(1)} s · mr-stft ${job.result.metrics["mr-stft"].toFixed(4)}`
      + ` · result #${job.result.result_id}`, "done");
    $("progress-bar").style.width = "100%";
    showResult(job);
  } else if (job.state === "failed" || job.state === "cancelled") {
    status(job.message || job.state, job.state === "failed" ? "failed" : "");
  } else {
    status(`${job.phase}${method} · ${job.renders}${budget ? ` / ${budget}` : ""} renders · ${job.elapsed.toFixed(0)} s${best}`);
  }
  const active = job.state === "queued" || job.state === "running";
  $("cancel").disabled = !active;
  $("start").disabled = active || !state.target;
}

// ---- listening -----------------------------------------------------------------------------------
const gainOf = (db, ref) => Math.min(1, Math.pow(10, (ref - db) / 20));

function levelMatch() {
  const r = state.result; if (!r) return;
  const lt = r.loudness["target.wav"], lm = state.matchLoudness ?? r.loudness["match.wav"];
  if (lt == null || lm == null) return;
  const ref = Math.min(lt, lm);
  $("audio-target").volume = gainOf(lt, ref);
  $("audio-match").volume = gainOf(lm, ref);
  $("levels").textContent = `levels matched: target ${lt.toFixed(1)} dB, match ${lm.toFixed(1)} dB`;
}

function current() { return state.pick === "a" ? $("audio-target") : $("audio-match"); }

function pick(which) {
  const from = current(), playing = !from.paused;
  state.pick = which;
  $("pick-a").classList.toggle("on", which === "a"); $("pick-b").classList.toggle("on", which === "b");
  const to = current();
  if (from !== to) {
    to.currentTime = Math.min(from.currentTime, (to.duration || from.currentTime));
    from.pause();
    if (playing) to.play();
  }
  $("play").textContent = playing ? "❚❚ Pause" : "▶ Play";
}

function setupListening() {
  $("pick-a").addEventListener("click", () => pick("a"));
  $("pick-b").addEventListener("click", () => pick("b"));
  $("play").addEventListener("click", () => {
    const a = current();
    if (a.paused) { a.play(); $("play").textContent = "❚❚ Pause"; } else { a.pause(); $("play").textContent = "▶ Play"; }
  });
  for (const id of ["audio-target", "audio-match"]) {
    $(id).addEventListener("ended", () => {
      if ($("loop").checked && $(id) === current()) { $(id).currentTime = 0; $(id).play(); }
      else $("play").textContent = "▶ Play";
    });
  }
  window.addEventListener("keydown", (e) => {
    if (e.target.tagName === "INPUT" || $("listen-card").hidden) return;
    if (e.key === "a" || e.key === "b") pick(e.key);
    if (e.key === " ") { e.preventDefault(); $("play").click(); }
  });
}

function metricsHtml(metrics) {
  const fmt = (k, v) => (k === "renders" ? String(v) : k === "seconds" ? `${Number(v).toFixed(1)} s` : Number(v).toFixed(3));
  return Object.entries(metrics).slice(0, 8).map(([k, v]) => `<div class="metric"><b>${fmt(k, v)}</b><span>${k}</span></div>`).join("");
}

function showResult(job) {
  const r = state.result = job.result, f = r.files;
  state.matchLoudness = null;
  $("listen-card").hidden = false; $("home-card").hidden = false;
  $("audio-target").src = f["target.wav"];
  $("audio-match").src = f["match.wav"];
  levelMatch();
  $("metrics").innerHTML = metricsHtml({ ...r.metrics, renders: r.renders, seconds: r.seconds });
  const rows = r.pareto.map((p) => `<tr><td>${p.k}</td><td>${p["mr-stft"] != null ? p["mr-stft"].toFixed(4) : "–"}</td>
    <td class="muted">${p.source || ""}</td>
    <td>${p.audio ? `<button type="button" class="secondary" data-k="${p.k}">listen as B</button>` : ""}</td>
    <td>${p.preset ? `<a href="${f[p.preset]}" download>preset</a>` : ""}</td></tr>`);
  $("pareto").querySelector("tbody").innerHTML = rows.join("");
  $("pareto").querySelectorAll("button[data-k]").forEach((b) => b.addEventListener("click", () => {
    const p = r.pareto[Number(b.dataset.k) - 1];
    $("audio-match").src = f[p.audio]; state.matchLoudness = p.loudness_db; levelMatch(); pick("b");
    $("audio-match").play(); $("play").textContent = "❚❚ Pause";
  }));
  const native = f.preset || null, fmt = r.preset_format || ".json";
  $("downloads").innerHTML = [
    native ? `<a class="primary" id="dl-preset" href="${native}" download>Preset (${fmt})</a>` : "",
    fmt !== ".json" && f["preset.json"] ? `<a id="dl-json" href="${f["preset.json"]}" download>Preset (.json)</a>` : "",
    `<a id="dl-match" href="${f["match.wav"]}?download=1" download>Rendered match (.wav)</a>`,
    `<a href="${f["match.json"]}" target="_blank">match.json</a>`,
  ].join("");
  $("picture").src = f["spectrograms.png"];
}

// ---- history -------------------------------------------------------------------------------------
async function loadHistory() {
  const kind = $("history-kind").value;
  const runs = await api(`/api/runs${kind ? `?kind=${kind}` : ""}`);
  $("runs").querySelector("tbody").innerHTML = runs.map((r) => `<tr data-id="${r.id}"><td>${r.id}</td><td>${r.kind}</td>
    <td>${escapeHtml(r.name)}</td><td>${r.status}</td><td>${r.synth || "–"}</td><td>${r.results}</td>
    <td>${r.mr_stft != null ? r.mr_stft.toFixed(4) : "–"}</td><td class="muted">${(r.started_at || "").replace("T", " ")}</td></tr>`).join("")
    || `<tr><td colspan="8" class="muted">No runs yet: matches and benchmarks appear here.</td></tr>`;
  $("runs").querySelectorAll("tr[data-id]").forEach((tr) => tr.addEventListener("click", () => showRun(tr.dataset.id)));
}

function escapeHtml(s) { return String(s ?? "").replace(/[&<>"]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" })[c]); }

async function showRun(id) {
  const d = await api(`/api/runs/${id}`), run = d.run;
  $("run-card").hidden = false;
  $("run-title").textContent = `Run ${run.id} · ${run.kind} · ${run.name}`;
  const table = `<table class="table"><thead><tr><th>target set</th><th>method</th><th>n</th><th>median mr-stft</th>
    <th>median renders</th></tr></thead><tbody>${d.summary.map((s) => `<tr><td>${s.target_set}</td><td>${s.method}</td><td>${s.n}</td>
    <td>${s.metrics["mr-stft"] ? s.metrics["mr-stft"].median.toFixed(4) : "–"}</td><td>${s.renders ? s.renders.median : "–"}</td></tr>`).join("")}
    </tbody></table>`;
  let extra = "";
  if (d.files) {
    const f = d.files;
    const fmt = d.preset_format || ".json";
    const player = (label, src) => (src ? `<figure class="player"><figcaption>${label}</figcaption><audio controls preload="metadata" src="${src}"></audio></figure>` : "");
    extra = `<div class="players">${player("target", f["target.wav"])}${player("match", f["match.wav"])}</div>
      <div class="downloads" style="margin-top:10px">${f.preset ? `<a class="primary" href="${f.preset}" download>Preset (${fmt})</a>` : ""}
      ${fmt !== ".json" && f["preset.json"] ? `<a href="${f["preset.json"]}" download>Preset (.json)</a>` : ""}
      ${f["match.json"] ? `<a href="${f["match.json"]}" target="_blank">match.json</a>` : ""}</div>
      ${f["spectrograms.png"] ? `<img id="run-picture" src="${f["spectrograms.png"]}" style="width:100%;margin-top:10px">` : ""}`;
  }
  if (d.report) extra += `<p><a href="${d.report}" target="_blank" rel="noopener">Open the HTML report</a></p>`;
  $("run-body").innerHTML = `<p class="muted">${run.status} · synth ${run.synth || "–"} · seed ${run.seed} · started ${run.started_at || "–"}</p>${table}${extra}`;
}

function showTab(tab) {
  document.querySelectorAll(".tab").forEach((a) => a.classList.toggle("active", a.dataset.tab === tab));
  $("page-match").hidden = tab !== "match"; $("page-history").hidden = tab !== "history";
  if (tab === "history") loadHistory().catch((err) => { $("run-body").textContent = err.message; });
}

// ---- start ---------------------------------------------------------------------------------------
async function main() {
  setupDrop(); setupListening();
  $("settings").addEventListener("submit", startJob);
  $("cancel").addEventListener("click", async () => {
    if (state.job) { try { await api(`/api/jobs/${state.job}/cancel`, { method: "POST" }); } catch (err) { status(err.message, "failed"); } }
  });
  $("history-refresh").addEventListener("click", () => loadHistory());
  $("history-kind").addEventListener("change", () => loadHistory());
  document.querySelectorAll(".tab").forEach((a) => a.addEventListener("click", () => showTab(a.dataset.tab)));
  window.addEventListener("hashchange", () => showTab(location.hash === "#history" ? "history" : "match"));
  drawCurve($("curve"), [], 0); drawSpectrogram($("best-spec"), null);
  try { await loadConfig(); } catch (err) { status(`cannot reach the server: ${err.message}`, "failed"); }
  if (location.hash === "#history") showTab("history");
  document.body.dataset.ready = "1";
}

main();
