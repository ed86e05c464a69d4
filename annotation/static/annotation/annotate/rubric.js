/* Rubric scores: a grid of 1–5 per dimension (rows) and video (columns), with a cursor that the keys
 * move, and beneath it the levels of the dimension under the cursor in both languages; and the overlay
 * with the whole rubric. */

export class ScoreGrid {
  /* `rubric` is the page config: `dimensions` ({key, shortcut, title}), `rubric_levels` and
   * `rubric_levels_other` (text by dimension key and score) and `rubric_other_lang`. `onChange` is
   * called after every score. */
  constructor(grid, levelHelp, rubric, strings, onChange) {
    this.grid = grid;
    this.levelHelp = levelHelp;
    this.dimensions = rubric.dimensions;
    this.levels = rubric.rubric_levels;
    this.levelsOther = rubric.rubric_levels_other;
    this.otherLang = rubric.rubric_other_lang;
    this.strings = strings;
    this.onChange = onChange;
    this.videos = [];
    this.labelOf = String;
    this.scores = []; // per displayed video: {dimension key: 1-5}
    this.cursor = { video: 0, dimension: 0 };
  }

  /* An empty grid for these videos (in display order). */
  show(videos, labelOf) {
    this.videos = videos;
    this.labelOf = labelOf;
    this.scores = videos.map(() => ({}));
    this.cursor = { video: 0, dimension: 0 };
    const grid = this.grid;
    grid.replaceChildren();
    const head = grid.createTHead().insertRow();
    const corner = document.createElement("th");
    corner.textContent = this.strings.dimension;
    head.appendChild(corner);
    videos.forEach((_, index) => {
      const th = document.createElement("th");
      th.textContent = labelOf(index);
      head.appendChild(th);
    });
    const body = grid.createTBody();
    this.dimensions.forEach((dimension, dimensionIndex) => {
      const row = body.insertRow();
      row.dataset.dimension = dimension.key;
      const th = document.createElement("th");
      const key = document.createElement("kbd");
      key.textContent = dimension.shortcut;
      th.append(key, " " + dimension.title);
      row.appendChild(th);
      videos.forEach((info, videoIndex) => {
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
          button.title = this.levels[dimension.key][String(score)];
          button.addEventListener("click", (event) => {
            event.currentTarget.blur();
            this.cursor = { video: videoIndex, dimension: dimensionIndex };
            this.setScore(score, false);
          });
          cell.appendChild(button);
        }
        cell.addEventListener("click", () => {
          this.cursor = { video: videoIndex, dimension: dimensionIndex };
          this.render();
        });
      });
    });
    this.render();
  }

  /* Score the cell under the cursor; with `advance`, move on to the next cell. */
  setScore(score, advance) {
    const { video, dimension } = this.cursor;
    this.scores[video][this.dimensions[dimension].key] = score;
    if (advance) this.advance(1);
    this.render();
    this.onChange();
  }

  advance(steps) {
    // Row by row down one video's column, then on to the next video's first dimension.
    const rows = this.dimensions.length;
    const cells = rows * this.videos.length;
    const flat = this.cursor.video * rows + this.cursor.dimension;
    const next = Math.min(Math.max(flat + steps, 0), cells - 1);
    this.cursor = { video: Math.floor(next / rows), dimension: next % rows };
  }

  moveCursor(steps) {
    this.advance(steps);
    this.render();
  }

  moveVideo(steps) {
    const last = this.videos.length - 1;
    this.cursor.video = Math.min(Math.max(this.cursor.video + steps, 0), last);
    this.render();
  }

  selectDimension(index) {
    this.cursor.dimension = index;
    this.render();
  }

  /* The dimension whose shortcut is this key, or -1. */
  dimensionOfKey(key) {
    return this.dimensions.findIndex((dimension) => dimension.shortcut === key);
  }

  /* How many cells have no score yet. */
  missing() {
    let missing = 0;
    this.scores.forEach((scores) => {
      this.dimensions.forEach((dimension) => {
        if (scores[dimension.key] === undefined) missing += 1;
      });
    });
    return missing;
  }

  /* Fill in a stored answer's rows ({position, dimension key: score}). */
  restore(rows) {
    rows.forEach((row) => {
      const index = this.videos.findIndex((video) => video.position === row.position);
      if (index < 0) return;
      this.dimensions.forEach((dimension) => {
        if (row[dimension.key]) this.scores[index][dimension.key] = Number(row[dimension.key]);
      });
    });
    this.render();
  }

  /* The answer's rows, one per video. */
  answer() {
    return this.videos.map((video, index) => {
      const row = { position: video.position };
      this.dimensions.forEach((dimension) => {
        row[dimension.key] = this.scores[index][dimension.key];
      });
      return row;
    });
  }

  render() {
    if (!this.grid) return;
    this.grid.querySelectorAll("tbody tr").forEach((row, dimensionIndex) => {
      const key = this.dimensions[dimensionIndex].key;
      row.querySelectorAll(".score-cell").forEach((cell, videoIndex) => {
        const chosen = this.scores[videoIndex] ? this.scores[videoIndex][key] : undefined;
        const isCursor = this.cursor.video === videoIndex && this.cursor.dimension === dimensionIndex;
        cell.classList.toggle("cursor", isCursor);
        cell.classList.toggle("scored", chosen !== undefined);
        cell.querySelectorAll(".score").forEach((button) => {
          const selected = Number(button.dataset.score) === chosen;
          button.classList.toggle("selected", selected);
          button.setAttribute("aria-pressed", selected ? "true" : "false");
        });
      });
    });
    this.renderLevelHelp();
  }

  renderLevelHelp() {
    if (!this.levelHelp) return;
    const dimension = this.dimensions[this.cursor.dimension];
    const chosen = (this.scores[this.cursor.video] || {})[dimension.key];
    this.levelHelp.replaceChildren();
    const title = document.createElement("div");
    title.className = "level-title";
    title.textContent = `${this.labelOf(this.cursor.video)} · ${dimension.title}`;
    this.levelHelp.appendChild(title);
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
      other.lang = this.otherLang;
      other.textContent = this.levelsOther[dimension.key][String(score)];
      item.append(number, " " + this.levels[dimension.key][String(score)], other);
      list.appendChild(item);
    }
    this.levelHelp.appendChild(list);
  }
}

/* The whole rubric over the page; a click beside it or on its close button closes it. */
export class RubricOverlay {
  constructor(overlay) {
    this.overlay = overlay;
    overlay.addEventListener("click", (event) => {
      if (event.target === overlay || event.target.dataset.close === "rubric") this.toggle(false);
    });
  }

  isOpen() {
    return !this.overlay.hidden;
  }

  toggle(show) {
    this.overlay.hidden = !(show === undefined ? this.overlay.hidden : show);
  }
}
