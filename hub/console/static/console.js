// Shared by every console page: times in the analyst's own time zone, CSRF for fetch().
"use strict";
window.RTCC = (function () {
  const csrfInput = document.querySelector('input[name="csrf"]');
  function localTimes(root) {
    (root || document).querySelectorAll("time[data-local]").forEach((el) => {
      const when = new Date(el.getAttribute("datetime"));
      if (!isNaN(when)) {
        el.textContent = when.toLocaleString(undefined, {
          year: "numeric", month: "short", day: "numeric",
          hour: "2-digit", minute: "2-digit", second: "2-digit",
        });
        el.title = el.getAttribute("datetime");
      }
    });
  }
  localTimes();
  return {
    csrf: csrfInput ? csrfInput.value : "",
    localTimes: localTimes,
    stream(url, onData) {
      // Server-sent events; the browser reconnects by itself if the connection drops.
      const source = new EventSource(url);
      source.onmessage = (event) => onData(JSON.parse(event.data));
      return source;
    },
  };
})();
