"""FlexDash's tables: jobs and their attempts, runs, the dispatcher's control
rows, per-model prices and limits, and API tokens. Rules that belong to one
row (or to which rows a person may see) live here as model methods; every
change of a job's state goes through jobs/engine/."""

from __future__ import annotations

from decimal import Decimal

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.template.defaultfilters import pluralize
from django.utils import timezone

from jobs import gemini_shape
from jobs.catalog import CHARS_PER_TOKEN, DEFAULT_MODEL
from jobs.fields import JSONTextField
from jobs.formats import FORMAT_LABELS
from jobs.redaction import redact_api_key

# A budget someone sets: at least a cent, at most a million dollars.
BUDGET_VALIDATORS = [MinValueValidator(Decimal("0.01")), MaxValueValidator(Decimal("1000000"))]


class Tier(models.TextChoices):
    FLEX = "flex", "Flex (50% of standard)"
    STANDARD = "standard", "Standard"
    PRIORITY = "priority", "Priority"


class State(models.TextChoices):
    # A pipeline's job whose earlier steps have not all answered: never claimed.
    WAITING = "waiting", "Waiting on earlier steps"
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    RETRYING = "retrying", "Waiting to retry"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"
    # A pipeline's job whose earlier step failed or was cancelled: never sent.
    SKIPPED = "skipped", "Skipped (an earlier step failed)"


ACTIVE_STATES = (State.WAITING, State.QUEUED, State.RUNNING, State.RETRYING)
# Due to be sent (at their next attempt time): what a dispatcher claims.
WAITING_STATES = (State.QUEUED, State.RETRYING)
FINISHED_STATES = (State.SUCCEEDED, State.FAILED, State.CANCELLED, State.SKIPPED)


class DeadlinePolicy(models.TextChoices):
    """What happens to a job still unfinished at its deadline (chosen up front)."""

    KEEP = "keep", "Keep waiting"
    CANCEL = "cancel", "Cancel it"
    STANDARD = "standard", "Move it to the standard tier"


class ErrorKind(models.TextChoices):
    CAPACITY = "capacity", "Capacity (503)"
    RATE_LIMIT = "rate_limit", "Rate limit (429)"
    TRANSIENT = "transient", "Server error (5xx)"
    TIMEOUT = "timeout", "Timed out"
    CONNECTION = "connection", "Connection failed"
    BAD_REQUEST = "bad_request", "Bad request"
    AUTH = "auth", "Not authorised"
    NOT_FOUND = "not_found", "Not found"
    FAILED_IN_BODY = "failed_in_body", "Answer says failed"
    BAD_OUTPUT = "bad_output", "Answer broke the schema"
    LOST = "lost", "Worker lost (lease expired)"


class Outcome(models.TextChoices):
    IN_FLIGHT = "in_flight", "In flight"
    SUCCEEDED = "succeeded", "Succeeded"
    WILL_RETRY = "will_retry", "Will retry"
    FAILED = "failed", "Failed"
    PAUSED = "paused", "Dispatch paused"
    LOST = "lost", "Lost with its worker"
    INTERRUPTED = "interrupted", "Handed on (its cluster stopped)"
    DISCARDED = "discarded", "Discarded (job no longer running)"


# Attempts that ended in an error, whatever came of the job (a run's per-minute errors).
ERROR_OUTCOMES = (Outcome.WILL_RETRY, Outcome.FAILED, Outcome.PAUSED, Outcome.LOST)


class OwnedQuerySet(models.QuerySet):
    def visible_to(self, user) -> OwnedQuerySet:
        """What this person may see: their own rows; staff see everyone's.
        Pages and the API both ask here, and answer 404 for the rest."""
        return self if user.is_staff else self.filter(owner=user)


