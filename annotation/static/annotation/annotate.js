/* The annotator's page. It loads one assignment at a time from the JSON API and never reloads itself:
 * answers, playback events and problem reports are fetch() calls, and the answer's reply carries the next
 * assignment, whose videos were already preloaded from the previous reply's `upcoming` list.
 *
 * Blinding: the page knows videos only by their display position (0 = left) and their opaque URLs. It
 * never receives, keeps or shows model names, campaign names or the item's canonical slots.
 *
 * This entry module holds the assignment on screen and wires the parts under annotate/: the API client
 * (api.js), the synchronised players (players.js), the rubric grid (rubric.js), the keyboard (keys.js)
 * and the recent answers (recent.js). */
import { AnnotatorApi } from "./annotate/api.js";
import { listenToKeys } from "./annotate/keys.js";
import { framesPerSecond, PlaybackControls, PlaybackReport, Stage } from "./annotate/players.js";
import { RecentAnswers } from "./annotate/recent.js";
import { RubricOverlay, ScoreGrid } from "./annotate/rubric.js";
import { blurAfterClick, format } from "./annotate/ui.js";

const WAIT_RETRY_MS = 30000;

const config = JSON.parse(document.getElementById("annotate-config").textContent);
const T = JSON.parse(document.getElementById("annotate-strings").textContent);

const byId = (id) => document.getElementById(id);
const dom = {
  work: byId("work"),
  finished: byId("finished"),
  finishedText: byId("finished-text"),
  message: byId("message"),
  prompt: byId("prompt"),
  revising: byId("revising"),
  submit: byId("submit"),
  submitHint: byId("submit-hint"),
  progressBar: byId("progress-bar"),
  progressText: byId("progress-text"),
  rubricButton: byId("rubric-button"),
  problemButton: byId("problem-button"),
  problemDialog: byId("problem-dialog"),
  problemForm: byId("problem-form"),
};

const api = new AnnotatorApi(config.api, T);
const stage = new Stage(byId("stage"), byId("preload"), T);
const controls = new PlaybackControls(
  {
    play: byId("play"),
    frameBack: byId("frame-back"),
    frameForward: byId("frame-forward"),
    replay: byId("replay"),
    seek: byId("seek"),
    time: byId("time"),
    loop: byId("loop"),
    speed: byId("speed"),
  },
  T
);
const grid = config.paired ? null : new ScoreGrid(byId("score-grid"), byId("level-help"), config, T, () => updateSubmit());
const rubricOverlay = new RubricOverlay(byId("rubric-overlay"));
const recent = new RecentAnswers(byId("recent"), api, config, T, revisit);

// ---------------------------------------------------------------- messages

function showMessage(text, kind) {
  dom.message.textContent = text;
  dom.message.className = "message " + (kind || "error");
  dom.message.hidden = false;
}

function clearMessage() {
  dom.message.hidden = true;
  dom.message.textContent = "";
}

// ---------------------------------------------------------------- the current assignment

const state = {
  assignment: null,
  videos: [], // the assignment's videos in display order
  playback: null, // its PlaybackReport
  choice: null,
  busy: false,
  loaded: false,
};

function videoLabel(index) {
  if (config.paired) return index === 0 ? T.left : T.right;
  if (state.videos.length === 1) return T.video;
  return format(T.video_n, { n: index + 1 });
}

function showAssignment(assignment) {
  controls.release();
  stage.closeEnlarged();
  state.assignment = assignment;
  state.videos = assignment.videos.slice().sort((a, b) => a.position - b.position);
  state.choice = null;
  state.playback = new PlaybackReport(
    state.videos.map((video) => video.position),
    // Only a campaign that requires full playback checks the events, so only its items send them (four
    // requests an item otherwise stored for nothing); a revision is not timed.
    assignment.is_answered || !assignment.require_full_playback
      ? null
      : (body) => api.playback(assignment.token, body)
  );

  dom.prompt.textContent = assignment.prompt.text;
  if (assignment.prompt.language) dom.prompt.lang = assignment.prompt.language;
  else dom.prompt.removeAttribute("lang");
  showRevisingNotice(Boolean(assignment.is_answered));

  const elements = stage.show(state.videos, videoLabel);
  if (config.paired) resetChoices();
  else grid.show(state.videos, videoLabel);
  if (assignment.is_answered && assignment.answer) restoreAnswer(assignment.answer);

  const playback = state.playback;
  controls.drive(elements, framesPerSecond(state.videos, config.fps), {
    onPlay: (index, mediaTime) => playback.played(index, mediaTime),
    onEnded: (index, duration) => {
      if (!playback.ended(index, duration)) return;
      stage.markPlayedThrough(index);
      updateSubmit();
    },
    onError: (index) => showMessage(format(T.video_error, { video: videoLabel(index) })),
  });
  dom.work.hidden = false;
  dom.finished.hidden = true;
  if (assignment.progress) showProgress(assignment.progress);
  if (document.activeElement && document.activeElement !== document.body) document.activeElement.blur();
  updateSubmit();
}

let waitTimer = null;

function showRevisingNotice(revising) {
  dom.revising.hidden = !revising;
  dom.revising.replaceChildren();
  if (!revising) return;
  const back = document.createElement("button");
  back.type = "button";
  back.className = "link";
  back.textContent = T.back_to_current;
  back.addEventListener("click", () => {
    clearMessage();
    loadNext();
  });
  dom.revising.append(T.revising + " ", back);
}

