"""Blinding, end to end, for every campaign kind: an annotator logs in and works through a whole campaign
(home page, annotation page, next, playback events, a problem report, every answer, a revision, recent
answers), and everything their browser receives — HTML, JSON, headers, the page's static files, every
video and poster the responses point to, with their container metadata — is scanned for whatever could
tell which model made a video: model names, versions, checkpoints and primary keys, the campaign's name
(managers write model names in it), the videos' original file names, seeds and noise ids, canonical
slots and item positions. The left/right order must put model A on the left in half of the items, and a
normalising campaign must show every video in one width, height, frame rate and length."""

from __future__ import annotations

import hashlib
import importlib
import io
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import av
import pytest
from django.apps import apps as django_apps
from django.test import Client
from PIL import Image

from annotation.campaigns import CampaignSpec, create_campaign
from annotation.models import Assignment, Campaign, CampaignMedia, ItemVideo, Rendition
from annotation.renditions import start_normalise_media
from generation.models import Video, VideoModel
from generation.services import (
    copy_atomically,
    file_sha256,
    media_path,
    original_relpath,
    playable_relpath,
    poster_relpath,
)
from generation.videofiles import transcode_for_browser
from tests.campaign_fixtures import ANNOTATOR_PASSWORD, video_shown_at, with_media_prepared
from tests.static_modules import linked_static_files, read_from_finders

pytestmark = pytest.mark.django_db

# Large explicit keys, so that a key sent to the browser as a number or inside a string stands out.
SECRET_MODELS = [
    {
        "pk": 987654,
        "name": "Zanzibar-Secret-Model",
        "version": "v9.87-hidden",
        "checkpoint": "s3://vault/zanzibar/ckpt-step-771100.safetensors",
    },
    {
        "pk": 876543,
        "name": "Quokka-Hidden-Engine",
        "version": "v5.43-private",
        "checkpoint": "hf://quokka-labs/quokka-t2v-ckpt-55",
    },
    {
        "pk": 765432,
        "name": "Marmot-Tuned-Variant",
        "version": "v7.71-dpo",
        "checkpoint": "/checkpoints/marmot/dpo-step-4242.pt",
    },
]
CAMPAIGN_NAME_TOKEN = "CampaignLabel-Ocelot-5501"
GENERATED_TOKEN = "Pangolin-Generated-3141"
SEED_BASE = 7_310_551  # library seed k becomes SEED_BASE + 17 k

# Keys that would name a model, a video's origin, the canonical order or when something was made.
FORBIDDEN_KEYS = {
    "model",
    "model_id",
    "models",
    "model_name",
    "left_model",
    "right_model",
    "left_video",
    "right_video",
    "checkpoint",
    "version",
    "name",
    "campaign",
    "campaign_name",
    "slot",
    "slots",
    "canonical_slot",
    "presentation",
    "item",
    "item_id",
    "item_position",
    "seed",
    "noise_id",
    "original_name",
    "original_file",
    "gold_answer",
    "created_at",
    "updated_at",
    "claimed_at",
    "expires_at",
    "received_at",
    "video_id",
    "backend",
    "adapter",
    "generation_record",
    "generation_settings",
    "settings_hash",
    "source",
}
RAW_KINDS = ["seed_preference", "ab_shared_noise"]
# The container and stream tags any MP4 the site makes may carry; anything else is metadata to look at.
NEUTRAL_MP4_TAGS = {"major_brand", "minor_version", "compatible_brands", "language", "handler_name"}

# Source formats (width, height, fps, frames) given to the models of a normalising campaign, so that
# without normalisation each model's videos would be recognisable by their shape.
MODEL_FORMATS = [(64, 48, 12, 18), (48, 64, 24, 30), (80, 60, 15, 24)]

KINDS = [
    pytest.param("pairwise", {"n_prompts": 4}, False, id="pairwise"),
    pytest.param("pairwise", {"n_prompts": 4}, True, id="pairwise-normalised"),
    pytest.param("rubric", {"n_prompts": 2, "rubric_layout": "single"}, False, id="rubric-single"),
    pytest.param(
        "rubric", {"n_prompts": 2, "rubric_layout": "together"}, True, id="rubric-together-normalised"
    ),
    pytest.param("seed_preference", {"n_prompts": 2, "seeds": 3}, False, id="seed-preference"),
    pytest.param("ab_shared_noise", {"n_prompts": 2, "seeds": 2}, True, id="ab-shared-noise-normalised"),
]
MODEL_COUNT = {"pairwise": 2, "rubric": 3, "seed_preference": 1, "ab_shared_noise": 2}


