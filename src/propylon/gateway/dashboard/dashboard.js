// The gateway dashboard: polls the admin API once a second and renders it.
// Rates and percentiles are differences between two polls of the cumulative counters
// of the built-in metrics (every worker's); without `metrics:` there are none.
"use strict";

const $ = (sel) => document.querySelector(sel);
let token = sessionStorage.getItem("propylon-admin-token") || "";
let previousStats = null;
let serverText = null;      // the configuration text the server runs
let editorDirty = false;
let validateTimer = null;

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") node.className = v; else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v);
  }
  for (const c of children) node.append(c instanceof Node ? c : document.createTextNode(c ?? ""));
  return node;
}

async function api(method, path, body, type = "text/yaml") {
  const headers = { "Content-Type": type };
  if (token) headers.Authorization = "Bearer " + token;
  const resp = await fetch(path, { method, headers, body });
  if (resp.status === 401) { $("#auth").hidden = false; throw new Error("the admin token is required"); }
  const data = await resp.json();
  return { status: resp.status, data };
}

const NUMERIC = /^(>?[\d.]+( %)?|–)$/;

function fill(tbody, rows) {
  tbody.replaceChildren(...rows.map((cells) => el("tr", {}, ...cells.map((c) =>
    c instanceof Node ? el("td", {}, c) : el("td", NUMERIC.test(String(c)) ? { class: "num" } : {}, String(c))))));
}

function percentile(buckets, bounds, p) {
  const total = buckets.reduce((a, b) => a + b, 0);
  if (!total) return "–";
  let seen = 0;
  for (let i = 0; i < buckets.length; i++) {
    seen += buckets[i];
    if (seen >= p * total) return i < bounds.length ? (bounds[i] * 1000).toString() : ">" + bounds[bounds.length - 1] * 1000;
  }
  return "–";
}

// Per name in `now` (routes or backends): rates over the time since the last poll.
// A counter that went down (the gateway restarted) starts again from this poll.
function rates(now, before, dt, bounds) {
  const out = {};
  for (const [name, cur] of Object.entries(now)) {
    let prev = before ? before[name] : null;
    if (prev && cur.requests < prev.requests) prev = null;
    const requests = prev ? cur.requests - prev.requests : 0;
    const errors = prev ? cur.errors - prev.errors : 0;
    const row = {
      total: cur.requests,
      rps: prev && dt > 0 ? (requests / dt).toFixed(1) : "0.0",
      errors: requests ? (100 * errors / requests).toFixed(1) + " %" : "0 %",
    };
    if (cur.latency) {
      const buckets = cur.latency.map((n, i) => n - (prev ? prev.latency[i] : n));
      row.p50 = percentile(buckets, bounds, 0.5);
      row.p99 = percentile(buckets, bounds, 0.99);
    }
    out[name] = row;
  }
  return out;
}

function figures(stats) {
  const before = previousStats && previousStats.source === stats.source ? previousStats : null;
  const dt = before ? stats.when - before.when : 0;
  return {
    routes: rates(stats.routes, before && before.routes, dt, stats.buckets),
    backends: rates(stats.backends, before && before.backends, dt, stats.buckets),
  };
}

function badge(ready, yes = "healthy", no = "down") {
  const cls = ready === true ? "ok" : ready === false ? "bad" : "unknown";
  return el("span", { class: "badge " + cls }, ready === true ? yes : ready === false ? no : "unchecked");
}

