// The relay's viewer page: says what is going on instead of showing a dead player.
// The video is only loaded once the relay says the stream is live and this browser says it can
// decode the stream's codec (MediaSource.isTypeSupported with the exact RFC 6381 string the
// relay read from the init segment); otherwise the page says why there is no picture.
"use strict";
(function () {
  const video = document.getElementById("live");
  const status = document.getElementById("status");
  const statsUrl = video.dataset.stats;
  const REASONS = {
    max_seconds: "the time asked for is up",
    cancelled: "it was stopped from the hub",
    owner_stopped: "the camera's owner stopped it",
    paused: "the owner paused sharing",
    sharing_changed: "the owner stopped sharing this camera live",
    agent_stopped: "the site's agent is shutting down",
    camera_offline: "the camera stopped sending video",
    relay_closed: "the relay closed the session (its time ran out)",
    relay_error: "the connection between the site and the relay broke",
    publisher_closed: "the site closed the connection",
    publisher_error: "the connection to the site broke",
    expired: "the session's time ran out",
    bad_media: "the site sent video the relay could not read",
    relay_shutdown: "the relay is shutting down",
  };
  let done = false;
  let timer = 0;

  // One poll chain: an early poll (an error, the end of the response) replaces the pending one.
  function schedule(delay) {
    clearTimeout(timer);
    if (!done) timer = setTimeout(poll, delay);
  }

  function say(kind, text, detail) {
    status.className = kind;
    status.textContent = text;
    if (detail) {
      const small = document.createElement("small");
      small.textContent = detail;
      status.appendChild(small);
    }
  }

  const videoSrc = video.dataset.src;
  const patience = Number(video.dataset.patience || 30) * 1000;
  const opened = Date.now();
  const Source = window.MediaSource || window.ManagedMediaSource;

  // Whether this browser can decode the stream: asked with the stream's own codec string;
  // without MediaSource, the <video> element's (vaguer) canPlayType.
  function canPlay(codecs, codec) {
    const fallback = { hevc: "hvc1.1.6.L93.B0", h264: "avc1.42E01E" }[codec] || codec;
    const type = 'video/mp4; codecs="' + (codecs || fallback) + '"';
    if (Source && typeof Source.isTypeSupported === "function") {
      return Source.isTypeSupported(type);
    }
    return video.canPlayType(type) !== "";
  }

  function codecName(codec) {
    return { hevc: "H.265 (HEVC)", h264: "H.264" }[codec] || String(codec);
  }

  function startVideo() {
    if (!video.getAttribute("src")) {
      video.src = videoSrc;
      video.play().catch(() => {});  // autoplay may be refused: the controls are there
    }
  }

  function stopVideo() {
    video.removeAttribute("src");
    video.load();
    video.hidden = true;
  }

  function finish(kind, text, detail) {
    done = true;
    stopVideo();
    say(kind, text, detail);
  }

  async function poll() {
    if (done) return;
    let data = null;
    try {
      const response = await fetch(statsUrl, { cache: "no-store" });
      if (response.status === 410) {
        finish("ended", "This live session has ended.", "Its time is over; ask for a new one.");
        return;
      }
      if (response.ok) data = await response.json();
    } catch (error) {
      say("problem", "Cannot reach the relay right now; retrying…");
    }
    if (data) {
      const playable = !data.codec || canPlay(data.codecs, data.codec);
      if (!playable) video.dataset.unplayable = data.codecs || data.codec;
      const cannot = "This camera sends " + codecName(data.codec) + " video, which this " +
                     "browser cannot play.";
      if (data.state === "ended") {
        const why = REASONS[data.reason] || String(data.reason || "").replace(/_/g, " ");
        finish("ended", "The live view has ended: " + (why || "the site stopped sending") + ".",
               playable ? "" : cannot);
        return;
      }
      if (!playable) {
        finish("problem", cannot,
               "The recording at the site is not affected. Ask for a clip instead, or open this " +
               "session's video link in VLC or ffplay.");
        return;
      }
      if (data.state === "live") {
        startVideo();
        if (video.readyState >= 2 && !video.paused) say("live", "Live");
        else say("waiting", "Video arriving…");
      } else if (Date.now() - opened > patience) {
        // No endless spinner: after as long as the relay itself waits, say what it may mean.
        say("waiting", "Still waiting for the site to start the video…",
            "The site may be offline, or it may have refused or not yet approved the request " +
            "(the hub shows the request's state). This page keeps checking.");
      } else {
        say("waiting", "Waiting for the site to start the video…");
      }
    }
    schedule(2000);
  }

  video.addEventListener("playing", () => { if (!done) say("live", "Live"); });
  // The relay ends the response when the stream ends: ask why at once, not at the next poll.
  video.addEventListener("ended", () => schedule(0));
  video.addEventListener("error", () => {
    if (done) return;
    const code = video.error ? video.error.code : 0;
    if (code === 4) {
      schedule(0);  // unsupported source: the stats say whether it is the codec
      say("problem", "This browser cannot play this video.",
          "If the camera sends H.265, ask for a clip or use VLC.");
    } else {
      say("problem", "The video stopped (" + code + ").", "Reload the page to try again.");
      schedule(0);  // if the stream ended, the stats say why
    }
  });
  poll();
})();