def secret_models(count: int) -> list[VideoModel]:
    return [VideoModel.objects.create(**fields) for fields in SECRET_MODELS[:count]]


def disguise_origins(campaign: Campaign) -> None:
    """Give the campaign's videos distinctive seeds, noise ids and original file names to look for."""
    videos = Video.objects.filter(model__campaign_entries__campaign=campaign)
    for video in videos:
        video.original_name = f"upload-Kumquat-{video.pk}-take.mp4"
        video.seed = SEED_BASE + 17 * video.seed
        # Videos made from one noise keep sharing an id.
        video.noise_id = f"noise-Wombat-{video.noise_id}" if video.noise_id else ""
        # What a generated video records: its backend, checkpoint, adapter, versions and settings.
        video.source = Video.Source.GENERATION
        video.settings_hash = f"{GENERATED_TOKEN}-hash-{video.pk}"
        video.generation_settings = {"steps": 37, "negative_prompt": f"{GENERATED_TOKEN}-negative"}
        video.generation_record = {
            "backend": f"{GENERATED_TOKEN}-backend",
            "checkpoint": f"/ckpt/{GENERATED_TOKEN}-checkpoint",
            "adapter": f"/lora/{GENERATED_TOKEN}-adapter",
            "versions": {"diffusers": f"{GENERATED_TOKEN}-version"},
        }
        video.save(
            update_fields=[
                "original_name",
                "seed",
                "noise_id",
                "source",
                "settings_hash",
                "generation_settings",
                "generation_record",
            ]
        )


def give_each_model_its_own_format(campaign: Campaign, make_video, folder: Path) -> None:
    """Re-point each model's videos to files of a format of its own, with the model's name written into
    the original's metadata (the site must never pass it on)."""
    for entry in campaign.campaign_models.select_related("model"):
        width, height, fps, frames = MODEL_FORMATS[entry.position]
        for video in Video.objects.filter(model=entry.model):
            clip = make_video(
                folder / f"{entry.model.name}-{video.pk}.mp4",
                width=width, height=height, fps=fps, frames=frames, seed=video.pk,
                title=f"{entry.model.name} {entry.model.version}",
            )  # fmt: skip
            original = original_relpath(video.public_id, ".mp4")
            playable, poster = playable_relpath(video.public_id), poster_relpath(video.public_id)
            copy_atomically(clip, media_path(original))
            transcode_for_browser(clip, media_path(playable), media_path(poster))
            Video.objects.filter(pk=video.pk).update(
                original_file=original,
                playable_file=playable,
                poster_file=poster,
                content_sha256=file_sha256(clip),
                width=width,
                height=height,
                fps=float(fps),
                frame_count=frames,
                duration_s=frames / fps,
            )


def keys_and_values(value: Any) -> tuple[set[str], list[Any]]:
    """Every key and every scalar value in a JSON document."""
    if isinstance(value, dict):
        keys, scalars = set(value), []
        for key, item in value.items():
            inner_keys, inner_scalars = keys_and_values(item)
            keys |= inner_keys
            scalars += [key, *inner_scalars]
        return keys, scalars
    if isinstance(value, list):
        keys, scalars = set(), []
        for item in value:
            inner_keys, inner_scalars = keys_and_values(item)
            keys |= inner_keys
            scalars += inner_scalars
        return keys, scalars
    return set(), [value]


@dataclass
class Received:
    """Everything one annotator's browser was sent."""

    texts: list[tuple[str, str]] = field(default_factory=list)  # (what, text): bodies and headers
    documents: list[tuple[str, Any]] = field(default_factory=list)  # parsed JSON: API bodies, page config
    media: dict[str, tuple[bytes, dict[str, str]]] = field(default_factory=dict)  # url → (body, headers)
    shown: list[dict[str, Any]] = field(default_factory=list)  # every assignment view, as received


