"""Portal on a slow phone (issue 16): bytes and time to first render over throttled 3G.

Starts `kriselogg up` as a subprocess (what users run), writes an incident of 200 events over
the API (a report, its alerts, then measures and notes as the leader), and opens three pages in
Debian's headless Chromium as the leader Lise Nord, with the network and CPU throttled through
the DevTools protocol:

* the start page `/`, the report form `/meld`, and the 200-event incident page;
* cold (a new browser context: empty cache) and warm (the same page again in that context);
* the browser offering gzip (as every browser does) and offering only `identity`, which is the
  portal as it was before compression.

For each it prints the bytes over the wire (Resource Timing `transferSize` of the document and
everything it loaded by the load event: headers included, 0 for a cache hit), the number of
requests that went to the network, first contentful paint, DOMContentLoaded and load, each the
median of `--rounds` visits, in ms from the start of the navigation.

The throttling is Chromium's (Network.emulateNetworkConditions): it adds the latency to each
request and paces each response at the given throughput; it does not model TCP slow start.

Run from the repository root:  .venv/bin/python bench/portal_3g.py [--rounds 3]
To measure another checkout (the commit before, say, unpacked with `git archive`), give its
folder as `--source DIR`: its `services` and `shared` are run instead of this tree's.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from common import bearer, leader_token, markdown_table, ready_process
from playwright.async_api import Browser, Page, async_playwright

from shared.auth import issue_token
from shared.infra import free_port

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic"]
EVENTS = 200


@dataclass(frozen=True)
class Profile:
    """A throttled network, as DevTools' Network.emulateNetworkConditions takes it."""

    name: str
    latency_ms: float
    down_kbit: float
    up_kbit: float
    cpu_slowdown: float

    def conditions(self) -> dict[str, Any]:
        return {
            "offline": False,
            "latency": self.latency_ms,
            "downloadThroughput": self.down_kbit * 1000 / 8,  # bytes per second
            "uploadThroughput": self.up_kbit * 1000 / 8,
        }

    def describe(self) -> str:
        return (
            f"{self.name}: {self.latency_ms:.0f} ms latency, {self.down_kbit:.0f} kbit/s down, "
            f"{self.up_kbit:.0f} kbit/s up, CPU {self.cpu_slowdown:g}x slower"
        )


# WebPageTest's "3G Slow" link, and the CPU slowdown Lighthouse uses for a mid-range phone.
SLOW_3G = Profile("slow 3G", latency_ms=400, down_kbit=400, up_kbit=400, cpu_slowdown=4)

# After load, the first contentful paint (already buffered by then), the navigation's timings
# and what every request transferred.
MEASURE_JS = """
async () => {
  const fcp = await new Promise((resolve) => {
    new PerformanceObserver((list, observer) => {
      for (const entry of list.getEntries()) {
        if (entry.name === "first-contentful-paint") {
          observer.disconnect();
          resolve(entry.startTime);
        }
      }
    }).observe({ type: "paint", buffered: true });
  });
  const nav = performance.getEntriesByType("navigation")[0];
  const all = [nav, ...performance.getEntriesByType("resource")];
  return {
    fcp,
    dcl: nav.domContentLoadedEventEnd,
    load: nav.loadEventEnd,
    entries: all.map((e) => ({
      name: e.name,
      transfer: e.transferSize,
      encoded: e.encodedBodySize,
      decoded: e.decodedBodySize,
    })),
  };
}
"""


@dataclass
class Visit:
    bytes: int
    decoded: int
    requests: int
    fcp_ms: float
    dcl_ms: float
    load_ms: float
    compressed: bool  # whether anything came smaller than it unpacked to


@dataclass
class Cell:
    """The visits of one page, one encoding, cold or warm."""

    page: str
    encoding: str
    cache: str
    visits: list[Visit] = field(default_factory=list)

    def row(self) -> list[str]:
        def median(values: list[float]) -> float:
            return statistics.median(values)

        v = self.visits
        return [
            self.page,
            self.encoding,
            self.cache,
            f"{median([x.bytes for x in v]) / 1024:.1f}",
            f"{median([x.decoded for x in v]) / 1024:.1f}",
            f"{median([x.requests for x in v]):.0f}",
            f"{median([x.fcp_ms for x in v]):.0f}",
            f"{median([x.dcl_ms for x in v]):.0f}",
            f"{median([x.load_ms for x in v]):.0f}",
        ]


HEADER = [
    "page",
    "encoding",
    "cache",
    "KiB over the wire",
    "KiB unpacked",
    "requests",
    "FCP ms",
    "DCL ms",
    "load ms",
]


@contextmanager
def kriselogg_up(data: Path, key: str, source: Path | None) -> Iterator[str]:
    port = free_port()
    env = {**os.environ, "KRISELOGG_SECRET_KEY": key, "KRISELOGG_LOG_LEVEL": "WARNING"}
    env.pop("KRISELOGG_NATS_URL", None)  # the embedded nats-server of `up`
    if source is not None:
        # Ahead of the editable install, whose finder Python asks only after sys.path.
        env["PYTHONPATH"] = str(source.resolve())
    with ready_process(["up", "--data", str(data), "--port", str(port)], env, "kriselogg up"):
        yield f"http://127.0.0.1:{port}"


