// The live wall: video when a session is live, a plain message otherwise, the time left.
"use strict";
(function () {
  const wall = document.getElementById("wall");
  function canPlay(codec, video) {
    if (codec !== "hevc") return true;
    return Boolean(video.canPlayType('video/mp4; codecs="hvc1.1.6.L93.B0"') ||
                   video.canPlayType('video/mp4; codecs="hev1.1.6.L93.B0"'));
  }
  function clock(seconds) {
    if (seconds == null || isNaN(seconds)) return "—";
    const s = Math.max(0, Math.round(seconds));
    return Math.floor(s / 60) + ":" + String(s % 60).padStart(2, "0");
  }
  function message(tile, kind, text, detail) {
    const box = tile.querySelector('[data-f="message"]');
    box.className = "message " + kind;
    box.textContent = text;
    if (detail) {
      const small = document.createElement("small");
      small.textContent = detail;
      box.appendChild(small);
    }
    box.hidden = false;
  }
  function removeVideo(tile) {
    const video = tile.querySelector("video");
    if (video) { video.removeAttribute("src"); video.load(); video.remove(); }
  }
  function apply(tile, data) {
    tile.dataset.kind = data.kind;
    tile.dataset.left = data.time_left == null ? "" : data.time_left;
    tile.querySelector('[data-f="status"]').textContent = data.status;
    tile.querySelector('[data-f="left"]').textContent = clock(data.time_left);
    const stop = tile.querySelector('[data-f="stop"]');
    if (stop && (data.kind === "ended" || data.kind === "problem")) stop.remove();
    const screen = tile.querySelector(".screen");
    if (data.kind !== "live") {
      removeVideo(tile);
      message(tile, data.kind, data.status,
              data.kind === "waiting" ? "The first picture appears as soon as the site sends it." : "");
      return;
    }
    let video = tile.querySelector("video");
    if (!video) {
      video = document.createElement("video");
      video.muted = true; video.autoplay = true; video.playsInline = true;
      if (!canPlay(data.codec, video)) {
        message(tile, "problem", "This camera sends H.265 (HEVC) video, which this browser cannot play.",
                "The session keeps running; ask for a clip, or watch it in VLC or ffplay.");
        tile.dataset.unplayable = "hevc";
        return;
      }
      video.addEventListener("playing", () => {
        tile.querySelector('[data-f="message"]').hidden = true;
        tile.dataset.playing = "yes";
      });
      video.addEventListener("error", () => {
        const code = video.error ? video.error.code : 0;
        message(tile, "problem", code === 4 ? "This browser cannot play this camera's video."
                                            : "The video stopped.", "");
      });
      video.src = "/wall/" + tile.dataset.id + "/video.mp4";
      screen.prepend(video);
      message(tile, "waiting", "Video arriving…", "");
    }
  }
  if (!wall) return;
  wall.querySelectorAll(".tile").forEach((tile) => {
    apply(tile, { kind: tile.dataset.kind, codec: tile.dataset.codec || null,
                  time_left: tile.dataset.left === "" ? null : Number(tile.dataset.left),
                  status: tile.querySelector('[data-f="status"]').textContent });
  });
  setInterval(() => {
    wall.querySelectorAll('.tile[data-kind="live"]').forEach((tile) => {
      if (tile.dataset.left === "") return;
      const left = Math.max(0, Number(tile.dataset.left) - 1);
      tile.dataset.left = left;
      tile.querySelector('[data-f="left"]').textContent = clock(left);
    });
  }, 1000);
  RTCC.stream("/wall/events", (data) => {
    for (const item of data.tiles) {
      const tile = wall.querySelector('.tile[data-id="' + item.id + '"]');
      if (!tile) { location.reload(); return; }
      apply(tile, item);
    }
  });
})();
