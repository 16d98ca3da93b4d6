// proofwatch dashboard: live status from /api/events (server-sent events read with fetch, so a
// token can be sent), polling /api/status when the stream is down. Everything a job or a
// worker wrote is put in the page as text (textContent), never as HTML.
"use strict";
(() => {
  const TOKEN_KEY = "proofwatch.token";
  const HOUR = 3600 * 1000;
  const STATES_LATE = new Set(["STALLED", "SILENT"]);
  const LIVE = new Set(["STARTING", "RUNNING", "STALLED", "BLOCKED", "SILENT", "VERIFYING"]);

  let token = null;
  let doc = null;
  let offset = 0; // browser clock minus daemon clock, ms
  let samples = []; // {t, cpu, temp}
  let lastSampleAt = null;
  let retry = 1000;
  let fleet = null; // the last /api/fleet answer; null: no shared store (404) or not read yet
  let fleetError = null;
  let fleetOff = false; // the daemon has no shared store: stop asking
  const cards = new Map();
  const alertBoxes = new Map();
  const openDetails = new Set();
  const pendingAcks = new Set();

  const $ = (id) => document.getElementById(id);

  function el(tag, props, ...children) {
    const node = document.createElementNS(tag === "svg" || tag === "polyline" || tag === "text"
      ? "http://www.w3.org/2000/svg" : "http://www.w3.org/1999/xhtml", tag);
    for (const [k, v] of Object.entries(props || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k === "class") node.setAttribute("class", v);
      else if (k.startsWith("data-")) node.setAttribute(k, String(v));
      else if (k === "text") node.textContent = String(v);
      else node.setAttribute(k, String(v));
    }
    for (const c of children.flat()) {
      if (c === null || c === undefined || c === false) continue;
      node.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return node;
  }

  // replaceChildren() would turn a null into the text "null": leave the gaps out
  function put(node, ...kids) {
    node.replaceChildren(...kids.flat().filter((k) => k !== null && k !== undefined && k !== false));
  }

  // ---- tokens and requests ------------------------------------------------------------
  function loadToken() {
    const m = /(?:^|[#&])token=([^&]+)/.exec(location.hash);
    if (m) {
      token = decodeURIComponent(m[1]);
      try { localStorage.setItem(TOKEN_KEY, token); } catch (e) { /* private mode */ }
      history.replaceState(null, "", location.pathname + location.search);
    } else {
      try { token = localStorage.getItem(TOKEN_KEY); } catch (e) { token = null; }
    }
  }

  function authHeaders() {
    return token ? { Authorization: "Bearer " + token } : {};
  }

  async function api(method, path) {
    let response;
    try {
      response = await fetch(path, { method, headers: authHeaders(), cache: "no-store" });
    } catch (e) {
      return { status: 0, body: { ok: false, error: "the daemon cannot be reached" } };
    }
    let body = null;
    try { body = await response.json(); } catch (e) { body = null; }
    if (response.status === 401) showAuth(body && body.error);
    return { status: response.status, body };
  }

  function showAuth(why) {
    $("auth").hidden = false;
    $("auth-why").textContent = (token ? "The saved token was refused" : "This daemon needs its API token")
      + (why ? ": " + why : ".");
  }

  function toast(text, kind) {
    const t = $("toast");
    t.textContent = text;
    t.dataset.kind = kind || "info";
    t.hidden = false;
    clearTimeout(toast.timer);
    toast.timer = setTimeout(() => { t.hidden = true; }, 4500);
  }

  // ---- time -------------------------------------------------------------------------------
  const daemonNow = () => Date.now() - offset;

  function ago(iso) {
    if (!iso) return "–";
    return span(daemonNow() - Date.parse(iso));
  }

  function span(ms) {
    const s = Math.max(0, Math.floor(ms / 1000));
    if (s < 60) return s + "s";
    if (s < 3600) return Math.floor(s / 60) + "m" + String(s % 60).padStart(2, "0") + "s";
    if (s < 86400) return Math.floor(s / 3600) + "h" + String(Math.floor((s % 3600) / 60)).padStart(2, "0") + "m";
    return Math.floor(s / 86400) + "d" + Math.floor((s % 86400) / 3600) + "h";
  }

  const num = (v) => (Number.isInteger(v) ? String(v) : (Math.round(v * 100) / 100).toString());

  // ---- rendering ------------------------------------------------------------------------
  function render() {
    if (!doc) return;
    const sup = doc.supervisor;
    $("daemon").textContent = `${sup.host} · pid ${sup.pid} · v${sup.version} · up ${ago(sup.started_at)}`;
    const firing = doc.alerts.filter((a) => a.state !== "acknowledged").length;
    document.title = (firing ? `(${firing}) ` : "") + "proofwatch";
    renderHost();
    renderAlerts();
    renderJobs();
    renderRecent();
    renderFleet();
    const n = doc.notify || { outbox_depth: 0, silences: [] };
    $("notify").textContent = `outbox ${n.outbox_depth}` + (n.silences.length
      ? " · silenced: " + n.silences.map((s) => `${s.target} until ${new Date(s.until).toLocaleTimeString()}`).join(", ")
      : "");
  }

  function renderJobs() {
    const box = $("jobs");
    const names = Object.keys(doc.jobs);
    $("job-count").textContent = names.length;
    for (const name of names) {
      let card = cards.get(name);
      if (!card) {
        card = el("article", { class: "job", "data-job": name });
        cards.set(name, card);
      }
      fillJob(card, name, doc.jobs[name]);
      box.append(card);
    }
    for (const [name, card] of cards) {
      if (!(name in doc.jobs)) { card.remove(); cards.delete(name); }
    }
  }

  function fillJob(card, name, j) {
    card.dataset.state = j.state;
    const live = LIVE.has(j.state);
    if (live) card.dataset.live = "true"; else delete card.dataset.live;
    const third = j.stall_deadline && j.state === "RUNNING"
      ? ["stalls in", span(Date.parse(j.stall_deadline) - daemonNow())]
      : j.ended_at ? ["ended", ago(j.ended_at)] : j.next_start_at && !j.run_id
        ? ["starts in", span(Date.parse(j.next_start_at) - daemonNow())]
        : ["up", j.started_at ? ago(j.started_at) : "–"];
    const late = STATES_LATE.has(j.state);
    const counters = Object.entries(j.progress || {});
    put(card,
      el("div", { class: "job-head" },
        el("span", { class: "job-name", text: name }),
        el("span", { class: "state", "data-state": j.state, text: j.state }),
        el("span", { class: "job-meta" },
          j.kind + (j.run_id ? " · " + j.run_id.slice(-6) : "") + (j.pid && live ? " · pid " + j.pid : "")
          + (j.restarts ? ` · ${j.restarts} restart${j.restarts === 1 ? "" : "s"}` : ""))),
      el("div", { class: "ages" },
        el("div", { class: "age", "data-late": late && j.state === "SILENT" },
          el("b", { text: ago(j.last_heartbeat_at) }), el("span", { text: "heartbeat" })),
        el("div", { class: "age", "data-late": late },
          el("b", { text: ago(j.last_progress_at) }), el("span", { text: "progress" })),
        el("div", { class: "age" }, el("b", { text: third[1] }), el("span", { text: third[0] }))),
      counters.length ? el("div", { class: "counters" },
        counters.map(([k, v]) => el("span", { class: "chip", text: `${k}=${num(v)}` }))) : null,
      (j.phase || j.message) ? el("p", { class: "message" },
        j.phase ? el("span", { class: "muted", text: "[" + j.phase + "] " }) : null, j.message || "") : null,
      j.blocker ? el("p", { class: "error", text: "blocked: " + j.blocker }) : null,
      j.error ? el("p", { class: "error", text: j.error, title: j.error }) : null,
      (j.proofs && j.proofs.length) ? el("ul", { class: "proofs" }, j.proofs.map((p) =>
        el("li", { "data-ok": p.ok },
          el("span", { class: p.ok ? "proof-ok" : "proof-bad", text: p.ok ? "ok" : "FAILED" }),
          el("span", { class: "mono", text: p.path }),
          el("span", { class: "muted clip", title: p.detail || null,
            text: p.ok ? (p.checks || []).join(", ") : p.detail.split("\n")[0] })))) : null,
    );
  }

  function renderAlerts() {
    const box = $("alerts");
    $("alert-count").textContent = doc.alerts.length;
    if (!doc.alerts.length) {
      alertBoxes.clear();
      box.replaceChildren(el("p", { class: "muted", text: "none" }));
      return;
    }
    const keep = new Set();
    const ordered = [];
    for (const a of doc.alerts) {
      keep.add(a.key);
      let node = alertBoxes.get(a.key);
      if (!node) {
        node = el("article", { class: "alert", "data-key": a.key });
        alertBoxes.set(a.key, node);
      }
      fillAlert(node, a);
      ordered.push(node);
    }
    for (const key of alertBoxes.keys()) if (!keep.has(key)) alertBoxes.delete(key);
    box.replaceChildren(...ordered);
  }

  function fillAlert(node, a) {
    node.dataset.severity = a.severity;
    node.dataset.state = a.state;
    const details = el("details", { open: openDetails.has(a.key) ? "" : null },
      el("summary", { text: "details" }), el("pre", { text: a.detail }));
    details.addEventListener("toggle", () => {
      if (details.open) openDetails.add(a.key); else openDetails.delete(a.key);
    });
    let action = el("span", { class: "alert-meta", text: "acknowledged" });
    if (a.state !== "acknowledged") {
      action = el("button", { type: "button", class: "ack", "data-ack": a.key, disabled: pendingAcks.has(a.key) },
        pendingAcks.has(a.key) ? "acknowledging…" : "Ack");
      action.addEventListener("click", () => ack(a.key));
    }
    put(node,
      el("div", { class: "alert-head" },
        el("span", { class: "sev", text: a.severity }),
        el("span", { class: "alert-title", text: a.title }),
        action),
      el("div", { class: "alert-meta" },
        `${a.key} · ${a.count}× · first ${ago(a.first_seen)} ago · last ${ago(a.last_seen)} ago`),
      details,
    );
  }

  async function ack(key) {
    pendingAcks.add(key);
    render();
    const r = await api("POST", "/api/alerts/" + encodeURIComponent(key) + "/ack");
    pendingAcks.delete(key);
    if (r.status === 200) {
      toast(r.body.message);
      await poll();
    } else {
      toast((r.body && r.body.error) || `acknowledging ${key} failed (HTTP ${r.status})`, "error");
      render();
    }
  }

  function gauge(label, value, text, max) {
    const pct = value === null || value === undefined ? 0 : Math.max(0, Math.min(100, (value / max) * 100));
    const level = pct >= 90 ? "bad" : pct >= 75 ? "warn" : "ok";
    const fill = el("div", { class: "fill" });
    fill.style.width = pct + "%";
    return el("div", { class: "gauge", "data-level": value === null ? null : level, "data-gauge": label },
      el("span", { text: label }), el("div", { class: "bar" }, fill), el("span", { class: "value", text }));
  }

  function renderHost() {
    const h = doc.host || {};
    const s = h.sample || {};
    $("score-value").textContent = h.score === null || h.score === undefined ? "–" : h.score;
    $("score").dataset.label = h.label || "";
    $("host-label").textContent = h.label || "no sample yet";
    const rows = [];
    if (typeof s.cpu_pct === "number") {
      rows.push(gauge("CPU", s.cpu_pct, s.cpu_pct.toFixed(1) + "%", 100));
      if (s.expected_cpu_pct) rows.push(gauge("expected load", s.expected_cpu_pct, s.expected_cpu_pct.toFixed(1) + "%", 100));
    }
    if (typeof s.mem_pct === "number") rows.push(gauge("memory", s.mem_pct, s.mem_pct.toFixed(1) + "%", 100));
    if (typeof s.swap_pct === "number") rows.push(gauge("swap", s.swap_pct, s.swap_pct.toFixed(1) + "%", 100));
    for (const [mount, pct] of Object.entries(s.disks || {})) {
      rows.push(typeof pct === "number" ? gauge("disk " + mount, pct, pct.toFixed(1) + "%", 100)
        : gauge("disk " + mount, null, "n/a", 100));
    }
    if (typeof s.temp_c === "number") rows.push(gauge("temperature", s.temp_c, s.temp_c.toFixed(1) + "°C", 100));
    else if (s.temp_c) rows.push(gauge("temperature", null, "n/a", 100));
    if (Array.isArray(s.load) && s.cores) rows.push(gauge("load (1m)", s.load[0], s.load[0].toFixed(2), s.cores * 2));
    $("gauges").replaceChildren(...(rows.length ? rows : [el("p", { class: "muted", text: "waiting for the first host sample" })]));
    $("host-reasons").replaceChildren(...(h.reasons || []).map((r) => el("li", { text: r })));
    if (h.sampled_at && h.sampled_at !== lastSampleAt && typeof s.cpu_pct === "number") {
      lastSampleAt = h.sampled_at;
      samples.push({ t: Date.parse(h.sampled_at), cpu: s.cpu_pct, temp: typeof s.temp_c === "number" ? s.temp_c : null });
    }
    drawSparks();
  }

  function drawSparks() {
    const now = daemonNow();
    samples = samples.filter((p) => p.t >= now - HOUR).sort((a, b) => a.t - b.t);
    spark($("spark-cpu"), samples.map((p) => [p.t, p.cpu]), 0, 100, now, "%");
    const temps = samples.filter((p) => p.temp !== null).map((p) => [p.t, p.temp]);
    const lo = temps.length ? Math.min(...temps.map((p) => p[1])) - 2 : 0;
    const hi = temps.length ? Math.max(...temps.map((p) => p[1])) + 2 : 1;
    spark($("spark-temp"), temps, lo, hi, now, "°C", samples.length && !temps.length ? "unavailable on this host" : null);
    const last = samples[samples.length - 1];
    $("cpu-now").textContent = last ? `(now ${last.cpu.toFixed(1)}%)` : "";
    $("temp-now").textContent = temps.length ? `(now ${temps[temps.length - 1][1].toFixed(1)}°C)` : "";
  }

  function spark(svg, points, lo, hi, now, unit, note) {
    svg.dataset.points = points.length;
    if (points.length < 2) {
      svg.replaceChildren(el("text", { x: 6, y: 34, text: note || "collecting samples…" }));
      return;
    }
    const start = Math.max(now - HOUR, points[0][0]); // less than an hour of samples: use the width
    const width = Math.max(now - start, 1);
    const xy = points.map(([t, v]) => {
      const x = ((t - start) / width) * 300;
      const y = 58 - ((v - lo) / Math.max(hi - lo, 1e-9)) * 54;
      return `${x.toFixed(1)},${Math.max(2, Math.min(58, y)).toFixed(1)}`;
    });
    svg.replaceChildren(el("polyline", { points: xy.join(" ") }),
      el("text", { x: 4, y: 10, text: `${num(Math.round(hi))}${unit}` }),
      el("text", { x: 4, y: 57, text: `${num(Math.round(lo))}${unit}` }),
      el("text", { x: 296, y: 57, "text-anchor": "end", text: `${span(now - start)} ago → now` }));
  }

  function renderRecent() {
    put($("recent"), ...(doc.recent || []).slice(0, 12).map((r) => el("li", {},
      el("span", { class: "state", "data-state": r.state, text: r.state }),
      el("b", { text: r.job }),
      el("span", { class: "mono muted", text: r.run_id.slice(-6) }),
      el("span", { class: "muted", text: r.ended_at ? "ended " + ago(r.ended_at) + " ago" : "" }),
      r.error ? el("span", { class: "why", text: r.error.split("\n")[0], title: r.error }) : null)));
  }

  // ---- fleet (a shared store only) --------------------------------------------------------
  // Ages are by the shared store's clock (hosts' own clocks may differ); a stale or stopped
  // host's jobs are shown as it last reported them, dimmed, never as live.
  function renderFleet() {
    const panel = $("fleet-panel");
    panel.dataset.fleet = fleetOff ? "none" : fleetError ? "error" : fleet ? "shown" : "asking";
    panel.hidden = !fleet && !fleetError;
    $("fleet-link").hidden = panel.hidden;
    if (panel.hidden) return;
    const hosts = fleet ? fleet.hosts : [];
    $("fleet-count").textContent = hosts.length;
    const stale = hosts.filter((h) => h.state === "stale").length;
    $("fleet-note").textContent = fleetError ? "the shared store cannot be read: " + fleetError
      : `${hosts.length} host${hosts.length === 1 ? "" : "s"}` + (stale ? ` · ${stale} stale` : "")
        + ` · stale after ${span(fleet.host_stale_after * 1000)} without a report · ages by the store's clock`;
    $("fleet-note").dataset.error = fleetError ? "true" : "false";
    put($("fleet"), hosts.length ? hosts.map(fleetHost)
      : el("p", { class: "muted", text: fleetError ? "" : "no host has reported yet" }));
  }

  function fleetHost(h) {
    const hl = h.health || {};
    const alerts = h.active_alerts || 0;
    const live = h.state === "up";
    return el("article", { class: "fleet-host", "data-host": h.host, "data-host-state": h.state },
      el("div", { class: "fleet-head" },
        el("span", { class: "job-name", text: h.host }),
        el("span", { class: "host-state", "data-host-state": h.state, text: h.state.toUpperCase() }),
        el("span", { class: "fleet-seen", text: h.state === "stopped" ? `stopped ${ago(h.last_seen)} ago`
          : `seen ${ago(h.last_seen)} ago` }),
        el("span", { class: "badge", "data-label": hl.label || null,
          text: hl.label ? `${hl.label}` + (hl.score === null || hl.score === undefined ? "" : ` ${hl.score}`) : "health unknown" }),
        el("span", { class: "fleet-alerts", "data-alerts": alerts, text: `${alerts} alert${alerts === 1 ? "" : "s"}` }),
        el("span", { class: "job-meta", text: `v${h.version}` + (h.pid ? ` · pid ${h.pid}` : "") })),
      h.state === "stale" ? el("p", { class: "stale-note",
        text: `STALE — no report for ${ago(h.last_seen)}` + (h.alerted_by ? ` (alerted by ${h.alerted_by})` : " (not alerted yet)") }) : null,
      (hl.reasons || []).length ? el("p", { class: "muted small", text: hl.reasons.join(" · ") }) : null,
      h.jobs.length ? el("div", { class: "fleet-jobs-wrap" },
        live ? null : el("p", { class: "muted small", text: "jobs as last reported (not live)" }),
        el("table", { class: "fleet-jobs", "data-live": live ? "true" : "false" },
          el("thead", {}, el("tr", {}, ["job", "state", "run", "pid", "heartbeat", "message"].map((c) => el("th", { text: c })))),
          el("tbody", {}, h.jobs.map((j) => el("tr", { "data-fleet-job": j.name },
            el("td", { class: "mono", text: j.name }),
            el("td", {}, el("span", { class: "state", "data-state": j.state, text: j.state })),
            el("td", { class: "mono muted", text: j.run_id ? j.run_id.slice(-6) : "–" }),
            el("td", { class: "mono muted", text: j.pid || "–" }),
            el("td", { class: "beat", text: j.last_heartbeat_at ? ago(j.last_heartbeat_at) + " ago" : "–" }),
            el("td", { class: j.error ? "msg error-text" : "msg", title: j.error || null,
              text: (j.phase ? `[${j.phase}] ` : "") + (j.error ? j.error.split("\n")[0] : j.message || (j.waiting ? "waiting: " + j.waiting : "")) }))))))
        : el("p", { class: "muted small", text: "no jobs" }));
  }

  async function loadFleet() {
    if (fleetOff) return;
    const r = await api("GET", "/api/fleet");
    if (r.status === 200 && r.body) {
      fleet = r.body;
      fleetError = null;
    } else if (r.status === 404) {
      fleet = null;
      fleetOff = true; // no shared store: this daemon has no fleet to show
    } else if (r.status !== 401) {
      fleetError = (r.body && r.body.error) || `HTTP ${r.status}`;
    }
    renderFleet();
  }

  // ---- data -----------------------------------------------------------------------------
  function update(next) {
    doc = next;
    offset = Date.now() - Date.parse(next.updated_at);
    render();
  }

  async function poll() {
    const r = await api("GET", "/api/status");
    if (r.status === 200 && r.body) update(r.body);
    return r.status;
  }

  async function loadSamples() {
    const r = await api("GET", "/api/host/samples?minutes=60");
    if (r.status === 200 && r.body) {
      const seen = new Set(samples.map((p) => p.t));
      for (const p of r.body.samples) {
        const t = Date.parse(p.ts);
        if (!seen.has(t)) samples.push({ t, cpu: p.cpu_pct, temp: p.temp_c });
      }
      if (doc) drawSparks();
    }
  }

  function setLive(mode, text) {
    const live = $("live");
    live.dataset.mode = mode;
    live.textContent = text || mode;
  }

  async function stream() {
    setLive("connecting");
    let response;
    try {
      response = await fetch("/api/events", { headers: authHeaders(), cache: "no-store" });
    } catch (e) {
      response = null;
    }
    if (response && response.status === 401) {
      setLive("offline", "token needed");
      showAuth();
      return; // the token form starts the stream again
    }
    if (response && response.ok && response.body && window.TextDecoderStream) {
      retry = 1000;
      setLive("live");
      try {
        const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
        let buf = "";
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          buf += value;
          let cut;
          while ((cut = buf.indexOf("\n\n")) >= 0) {
            const block = buf.slice(0, cut);
            buf = buf.slice(cut + 2);
            const data = block.split("\n").filter((l) => l.startsWith("data:"))
              .map((l) => l.slice(5).replace(/^ /, "")).join("\n");
            if (data) update(JSON.parse(data));
          }
        }
      } catch (e) { /* the stream broke: poll, then reconnect */ }
    }
    const status = await poll();
    setLive(status === 200 ? "polling" : "offline", status === 200 ? "polling" : "daemon unreachable");
    retry = Math.min(retry * 2, 15000);
    setTimeout(stream, retry);
  }

  function start() {
    loadToken();
    $("auth-form").addEventListener("submit", (ev) => {
      ev.preventDefault();
      token = $("auth-token").value.trim() || null;
      try { if (token) localStorage.setItem(TOKEN_KEY, token); } catch (e) { /* private mode */ }
      $("auth-token").value = "";
      $("auth").hidden = true;
      stream();
      loadSamples();
      loadFleet();
    });
    $("auth-forget").addEventListener("click", () => {
      token = null;
      try { localStorage.removeItem(TOKEN_KEY); } catch (e) { /* private mode */ }
      toast("token forgotten");
    });
    setInterval(render, 1000);
    setInterval(loadSamples, 5 * 60 * 1000);
    setInterval(loadFleet, 5000);
    poll().then(() => { stream(); loadSamples(); loadFleet(); });
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
