"""manage.py commands: submit, jobs, flexsim, demouser, apitoken."""
