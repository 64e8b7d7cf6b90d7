// Hangar's pages work without JavaScript; this only keeps them live: a
// running job's log grows as it is written, and a pipeline page reloads
// when the pipeline changes. Everything shown is rendered (and escaped) by
// the server.
"use strict";

function followLog(pre) {
  // The innermost section still open when the page was rendered is where
  // the next lines go.
  var stack = [pre];
  for (var n = Number(pre.dataset.openSections || 0); n > 0; n--) {
    var last = stack[stack.length - 1].lastElementChild;
    while (last && last.tagName !== "DETAILS") { last = last.previousElementSibling; }
    if (!last) { break; }
    stack.push(last);
  }
  var src = new EventSource(pre.dataset.liveLog);
  src.addEventListener("row", function (ev) {
    var row = JSON.parse(ev.data);
    var top = stack[stack.length - 1];
    var stick = window.innerHeight + window.scrollY >= document.body.scrollHeight - 40;
    if (row.kind === 1) {
      var d = document.createElement("details");
      d.className = "section";
      d.dataset.section = row.section;
      d.open = !row.collapsed;
      var s = document.createElement("summary");
      s.innerHTML = row.html;
      d.appendChild(s);
      top.appendChild(d);
      stack.push(d);
    } else if (row.kind === 2) {
      if (stack.length > 1) { stack.pop(); }
    } else {
      top.insertAdjacentHTML("beforeend", row.html);
    }
    if (stick) { window.scrollTo(0, document.body.scrollHeight); }
  });
  src.addEventListener("end", function () {
    src.close();
    window.location.reload(); // the final status, attempts and artifacts
  });
}

function followPipeline(el) {
  var src = new EventSource("/pipelines/" + el.dataset.livePipeline + "/live?version=" + encodeURIComponent(el.dataset.version));
  src.addEventListener("changed", function () {
    src.close();
    window.location.reload();
  });
}

document.addEventListener("DOMContentLoaded", function () {
  var pre = document.querySelector("pre[data-live-log]");
  if (pre) { followLog(pre); }
  var graph = document.querySelector("[data-live-pipeline]");
  if (graph) { followPipeline(graph); }
});
