// Slipway console: keep each open rollout's fragment live by re-reading it from the server.
// The server renders (and escapes) the fragment; this script only swaps it in, and stops
// polling once the rollout has closed. No library, nothing from another origin.
"use strict";

function follow(box) {
  const url = box.dataset.live;
  const every = Math.max(0.5, parseFloat(box.dataset.every || "2")) * 1000;
  async function poll() {
    try {
      const response = await fetch(url, { credentials: "same-origin", cache: "no-store" });
      if (response.ok) {
        box.innerHTML = await response.text();
        box.classList.remove("stale");
      } else {
        box.classList.add("stale");
      }
    } catch (error) {
      box.classList.add("stale");
    }
    const rollout = box.querySelector("[data-open]");
    if (rollout && rollout.dataset.open === "false") {
      return; // closed: the final state stays on the page
    }
    setTimeout(poll, every);
  }
  setTimeout(poll, every);
}

document.addEventListener("DOMContentLoaded", () => {
  document.querySelectorAll("[data-live]").forEach(follow);
});
