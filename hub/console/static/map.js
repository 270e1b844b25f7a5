// The map registry: every shared camera, clustered, with its field of view when zoomed in.
"use strict";
(function () {
  const el = document.getElementById("map");
  let cameras = [];
  let shown = [];
  const map = L.map(el, { preferCanvas: true, zoomControl: true, maxZoom: 19 }).setView([39.5, -98.35], 4);
  const tiles = el.dataset.tiles;
  if (tiles) {
    L.tileLayer(tiles, { maxZoom: 19, attribution: el.dataset.attribution || "" }).addTo(map);
  } else {
    const note = document.createElement("div");
    note.className = "notiles";
    note.textContent = "No map tiles configured: cameras are shown on a plain background.";
    el.appendChild(note);
  }
  L.control.scale({ imperial: false }).addTo(map);
  // Added in one go: with 5,000 circle markers that is quicker than chunked loading, which
  // pauses between chunks.
  const cluster = L.markerClusterGroup({ showCoverageOnHover: false, maxClusterRadius: 50 });
  map.addLayer(cluster);
  // One handler for all markers (not one per marker): thousands of markers stay cheap.
  cluster.on("click", (e) => { if (e.layer.camera) showDetails(e.layer.camera); });
  cluster.on("mouseover", (e) => {
    const c = e.layer.camera;
    if (c && !e.layer.getTooltip()) e.layer.bindTooltip((c.n || c.c) + " — " + (c.sn || c.s)).openTooltip();
  });
  const wedges = L.layerGroup().addTo(map);
  const countEl = document.getElementById("count");
  const details = document.getElementById("details");
  function ready() {
    document.body.dataset.mapReady = String(shown.length);
    window.rtccMapReady = performance.now();
  }

  function reachable(c) { return c.o && c.so !== false; }
  function colour(c) { return !reachable(c) ? "#8a939c" : c.m === "integrated" ? "#1f5fbf" : "#e08a00"; }

  function held(hours) {
    if (hours < 1) return Math.round(hours * 60) + " min";
    if (hours < 48) return hours.toFixed(1) + " h";
    return (hours / 24).toFixed(1) + " days";
  }

  function wedge(c) {
    // heading: degrees clockwise from north; fov: the angle the camera sees.
    const radius = 45, steps = 12, pts = [[c.la, c.lo]];
    const mPerDegLat = 111320, mPerDegLon = 111320 * Math.cos(c.la * Math.PI / 180);
    for (let i = 0; i <= steps; i++) {
      const a = (c.h - c.f / 2 + (c.f * i) / steps) * Math.PI / 180;
      pts.push([c.la + (radius * Math.cos(a)) / mPerDegLat, c.lo + (radius * Math.sin(a)) / mPerDegLon]);
    }
    return L.polygon(pts, { color: colour(c), weight: 1, fillOpacity: 0.18, interactive: false });
  }

  function drawWedges() {
    wedges.clearLayers();
    if (map.getZoom() < 16) return;
    const bounds = map.getBounds();
    let n = 0;
    for (const c of shown) {
      if (c.h == null || c.f == null || !bounds.contains([c.la, c.lo])) continue;
      wedges.addLayer(wedge(c));
      if (++n >= 500) break;
    }
  }

  function showDetails(c) {
    const t = document.getElementById("details-template").content.cloneNode(true);
    const f = (name) => t.querySelector('[data-f="' + name + '"]');
    f("name").textContent = c.n || c.c;
    f("site").textContent = (c.sn || c.s) + " (" + c.s + ")";
    f("sharing").textContent = c.m === "integrated" ? "Integrated: footage at once, within the owner's limits"
                                                     : "Registry: the owner approves each request";
    f("live").textContent = c.l ? "allowed" : "not allowed";
    f("online").textContent = c.so === false ? "site offline" : c.o ? "online" : "camera offline";
    f("held").textContent = held(c.fh);
    f("verdict").textContent = { pass: "passes the program's checks", warn: "passes with warnings",
                                 fail: "fails the program's checks", unknown: "not checked yet" }[c.v] || c.v;
    f("where").textContent = c.la.toFixed(5) + ", " + c.lo.toFixed(5) +
      (c.h != null ? " · looking " + Math.round(c.h) + "°" : "");
    f("incident").href = "/incidents/new?lat=" + c.la.toFixed(6) + "&lon=" + c.lo.toFixed(6);
    const form = f("liveform");
    if (c.m === "integrated" && c.l && reachable(c)) {
      form.hidden = false;
      form.elements.csrf.value = el.dataset.csrf;
      form.elements.site.value = c.s;
      form.elements.camera.value = c.c;
    } else {
      const why = f("nolive");
      why.hidden = false;
      why.textContent = !c.l || c.m !== "integrated" ? "The owner does not share live video from this camera."
                                                     : "Live view is not available while the camera is offline.";
    }
    details.replaceChildren(t);
    details.hidden = false;
  }

  const MAX_LISTED = 40;
  function listResults() {
    const list = document.getElementById("results");
    const note = document.getElementById("results-note");
    list.replaceChildren();
    const sorted = shown.slice().sort((a, b) => (a.sn + a.n).localeCompare(b.sn + b.n));
    for (const c of sorted.slice(0, MAX_LISTED)) {
      const item = document.createElement("li");
      const button = document.createElement("button");
      button.type = "button";
      button.className = "result";
      button.dataset.camera = c.s + "/" + c.c;
      const dot = document.createElement("span");
      dot.className = "dot " + (!reachable(c) ? "offline" : c.m);
      button.append(dot, (c.n || c.c) + " — " + (c.sn || c.s));
      button.addEventListener("click", () => {
        map.setView([c.la, c.lo], Math.max(map.getZoom(), 17));
        showDetails(c);
      });
      item.appendChild(button);
      list.appendChild(item);
    }
    note.hidden = sorted.length <= MAX_LISTED;
    note.textContent = "The first " + MAX_LISTED + " of " + sorted.length + " are listed: type a name to narrow the list.";
  }

  function applyFilters() {
    const q = document.getElementById("q").value.trim().toLowerCase();
    const want = {
      integrated: document.getElementById("f-integrated").checked,
      registry: document.getElementById("f-registry").checked,
    };
    const liveOnly = document.getElementById("f-live").checked;
    const onlineOnly = document.getElementById("f-online").checked;
    shown = cameras.filter((c) => want[c.m] && (!liveOnly || c.l) && (!onlineOnly || reachable(c)) &&
      (!q || (c.n + " " + c.c + " " + c.sn + " " + c.s).toLowerCase().includes(q)));
    cluster.clearLayers();
    const sites = new Set(shown.map((c) => c.s));
    countEl.textContent = shown.length === cameras.length
      ? cameras.length + " camera(s) at " + sites.size + " site(s)"
      : shown.length + " of " + cameras.length + " camera(s) shown, at " + sites.size + " site(s)";
    if (!cameras.length) countEl.textContent = "No camera is registered yet. Sites appear here once they share a camera and their signed registry arrives.";
    const markers = shown.map((c) => {
      const m = L.circleMarker([c.la, c.lo], { radius: 7, color: "#fff", weight: 2, fillColor: colour(c), fillOpacity: 1 });
      m.camera = c;
      return m;
    });
    cluster.addLayers(markers);
    ready();
    drawWedges();
    listResults();
  }

  map.on("zoomend moveend", drawWedges);
  map.on("click", (e) => {
    const link = "/incidents/new?lat=" + e.latlng.lat.toFixed(6) + "&lon=" + e.latlng.lng.toFixed(6);
    L.popup().setLatLng(e.latlng).setContent('<a href="' + link + '">Start an incident here</a>').openOn(map);
  });
  ["q", "f-integrated", "f-registry", "f-live", "f-online"].forEach((id) =>
    document.getElementById(id).addEventListener("input", applyFilters));

  fetch("/api/cameras", { headers: { Accept: "application/json" }, cache: "no-store" })
    .then((r) => { if (!r.ok) throw new Error(r.status); return r.json(); })
    .then((data) => {
      cameras = data.filter((c) => c.la != null && c.lo != null);
      if (cameras.length) map.fitBounds(L.latLngBounds(cameras.map((c) => [c.la, c.lo])).pad(0.1), { maxZoom: 17 });
      applyFilters();
    })
    .catch((error) => { countEl.textContent = "The cameras could not be loaded (" + error.message + "). Reload the page to try again."; });
})();
