"""Console pages for retraining safely: the model registry, a background training with its
progress, the evaluation against the serving model (per-intent scores, what got better and
worse, the confusion matrix), activation behind the regression gate, and rollback.

The rules live in bot.registry (the same as `bot model …`); here: roles, forms, audit.
Activation is for trainers and admins; forcing a model the gate refused is for admins only.
"""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

from aiohttp import web

from bot.console.web import (
    PREFIX,
    SETTINGS_KEY,
    USER_KEY,
    NavItem,
    add_nav,
    form,
    guarded,
    record,
    redirect,
    render,
)
from bot.registry import activation, evaluation, registry, training_job
from bot.registry.registry import RegistryError

STATUS_LABELS = {"ready": "sẵn sàng", "active": "đang dùng", "retired": "đã thay"}
_EVALUATING: dict[str, str] = {}  # model id → operator, evaluations running in this process
_EVAL_LOCK = threading.Lock()


@guarded("model.train")
async def models_page(request: web.Request) -> web.StreamResponse:
    return await _models_view(request)


async def _models_view(request: web.Request, error: str | None = None,
                       status: int = 200) -> web.StreamResponse:
    settings = request.app[SETTINGS_KEY]
    models = await asyncio.to_thread(registry.list_models, settings)
    job = await asyncio.to_thread(training_job.current_job, settings)
    jobs = await asyncio.to_thread(training_job.list_jobs, settings, 5)
    history = await asyncio.to_thread(registry.activation_history, settings, 10)
    return render(request, "models.html", status=status, models=models, job=job, jobs=jobs,
                  history=history, status_labels=STATUS_LABELS, evaluating=dict(_EVALUATING),
                  error=error)


@guarded("model.train")
async def model_page(request: web.Request) -> web.StreamResponse:
    return await _model_view(request)


async def _model_view(request: web.Request, error: str | None = None,
                      status: int = 200) -> web.StreamResponse:
    settings = request.app[SETTINGS_KEY]
    try:
        model = await asyncio.to_thread(registry.get_model, settings, request.match_info["id"])
    except RegistryError as exc:
        return render(request, "error.html", status=404, message=str(exc))
    baseline = await asyncio.to_thread(registry.active_info, settings)
    if baseline is not None and baseline.id == model.id:
        baseline = None
    rows = []
    cand = (model.metrics or {}).get("intents", {})
    base = (baseline.metrics or {}).get("intents", {}) if baseline else {}
    for name in sorted(set(cand) | set(base)):
        c, b = cand.get(name) or {}, base.get(name) or {}
        rows.append({"intent": name, "c": c, "b": b,
                     "delta": (c.get("f1") - b.get("f1")) if c and b else None})
    return render(request, "model.html", status=status, model=model, baseline=baseline,
                  rows=rows, gate=model.gate or {}, error=error, status_labels=STATUS_LABELS,
                  evaluating=model.id in _EVALUATING,
                  has_picture=bool((model.metrics or {}).get("confusion_matrix")))


@guarded("model.train")
async def model_picture(request: web.Request) -> web.StreamResponse:
    """The confusion-matrix picture Rasa drew, only from inside MODELS_DIR."""
    settings = request.app[SETTINGS_KEY]
    try:
        model = await asyncio.to_thread(registry.get_model, settings, request.match_info["id"])
    except RegistryError:
        raise web.HTTPNotFound() from None
    picture = (model.metrics or {}).get("confusion_matrix")
    if not picture:
        raise web.HTTPNotFound()
    path = Path(picture).resolve()
    if not path.is_relative_to(settings.models_dir.resolve()) or not path.is_file():
        raise web.HTTPNotFound()
    return web.FileResponse(path, headers={"Cache-Control": "no-store"})


@guarded("model.train")
async def train(request: web.Request) -> web.StreamResponse:
    settings = request.app[SETTINGS_KEY]
    data = await form(request)
    user = request[USER_KEY].username
    cv = data.get("cross_validation") == "1"
    try:
        job_id = await asyncio.to_thread(training_job.start_training, settings, user,
                                         None, True, cv)
    except RegistryError as exc:
        return await _models_view(request, error=str(exc), status=409)
    await record(request, "model.train", job_id, {"cross_validation": cv})
    raise redirect(f"{PREFIX}/models", ok="saved")


