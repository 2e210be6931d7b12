"""The HTTP status source against a fake provincial case system over real HTTP."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from datetime import datetime

import pytest

from bot.config import Settings
from bot.status.http_source import HttpMapping, HttpStatusSource, MappingError
from bot.status.record import ApplicationStatus, StatusUnavailable
from tests.conftest import free_port
from tests.status_fake import (
    DONE_CODE,
    FIELDS,
    OTHER_CODE,
    SAMPLE_CODE,
    STATUSES,
    SUPPLEMENT_CODE,
    FakeCaseSystem,
)

EXPECTED = ApplicationStatus(
    receipt_code=SAMPLE_CODE,
    status="processing",
    procedure_code="1.001612",
    agency="UBND phường Tràng Tiền",
    received_at=datetime(2025, 3, 12, 8, 30),
    due_at=datetime(2025, 3, 19, 17, 0),
    finished_at=None,
    note="Hồ sơ đang được thẩm định",
)


@pytest.fixture()
async def fake() -> AsyncIterator[FakeCaseSystem]:
    async with FakeCaseSystem() as system:
        yield system


def make_source(fake: FakeCaseSystem, **kw: object) -> HttpStatusSource:
    options: dict[str, object] = {
        "url": fake.url, "token": fake.token, "timeout": 2.0,
        "mapping": HttpMapping.parse(FIELDS, STATUSES),
    }
    options.update(kw)
    return HttpStatusSource(**options)  # type: ignore[arg-type]


@pytest.fixture()
async def source(fake: FakeCaseSystem) -> AsyncIterator[HttpStatusSource]:
    src = make_source(fake)
    yield src
    await src.close()


# ---------------------------------------------------------------------- answers


async def test_found_with_the_systems_field_names_and_status_words(
        fake: FakeCaseSystem, source: HttpStatusSource) -> None:
    assert await source.lookup(SAMPLE_CODE) == EXPECTED
    assert fake.last_authorization == f"Bearer {fake.token}"

    done = await source.lookup(DONE_CODE)
    assert done is not None and done.status == "returned" and done.is_final
    assert done.finished_at == datetime(2025, 3, 6, 10, 15)
    assert done.note is None

    supplement = await source.lookup(SUPPLEMENT_CODE)
    assert supplement is not None and supplement.status == "need_supplement"
    assert supplement.received_at == datetime(2025, 3, 10)


async def test_the_code_is_compared_case_insensitively(source: HttpStatusSource) -> None:
    found = await source.lookup(SAMPLE_CODE.lower())
    assert found is not None and found.receipt_code == SAMPLE_CODE


async def test_default_mapping_reads_our_names_at_the_top_level(fake: FakeCaseSystem) -> None:
    src = HttpStatusSource(fake.flat_url, fake.token, timeout=2.0)
    try:
        assert await src.lookup(SAMPLE_CODE) == EXPECTED
        assert fake.last_path == f"/flat/hoso/{SAMPLE_CODE}"
    finally:
        await src.close()


async def test_404_is_not_found(fake: FakeCaseSystem, source: HttpStatusSource) -> None:
    assert await source.lookup("000.00.20.H26-250312-9999") is None
    assert fake.request_count == 1


async def test_200_with_null_data_is_not_found(
        fake: FakeCaseSystem, source: HttpStatusSource) -> None:
    fake.not_found_as_null = True
    assert await source.lookup("000.00.20.H26-250312-9999") is None


async def test_null_status_is_unavailable(fake: FakeCaseSystem, source: HttpStatusSource) -> None:
    fake.set_status(SAMPLE_CODE, None)
    with pytest.raises(StatusUnavailable):
        await source.lookup(SAMPLE_CODE)


async def test_unknown_status_word_is_unavailable(
        fake: FakeCaseSystem, source: HttpStatusSource) -> None:
    fake.set_status(SAMPLE_CODE, "DA_CHUYEN_CAP_TREN")
    with pytest.raises(StatusUnavailable, match="status"):
        await source.lookup(SAMPLE_CODE)


async def test_unparseable_date_is_unavailable(
        fake: FakeCaseSystem, source: HttpStatusSource) -> None:
    fake.applications[SAMPLE_CODE]["NgayHenTra"] = "sắp xong"
    with pytest.raises(StatusUnavailable, match="due_at"):
        await source.lookup(SAMPLE_CODE)


async def test_another_applications_code_is_never_shown(
        fake: FakeCaseSystem, source: HttpStatusSource) -> None:
    fake.wrong_code = True
    with pytest.raises(StatusUnavailable, match="another application"):
        await source.lookup(SAMPLE_CODE)


async def test_non_json_200_is_unavailable(fake: FakeCaseSystem, source: HttpStatusSource) -> None:
    fake.garbage = True
    with pytest.raises(StatusUnavailable, match="non-JSON"):
        await source.lookup(SAMPLE_CODE)


# ---------------------------------------------------------------------- failures, retries


async def test_gateway_error_then_success_is_retried(
        fake: FakeCaseSystem, source: HttpStatusSource) -> None:
    fake.fail_next(1, 503)
    assert await source.lookup(SAMPLE_CODE) == EXPECTED
    assert fake.request_count == 2


async def test_500_is_not_retried(fake: FakeCaseSystem, source: HttpStatusSource) -> None:
    # Only 502/503/504 and connection errors are worth the citizen's extra wait.
    fake.fail_next(1, 500)
    with pytest.raises(StatusUnavailable, match="HTTP 500"):
        await source.lookup(SAMPLE_CODE)
    assert fake.request_count == 1


async def test_persistent_5xx_is_unavailable(
        fake: FakeCaseSystem, source: HttpStatusSource) -> None:
    fake.fail_next(5, 500)
    with pytest.raises(StatusUnavailable):
        await source.lookup(SAMPLE_CODE)
    fake.reset()
    fake.fail_next(5, 502)
    with pytest.raises(StatusUnavailable, match="HTTP 502"):
        await source.lookup(SAMPLE_CODE)
    assert fake.request_count == 2  # one try and one retry (retries=1)


async def test_no_retry_when_retries_is_zero(fake: FakeCaseSystem) -> None:
    src = make_source(fake, retries=0)
    fake.fail_next(1, 503)
    try:
        with pytest.raises(StatusUnavailable):
            await src.lookup(SAMPLE_CODE)
        assert fake.request_count == 1
    finally:
        await src.close()


async def test_slow_system_is_unavailable_within_the_timeout(fake: FakeCaseSystem) -> None:
    src = make_source(fake, timeout=0.3)
    fake.delay = 1.5
    started = time.monotonic()
    try:
        with pytest.raises(StatusUnavailable, match="did not answer"):
            await src.lookup(SAMPLE_CODE)
    finally:
        await src.close()
    assert time.monotonic() - started < 2
    assert fake.request_count == 1  # no retry after a timeout: the citizen is waiting


async def test_connection_refused_is_unavailable_after_one_retry() -> None:
    src = HttpStatusSource(f"http://127.0.0.1:{free_port()}/api/hoso/{{code}}", timeout=2.0)
    started = time.monotonic()
    try:
        with pytest.raises(StatusUnavailable, match="cannot reach"):
            await src.lookup(SAMPLE_CODE)
    finally:
        await src.close()
    assert 0.2 <= time.monotonic() - started < 2  # the backoff before the one retry


async def test_wrong_token_is_unavailable_and_logged_once(
        fake: FakeCaseSystem, caplog: pytest.LogCaptureFixture) -> None:
    src = make_source(fake, token="not-the-token")
    caplog.set_level(logging.DEBUG)
    try:
        for _ in range(3):
            with pytest.raises(StatusUnavailable, match="token"):
                await src.lookup(SAMPLE_CODE)
    finally:
        await src.close()
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1
    assert "STATUS_HTTP_TOKEN" in errors[0].getMessage()
    assert "not-the-token" not in caplog.text
    assert fake.request_count == 3


# ---------------------------------------------------------------------- URL forms


async def test_code_placeholder_is_replaced_by_the_quoted_code(fake: FakeCaseSystem) -> None:
    src = make_source(fake, url=fake.url)
    fake.applications["A/B 01"] = dict(fake.applications[SAMPLE_CODE], MaHoSo="A/B 01")
    try:
        assert await src.lookup(SAMPLE_CODE) == EXPECTED
        assert fake.last_path == f"/api/hoso/{SAMPLE_CODE}"
        assert fake.last_query == {}
        found = await src.lookup("A/B 01")  # a "/" stays inside one path segment
        assert found is not None and found.receipt_code == "A/B 01"
        assert fake.last_code == "A/B 01"
    finally:
        await src.close()


async def test_code_as_query_parameter_keeps_other_parameters(fake: FakeCaseSystem) -> None:
    src = make_source(fake, url=fake.query_url + "?tinh=26")
    try:
        assert await src.lookup(SAMPLE_CODE) == EXPECTED
        assert fake.last_path == "/api/hoso"
        assert fake.last_query == {"tinh": "26", "code": SAMPLE_CODE}
    finally:
        await src.close()


# ---------------------------------------------------------------------- configuration


def test_mapping_defaults_when_blank() -> None:
    mapping = HttpMapping.parse("", "")
    assert mapping == HttpMapping.default()
    assert mapping.path("status") == ("status",)
    assert mapping.status_of("DONE") == "done"
    assert mapping.status_of("completed") == "done"  # record.parse_status's aliases


def test_mapping_parse_is_lenient_about_spacing_case_and_accents() -> None:
    mapping = HttpMapping.parse(
        " status = data.TrangThai , receipt_code=items.0.MaHoSo ,",
        " Đã trả kết quả = returned, 2=processing,",
    )
    assert mapping.path("status") == ("data", "TrangThai")
    assert mapping.path("receipt_code") == ("items", "0", "MaHoSo")
    assert mapping.path("note") is None  # listed fields only
    decomposed = "đã tra\u0309 kê\u0301t qua\u0309"  # the same words, accents as combining marks
    assert mapping.status_of(decomposed) == "returned"
    assert mapping.status_of(2) == "processing"  # integer status codes


@pytest.mark.parametrize(
    ("fields", "statuses", "message"),
    [
        ("nosuch=data.x,status=data.s", "", "nosuch"),
        ("status", "", "không đúng dạng"),
        ("status=", "", "không đúng dạng"),
        ("=data.s", "", "không đúng dạng"),
        ("status=data..s", "", "đường dẫn"),
        ("status=data.s,status=data.t", "", "hai lần"),
        ("agency=data.CoQuan", "", "status"),
        ("", "DANG_XU_LY=finished_wrong", "finished_wrong"),
        ("", "DANG_XU_LY", "không đúng dạng"),
        ("", "=processing", "không đúng dạng"),
        ("", "DANG_XU_LY=processing,DANG_XU_LY=done", "hai lần"),
        ("", "dang_xu_ly=processing,DANG_XU_LY=done", "hai lần"),
    ],
)
def test_mapping_parse_errors(fields: str, statuses: str, message: str) -> None:
    with pytest.raises(MappingError, match=message):
        HttpMapping.parse(fields, statuses)


@pytest.mark.parametrize("url", ["", "   ", "ftp://host/x", "localhost:8080/api", "http:///x"])
def test_from_settings_refuses_a_bad_url(url: str) -> None:
    settings = Settings.from_env({"STATUS_HTTP_URL": url})
    with pytest.raises(MappingError, match="STATUS_HTTP_URL"):
        HttpStatusSource.from_settings(settings)


def test_from_settings_reads_the_status_http_settings() -> None:
    settings = Settings.from_env({
        "STATUS_HTTP_URL": "https://motcua.example.gov.vn/api/hoso/{code}",
        "STATUS_HTTP_TOKEN": "secret", "STATUS_HTTP_TIMEOUT": "3.5",
        "STATUS_HTTP_FIELDS": FIELDS, "STATUS_HTTP_STATUSES": STATUSES,
    })
    src = HttpStatusSource.from_settings(settings)
    assert src.name == "http"
    assert src.timeout == 3.5
    assert src.mapping == HttpMapping.parse(FIELDS, STATUSES)
    with pytest.raises(MappingError, match="STATUS_HTTP_TIMEOUT"):
        HttpStatusSource("https://x.example/{code}", timeout=0)


# ---------------------------------------------------------------------- logs


async def test_logs_never_hold_the_full_code(
        fake: FakeCaseSystem, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    src = make_source(fake, timeout=0.3)
    unavailable: list[str] = []

    async def attempt() -> None:
        try:
            await src.lookup(SAMPLE_CODE)
        except StatusUnavailable as exc:
            unavailable.append(str(exc))

    try:
        await attempt()  # found
        fake.fail_next(2, 503)
        await attempt()  # retried, then unavailable
        fake.fail_next(1, 500)
        await attempt()
        for knob in ("garbage", "wrong_code"):
            setattr(fake, knob, True)
            await attempt()
            setattr(fake, knob, False)
        fake.set_status(SAMPLE_CODE, "LA_LUNG")
        await attempt()
        fake.delay = 1.0
        await attempt()  # timeout
        fake.delay = 0
        assert await src.lookup("000.00.20.H26-250312-9999") is None
    finally:
        await src.close()
    refused = HttpStatusSource(f"http://127.0.0.1:{free_port()}/api/hoso/{{code}}")
    try:
        await asyncio.wait_for(_swallow(refused.lookup(SAMPLE_CODE), unavailable), 5)
    finally:
        await refused.close()

    assert len(unavailable) == 7
    texts = [r.getMessage() for r in caplog.records] + unavailable
    assert not [t for t in texts if SAMPLE_CODE in t or "250312-9999" in t]
    assert not [t for t in texts if OTHER_CODE in t]  # nor the code of the wrong answer
    assert any("***0045" in t for t in texts)
    assert "Tràng Tiền" not in caplog.text and "thẩm định" not in caplog.text  # no bodies


async def _swallow(lookup: object, sink: list[str]) -> None:
    try:
        await lookup  # type: ignore[misc]
    except StatusUnavailable as exc:
        sink.append(str(exc))


# ---------------------------------------------------------------------- thread mode


def test_fake_in_a_thread_serves_callers_in_other_loops() -> None:
    # The integration test runs the fake like this beside a separate action-server process.
    with FakeCaseSystem() as fake:
        assert fake.env()["STATUS_HTTP_URL"] == fake.url
        src = HttpStatusSource.from_settings(Settings.from_env(fake.env()))
        # Two loops in turn: the source makes a session for each (rasa-sdk keeps one).
        assert asyncio.run(src.lookup(SAMPLE_CODE)) == EXPECTED
        assert asyncio.run(src.lookup(SAMPLE_CODE)) == EXPECTED
        asyncio.run(src.close())
        assert fake.request_count == 2
    with pytest.raises(RuntimeError):
        fake.base_url  # noqa: B018 - stopped: the port is gone with it
