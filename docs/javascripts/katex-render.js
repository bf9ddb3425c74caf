// Render the math that pymdownx.arithmatex (generic mode) leaves in the pages, with the KaTeX copy shipped
// beside this file (docs/vendor_katex.py): inline spans hold \( ... \), display blocks \[ ... \].
function renderMath() {
  for (const element of document.querySelectorAll(".arithmatex")) {
    const text = element.textContent.trim();
    const display = text.startsWith("\\[");
    const tex = text.slice(2, -2);
    katex.render(tex, element, { displayMode: display, throwOnError: false, strict: false });
  }
}

if (typeof document$ !== "undefined") {
  document$.subscribe(renderMath);  // Material re-runs it after each instant page load
} else {
  document.addEventListener("DOMContentLoaded", renderMath);
}
