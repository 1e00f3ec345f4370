// The page side of the browser test harness (harness.rs): progress shown on the page, and
// the result sent back to the test. A classic script: it defines `Harness`.
(function (global) {
  'use strict';

  /** Appends a line to the page's <pre id="log"> (what the screenshot shows). */
  function log(line) {
    const pre = document.getElementById('log');
    if (pre) pre.textContent += line + '\n';
  }

  /**
   * Sends the result (any JSON value) to the test, then a copy of the page without its
   * scripts, which the harness renders as the screenshot. Text bodies: no CORS preflight.
   */
  async function report(result) {
    const verdict = document.getElementById('verdict');
    if (verdict) {
      verdict.textContent = result && result.ok ? 'PASSED' : 'FAILED';
      verdict.className = result && result.ok ? 'ok' : 'bad';
    }
    const page = document.documentElement.cloneNode(true);
    page.querySelectorAll('script').forEach((s) => s.remove());
    await fetch('/snapshot', { method: 'POST', body: '<!doctype html>\n' + page.outerHTML });
    await fetch('/result', { method: 'POST', body: JSON.stringify(result) });
  }

  global.Harness = { log, report };
})(typeof window !== 'undefined' ? window : globalThis);
