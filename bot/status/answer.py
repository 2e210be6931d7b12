"""The citizen's answer about one application: status, due date, lateness, next step.

Kept apart from the Rasa action so the wording can be tested directly and reused by
`bot status show`. Lateness is counted in working days of the configured calendar
(weekends, Vietnamese public holidays, the government's swapped days): that is how the
one-stop offices count, and "quá hạn 1 ngày" across a weekend would be wrong.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date, datetime

from bot.status.record import ApplicationStatus, as_date
from bot.status.workdays import WorkCalendar
from bot.text import mask_pii

LABELS = {
    "received": "Đã tiếp nhận, đang chờ chuyển xử lý",
    "processing": "Đang giải quyết",
    "need_supplement": "Cần bổ sung hồ sơ",
    "done": "Đã có kết quả, chờ trả",
    "rejected": "Không được giải quyết (bị từ chối)",
    "returned": "Đã trả kết quả",
}


@dataclass(frozen=True)
class Timeliness:
    """Where an application stands against its due date, in working days."""

    kind: str  # "no_due" | "on_time" | "due_today" | "remaining" | "late" | "finished_late"
    days: int = 0


def when(value: datetime | None) -> str:
    """"20/03/2025", or "17:00 ngày 20/03/2025" when the time of day is known."""
    if value is None:
        return ""
    day = value.strftime("%d/%m/%Y")
    if (value.hour, value.minute) == (0, 0):
        return day
    return f"{value.strftime('%H:%M')} ngày {day}"


def timeliness(app: ApplicationStatus, today: date, cal: WorkCalendar) -> Timeliness:
    """Late or not, counted in working days after the due day (the due day itself is fine)."""
    due = as_date(app.due_at)
    if due is None:
        return Timeliness("no_due")
    if app.is_final:
        end = as_date(app.finished_at) or today
        late = cal.working_days_between(due, end)
        return Timeliness("finished_late", late) if late > 0 else Timeliness("on_time")
    if today > due:
        # An application due on a Friday is 1 working day late on Monday, not 3 days; on the
        # Saturday in between it is past its date with 0 working days lost so far.
        return Timeliness("late", cal.working_days_between(due, today))
    if today == due:
        return Timeliness("due_today")
    return Timeliness("remaining", cal.working_days_between(today, due))


def _next_step(app: ApplicationStatus, where: str) -> str:
    note = f" {app.note.rstrip('.')}." if app.note else ""
    if app.status == "received":
        return ("Hồ sơ đã được tiếp nhận và sẽ được chuyển tới bộ phận giải quyết; bạn chưa cần "
                f"làm gì thêm.{note}")
    if app.status == "processing":
        return f"Hồ sơ đang được giải quyết; bạn chưa cần làm gì thêm.{note}"
    if app.status == "need_supplement":
        what = f" theo hướng dẫn: {app.note.rstrip('.')}" if app.note else \
            f" theo thông báo của {where} (tin nhắn, thư điện tử hoặc phiếu yêu cầu bổ sung)"
        return (f"Bạn cần bổ sung, hoàn thiện hồ sơ{what}. Thời hạn giải quyết được tính lại từ "
                "khi cơ quan nhận đủ hồ sơ.")
    if app.status == "done":
        return (f"Bạn đến nhận kết quả tại {where}, mang theo giấy biên nhận (phiếu hẹn trả) và "
                f"giấy tờ tùy thân; nếu đã đăng ký nhận qua bưu điện, kết quả sẽ được gửi tới "
                f"địa chỉ của bạn.{note}")
    if app.status == "rejected":
        why = f" Lý do: {app.note.rstrip('.')}." if app.note else \
            f" Lý do được ghi trong văn bản trả lời của {where}."
        return (f"Hồ sơ không được giải quyết.{why} Nếu cần, bạn có thể làm lại hồ sơ khi đủ "
                "điều kiện, hoặc nhắn \u201cgặp cán bộ\u201d để được hướng dẫn.")
    return (f"Kết quả đã được trả cho người nộp hồ sơ.{note} Nếu bạn chưa nhận được, hãy liên hệ "
            f"{where}.")


def render_status(app: ApplicationStatus, procedure_name: str | None, today: date,
                  cal: WorkCalendar) -> str:
    """The whole answer, in Vietnamese, with no personal data.

    Imported rows cannot hold ID or phone numbers (the import refuses them), but a live case
    system's note might: it is masked here too, so no source can leak one into a chat.
    """
    if app.note:
        app = replace(app, note=mask_pii(app.note))
    where = app.agency or "cơ quan tiếp nhận hồ sơ"
    lines = [f"Hồ sơ {app.receipt_code}"]
    if procedure_name:
        lines[0] += f" — thủ tục {procedure_name}"
    elif app.procedure_code:
        lines[0] += f" — thủ tục mã {app.procedure_code}"
    if app.agency:
        lines[0] += f" ({app.agency})"
    lines[0] += ":"
    status = f"• Trạng thái: {LABELS[app.status]}"
    if app.is_final and app.finished_at:
        status += f" (ngày {app.finished_at.strftime('%d/%m/%Y')})"
    lines.append(status)
    if app.received_at:
        lines.append(f"• Ngày tiếp nhận: {when(app.received_at)}")
    t = timeliness(app, today, cal)
    due = when(app.due_at)
    if t.kind == "no_due":
        if not app.is_final:
            lines.append("• Ngày hẹn trả: hệ thống chưa ghi ngày hẹn trả kết quả.")
    elif app.status == "need_supplement":
        lines.append(f"• Ngày hẹn trả trước khi yêu cầu bổ sung: {due} (sẽ được hẹn lại).")
    elif t.kind == "late":
        late = f"đã quá hạn {t.days} ngày làm việc" if t.days else "đã quá ngày hẹn trả"
        lines.append(f"• Ngày hẹn trả: {due} — {late}. Theo quy "
                     "định, cơ quan giải quyết phải gửi phiếu xin lỗi và hẹn lại ngày trả kết "
                     f"quả; bạn có thể liên hệ {where} hoặc nhắn \u201cgặp cán bộ\u201d.")
    elif t.kind == "due_today":
        lines.append(f"• Ngày hẹn trả: {due} — hạn trả kết quả là hôm nay.")
    elif t.kind == "remaining":
        lines.append(f"• Ngày hẹn trả: {due} — còn {t.days} ngày làm việc, chưa quá hạn.")
    elif t.kind == "finished_late":
        lines.append(f"• Ngày hẹn trả: {due} — hồ sơ xong muộn {t.days} ngày làm việc so với "
                     "ngày hẹn.")
    else:
        lines.append(f"• Ngày hẹn trả: {due} — hồ sơ đã xong đúng hạn.")
    lines.append("")
    lines.append(_next_step(app, where))
    return "\n".join(lines)