class Job(models.Model):
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="jobs"
    )
    # No index of its own: job_run_state (run, state) starts with it.
    run = models.ForeignKey(
        "Run",
        on_delete=models.CASCADE,
        related_name="jobs",
        null=True,
        blank=True,
        db_index=False,
    )
    # The line's own id in an uploaded file, echoed back by the downloads.
    custom_id = models.TextField(blank=True)
    # In a pipeline run: the step this job is (line_number is its row), and for a
    # step that fans out (for_each), which item of the list it answers.
    step = models.CharField(max_length=64, blank=True)
    item = models.PositiveIntegerField(null=True, blank=True)
    # A step that continues an earlier step's conversation: that answer's
    # interaction id, sent as previous_interaction_id on the Interactions route
    # (the request holds the earlier turns too, for generateContent).
    continues_interaction = models.CharField(max_length=128, blank=True)
    # Before whole requests were kept: what the line asked for, to write it out again.
    request_fields = models.JSONField(default=dict, blank=True)
    # The uploaded line as it came, for the download of lines to upload again.
    source_line = models.TextField(blank=True)
    # Where in the uploaded file: the line (a CSV record's first line) that the
    # upload's own error messages name. Stored, not derived from the id: ids of
    # one run interleave with jobs inserted meanwhile on PostgreSQL, and a
    # file's lines are not its prompts (a CSV header, blank lines, multi-line
    # cells). Empty for a job submitted alone and for runs from before it was kept.
    line_number = models.PositiveIntegerField(null=True, blank=True)
    # The whole request in Gemini's own shape (jobs/gemini_shape.py), model and tier
    # aside. Empty for jobs from before it was kept: gemini_request() builds theirs.
    request = JSONTextField(null=True, blank=True)
    # Input tokens its images and documents count for, before it is sent (pacing's TPM).
    media_tokens = models.PositiveIntegerField(default=0)
    # What a try of it may cost at most, read from the request when it is stored
    # (jobs/engine/spending.py): input tokens at one per UTF-8 byte of text plus the
    # media's, output tokens its caps allow, and how many times the model's own
    # output cap to add where the request sets none. Empty for jobs from before.
    reserve_input_tokens = models.PositiveIntegerField(null=True, blank=True)
    reserve_output_tokens = models.PositiveIntegerField(null=True, blank=True)
    reserve_model_caps = models.PositiveSmallIntegerField(null=True, blank=True)
    model = models.CharField(max_length=64, default=DEFAULT_MODEL)
    input_text = models.TextField("prompt")
    system_instruction = models.TextField(blank=True)
    temperature = models.FloatField(null=True, blank=True)
    max_output_tokens = models.PositiveIntegerField(null=True, blank=True)
    tier_requested = models.CharField(max_length=16, choices=Tier, default=Tier.FLEX)
    fallback_standard = models.BooleanField(
        "fall back to standard on the last attempt", default=False
    )

    state = models.CharField(max_length=16, choices=State, default=State.QUEUED)
    attempts = models.PositiveIntegerField(default=0)
    max_attempts = models.PositiveSmallIntegerField(default=8)
    attempt_budget = models.PositiveSmallIntegerField(
        null=True,
        blank=True,
        help_text="The max attempts it was submitted with, which each retry by a person "
        "grants again; kept from its first such retry on (until then max attempts holds it).",
    )
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    lease_owner = models.CharField(max_length=100, blank=True)
    lease_expires_at = models.DateTimeField(null=True, blank=True)

    http_503 = models.PositiveIntegerField("503s", default=0)
    http_429 = models.PositiveIntegerField("429s", default=0)
    refunded_attempts = models.PositiveIntegerField(
        default=0,
        help_text="Attempts not charged to max attempts: lost with a crashed worker, "
        "or refused for bad credentials (dispatch paused).",
    )
    other_errors = models.PositiveIntegerField(default=0)

    result_text = models.TextField(blank=True)
    # The answer as a GenerateContentResponse (JSON, camelCase): every candidate, its
    # finish reason, safety ratings, citations, function calls, usage, model version.
    response = JSONTextField(null=True, blank=True)
    finish_reason = models.CharField(max_length=32, blank=True)
    cut_at_limit = models.BooleanField(
        "cut at the token limit",
        default=False,
        help_text="The answer stopped at max output tokens: its text is what came.",
    )
    # With a response schema: the answer parsed, and why it did not parse or validate.
    output_json = JSONTextField("structured answer", null=True, blank=True)
    output_problem = models.TextField(blank=True)
    retry_bad_output = models.BooleanField(
        "retry answers that break the schema",
        default=False,
        help_text="Try again (within max attempts) when a JSON answer does not parse or "
        "validate; otherwise it succeeds flagged.",
    )
    bad_outputs = models.PositiveSmallIntegerField("answers that broke the schema", default=0)
    response_id = models.CharField("interaction id", max_length=128, blank=True)
    tier_served = models.CharField(max_length=16, blank=True)
    input_tokens = models.PositiveIntegerField(default=0)
    output_tokens = models.PositiveIntegerField(default=0)
    thought_tokens = models.PositiveIntegerField(default=0)
    cost_usd = models.DecimalField(max_digits=14, decimal_places=8, null=True, blank=True)
    standard_cost_usd = models.DecimalField(
        "cost on standard", max_digits=14, decimal_places=8, null=True, blank=True
    )
    last_error = models.TextField(blank=True)

    deadline_at = models.DateTimeField(null=True, blank=True)
    deadline_policy = models.CharField(
        "at the deadline", max_length=16, choices=DeadlinePolicy, default=DeadlinePolicy.KEEP
    )

    submitted_at = models.DateTimeField(default=timezone.now)
    first_started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = OwnedQuerySet.as_manager()

    class Meta:
        ordering = ["-submitted_at", "-id"]
        indexes = [
            # "What is due now": state IN (queued, retrying) AND next_attempt_at <= now.
            models.Index(fields=["state", "next_attempt_at"], name="job_due"),
            # Expired leases of running jobs, and counts by state.
            models.Index(fields=["state", "lease_expires_at"], name="job_lease"),
            # Counts by owner and state, and a researcher's list filtered by
            # state, newest first (PostgreSQL walked the primary key backwards
            # through a million rows without the id).
            models.Index(fields=["owner", "state", "id"], name="job_owner_state"),
            # Staff's list filtered by state, newest first.
            models.Index(fields=["state", "id"], name="job_state_recent"),
            # In flight per model (the capacity weather), from the index alone.
            models.Index(fields=["state", "model"], name="job_state_model"),
            models.Index(fields=["owner", "-submitted_at"], name="job_owner_recent"),
            models.Index(fields=["run", "state"], name="job_run_state"),
            # A run's first start, for its rate (migration 0019).
            models.Index(fields=["run", "first_started_at"], name="job_run_started"),
            # A run's jobs in file order, a page at a time (its job table, its results).
            models.Index(
                fields=["run", "line_number"],
                name="job_run_line",
                condition=models.Q(run__isnull=False),
            ),
            # Active jobs whose deadline must be acted on; most jobs have none,
            # and finished ones drop out of the index.
            models.Index(
                fields=["deadline_at"],
                name="job_deadline",
                condition=models.Q(
                    deadline_at__isnull=False,
                    state__in=["waiting", "queued", "running", "retrying"],
                ),
            ),
        ]

    def __str__(self) -> str:
        return f"Job {self.pk} ({self.get_state_display()})"

    @property
    def is_active(self) -> bool:
        return self.state in ACTIVE_STATES

    @property
    def is_finished(self) -> bool:
        return self.state in FINISHED_STATES

    def gemini_request(self) -> dict:
        """The whole request, in Gemini's shape: as submitted, or for a job from
        before requests were kept, built from its prompt and settings."""
        if self.request:
            return self.request
        config = {
            name: value
            for name in ("temperature", "max_output_tokens")
            if (value := getattr(self, name)) is not None
        }
        return gemini_shape.simple(
            self.input_text,
            system_instruction=self.system_instruction,
            generation_config=config,
        )

    @property
    def paced_chars(self) -> int:
        """The prompt's length as pacing reckons it: its text and system
        instruction, and its images and documents as the characters their
        tokens are worth (jobs.engine.capacity.prompt_chars is the same in SQL)."""
        return (
            len(self.input_text)
            + len(self.system_instruction)
            + self.media_tokens * CHARS_PER_TOKEN
        )

    @property
    def budgeted_attempts(self) -> int:
        """Attempts that count against max_attempts."""
        return self.attempts - self.refunded_attempts

    @property
    def savings_usd(self) -> Decimal | None:
        if self.cost_usd is None or self.standard_cost_usd is None:
            return None
        return self.standard_cost_usd - self.cost_usd


