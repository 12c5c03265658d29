// crmnet serve: a little progressive enhancement. Everything works without it (the job page refreshes itself).
"use strict";

function watchJob(box) {
  const bar = document.getElementById("progress");
  const message = document.getElementById("message");
  const poll = async () => {
    let status;
    try {
      const response = await fetch("/api/jobs/" + box.dataset.id, {cache: "no-store"});
      if (!response.ok) { location.reload(); return; }
      status = await response.json();
    } catch (e) {
      setTimeout(poll, 2000);  // the server may be busy: try again
      return;
    }
    if (["done", "failed", "stopped"].includes(status.state)) { location.reload(); return; }
    bar.max = status.total;
    bar.value = status.done;
    message.textContent = status.state + ": " + status.message + " (" + status.elapsed + " s)";
    setTimeout(poll, 400);
  };
  poll();
}

function guardForm(form) {
  form.addEventListener("submit", (event) => {
    const file = form.querySelector("input[type=file]");
    if (file && file.files.length && file.files[0].size > Number(file.dataset.limit)) {
      event.preventDefault();
      let note = form.querySelector(".error");
      if (!note) { note = document.createElement("p"); note.className = "error"; form.prepend(note); }
      note.textContent = "The file is " + (file.files[0].size / 1048576).toFixed(1) + " MB; the limit is " +
        (Number(file.dataset.limit) / 1048576).toFixed(1) + " MB.";
      return;
    }
    const button = form.querySelector("button[type=submit]");
    if (button) { button.dataset.label = button.textContent; button.disabled = true; button.textContent = "Working…"; }
  });
}

// The evolve form: show only the settings the chosen mode uses.
function followMode(select) {
  const show = () => document.querySelectorAll(".mode-params").forEach((box) => {
    box.hidden = !box.dataset.modes.split(" ").includes(select.value);
  });
  select.addEventListener("change", show);
  show();
}

document.addEventListener("DOMContentLoaded", () => {
  const mode = document.getElementById("mode");
  if (mode) followMode(mode);
  const box = document.getElementById("job");
  if (box && !["done", "failed", "stopped"].includes(box.dataset.state)) watchJob(box);
  document.querySelectorAll("form[enctype]").forEach(guardForm);
});

// Coming back to a form with the browser's Back button: make its button usable again.
window.addEventListener("pageshow", () => {
  document.querySelectorAll("button[disabled]").forEach((b) => { b.disabled = false; b.textContent = b.dataset.label || b.textContent; });
});