class AnnotatorBrowser:
    """A test client that keeps whatever the server sends."""

    def __init__(self, username: str):
        self.client = Client()
        self.received = Received()
        self.request("GET", "/accounts/login/")
        login = self.client.post("/accounts/login/", {"username": username, "password": ANNOTATOR_PASSWORD})
        assert login.status_code == 302, "the annotator could not log in"
        self._keep("POST /accounts/login/", login)

    def request(self, method: str, url: str, body: dict | None = None, expect: int = 200) -> Any:
        if method == "GET":
            response = self.client.get(url)
        else:
            response = self.client.post(url, json.dumps(body), content_type="application/json")
        assert response.status_code == expect, (url, response.status_code, response.content[:500])
        return self._keep(f"{method} {url}", response)

    def _keep(self, what: str, response) -> Any:
        self.received.texts.append((f"{what} headers", json.dumps(dict(response.headers))))
        text = response.content.decode()
        self.received.texts.append((what, text))
        if response.get("Content-Type", "").startswith("application/json"):
            document = json.loads(text)
            self.received.documents.append((what, document))
            return document
        for script_id in re.findall(r'<script id="([\w-]+)" type="application/json">', text):
            block = re.search(rf'<script id="{script_id}" type="application/json">(.*?)</script>', text, re.S)
            self.received.documents.append((f"{what} #{script_id}", json.loads(block[1])))
        return text

    def fetch_static_and_media(self) -> None:
        """What the pages and JSON point the browser at: static files (with every module their scripts
        import), videos and posters."""
        fetch_static(self.received)
        urls = set()
        for _, document in self.received.documents:
            urls |= {
                v for v in keys_and_values(document)[1] if isinstance(v, str) and v.startswith("/media/")
            }
        for _, text in self.received.texts:
            urls |= set(re.findall(r"/media/[\w./-]+", text))
        for url in sorted(urls):
            response = self.client.get(url)
            assert response.status_code == 200, url
            self.received.media[url] = (b"".join(response.streaming_content), dict(response.headers))
            self.received.texts.append((f"GET {url} headers", json.dumps(dict(response.headers))))


def fetch_static(received: Received) -> None:
    """Every static file the texts received so far link to, and every module those scripts import."""
    linked = sorted({u for _, text in received.texts for u in re.findall(r"/static/[\w./-]+", text)})
    received.texts += linked_static_files(linked, read_from_finders).items()


def answer_for(view: dict[str, Any], turn: int) -> dict[str, Any]:
    if view["kind"] == "rubric":
        scores = [
            {
                "position": video["position"],
                "instruction_following": 1 + (turn + video["position"]) % 5,
                "motion_smoothness": 3,
                "physical_plausibility": 4,
                "aesthetic_appeal": 2,
            }
            for video in view["videos"]
        ]
        return {"scores": scores}
    return {"choice": ("left", "right", "tie")[turn % 3]}


def revised(answer: dict[str, Any]) -> dict[str, Any]:
    if "choice" in answer:
        return {"choice": "right" if answer["choice"] != "right" else "left"}
    return {"scores": [{**score, "motion_smoothness": 5} for score in answer["scores"]]}


def work_through(browser: AnnotatorBrowser, campaign: Campaign) -> None:
    """The whole flow, as the page's script drives it."""
    browser.request("GET", "/")
    browser.request("GET", f"/campaigns/{campaign.pk}/annotate/")
    api = "/api/annotate"
    state = browser.request("GET", f"{api}/{campaign.pk}/next/")
    turn, answers = 0, {}
    while state["assignment"] is not None:
        view = state["assignment"]
        browser.received.shown.append(view)
        token = view["token"]
        for video in view["videos"]:
            for event, media_time in (("play", 0.0), ("ended", video["duration_s"])):
                body = {"position": video["position"], "event": event, "media_time": media_time}
                browser.request("POST", f"{api}/assignments/{token}/playback/", body, expect=201)
        if turn == 0:
            body = {"kind": "video_broken", "note": "the left one stutters"}
            state = browser.request("POST", f"{api}/assignments/{token}/problem/", body)
        else:
            answers[token] = answer_for(view, turn)
            state = browser.request("POST", f"{api}/assignments/{token}/answer/", answers[token])["next"]
        turn += 1
    assert state["done"] is True
    recent = browser.request("GET", f"{api}/{campaign.pk}/recent/")
    assert recent["answers"], "the recent answers are listed"
    token = recent["answers"][0]["token"]
    browser.request("POST", f"{api}/assignments/{token}/answer/", revised(answers[token]))
    browser.request("GET", f"{api}/{campaign.pk}/recent/")
    browser.request("GET", "/")
    browser.fetch_static_and_media()


