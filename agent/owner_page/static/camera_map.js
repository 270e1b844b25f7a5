// The camera's location on a small map: a tap sets the position fields, the fields move the
// marker, and a wedge shows the direction and field of view. The form works without this.
"use strict";
(function () {
  const el = document.getElementById("map");
  if (!el || typeof L === "undefined") return;
  const field = (id) => document.getElementById(id);
  const lat = field("lat"), lon = field("lon"), heading = field("heading"), fov = field("fov");
  el.hidden = false;
  const number = (input) => {
    const value = parseFloat(input.value.replace(",", "."));
    return Number.isFinite(value) ? value : null;
  };
  const map = L.map(el, { zoomControl: true, maxZoom: 19 });
  if (el.dataset.tiles) {
    L.tileLayer(el.dataset.tiles, { maxZoom: 19, attribution: el.dataset.attribution || "" }).addTo(map);
  } else {
    const note = document.createElement("div");
    note.className = "notiles";
    note.textContent = "No map pictures are set up: tap where the camera is, or type its position below.";
    el.appendChild(note);
  }
  L.control.scale({ imperial: false }).addTo(map);
  const marker = L.circleMarker([0, 0], { radius: 7, color: "#23395b", fillOpacity: 0.9 });
  const wedge = L.polygon([], { color: "#23395b", weight: 1, fillOpacity: 0.2, interactive: false });

  function points(la, lo, h, f) {
    // heading: degrees clockwise from north; f: the angle the camera sees. About 40 m long.
    const radius = 40, steps = 16, pts = [[la, lo]];
    const mPerDegLat = 111320, mPerDegLon = 111320 * Math.cos(la * Math.PI / 180);
    for (let i = 0; i <= steps; i++) {
      const a = (h - f / 2 + (f * i) / steps) * Math.PI / 180;
      pts.push([la + (radius * Math.cos(a)) / mPerDegLat, lo + (radius * Math.sin(a)) / mPerDegLon]);
    }
    return pts;
  }

  function draw() {
    const la = number(lat), lo = number(lon);
    if (la === null || lo === null || Math.abs(la) > 90 || Math.abs(lo) > 180) {
      marker.remove();
      wedge.remove();
      return false;
    }
    marker.setLatLng([la, lo]).addTo(map);
    const h = number(heading), f = number(fov);
    if (h !== null && f !== null && f > 0) {
      wedge.setLatLngs(points(la, lo, h, Math.min(f, 360))).addTo(map);
    } else {
      wedge.remove();
    }
    return true;
  }

  map.on("click", (e) => {
    const point = e.latlng.wrap();
    lat.value = point.lat.toFixed(6);
    lon.value = point.lng.toFixed(6);
    draw();
    // The first tap is rough at a city's scale: come closer to place it precisely.
    if (map.getZoom() < 16) map.setView(point, 17);
  });
  for (const input of [lat, lon]) {
    input.addEventListener("change", () => { if (draw()) map.panTo([number(lat), number(lon)]); });
  }
  for (const input of [heading, fov]) input.addEventListener("input", draw);

  if (draw()) {
    map.setView([number(lat), number(lon)], 18);
  } else {
    map.setView([20, 0], 2);
  }
  document.body.dataset.mapReady = "1";
})();
