// storyboard studio: the page's few behaviours. Progress arrives as server-sent events.
"use strict";
const TOKEN = document.body.dataset.token;
const BASE = document.body.dataset.base || "";  // a film of a matrix: /row/N
const $ = (sel) => document.querySelector(sel);

async function api(path, body) {
  const res = await fetch(BASE + path, {
    method: "POST",
    headers: {"Content-Type": "application/json", "X-Studio-Token": TOKEN},
    body: JSON.stringify(body || {}),
  });
  let data = {};
  try { data = await res.json(); } catch (e) { data = {error: "the studio answered " + res.status}; }
  return {status: res.status, data};
}

function showError(text) {
  const box = $("#error");
  box.textContent = text || "";
  box.hidden = !text;
}

function notice(text) {
  const box = $("#notice");
  box.textContent = text || "";
  box.hidden = !text;
}

function setStatus(shot, status) {
  const card = document.getElementById("card-" + shot);
  if (!card) return;
  card.dataset.status = status;
  const badge = card.querySelector(".status");
  badge.dataset.status = status;
  badge.textContent = status;
}

function busy(kind) {
  $("#render").disabled = !!kind;
  $("#cancel").disabled = !kind;
  $("#state").textContent = kind ? kind + " running…" : "idle";
}

function drawArrows() {
  const graph = $("#graph"), svg = $("#arrows");
  if (!graph || !svg) return;
  svg.querySelectorAll("path.edge").forEach((p) => p.remove());
  const box = graph.getBoundingClientRect();
  svg.setAttribute("width", box.width);
  svg.setAttribute("height", box.height);
  for (const card of graph.querySelectorAll(".card")) {
    for (const parent of (card.dataset.parents || "").split(" ").filter(Boolean)) {
      const from = document.getElementById("card-" + parent);
      if (!from) continue;
      const a = from.getBoundingClientRect(), b = card.getBoundingClientRect();
      const sameRow = Math.abs(a.top - b.top) < 4 && a.right <= b.left;
      const x1 = sameRow ? a.right - box.left : a.left + a.width / 2 - box.left;
      const y1 = sameRow ? a.top + 28 - box.top : a.bottom - box.top;
      const x2 = sameRow ? b.left - box.left : b.left + b.width / 2 - box.left;
      const y2 = sameRow ? b.top + 28 - box.top : b.top - box.top;
      const path = document.createElementNS("http://www.w3.org/2000/svg", "path");
      const mid = sameRow ? `C${(x1 + x2) / 2},${y1} ${(x1 + x2) / 2},${y2}` : `C${x1},${(y1 + y2) / 2} ${x2},${(y1 + y2) / 2}`;
      path.setAttribute("d", `M${x1},${y1} ${mid} ${x2},${y2}`);
      path.setAttribute("class", "edge");
      path.dataset.from = parent;
      path.dataset.to = card.dataset.shot;
      path.setAttribute("marker-end", "url(#head)");
      svg.appendChild(path);
    }
  }
}

async function refreshCards() {
  const res = await fetch(BASE + "/fragment/cards?token=" + encodeURIComponent(TOKEN));
  if (!res.ok) return;
  $("#cards").innerHTML = await res.text();
  wire();
}

function newFilm(version) {
  const video = $("#film");
  if (!version || video.dataset.version === String(version)) return;
  video.dataset.version = String(version);
  video.src = BASE + "/film?token=" + encodeURIComponent(TOKEN) + "&v=" + version;
  $("#nofilm").hidden = true;
  video.load();
}

function wire() {
  drawArrows();
  document.querySelectorAll(".edit-form").forEach((form) => form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const fields = {};
    // only what was changed: an untouched field keeps its place (or its absence) in the file
    for (const el of form.elements) if (el.name && el.value !== el.defaultValue) fields[el.name] = el.value;
    const {status, data} = await api("/api/edit", {shot: form.dataset.shot, fields});
    if (status !== 200) showError(data.error); else { showError(""); notice(data.notice); }
  }));
  const vars = $("#vars-form");
  if (vars) vars.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const values = {};
    for (const el of vars.elements) if (el.name && el.value !== el.defaultValue) values[el.name] = el.value;
    const {status, data} = await api("/api/edit", {vars: values});
    if (status !== 200) showError(data.error); else { showError(""); notice(data.notice); }
  });
  document.querySelectorAll(".take video").forEach((v) => {
    v.addEventListener("mouseenter", () => v.play().catch(() => {}));
    v.addEventListener("mouseleave", () => v.pause());
  });
  document.querySelectorAll("button.pick").forEach((b) => b.addEventListener("click", async () => {
    const {status, data} = await api("/api/pick", {shot: b.dataset.shot, take: Number(b.dataset.take)});
    if (status !== 200) showError(data.error); else showError("");
  }));
}

$("#render").addEventListener("click", async () => {
  showError("");
  let {status, data} = await api("/api/render", {});
  if (status === 409 && data.confirm !== undefined) {
    if (!window.confirm(data.message + ". Render?")) return;
    ({status, data} = await api("/api/render", {confirm: data.confirm}));
  }
  if (status >= 300) showError(data.error);  // else: the render's end says how it went
});

$("#cancel").addEventListener("click", () => api("/api/cancel"));

$("#source-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const {status, data} = await api("/api/source", {text: $("#source").value});
  if (status !== 200) showError(data.error); else { showError(""); notice(data.notice); }
});
document.querySelector("details.source").addEventListener("toggle", async (ev) => {
  if (!ev.target.open) return;
  const res = await fetch(BASE + "/api/source?token=" + encodeURIComponent(TOKEN));
  $("#source").value = await res.text();
});

const events = new EventSource(BASE + "/events?token=" + encodeURIComponent(TOKEN));
events.onmessage = (msg) => {
  const e = JSON.parse(msg.data);
  if (e.status && e.shot) setStatus(e.shot, e.status);
  switch (e.event) {
    case "render_begun": busy(e.kind); notice(e.kind === "preview" ? "rebuilding the preview…" : "rendering…"); break;
    case "render_started": $("#state").textContent = `rendering: ${e.to_generate} to generate`; break;
    case "warning": notice("warning: " + e.message); break;
    case "assembly_progress": $("#state").textContent = "assembling " + Math.round(e.fraction * 100) + "%"; break;
    case "render_end":
      busy(null);
      if (e.ok) { showError(""); notice(e.kind === "preview" ? "preview rebuilt" : "film rendered"); }
      else showError(e.error);
      newFilm(e.film_version);
      refreshCards();
      break;
    case "board":
      if (e.notice) notice(e.notice);
      if (e.error !== undefined) showError(e.error);
      refreshCards();
      break;
  }
};

window.addEventListener("resize", drawArrows);
wire();
