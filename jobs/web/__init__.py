"""The researcher's pages: overview, jobs list, submit, a job's page, the
account page (API tokens) and /healthz. Views are thin: they check access,
validate a form, call one engine service or query, and render."""