class Attempt(models.Model):
    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="attempt_log")
    number = models.PositiveIntegerField()
    dispatcher = models.CharField(max_length=100, blank=True)
    route = models.CharField(max_length=32, blank=True)
    started_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)
    latency_seconds = models.FloatField(null=True, blank=True)
    tier_requested = models.CharField(max_length=16, choices=Tier)
    tier_served = models.CharField(max_length=16, blank=True)
    http_status = models.PositiveSmallIntegerField(null=True, blank=True)
    google_status = models.CharField(max_length=64, blank=True)
    retry_after_seconds = models.FloatField(null=True, blank=True)
    error_kind = models.CharField(max_length=32, choices=ErrorKind, blank=True)
    error_message = models.TextField(blank=True)
    outcome = models.CharField(max_length=16, choices=Outcome, default=Outcome.IN_FLIGHT)
    # The try's worst-case cost, held against every budget covering it while it is
    # in flight (jobs/engine/budgets.py), and the month (UTC) it is charged to.
    reserved_usd = models.DecimalField(max_digits=14, decimal_places=8, null=True, blank=True)
    budget_month = models.DateField(null=True, blank=True)
    # What Google billed for this try, charged to the budgets in place of the reservation.
    cost_usd = models.DecimalField(max_digits=14, decimal_places=8, null=True, blank=True)
    # The job's model and prompt length when the try was sent, so the capacity
    # weather (drawn on every overview poll) counts the last minute's requests
    # and tokens per model from the attempts alone, not by joining them to the
    # jobs and measuring each prompt again. Null on tries from before migration
    # 0020 (only the last minute is read); null, not "", so adding them is an
    # ALTER TABLE, not a rebuild of a table of millions of attempts on SQLite.
    model = models.CharField(max_length=64, null=True, blank=True)  # noqa: DJ001 (see above)
    prompt_chars = models.PositiveIntegerField(null=True, blank=True)

    class Meta:
        ordering = ["job", "number"]
        constraints = [
            models.UniqueConstraint(fields=["job", "number"], name="attempt_unique_number"),
        ]
        indexes = [
            # By start; with what the capacity weather counts of the last
            # minute's attempts (thousands at a busy minute), read from the index alone.
            models.Index(
                fields=["started_at", "model", "http_status", "prompt_chars"],
                name="attempt_started",
            ),
            models.Index(fields=["http_status", "started_at"], name="attempt_status_time"),
        ]

    def __str__(self) -> str:
        return f"Attempt {self.number} of job {self.job_id}"

    def save(self, *args, **kwargs) -> None:
        # The claim writes these in its bulk insert; one saved row by row takes
        # them from its job.
        if self.model is None and self.job_id is not None:
            self.model = self.job.model
            self.prompt_chars = self.job.paced_chars
        super().save(*args, **kwargs)

    @property
    def outcome_label(self) -> str:
        """What the attempt came to, as a person reads it now. The stored outcome
        stays what was decided when the attempt ended (its error was worth a
        retry); a job cancelled since, by a person or its deadline, never had
        that retry, so its last attempt says so instead of "Will retry"."""
        awaited_retry = self.outcome in (Outcome.WILL_RETRY, Outcome.PAUSED)
        job = self.job
        if awaited_retry and job.state == State.CANCELLED and self.number == job.attempts:
            return "Cancelled before its retry"
        return self.get_outcome_display()


