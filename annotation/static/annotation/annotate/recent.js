/* The annotator's last answers beside the work, each with a button to revise it. */

export class RecentAnswers {
  /* `answers` is the page config: `choices` (label by value) and `dimensions`. `onRevise` gets the
   * assignment to show again. */
  constructor(list, api, answers, strings, onRevise) {
    this.list = list;
    this.api = api;
    this.choices = answers.choices;
    this.dimensions = answers.dimensions;
    this.strings = strings;
    this.onRevise = onRevise;
  }

  summary(entry) {
    const answer = entry.answer || {};
    const choice = typeof answer === "string" ? answer : answer.choice || entry.choice;
    if (choice && this.choices[choice]) return this.choices[choice];
    const rows = Array.isArray(answer) ? answer : answer.scores || entry.scores;
    if (rows && rows.length) {
      return rows.map((row) => this.dimensions.map((dimension) => row[dimension.key] ?? "–").join("·")).join(" | ");
    }
    return "";
  }

  async load() {
    let data;
    try {
      data = await this.api.recent();
    } catch (error) {
      return; // the list is a convenience; the work goes on without it
    }
    const entries = Array.isArray(data) ? data : data.answers || data.results || [];
    this.list.replaceChildren();
    if (!entries.length) {
      const empty = document.createElement("li");
      empty.className = "muted";
      empty.textContent = this.strings.no_recent;
      this.list.appendChild(empty);
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
      summary.textContent = this.summary(assignment.answer !== undefined ? assignment : entry);
      const revise = document.createElement("button");
      revise.type = "button";
      revise.className = "link revise";
      revise.textContent = this.strings.revise;
      revise.addEventListener("click", (event) => {
        event.currentTarget.blur();
        this.onRevise(assignment);
      });
      item.append(text, " ", summary, " ", revise);
      this.list.appendChild(item);
    }
  }
}
