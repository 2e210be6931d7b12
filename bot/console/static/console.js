// The console's small script: confirmation on dangerous buttons (data-confirm="…").
// Everything works without it; pages are server-rendered.
document.addEventListener("submit", (event) => {
  const button = event.submitter;
  const text = button && button.getAttribute("data-confirm");
  if (text && !window.confirm(text)) event.preventDefault();
});

// Live pages: an element with data-live-version/data-live-url long-polls the server and
// reloads the page when something changed, unless the operator is typing a reply.
(function live() {
  const el = document.querySelector("[data-live-version]");
  if (!el) return;
  let version = el.getAttribute("data-live-version");
  const url = el.getAttribute("data-live-url");
  const typing = () => Array.from(document.querySelectorAll("textarea"))
    .some((t) => t.value.trim() !== "");
  async function poll() {
    try {
      const resp = await fetch(`${url}?version=${encodeURIComponent(version)}`,
        { credentials: "same-origin", cache: "no-store" });
      if (resp.ok) {
        const body = await resp.json();
        if (body.changed) {
          if (!typing()) { window.location.reload(); return; }
          version = String(body.version);
          el.textContent = "Có cập nhật mới — tải lại trang sau khi gửi.";
          el.className = "notice";
        }
      } else if (resp.status === 401) {
        return;  // logged out: stop polling
      }
    } catch (e) {
      await new Promise((r) => setTimeout(r, 5000));  // network trouble: back off
    }
    poll();
  }
  poll();
})();

// A training in progress: poll its job and show the percentage; reload when it is over.
(function trainingProgress() {
  const el = document.querySelector("[data-job-url]");
  if (!el || !el.getAttribute("data-job-url")) return;
  const url = el.getAttribute("data-job-url");
  const bar = el.querySelector("progress");
  const text = el.querySelector("[data-job-text]");
  async function tick() {
    try {
      const resp = await fetch(url, { credentials: "same-origin", cache: "no-store" });
      if (resp.ok) {
        const job = await resp.json();
        if (bar) bar.value = job.percent;
        if (text) text.textContent = `${Math.round(job.percent)}% — ${job.phase || ""}`;
        // "queued": waiting for the trainer service (TRAINING_MODE=queue)
        if (job.status !== "running" && job.status !== "queued") {
          window.location.reload();
          return;
        }
      }
    } catch (e) { /* try again */ }
    setTimeout(tick, 2000);
  }
  setTimeout(tick, 2000);
})();
