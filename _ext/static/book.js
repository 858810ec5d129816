// The book's own fixes to markup that the theme and the bibliography extension produce
// (loaded on every page: _config.yml, html_js_files). Each fixes something the site tests'
// accessibility audit (axe-core) reports.

// label-content-name-mismatch: a control's accessible name must contain its visible text.
// The search button is labelled "Search" but shows "Search… Ctrl+K": without the aria-label
// its name is the text it shows. The colour-mode button is labelled "Color mode" while its
// icon (drawn later by Font Awesome, as an SVG with a <title>: "Light", "Dark") counts as
// visible text: the icon is decoration, so it is hidden from assistive technology. The
// same for the collapsed cells' summaries ("Show code cell source", labelled otherwise).
const LABELLED = "button[aria-label], a[aria-label], summary[aria-label]";

function fixLabels(root) {
  root.querySelectorAll(LABELLED).forEach((el) => {
    el.querySelectorAll("svg").forEach((svg) => {
      svg.setAttribute("aria-hidden", "true");
      svg.removeAttribute("aria-labelledby");
      svg.removeAttribute("role");
      svg.querySelectorAll("title").forEach((title) => title.remove());
    });
    const text = (el.innerText || "").replace(/\s+/g, " ").trim().toLowerCase();
    const label = el.getAttribute("aria-label").toLowerCase();
    if (text && !label.includes(text)) el.removeAttribute("aria-label");
  });
}

document.addEventListener("DOMContentLoaded", () => {
  fixLabels(document);
  // Font Awesome replaces icons after this point: fix what it adds.
  new MutationObserver((records) => {
    for (const record of records) {
      const button = record.target.closest && record.target.closest(LABELLED);
      if (button) fixLabels(button.parentElement || document);
    }
  }).observe(document.body, { childList: true, subtree: true });
  // aria-required-children: the references' container says role="list" but holds
  // bibliography entries (role="doc-biblioentry"), not list items.
  document.querySelectorAll('.citation-list[role="list"]').forEach((el) => {
    el.removeAttribute("role");
  });
});
