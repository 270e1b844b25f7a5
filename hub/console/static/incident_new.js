// New incident: pick the place on a map, fill the window in local time.
"use strict";
(function () {
  const form = document.getElementById("incident-form");
  const el = document.getElementById("pickmap");
  const lat = form.elements.lat, lon = form.elements.lon, radius = form.elements.radius;
  const offset = new Date().getTimezoneOffset();
  form.elements.tz_offset.value = offset;
  const send = document.getElementById("send-form");
  if (send) send.elements.tz_offset.value = offset;

  function local(date) {
    const shifted = new Date(date.getTime() - date.getTimezoneOffset() * 60000);
    return shifted.toISOString().slice(0, 19);
  }
  if (!form.elements.end.value) form.elements.end.value = local(new Date());
  if (!form.elements.start.value) form.elements.start.value = local(new Date(Date.now() - 30 * 60000));

  const map = L.map(el, { preferCanvas: true, maxZoom: 19 });
  if (el.dataset.tiles) L.tileLayer(el.dataset.tiles, { maxZoom: 19 }).addTo(map);
  let pin = null, circle = null;
  function place(latlng, move) {
    if (!pin) {
      pin = L.circleMarker(latlng, { radius: 7, color: "#b3261e", fillOpacity: 1 }).addTo(map);
      circle = L.circle(latlng, { radius: Number(radius.value) || 300, color: "#b3261e", weight: 1, fillOpacity: 0.08 }).addTo(map);
    }
    pin.setLatLng(latlng);
    circle.setLatLng(latlng).setRadius(Number(radius.value) || 300);
    if (move) map.fitBounds(circle.getBounds().pad(0.3));
  }
  const start = lat.value && lon.value ? L.latLng(Number(lat.value), Number(lon.value)) : null;
  map.setView(start || [39.5, -98.35], start ? 16 : 4);
  if (start) place(start, true);
  map.on("click", (e) => {
    lat.value = e.latlng.lat.toFixed(6);
    lon.value = e.latlng.lng.toFixed(6);
    place(e.latlng, false);
  });
  [lat, lon, radius].forEach((input) => input.addEventListener("change", () => {
    if (lat.value && lon.value) place(L.latLng(Number(lat.value), Number(lon.value)), true);
  }));
  // Cameras for orientation (the same data as the map page).
  fetch("/api/cameras", { cache: "no-store" }).then((r) => r.ok ? r.json() : []).then((cams) => {
    for (const c of cams) {
      if (c.la == null) continue;
      L.circleMarker([c.la, c.lo], { radius: 4, weight: 1, color: "#fff",
        fillColor: c.m === "integrated" ? "#1f5fbf" : "#e08a00", fillOpacity: 0.9 })
        .bindTooltip(c.n || c.c).addTo(map);
    }
    if (!start && cams.length) map.fitBounds(L.latLngBounds(cams.filter((c) => c.la != null).map((c) => [c.la, c.lo])).pad(0.2));
  }).catch(() => {});
})();