function showNext(next) {
  if (!next) return;
  clearTimeout(waitTimer);
  if (next.progress) showProgress(next.progress);
  if (next.done || !next.assignment) {
    controls.release();
    state.assignment = null;
    dom.work.hidden = true;
    dom.finished.hidden = false;
    // Not done, yet nothing to do: others hold the last items for now; one may come back to us.
    dom.finishedText.textContent = next.done ? T.all_done : T.waiting;
    if (!next.done) waitTimer = setTimeout(loadNext, WAIT_RETRY_MS);
    stage.preload([]);
    return;
  }
  showAssignment(next.assignment);
  stage.preload(next.upcoming ? next.upcoming.videos : []);
}

function showProgress(progress) {
  const total = Number(progress.total) || 0;
  const done = Math.min(Number(progress.done) || 0, total || Infinity);
  dom.progressBar.max = Math.max(total, 1);
  dom.progressBar.value = done;
  dom.progressText.textContent = format(T.progress, { done: done, total: total });
}

// ---------------------------------------------------------------- answers

function resetChoices() {
  document.querySelectorAll(".choice").forEach((button) => {
    button.classList.remove("selected");
    button.setAttribute("aria-checked", "false");
  });
}

function choose(value) {
  state.choice = value;
  document.querySelectorAll(".choice").forEach((button) => {
    const selected = button.dataset.choice === value;
    button.classList.toggle("selected", selected);
    button.setAttribute("aria-checked", selected ? "true" : "false");
  });
  updateSubmit();
}

function restoreAnswer(answer) {
  if (config.paired) {
    const choice = typeof answer === "string" ? answer : answer.choice;
    if (choice) choose(choice);
    return;
  }
  grid.restore(Array.isArray(answer) ? answer : answer.scores || []);
}

function whatIsMissing() {
  if (!state.assignment) return "";
  if (config.paired && !state.choice) return T.choose_answer;
  if (!config.paired) {
    const missing = grid.missing();
    if (missing) return format(T.scores_missing, { missing: missing });
  }
  if (state.assignment.require_full_playback && !state.assignment.is_answered) {
    const unwatched = state.playback.unwatched();
    if (unwatched.length) return format(T.watch_to_end, { videos: unwatched.map(videoLabel).join(", ") });
  }
  return "";
}

function updateSubmit() {
  const missing = whatIsMissing();
  dom.submit.disabled = state.busy || !state.assignment || Boolean(missing);
  if (state.busy) dom.submit.textContent = T.saving;
  else if (missing) dom.submit.textContent = missing;
  else dom.submit.textContent = state.assignment && state.assignment.is_answered ? T.save_revision : T.submit;
  dom.submitHint.textContent = "";
}

function answerBody() {
  return config.paired ? { choice: state.choice } : { scores: grid.answer() };
}

async function submit() {
  if (state.busy || !state.assignment) return;
  const missing = whatIsMissing();
  if (missing) {
    showMessage(missing, "info");
    return;
  }
  const assignment = state.assignment;
  state.busy = true;
  updateSubmit();
  try {
    await state.playback.sent; // the server checks full playback against these events
    const result = await api.answer(assignment.token, answerBody());
    if (result.revised) showMessage(T.revised, "info");
    else clearMessage();
    state.busy = false;
    if (result.next) showNext(result.next);
    else await loadNext(); // the answer stood but no next item came back (e.g. the task was paused)
    recent.load();
  } catch (error) {
    showMessage(error.message);
  } finally {
    state.busy = false;
    updateSubmit();
  }
}

function revisit(assignment) {
  if (!assignment.videos) return;
  clearMessage();
  showAssignment(Object.assign({}, assignment, { is_answered: true }));
}

// ---------------------------------------------------------------- problem reports

function openProblemDialog() {
  if (!state.assignment) return;
  controls.pause();
  dom.problemForm.reset();
  dom.problemDialog.showModal();
}

async function sendProblem() {
  const assignment = state.assignment;
  if (!assignment) return;
  const form = new FormData(dom.problemForm);
  const body = { kind: form.get("kind"), note: String(form.get("note") || "").trim() };
  dom.problemDialog.close();
  try {
    const next = await api.problem(assignment.token, body);
    showMessage(T.problem_sent, "info");
    if (next) showNext(next);
    else await loadNext(); // the write stood but no next item came back: ask, to show why
  } catch (error) {
    showMessage(error.message);
  }
}

// ---------------------------------------------------------------- wiring

listenToKeys({
  controls: controls,
  stage: stage,
  rubricOverlay: rubricOverlay,
  problemDialog: dom.problemDialog,
  openProblemDialog: openProblemDialog,
  submit: submit,
  hasAssignment: () => Boolean(state.assignment),
  choose: choose,
  grid: grid,
});

blurAfterClick(dom.submit, () => submit());
blurAfterClick(dom.rubricButton, () => rubricOverlay.toggle(true));
blurAfterClick(dom.problemButton, () => openProblemDialog());
document.querySelectorAll(".choice").forEach((button) => {
  blurAfterClick(button, () => choose(button.dataset.choice));
});
dom.problemForm.addEventListener("submit", (event) => {
  event.preventDefault();
  sendProblem();
});
dom.problemDialog.querySelector("[data-close=problem]").addEventListener("click", () => dom.problemDialog.close());

async function loadNext() {
  try {
    showNext(await api.next());
  } catch (error) {
    showMessage(error.message);
  }
}

async function start() {
  await loadNext();
  state.loaded = true;
  document.documentElement.dataset.annotateReady = "true";
  recent.load();
}

start();
