/* The videos of one assignment and the one control bar that drives them all: synchronised play, pause,
 * seek, loop, speed and frame steps, drift correction, enlarging a video, preloading the next item's
 * videos, and the playback events (play, played through) that the server checks before an answer. */
import { blurAfterClick } from "./ui.js";

const DEFAULT_FPS = 24;
const DRIFT_TOLERANCE_S = 0.05; // a follower further than this from the leader is corrected
const DRIFT_SETTLED_S = 0.02; // ...until it is back within this
const DRIFT_JUMP_S = 0.25; // beyond this it jumps to the leader instead of catching up gradually
const SEEK_TIMEOUT_MS = 4000;
const PRELOAD_LIMIT = 8;
const MAX_ENDED_REPORTS = 5;
export const SPEEDS = [0.25, 0.5, 0.75, 1, 1.25, 1.5, 2];

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

/* The frame rate to step by: the fastest of the videos' own rates, else the campaign's (`fallback`). */
export function framesPerSecond(videos, fallback) {
  const rates = videos.map((video) => {
    if (video.fps) return Number(video.fps);
    if (video.frame_count && video.duration_s) return Number(video.frame_count) / Number(video.duration_s);
    return Number(fallback) || DEFAULT_FPS;
  });
  return Math.max(...rates.filter((rate) => Number.isFinite(rate) && rate > 0), 1);
}

/* One control bar for every video. The longest video leads; the others follow its clock, catching up
 * by a slightly changed rate when they drift, or jumping when far off. A seek moves every video, waits
 * until each has landed, then resumes them together. Looping is done here rather than with the `loop`
 * attribute, so that each video reports `ended` when it plays through. `bar` holds the control bar's
 * elements (play, seek, time, loop, speed). */
export class SyncPlayer {
  constructor(videos, fps, bar, strings, hooks) {
    this.videos = videos;
    this.fps = fps;
    this.bar = bar;
    this.strings = strings;
    this.hooks = hooks;
    this.playing = false;
    this.rate = Number(bar.speed.value) || 1;
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
    if (this.playing && this.bar.loop.checked) {
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
    const bar = this.bar;
    const duration = this.duration;
    const time = this.currentTime;
    bar.play.textContent = this.playing ? this.strings.pause : this.strings.play;
    bar.play.setAttribute("aria-pressed", this.playing ? "true" : "false");
    if (!bar.seek.matches(":active")) {
      bar.seek.value = duration ? String(Math.round((1000 * time) / duration)) : "0";
    }
    const frame = Math.min(Math.floor(time * this.fps + 1e-6) + 1, Math.max(1, Math.round(duration * this.fps)));
    bar.time.textContent = `${time.toFixed(2)} / ${duration.toFixed(2)} s · #${frame}`;
  }
}

/* The control bar's buttons, slider and selects, wired to whichever player is on screen (if any). */
export class PlaybackControls {
  constructor(bar, strings) {
    this.bar = bar;
    this.strings = strings;
    this.player = null;
    blurAfterClick(bar.play, () => this.toggle());
    blurAfterClick(bar.frameBack, () => this.step(-1));
    blurAfterClick(bar.frameForward, () => this.step(1));
    blurAfterClick(bar.replay, () => this.restart());
    bar.seek.addEventListener("input", () => {
      if (this.player) this.player.seek((Number(bar.seek.value) / 1000) * this.player.duration);
    });
    bar.seek.addEventListener("change", () => bar.seek.blur());
    bar.speed.addEventListener("change", () => {
      if (this.player) this.player.setRate(Number(bar.speed.value));
      bar.speed.blur();
    });
    bar.loop.addEventListener("change", () => bar.loop.blur());
  }

  /* Drive these video elements from now on; the hooks hear of play, ended and error per video. */
  drive(videos, fps, hooks) {
    this.release();
    this.player = new SyncPlayer(videos, fps, this.bar, this.strings, hooks);
    return this.player;
  }

  release() {
    if (this.player) this.player.destroy();
    this.player = null;
  }

  toggle() {
    if (this.player) this.player.toggle();
  }

  pause() {
    if (this.player) this.player.pause();
  }

  step(frames) {
    if (this.player) this.player.step(frames);
  }

  restart() {
    if (this.player) this.player.restart();
  }

  toggleLoop() {
    this.bar.loop.checked = !this.bar.loop.checked;
  }

  changeSpeed(steps) {
    const current = SPEEDS.indexOf(Number(this.bar.speed.value));
    const next = SPEEDS[Math.min(Math.max((current < 0 ? 3 : current) + steps, 0), SPEEDS.length - 1)];
    this.bar.speed.value = String(next);
    if (this.player) this.player.setRate(next);
  }
}

/* Where the videos are shown: one figure per video in display order, one of them enlarged at a time,
 * and a hidden shelf of the next item's videos, already loading. */
export class Stage {
  constructor(stage, shelf, strings) {
    this.stage = stage;
    this.shelf = shelf;
    this.strings = strings;
  }