class DispatchControl(models.Model):
    """The one row that says whether dispatch may send requests, and why not."""

    paused = models.BooleanField(default=False)
    reason = models.TextField(blank=True)
    paused_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = "dispatch control"
        verbose_name_plural = "dispatch control"

    def __str__(self) -> str:
        # The admin shows this and keeps it in its history; the reason can quote Gemini.
        return (
            f"Dispatch paused: {redact_api_key(self.reason)}" if self.paused else "Dispatch running"
        )


class DispatcherSlot(models.Model):
    """One row per dispatcher allowed to run at once (FLEX_DISPATCHERS).

    A wake-up that finds every slot leased returns at once: the running
    dispatcher already looks for new work every second."""

    number = models.PositiveSmallIntegerField(primary_key=True)
    owner = models.CharField(max_length=100, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    in_flight = models.PositiveIntegerField(default=0)

    def __str__(self) -> str:
        return f"Dispatcher slot {self.number}"


class ModelPrice(models.Model):
    """Standard-tier USD per million tokens; flex bills half (editable)."""

    model = models.CharField(max_length=64, unique=True)
    input_per_million = models.DecimalField(max_digits=10, decimal_places=4)
    output_per_million = models.DecimalField(max_digits=10, decimal_places=4)
    long_input_per_million = models.DecimalField(
        max_digits=10, decimal_places=4, null=True, blank=True
    )
    long_output_per_million = models.DecimalField(
        max_digits=10, decimal_places=4, null=True, blank=True
    )
    max_output_tokens = models.PositiveIntegerField(
        "output cap",
        null=True,
        blank=True,
        help_text="The most output tokens one answer may have (the model's published limit). "
        "A budget reserves this for a request that sets no max output tokens. Empty: "
        "FLEX_BUDGET_DEFAULT_OUTPUT_TOKENS.",
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["model"]

    def __str__(self) -> str:
        return self.model


class ModelLimit(models.Model):
    """One model's quota and what the dispatchers have learned about it.

    Every dispatcher on every machine paces against this row (jobs/engine/capacity.py),
    so limits hold in sum. An empty limit means the environment's default
    (FLEX_RPM_LIMIT, FLEX_TPM_LIMIT, FLEX_RPD_LIMIT); 0 means no limit."""

    model = models.CharField(max_length=64, unique=True)
    rpm_limit = models.PositiveIntegerField(
        "requests per minute", null=True, blank=True, help_text="Empty: FLEX_RPM_LIMIT."
    )
    tpm_limit = models.PositiveIntegerField(
        "input tokens per minute", null=True, blank=True, help_text="Empty: FLEX_TPM_LIMIT."
    )
    rpd_limit = models.PositiveIntegerField(
        "requests per day",
        null=True,
        blank=True,
        help_text="Empty: FLEX_RPD_LIMIT. The day resets at midnight Pacific, as Google's does.",
    )

    # Pacing (GCRA): the earliest time the next request, and the next token,
    # may go out without exceeding the per-minute limits.
    next_request_at = models.DateTimeField(null=True, blank=True)
    next_token_at = models.DateTimeField(null=True, blank=True)
    # Requests sent on the current Pacific day.
    day = models.DateField(null=True, blank=True)
    day_requests = models.PositiveIntegerField(default=0)

    # 429s step the rate down (rate_factor < 1); it recovers slowly.
    rate_factor = models.FloatField(default=1.0)
    rate_factor_at = models.DateTimeField(null=True, blank=True)
    # A 503 storm lowers concurrency and rate (storm_factor < 1); it recovers quickly.
    storm_factor = models.FloatField(default=1.0)
    storm_factor_at = models.DateTimeField(null=True, blank=True)
    # Recent outcomes, decayed exponentially (jobs/engine/pacing.py, Recent).
    recent_at = models.DateTimeField(null=True, blank=True)
    recent_calls = models.FloatField(default=0.0)
    recent_503 = models.FloatField(default=0.0)
    recent_429 = models.FloatField(default=0.0)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["model"]
        verbose_name = "model limit"

    def __str__(self) -> str:
        return self.model


class ApiToken(models.Model):
    """A script's key to the JSON API. Only a SHA-256 of the token is kept:
    the token itself is shown once, when it is created (jobs/engine/tokens.py)."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens"
    )
    name = models.CharField(max_length=100)
    token_hash = models.CharField(max_length=64, unique=True)
    prefix = models.CharField(
        max_length=16, help_text="The token's first characters, to recognise it."
    )
    created_at = models.DateTimeField(default=timezone.now)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = "API token"

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @property
    def is_revoked(self) -> bool:
        return self.revoked_at is not None


class Run(models.Model):
    """A named group of jobs uploaded together from one file.

    The defaults apply to every line that does not say otherwise; a line's
    model that flex does not run is replaced by `model` (counted in
    `replaced_models`)."""

    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="runs"
    )
    name = models.CharField(max_length=200)
    source_name = models.CharField("file name", max_length=255, blank=True)
    source_format = models.CharField("file format", max_length=32)
    # A pipeline run's definition, checked (jobs/engine/pipelines.py): its steps
    # are rendered from it as their rows' earlier answers arrive. Empty otherwise.
    pipeline = JSONTextField(null=True, blank=True)
    # An eval run's definition, compiled (jobs/runs/eval_definitions.py): its
    # candidates, graders and the pipeline steps behind each. Empty otherwise.
    evaluation = JSONTextField(null=True, blank=True)
    model = models.CharField(max_length=64, default=DEFAULT_MODEL)
    tier = models.CharField(max_length=16, choices=Tier, default=Tier.FLEX)
    max_attempts = models.PositiveSmallIntegerField(default=8)
    fallback_standard = models.BooleanField(
        "fall back to standard on the last attempt", default=False
    )
    replaced_models = models.PositiveIntegerField(
        default=0, help_text="Lines whose model flex does not run; they use the run's model."
    )
    deadline_at = models.DateTimeField(null=True, blank=True)
    deadline_policy = models.CharField(
        "at the deadline", max_length=16, choices=DeadlinePolicy, default=DeadlinePolicy.KEEP
    )
    budget_usd = models.DecimalField(
        "budget (USD)",
        max_digits=12,
        decimal_places=2,
        null=True,
        blank=True,
        validators=BUDGET_VALIDATORS,
        help_text="The most the run may cost, retries and fallbacks included; empty: no limit.",
    )
    # The estimate shown before the run was created (jobs/runs/services.py, Estimate).
    estimated_input_tokens = models.PositiveBigIntegerField(default=0)
    estimated_output_tokens = models.PositiveBigIntegerField(default=0)
    estimated_cost_usd = models.DecimalField(max_digits=16, decimal_places=8, default=0)
    estimated_standard_cost_usd = models.DecimalField(
        "estimated cost on standard", max_digits=16, decimal_places=8, default=0
    )
    created_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(
        null=True, blank=True, help_text="When the last job finished; empty while any is active."
    )
    # What its owner asked to be told (set when it was created, from their
    # account's defaults unless they chose otherwise), and when the failure
    # threshold was first crossed: set once, so that is told once.
    notify_finished = models.BooleanField("tell me when it finishes", default=False)
    notify_failed_jobs = models.PositiveIntegerField(
        "tell me when this many jobs have failed", null=True, blank=True
    )
    notify_failed_percent = models.PositiveSmallIntegerField(
        "tell me when this share (%) of its jobs has failed", null=True, blank=True
    )
    notify_budget = models.BooleanField("tell me when a budget stops it", default=False)
    notify_paused = models.BooleanField("tell me when dispatch pauses", default=False)
    failures_noticed_at = models.DateTimeField(null=True, blank=True)

    objects = OwnedQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["owner", "-created_at"], name="run_owner_recent"),
            # Runs not yet settled: the minute sweep looks for those whose jobs all ended.
            models.Index(
                fields=["id"], name="run_unfinished", condition=models.Q(finished_at__isnull=True)
            ),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def format_label(self) -> str:
        return FORMAT_LABELS.get(self.source_format, self.source_format)

    @property
    def notify_words(self) -> str:
        """What its owner asked to be told, in words, e.g. "when it finishes;
        at 10 failed jobs or 5%"; "nothing" when nothing."""
        told = ["when it finishes"] if self.notify_finished else []
        limits = []
        if self.notify_failed_jobs is not None:
            limits.append(
                f"{self.notify_failed_jobs:,} failed job{pluralize(self.notify_failed_jobs)}"
            )
        if self.notify_failed_percent is not None:
            limits.append(f"{self.notify_failed_percent}% failed")
        if limits:
            told.append("at " + " or ".join(limits))
        if self.notify_budget:
            told.append("when a budget stops it")
        if self.notify_paused:
            told.append("when dispatch pauses")
        return "; ".join(told) or "nothing"


# --- Notifications (jobs/engine/notices.py writes them, jobs/notices/ sends them) ----
class RunRow(models.Model):
    """One row of a pipeline run's table: the values its steps' templates read
    as `row.<column>`, kept once for all the row's jobs (each job names its row
    by line_number)."""

    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="rows")
    line_number = models.PositiveIntegerField()
    custom_id = models.TextField(blank=True)
    values = JSONTextField(default=dict)
    # The row as uploaded, for the download of rows to run again.
    source_line = models.TextField(blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["run", "line_number"], name="run_row_line"),
        ]

    def __str__(self) -> str:
        return f"Row {self.line_number} of run {self.run_id}"


