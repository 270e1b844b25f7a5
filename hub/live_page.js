// The relay's viewer page: says what is going on instead of showing a dead player.
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

  function say(kind, text, detail) {
    status.className = kind;
    status.textContent = text;
    if (detail) {
      const small = document.createElement("small");
      small.textContent = detail;
      status.appendChild(small);
    }
  }

  function canPlay(codec) {
    if (codec === "hevc") {
      return Boolean(video.canPlayType('video/mp4; codecs="hvc1.1.6.L93.B0"') ||
                     video.canPlayType('video/mp4; codecs="hev1.1.6.L93.B0"'));
    }
    return true;
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
      if (data.codec && !canPlay(data.codec)) {
        finish("problem", "This camera sends H.265 (HEVC) video, which this browser cannot play.",
               "The recording at the site is not affected. Ask for a clip instead, or open this " +
               "session's video link in VLC or ffplay.");
        return;
      }
      if (data.state === "ended") {
        const why = REASONS[data.reason] || String(data.reason || "").replace(/_/g, " ");
        finish("ended", "The live view has ended: " + (why || "the site stopped sending") + ".");
        return;
      }
      if (data.state === "live") {
        if (video.readyState >= 2 && !video.paused) say("live", "Live");
        else say("waiting", "Video arriving…");
      } else {
        say("waiting", "Waiting for the site to start the video…");
      }
    }
    setTimeout(poll, 2000);
  }

  video.addEventListener("playing", () => { if (!done) say("live", "Live"); });
  video.addEventListener("error", () => {
    if (done) return;
    const code = video.error ? video.error.code : 0;
    if (code === 4) {
      setTimeout(poll, 0);  // unsupported source: the stats say whether it is the codec
      say("problem", "This browser cannot play this video.",
          "If the camera sends H.265, ask for a clip or use VLC.");
    } else {
      say("problem", "The video stopped (" + code + ").", "Reload the page to try again.");
    }
  });
  poll();
})();
