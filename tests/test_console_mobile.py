"""The console on a phone (375 px wide) in real headless Chromium: no page runs out sideways,
every visible control has an accessible name, and keyboard focus is clearly visible."""

from __future__ import annotations

import pytest
from test_console_browser import CAMPAIGN, CHROMIUM, CHROMIUM_ARGS, Server, server

pytestmark = pytest.mark.browser

__all__ = ["server"]  # the live uvicorn fixture of the main browser test

PAGES = [
    "/console/",
    "/console/contacts/1",
    "/console/segments/new",
    f"/console/campaigns/{CAMPAIGN}/preview",
    "/console/contacts?page=druha",  # the Czech page for a wrong query parameter
    "/console/notices/clenstvi-zamitnuto",
]

# Document wider than the window, and controls (not hidden) without an accessible name.
CHECK = """() => {
  const unnamed = [];
  for (const el of document.querySelectorAll('input, select, textarea')) {
    if (el.type === 'hidden') continue;
    const named = (el.labels && el.labels.length) || el.getAttribute('aria-label')
      || el.getAttribute('aria-labelledby') || el.title;
    if (!named) unnamed.push(el.name || el.outerHTML.slice(0, 80));
  }
  return {width: document.documentElement.scrollWidth, unnamed};
}"""


def test_it_fits_a_phone_and_names_its_controls(server: Server) -> None:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 375, "height": 800}, locale="cs-CZ")
            page.goto(f"{server.url}/console/login")
            page.fill("input[name=email]", server.email)
            page.fill("input[name=password]", server.password)
            page.keyboard.press("Enter")
            page.wait_for_url("**/console/")
            found = {}
            for path in PAGES:
                page.goto(server.url + path)
                assert page.evaluate("document.documentElement.lang") == "cs"
                found[path] = page.evaluate(CHECK)
            assert {p: r for p, r in found.items() if r["width"] > 375 or r["unnamed"]} == {}

            # Keyboard focus: the first link of the navigation gets a visible ring.
            page.goto(f"{server.url}/console/")
            page.keyboard.press("Tab")
            outline = page.evaluate(
                "() => { const s = getComputedStyle(document.activeElement);"
                " return [document.activeElement.tagName, s.outlineStyle, s.outlineWidth]; }"
            )
            assert outline[0] == "A" and outline[1] == "solid" and outline[2] == "3px"
        finally:
            browser.close()


# Tables that scroll sideways inside their box, and definition-list values squeezed so narrow
# that words break into syllables.
CRAMPED = """() => {
  const scrolling = [];
  for (const box of document.querySelectorAll('.table-wrap')) {
    if (box.scrollWidth > box.clientWidth + 1) {
      scrolling.push(box.querySelector('th, td')?.textContent);
    }
  }
  const narrow = [];
  for (const dd of document.querySelectorAll('dl.props dd')) {
    const shown = dd.getClientRects().length;
    if (shown && dd.getBoundingClientRect().width < 200) narrow.push(dd.textContent.slice(0, 40));
  }
  const unlabelled = Array.from(document.querySelectorAll('.table-wrap tbody td'))
    .filter((td) => !td.hasAttribute('data-label')).length;
  return {scrolling, narrow, unlabelled};
}"""


def test_it_shows_tables_and_headers_readably_on_a_phone(server: Server) -> None:
    from playwright.sync_api import sync_playwright

    pages = [
        f"/console/campaigns/{CAMPAIGN}",
        f"/console/campaigns/{CAMPAIGN}/preview",
        "/console/contacts",
        "/console/audit",
        "/console/runs",
        "/console/notices",
        "/console/notices/registrace-potvrzena",
    ]
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 375, "height": 800}, locale="cs-CZ")
            page.goto(f"{server.url}/console/login")
            page.fill("input[name=email]", server.email)
            page.fill("input[name=password]", server.password)
            page.keyboard.press("Enter")
            page.wait_for_url("**/console/")
            found = {}
            for path in pages:
                page.goto(server.url + path)
                found[path] = page.evaluate(CRAMPED)
            bad = {
                p: r for p, r in found.items() if r["scrolling"] or r["narrow"] or r["unlabelled"]
            }
            assert bad == {}
        finally:
            browser.close()
