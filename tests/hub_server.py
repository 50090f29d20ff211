"""A local stand-in for the Hugging Face Hub's upload API, for tests.

It answers the requests ``huggingface_hub`` makes for ``HfApi.create_repo`` and
``HfApi.upload_folder`` (create the repo, list its files, validate the card's YAML, ask how to
upload each file, commit), telling the client to send every file inline in the commit, and keeps
what arrived: the created repos, the repo's files (commits add and delete them, one repo) and
each request's ``Authorization`` header.
Point a client at it with ``HfApi(endpoint=hub.url)`` or ``HF_ENDPOINT=hub.url``.
"""

from __future__ import annotations

import base64
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class HubServer:
    """``with HubServer() as hub:`` serves on 127.0.0.1 until the block ends."""

    def __init__(self):
        self.repos: list[dict] = []  # bodies of the create-repo requests
        self.files: dict[str, bytes] = {}  # committed files by path
        self.authorizations: list[str | None] = []
        self.commits: list[str] = []  # commit summaries
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self._server.server_port}"

    def __enter__(self) -> HubServer:
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()

    def answer(self, path: str, body: bytes) -> dict:
        """The JSON answer to a POST."""
        if path == "/api/repos/create":
            repo = json.loads(body)
            self.repos.append(repo)
            return {"url": f"{self.url}/datasets/{repo['organization']}/{repo['name']}"}
        if "/preupload/" in path:
            files = json.loads(body)["files"]
            return {"files": [{"path": f["path"], "uploadMode": "regular", "shouldIgnore": False} for f in files]}
        if "/commit/" in path:
            for line in body.decode().splitlines():
                item = json.loads(line)
                if item["key"] == "header":
                    self.commits.append(item["value"]["summary"])
                elif item["key"] == "file":
                    self.files[item["value"]["path"]] = base64.b64decode(item["value"]["content"])
                elif item["key"] == "deletedFile":
                    del self.files[item["value"]["path"]]
            repo = path.split("/api/datasets/")[1].split("/commit/")[0]
            oid = "0" * 40
            return {"commitUrl": f"{self.url}/datasets/{repo}/commit/{oid}", "commitOid": oid}
        return {}  # /api/validate-yaml and anything else: accepted

    def tree(self) -> list[dict]:
        """The repo's files as the tree listing gives them."""
        return [{"type": "file", "path": path, "size": len(data), "oid": "0" * 40} for path, data in self.files.items()]

    def _handler(self):
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                hub.authorizations.append(self.headers.get("Authorization"))
                self._send(hub.tree() if "/tree/" in self.path else {})

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                hub.authorizations.append(self.headers.get("Authorization"))
                self._send(hub.answer(self.path, body))

            def _send(self, answer):
                data = json.dumps(answer).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        return Handler