class NoticeKind(models.TextChoices):
    """What a notification is about; the value is the webhook's event type."""

    RUN_FINISHED = "run.finished", "Run finished"
    RUN_FAILURES = "run.failures", "Failures past the threshold"
    BUDGET_STOPPED = "budget.stopped", "Budget stopped work"
    DISPATCH_PAUSED = "dispatch.paused", "Dispatch paused"
    TEST = "test", "Test"


class NoticeSettings(models.Model):
    """A person's channels (e-mail, a signed webhook) and the defaults a new
    run's notifications start from; events outside any run (a pause while
    single jobs wait) use these choices themselves."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="notice_settings"
    )
    email_enabled = models.BooleanField("send e-mail", default=True)
    email = models.EmailField(
        "e-mail address", blank=True, help_text="Empty: the address of your account."
    )
    webhook_url = models.URLField("webhook URL", max_length=2000, blank=True)
    # Signs every webhook (HMAC-SHA256): kept as it is, since signing needs it.
    webhook_secret = models.CharField(max_length=64, blank=True)
    on_finished = models.BooleanField("when a run finishes", default=False)
    on_failed_jobs = models.PositiveIntegerField(
        "when this many of a run's jobs have failed", null=True, blank=True
    )
    on_failed_percent = models.PositiveSmallIntegerField(
        "when this share (%) of a run's jobs has failed", null=True, blank=True
    )
    on_budget = models.BooleanField("when a budget stops work", default=False)
    on_paused = models.BooleanField("when dispatch is paused", default=False)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "notification settings"
        verbose_name_plural = "notification settings"

    def __str__(self) -> str:
        return f"Notification settings of {self.user}"

    @property
    def email_address(self) -> str:
        return self.email or self.user.email


class ChannelState(models.TextChoices):
    OFF = "off", "Not asked for"
    PENDING = "pending", "Waiting to be sent"
    SENT = "sent", "Sent"
    FAILED = "failed", "Failed"


class Notice(models.Model):
    """One notification in the outbox: written in the same transaction as the
    change it tells of, at most once per (user, kind, key), and delivered by a
    django-q2 task (jobs/notices/delivery.py). `due_at` is when a channel next
    needs a try (empty once none does); `lease_until` keeps two deliveries
    of the same notice from running at once."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="notices"
    )
    run = models.ForeignKey(
        Run, on_delete=models.SET_NULL, null=True, blank=True, related_name="notices"
    )
    kind = models.CharField(max_length=32, choices=NoticeKind)
    key = models.CharField(max_length=200)
    subject = models.CharField(max_length=300)
    detail = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    email_state = models.CharField(max_length=16, choices=ChannelState, default=ChannelState.OFF)
    email_attempts = models.PositiveSmallIntegerField(default=0)
    webhook_state = models.CharField(max_length=16, choices=ChannelState, default=ChannelState.OFF)
    webhook_attempts = models.PositiveSmallIntegerField(default=0)
    due_at = models.DateTimeField(null=True, blank=True)
    lease_until = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["user", "kind", "key"], name="notice_once"),
        ]
        indexes = [
            models.Index(fields=["user", "-created_at"], name="notice_user_recent"),
            # The sweep's "what still needs a try": only undelivered notices are in it.
            models.Index(
                fields=["due_at"], name="notice_due", condition=models.Q(due_at__isnull=False)
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()}: {self.subject}"


class DeliveryOutcome(models.TextChoices):
    SENT = "sent", "Sent"
    WILL_RETRY = "will_retry", "Failed, will retry"
    FAILED = "failed", "Failed, gave up"
    REFUSED = "refused", "Refused (address not allowed)"


class Delivery(models.Model):
    """One try at sending a notice by one channel, as it went."""

    notice = models.ForeignKey(Notice, on_delete=models.CASCADE, related_name="deliveries")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="deliveries"
    )
    channel = models.CharField(max_length=16)  # "email" or "webhook"
    attempt = models.PositiveSmallIntegerField()
    target = models.CharField(max_length=2000)
    started_at = models.DateTimeField(default=timezone.now)
    latency_seconds = models.FloatField(null=True, blank=True)
    http_status = models.PositiveSmallIntegerField(null=True, blank=True)
    response_excerpt = models.TextField(blank=True)
    error = models.TextField(blank=True)
    outcome = models.CharField(max_length=16, choices=DeliveryOutcome)

    class Meta:
        ordering = ["-started_at", "-id"]
        verbose_name_plural = "deliveries"
        indexes = [models.Index(fields=["user", "-started_at"], name="delivery_user_recent")]

    def __str__(self) -> str:
        return f"{self.channel} try {self.attempt} of notice {self.notice_id}"


