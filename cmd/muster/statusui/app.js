// muster status page: renders the state the server pushes over
// server-sent events. No polling: the only timer re-renders "last seen"
// from the last state and the server's clock.
"use strict";

const palette = ["#0969da", "#8250df", "#1a7f37", "#bf3989", "#bc4c00", "#1b7c83", "#6639ba", "#9a6700", "#cf222e", "#57606a"];
let state = null;
let receivedAt = 0; // performance.now() when state arrived
const svgNS = "http://www.w3.org/2000/svg";

function el(tag, attrs, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") e.className = v; else e.setAttribute(k, v);
  }
  for (const k of kids) e.append(k);
  return e;
}

function svg(tag, attrs) {
  const e = document.createElementNS(svgNS, tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  return e;
}

// serverNow is the server's clock now, as far as the page can tell.
function serverNow() {
  return Date.parse(state.now) + (performance.now() - receivedAt);
}

function ago(iso) {
  const t = Date.parse(iso);
  if (!t || t < 0) return "never";
  const s = Math.max(0, Math.round((serverNow() - t) / 1000));
  if (s < 90) return s + " s ago";
  if (s < 5400) return Math.round(s / 60) + " min ago";
  return Math.round(s / 3600) + " h ago";
}

function caps(c) {
  return Object.keys(c || {}).sort().map(k => k + "=" + (typeof c[k] === "string" ? c[k] : JSON.stringify(c[k]))).join("  ");
}

const stateLabel = { up: "up", down: "down", forced_down: "forced down" };

function forceDown(group, member, down) {
  fetch("api/force-down", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ group, member, down }),
  }).then(r => { if (!r.ok) r.text().then(t => alert("force-down: " + t)); });
}

function memberRow(g, m) {
  const idCell = el("td", { class: "id" }, m.id);
  if (m.leader) idCell.append(el("span", { class: "crown", title: "leader" }, "★ leader"));
  const tr = el("tr", { "data-member": m.id, "data-state": m.state },
    el("td", {}, el("span", { class: "badge " + m.state }, stateLabel[m.state] || m.state)),
    idCell,
    el("td", { class: "seen", "data-seen": m.last_seen }, ago(m.last_seen)),
    el("td", { class: "caps" }, caps(m.capabilities)));
  if (state.allow_force_down) {
    const td = el("td", {});
    if (m.state !== "down") {
      const down = m.state === "up";
      const b = el("button", { type: "button" }, down ? "force down" : "force up");
      b.addEventListener("click", () => forceDown(g.name, m.id, down));
      td.append(b);
    }
    tr.append(td);
  }
  return tr;
}

function ringView(g, colors) {
  const r = g.ring, size = 220, c = size / 2, R = 90, w = 22;
  const box = el("div", { class: "ring", "data-ring": g.name });
  const s = svg("svg", { width: size, height: size, viewBox: `0 0 ${size} ${size}`, role: "img" });
  s.append(svg("circle", { cx: c, cy: c, r: R, fill: "none", stroke: "#eaeef2", "stroke-width": w }));
  const pt = (f, rad) => [c + rad * Math.sin(2 * Math.PI * f), c - rad * Math.cos(2 * Math.PI * f)];
  for (const o of r.owners) {
    const color = colors[o.member];
    if (o.end - o.start >= 0.9999) {
      s.append(svg("circle", { cx: c, cy: c, r: R, fill: "none", stroke: color, "stroke-width": w }));
    } else if (o.end > o.start) {
      const [x0, y0] = pt(o.start, R), [x1, y1] = pt(o.end, R);
      const large = o.end - o.start > 0.5 ? 1 : 0;
      const p = svg("path", { d: `M ${x0} ${y0} A ${R} ${R} 0 ${large} 1 ${x1} ${y1}`, fill: "none", stroke: color, "stroke-width": w });
      p.append(svg("title", {}));
      p.firstChild.textContent = `${o.member}: ${(o.share * 100).toFixed(1)}% of the key space`;
      s.append(p);
    }
    // The keys it owns, spread over its arc.
    o.keys.forEach((k, i) => {
      const f = o.start + (o.end - o.start) * (i + 0.5) / o.keys.length;
      const [x, y] = pt(f, R - w / 2 - 9);
      const dot = svg("circle", { cx: x, cy: y, r: 4, fill: color, "data-key": k });
      dot.append(svg("title", {}));
      dot.firstChild.textContent = `${k} → ${o.member}`;
      s.append(dot);
    });
  }
  const label = svg("text", { x: c, y: c + 5, "text-anchor": "middle", "font-size": 14, fill: "#1f2328" });
  label.textContent = `${r.keys} keys`;
  s.append(label);
  box.append(s);
  const ul = el("ul", {});
  ul.append(el("li", {}, el("b", {}, `Ring (${r.algorithm}) over ${g.name}; keys: members of ${r.keys_group}`)));
  for (const o of r.owners) {
    const sw = el("span", { class: "swatch" });
    sw.style.background = colors[o.member];
    ul.append(el("li", { "data-owner": o.member, "data-keys": String(o.keys.length) }, sw,
      `${o.member}: ${o.keys.length} of ${r.keys} keys, ${(o.share * 100).toFixed(1)}% of the ring (weight ${o.weight})`,
      el("span", { class: "caps" }, o.keys.length ? "  " + o.keys.slice(0, 12).join(" ") + (o.keys.length > 12 ? " …" : "") : "")));
  }
  box.append(ul);
  return box;
}

function render() {
  if (!state) return;
  document.getElementById("backend").textContent = state.backend + " · as " + state.member +
    (state.allow_force_down ? " · force-down enabled" : " · read-only");
  const main = document.getElementById("groups");
  main.replaceChildren();
  if (state.groups.length === 0) main.append(el("p", { class: "empty" }, "No groups."));
  for (const g of state.groups) {
    const colors = {};
    g.members.forEach((m, i) => { colors[m.id] = palette[i % palette.length]; });
    const counts = el("span", { class: "counts" },
      el("b", { class: "up" }, String(g.up)), " up · ",
      el("b", { class: "forced_down" }, String(g.forced_down)), " forced down · ",
      el("b", { class: "down" }, String(g.down)), " down");
    const h = el("h2", {}, g.name, counts);
    if (g.leader) h.append(el("span", { class: "leader" }, "leader: " + g.leader));
    const head = el("tr", {}, el("th", {}, "state"), el("th", {}, "member"), el("th", {}, "last seen"), el("th", {}, "capabilities"));
    if (state.allow_force_down) head.append(el("th", {}, ""));
    const tbody = el("tbody", {});
    for (const m of g.members) tbody.append(memberRow(g, m));
    const sec = el("section", { class: "group", "data-group": g.name }, h);
    if (g.members.length === 0) sec.append(el("p", { class: "empty" }, "No members."));
    else sec.append(el("table", {}, el("thead", {}, head), tbody));
    if (g.ring) sec.append(ringView(g, colors));
    main.append(sec);
  }
}

function tick() {
  if (!state) return;
  for (const td of document.querySelectorAll("td.seen")) td.textContent = ago(td.dataset.seen);
}

function connect() {
  const conn = document.getElementById("conn");
  const es = new EventSource("events");
  es.addEventListener("state", ev => {
    state = JSON.parse(ev.data);
    receivedAt = performance.now();
    conn.textContent = "live";
    conn.dataset.state = "live";
    render();
  });
  // EventSource reconnects by itself; say so meanwhile.
  es.onerror = () => { conn.textContent = "reconnecting…"; conn.dataset.state = "lost"; };
}

setInterval(tick, 1000);
connect();