def secrets_of(campaign: Campaign) -> tuple[list[str], set[int]]:
    """Texts that must not reach the annotator, and model keys that must not appear as JSON numbers."""
    models = [entry.model for entry in campaign.campaign_models.select_related("model")]
    # The raw kinds: seed preference says both videos are one model's; A/B, which side is a baseline's.
    texts = [CAMPAIGN_NAME_TOKEN, GENERATED_TOKEN, campaign.name, "slot0", "slot1", *RAW_KINDS]
    for model in models:
        texts += [model.name, model.name.split("-")[0], model.version, str(model), model.checkpoint]
        texts.append(str(model.pk))
    videos = Video.objects.filter(pk__in=ItemVideo.objects.filter(item__campaign=campaign).values("video"))
    for video in videos:
        texts += [video.original_name, str(video.seed)] + ([video.noise_id] if video.noise_id else [])
        # Annotators see the campaign's own id for each video (or its rendition's), never the video's.
        texts.append(video.public_id)
    return [t for t in texts if t], {model.pk for model in models}


def check_nothing_names_a_model(received: Received, campaign: Campaign) -> None:
    texts, model_keys = secrets_of(campaign)
    for what, text in received.texts:
        lowered = text.lower()
        leaked = [secret for secret in texts if secret.lower() in lowered]
        assert not leaked, f"{what} gives away {leaked}"
    for what, document in received.documents:
        keys, scalars = keys_and_values(document)
        assert not keys & FORBIDDEN_KEYS, f"{what} has the keys {keys & FORBIDDEN_KEYS}"
        assert not {str(k) for k in model_keys} & keys, f"{what} has a model's key as a JSON key"
        numbers = {s for s in scalars if isinstance(s, int) and not isinstance(s, bool)}
        assert not numbers & model_keys, f"{what} has a model's key as a JSON value"
    for url, (body, headers) in received.media.items():
        leaked = [secret for secret in texts if secret.encode() in body or secret.lower().encode() in body]
        assert not leaked, f"{url} contains {leaked}"
        assert "Last-Modified" not in headers, f"{url} tells when its file was made"
        disposition = headers.get("Content-Disposition", "")
        assert not disposition or url.rsplit("/", 1)[1] in disposition, disposition
        if url.endswith(".jpg"):
            assert not {"exif", "comment", "xmp"} & set(Image.open(io.BytesIO(body)).info), url


def mp4_shapes(received: Received) -> dict[str, tuple]:
    """(width, height, frame rate, frames, duration) of every video sent, checking its tags on the way."""
    shapes = {}
    for url, (body, _) in received.media.items():
        if not url.endswith(".mp4"):
            continue
        with av.open(io.BytesIO(body)) as container:
            stream = container.streams.video[0]
            tags = {**container.metadata, **stream.metadata}
            assert set(tags) <= NEUTRAL_MP4_TAGS, f"{url} carries the tags {set(tags) - NEUTRAL_MP4_TAGS}"
            assert not container.streams.audio
            frames = sum(1 for _ in container.decode(stream))
            duration = float(stream.duration * stream.time_base)
            shapes[url] = (stream.codec_context.width, stream.codec_context.height, stream.average_rate)
            shapes[url] += (frames, round(duration, 6))
    return shapes


def video_behind(url: str) -> Video:
    video = video_shown_at(url)
    assert video.public_id not in url, f"{url} is the video's own address, which other campaigns show too"
    return video


def check_model_a_is_left_in_half_the_items(received: Received) -> None:
    """Canonical slot 0 (model A of a pairwise or A/B campaign, the first seed of a seed pair) is on the
    left in half of the items the annotator was shown, within one."""
    left_is_slot_0 = []
    for view in received.shown:
        assert [v["position"] for v in view["videos"]] == list(range(len(view["videos"])))
        item = Assignment.objects.get(token=view["token"]).item
        slot_0 = ItemVideo.objects.get(item=item, slot=0).video
        left_is_slot_0.append(video_behind(view["videos"][0]["url"]) == slot_0)
    shown = len(left_is_slot_0)
    assert shown >= 4
    assert abs(sum(left_is_slot_0) - shown / 2) <= 1, left_is_slot_0