@guarded("model.train")
async def cancel(request: web.Request) -> web.StreamResponse:
    settings = request.app[SETTINGS_KEY]
    job_id = request.match_info["id"]
    user = request[USER_KEY].username
    try:
        await asyncio.to_thread(training_job.cancel_training, settings, job_id, user)
    except RegistryError as exc:
        return await _models_view(request, error=str(exc), status=409)
    await record(request, "model.train.cancel", job_id)
    raise redirect(f"{PREFIX}/models", ok="saved")


@guarded("model.train")
async def job_api(request: web.Request) -> web.StreamResponse:
    """The running training's progress, polled by the models page."""
    settings = request.app[SETTINGS_KEY]
    try:
        job = await asyncio.to_thread(training_job.get_job, settings, request.match_info["id"])
    except RegistryError:
        raise web.HTTPNotFound() from None
    return web.json_response({"status": job.status, "percent": job.percent,
                              "phase": job.phase, "model_id": job.model_id,
                              "error": job.error}, headers={"Cache-Control": "no-store"})


@guarded("model.train")
async def evaluate(request: web.Request) -> web.StreamResponse:
    """Evaluate in a background thread (a `rasa test nlu` takes a minute or more)."""
    settings = request.app[SETTINGS_KEY]
    model_id = request.match_info["id"]
    user = request[USER_KEY].username
    with _EVAL_LOCK:
        if model_id in _EVALUATING:
            raise redirect(f"{PREFIX}/models/{model_id}")
        _EVALUATING[model_id] = user

    def work() -> None:
        try:
            evaluation.evaluate(model_id, settings)
        except Exception:  # noqa: BLE001 - shown on the page as "not evaluated"
            import logging

            logging.getLogger("bot.console").exception("evaluation of %s failed", model_id)
        finally:
            with _EVAL_LOCK:
                _EVALUATING.pop(model_id, None)

    threading.Thread(target=work, name=f"evaluate-{model_id}", daemon=True).start()
    await record(request, "model.evaluate", model_id)
    raise redirect(f"{PREFIX}/models/{model_id}")


@guarded("model.activate")
async def activate(request: web.Request) -> web.StreamResponse:
    settings = request.app[SETTINGS_KEY]
    model_id = request.match_info["id"]
    user = request[USER_KEY]
    force = (await form(request)).get("force") == "1"
    if force and user.role != "admin":
        return await _model_view(request, error="Chỉ quản trị viên được kích hoạt mô hình mà "
                                 "cổng so sánh đã từ chối.", status=403)
    try:
        result = await asyncio.to_thread(activation.activate, model_id, settings,
                                         user.username, force)
    except activation.GateRefused as exc:
        return await _model_view(request, error=str(exc), status=409)
    except RegistryError as exc:
        return await _model_view(request, error=str(exc), status=409)
    await record(request, "model.activate", model_id,
                 {"kind": result.kind, "previous": result.previous_id})
    raise redirect(f"{PREFIX}/models", ok="saved")


@guarded("model.activate")
async def rollback(request: web.Request) -> web.StreamResponse:
    settings = request.app[SETTINGS_KEY]
    user = request[USER_KEY].username
    try:
        result = await asyncio.to_thread(activation.rollback, settings, user)
    except RegistryError as exc:
        return await _models_view(request, error=str(exc), status=409)
    await record(request, "model.rollback", result.model.id, {"from": result.previous_id})
    raise redirect(f"{PREFIX}/models", ok="saved")


def add_model_pages(app: web.Application) -> None:
    r = app.router
    r.add_get(f"{PREFIX}/models", models_page)
    r.add_post(f"{PREFIX}/models/train", train)
    r.add_post(f"{PREFIX}/models/rollback", rollback)
    r.add_get(f"{PREFIX}/models/{{id}}", model_page)
    r.add_get(f"{PREFIX}/models/{{id}}/confusion.png", model_picture)
    r.add_post(f"{PREFIX}/models/{{id}}/evaluate", evaluate)
    r.add_post(f"{PREFIX}/models/{{id}}/activate", activate)
    r.add_get(f"{PREFIX}/api/models/jobs/{{id}}", job_api)
    r.add_post(f"{PREFIX}/models/jobs/{{id}}/cancel", cancel)
    add_nav(NavItem("model.train", f"{PREFIX}/models", "Mô hình",
                    "Huấn luyện lại sau khi sửa dữ liệu, so sánh với mô hình đang dùng, kích "
                    "hoạt nếu không kém hơn, quay lại mô hình trước."))
