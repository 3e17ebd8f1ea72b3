// The terminal page (`runtimed serve --console`) in a real browser: Debian's
// chromium driven by playwright-core. Starts its own daemon (root, a temp
// socket and data dir, a free loopback port, one tenant token beside the
// operator token the daemon makes), types into the terminal with the
// keyboard and reads the answer back from xterm.js's buffer and its rendered
// rows. Then what a browser must not be made to do: a DNS-rebinding page
// (chromium resolves evil.example to 127.0.0.1) and a page of another origin
// that holds the token get nothing.
//
//   node --test tests/browser/
//
// Needs root, a built runtimed (RUNTIMED_BIN or the workspace's debug
// build), /usr/bin/chromium (CHROMIUM to override) and `npm ci` in console/.
// Missing pieces skip the tests, or fail them with SANDBOX_MUST_WORK=1.

import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { createServer as createHttpServer } from "node:http";
import { createServer } from "node:net";
import { readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const repo = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
const runtimedBin =
  process.env.RUNTIMED_BIN || join(repo, "target/x86_64-unknown-linux-gnu/debug/runtimed");
const chromiumBin = process.env.CHROMIUM || "/usr/bin/chromium";
const assets = join(repo, "console/node_modules");
const screenshot = process.env.CONSOLE_SCREENSHOT || "/tmp/console.png";
const TOKEN = "browser-test-token-0123456789";

function missing() {
  if (process.getuid() !== 0) return "needs root (the daemon creates sandboxes)";
  if (!existsSync(runtimedBin)) return `no runtimed binary at ${runtimedBin} (cargo build --workspace --bins)`;
  if (!existsSync(chromiumBin)) return `no chromium at ${chromiumBin} (apt-get install chromium)`;
  if (!existsSync(join(assets, "playwright-core"))) return "no console/node_modules (npm ci in console/)";
  return null;
}
const reason = missing();
if (reason && process.env.SANDBOX_MUST_WORK === "1") {
  throw new Error(`browser tests cannot run: ${reason}`);
}

// playwright-core lives in console/node_modules, not beside this file.
const requireFromConsole = createRequire(join(repo, "console/package.json"));

function freePort() {
  return new Promise((ok, fail) => {
    const srv = createServer();
    srv.once("error", fail);
    srv.listen(0, "127.0.0.1", () => {
      const { port } = srv.address();
      srv.close(() => ok(port));
    });
  });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
// A timeout that does not keep node alive once the awaited thing is done.
const deadline = (ms) => new Promise((r) => setTimeout(r, ms).unref());

// Skipped per test (not per suite) so the report counts them as skipped.
const opts = { skip: reason || false };

describe("console page", () => {
  let dir, daemon, port, base, context, page, other, otherPort;
  let daemonLog = "";

  // A failing assertion carries what the terminal showed and what the
  // daemon printed.
  async function diagnose(fn) {
    try {
      await fn();
    } catch (e) {
      const lines = page ? await bufferLines().catch(() => ["(no buffer)"]) : [];
      const status = page ? await page.textContent("#status").catch(() => "?") : "?";
      e.message += `\n--- status: ${status}\n--- terminal:\n${lines.join("\n").trimEnd()}` +
        `\n--- daemon log (tail):\n${daemonLog.slice(-3000)}`;
      throw e;
    }
  }

  function api(method, path, body) {
    const headers = { Authorization: `Bearer ${TOKEN}` };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    return fetch(base + path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  }

  function bufferLines() {
    return page.evaluate(() => {
      const b = window.runtimedConsole.term.buffer.active;
      const out = [];
      for (let i = 0; i < b.length; i++) out.push(b.getLine(i).translateToString(true));
      return out;
    });
  }

  // Waits until a whole line of the terminal's buffer matches `re`; returns
  // the last matching line's groups.
  async function waitForLine(re, timeout = 15000) {
    const handle = await page.waitForFunction(
      ([src, flags]) => {
        const re = new RegExp(src, flags);
        const b = window.runtimedConsole.term.buffer.active;
        let hit = null;
        for (let i = 0; i < b.length; i++) {
          const m = re.exec(b.getLine(i).translateToString(true).trimEnd());
          if (m) hit = Array.from(m);
        }
        return hit;
      },
      [re.source, re.flags],
      { timeout, polling: 50 },
    );
    return handle.jsonValue();
  }

  const ptyState = () => page.evaluate(() => window.runtimedConsole.ptyState);

  async function waitConnected() {
    await page.waitForFunction(() => window.runtimedConsole && window.runtimedConsole.ptyState !== "connecting",
      null, { timeout: 20000 });
    assert.equal(await ptyState(), "connected", `status: ${await page.textContent("#status")}`);
    // The shell's first prompt: input typed before it could be echoed twice.
    await page.waitForFunction(() => {
      const b = window.runtimedConsole.term.buffer.active;
      for (let i = 0; i < b.length; i++) if (b.getLine(i).translateToString(true).trim()) return true;
      return false;
    }, null, { timeout: 15000 });
  }

  async function run(command) {
    await page.click("#terminal");
    await page.keyboard.type(command);
    await page.keyboard.press("Enter");
  }

  before(async () => {
    if (reason) return;
    dir = mkdtempSync(join(tmpdir(), "runtimed-browser-"));
    port = await freePort();
    base = `http://127.0.0.1:${port}`;
    // Another web server on this host: its pages are other origins, one of
    // them allowed by the config.
    otherPort = await freePort();
    other = createHttpServer((req, res) => {
      res.writeHead(200, { "Content-Type": "text/html" });
      res.end("<!doctype html><title>another origin</title>");
    });
    await new Promise((ok) => other.listen(otherPort, "127.0.0.1", ok));
    const config = join(dir, "config.toml");
    writeFileSync(config, `allowed_origins = ["http://localhost:${otherPort}"]\n` +
      `[[tokens]]\ntoken = "${TOKEN}"\ntenant = "browser"\n`);
    daemon = spawn(runtimedBin, [
      "serve", "--config", config, "--socket", join(dir, "runtimed.sock"),
      "--data-dir", join(dir, "data"), "--listen", `127.0.0.1:${port}`,
      "--console", "--console-assets", assets,
    ], { stdio: ["ignore", "pipe", "pipe"] });
    for (const s of [daemon.stdout, daemon.stderr]) s.on("data", (d) => { daemonLog += d; });
    let exited = null;
    daemon.once("exit", (code, sig) => { exited = `exited (${code ?? sig})`; });
    for (let i = 0; ; i++) {
      if (exited) throw new Error(`runtimed ${exited}:\n${daemonLog}`);
      try {
        if ((await fetch(`${base}/healthz`)).ok) break;
      } catch (_) { /* not listening yet */ }
      if (i > 300) throw new Error(`runtimed did not come up:\n${daemonLog}`);
      await sleep(100);
    }

    const { chromium } = requireFromConsole("playwright-core");
    // A persistent context with a fresh profile: playwright refuses
    // --user-data-dir in args. Without the background-networking flags
    // chromium keeps dialing out (there is no network here).
    context = await chromium.launchPersistentContext(join(dir, "profile"), {
      executablePath: chromiumBin,
      headless: true,
      viewport: { width: 900, height: 560 },
      args: [
        "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        // DNS rebinding, played: a name of someone else's resolves here.
        "--host-resolver-rules=MAP evil.example 127.0.0.1",
      ],
    });
    page = context.pages()[0] || (await context.newPage());
  });

  after(async () => {
    if (context) await context.close().catch(() => {});
    if (daemon && daemon.exitCode === null && daemon.signalCode === null) {
      const done = new Promise((r) => daemon.once("exit", r));
      process.kill(daemon.pid, "SIGTERM");
      const stopped = await Promise.race([done.then(() => true), deadline(20000).then(() => false)]);
      if (!stopped) process.kill(daemon.pid, "SIGKILL");
    }
    if (other) other.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test("creates a session and runs a typed command", opts, () => diagnose(async () => {
    await page.goto(`${base}/#token=${TOKEN}`);
    await waitConnected();
    const { sessionId, ptyId } = await page.evaluate(() => window.runtimedConsole);
    assert.match(sessionId, /\S/);
    const got = await api("GET", `/v1/sessions/${sessionId}`);
    assert.equal(got.status, 200, "the page's session exists for the page's token");
    assert.equal(await page.textContent("#session"), sessionId);
    assert.match(ptyId || "", /\S/, "the page learnt its terminal's id");
    const frag = new URLSearchParams(new URL(page.url()).hash.slice(1));
    assert.equal(frag.get("session"), sessionId, "a reload would reuse the session");

    await run("echo console-$((6*7))");
    // The echoed command line holds `$((6*7))`; only the shell's output is
    // exactly console-42.
    await waitForLine(/^console-42$/);
    await page.waitForFunction(() => document.querySelector(".xterm-rows").textContent.includes("console-42"),
      null, { timeout: 5000 });
    await page.screenshot({ path: screenshot });
  }));

  test("a viewport resize reaches the terminal's size", opts, () => diagnose(async () => {
    const before = await page.evaluate(() => [window.runtimedConsole.term.rows, window.runtimedConsole.term.cols]);
    await run("echo size1-$(stty size | tr ' ' x)");
    const [, r1, c1] = await waitForLine(/^size1-(\d+)x(\d+)$/);
    assert.deepEqual([+r1, +c1], before, "the PTY starts at the fitted size (?cols=&rows=)");

    await page.setViewportSize({ width: 1280, height: 760 });
    await page.waitForFunction(([r, c]) => {
      const t = window.runtimedConsole.term;
      return t.rows > r && t.cols > c;
    }, before, { timeout: 10000 });
    const after = await page.evaluate(() => [window.runtimedConsole.term.rows, window.runtimedConsole.term.cols]);
    await run("echo size2-$(stty size | tr ' ' x)");
    const [, r2, c2] = await waitForLine(/^size2-(\d+)x(\d+)$/);
    assert.deepEqual([+r2, +c2], after, "the shell sees the browser's new size");
    await page.screenshot({ path: screenshot });
  }));

  test("a reload reattaches to the terminal with its scrollback", opts, () => diagnose(async () => {
    const { sessionId, ptyId } = await page.evaluate(() => window.runtimedConsole);
    await page.reload();
    await waitConnected();
    const now = await page.evaluate(() => window.runtimedConsole);
    assert.equal(now.sessionId, sessionId);
    assert.equal(now.ptyId, ptyId);
    await waitForLine(/^console-42$/);
    const list = await (await api("GET", `/v1/sessions/${sessionId}/ptys`)).json();
    assert.deepEqual(list.ptys.map((p) => p.id), [ptyId], "no second terminal was opened");
  }));

  test("the shell's exit code reaches the status line, not the terminal", opts, () => diagnose(async () => {
    await run("exit 3");
    await page.waitForFunction(() => window.runtimedConsole.ptyState === "exited", null, { timeout: 15000 });
    assert.equal(await page.evaluate(() => window.runtimedConsole.exitCode), 3);
    assert.equal(await page.textContent("#status"), "exited with code 3");
    const text = (await bufferLines()).join("\n");
    assert.doesNotMatch(text, /"type"/, "the exit control message is not printed");
  }));

  test("API errors show as code: message", opts, () => diagnose(async () => {
    // Via about:blank: a change of fragment alone would not load the page.
    await page.goto("about:blank");
    await page.goto(`${base}/#token=${TOKEN}&session=s-does-not-exist`);
    await page.waitForFunction(() => window.runtimedConsole.ptyState === "error", null, { timeout: 10000 });
    assert.match(await page.textContent("#status"), /session_not_found: no session "s-does-not-exist"/);

    await page.goto("about:blank");
    await page.goto(`${base}/`);
    await page.waitForFunction(() => window.runtimedConsole.ptyState === "error", null, { timeout: 10000 });
    assert.match(await page.textContent("#status"), /unauthorized: missing bearer token/);
  }));
  test("the operator token from the data dir opens the console", opts, () => diagnose(async () => {
    const op = readFileSync(join(dir, "data", "token"), "utf8").trim();
    await page.goto("about:blank");
    await page.goto(`${base}/#token=${op}`);
    await waitConnected();
    await run("echo operator-$((6*7))");
    await waitForLine(/^operator-42$/);
    // Its session is tenant default's: the socket's, not the tenant token's.
    const { sessionId } = await page.evaluate(() => window.runtimedConsole);
    assert.equal((await api("GET", `/v1/sessions/${sessionId}`)).status, 404);
  }));

  test("a DNS-rebinding page gets nothing", opts, () => diagnose(async () => {
    await page.goto("about:blank");
    const resp = await page.goto(`http://evil.example:${port}/#token=${TOKEN}`);
    assert.equal(resp.status(), 403);
    assert.equal((await resp.json()).code, "host_not_allowed");
    // Its scripts reach the daemon under the page's name: refused too.
    const seen = await page.evaluate(async (token) => {
      const r = await fetch("/v1/sessions", { method: "POST", body: "{}",
        headers: { Authorization: "Bearer " + token, "Content-Type": "application/json" } });
      return [r.status, (await r.json()).code];
    }, TOKEN);
    assert.deepEqual(seen, [403, "host_not_allowed"]);
    const list = await (await api("GET", "/v1/sessions")).json();
    assert.equal(list.sessions.length, 1, "no session was made");
  }));

  test("a page of another origin cannot open a terminal, even with the token", opts, () => diagnose(async () => {
    const created = await (await api("POST", "/v1/sessions", {})).json();
    const url = `ws://127.0.0.1:${port}/v1/sessions/${created.id}/pty?token=${TOKEN}&pty_id=`;
    const tryTerminal = (name) => page.evaluate((u) => new Promise((done) => {
      const ws = new WebSocket(u);
      ws.onopen = () => { ws.close(); done("open"); };
      ws.onerror = () => done("refused");
      setTimeout(() => done("timeout"), 15000);
    }), url + name);
    // The allowed origin (allowed_origins) opens one: the browser itself
    // would let the other do the same.
    await page.goto(`http://localhost:${otherPort}/`);
    assert.equal(await tryTerminal("allowed"), "open");
    // The same page under another origin: the daemon refuses the handshake.
    await page.goto(`http://127.0.0.1:${otherPort}/`);
    assert.equal(await tryTerminal("foreign"), "refused");
    const ptys = await (await api("GET", `/v1/sessions/${created.id}/ptys`)).json();
    assert.deepEqual(ptys.ptys.map((p) => p.id), ["allowed"]);
    await api("DELETE", `/v1/sessions/${created.id}`);
  }));
});