class JobCount(models.Model):
    """How many jobs each owner has in each state, kept by the database itself
    (triggers, migration 0013) in the same transaction as the change that
    causes it, so the pages count a million jobs by reading a few rows.

    SQLite keeps one row per (owner, state). PostgreSQL appends a row of
    deltas per statement instead, so concurrent dispatchers never wait on a
    hot counter row, and the minute Schedule folds them together
    (jobs/engine/counts.py). Either way the count is the sum of `n`.

    Not a foreign key: the rows of a deleted owner sum to nothing and are
    folded away, and a constraint would refuse the deltas their delete writes."""

    owner_id = models.IntegerField()
    state = models.CharField(max_length=16, choices=State)
    n = models.BigIntegerField()

    class Meta:
        indexes = [models.Index(fields=["owner_id", "state"], name="jobcount_owner_state")]

    def __str__(self) -> str:
        return f"{self.state}: {self.n} (owner {self.owner_id})"


# Dollars in the tallies are whole units of 1e-8 USD (a job's cost has eight
# decimal places): integer sums are exact on both databases, where SQLite would
# sum decimals as floats.
COST_UNITS_PER_USD = 100_000_000


class JobTally(models.Model):
    """Per owner and number of attempts: how many jobs, and their 503s and
    429s (the overview's totals and its attempts histogram). Kept by the
    database as JobCount is (triggers, migration 0016; delta rows on
    PostgreSQL, folded by jobs/engine/counts.py)."""

    owner_id = models.IntegerField()
    attempts = models.IntegerField()
    n = models.BigIntegerField(default=0)
    http_503 = models.BigIntegerField(default=0)
    http_429 = models.BigIntegerField(default=0)

    class Meta:
        indexes = [models.Index(fields=["owner_id", "attempts"], name="jobtally_owner_attempts")]

    def __str__(self) -> str:
        return f"{self.n} jobs with {self.attempts} attempts (owner {self.owner_id})"


