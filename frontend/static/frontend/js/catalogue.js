// Jobs catalogue: the Run button of each card opens the Run-with-parameters modal,
// filled from the job's definition (GET /api/v1/jobs/{id}/), and goes to the new run.

import { fetchJSON } from "./common.js";
import { openParamsModal } from "./params_modal.js";

const canEdit = document.getElementById("page-data").dataset.canEdit === "true";

async function runJob(button) {
  const jobId = button.dataset.runJob;
  button.disabled = true;
  let job;
  try {
    job = await fetchJSON(`/api/v1/jobs/${encodeURIComponent(jobId)}/`);
  } catch (err) {
    window.alert(`Could not load job ${jobId}: ${err.detail || err.message}`);
    return;
  } finally {
    button.disabled = false;
  }
  const steps = {};
  for (const step of job.steps) steps[step.name] = { op_kwargs: step.op_kwargs, enabled: step.enabled };
  await openParamsModal({
    title: `Run ${job.id}`,
    submitLabel: "▶ Run",
    submitUrl: `/api/v1/jobs/${encodeURIComponent(job.id)}/runs/`,
    steps: job.steps.map((step) => ({ name: step.name, type: step.type })),
    initial: { log_level: job.log_level, params: job.params, steps },
    canEditOpKwargs: canEdit,
  });
}

for (const button of document.querySelectorAll("[data-run-job]")) {
  button.addEventListener("click", () => runJob(button));
}
