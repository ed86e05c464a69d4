/* The keyboard: every key of the page's legend, for pairwise choices and for rubric scores alike. Keys
 * are read by the character they type, or by the physical key while an input method is composing. */

const KEY_FROM_CODE = { Comma: ",", Period: ".", BracketLeft: "[", BracketRight: "]", Slash: "?" };
const PAIRED_KEYS = { 1: "left", ArrowLeft: "left", 2: "tie", ArrowDown: "tie", 3: "right", ArrowRight: "right" };

export function keyOf(event) {
  // With an input method active (e.g. Chinese), `key` says "Process": fall back on the physical key.
  if (event.key !== "Process" && event.key !== "Unidentified") return event.key.length === 1 ? event.key.toLowerCase() : event.key;
  if (/^Key[A-Z]$/.test(event.code)) return event.code.slice(3).toLowerCase();
  if (/^Digit\d$/.test(event.code)) return event.code.slice(5);
  return KEY_FROM_CODE[event.code] || event.code;
}

/* `page` is what the keys act on: `controls` (the control bar), `stage`, `rubricOverlay`,
 * `problemDialog` (the <dialog>), `openProblemDialog()`, `submit()`, `hasAssignment()`, and either
 * `choose(value)` (a pairwise page) or `grid` (a rubric page's ScoreGrid). */
export function listenToKeys(page) {
  function handleKey(key, shift) {
    switch (key) {
      case "Escape":
        return page.stage.closeEnlarged();
      case "h":
      case "?":
        page.rubricOverlay.toggle(true);
        return true;
      case "p":
        page.openProblemDialog();
        return true;
      case " ":
        page.controls.toggle();
        return true;
      case ",":
        page.controls.step(-1);
        return true;
      case ".":
        page.controls.step(1);
        return true;
      case "r":
        page.controls.restart();
        return true;
      case "l":
        page.controls.toggleLoop();
        return true;
      case "[":
        page.controls.changeSpeed(-1);
        return true;
      case "]":
        page.controls.changeSpeed(1);
        return true;
      case "Enter":
        page.submit();
        return true;
      default:
        break;
    }
    if (!page.hasAssignment()) return false;
    return page.grid ? handleRubricKey(key, shift) : handlePairedKey(key);
  }

  function handlePairedKey(key) {
    if (!(key in PAIRED_KEYS)) return false;
    page.choose(PAIRED_KEYS[key]);
    return true;
  }

  function handleRubricKey(key, shift) {
    const grid = page.grid;
    const dimensionIndex = grid.dimensionOfKey(key);
    if (dimensionIndex >= 0) {
      grid.selectDimension(dimensionIndex);
      return true;
    }
    if (/^[1-5]$/.test(key)) {
      grid.setScore(Number(key), true);
      return true;
    }
    switch (key) {
      case "ArrowUp":
        grid.moveCursor(-1);
        return true;
      case "ArrowDown":
        grid.moveCursor(1);
        return true;
      case "ArrowLeft":
        grid.moveVideo(-1);
        return true;
      case "ArrowRight":
        grid.moveVideo(1);
        return true;
      case "Tab":
        grid.moveVideo(shift ? -1 : 1);
        return true;
      default:
        return false;
    }
  }

  function onKeyDown(event) {
    if (event.ctrlKey || event.metaKey || event.altKey || event.isComposing) return;
    if (page.problemDialog.open) return; // the dialog's own fields and Esc
    const target = event.target;
    if (target instanceof HTMLTextAreaElement || (target instanceof HTMLInputElement && target.type === "text")) return;
    const key = keyOf(event);

    if (page.rubricOverlay.isOpen()) {
      if (key === "Escape" || key === "h" || key === "?") {
        page.rubricOverlay.toggle(false);
        event.preventDefault();
      }
      return;
    }
    if (handleKey(key, event.shiftKey)) {
      event.preventDefault();
      event.stopPropagation();
    }
  }

  document.addEventListener("keydown", onKeyDown, true);
  // A focused button would also be "clicked" by Space on release.
  document.addEventListener(
    "keyup",
    (event) => {
      if (event.key === " " && event.target instanceof HTMLButtonElement && !page.problemDialog.open) event.preventDefault();
    },
    true
  );
}
