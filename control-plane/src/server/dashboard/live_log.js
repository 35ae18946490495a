// The task page's live log: follows the task's events (NDJSON, the same endpoint as
// `kiln logs -f`) and appends each log line, coloured by stream. Reconnects after the
// last seq seen if the stream breaks, until the task has ended.
(function () {
  const log = document.getElementById("log");
  const task = log.dataset.task;
  const attempt = log.dataset.attempt;
  let afterSeq = 0;
  let ended = false;
  function append(event) {
    afterSeq = Math.max(afterSeq, event.seq || 0);
    if (event.kind === "finished") { ended = true; }
    if (event.kind !== "log") { return; }
    const line = document.createElement("div");
    line.className = event.stream;
    line.textContent = event.encoding === "base64" ? atob(event.line) : event.line;
    const atBottom = log.scrollTop + log.clientHeight >= log.scrollHeight - 4;
    log.appendChild(line);
    if (atBottom) { log.scrollTop = log.scrollHeight; }
  }
  async function follow() {
    const url = "/v1/tasks/" + task + "/events?follow=true&attempt=" + attempt + "&after_seq=" + afterSeq;
    const response = await fetch(url, { credentials: "same-origin" });
    if (!response.ok) { throw new Error("events: " + response.status); }
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    let pending = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) { break; }
      pending += decoder.decode(value, { stream: true });
      const lines = pending.split("\n");
      pending = lines.pop();
      for (const text of lines) { if (text) { append(JSON.parse(text)); } }
    }
  }
  async function run() {
    while (!ended) {
      try { await follow(); ended = true; } catch (e) {
        log.dataset.error = String(e);
        await new Promise((r) => setTimeout(r, 1000));
      }
    }
    log.dataset.done = "true";
  }
  run();
})();
