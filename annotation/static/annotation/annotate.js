/* The annotator's page. It loads one assignment at a time from the JSON API and never reloads itself:
 * answers, playback events and problem reports are fetch() calls, and the answer's reply carries the next
 * assignment, whose videos were already preloaded from the previous reply's `upcoming` list.
 *
 * Blinding: the page knows videos only by their display position (0 = left) and their opaque URLs. It
 * never receives, keeps or shows model names, campaign names or the item's canonical slots. */
(function () {
  "use strict";

  const config = JSON.parse(document.getElementById("annotate-config").textContent);
  const T = JSON.parse(document.getElementById("annotate-strings").textContent);

  const DEFAULT_FPS = 24;
  const DRIFT_TOLERANCE_S = 0.05; // a follower further than this from the leader is corrected
  const DRIFT_SETTLED_S = 0.02; // ...until it is back within this
  const DRIFT_JUMP_S = 0.25; // beyond this it jumps to the leader instead of catching up gradually
  const SEEK_TIMEOUT_MS = 4000;
  const PRELOAD_LIMIT = 8;
  const WAIT_RETRY_MS = 30000;
  const MAX_ENDED_REPORTS = 5;
  const SPEEDS = [0.25, 0.5, 0.75, 1, 1.25, 1.5, 2];

  const byId = (id) => document.getElementById(id);
  const dom = {
    work: byId("work"),
    finished: byId("finished"),
    finishedText: byId("finished-text"),
    message: byId("message"),
    prompt: byId("prompt"),
    revising: byId("revising"),
    stage: byId("stage"),
    play: byId("play"),
    frameBack: byId("frame-back"),
    frameForward: byId("frame-forward"),
    replay: byId("replay"),
    seek: byId("seek"),
    time: byId("time"),
    loop: byId("loop"),
    speed: byId("speed"),
    submit: byId("submit"),
    submitHint: byId("submit-hint"),
    progressBar: byId("progress-bar"),
    progressText: byId("progress-text"),
    recent: byId("recent"),
    rubricOverlay: byId("rubric-overlay"),
    rubricButton: byId("rubric-button"),
    problemButton: byId("problem-button"),
    problemDialog: byId("problem-dialog"),
    problemForm: byId("problem-form"),
    preload: byId("preload"),
    scoreGrid: byId("score-grid"),
    levelHelp: byId("level-help"),
  };

  function format(template, values) {
    return template.replace(/%\((\w+)\)s/g, (match, name) => (name in values ? String(values[name]) : match));
  }

  // ---------------------------------------------------------------- talking to the API

  class ApiError extends Error {}

  function csrfToken() {
    const cookie = document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/);
    if (cookie) return decodeURIComponent(cookie[1]);
    const field = document.querySelector("input[name=csrfmiddlewaretoken]");
    return field ? field.value : "";
  }

  function errorText(data, status) {
    if (data && typeof data.detail === "string") return data.detail;
    if (data && typeof data === "object") {
      const parts = [];
      for (const value of Object.values(data)) {
        if (Array.isArray(value)) parts.push(...value.map(String));
        else if (typeof value === "string") parts.push(value);
      }
      if (parts.length) return parts.join(" ");
    }
    return format(T.server_error, { status: status });
  }

  async function api(method, url, body) {
    const headers = { Accept: "application/json" };
    const options = { method: method, headers: headers, credentials: "same-origin" };
    if (body !== undefined) {
      headers["Content-Type"] = "application/json";
      headers["X-CSRFToken"] = csrfToken();
      options.body = JSON.stringify(body);
    }
    let response;
    try {
      response = await fetch(url, options);
    } catch (error) {
      throw new ApiError(T.network_error);
    }
    let data = null;
    try {
      data = await response.json();
    } catch (error) {
      data = null;
    }
    if (!response.ok) throw new ApiError(errorText(data, response.status));
    return data;
  }

  function apiUrl(name, token) {
    return config.api[name].replace("{token}", encodeURIComponent(token || ""));
  }

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

  // ---------------------------------------------------------------- synced playback

  function seekVideo(video, time) {
    return new Promise((resolve) => {
      let finished = false;
      const timer = setTimeout(finish, SEEK_TIMEOUT_MS);
      function finish() {
        if (finished) return;
        finished = true;
        clearTimeout(timer);
        video.removeEventListener("seeked", onSeeked);
        video.removeEventListener("loadedmetadata", onMetadata);
        resolve();
      }
      function onSeeked() {
        if (!video.seeking) finish();
      }
      function onMetadata() {
        apply();
      }
      function apply() {
        if (Math.abs(video.currentTime - time) < 0.0005 && !video.seeking) {
          finish();
          return;
        }
        video.addEventListener("seeked", onSeeked);
        video.currentTime = time;
      }
      if (video.readyState === 0) video.addEventListener("loadedmetadata", onMetadata, { once: true });
      else apply();
    });
  }

  /* One control bar for every video. The longest video leads; the others follow its clock, catching up
   * by a slightly changed rate when they drift, or jumping when far off. A seek moves every video, waits
   * until each has landed, then resumes them together. Looping is done here rather than with the `loop`
   * attribute, so that each video reports `ended` when it plays through. */
  class SyncPlayer {
    constructor(videos, fps, hooks) {
      this.videos = videos;
      this.fps = fps;
      this.hooks = hooks;
      this.playing = false;
      this.rate = Number(dom.speed.value) || 1;
      this.pendingSeeks = 0;
      this.seekGeneration = 0;
      this.displayTime = null;
      this.catchingUp = new Set();
      this.frame = null;
      this.listeners = [];
      this.tick = this.tick.bind(this);
      videos.forEach((video, index) => {
        video.playbackRate = this.rate;
        this.listen(video, "play", () => this.hooks.onPlay(index, video.currentTime));
        this.listen(video, "ended", () => this.onEnded(index));
        this.listen(video, "loadedmetadata", () => this.render());
        this.listen(video, "error", () => this.hooks.onError(index));
      });
      this.render();
    }

    listen(target, type, handler) {
      target.addEventListener(type, handler);
      this.listeners.push([target, type, handler]);
    }

    destroy() {
      this.playing = false;
      this.seekGeneration += 1;
      if (this.frame !== null) cancelAnimationFrame(this.frame);
      for (const [target, type, handler] of this.listeners) target.removeEventListener(type, handler);
      this.videos.forEach((video) => {
        video.pause();
        video.removeAttribute("src"); // stop downloading what is no longer shown
        video.load();
      });
    }

    durationOf(video) {
      return Number.isFinite(video.duration) ? video.duration : 0;
    }

    get duration() {
      return Math.max(0, ...this.videos.map((video) => this.durationOf(video)));
    }

    get leader() {
      return this.videos.reduce(
        (best, video) => (this.durationOf(video) > this.durationOf(best) ? video : best),
        this.videos[0]
      );
    }

    get currentTime() {
      return this.displayTime !== null ? this.displayTime : this.leader.currentTime;
    }

    atEnd() {
      const duration = this.duration;
      return duration > 0 && this.leader.currentTime >= duration - 0.02;
    }

    async play() {
      this.playing = true;
      this.render();
      if (this.pendingSeeks > 0) return; // the seek under way starts playback when it lands
      if (this.atEnd()) {
        await this.seek(0);
        return;
      }
      await this.startAll();
    }

    async startAll() {
      const time = this.leader.currentTime;
      await Promise.all(
        this.videos.map((video) => {
          const duration = this.durationOf(video);
          if (duration && time >= duration - 0.02) return null; // a shorter video that has finished
          video.playbackRate = this.rate;
          return video.play().catch(() => {});
        })
      );
      this.startTicking();
      this.render();
    }

    pause() {
      this.playing = false;
      this.videos.forEach((video) => video.pause());
      this.render();
    }

    toggle() {
      if (this.playing) this.pause();
      else this.play();
    }

    async seek(time) {
      const generation = ++this.seekGeneration;
      this.pendingSeeks += 1;
      this.videos.forEach((video) => video.pause());
      const duration = this.duration;
      const target = Math.max(0, duration ? Math.min(time, duration) : time);
      this.displayTime = target;
      this.render();
      try {
        await Promise.all(
          this.videos.map((video) => {
            const own = this.durationOf(video);
            return seekVideo(video, own ? Math.min(target, Math.max(0, own - 0.001)) : target);
          })
        );
      } finally {
        this.pendingSeeks -= 1;
      }
      if (generation !== this.seekGeneration) return; // a later seek took over
      this.displayTime = null;
      if (this.playing) await this.startAll();
      else this.render();
    }

    step(frames) {
      this.pause();
      const frame = Math.floor(this.currentTime * this.fps + 1e-6) + frames;
      const last = Math.max(0, Math.floor(this.duration * this.fps) - 1);
      const target = (Math.min(Math.max(frame, 0), last) + 0.5) / this.fps; // a frame's middle, never its edge
      return this.seek(target);
    }

    restart() {
      this.playing = true;
      return this.seek(0);
    }

    setRate(rate) {
      this.rate = rate;
      this.videos.forEach((video) => {
        video.playbackRate = rate;
      });
      this.catchingUp.clear();
    }

    onEnded(index) {
      const video = this.videos[index];
      this.hooks.onEnded(index, this.durationOf(video));
      if (video !== this.leader) return;
      // Followers of the same length may trail the leader by a few milliseconds: they played through too.
      this.videos.forEach((other, otherIndex) => {
        const duration = this.durationOf(other);
        if (other !== video && duration && other.currentTime >= duration - 0.15) {
          this.hooks.onEnded(otherIndex, duration);
        }
      });
      if (this.playing && dom.loop.checked) {
        this.seek(0);
      } else {
        this.pause();
      }
    }

    startTicking() {
      if (this.frame === null) this.frame = requestAnimationFrame(this.tick);
    }

    tick() {
      this.frame = null;
      if (this.playing && this.pendingSeeks === 0) this.keepInStep();
      this.render();
      if (this.playing) this.startTicking();
    }

    keepInStep() {
      const leader = this.leader;
      const time = leader.currentTime;
      for (const video of this.videos) {
        if (video === leader || video.seeking) continue;
        const duration = this.durationOf(video);
        if (duration && time >= duration - 0.02) continue; // shorter, and finished
        if (video.paused && !leader.paused) video.play().catch(() => {});
        const drift = video.currentTime - time;
        if (Math.abs(drift) > DRIFT_JUMP_S) {
          video.currentTime = time;
          continue;
        }
        if (Math.abs(drift) > DRIFT_TOLERANCE_S) this.catchingUp.add(video);
        if (this.catchingUp.has(video)) {
          if (Math.abs(drift) < DRIFT_SETTLED_S) {
            this.catchingUp.delete(video);
            video.playbackRate = this.rate;
          } else {
            // Catch up within about half a second, never changing speed by more than a quarter.
            const correction = Math.max(-0.25, Math.min(0.25, -drift * 2));
            video.playbackRate = this.rate * (1 + correction);
          }
        }
      }
    }

    render() {
      const duration = this.duration;
      const time = this.currentTime;
      dom.play.textContent = this.playing ? T.pause : T.play;
      dom.play.setAttribute("aria-pressed", this.playing ? "true" : "false");
      if (!dom.seek.matches(":active")) {
        dom.seek.value = duration ? String(Math.round((1000 * time) / duration)) : "0";
      }
      const frame = Math.min(Math.floor(time * this.fps + 1e-6) + 1, Math.max(1, Math.round(duration * this.fps)));
      dom.time.textContent = `${time.toFixed(2)} / ${duration.toFixed(2)} s · #${frame}`;
    }
  }

  // ---------------------------------------------------------------- the current assignment

  const state = {
    assignment: null,
    videos: [], // the assignment's videos in display order
    player: null,
    choice: null,
    scores: [], // per displayed video: {dimension key: 1-5}
    cursor: { video: 0, dimension: 0 },
    startedPlaying: new Set(),
    playedThrough: new Set(),
    endedReports: new Map(), // display index -> `ended` events sent
    playbackSent: Promise.resolve(),
    busy: false,
    loaded: false,
  };

  function videoLabel(index) {
    if (config.paired) return index === 0 ? T.left : T.right;
    if (state.videos.length === 1) return T.video;
    return format(T.video_n, { n: index + 1 });
  }

  function framesPerSecond(videos) {
    const rates = videos.map((video) => {
      if (video.fps) return Number(video.fps);
      if (video.frame_count && video.duration_s) return Number(video.frame_count) / Number(video.duration_s);
      return Number(config.fps) || DEFAULT_FPS;
    });
    return Math.max(...rates.filter((rate) => Number.isFinite(rate) && rate > 0), 1);
  }

  function takePreloaded(url) {
    for (const video of dom.preload.querySelectorAll("video")) {
      if (video.dataset.url === url) {
        video.remove();
        return video;
      }
    }
    return null;
  }

  function preload(urls) {
    const wanted = (urls || []).slice(0, PRELOAD_LIMIT);
    for (const video of dom.preload.querySelectorAll("video")) {
      if (!wanted.includes(video.dataset.url)) {
        video.removeAttribute("src");
        video.load();
        video.remove();
      }
    }
    const present = new Set(Array.from(dom.preload.querySelectorAll("video"), (video) => video.dataset.url));
    for (const url of wanted) {
      if (present.has(url)) continue;
      const video = document.createElement("video");
      video.muted = true;
      video.preload = "auto";
      video.dataset.url = url;
      video.src = url;
      dom.preload.appendChild(video);
    }
  }

  function buildStage(videos) {
    dom.stage.replaceChildren();
    dom.stage.className = `stage count-${videos.length}`;
    return videos.map((info, index) => {
      const figure = document.createElement("figure");
      figure.className = "frame";
      figure.dataset.position = String(info.position);
      const box = document.createElement("div");
      box.className = "box";
      const video = takePreloaded(info.url) || document.createElement("video");
      video.removeAttribute("data-url");
      video.muted = true;
      video.playsInline = true;
      video.preload = "auto";
      video.disablePictureInPicture = true;
      video.title = T.enlarge;
      if (info.poster) video.poster = info.poster;
      if (video.getAttribute("src") !== info.url) video.src = info.url;
      video.dataset.position = String(info.position);
      box.appendChild(video);
      const caption = document.createElement("figcaption");
      const name = document.createElement("span");
      name.className = "label";
      name.textContent = videoLabel(index);
      const done = document.createElement("span");
      done.className = "played-through";
      done.textContent = "✓ " + T.played_through;
      done.hidden = true;
      caption.append(name, done);
      figure.append(box, caption);
      figure.addEventListener("click", () => toggleEnlarged(figure));
      dom.stage.appendChild(figure);
      return video;
    });
  }

  function toggleEnlarged(figure) {
    const enlarged = figure.classList.toggle("enlarged");
    dom.stage.querySelectorAll(".frame.enlarged").forEach((other) => {
      if (other !== figure) other.classList.remove("enlarged");
    });
    dom.stage.classList.toggle("has-enlarged", enlarged);
  }

  function closeEnlarged() {
    const open = dom.stage.querySelector(".frame.enlarged");
    if (!open) return false;
    open.classList.remove("enlarged");
    dom.stage.classList.remove("has-enlarged");
    return true;
  }

  function showAssignment(assignment) {
    if (state.player) state.player.destroy();
    closeEnlarged();
    state.assignment = assignment;
    state.videos = assignment.videos.slice().sort((a, b) => a.position - b.position);
    state.choice = null;
    state.scores = state.videos.map(() => ({}));
    state.cursor = { video: 0, dimension: 0 };
    state.startedPlaying = new Set();
    state.playedThrough = new Set();
    state.endedReports = new Map();
    state.playbackSent = Promise.resolve();

    dom.prompt.textContent = assignment.prompt.text;
    if (assignment.prompt.language) dom.prompt.lang = assignment.prompt.language;
    else dom.prompt.removeAttribute("lang");
    showRevisingNotice(Boolean(assignment.is_answered));

    const elements = buildStage(state.videos);
    if (config.paired) resetChoices();
    else buildScoreGrid();
    if (assignment.is_answered && assignment.answer) restoreAnswer(assignment.answer);

    state.player = new SyncPlayer(elements, framesPerSecond(state.videos), {
      onPlay: onVideoPlay,
      onEnded: onVideoEnded,
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
      if (state.player) state.player.destroy();
      state.player = null;
      state.assignment = null;
      dom.work.hidden = true;
      dom.finished.hidden = false;
      // Not done, yet nothing to do: others hold the last items for now; one may come back to us.
      dom.finishedText.textContent = next.done ? T.all_done : T.waiting;
      if (!next.done) waitTimer = setTimeout(loadNext, WAIT_RETRY_MS);
      preload([]);
      return;
    }
    showAssignment(next.assignment);
    preload(next.upcoming ? next.upcoming.videos : []);
  }

  function showProgress(progress) {
    const total = Number(progress.total) || 0;
    const done = Math.min(Number(progress.done) || 0, total || Infinity);
    dom.progressBar.max = Math.max(total, 1);
    dom.progressBar.value = done;
    dom.progressText.textContent = format(T.progress, { done: done, total: total });
  }

  // ---------------------------------------------------------------- playback events

  function sendPlayback(index, event, mediaTime) {
    const assignment = state.assignment;
    if (!assignment || assignment.is_answered) return; // a revision is not timed or checked
    const body = { position: state.videos[index].position, event: event, media_time: mediaTime };
    // Chained, so that an answer sent afterwards reaches the server after every playback event.
    state.playbackSent = state.playbackSent
      .then(() => api("POST", apiUrl("playback", assignment.token), body))
      .catch((error) => console.warn("playback event not recorded:", error.message));
  }

  function onVideoPlay(index, mediaTime) {
    if (state.startedPlaying.has(index)) return;
    state.startedPlaying.add(index);
    sendPlayback(index, "play", mediaTime);
  }

  function onVideoEnded(index, duration) {
    // Every play-through is reported (a few at most): the server may not count one that arrived too
    // soon after the item came on screen, e.g. at double speed, while a later loop's does count.
    const reported = state.endedReports.get(index) || 0;
    if (reported < MAX_ENDED_REPORTS) {
      state.endedReports.set(index, reported + 1);
      sendPlayback(index, "ended", duration);
    }
    if (state.playedThrough.has(index)) return;
    state.playedThrough.add(index);
    const badge = dom.stage.querySelectorAll(".frame")[index]?.querySelector(".played-through");
    if (badge) badge.hidden = false;
    updateSubmit();
  }

  // ---------------------------------------------------------------- paired answers

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

  // ---------------------------------------------------------------- rubric scores

  function buildScoreGrid() {
    const grid = dom.scoreGrid;
    grid.replaceChildren();
    const head = grid.createTHead().insertRow();
    const corner = document.createElement("th");
    corner.textContent = T.dimension;
    head.appendChild(corner);
    state.videos.forEach((_, index) => {
      const th = document.createElement("th");
      th.textContent = videoLabel(index);
      head.appendChild(th);
    });
    const body = grid.createTBody();
    config.dimensions.forEach((dimension, dimensionIndex) => {
      const row = body.insertRow();
      row.dataset.dimension = dimension.key;
      const th = document.createElement("th");
      const key = document.createElement("kbd");
      key.textContent = dimension.shortcut;
      th.append(key, " " + dimension.title);
      row.appendChild(th);
      state.videos.forEach((info, videoIndex) => {
        const cell = row.insertCell();
        cell.className = "score-cell";
        cell.dataset.position = String(info.position);
        cell.dataset.dimension = dimension.key;
        for (let score = 1; score <= 5; score += 1) {
          const button = document.createElement("button");
          button.type = "button";
          button.className = "score";
          button.dataset.score = String(score);
          button.textContent = String(score);
          button.title = config.rubric_levels[dimension.key][String(score)];
          button.addEventListener("click", (event) => {
            event.currentTarget.blur();
            state.cursor = { video: videoIndex, dimension: dimensionIndex };
            setScore(score, false);
          });
          cell.appendChild(button);
        }
        cell.addEventListener("click", () => {
          state.cursor = { video: videoIndex, dimension: dimensionIndex };
          renderScores();
        });
      });
    });
    renderScores();
  }

  function setScore(score, advance) {
    const { video, dimension } = state.cursor;
    state.scores[video][config.dimensions[dimension].key] = score;
    if (advance) moveCursor(1);
    renderScores();
    updateSubmit();
  }

  function moveCursor(steps) {
    // Row by row down one video's column, then on to the next video's first dimension.
    const rows = config.dimensions.length;
    const cells = rows * state.videos.length;
    const flat = state.cursor.video * rows + state.cursor.dimension;
    const next = Math.min(Math.max(flat + steps, 0), cells - 1);
    state.cursor = { video: Math.floor(next / rows), dimension: next % rows };
  }

  function moveVideo(steps) {
    const last = state.videos.length - 1;
    state.cursor.video = Math.min(Math.max(state.cursor.video + steps, 0), last);
    renderScores();
  }

  function selectDimension(index) {
    state.cursor.dimension = index;
    renderScores();
  }

  function renderScores() {
    if (!dom.scoreGrid) return;
    dom.scoreGrid.querySelectorAll("tbody tr").forEach((row, dimensionIndex) => {
      const key = config.dimensions[dimensionIndex].key;
      row.querySelectorAll(".score-cell").forEach((cell, videoIndex) => {
        const chosen = state.scores[videoIndex] ? state.scores[videoIndex][key] : undefined;
        const isCursor = state.cursor.video === videoIndex && state.cursor.dimension === dimensionIndex;
        cell.classList.toggle("cursor", isCursor);
        cell.classList.toggle("scored", chosen !== undefined);
        cell.querySelectorAll(".score").forEach((button) => {
          const selected = Number(button.dataset.score) === chosen;
          button.classList.toggle("selected", selected);
          button.setAttribute("aria-pressed", selected ? "true" : "false");
        });
      });
    });
    renderLevelHelp();
  }

  function renderLevelHelp() {
    if (!dom.levelHelp) return;
    const dimension = config.dimensions[state.cursor.dimension];
    const chosen = (state.scores[state.cursor.video] || {})[dimension.key];
    dom.levelHelp.replaceChildren();
    const title = document.createElement("div");
    title.className = "level-title";
    title.textContent = `${videoLabel(state.cursor.video)} · ${dimension.title}`;
    dom.levelHelp.appendChild(title);
    const list = document.createElement("ol");
    list.className = "levels";
    for (let score = 5; score >= 1; score -= 1) {
      const item = document.createElement("li");
      item.dataset.score = String(score);
      item.classList.toggle("selected", chosen === score);
      const number = document.createElement("kbd");
      number.textContent = String(score);
      const other = document.createElement("span");
      other.className = "other";
      other.lang = config.rubric_other_lang;
      other.textContent = config.rubric_levels_other[dimension.key][String(score)];
      item.append(number, " " + config.rubric_levels[dimension.key][String(score)], other);
      list.appendChild(item);
    }
    dom.levelHelp.appendChild(list);
  }

  function missingScores() {
    let missing = 0;
    state.scores.forEach((scores) => {
      config.dimensions.forEach((dimension) => {
        if (scores[dimension.key] === undefined) missing += 1;
      });
    });
    return missing;
  }

  function restoreAnswer(answer) {
    if (config.paired) {
      const choice = typeof answer === "string" ? answer : answer.choice;
      if (choice) choose(choice);
      return;
    }
    const rows = Array.isArray(answer) ? answer : answer.scores || [];
    rows.forEach((row) => {
      const index = state.videos.findIndex((video) => video.position === row.position);
      if (index < 0) return;
      config.dimensions.forEach((dimension) => {
        if (row[dimension.key]) state.scores[index][dimension.key] = Number(row[dimension.key]);
      });
    });
    renderScores();
  }

  // ---------------------------------------------------------------- submitting

  function whatIsMissing() {
    if (!state.assignment) return "";
    if (config.paired && !state.choice) return T.choose_answer;
    if (!config.paired) {
      const missing = missingScores();
      if (missing) return format(T.scores_missing, { missing: missing });
    }
    if (state.assignment.require_full_playback && !state.assignment.is_answered) {
      const unwatched = state.videos.map((_, index) => index).filter((index) => !state.playedThrough.has(index));
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
    if (config.paired) return { choice: state.choice };
    return {
      scores: state.videos.map((video, index) => {
        const row = { position: video.position };
        config.dimensions.forEach((dimension) => {
          row[dimension.key] = state.scores[index][dimension.key];
        });
        return row;
      }),
    };
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
      await state.playbackSent; // the server checks full playback against these events
      const result = await api("POST", apiUrl("answer", assignment.token), answerBody());
      if (result.revised) showMessage(T.revised, "info");
      else clearMessage();
      state.busy = false;
      if (result.next) showNext(result.next);
      else await loadNext(); // the answer stood but no next item came back (e.g. the task was paused)
      loadRecent();
    } catch (error) {
      showMessage(error.message);
    } finally {
      state.busy = false;
      updateSubmit();
    }
  }

  // ---------------------------------------------------------------- recent answers (to revise)

  function answerSummary(entry) {
    const answer = entry.answer || {};
    const choice = typeof answer === "string" ? answer : answer.choice || entry.choice;
    if (choice && config.choices[choice]) return config.choices[choice];
    const rows = Array.isArray(answer) ? answer : answer.scores || entry.scores;
    if (rows && rows.length) {
      return rows
        .map((row) => config.dimensions.map((dimension) => row[dimension.key] ?? "–").join("·"))
        .join(" | ");
    }
    return "";
  }

  async function loadRecent() {
    let data;
    try {
      data = await api("GET", config.api.recent);
    } catch (error) {
      return; // the list is a convenience; the work goes on without it
    }
    const entries = Array.isArray(data) ? data : data.answers || data.results || [];
    dom.recent.replaceChildren();
    if (!entries.length) {
      const empty = document.createElement("li");
      empty.className = "muted";
      empty.textContent = T.no_recent;
      dom.recent.appendChild(empty);
      return;
    }
    for (const entry of entries) {
      const assignment = entry.assignment || entry;
      const item = document.createElement("li");
      const text = document.createElement("span");
      text.className = "recent-prompt";
      const prompt = assignment.prompt || entry.prompt || {};
      text.textContent = prompt.text || "";
      if (prompt.language) text.lang = prompt.language;
      const summary = document.createElement("span");
      summary.className = "recent-answer";
      summary.textContent = answerSummary(assignment.answer !== undefined ? assignment : entry);
      const revise = document.createElement("button");
      revise.type = "button";
      revise.className = "link revise";
      revise.textContent = T.revise;
      revise.addEventListener("click", (event) => {
        event.currentTarget.blur();
        revisit(assignment);
      });
      item.append(text, " ", summary, " ", revise);
      dom.recent.appendChild(item);
    }
  }

  function revisit(assignment) {
    if (!assignment.videos) return;
    clearMessage();
    showAssignment(Object.assign({}, assignment, { is_answered: true }));
  }

  // ---------------------------------------------------------------- problem reports and the rubric

  function openProblemDialog() {
    if (!state.assignment) return;
    if (state.player) state.player.pause();
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
      const next = await api("POST", apiUrl("problem", assignment.token), body);
      showMessage(T.problem_sent, "info");
      if (next) showNext(next);
      else await loadNext(); // the write stood but no next item came back: ask, to show why
    } catch (error) {
      showMessage(error.message);
    }
  }

  function rubricOpen() {
    return !dom.rubricOverlay.hidden;
  }

  function toggleRubric(show) {
    dom.rubricOverlay.hidden = !(show === undefined ? dom.rubricOverlay.hidden : show);
  }

  // ---------------------------------------------------------------- the keyboard

  const KEY_FROM_CODE = { Comma: ",", Period: ".", BracketLeft: "[", BracketRight: "]", Slash: "?" };

  function keyOf(event) {
    // With an input method active (e.g. Chinese), `key` says "Process": fall back on the physical key.
    if (event.key !== "Process" && event.key !== "Unidentified") return event.key.length === 1 ? event.key.toLowerCase() : event.key;
    if (/^Key[A-Z]$/.test(event.code)) return event.code.slice(3).toLowerCase();
    if (/^Digit\d$/.test(event.code)) return event.code.slice(5);
    return KEY_FROM_CODE[event.code] || event.code;
  }

  function changeSpeed(steps) {
    const current = SPEEDS.indexOf(Number(dom.speed.value));
    const next = SPEEDS[Math.min(Math.max((current < 0 ? 3 : current) + steps, 0), SPEEDS.length - 1)];
    dom.speed.value = String(next);
    if (state.player) state.player.setRate(next);
  }

  function onKeyDown(event) {
    if (event.ctrlKey || event.metaKey || event.altKey || event.isComposing) return;
    if (dom.problemDialog.open) return; // the dialog's own fields and Esc
    const target = event.target;
    if (target instanceof HTMLTextAreaElement || (target instanceof HTMLInputElement && target.type === "text")) return;
    const key = keyOf(event);

    if (rubricOpen()) {
      if (key === "Escape" || key === "h" || key === "?") {
        toggleRubric(false);
        event.preventDefault();
      }
      return;
    }
    const handled = handleKey(key, event.shiftKey);
    if (handled) {
      event.preventDefault();
      event.stopPropagation();
    }
  }

  function handleKey(key, shift) {
    const player = state.player;
    switch (key) {
      case "Escape":
        return closeEnlarged();
      case "h":
      case "?":
        toggleRubric(true);
        return true;
      case "p":
        openProblemDialog();
        return true;
      case " ":
        if (player) player.toggle();
        return true;
      case ",":
        if (player) player.step(-1);
        return true;
      case ".":
        if (player) player.step(1);
        return true;
      case "r":
        if (player) player.restart();
        return true;
      case "l":
        dom.loop.checked = !dom.loop.checked;
        return true;
      case "[":
        changeSpeed(-1);
        return true;
      case "]":
        changeSpeed(1);
        return true;
      case "Enter":
        submit();
        return true;
      default:
        break;
    }
    if (!state.assignment) return false;
    return config.paired ? handlePairedKey(key) : handleRubricKey(key, shift);
  }

  function handlePairedKey(key) {
    const choices = { 1: "left", ArrowLeft: "left", 2: "tie", ArrowDown: "tie", 3: "right", ArrowRight: "right" };
    if (!(key in choices)) return false;
    choose(choices[key]);
    return true;
  }

  function handleRubricKey(key, shift) {
    const dimensionIndex = config.dimensions.findIndex((dimension) => dimension.shortcut === key);
    if (dimensionIndex >= 0) {
      selectDimension(dimensionIndex);
      return true;
    }
    if (/^[1-5]$/.test(key)) {
      setScore(Number(key), true);
      return true;
    }
    switch (key) {
      case "ArrowUp":
        moveCursor(-1);
        renderScores();
        return true;
      case "ArrowDown":
        moveCursor(1);
        renderScores();
        return true;
      case "ArrowLeft":
        moveVideo(-1);
        return true;
      case "ArrowRight":
        moveVideo(1);
        return true;
      case "Tab":
        moveVideo(shift ? -1 : 1);
        return true;
      default:
        return false;
    }
  }

  // ---------------------------------------------------------------- wiring

  function blurAfterClick(element, handler) {
    element.addEventListener("click", (event) => {
      event.currentTarget.blur(); // keys go on meaning what the legend says, not "press this button"
      handler(event);
    });
  }

  document.addEventListener("keydown", onKeyDown, true);
  // A focused button would also be "clicked" by Space on release.
  document.addEventListener(
    "keyup",
    (event) => {
      if (event.key === " " && event.target instanceof HTMLButtonElement && !dom.problemDialog.open) event.preventDefault();
    },
    true
  );

  blurAfterClick(dom.play, () => state.player && state.player.toggle());
  blurAfterClick(dom.frameBack, () => state.player && state.player.step(-1));
  blurAfterClick(dom.frameForward, () => state.player && state.player.step(1));
  blurAfterClick(dom.replay, () => state.player && state.player.restart());
  blurAfterClick(dom.submit, () => submit());
  blurAfterClick(dom.rubricButton, () => toggleRubric(true));
  blurAfterClick(dom.problemButton, () => openProblemDialog());
  document.querySelectorAll(".choice").forEach((button) => {
    blurAfterClick(button, () => choose(button.dataset.choice));
  });
  dom.seek.addEventListener("input", () => {
    if (state.player) state.player.seek((Number(dom.seek.value) / 1000) * state.player.duration);
  });
  dom.seek.addEventListener("change", () => dom.seek.blur());
  dom.speed.addEventListener("change", () => {
    if (state.player) state.player.setRate(Number(dom.speed.value));
    dom.speed.blur();
  });
  dom.loop.addEventListener("change", () => dom.loop.blur());
  dom.rubricOverlay.addEventListener("click", (event) => {
    if (event.target === dom.rubricOverlay || event.target.dataset.close === "rubric") toggleRubric(false);
  });
  dom.problemForm.addEventListener("submit", (event) => {
    event.preventDefault();
    sendProblem();
  });
  dom.problemDialog.querySelector("[data-close=problem]").addEventListener("click", () => dom.problemDialog.close());

  async function loadNext() {
    try {
      showNext(await api("GET", config.api.next));
    } catch (error) {
      showMessage(error.message);
    }
  }

  async function start() {
    await loadNext();
    state.loaded = true;
    document.documentElement.dataset.annotateReady = "true";
    loadRecent();
  }

  start();
})();
