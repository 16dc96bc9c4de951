// Progressive enhancement of the citation page: without scripts the text is selectable and
// copyable. A file of its own, not inline, so that the pages' CSP allows no inline script.
(function () {
  "use strict";
  var button = document.getElementById("copy-citation");
  if (!button || !navigator.clipboard) { return; }
  var status = document.getElementById("copy-status");
  button.hidden = false;
  button.addEventListener("click", function () {
    var text = document.getElementById(button.dataset.copyTarget).textContent;
    navigator.clipboard.writeText(text).then(
      function () { status.textContent = status.dataset.copied; },
      function () { status.textContent = status.dataset.copyFailed; }
    );
  });
})();
