"""The chat's web UI: one page over a `ChatSession` (`launch/chat.py --port=8000`).

The page shows the assistant turn as it streams, one reasoning step per click, in an
editable box: change the text and press "resume from my text" to continue the turn after
the edit (METHOD.md §5.2). The endpoints take and return JSON:

  POST /start {"question": ...}   a new turn
  POST /step                      the next reasoning step
  POST /run                       to the end of the turn
  POST /edit {"text": ...}        replace the response so far; decoding resumes after it
  each answers {"response": <the turn so far>, "new": <text added>, "finished": bool}

One session, one user at a time (a research tool on localhost, not a server).
"""

from __future__ import annotations

import html
import http.server
import json
import threading

from safework import chat

_PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>SafeLadder chat</title>
<style>body{{font-family:sans-serif;max-width:52em;margin:2em auto}}
textarea{{width:100%;font-family:monospace}}button{{margin:.3em .3em 0 0}}</style></head>
<body><h2>{title}</h2>
<p><input id="q" size="70" placeholder="Ask something"> <button onclick="call('start',
{{question:document.getElementById('q').value}})">ask</button></p>
<textarea id="r" rows="14"></textarea><br>
<button onclick="call('step')">next step</button>
<button onclick="call('run')">run to the end</button>
<button onclick="call('edit',{{text:document.getElementById('r').value}})"
>resume from my text</button> <span id="s"></span>
<script>
async function call(name, body) {{
  const reply = await fetch('/' + name, {{method: 'POST', body: JSON.stringify(body || {{}})}});
  const data = await reply.json();
  if (data.error) {{ document.getElementById('s').textContent = data.error; return; }}
  document.getElementById('r').value = data.response;
  document.getElementById('s').textContent = data.finished ? 'finished' : '';
}}
</script></body></html>
"""


class ChatServer(http.server.ThreadingHTTPServer):
  """An HTTP server bound to `address` that serves one `ChatSession`."""

  def __init__(self, address, session: chat.ChatSession, title: str = "SafeLadder chat"):
    super().__init__(address, _Handler)
    self.session, self.title = session, title
    self.lock = threading.Lock()  # The session is not re-entrant.

  def act(self, name: str, body: dict) -> dict:
    session = self.session
    with self.lock:
      if name == "start":
        session.start(str(body.get("question", "")))
        new = ""
      elif name == "edit":
        session.edit(str(body.get("text", "")))
        new = ""
      elif name in ("step", "run"):
        new = session.step() if name == "step" else session.run()
      else:
        raise KeyError(name)
      return {"response": session.response, "new": new, "finished": session.finished}


class _Handler(http.server.BaseHTTPRequestHandler):
  server: ChatServer

  def _send(self, code: int, payload: bytes, kind: str) -> None:
    self.send_response(code)
    self.send_header("Content-Type", kind)
    self.send_header("Content-Length", str(len(payload)))
    self.end_headers()
    self.wfile.write(payload)

  def do_GET(self):  # noqa: N802 (the http.server interface)
    if self.path != "/":
      self._send(404, b"not found", "text/plain")
      return
    page = _PAGE.format(title=html.escape(self.server.title))
    self._send(200, page.encode(), "text/html; charset=utf-8")

  def do_POST(self):  # noqa: N802
    name = self.path.strip("/")
    try:
      length = int(self.headers.get("Content-Length") or 0)
      body = json.loads(self.rfile.read(length) or b"{}")
      if not isinstance(body, dict):
        raise ValueError("the body must be a JSON object")
      reply, code = self.server.act(name, body), 200
    except KeyError:
      reply, code = {"error": f"unknown action {name!r}"}, 404
    except (ValueError, RuntimeError) as e:  # A bad edit, no turn started, bad JSON.
      reply, code = {"error": str(e)}, 400
    self._send(code, json.dumps(reply).encode(), "application/json")

  def log_message(self, format, *args):  # noqa: A002 (the http.server interface)
    del format, args  # Quiet: the terminal is the user's.