async function refresh() {
  try {
    const [listeners, routes, clusters, stats, config, history] = await Promise.all([
      api("GET", "/api/listeners"), api("GET", "/api/routes"), api("GET", "/api/clusters"),
      api("GET", "/api/stats"), api("GET", "/api/config"), api("GET", "/api/history")]);
    $("#auth").hidden = true;
    const live = stats.data.source !== null;
    $("#summary").textContent = `version ${config.data.version} · worker ${stats.data.pid}` +
      (live ? "" : " · no live figures: the gateway runs without metrics:");
    $("#figures-scope").textContent = live ? "(live, from the built-in metrics, all workers)" : "(metrics: off)";
    $("#config-path").textContent = config.data.path;
    fill($("#listeners tbody"), listeners.data.listeners.map((l) =>
      [l.name, l.address, l.protocol + (l.h2c ? "+h2c" : ""), badge(l.serving, "serving", "not serving")]));
    const now = figures(stats.data);
    previousStats = stats.data;
    const none = live ? { total: 0, rps: "0.0", p50: "–", p99: "–", errors: "0 %" }
      : { total: "–", rps: "–", p50: "–", p99: "–", errors: "–" };
    fill($("#routes tbody"), routes.data.routes.map((r) => {
      const s = now.routes[r.route] || none;
      return [r.listener, r.host, r.match, r.route, r.action, s.rps, s.p50, s.p99, s.errors, s.total];
    }));
    $("#clusters").replaceChildren(...clusters.data.clusters.map((c) => el("div", { class: "cluster" },
      el("strong", {}, c.name), ` (${c.selection}${c.health_check ? ", health-checked" : ""}) `,
      ...c.backends.map((b) => {
        const s = now.backends[b.address] || none;
        return el("span", { class: "backend", "data-address": b.address }, " ", b.address, ` w${b.weight} `,
          badge(b.ready), live ? el("small", { class: "rate" }, ` ${s.rps} req/s`) : "");
      }))));
    fill($("#errors tbody"), stats.data.errors.slice().reverse().map((e) =>
      [new Date(e.when * 1000).toLocaleTimeString(), e.route || "–", e.status, e.backend || "–", e.cause]));
    fill($("#history tbody"), history.data.versions.map((v) => [v.version, new Date(v.when * 1000).toLocaleString(), v.who,
      v.digest, v.version === history.data.current ? "running" :
        el("button", { onclick: () => rollback(v.version) }, "roll back to this")]));
    if (serverText !== config.data.text) {
      serverText = config.data.text;
      if (!editorDirty) { $("#editor").value = serverText; clearChecks(); }
    }
  } catch (e) {
    $("#summary").textContent = "admin API unreachable: " + e.message;
  }
}

function clearChecks() {
  $("#validation").className = "status"; $("#validation").textContent = "no edits";
  $("#routes-diff").textContent = ""; $("#file-diff").textContent = ""; $("#apply").disabled = true;
}

async function validate() {
  const text = $("#editor").value;
  if (text === serverText) { editorDirty = false; clearChecks(); return; }
  const { status, data } = await api("POST", "/api/validate", text);
  if (text !== $("#editor").value) return;   // edited again meanwhile
  if (status === 200) {
    $("#validation").className = "status valid"; $("#validation").textContent = "valid";
    $("#routes-diff").textContent = data.routes_diff || "(routes unchanged)";
    $("#file-diff").textContent = data.file_diff;
    $("#apply").disabled = false;
  } else {
    $("#validation").className = "status invalid";
    $("#validation").textContent = (data.errors || [{ path: "", message: data.error }])
      .map((e) => (e.path ? e.path + ": " : "") + e.message).join("\n");
    $("#routes-diff").textContent = ""; $("#file-diff").textContent = ""; $("#apply").disabled = true;
  }
}

async function apply() {
  $("#apply").disabled = true;
  const { status, data } = await api("PUT", "/api/config", $("#editor").value);
  if (status === 200) {
    $("#apply-result").textContent = `applied as version ${data.version} and written to the file`;
    editorDirty = false; serverText = null;
  } else {
    $("#apply-result").textContent = "refused: " + (data.errors || []).map((e) => e.path + ": " + e.message).join("; ");
  }
  refresh();
}

async function rollback(version) {
  const { status, data } = await api("POST", "/api/rollback?version=" + version, "");
  $("#apply-result").textContent = status === 200 ? `rolled back: now version ${data.version}` : "rollback refused: " + JSON.stringify(data);
  editorDirty = false; serverText = null; refresh();
}

$("#editor").addEventListener("input", () => {
  editorDirty = true;
  $("#validation").className = "status"; $("#validation").textContent = "checking…"; $("#apply").disabled = true;
  clearTimeout(validateTimer); validateTimer = setTimeout(validate, 300);
});
$("#apply").addEventListener("click", apply);
$("#revert").addEventListener("click", () => { editorDirty = false; $("#editor").value = serverText; clearChecks(); });
$("#auth").addEventListener("submit", (ev) => {
  ev.preventDefault(); token = $("#token").value; sessionStorage.setItem("propylon-admin-token", token); refresh();
});
refresh();
setInterval(refresh, 1000);
