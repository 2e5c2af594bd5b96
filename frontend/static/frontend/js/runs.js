// Runs list: the filters apply as soon as a choice changes (the Filter button stays for
// keyboard users and for pages without JavaScript).

const form = document.getElementById("run-filters");
for (const select of form.querySelectorAll("select")) {
  select.addEventListener("change", () => form.requestSubmit());
}
