// Workers page (editors): Drain and Give back send the worker's queue change to the API,
// then reload the page, which shows the fleet as the workers answer after it.
import { fetchJSON } from "./common.js";

const banner = document.getElementById("workers-error");

async function changeQueue(button) {
  banner.textContent = "";
  for (const other of document.querySelectorAll("button[data-action]")) other.disabled = true;
  try {
    await fetchJSON(button.dataset.url, { method: "POST", body: { queue: button.dataset.queue } });
    window.location.reload();
  } catch (err) {
    banner.textContent = err.detail || err.message;
    for (const other of document.querySelectorAll("button[data-action]")) other.disabled = false;
  }
}

document.getElementById("workers-table").addEventListener("click", (event) => {
  const button = event.target.closest("button[data-action]");
  if (button) changeQueue(button);
});
