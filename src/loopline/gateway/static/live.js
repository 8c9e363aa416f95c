// A run's events, live: each arrives as a line of HTML appended to the list. The browser
// reconnects by itself after a cut, sending the last event's id, so no line is lost or
// repeated; the stream's `end` event closes it. Other parts of the page refresh themselves
// (htmx) when told that an event came or the run ended.
document.addEventListener("DOMContentLoaded", function () {
  document.querySelectorAll("[data-live]").forEach(function (list) {
    var source = new EventSource(list.dataset.live);
    list.dataset.state = "connecting";
    source.onopen = function () { list.dataset.state = "open"; };
    source.onmessage = function (message) {
      list.insertAdjacentHTML("beforeend", message.data);
      document.body.dispatchEvent(new CustomEvent("run-event"));
    };
    source.addEventListener("end", function () {
      source.close();
      list.dataset.state = "ended";
      document.body.dispatchEvent(new CustomEvent("run-ended"));
    });
  });
});