@pytest.mark.parametrize(("kind", "options", "normalise"), KINDS)
def test_nothing_the_annotator_receives_tells_which_model_made_a_video(
    kind,
    options,
    normalise,
    campaign_factory,
    make_video,
    tmp_path,
    admin_user,
    celery_eager,
    django_capture_on_commit_callbacks,
):
    models = secret_models(MODEL_COUNT[kind])
    campaign = campaign_factory(
        kind,
        n_annotators=1,
        models=models,
        name=f"{' vs '.join(str(m) for m in models)} {CAMPAIGN_NAME_TOKEN}",
        description="Watch both videos to the end, then answer.",
        **options,
    )
    disguise_origins(campaign)
    if normalise:
        give_each_model_its_own_format(campaign, make_video, tmp_path / "formats")
        with django_capture_on_commit_callbacks(execute=True):
            job = start_normalise_media(campaign, created_by=admin_user)
        job.refresh_from_db()
        assert job.status == "succeeded", job.error
        campaign.refresh_from_db()
        assert campaign.normalise_media and campaign.status == Campaign.Status.ACTIVE

    browser = AnnotatorBrowser(campaign.annotators.get().username)
    work_through(browser, campaign)
    received = browser.received

    assert len(received.shown) == campaign.items.count()
    shown_urls = {video["url"] for view in received.shown for video in view["videos"]}
    assert shown_urls <= set(received.media), "every video shown was fetched and scanned"
    check_nothing_names_a_model(received, campaign)
    shapes = mp4_shapes(received)
    if campaign.is_paired:
        check_model_a_is_left_in_half_the_items(received)
    if normalise:
        fmt = campaign.normalised_format
        assert len({video_behind(url).model_id for url in shown_urls}) == len(models)
        assert len({(v.width, v.height, v.fps) for v in map(video_behind, shown_urls)}) > 1
        assert set(shapes.values()) == {
            (
                fmt["width"],
                fmt["height"],
                fmt["fps"],
                round(fmt["duration_s"] * fmt["fps"]),
                fmt["duration_s"],
            )
        }
        described = {
            (v["width"], v["height"], v["duration_s"]) for view in received.shown for v in view["videos"]
        }
        assert described == {(fmt["width"], fmt["height"], fmt["duration_s"])}


ANNOTATE_STATIC = Path(__file__).resolve().parents[2] / "annotation" / "static"


def test_the_scan_reads_every_module_of_the_annotate_page(client, campaign_factory):
    """The page loads one entry module; the scan must reach each module it imports, however deep, or a
    leak there would go unseen. Every script of the annotator's page in the app's static files counts."""
    campaign = campaign_factory("rubric", n_prompts=1, n_annotators=1)
    client.force_login(campaign.annotators.get())
    page = client.get(f"/campaigns/{campaign.pk}/annotate/").content.decode()
    scripts = re.findall(r'<script type="module" src="(/static/[\w./-]+)"></script>', page)
    assert scripts == ["/static/annotation/annotate.js"]

    scanned = {url for url in linked_static_files(scripts, read_from_finders) if url.endswith(".js")}
    shipped = {  # every script of the app but the managers' pages' own (static/annotation/manage/)
        "/static/" + path.relative_to(ANNOTATE_STATIC).as_posix()
        for path in (ANNOTATE_STATIC / "annotation").rglob("*.js")
        if "manage" not in path.relative_to(ANNOTATE_STATIC / "annotation").parts
    }
    assert len(shipped) > 1 and scanned == shipped


def test_a_leak_in_a_module_imported_by_a_module_is_caught(settings, tmp_path, campaign_factory):
    models = secret_models(2)
    campaign = campaign_factory("pairwise", n_prompts=1, n_annotators=1, models=models)
    probe = tmp_path / "static" / "probe"
    (probe / "parts").mkdir(parents=True)
    (probe / "entry.js").write_text('import { start } from "./parts/start.js";\nstart();\n')
    (probe / "parts" / "start.js").write_text(
        'export { start } from "./flow.js";\nconst later = () => import("../late.js");\n'
    )
    (probe / "parts" / "flow.js").write_text("export function start() {}\n")
    (probe / "late.js").write_text(f'export const credit = "made by {models[1].name}";\n')
    settings.STATICFILES_DIRS = [*settings.STATICFILES_DIRS, str(tmp_path / "static")]
    received = Received(texts=[("GET /", '<script type="module" src="/static/probe/entry.js"></script>')])

    fetch_static(received)

    assert [what for what, _ in received.texts[1:]] == [
        "/static/probe/entry.js",
        "/static/probe/parts/start.js",
        "/static/probe/parts/flow.js",
        "/static/probe/late.js",
    ]
    with pytest.raises(AssertionError, match=r"/static/probe/late\.js gives away .*Quokka-Hidden-Engine"):
        check_nothing_names_a_model(received, campaign)