class OutcomeMinute(models.Model):
    """Per owner and minute (UTC) in which attempts finished: how many, and
    the successes, 503s and 429s among them (the overview's chart and its
    last hour). Kept by triggers on the
    attempts (migration 0016); a job given to another owner takes its
    attempts' minutes along."""

    owner_id = models.IntegerField()
    minute = models.DateTimeField()
    finished = models.BigIntegerField(default=0)
    succeeded = models.BigIntegerField(default=0)
    http_503 = models.BigIntegerField(default=0)
    http_429 = models.BigIntegerField(default=0)

    class Meta:
        indexes = [
            models.Index(fields=["owner_id", "minute"], name="outcomeminute_owner_minute"),
            models.Index(fields=["minute"], name="outcomeminute_minute"),
        ]

    def __str__(self) -> str:
        return f"{self.minute:%Y-%m-%d %H:%M}: {self.succeeded} answers (owner {self.owner_id})"


class RunTally(models.Model):
    """Per run and state: how many of its jobs, what their answers cost and
    would have cost on standard (in units of 1e-8 USD), their tokens, how
    many were priced, asked for flex, and their 503s and 429s (the run list,
    a run's counts and its progress). Kept by triggers on the jobs
    (migrations 0016 and 0019)."""

    run_id = models.IntegerField()
    state = models.CharField(max_length=16, choices=State)
    n = models.BigIntegerField(default=0)
    cost_units = models.BigIntegerField(default=0)
    standard_cost_units = models.BigIntegerField(default=0)
    priced = models.BigIntegerField(default=0)
    flex = models.BigIntegerField(default=0)
    input_tokens = models.BigIntegerField(default=0)
    output_tokens = models.BigIntegerField(default=0)
    thought_tokens = models.BigIntegerField(default=0)
    http_503 = models.BigIntegerField(default=0)
    http_429 = models.BigIntegerField(default=0)

    class Meta:
        indexes = [models.Index(fields=["run_id", "state"], name="runtally_run_state")]

    def __str__(self) -> str:
        return f"{self.state}: {self.n} (run {self.run_id})"


