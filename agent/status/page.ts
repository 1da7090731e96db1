/**
 * The status page's one HTML document (`GET /status`, docs/status-page.md): inline CSS and script, nothing fetched
 * from anywhere but this agent's own API, no framework. It holds no data: the script asks for a token (kept in
 * sessionStorage), reads `/v1/status/snapshot` and then `/v1/status/events` with fetch() and the token as the
 * `X-Auth-Token` header, and applies each event to its own model. Every value is put on the page with textContent.
 *
 * The Content-Security-Policy allows exactly this script and this style (by hash), fetches to this origin only, and
 * nothing else (no frames, no forms posted anywhere, no images).
 */
import { createHash } from 'node:crypto';
import { STATUS_SCRIPT } from './page-script.js';

const STYLE = `
:root { color-scheme: light; --fg: #1d2430; --muted: #667085; --line: #e4e7ec; --bg: #f7f8fa; --ok: #127a3b; --bad: #b42318; --warn: #9a6700; }
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.4 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--fg); background: var(--bg); }
header { display: flex; align-items: center; gap: 16px; padding: 10px 20px; background: #101828; color: #fff; }
header h1 { font-size: 16px; margin: 0; font-weight: 600; }
header .meta { color: #d0d5dd; font-size: 13px; }
header .spacer { flex: 1; }
header button { background: transparent; color: #fff; border: 1px solid #475467; border-radius: 6px; padding: 4px 10px; cursor: pointer; }
#conn { font-size: 12px; padding: 2px 8px; border-radius: 10px; background: #475467; }
#conn.live { background: var(--ok); }
#conn.down { background: var(--bad); }
main { padding: 16px 20px; }
section { background: #fff; border: 1px solid var(--line); border-radius: 8px; margin-bottom: 16px; overflow: auto; }
section h2 { font-size: 14px; margin: 0; padding: 10px 12px; border-bottom: 1px solid var(--line); }
section h2 .count { color: var(--muted); font-weight: 400; margin-left: 6px; }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; padding: 6px 12px; border-bottom: 1px solid var(--line); white-space: nowrap; vertical-align: top; }
th { font-weight: 600; color: var(--muted); font-size: 12px; text-transform: uppercase; letter-spacing: .03em; }
tr:last-child td { border-bottom: 0; }
td.err, td.summary { white-space: normal; max-width: 420px; }
td.err { color: var(--bad); }
.pw-on { color: var(--ok); font-weight: 600; }
.pw-off { color: var(--muted); font-weight: 600; }
.pw-unknown { color: var(--warn); font-weight: 600; }
.yes { color: var(--ok); }
.no { color: var(--bad); }
.st-error { color: var(--bad); font-weight: 600; }
.st-running { color: var(--ok); }
.flash { animation: flash 1.2s ease-out; }
@keyframes flash { from { background: #fef0c7; } to { background: transparent; } }
.empty { color: var(--muted); padding: 10px 12px; }
.bar { display: inline-block; width: 60px; height: 6px; background: var(--line); border-radius: 3px; vertical-align: middle; margin-right: 6px; }
.bar > span { display: block; height: 100%; background: #2e90fa; border-radius: 3px; }
#login { max-width: 420px; margin: 80px auto; background: #fff; border: 1px solid var(--line); border-radius: 8px; padding: 20px; }
#login h2 { margin: 0 0 8px; font-size: 16px; }
#login p { color: var(--muted); margin: 0 0 12px; }
#login input { width: 100%; padding: 8px; border: 1px solid #d0d5dd; border-radius: 6px; font: inherit; }
#login button { margin-top: 10px; padding: 8px 14px; border: 0; border-radius: 6px; background: #155eef; color: #fff; font: inherit; cursor: pointer; }
#login .msg { color: var(--bad); min-height: 1.4em; margin-top: 8px; }
.hidden { display: none !important; }
`;

const sha256 = (text: string) => `'sha256-${createHash('sha256').update(text, 'utf8').digest('base64')}'`;

/** The page's CSP: its own script and style only (by hash), fetch() to this origin only. */
export const STATUS_PAGE_CSP = [
  "default-src 'none'",
  `script-src ${sha256(STATUS_SCRIPT)}`,
  `style-src ${sha256(STYLE)}`,
  "connect-src 'self'",
  "img-src 'none'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join('; ');

/** The document (the same bytes for every caller: it carries no data). */
export const STATUS_PAGE = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>metald status</title>
<style>${STYLE}</style>
</head>
<body>
<header>
  <h1>metald</h1>
  <span class="meta" id="agent"></span>
  <span class="meta" id="role"></span>
  <span class="meta" id="seq"></span>
  <span class="spacer"></span>
  <span id="conn">offline</span>
  <button type="button" id="logout" class="hidden">Forget token</button>
</header>
<form id="login" class="hidden" autocomplete="off">
  <h2>Status</h2>
  <p>Enter an API token (the <code>X-Auth-Token</code> of the REST API). It is kept in this tab only (sessionStorage).</p>
  <input type="password" id="token" name="token" placeholder="API token" aria-label="API token" required>
  <button type="submit">Show status</button>
  <div class="msg" id="login-msg"></div>
</form>
<main id="board" class="hidden">
  <section id="nodes-section">
    <h2>Nodes<span class="count" id="nodes-count"></span></h2>
    <table id="nodes"><thead><tr><th>Name</th><th>Type</th><th>Power</th><th>Maintenance</th><th>Instance</th><th>Last error</th></tr></thead><tbody></tbody></table>
  </section>
  <section>
    <h2>Instances<span class="count" id="instances-count"></span></h2>
    <table id="instances"><thead><tr><th>Name</th><th>State</th><th>Operation state</th><th>Power</th><th>Alive</th><th>Addresses</th><th>Progress</th><th>Error</th></tr></thead><tbody></tbody></table>
  </section>
  <section>
    <h2>Recent events<span class="count" id="events-count"></span></h2>
    <table id="events"><thead><tr><th>Time</th><th>Kind</th><th>Instance / node</th><th>Summary</th></tr></thead><tbody></tbody></table>
  </section>
</main>
<script>${STATUS_SCRIPT}</script>
</body>
</html>
`;