def shown_media(views: list[dict[str, Any]]) -> set[str]:
    return {
        url for view in views for video in view["videos"] for url in (video["url"], video["poster"]) if url
    }


@dataclass
class TwoCampaigns:
    """One annotator who worked through a seed-preference campaign of model A, then a pairwise campaign
    of A against B: model A's first video of each prompt is in both."""

    browser: AnnotatorBrowser
    seed_preference: Campaign
    pairwise: Campaign
    seed_views: list[dict[str, Any]]
    pairwise_views: list[dict[str, Any]]


@pytest.fixture
def two_campaigns(campaign_factory, annotators) -> TwoCampaigns:
    (annotator,) = annotators(1, prefix="both-campaigns")
    pairwise = campaign_factory("pairwise", n_prompts=2, seeds=3, annotators=[annotator])
    model_a = pairwise.campaign_models.get(position=0).model
    seed_preference = with_media_prepared(
        create_campaign(
            CampaignSpec(
                name="seeds of model A",
                kind="seed_preference",
                benchmark=pairwise.benchmark,
                models=[model_a],
                annotators=[annotator],
            )
        )
    )
    browser = AnnotatorBrowser(annotator.username)
    work_through(browser, seed_preference)
    seed_views = list(browser.received.shown)
    work_through(browser, pairwise)
    pairwise_views = browser.received.shown[len(seed_views) :]
    return TwoCampaigns(browser, seed_preference, pairwise, seed_views, pairwise_views)


def test_one_annotator_never_gets_the_same_address_for_a_video_in_two_campaigns(two_campaigns):
    """Were a video shown under one address in both, an annotator of both would know model A's side in
    the pairwise items by the URL (or by their browser's cache answering at once)."""
    both = two_campaigns
    seed_urls, pairwise_urls = shown_media(both.seed_views), shown_media(both.pairwise_views)
    assert seed_urls and pairwise_urls
    videos_in_both = {video_shown_at(u) for u in seed_urls} & {video_shown_at(u) for u in pairwise_urls}
    assert len(videos_in_both) == 2, "model A's first video of each prompt is in both campaigns"
    assert not seed_urls & pairwise_urls, "a video has the same address in both campaigns"

    every_video = Video.objects.filter(prompt__benchmark=both.pairwise.benchmark)
    received = [text for _, text in both.browser.received.texts] + list(both.browser.received.media)
    for video in every_video:
        assert not any(video.public_id in text for text in received), (
            f"{video}'s own id reached the annotator"
        )


@dataclass(frozen=True)
class FileFacts:
    """What an annotator can learn of one file without watching it."""

    sha256: str
    total_size: int  # from `Range: bytes=0-0`, as a player's first request reads it
    duration_s: float | None
    tags: tuple  # container and stream metadata
    encoder_settings: bytes  # x264's settings string in the H.264 stream, if any


X264_SETTINGS = re.compile(rb"x264 - core [^\x00]*")


def file_facts(browser: AnnotatorBrowser, url: str) -> FileFacts:
    body, _ = browser.received.media[url]
    first_byte = browser.client.get(url, HTTP_RANGE="bytes=0-0")
    assert first_byte.status_code == 206
    total = int(first_byte["Content-Range"].rsplit("/", 1)[1])
    assert total == len(body)
    duration, tags, settings_string = None, (), b""
    if url.endswith(".mp4"):
        with av.open(io.BytesIO(body)) as container:
            stream = container.streams.video[0]
            tags = tuple(sorted({**container.metadata, **stream.metadata}.items()))
            duration = round(float(stream.duration * stream.time_base), 6)
        found = X264_SETTINGS.search(body)
        settings_string = found[0] if found else b""
    return FileFacts(hashlib.sha256(body).hexdigest(), total, duration, tags, settings_string)


