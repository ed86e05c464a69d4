"""The JSON API the annotator's page talks to. Session authentication with CSRF, any signed-in user;
each endpoint answers only about the caller's own work, in display terms (see annotation.presentation).
Every refusal is a 4xx with `{"detail": "..."}` and changes nothing."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.shortcuts import get_object_or_404
from django.urls import path
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework.authentication import SessionAuthentication
from rest_framework.decorators import api_view, authentication_classes, permission_classes
from rest_framework.exceptions import ParseError
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response

from evalsite.http import media_links

from ..assignment import AssignmentError, check_can_work
from ..judging import AnswerError, recent_answers, record_playback, report_problem, submit_answer
from ..models import Assignment, Campaign
from ..presentation import MediaLink, answer_view, assignment_views, next_view, plain_link, progress_view


def annotator_endpoint(methods: list[str]) -> Callable[[Callable[..., Response]], Callable[..., Any]]:
    """An API view for any signed-in user (session + CSRF) that turns the domain's refusals into
    `{"detail": message}` with their status."""

    def decorate(view):
        def guarded(request: Request, *args: Any, **kwargs: Any) -> Response:
            try:
                return view(request, *args, **kwargs)
            except (AnswerError, AssignmentError) as exc:
                return Response({"detail": exc.message}, status=exc.status)

        guarded.__name__, guarded.__doc__ = view.__name__, view.__doc__
        guarded = authentication_classes([SessionAuthentication])(guarded)
        guarded = permission_classes([IsAuthenticated])(guarded)
        return api_view(methods)(guarded)

    return decorate


def _link(request: Request) -> MediaLink:
    """Media URLs as this caller gets them: signed for their session where the front server checks
    signed links (EVALSITE_MEDIA_LINK_SECRET), plain otherwise."""
    return media_links(request) or plain_link


def _next_after_write(campaign: Campaign, request: Request) -> dict | None:
    """What GET next returns, after a write that already succeeded: if the campaign was paused in
    between, the write stands and `next` is null rather than the whole request failing."""
    try:
        return next_view(campaign, request.user, link=_link(request))
    except AssignmentError:
        return None


def _body(request: Request) -> dict:
    try:
        data = request.data
    except ParseError:
        raise AnswerError("the request body is not valid JSON") from None
    if not isinstance(data, dict):
        raise AnswerError("the request body must be a JSON object")
    return data


def _campaign_for(campaign_id: int) -> Campaign:
    return get_object_or_404(Campaign, pk=campaign_id)


def _campaign_of_token(request: Request, token: str) -> Campaign:
    assignment = (
        Assignment.objects.select_related("campaign").filter(token=token, annotator=request.user).first()
    )
    if assignment is None:
        raise AnswerError("no such assignment", status=404)
    return assignment.campaign


@extend_schema(responses={200: OpenApiTypes.OBJECT}, tags=["annotate"])
@annotator_endpoint(["GET"])
def next_item(request: Request, campaign_id: int) -> Response:
    """The item on the caller's screen in this campaign (claimed now if they have none; the same one
    again after logging out and in), the video URLs of the item after it to preload, and progress.

    `{"done": bool, "assignment": {token, kind, prompt, videos, require_full_playback, progress,
    is_answered, answer} | null, "upcoming": {"videos": [url, ...]} | null, "progress": {done, total}}`.
    `assignment` is null and `done` false while other annotators hold the last items.
    403 when the caller is not an annotator of the campaign, 409 when it is not active."""
    return Response(next_view(_campaign_for(campaign_id), request.user, link=_link(request)))


@extend_schema(request=OpenApiTypes.OBJECT, responses={200: OpenApiTypes.OBJECT}, tags=["annotate"])
@annotator_endpoint(["POST"])
def answer(request: Request, token: str) -> Response:
    """Answer the item on screen or change one of the last 5 answers.

    Body for pairwise, seed-preference and A/B items: `{"choice": "left" | "tie" | "right"}`; for rubric
    items: `{"scores": [{"position": 0, "instruction_following": 1-5, "motion_smoothness": 1-5,
    "physical_plausibility": 1-5, "aesthetic_appeal": 1-5}, ...]}` with one entry per video shown.
    Sending the same answer again is harmless. Returns `{"judgment": {choice | scores, revision},
    "created", "revised", "next": <as GET next>}`. 400 malformed answer, 404 unknown assignment, 409 the
    claim was released, playback is incomplete, the answer is too old to change or the campaign is not
    active."""
    payload = _body(request)
    result = submit_answer(token=token, annotator=request.user, payload=payload)
    campaign = result.judgment.campaign
    return Response(
        {
            "judgment": answer_view(result.judgment),
            "created": result.created,
            "revised": result.revised,
            "next": _next_after_write(campaign, request),
        }
    )


@extend_schema(request=OpenApiTypes.OBJECT, responses={201: OpenApiTypes.OBJECT}, tags=["annotate"])
@annotator_endpoint(["POST"])
def playback(request: Request, token: str) -> Response:
    """Report what the player did with the video at display `position`: `{"position": 0, "event":
    "play" | "ended", "media_time": seconds | null}`. Campaigns that require full playback accept an
    answer only after every video's `ended` arrived late enough. 201 `{"recorded": true}`."""
    data = _body(request)
    record_playback(
        token=token,
        annotator=request.user,
        position=data.get("position"),
        event=data.get("event"),
        media_time=data.get("media_time"),
    )
    return Response({"recorded": True}, status=201)


@extend_schema(request=OpenApiTypes.OBJECT, responses={200: OpenApiTypes.OBJECT}, tags=["annotate"])
@annotator_endpoint(["POST"])
def problem(request: Request, token: str) -> Response:
    """Report that the item on screen cannot be judged: `{"kind": "video_broken" | "prompt_unreadable"
    | "other", "note": "..."}`. The item counts as done for the caller and goes to someone else.
    Returns what GET next returns, so the page moves on."""
    data = _body(request)
    campaign = _campaign_of_token(request, token)
    report_problem(token=token, annotator=request.user, kind=data.get("kind"), note=data.get("note", ""))
    return Response(_next_after_write(campaign, request))


@extend_schema(responses={200: OpenApiTypes.OBJECT}, tags=["annotate"])
@annotator_endpoint(["GET"])
def recent(request: Request, campaign_id: int) -> Response:
    """The caller's last 5 answers in this campaign, newest first, each as an assignment with its
    `answer`, to review and change (POST the new answer to its token). `{"answers": [...]}`."""
    campaign = _campaign_for(campaign_id)
    check_can_work(campaign, request.user)
    progress = progress_view(campaign, request.user)
    answers = recent_answers(campaign, request.user)
    return Response({"answers": assignment_views(campaign, answers, progress=progress, link=_link(request))})


urlpatterns = [
    path("annotate/<int:campaign_id>/next/", next_item, name="annotate-next"),
    path("annotate/<int:campaign_id>/recent/", recent, name="annotate-recent"),
    path("annotate/assignments/<str:token>/answer/", answer, name="annotate-answer"),
    path("annotate/assignments/<str:token>/playback/", playback, name="annotate-playback"),
    path("annotate/assignments/<str:token>/problem/", problem, name="annotate-problem"),
]
