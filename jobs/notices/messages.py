"""What a notice says: the webhook's JSON event and the e-mail's text, both
from the notice's subject and detail as the engine wrote them."""

from __future__ import annotations

import json

from django.conf import settings
from django.urls import reverse

from jobs.models import Notice, NoticeKind


def absolute(path: str) -> str:
    return settings.FLEX_SITE_URL.rstrip("/") + path


def event(notice: Notice) -> dict:
    """The webhook body. `id` stays the same on every retry of one notice,
    so a receiver can ignore a repeat."""
    data = json.loads(json.dumps(notice.detail))
    if isinstance(data.get("run"), dict) and data["run"].get("path"):
        data["run"]["url"] = absolute(data["run"].pop("path"))
    return {
        "id": notice.pk,
        "type": notice.kind,
        "created_at": notice.created_at.isoformat(),
        "subject": notice.subject,
        "data": data,
    }


def body(notice: Notice) -> bytes:
    return json.dumps(event(notice), separators=(",", ":"), sort_keys=True).encode()


def email_text(notice: Notice) -> str:
    detail = notice.detail
    lines = [notice.subject, ""]
    run = detail.get("run")
    if notice.kind in (NoticeKind.RUN_FINISHED, NoticeKind.RUN_FAILURES) and run:
        counts = detail.get("counts", {})
        lines.append(f"Jobs: {detail.get('jobs', 0):,}")
        for state, count in counts.items():
            if count:
                lines.append(f"  {state}: {count:,}")
        if detail.get("cost_usd"):
            lines.append(f"Cost: ${detail['cost_usd']}")
    elif notice.kind == NoticeKind.DISPATCH_PAUSED:
        lines += [
            f"Why: {detail.get('reason', '')}",
            "",
            "Jobs wait where they are until "
            "an operator resumes dispatch; none of their attempts is spent meanwhile.",
        ]
    elif notice.kind == NoticeKind.BUDGET_STOPPED:
        lines.append("Its jobs wait, and go on when the limit is raised or the month turns.")
    elif notice.kind == NoticeKind.TEST:
        lines.append("This is a test from your FlexDash account page: notifications reach you.")
    if run and run.get("path"):
        lines += ["", f"The run: {absolute(run['path'])}"]
    lines += [
        "",
        f"Choose what you are told on your account page: {absolute(reverse('account:index'))}",
    ]
    return "\n".join(lines) + "\n"