def test_one_annotator_gets_a_video_of_two_campaigns_as_unrelated_files(two_campaigns):
    """Model A's video, shown in its seed-preference campaign and in the pairwise campaign, must not be
    recognisable by its bytes, its size, its encoder settings or its tags: each campaign has its own
    rendition of it, and every video (and poster) of a campaign is served at one size. (Two campaigns'
    sizes may coincide by chance; that names no model, since each serves every file at its one size.)"""
    both, browser = two_campaigns, two_campaigns.browser
    facts = {url: file_facts(browser, url) for url in browser.received.media}
    by_campaign = {}
    for name, views in (("seed", both.seed_views), ("pairwise", both.pairwise_views)):
        urls = shown_media(views)
        by_campaign[name] = {(video_shown_at(url), url.rsplit(".", 1)[1]): facts[url] for url in urls}

    shared = by_campaign["seed"].keys() & by_campaign["pairwise"].keys()
    assert len(shared) == 4, "model A's two videos, and their posters, are in both campaigns"
    for key in shared:
        seed, pairwise = by_campaign["seed"][key], by_campaign["pairwise"][key]
        assert seed.sha256 != pairwise.sha256, f"{key} is sent as the same bytes in both campaigns"

    for name, campaign_facts in by_campaign.items():
        for extension in ("mp4", "jpg"):
            sizes = {f.total_size for (_, ext), f in campaign_facts.items() if ext == extension}
            assert len(sizes) == 1, f"the {name} campaign's {extension} files differ in size: {sizes}"
        videos = [f for (_, ext), f in campaign_facts.items() if ext == "mp4"]
        assert len({f.encoder_settings for f in videos}) == 1, "the encoder settings vary within a campaign"
    every_video = [*by_campaign["seed"].values(), *by_campaign["pairwise"].values()]
    assert len({f.tags for f in every_video if f.duration_s is not None}) == 1, "tags differ between files"
    assert all(set(dict(f.tags)) <= NEUTRAL_MP4_TAGS for f in every_video)
    # Lengths are each video's own (a campaign that normalises media shows them all at one length).
    for views in (both.seed_views, both.pairwise_views):
        for view in views:
            for shown in view["videos"]:
                assert facts[shown["url"]].duration_s == round(video_shown_at(shown["url"]).duration_s, 6)
                assert facts[shown["url"]].duration_s == round(shown["duration_s"], 6)


def test_media_is_served_only_to_managers_and_the_annotators_of_a_campaign_that_shows_it(
    campaign_factory, admin_client
):
    shown_campaign = campaign_factory("pairwise", n_prompts=1, n_annotators=1)
    other_campaign = campaign_factory("pairwise", n_prompts=1, n_annotators=1)
    rendition = shown_campaign.renditions.select_related("video").first()
    urls = [f"/media/v/{rendition.public_id}.mp4", f"/media/p/{rendition.public_id}.jpg"]
    library_urls = [f"/media/v/{rendition.video.public_id}.mp4", f"/media/p/{rendition.video.public_id}.jpg"]
    legacy_id = shown_campaign.media.get(video=rendition.video).public_id
    member, outsider = Client(), Client()
    member.force_login(shown_campaign.annotators.get())
    outsider.force_login(other_campaign.annotators.get())

    for url in urls:
        assert Client().get(url).status_code == 302  # to the login page
        assert member.get(url).status_code == 200
        assert admin_client.get(url).status_code == 200
        assert outsider.get(url).status_code == 404, "an annotator of another campaign got its media"
        assert outsider.get(url, HTTP_RANGE="bytes=0-0").status_code == 404
    for url in library_urls:
        assert member.get(url).status_code == 404, "an annotator got a library video by its own id"
        assert admin_client.get(url).status_code == 200
    # The campaign's id from before it had a rendition serves nothing once the rendition is shown.
    for client in (member, admin_client):
        assert client.get(f"/media/v/{legacy_id}.mp4").status_code == 404