  /* Figures for these videos (in display order); returns their video elements. */
  show(videos, labelOf) {
    this.stage.replaceChildren();
    this.stage.className = `stage count-${videos.length}`;
    return videos.map((info, index) => {
      const figure = document.createElement("figure");
      figure.className = "frame";
      figure.dataset.position = String(info.position);
      const box = document.createElement("div");
      box.className = "box";
      const video = this.takePreloaded(info.url) || document.createElement("video");
      video.removeAttribute("data-url");
      video.muted = true;
      video.playsInline = true;
      video.preload = "auto";
      video.disablePictureInPicture = true;
      video.title = this.strings.enlarge;
      // A preloaded clip already shows its first frame: its poster would be a download for nothing.
      if (info.poster && video.readyState < HTMLMediaElement.HAVE_CURRENT_DATA) video.poster = info.poster;
      if (video.getAttribute("src") !== info.url) video.src = info.url;
      video.dataset.position = String(info.position);
      box.appendChild(video);
      const caption = document.createElement("figcaption");
      const name = document.createElement("span");
      name.className = "label";
      name.textContent = labelOf(index);
      const done = document.createElement("span");
      done.className = "played-through";
      done.textContent = "✓ " + this.strings.played_through;
      done.hidden = true;
      caption.append(name, done);
      figure.append(box, caption);
      figure.addEventListener("click", () => this.toggleEnlarged(figure));
      this.stage.appendChild(figure);
      return video;
    });
  }

  markPlayedThrough(index) {
    const badge = this.stage.querySelectorAll(".frame")[index]?.querySelector(".played-through");
    if (badge) badge.hidden = false;
  }

  toggleEnlarged(figure) {
    const enlarged = figure.classList.toggle("enlarged");
    this.stage.querySelectorAll(".frame.enlarged").forEach((other) => {
      if (other !== figure) other.classList.remove("enlarged");
    });
    this.stage.classList.toggle("has-enlarged", enlarged);
  }

  /* Back to the side-by-side view; false when nothing was enlarged. */
  closeEnlarged() {
    const open = this.stage.querySelector(".frame.enlarged");
    if (!open) return false;
    open.classList.remove("enlarged");
    this.stage.classList.remove("has-enlarged");
    return true;
  }

  takePreloaded(url) {
    for (const video of this.shelf.querySelectorAll("video")) {
      if (video.dataset.url === url) {
        video.remove();
        return video;
      }
    }
    return null;
  }

  /* Keep loading exactly these (the first few of them); drop what is no longer coming. */
  preload(urls) {
    const wanted = (urls || []).slice(0, PRELOAD_LIMIT);
    for (const video of this.shelf.querySelectorAll("video")) {
      if (!wanted.includes(video.dataset.url)) {
        video.removeAttribute("src");
        video.load();
        video.remove();
      }
    }
    const present = new Set(Array.from(this.shelf.querySelectorAll("video"), (video) => video.dataset.url));
    for (const url of wanted) {
      if (present.has(url)) continue;
      const video = document.createElement("video");
      video.muted = true;
      video.preload = "auto";
      video.dataset.url = url;
      video.src = url;
      this.shelf.appendChild(video);
    }
  }
}

/* The playback events of one assignment's videos (by display index), sent in order. `post` sends one
 * event's body; it is null for a revision, which is not timed or checked. */
export class PlaybackReport {
  constructor(positions, post) {
    this.positions = positions;
    this.post = post;
    this.started = new Set();
    this.playedThrough = new Set();
    this.endedReports = new Map(); // display index -> `ended` events sent
    this.sent = Promise.resolve(); // settles once every event so far has been answered
  }

  send(index, event, mediaTime) {
    if (!this.post) return;
    const body = { position: this.positions[index], event: event, media_time: mediaTime };
    // Chained, so that an answer sent afterwards reaches the server after every playback event.
    this.sent = this.sent
      .then(() => this.post(body))
      .catch((error) => console.warn("playback event not recorded:", error.message));
  }

  played(index, mediaTime) {
    if (this.started.has(index)) return;
    this.started.add(index);
    this.send(index, "play", mediaTime);
  }

  /* True when this is the video's first play-through. */
  ended(index, duration) {
    // Every play-through is reported (a few at most): the server may not count one that arrived too
    // soon after the item came on screen, e.g. at double speed, while a later loop's does count.
    const reported = this.endedReports.get(index) || 0;
    if (reported < MAX_ENDED_REPORTS) {
      this.endedReports.set(index, reported + 1);
      this.send(index, "ended", duration);
    }
    if (this.playedThrough.has(index)) return false;
    this.playedThrough.add(index);
    return true;
  }

  unwatched() {
    return this.positions.map((_, index) => index).filter((index) => !this.playedThrough.has(index));
  }
}
