// Draws the result plots with plotly.js (served from this site's static files). Each
// <div data-plot="KEY"> gets the figure KEY of the page's "result-figures" JSON.
document.addEventListener("DOMContentLoaded", () => {
  const source = document.getElementById("result-figures");
  if (!source || !window.Plotly) return;
  const figures = JSON.parse(source.textContent);
  for (const element of document.querySelectorAll("[data-plot]")) {
    const figure = figures[element.dataset.plot];
    if (figure) {
      window.Plotly.newPlot(element, figure.data, figure.layout, { responsive: true, displaylogo: false });
    }
  }
});
