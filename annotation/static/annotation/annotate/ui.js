/* Small helpers every part of the annotator's page uses. */

/* Fills the `%(name)s` places of a translated string (Django's gettext style). */
export function format(template, values) {
  return template.replace(/%\((\w+)\)s/g, (match, name) => (name in values ? String(values[name]) : match));
}

/* A click handler that gives the focus back first: keys go on meaning what the legend says, not
 * "press this button". */
export function blurAfterClick(element, handler) {
  element.addEventListener("click", (event) => {
    event.currentTarget.blur();
    handler(event);
  });
}
