// An incident's page: each camera's progress, live (server-sent events).
"use strict";
(function () {
  const el = document.getElementById("incidentmap");
  const map = L.map(el, { preferCanvas: true, maxZoom: 19 });
  if (el.dataset.tiles) L.tileLayer(el.dataset.tiles, { maxZoom: 19 }).addTo(map);
  const centre = [Number(el.dataset.lat), Number(el.dataset.lon)];
  map.setView(centre, 16);
  const circle = L.circle(centre, { radius: Number(el.dataset.radius), color: "#b3261e", weight: 1, fillOpacity: 0.06 }).addTo(map);
  map.fitBounds(circle.getBounds().pad(0.2));
  const colours = { good: "#1c7c3a", info: "#1f5fbf", wait: "#a86400", bad: "#b3261e", off: "#6b7580" };
  for (const p of JSON.parse(el.dataset.points || "[]")) {
    L.circleMarker([p.la, p.lo], { radius: 7, color: "#fff", weight: 2, fillColor: colours[p.k], fillOpacity: 1 })
      .bindTooltip(p.n).addTo(map);
  }
  const table = document.getElementById("cameras");
  if (!table) return;
  RTCC.stream(location.pathname + "/events", (data) => {
    for (const line of data.cameras) {
      const row = table.querySelector('tr[data-request="' + line.id + '"]');
      if (!row) continue;
      const text = row.querySelector('[data-f="text"]');
      text.textContent = line.text;
      text.className = "state " + line.kind;
      row.querySelector('[data-f="detail"]').textContent = line.detail;
      const bar = row.querySelector('[data-f="bar"]');
      bar.hidden = line.progress == null;
      if (line.progress != null) bar.value = line.progress;
      const ev = row.querySelector('[data-f="evidence"]');
      if (line.evidence && !ev.querySelector("a")) {
        const a = document.createElement("a");
        a.href = "/evidence/case/" + encodeURIComponent(line.case) + "#item-" + line.evidence;
        a.textContent = "Open in the evidence locker";
        ev.appendChild(a);
      }
    }
    for (const [key, value] of Object.entries(data.counts)) {
      const cell = document.querySelector('[data-count="' + key + '"]');
      if (cell) cell.textContent = value;
    }
    document.body.dataset.updates = String(Number(document.body.dataset.updates || 0) + 1);
  });
})();