async def write_incident(base: str, key: str) -> str:
    """A violence report by the employee, then measures and notes by the leader to 200 events."""
    employee = issue_token(
        key, org_id="demo", person_id="p-ansatt", name="Ali Ansatt", roles=["reporter"]
    )
    report = {
        "category": "vold-fysisk",
        "title": "Slått og truet av bruker under hjemmebesøk",
        "place": "Storgata 1, Tromsø",
        "unit_id": "u-nord",
        "affected": ["p-ansatt"],
        "severity": "high",
        "occurred_at": datetime.now(UTC).isoformat(),
        "facts": {"injury": True},
    }
    started = time.perf_counter()
    async with httpx.AsyncClient(base_url=base, timeout=60) as client:
        answer = await client.post("/api/v1/incidents", json=report, headers=bearer(employee))
        assert answer.status_code == 201, answer.text
        incident: str = answer.json()["id"]
        leader = bearer(leader_token(key))
        timeline = f"/api/v1/incidents/{incident}/timeline"
        written = 0
        # Bounded: each round writes what is missing; alerts the bus adds meanwhile count too.
        for _ in range(5):
            length = len((await client.get(timeline, headers=leader)).json()["events"])
            if length >= EVENTS:
                break
            for i in range(written, written + EVENTS - length):
                if i % 4 == 3:
                    path, body = "notes", {"text": f"Notat {i}: ringte pårørende og fastlegen."}
                else:
                    body = {
                        "title": f"Tiltak {i}: fulgte opp den ansatte",
                        "status": "done",
                        "note": "Utført etter rutinen; den ansatte er informert.",
                    }
                    path = "measures"
                response = await client.post(
                    f"/api/v1/incidents/{incident}/{path}", json=body, headers=leader
                )
                assert response.status_code == 201, response.text
                written += 1
        length = len((await client.get(timeline, headers=leader)).json()["events"])
    took = time.perf_counter() - started
    print(f"incident written over the API: {length} events in {took:.1f} s")
    return incident


async def visit(page: Page, url: str) -> Visit:
    await page.goto(url, wait_until="load")
    found = await asyncio.wait_for(page.evaluate(MEASURE_JS), 60)
    entries = found["entries"]
    fetched = [e for e in entries if e["transfer"] > 0]
    return Visit(
        bytes=sum(int(e["transfer"]) for e in entries),
        decoded=sum(int(e["decoded"]) for e in entries),
        requests=len(fetched),
        fcp_ms=float(found["fcp"]),
        dcl_ms=float(found["dcl"]),
        load_ms=float(found["load"]),
        compressed=any(0 < e["encoded"] < e["decoded"] for e in entries),
    )


async def measure(
    browser: Browser, base: str, url: str, encoding: str, profile: Profile
) -> tuple[Visit, Visit]:
    """One cold and one warm visit of `url` in a fresh context, throttled as `profile` says."""
    context = await browser.new_context(
        viewport={"width": 360, "height": 780}, locale="nb-NO", timezone_id="Europe/Oslo"
    )
    try:
        page = await context.new_page()
        # Logged in as a person does (the demo login), at full speed; then the cache is emptied.
        await page.goto(f"{base}/logg-inn")
        await page.get_by_test_id("dev-login-p-ln").click()
        await page.wait_for_url(f"{base}/")
        await page.goto("about:blank")
        cdp = await context.new_cdp_session(page)
        await cdp.send("Network.enable")
        await cdp.send("Network.clearBrowserCache")
        await cdp.send("Network.emulateNetworkConditions", profile.conditions())
        await cdp.send("Emulation.setCPUThrottlingRate", {"rate": profile.cpu_slowdown})
        if encoding == "identity":
            await cdp.send(
                "Network.setExtraHTTPHeaders", {"headers": {"Accept-Encoding": "identity"}}
            )
        cold = await visit(page, base + url)
        # The identity rows are only worth printing when the browser really asked for that.
        assert encoding == "gzip" or not cold.compressed, f"{url}: identity not honoured"
        # Elsewhere first: a navigation to the page already shown would be taken as a reload.
        await page.goto("about:blank")
        warm = await visit(page, base + url)
        return cold, warm
    finally:
        await context.close()


async def main(rounds: int, source: Path | None) -> None:
    key = secrets.token_urlsafe(32)
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, {rounds} rounds")
    print(f"profile {SLOW_3G.describe()}")
    if source is not None:
        print(f"source: {source}")
    cells: dict[tuple[str, str, str], Cell] = {}
    with (
        tempfile.TemporaryDirectory() as tmp,
        kriselogg_up(Path(tmp) / "data", key, source) as base,
    ):
        incident = await write_incident(base, key)
        pages = [
            ("start page /", "/"),
            ("report form /meld", "/meld"),
            (f"incident, {EVENTS} events", f"/hendelser/{incident}"),
        ]
        async with async_playwright() as playwright:
            browser = await playwright.chromium.launch(
                executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
            )
            try:
                for _ in range(rounds):
                    for name, url in pages:
                        for encoding in ("gzip", "identity"):
                            cold, warm = await measure(browser, base, url, encoding, SLOW_3G)
                            for cache, one in (("cold", cold), ("warm", warm)):
                                cell = cells.setdefault(
                                    (name, encoding, cache), Cell(name, encoding, cache)
                                )
                                cell.visits.append(one)
            finally:
                await browser.close()
    print()
    print(markdown_table(HEADER, [cell.row() for cell in cells.values()], left=3))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3, help="visits of each page (median)")
    parser.add_argument(
        "--source", type=Path, default=None, help="run the kriselogg source in DIR instead"
    )
    args = parser.parse_args()
    if not CHROMIUM.exists():
        raise SystemExit(f"{CHROMIUM} is missing (scripts/install-system-packages installs it)")
    asyncio.run(main(args.rounds, args.source))