class RunMinute(models.Model):
    """Per run and minute (UTC) in which its attempts finished: how many, the
    answers, the failures that ended a job, the errors of any kind (retried
    or not) and the 503s and 429s among them (a run's per-minute table, its
    last hour and its rate). Kept by triggers on the attempts (migration 0019)."""

    run_id = models.IntegerField()
    minute = models.DateTimeField()
    finished = models.BigIntegerField(default=0)
    succeeded = models.BigIntegerField(default=0)
    failed = models.BigIntegerField(default=0)
    errors = models.BigIntegerField(default=0)
    http_503 = models.BigIntegerField(default=0)
    http_429 = models.BigIntegerField(default=0)

    class Meta:
        indexes = [models.Index(fields=["run_id", "minute"], name="runminute_run_minute")]

    def __str__(self) -> str:
        return f"{self.minute:%Y-%m-%d %H:%M}: {self.succeeded} answers (run {self.run_id})"


class CostHour(models.Model):
    """Per owner and hour (UTC) in which answers arrived: how many, and what
    they cost on their tier and would have cost on standard, in units of
    1e-8 USD (the month's cost on the overview). Kept by triggers on the jobs
    (migration 0016)."""

    owner_id = models.IntegerField()
    hour = models.DateTimeField()
    answers = models.BigIntegerField(default=0)
    cost_units = models.BigIntegerField(default=0)
    standard_cost_units = models.BigIntegerField(default=0)

    class Meta:
        indexes = [
            models.Index(fields=["owner_id", "hour"], name="costhour_owner_hour"),
            models.Index(fields=["hour"], name="costhour_hour"),
        ]

    def __str__(self) -> str:
        return f"{self.hour:%Y-%m-%d %H}h: {self.answers} answers (owner {self.owner_id})"


class AccountBudget(models.Model):
    """The one row with the operator's limit on what the whole account
    (everyone's work together) may cost in a calendar month (UTC)."""

    monthly_limit_usd = models.DecimalField(
        "monthly limit (USD)",
        max_digits=12,
        decimal_places=2,
        null=True,
        blank=True,
        validators=BUDGET_VALIDATORS,
        help_text="What all work together may cost per calendar month (UTC); empty: no limit.",
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "account budget"
        verbose_name_plural = "account budget"

    def __str__(self) -> str:
        limit = self.monthly_limit_usd
        return f"Account budget: ${limit} a month" if limit is not None else "Account budget: none"


class UserBudget(models.Model):
    """A researcher's monthly limit, set by staff."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="budget"
    )
    monthly_limit_usd = models.DecimalField(
        "monthly limit (USD)",
        max_digits=12,
        decimal_places=2,
        null=True,
        blank=True,
        validators=BUDGET_VALIDATORS,
        help_text="What this person's work may cost per calendar month (UTC); empty: no limit.",
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["user__username"]
        verbose_name = "user budget"

    def __str__(self) -> str:
        return f"Budget of {self.user}"


class BudgetScope(models.TextChoices):
    ACCOUNT = "account", "The account, per month"
    USER = "user", "A person, per month"
    RUN = "run", "A run"


class BudgetUse(models.Model):
    """What is spent and reserved against one budget: the account's or a
    person's in one month (UTC), or a run's. Locked in every claim that
    reserves against it (jobs/engine/budgets.py); `key` names it."""

    key = models.CharField(max_length=64, unique=True)
    scope = models.CharField(max_length=16, choices=BudgetScope)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, null=True, blank=True, related_name="+"
    )
    run = models.OneToOneField(
        Run, on_delete=models.CASCADE, null=True, blank=True, related_name="budget_use"
    )
    month = models.DateField(null=True, blank=True, help_text="The month's first day (UTC).")
    spent_usd = models.DecimalField(max_digits=16, decimal_places=8, default=0)
    reserved_usd = models.DecimalField(max_digits=16, decimal_places=8, default=0)
    # The smallest worst case it last refused: its work is not looked at again
    # until that much is left (released, or the limit raised).
    refused_usd = models.DecimalField(max_digits=16, decimal_places=8, null=True, blank=True)
    # When it first stopped work: what is spent leaves no room for the next
    # request's worst case (budgets.budget_stopped); cleared when the limit changes.
    blocked_since = models.DateTimeField(null=True, blank=True)
    blocked_reason = models.TextField(blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "budget use"

    def __str__(self) -> str:
        return self.key
