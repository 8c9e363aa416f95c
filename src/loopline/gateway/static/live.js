// A run's events, live: each arrives as a line of HTML appended to the list. The browser
// reconnects by itself after a cut, sending the last event's id, so no line is lost or
// repeated; the stream's `end` event closes it. The parts of the page that htmx refreshes are
// told `run-event` (at most once a second, and once after the last event) and `run-ended`.
document.addEventListener("DOMContentLoaded", function () {
  function tell(name) { document.body.dispatchEvent(new CustomEvent(name)); }
  var last = 0, pending = null;
  function progressed() {
    var wait = 1000 - (Date.now() - last);
    if (pending) { return; }
    pending = setTimeout(function () { pending = null; last = Date.now(); tell("run-event"); },
                         Math.max(0, wait));
  }
  document.querySelectorAll("[data-live]").forEach(function (list) {
    var source = new EventSource(list.dataset.live);
    list.dataset.state = "connecting";
    source.onopen = function () { list.dataset.state = "open"; };
    source.onmessage = function (message) {
      list.insertAdjacentHTML("beforeend", message.data);
      progressed();
    };
    source.addEventListener("end", function () {
      source.close();
      if (pending) { clearTimeout(pending); pending = null; }
      list.dataset.state = "ended";
      tell("run-ended");
    });
  });
});
