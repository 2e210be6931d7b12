// The console's small script: confirmation on dangerous buttons (data-confirm="…").
// Everything works without it; pages are server-rendered.
document.addEventListener("submit", (event) => {
  const button = event.submitter;
  const text = button && button.getAttribute("data-confirm");
  if (text && !window.confirm(text)) event.preventDefault();
});