def test_no_work_is_handed_out_before_the_campaigns_media_is_ready(library, annotators):
    benchmark, models = library(["a fox", "a boat"])
    (annotator,) = annotators(1, prefix="early")
    campaign = create_campaign(
        CampaignSpec(
            name="early", kind="pairwise", benchmark=benchmark, models=models, annotators=[annotator]
        )
    )
    assert not campaign.media_ready and not campaign.renditions.exists()
    client = Client()
    client.force_login(annotator)
    early = client.get(f"/api/annotate/{campaign.pk}/next/")
    assert early.status_code == 409 and "being prepared" in early.json()["detail"]
    assert not Assignment.objects.exists()

    with_media_prepared(campaign)
    assert campaign.media_ready
    view = client.get(f"/api/annotate/{campaign.pk}/next/").json()["assignment"]
    assert all(video_behind(v["url"]) for v in view["videos"])
    assert {v["url"].rsplit("/", 1)[1][:-4] for v in view["videos"]} <= set(
        campaign.renditions.values_list("public_id", flat=True)
    )


def test_every_video_of_a_campaign_has_an_id_of_the_campaigns_own(campaign_factory):
    campaign = campaign_factory("seed_preference", n_prompts=2, seeds=3, n_annotators=1)
    shown = ItemVideo.objects.filter(item__campaign=campaign).values_list("video_id", flat=True)
    media = CampaignMedia.objects.filter(campaign=campaign)
    assert sorted(media.values_list("video_id", flat=True)) == sorted(set(shown))
    assert not {m.public_id for m in media} & set(Video.objects.values_list("public_id", flat=True))


def test_the_migration_gives_existing_campaigns_their_ids(campaign_factory):
    migration = importlib.import_module("annotation.migrations.0003_campaign_media")
    first = campaign_factory("pairwise", n_prompts=2, n_annotators=1)
    second = campaign_factory("seed_preference", n_prompts=1, seeds=3, n_annotators=1)
    CampaignMedia.objects.all().delete()  # as before the migration
    Rendition.objects.all().delete()  # campaigns had no renditions of their own then

    migration.name_the_videos_of_existing_campaigns(django_apps, None)

    for campaign in (first, second):
        shown = set(ItemVideo.objects.filter(item__campaign=campaign).values_list("video_id", flat=True))
        assert set(campaign.media.values_list("video_id", flat=True)) == shown
    assert CampaignMedia.objects.count() == 2 * 2 + 3
    browser = AnnotatorBrowser(first.annotators.get().username)
    work_through(browser, first)
    for url in shown_media(browser.received.shown):
        video = video_behind(url)
        assert url.rsplit("/", 1)[1].split(".")[0] == first.media.get(video=video).public_id


def test_existing_campaigns_stay_shown_after_the_migration_that_gates_on_renditions(campaign_factory):
    migration = importlib.import_module("annotation.migrations.0004_campaign_renditions")
    campaign = campaign_factory("pairwise", n_prompts=1, n_annotators=1)
    Campaign.objects.update(media_ready=False)  # the new column's default

    migration.keep_existing_campaigns_shown(django_apps, None)

    assert Campaign.objects.get(pk=campaign.pk).media_ready


def test_a_campaigns_rendition_is_served_with_its_poster_without_date_or_name(
    client, admin_client, campaign_factory
):
    campaign = campaign_factory("pairwise", n_prompts=1, n_annotators=1)
    shown = campaign.renditions.select_related("video").first()
    video_url, poster_url = f"/media/v/{shown.public_id}.mp4", f"/media/p/{shown.public_id}.jpg"
    assert client.get(video_url).status_code == 302  # to the login page

    client.force_login(campaign.annotators.get())
    response = client.get(video_url)
    assert response.status_code == 200 and response["Content-Type"] == "video/mp4"
    body = b"".join(response.streaming_content)
    assert body == media_path(shown.playable_file).read_bytes()
    assert body != media_path(shown.video.playable_file).read_bytes(), (
        "the library's file, not the campaign's"
    )
    assert "Last-Modified" not in response and "Content-Disposition" not in response
    partial = client.get(video_url, HTTP_RANGE="bytes=0-99")
    assert partial.status_code == 206 and len(b"".join(partial.streaming_content)) == 100
    poster = client.get(poster_url)
    assert poster.status_code == 200 and poster["Content-Type"] == "image/jpeg"
    assert "Last-Modified" not in poster and "Content-Disposition" not in poster
    assert b"".join(poster.streaming_content) == media_path(shown.poster_file).read_bytes()
    # The id stands for the shown files only, not the original upload, even for a manager.
    assert admin_client.get(f"/media/o/{shown.public_id}").status_code == 404
    assert admin_client.get(f"/media/o/{shown.video.public_id}").status_code == 200
